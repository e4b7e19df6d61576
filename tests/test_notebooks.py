"""The notebooks: paired with their .py sources, committed without outputs, and the whole
sequence runs under the smoke profile.

The sequence is executed once per session (module fixture) with runs, figures, results and a
README copy redirected into a temporary folder, so the repository's own results are never
overwritten by smoke numbers. Each notebook writes a summary JSON that the tests read.
"""

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from pemscl import figures as F
from pemscl import notebooks as N
from pemscl import pipeline as P
from pemscl import experiments, report, runs, stats, tables

REPO = Path(__file__).resolve().parents[1]
SOURCES = P.notebooks()
VERDICTS = set(stats.VERDICTS) | {"missing runs"}


def test_notebooks_found():
    names = [p.name[:2] for p in SOURCES]
    for n in ("00", "01", "02", "03", "04", "07"):
        assert n in names


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_source_notebook_has_no_outputs_and_a_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"{path.name} carries outputs: clear them before committing"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "profile" in tagged[0].source


# --------------------------------------------------------------------------- jupytext pairs
def test_every_notebook_is_in_sync_with_its_py_source():
    assert all(p.with_suffix(".py").exists() for p in SOURCES)
    problems = N.check_pairs(P.NOTEBOOKS)
    assert not problems, "\n".join(problems) + f"\nthe .py is the source: run `{N.SYNC_COMMAND}`"


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_py_source_tags_the_parameters_cell(path):
    text = path.with_suffix(".py").read_text()
    assert text.count('# %% tags=["parameters"]') == 1
    nb = N.read_source(path.with_suffix(".py"))
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code" and tagged[0].source.startswith("profile = ")


@pytest.fixture
def pair(tmp_path):
    """A copy of 02_train's pair and the jupytext config, to edit freely."""
    for name in ("02_train.py", "02_train.ipynb", "jupytext.toml"):
        shutil.copyfile(P.NOTEBOOKS / name, tmp_path / name)
    return tmp_path


def test_edited_py_is_detected_and_sync_repairs_it(pair):
    py, ipynb = pair / "02_train.py", pair / "02_train.ipynb"
    before = nbformat.read(ipynb, as_version=4)
    i = next(k for k, c in enumerate(before.cells) if c.source.startswith("run = "))
    py.write_text(py.read_text().replace("print(run.dir)", "print(run.dir, run.scores.get('best_epoch'))"))
    problems = N.check_pairs(pair)
    assert problems == [f"02_train.ipynb is out of sync with 02_train.py: cell {i} differs (source); "
                        "in the .py it starts 'run = runner.run_all([cfg])[0]'"]
    with pytest.raises(N.NotebooksOutOfSync, match=r"02_train\.ipynb[\s\S]*python -m pemscl\.notebooks sync"):
        N.require_in_sync(pair)
    # the pipeline refuses before starting a kernel: a stale .ipynb must not run
    with pytest.raises(N.NotebooksOutOfSync, match="02_train"):
        P.run_pipeline("smoke", out=pair / "out", folder=pair)

    assert N.sync(pair) == [ipynb]
    assert N.check_pairs(pair) == [] and N.sync(pair) == []  # a second sync has nothing to do
    after = nbformat.read(ipynb, as_version=4)
    nbformat.validate(after)
    assert after.cells[i].source == "run = runner.run_all([cfg])[0]\nprint(run.dir, run.scores.get('best_epoch'))"
    assert [c.id for c in after.cells] == [c.id for c in before.cells]  # ids kept: the diff is the edit alone
    assert after.metadata == before.metadata and all(not c.get("outputs") for c in after.cells if c.cell_type == "code")


def test_added_cell_and_lost_tag_are_detected(pair):
    py = pair / "02_train.py"
    text = py.read_text()
    py.write_text(text + "\n# %% [markdown]\n# A note added in the .py.\n")
    n = len(nbformat.read(pair / "02_train.ipynb", as_version=4).cells)
    assert N.check_pairs(pair) == [f"02_train.ipynb is out of sync with 02_train.py: the .py has {n + 1} cells, "
                                   f"the .ipynb {n}"]
    py.write_text(text.replace('# %% tags=["parameters"]', "# %%"))
    start = 'profile = "cpu"  # smoke | cpu | paper (the pipeline sets it'  # the first 60 characters
    assert N.check_pairs(pair) == [f"02_train.ipynb is out of sync with 02_train.py: cell 1 differs (tags); "
                                   f"in the .py it starts {start!r}"]


def test_sync_clears_outputs_saved_from_jupyterlab(pair):
    ipynb = pair / "02_train.ipynb"
    nb = nbformat.read(ipynb, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("run = "))
    code.execution_count, code.outputs = 3, [nbformat.v4.new_output("stream", name="stdout", text="runs/x\n")]
    nbformat.write(nb, ipynb)
    assert N.check_pairs(pair) == []  # outputs are not drift: the pipeline may run it as it is
    assert N.sync(pair) == [ipynb]
    code = next(c for c in nbformat.read(ipynb, as_version=4).cells if c.source.startswith("run = "))
    assert code.outputs == [] and code.execution_count is None


def test_unpaired_files_are_reported_and_sync_writes_the_twin(pair):
    (pair / "02_train.py").rename(pair / "03_other.py")  # a .py alone, and an .ipynb alone
    assert N.check_pairs(pair) == ["02_train.ipynb has no 02_train.py twin", "03_other.py has no 03_other.ipynb twin"]
    assert sorted(N.sync(pair)) == [pair / "02_train.py", pair / "03_other.ipynb"]
    assert N.check_pairs(pair) == []
    assert not (pair / "02_train.py").read_text().startswith("# ---")  # no YAML header (jupytext.toml)
    new = nbformat.read(pair / "03_other.ipynb", as_version=4)
    assert new.metadata.kernelspec.name == "python3" and "jupytext" not in new.metadata


# --------------------------------------------------------------------------- the smoke sequence
@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    readme = root / "README.md"
    shutil.copyfile(REPO / "README.md", readme)
    env = {"PEMSCL_RUNS": root / "runs", "PEMSCL_FIGURES": root / "figures", "PEMSCL_RESULTS": root / "results",
           "PEMSCL_README": readme}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, str(v))
        out = root / "executed"
        try:
            res = P.run_pipeline("smoke", out=out)
        except P.NotebookFailed as e:
            pytest.fail(str(e))
    summaries = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json") if p.stem != "timings"}
    return {"root": root, "out": out, "res": res, "summaries": summaries, **{k: Path(v) for k, v in env.items()}}


def _figures_ok(summary: dict, folder: Path):
    assert summary["figures"], "no figures saved"
    for name, files in summary["figures"].items():
        assert Path(files["html"]).parent == folder and Path(files["html"]).exists(), name
        if F.png_required():
            assert files["png"] and Path(files["png"]).stat().st_size > 0, f"{name}: no PNG"


def _in_unit(x):
    return x is None or 0.0 <= x <= 1.0


@pytest.mark.slow
def test_sequence_runs_every_notebook(smoke):
    executed = sorted(p.name for p in smoke["out"].glob("*.ipynb"))
    assert executed == [p.name for p in SOURCES]
    timings = json.loads((smoke["out"] / "timings.json").read_text())
    assert timings["profile"] == "smoke" and set(timings["seconds"]) == {p.stem for p in SOURCES}
    for p in smoke["out"].glob("*.ipynb"):  # outputs kept, no error outputs
        nb = nbformat.read(p, as_version=4)
        outs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        assert outs and not [o for o in outs if o.get("output_type") == "error"], p.name


@pytest.mark.slow
def test_data_notebooks(smoke):
    s = smoke["summaries"]["00_data"]
    assert s["all_files_ok"] is True
    assert s["groups"] == {"head": 10, "mid": 66, "tail": 20}
    assert 0.3 < s["label_comparison"]["missing_from_original"] < 0.9
    _figures_ok(s, smoke["PEMSCL_FIGURES"])
    s = smoke["summaries"]["01_regimes"]
    assert {"redocred-mini", "oog-mini", "ogg-mini"} <= set(s["regimes"])
    _figures_ok(s, smoke["PEMSCL_FIGURES"])


@pytest.mark.slow
def test_train_notebook(smoke):
    s = smoke["summaries"]["02_train"]
    run = Path(s["run"])
    assert run.parent == smoke["PEMSCL_RUNS"] and (run / "DONE").exists()
    for f in ("config.json", "history.json", "scores.json", "predictions_dev.json", "predictions_test.json"):
        assert (run / f).exists(), f
    for split in ("dev", "test"):
        assert all(_in_unit(s["scores"][split].get(k)) for k in ("f1", "ign_f1", "precision", "recall"))
    _figures_ok(s, smoke["PEMSCL_FIGURES"])


@pytest.mark.slow
def test_ablation_and_noisy_notebooks(smoke):
    s = smoke["summaries"]["03_ablations"]
    assert [r["label"] for r in s["table2"]] == ["ATL", "BCE", "NCRL", "PEMSCL"]
    assert [r["label"] for r in s["table3"]] == ["PEMSCL", "no EM", "no SCL", "no EM, no SCL"]
    # claim rows (PEMSCL, no EM, no SCL) have the profile's 2 paired seeds, the fourth row one
    assert [r["n"] for r in s["table3"]] == [2, 2, 2, 1] and all(_in_unit(r["dev_f1"]) for r in s["table3"])
    # every released-code option of the smoke profile (all of them) and its paper-default references
    labels = [r["label"] for r in s["faithfulness"]]
    assert sorted(labels) == sorted(label for label, _, _ in experiments.FAITHFULNESS) and len(labels) == 10
    _figures_ok(s, smoke["PEMSCL_FIGURES"])
    s = smoke["summaries"]["04_noisy_labels"]
    assert {(r["regime"], r["label"]) for r in s["table4"]} == {
        (g, m) for g in ("OOG", "OGG") for m in ("ATL", "NCRL", "PEMSCL", "PEMSCL+NS")}
    assert all(_in_unit(r["test_f1"]) for r in s["table4"])
    assert {(r["model"], r["ratio"]) for r in s["figure2"]} == {(m, x) for m in ("PEMSCL", "ATL") for x in (0.1, 1.0)}
    _figures_ok(s, smoke["PEMSCL_FIGURES"])


@pytest.mark.slow
def test_every_run_complete_with_scores_in_unit_interval(smoke):
    runs = [p for p in smoke["PEMSCL_RUNS"].iterdir() if p.is_dir()]
    assert runs and all((p / "DONE").exists() for p in runs)
    for p in runs:
        scores = json.loads((p / "scores.json").read_text())
        for split in ("dev", "test", "dev_gold"):
            for k, v in scores.get(split, {}).items():
                if k.endswith(("f1", "precision", "recall")):
                    assert _in_unit(v), (p.name, split, k, v)


@pytest.mark.slow
def test_results_notebook(smoke):
    s = smoke["summaries"]["07_results"]
    data = json.loads((smoke["PEMSCL_RESULTS"] / "results.json").read_text())
    t = data["tables"]
    assert t["profile"] == "smoke" and not any(t["missing"].values())
    assert [r["label"] for r in t["table3"]] == ["PEMSCL", "no EM", "no SCL", "no EM, no SCL"]
    assert len(t["table2"]) == 4 and len(t["table4"]) == 8 and len(t["figure2"]) == 4
    assert 0 < t["cost"]["n_runs"] <= len(list(smoke["PEMSCL_RUNS"].iterdir()))  # 05/06 may add their own
    assert {c["id"] for c in data["claims"]} == set(s["verdicts"])
    assert len(data["claims"]) == 6 and all(c["verdict"] in VERDICTS for c in data["claims"])
    md = (smoke["PEMSCL_RESULTS"] / "results.md").read_text()
    assert "Table 3" in md and "Claims" in md
    # the committed evidence: every run behind the tables, which rebuild from it alone
    exported = runs.load_exported(smoke["PEMSCL_RESULTS"] / "runs.jsonl")
    assert len(exported) == t["cost"]["n_runs"]
    rebuilt = tables.build_tables(exported, "smoke")
    assert [r["dev_f1"] for r in rebuilt["table3"]] == pytest.approx([r["dev_f1"] for r in t["table3"]])
    # the README copy's summary and docs/results.md beside it hold the smoke profile's results; outside
    # their marked sections they are the repository's
    for name, start, end, title in (("README.md", report.SUMMARY_START, report.SUMMARY_END, "Profile `smoke`"),
                                    ("docs/results.md", report.RESULTS_START, report.RESULTS_END,
                                     "Results (profile `smoke`)")):
        text = (smoke["PEMSCL_README"].parent / name).read_text()
        assert title in text.split(start)[1].split(end)[0], name
        repo = (REPO / name).read_text()
        assert text.split(start)[0] == repo.split(start)[0] and text.split(end)[1] == repo.split(end)[1], name
    # docs/FAITHFULNESS.md is regenerated beside that README, with the smoke profile's measured effects
    faith = (smoke["PEMSCL_README"].parent / "docs" / "FAITHFULNESS.md").read_text()
    assert "(profile `smoke`" in faith and "| 12 |" in faith
    _figures_ok(s, smoke["PEMSCL_FIGURES"])
    # the repository's own results were not touched
    assert not (REPO / "results" / "results.json").exists() or \
        json.loads((REPO / "results" / "results.json").read_text())["tables"]["profile"] != "smoke"

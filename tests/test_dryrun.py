"""The paper profile's dry run (pemscl.dryrun) and the paper-shape benchmark at tiny size.

One module fixture prepares a dry-run folder (stand-in data, tiny encoders) and trains every config
of the paper profile in it (two optimiser steps each, ~1-2 minutes on 2 cores); the tests check
those runs, the stand-in data, which encoder classes were trained and that the repository was not
written to. The notebooks then run on those runs through the pipeline's --dry-run (marked slow).
"""

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from train_helpers import bench_paper_shape
import torch

from pemscl import config as C
from pemscl import data as D
from pemscl import dryrun as DR
from pemscl import experiments as X
from pemscl import pipeline as P
from pemscl import runs as RS
from pemscl import tiny as TINY
from pemscl.model import resolve_encoder

REPO = Path(__file__).resolve().parents[1]
WATCHED = ("runs", "results", "figures", "README.md", "docs", "executed/paper", "data")
N_TRAIN = 8  # 2 optimiser steps x the paper presets' batch of 4
EXPECTED_FAMILY = {"roberta-large": "roberta", "microsoft/deberta-large": "deberta",
                   "microsoft/deberta-v2-xlarge": "deberta-v2"}


def repo_snapshot() -> dict:
    """(size, mtime) of every file under the repository paths a dry run must not write."""
    out = {}
    for name in WATCHED:
        p = REPO / name
        files = [p] if p.is_file() else (sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [])
        for f in files:
            st = f.stat()
            out[str(f.relative_to(REPO))] = (st.st_size, st.st_mtime_ns)
    return out


def trained_elsewhere() -> bool:
    """Another process (a developer's scheduler) is training in this checkout's runs/ now."""
    runs = REPO / "runs"
    return runs.is_dir() and any(RS.holder(d) not in (None, os.getpid()) for d in runs.iterdir() if d.is_dir())


def untouched(before: dict, skip_runs: bool) -> bool:
    """The repository as it was; runs/ and the run record are left out of the comparison while
    another process trains here (they change under it). CI trains nothing beside the tests, so
    there every path is compared."""
    keep = (lambda k: not (k.startswith("runs/") or k.startswith("results/runs.jsonl")
                           or k.startswith("results/.runs.jsonl"))) if skip_runs else (lambda k: True)
    after = repo_snapshot()
    return {k: v for k, v in after.items() if keep(k)} == {k: v for k, v in before.items() if keep(k)}


# --------------------------------------------------------------------------- without training
@pytest.mark.parametrize("name,family", [
    ("roberta-large", "roberta"), ("microsoft/deberta-large", "deberta"),
    ("microsoft/deberta-v2-xlarge", "deberta-v2"), ("microsoft/deberta-v3-large", "deberta-v2"),
    ("minilm", "bert"), ("bert-base-cased", "bert"), ("/some/folder/all-MiniLM-L6-v2", "bert")])
def test_encoder_family(name, family):
    assert TINY.encoder_family(name) == family


def test_shrink_of_the_paper_profile():
    p = X.PROFILES["paper"]
    s = X.shrink(p)
    assert (s.epochs, s.max_train_docs, s.original_max_train_docs, s.max_dev_docs, s.max_test_docs) == (1, N_TRAIN, N_TRAIN, 3, 3)
    assert s.seeds == (66, 67) and (s.claim_seeds, s.other_seeds) == (2, 1)
    assert s.table_seeds == {"headline": 2, "ablation": 2}
    assert s.overrides == {"emb_size": None, "dry_run": True}
    # the rest of the profile stands: regimes, presets, ratios, rows
    assert (s.preset, s.gold_regime, s.oog_regime, s.ogg_regime, s.docred_regime, s.docred_preset) == \
        ("paper-redocred", "redocred", "oog", "ogg", "docred", "paper-docred")
    assert s.ratios == p.ratios and s.faithfulness_rows == p.faithfulness_rows and not s.ogg_from_oog
    assert X.shrink(s) == s  # idempotent: get_profile may see an already shrunk Profile
    assert X.PROFILES["paper"].epochs is None  # the registered profile itself is unchanged


def test_dry_run_flag_changes_the_key():
    cfg = C.preset("paper-redocred")
    assert C.override(cfg, dry_run=True).key() != cfg.key()
    assert "dry_run" not in cfg.hashed() and C.override(cfg, dry_run=True).hashed()["dry_run"] is True


def test_profiles_on_the_mini_regimes_are_refused():
    with pytest.raises(ValueError, match="paper profile"):
        DR.check_profile("cpu")
    DR.check_profile("paper")


def test_makefile_passes_dry_run():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")

    def cmd(*args):
        out = subprocess.run(["make", "-n", "workbench", *args], cwd=REPO, capture_output=True, text=True, check=True)
        return [line for line in out.stdout.splitlines() if "pemscl.pipeline" in line]

    assert cmd("PROFILE=paper", "DRY_RUN=1")[-1].endswith("-m pemscl.pipeline --profile paper --dry-run")
    assert cmd("PROFILE=paper")[-1].endswith("-m pemscl.pipeline --profile paper")


# --------------------------------------------------------------------------- the dry run
@pytest.fixture(scope="module")
def dry(tmp_path_factory, data_dir):
    busy = trained_elsewhere()
    before = repo_snapshot()
    real = X.all_configs("paper")  # outside the dry run: the configs a GPU would train
    dr = DR.prepare(tmp_path_factory.mktemp("dryrun") / "root", "paper", source=data_dir)
    with DR.activated(dr):
        cfgs = DR.dry_configs("paper")
        runs = DR.train("paper", progress=False)
    assert os.environ.get(DR.ENV) is None  # the environment is restored
    return {"dr": dr, "real": real, "cfgs": cfgs, "runs": runs, "before": before, "busy": busy}


def test_stand_in_data_verifies_and_loads_as_the_full_regimes(dry):
    root = dry["dr"].data
    rows, ok = D.check(root)
    assert ok and {r["file"] for r in rows if r["status"] == "ok"} == {
        "redocred/train_revised.json", "redocred/dev_revised.json", "redocred/test_revised.json",
        "docred/train_annotated.json", "docred/dev.json", "docred/test.json", "docred/train_annotated.subset.json",
        "docred/dev.subset.json", "meta/rel2id.json", "meta/rel_info.json"}
    sizes = lambda r: (len(r.train), len(r.dev), len(r.test))  # noqa: E731
    red, doc, oog, ogg = (D.load_regime(n, root) for n in ("redocred", "docred", "oog", "ogg"))
    assert sizes(red) == sizes(doc) == sizes(oog) == sizes(ogg) == (N_TRAIN, 3, 3)
    assert not any(d.get("labels") for d in doc.test)  # DocRED test: no public labels
    # OOG pairs DocRED dev with Re-DocRED dev as on the real files: same documents, other labels
    assert [d["title"] for d in oog.dev] == [d["title"] for d in oog.dev_gold] == [d["title"] for d in red.dev]
    assert [D._entities_key(d) for d in oog.dev] == [D._entities_key(d) for d in oog.dev_gold]
    assert not {d["title"] for d in red.train} & {d["title"] for d in red.dev}
    # the documents are real ones from the source folder
    src = {d["title"] for d in D.load_docs("redocred/dev_revised.json", dry["dr"].source)}
    assert {d["title"] for d in red.train + red.dev} <= src


def _shrunk(cfg):
    return dataclasses.replace(cfg, epochs=1, max_train_docs=N_TRAIN, max_dev_docs=3, max_test_docs=3, emb_size=None,
                               dry_run=True)


def test_every_paper_config_trained(dry):
    dr, real, cfgs = dry["dr"], dry["real"], dry["cfgs"]
    extra = DR.extra_configs("paper")  # outside the dry run: the released-encoder row at full size
    assert [c.encoder for c in extra] == ["microsoft/deberta-v2-xlarge"]
    # every paper config of the first two seeds, shrunk, is a dry config; nothing else but the extra row
    expected = {_shrunk(c).key() for c in real if c.seed in (66, 67)} | {_shrunk(c).key() for c in extra}
    # 48 of the paper's tables and sweeps, 11 that only the leaderboard trains (AFL and SSR-PU in both
    # regimes, ATL, ATL+NS and NCRL on original labels at the seeds Table 4 leaves out), the extra row
    assert {c.key() for c in cfgs} == expected and len(cfgs) == len(expected) == 60
    # every row of every experiment is covered
    assert {(c.label, c.regime) for c in real} <= {(c.label, c.regime) for c in cfgs}
    real_keys = {c.key() for c in real}
    folders = sorted(p for p in dr.runs.iterdir() if p.is_dir())
    assert len(folders) == len(cfgs)
    for cfg in cfgs:
        assert cfg.dry_run and cfg.key() not in real_keys
        assert dataclasses.replace(cfg, dry_run=False).key() != cfg.key()
        (folder,) = [p for p in folders if p.name.endswith(f"-{cfg.key()}")]
        for f in ("DONE", "config.json", "scores.json", "history.json", "model.pt", "predictions_dev.json"):
            assert (folder / f).is_file(), (folder.name, f)
        saved = json.loads((folder / "config.json").read_text())
        assert saved["dry_run"] is True and saved["epochs"] == 1 and saved["max_train_docs"] == N_TRAIN
        scores = json.loads((folder / "scores.json").read_text())
        assert scores["n_docs"]["train"] == N_TRAIN and scores["n_docs"]["dev"] == 3
        assert scores["epochs_run"] == 1 and 0.0 <= scores["dev"]["f1"] <= 1.0
        assert ("test" in scores) == cfg.eval_test
    records = [json.loads(line) for line in (dr.results / "runs.jsonl").read_text().splitlines() if line.strip()]
    assert len(records) == len(cfgs)


def _plm_signature(state: dict) -> dict:
    return {k: tuple(v.shape) for k, v in state.items()}


def test_the_paper_encoder_classes_were_trained(dry):
    from transformers import AutoModel

    dr = dry["dr"]
    families = {}
    for fam in ("bert", "roberta", "deberta", "deberta-v2"):
        plm = AutoModel.from_pretrained(dr.encoders / fam)
        families[fam] = {f"plm.{n}": tuple(p.shape) for n, p in plm.named_parameters() if not n.startswith("pooler.")}
    assert len({tuple(sorted(s.items())) for s in families.values()}) == 4  # the signatures tell families apart
    used = set()
    for cfg in dry["cfgs"]:
        (folder,) = dr.runs.glob(f"*-{cfg.key()}")
        state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        sig = _plm_signature({k: v for k, v in state.items() if k.startswith("plm.")})
        (fam,) = [f for f, s in families.items() if s == sig]
        assert fam == EXPECTED_FAMILY[cfg.encoder], (cfg.label, cfg.encoder, fam)
        used.add(fam)
    assert used == {"roberta", "deberta", "deberta-v2"}


def test_resolve_encoder_maps_names_only_under_a_dry_run(dry):
    dr = dry["dr"]
    assert resolve_encoder("roberta-large") == "roberta-large"
    with DR.activated(dr):
        assert resolve_encoder("roberta-large") == str(dr.encoders / "roberta")
        assert resolve_encoder("microsoft/deberta-v2-xlarge") == str(dr.encoders / "deberta-v2")
        assert resolve_encoder("minilm") == str(dr.encoders / "bert")
        assert resolve_encoder(str(dr.encoders / "deberta")) == str(dr.encoders / "deberta")  # already tiny
        assert X.get_profile("paper") == X.shrink(X.PROFILES["paper"])
    assert X.get_profile("paper") is X.PROFILES["paper"]


def test_training_left_the_repository_alone(dry):
    assert untouched(dry["before"], dry["busy"] or trained_elsewhere())


@pytest.mark.slow
def test_pipeline_dry_run_executes_the_notebooks(dry, capsys):
    dr = dry["dr"]
    n_runs = len(list(dr.runs.iterdir()))
    # the command line of `make workbench PROFILE=paper DRY_RUN=1`, resumed in the fixture's folder:
    # the runs are found, the notebooks execute on them
    assert P.main(["--profile", "paper", "--dry-run", "--dry-run-root", str(dr.root)]) == 0
    printed = capsys.readouterr().out
    assert "nothing in the repository was written" in printed and str(dr.runs) in printed
    assert len(list(dr.runs.iterdir())) == n_runs  # nothing retrained
    executed = sorted(p.name for p in dr.executed.glob("*.ipynb"))
    assert executed == [p.name for p in P.notebooks()]
    assert json.loads((dr.executed / "timings.json").read_text())["profile"] == "paper"
    assert json.loads((dr.executed / "00_data.json").read_text())["all_files_ok"] is True
    assert set(json.loads((dr.executed / "01_regimes.json").read_text())["regimes"]) >= {"redocred", "docred", "oog", "ogg"}
    results = json.loads((dr.results / "results.json").read_text())
    assert results["tables"]["profile"] == "paper" and not any(results["tables"]["missing"].values())
    assert [r["label"] for r in results["tables"]["table3"]] == ["PEMSCL", "no EM", "no SCL", "no EM, no SCL"]
    assert "Results (profile `paper`)" in (dr.readme.parent / "docs" / "results.md").read_text()
    assert "Profile `paper`" in dr.readme.read_text()  # the README copy's summary
    assert (dr.figures / "07_claims_forest.html").is_file()
    assert os.environ.get(DR.ENV) is None
    assert untouched(dry["before"], dry["busy"] or trained_elsewhere())


# --------------------------------------------------------------------------- the benchmark
def _bench():
    return bench_paper_shape()


def roberta_parameters(layers, h, inter, vocab=50265, positions=514, emb=768, block=64, classes=97):
    """RobertaModel without pooler + ATLOP head, counted by hand."""
    embeddings = vocab * h + positions * h + 1 * h + 2 * h  # words, positions, one token type, LayerNorm
    layer = 4 * (h * h + h) + 2 * h + (h * inter + inter) + (inter * h + h) + 2 * h
    head = 2 * (2 * h * emb + emb) + emb * block * classes + classes
    return embeddings + layers * layer, head


def test_bench_paper_shape_at_tiny_size(tmp_path, monkeypatch):
    monkeypatch.setenv("PEMSCL_RESULTS", str(tmp_path))
    res = _bench().main(["--layers", "2", "--hidden", "64", "--batch", "1", "--warmup", "0", "--device", "cpu"])
    saved = json.loads((tmp_path / "bench_paper_shape.json").read_text())
    assert saved["parameters"] == res["parameters"]
    enc, head = roberta_parameters(2, 64, 256)
    assert res["parameters"] == {"encoder": enc, "head": head, "total": enc + head}  # 3,350,016 + 4,965,985
    assert res["encoder"]["class"] == "RobertaModel" and res["encoder"]["heads"] == 1
    assert res["precision"] == "bfloat16" and res["batch"] == 1
    assert res["windows_per_doc"] == 2 and res["pairs_per_doc"] == 30 * 29  # two 512-token windows, all pairs
    assert list(res["step_seconds"]) == ["encoder", "pooling", "head", "loss", "backward_optimizer"]
    assert all(v > 0 for v in res["step_seconds"].values())
    assert res["seconds_per_doc"] == pytest.approx(sum(res["step_seconds"].values()))
    assert res["peak_memory"]["kind"].startswith("peak RSS") and res["peak_memory"]["mb"] > 0
    est = res["memory_estimate"]
    assert est["estimate"] is True and est["fixed_bytes"] == 16 * (enc + head)
    a1, a2 = est["measured_activation_bytes"]["1"], est["measured_activation_bytes"]["2"]
    assert est["per_doc_bytes"] == a2 - a1 > 0
    # the head's group outer product alone keeps 870 pairs x 768 x 64 bf16 values per document
    assert est["per_doc_bytes"] > 870 * 768 * 64 * 2
    for row in est["table"]:
        assert row["bytes"] == est["fixed_bytes"] + est["intercept_bytes"] + row["batch"] * est["per_doc_bytes"]
    assert [r["batch"] for r in est["table"]] == [1, 2, 4, 8, 16]


def test_bench_synthetic_document_shape():
    import numpy as np

    b = _bench()
    f = b.synthetic_feature(b.DocShape(tokens=1000, entities=30, mentions=45, facts=36), 50265, np.random.default_rng(0))
    assert len(f["input_ids"]) == 1000 and f["input_ids"][0] == 0 and f["input_ids"][-1] == 2
    assert all(5 <= i < 50265 for i in f["input_ids"][1:-1])
    assert len(f["entity_pos"]) == 30 and all(f["entity_pos"]) and sum(map(len, f["entity_pos"])) == 45
    assert len(f["hts"]) == 870 and f["labels"].shape == (870, 97)
    assert f["labels"][:, 1:].sum() == 36 and (f["labels"][:, 0] == (f["labels"][:, 1:].sum(1) == 0)).all()

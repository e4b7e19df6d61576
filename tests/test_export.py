"""`python -m pemscl.export`: a run folder to a self-contained folder, and loading it back.

One module-scoped smoke run (MiniLM, top layer fine-tuned, fp32 on the CPU) is exported once; the
tests load the export in a fresh process with the run folder moved away and the data folder
unset, and compare its predictions with the run's own model. A dry run's tiny random-init
encoder is exported the same way.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pemscl import casestudy as CS
from pemscl import cli
from pemscl import config as CF
from pemscl import data as D
from pemscl import export as X
from pemscl import losses as LS
from pemscl import predict as P
from pemscl import train as T

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-runs")
    cfg = CF.preset("smoke", precision="fp32", device="cpu", max_train_docs=4, label="test-export")
    run = T.train(cfg, root=root, progress=False)
    out = tmp_path_factory.mktemp("exports") / "smoke-export"
    assert X.main([str(run.dir), str(out)]) == out
    return run, out


@pytest.fixture(scope="module")
def new_docs():
    return D.load_regime("redocred-mini").test[2:5]  # documents the smoke run never saw


def test_export_folder_holds_safetensors_json_and_the_merged_encoder(exported):
    run, out = exported
    for name in (X.MARKER, "README.md", "head.safetensors", "model_config.json", "rel2id.json", "config.json",
                 "scores.json", "history.json", "encoder/config.json", "encoder/model.safetensors",
                 "encoder/tokenizer_config.json"):
        assert (out / name).is_file(), name
    # nothing to unpickle anywhere in the folder
    assert not [p for p in out.rglob("*") if p.suffix in (".pt", ".bin", ".pkl", ".pickle", ".pth")]
    manifest = json.loads((out / X.MARKER).read_text())
    assert manifest["format_version"] == X.FORMAT_VERSION and manifest["config_key"] == run.config.key()
    assert manifest["threshold"] == run.scores["threshold"] and manifest["num_classes"] == 97
    assert json.loads((out / "model_config.json").read_text())["encoder"] == "encoder"  # relative: movable
    assert json.loads((out / "rel2id.json").read_text()) == json.loads((run.dir / "rel2id.json").read_text())
    assert json.loads((out / "config.json").read_text()) == json.loads((run.dir / "config.json").read_text())
    trained = torch.load(run.dir / "model.pt", weights_only=True)
    head = load_file(out / "head.safetensors")
    assert set(head) == {k for k in trained if not k.startswith("plm.")}
    # the smoke run fine-tuned the top encoder layer: the exported encoder holds those weights,
    # not the pretrained ones
    encoder = load_file(out / "encoder" / "model.safetensors")
    tuned = [k for k in trained if k.startswith("plm.")]
    assert tuned and all(k.startswith("plm.encoder.layer.5.") for k in tuned)
    for k in tuned:
        assert torch.equal(encoder[k[len("plm."):]], trained[k]), k
    for k in head:
        assert torch.equal(head[k], trained[k]), k


LOAD_IN_FRESH_PROCESS = r"""
import json, pickle, sys, torch
from pemscl import predict as P, train as T

def refuse(*a, **k):
    raise AssertionError("loading an exported folder must not unpickle anything")

real = torch.load, pickle.load, pickle.loads
torch.load = pickle.load = pickle.loads = refuse
model, cfg = T.load(sys.argv[1], device="cpu")
torch.load, pickle.load, pickle.loads = real
docs = json.load(open(sys.argv[2]))
preds, out, _ = T.predict(model, docs, return_logits=True, precision="fp32")
forced = T.predict(model, docs, top_k=2, threshold=0.0, precision="fp32")
cli = P.main([sys.argv[1], sys.argv[2], "--out", sys.argv[3] + ".cli.json", "--precision", "fp32", "--device", "cpu"])
json.dump({"preds": preds, "forced": forced, "cli": cli, "logits": out["logits"].tolist(), "label": cfg.label,
           "encoder": model.config.encoder}, open(sys.argv[3], "w"), default=int)
"""


def test_export_loads_in_a_fresh_process_without_run_or_data_and_predicts_the_same(exported, new_docs, tmp_path):
    run, out = exported
    model, _ = T.load(run.dir, device="cpu")
    preds, res, _ = T.predict(model, new_docs, return_logits=True, precision="fp32")
    forced = T.predict(model, new_docs, top_k=2, threshold=0.0, precision="fp32")  # two facts per pair
    docs_path, result = tmp_path / "docs.json", tmp_path / "result.json"
    docs_path.write_text(json.dumps(new_docs))
    moved = tmp_path / "moved" / run.dir.name
    moved.parent.mkdir()
    shutil.move(run.dir, moved)  # the run folder is gone while the export loads
    # the copy of the export somewhere else: nothing in it points back to where it was written
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(out, elsewhere)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PEMSCL_DATA": str(tmp_path / "no-data"), "PEMSCL_RUNS": str(tmp_path / "no-runs"),
           "PEMSCL_CACHE": str(tmp_path / "cache")}
    env.pop("PEMSCL_DRY_RUN", None)
    try:
        done = subprocess.run([sys.executable, "-c", LOAD_IN_FRESH_PROCESS, str(elsewhere), str(docs_path),
                               str(result)], env=env, capture_output=True, text=True, timeout=600)
    finally:
        shutil.move(moved, run.dir)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(result.read_text())
    assert got["preds"] == preds and got["cli"] == preds
    assert got["forced"] == forced and len(forced) == 2 * sum(len(d["vertexSet"]) * (len(d["vertexSet"]) - 1)
                                                           for d in new_docs)
    np.testing.assert_allclose(np.array(got["logits"]), res["logits"].numpy(), rtol=0, atol=1e-5)
    assert got["label"] == "test-export" and got["encoder"] == str((elsewhere / "encoder").resolve())


def test_case_study_takes_an_export_beside_a_run_folder(exported, new_docs):
    run, out = exported
    study = CS.CaseStudy(out, run.dir, new_docs[:1])
    entry = study.doc(0)
    np.testing.assert_allclose(entry["logits"][0], entry["logits"][1], rtol=0, atol=1e-5)
    assert study.names == ["test-export (A)", "test-export (B)"]


def test_model_card_names_scores_intervals_command_version_and_licences(exported):
    run, out = exported
    card = (out / "README.md").read_text()
    for split in ("dev", "test"):
        f1 = run.scores[split]["f1"]
        (point, lo, hi) = X.score_intervals(run.scores, split)["f1"]
        assert point == pytest.approx(f1) and lo <= f1 <= hi
        assert f"| {split} | 2 |" in card and f"{100 * f1:.2f} ({100 * lo:.2f}–{100 * hi:.2f})" in card
    assert "Apache-2.0" in card and "all-MiniLM-L6-v2" in card and "Re-DocRED" in card and "MIT" in card
    assert "pemscl 0.1.0" in card and run.config.key() in card and "redocred-mini" in card
    # the command in the card trains exactly this run (same config, same key)
    cmd = next(line for line in card.splitlines() if line.startswith("python -m pemscl.train"))
    assert cmd == X.train_command(run.config)
    _, cfg = cli.parse(shlex.split(cmd)[3:])
    assert cfg == run.config and cfg.key() == run.config.key()


def test_train_command_round_trips_loss_fields_tuples_and_nones():
    cfg = CF.preset("cpu", loss=LS.loss_spec("pemscl-ns"), loss_tau=0.5, select=("dev", "dev_gold"), track=(),
                   top_k=None, emb_size=128, precision="bf16", label="x y")
    args = shlex.split(X.train_command(cfg))[3:]
    assert args[:2] == ["--preset", "cpu"]
    assert cli.parse(args)[1] == cfg


def test_export_errors_name_the_problem(exported, tmp_path, capsys, monkeypatch):
    run, out = exported

    def fails(argv, *expected):
        with pytest.raises(SystemExit) as e:
            X.main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert e.value.code == 2, err
        for text in expected:
            assert text in err, err

    fails([tmp_path / "nowhere", tmp_path / "o"], "no such run folder")
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(run.dir / "config.json", partial)
    fails([partial, tmp_path / "o"], "not a complete run folder", "DONE", "scores.json", "history.json", "model.pt",
          "save_model=False")
    fails([out, tmp_path / "o"], "is an exported folder already")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    fails([run.dir, busy], "not an earlier export")
    assert (busy / "notes.txt").read_text() == "mine"
    fails([run.dir, out], "--force")
    fails([run.dir, run.dir / "inside"], "outside the run folder")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    fails([run.dir, tmp_path / "hub", "--push-to-hub", "me/model"], "needs the huggingface_hub package")
    assert not (tmp_path / "hub").exists()
    with pytest.raises(SystemExit):
        X.main(["--help"])
    assert "self-contained folder" in capsys.readouterr().out


def test_broken_exports_are_refused_when_loading(exported, tmp_path, capsys):
    run, out = exported
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(out / X.MARKER, broken)
    with pytest.raises(X.ExportError, match="incomplete export: missing encoder, head.safetensors"):
        T.load(broken)
    docs = tmp_path / "docs.json"
    docs.write_text(json.dumps(D.load_regime("redocred-mini").test[:1]))
    with pytest.raises(SystemExit) as e:
        P.main([str(broken), str(docs)])
    assert e.value.code == 2 and "incomplete export" in capsys.readouterr().err
    manifest = json.loads((out / X.MARKER).read_text())
    (broken / X.MARKER).write_text(json.dumps({**manifest, "format_version": X.FORMAT_VERSION + 1}))
    with pytest.raises(X.ExportError, match="upgrade"):
        X.check_export(broken)
    with pytest.raises(X.ExportError, match="not an exported folder"):
        X.check_export(run.dir)


def test_force_replaces_an_earlier_export(exported, tmp_path):
    run, out = exported
    again = tmp_path / "again"
    X.export_run(run.dir, again)
    (again / "stale.txt").write_text("from before")
    X.main([str(run.dir), str(again), "--force"])
    assert X.is_export(again) and not (again / "stale.txt").exists()
    assert load_file(again / "head.safetensors").keys() == load_file(out / "head.safetensors").keys()


def test_a_dry_runs_tiny_encoder_is_exported_and_loads_under_the_dry_run_too(tmp_path, monkeypatch, new_docs):
    from pemscl import tiny

    root = tmp_path / "dry"
    tiny.make_tiny_encoder("roberta", root / "encoders" / "roberta")  # what the dry run builds for roberta-large
    monkeypatch.setenv(tiny.DRY_RUN_ENV, str(root))
    cfg = CF.preset("smoke", encoder="roberta-large", dry_run=True, precision="fp32", device="cpu",
                   label="test-dry-export")
    run = T.train(cfg, root=root / "runs", progress=False)
    model, _ = T.load(run.dir, device="cpu")
    _, want, _ = T.predict(model, new_docs, return_logits=True, precision="fp32")
    monkeypatch.delenv(tiny.DRY_RUN_ENV)
    # outside the dry run the config's "roberta-large" is not what trained: the tiny folder is found
    # beside the run's runs/ folder
    out = X.export_run(run.dir, tmp_path / "dry-export")
    card = (out / "README.md").read_text()
    assert "**Dry run**" in card and "tiny random-init stand-in for roberta-large" in card
    manifest = json.loads((out / X.MARKER).read_text())
    assert manifest["dry_run"] and manifest["encoder"]["model_type"] == "roberta"
    monkeypatch.setenv(tiny.DRY_RUN_ENV, str(root))  # the export's encoder is not swapped for a stand-in
    loaded, _ = T.load(out, device="cpu")
    assert loaded.sep_repeat == 2  # RoBERTa's window convention survives the export
    _, got, _ = T.predict(loaded, new_docs, return_logits=True, precision="fp32")
    np.testing.assert_allclose(got["logits"].numpy(), want["logits"].numpy(), rtol=0, atol=1e-5)
    # without the dry run's encoders, the export says why it cannot go on
    shutil.rmtree(root / "encoders")
    monkeypatch.delenv(tiny.DRY_RUN_ENV)
    with pytest.raises(X.ExportError, match="is a dry run: it trained a tiny random-init stand-in"):
        X.export_run(run.dir, tmp_path / "dry-export-2")
    assert not (tmp_path / "dry-export-2").exists()


def test_notebook_06_compares_an_export_with_a_run_folder(exported, tmp_path):
    from pemscl import pipeline

    run, out = exported
    pipeline.run_pipeline("smoke", only=["06"], out=tmp_path / "executed",
                          parameters={"models": [str(out), str(run.dir)]})
    summary = json.loads((tmp_path / "executed" / "06_case_study.json").read_text())
    assert summary["runs"] == [str(out), str(run.dir)]
    a, b = summary["example"]["runs"]
    assert a["pred"] == b["pred"] and a["na"] == pytest.approx(b["na"], abs=1e-5)


def doc_commands(text: str) -> list[tuple[str, str]]:
    """("bash", line) for every line of the page's bash blocks, ("python", block) for its python blocks."""
    out, lang, block = [], None, []
    for line in text.splitlines():
        if line.startswith("```"):
            if lang is None and line[3:].strip() in ("bash", "python"):
                lang, block = line[3:].strip(), []
            elif lang is not None:
                out += [("bash", b) for b in block if b.strip()] if lang == "bash" else [("python", "\n".join(block))]
                lang = None
        elif lang is not None:
            block.append(line)
    return out


@pytest.mark.slow
def test_every_command_of_the_export_page_runs_as_written(tmp_path):
    commands = doc_commands((REPO / "docs" / "export.md").read_text())
    assert [kind for kind, _ in commands] == ["bash", "bash", "python", "bash", "bash"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PEMSCL_CACHE": str(tmp_path / "cache"), "PEMSCL_RESULTS": str(tmp_path / "results")}
    env.pop("PEMSCL_DRY_RUN", None)
    for kind, text in commands:
        argv = ["bash", "-c", text] if kind == "bash" else ["python", "-c", text]
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{text}\n{done.stderr[-3000:]}"
    assert X.is_export(tmp_path / "demo" / "export")
    assert isinstance(json.loads((tmp_path / "demo" / "predictions.json").read_text()), list)

"""The command lines: `python -m pemscl.train` (options generated from the config dataclasses),
`python -m pemscl.predict` and `python -m pemscl.evaluate`.

One module-scoped smoke run trained through `cli.main` serves the predict tests; a user loss
imported with --import trains through the same entry point.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from pemscl import cli
from pemscl import config as CF
from pemscl import data as D
from pemscl import evaluate as E
from pemscl import predict as P
from pemscl import train as T
from pemscl.config import TrainConfig, preset
from pemscl.losses import LOSS_PRESETS, LossSpec, loss_spec, registered_losses, unregister_loss

SMOKE = ["--preset", "smoke", "--precision", "fp32", "--no-progress"]


# --------------------------------------------------------------------------- parsing
def test_every_config_field_is_an_option():
    dests = {a.dest for a in cli.build_parser()._actions}
    assert {f.name for f in dataclasses.fields(TrainConfig)} - {"loss"} <= dests
    assert {f"loss_{f.name}" for f in dataclasses.fields(LossSpec)} <= dests


def test_parsed_options_build_the_preset_config_with_overrides():
    _, cfg = cli.parse(["--preset", "smoke", "--loss", "pemscl-ns", "--epochs", "3", "--loss-tau", "0.5",
                        "--select", "dev,dev_gold", "--track", "test", "--patience", "none", "--max-train-docs", "6",
                        "--eval-test", "false", "--lr-head", "3e-4", "--loss-params", "{}", "--label", "x y"])
    expected = preset("smoke", loss=loss_spec("pemscl-ns"), epochs=3, loss_tau=0.5, select=("dev", "dev_gold"),
                      track=("test",), patience=None, max_train_docs=6, eval_test=False, lr_head=3e-4, label="x y")
    assert cfg == expected and cfg.key() == expected.key()
    # the values themselves, not only their agreement with preset(): NS ratio from --loss, tau overridden
    assert (cfg.loss.neg_sample_ratio, cfg.loss.tau, cfg.loss.scl_weight) == (0.1, 0.5, 0.1)
    assert (cfg.epochs, cfg.batch_size, cfg.train_layers, cfg.lr_head) == (3, 2, 1, 3e-4)
    # no options: the cpu preset, in the precision this machine measures fastest (issue 25); with
    # --precision, what it says
    assert cli.parse([])[1] == preset("cpu", precision="auto")
    assert cli.parse(["--precision", "bf16"])[1] == preset("cpu")
    # a tuple emptied, a None-able field set, a loss field set without --loss, JSON params
    _, c2 = cli.parse(["--track", "", "--top-k", "4", "--loss-neg-sample-ratio", "0.3",
                       "--loss-kind", "atl", "--loss-params", '{"k": 1}', "--loss-entropy", "no"])
    assert (c2.track, c2.top_k, c2.loss.neg_sample_ratio) == ((), 4, 0.3)
    assert (c2.loss.kind, c2.loss.params, c2.loss.entropy) == ("atl", {"k": 1}, False)


@pytest.mark.parametrize("argv", [["--loss", "no-such-loss"], ["--epochs", "two"], ["--eval-test", "maybe"],
                                  ["--loss-params", "[1, 2]"], ["--preset", "gpu-please"], ["--learning-rate", "1"]])
def test_bad_options_exit_with_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.parse(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def test_print_config_prints_config_and_key(capsys):
    assert cli.main(["--preset", "smoke", "--loss", "atl", "--epochs", "2", "--print-config"]) is None
    out = json.loads(capsys.readouterr().out)
    expected = preset("smoke", loss=loss_spec("atl"), epochs=2)
    assert out["key"] == expected.key() and out["folder"] == expected.folder_name()
    assert out["config"]["loss"]["kind"] == "atl" and out["config"]["epochs"] == 2
    assert CF.config_from_dict(out["config"]) == expected  # the printed config round-trips


def test_help_lists_presets_and_losses(capsys):
    with pytest.raises(SystemExit) as e:
        cli.parse(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("paper-redocred", "paper-docred", "cpu", "smoke", "pemscl-ns", "atl", "ncrl", "--loss-tau",
                 "--max-train-docs", "--record", "--import"):
        assert name in out, name


# --------------------------------------------------------------------------- a run through main()
@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-runs")
    results = tmp_path_factory.mktemp("cli-results")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PEMSCL_RESULTS", str(results))
        run = cli.main([*SMOKE, "--root", str(root), "--label", "cli-smoke"])
        recorded_without_flag = (results / "runs.jsonl").exists()
        # the same command again reuses the complete run; --record merges it into the record
        again = cli.main([*SMOKE, "--root", str(root), "--label", "cli-smoke", "--record"])
        lines = (results / "runs.jsonl").read_text().splitlines()
    return run, again, root, recorded_without_flag, lines


def test_training_through_main_writes_a_run_and_records_only_when_asked(cli_run):
    run, again, root, recorded_without_flag, lines = cli_run
    assert run.dir.parent == root and run.config == preset("smoke", precision="fp32", label="cli-smoke")
    for name in ("config.json", "history.json", "scores.json", "predictions_dev.json", "model.pt", "DONE"):
        assert (run.dir / name).exists(), name
    assert len(run.history) == 1 and "f1" in run.scores["dev"]
    assert not recorded_without_flag
    assert again.dir == run.dir and again.scores == run.scores
    assert len(lines) == 1 and json.loads(lines[0])["key"] == run.config.key()


def test_main_prints_the_run_folder_and_f1(cli_run, capsys):
    run, _, root, _, _ = cli_run
    cli.main([*SMOKE, "--root", str(root), "--label", "cli-smoke"])  # reused: no training
    out = capsys.readouterr().out
    assert f"run: {run.dir}" in out
    assert f"dev F1 {100 * run.scores['dev']['f1']:.2f}" in out
    assert f"test F1 {100 * run.scores['test']['f1']:.2f}" in out


# --------------------------------------------------------------------------- benchmarks/probe_decision.py
def test_best_shift_takes_the_highest_f1_and_on_a_tie_the_shift_nearest_zero():
    from train_helpers import benchmark_script

    pd = benchmark_script("probe_decision")
    rows = [{"shift": -1.0, "f1": 0.5}, {"shift": 0.5, "f1": 0.5}, {"shift": 1.0, "f1": 0.4}, {"shift": 0.0, "f1": 0.3}]
    assert pd.best_shift(rows)["shift"] == 0.5
    assert pd.best_shift(rows[2:])["shift"] == 1.0
    assert 0.0 in pd.SHIFTS and min(pd.SHIFTS) < 0 < max(pd.SHIFTS)


def test_probe_decision_flags_a_shift_chosen_on_the_grids_edge_for_each_selection_split():
    from train_helpers import benchmark_script

    pd = benchmark_script("probe_decision")
    lo, hi = min(pd.SHIFTS), max(pd.SHIFTS)
    row = {"select": "dev", "chosen_shift": 0.08, "beside": {"dev_gold": {"chosen_shift": lo}}}
    assert pd.at_edge(row) == [("dev_gold", lo)]  # the gold-dev choice may lie beyond the grid, dev's does not
    assert pd.at_edge({**row, "chosen_shift": hi}) == [("dev", hi), ("dev_gold", lo)]
    assert pd.at_edge({**row, "beside": {}}) == []
    assert pd.at_edge(row, shifts=(-8.0, 0.0, 8.0)) == []  # a wider grid: no longer its edge


def test_probe_decision_reproduces_the_recorded_dev_f1_at_shift_zero_and_chooses_on_dev(cli_run, tmp_path,
                                                                                          capsys):
    from train_helpers import benchmark_script

    pd = benchmark_script("probe_decision")
    run, *_ = cli_run
    out = tmp_path / "probe.json"
    results = pd.main([str(run.dir), "--out", str(out)])
    row = results[run.config.key()]
    assert json.loads(out.read_text()) == results and row["select"] == "dev" and row["loss"] == run.config.loss.kind
    assert row["dev_f1_at_0"] == pytest.approx(run.scores["dev"]["f1"], abs=1e-3)  # the run as recorded
    assert row["test_f1_at_0"] == pytest.approx(run.scores["test"]["f1"], abs=1e-3)
    dev = row["curves"]["dev"]
    # the curve is counted on the pairs' label rows, the chosen points scored the official way: the two agree
    at0 = next(r for r in dev if r["shift"] == 0.0)
    assert at0["f1"] == pytest.approx(row["dev_f1_at_0"], abs=1e-9)
    assert row["dev_f1_chosen"] == pytest.approx(max(r["f1"] for r in dev), abs=1e-9)
    assert row["dev_f1_chosen"] >= row["dev_f1_at_0"]
    chosen = next(r for r in row["curves"]["test"] if r["shift"] == row["chosen_shift"])
    assert row["test_f1_chosen"] == pytest.approx(chosen["f1"], abs=1e-9)  # test read at dev's choice
    # a higher threshold never predicts more
    assert all(a["n_pred"] >= b["n_pred"] for a, b in zip(dev, dev[1:]))
    assert row["beside"] == {}  # one selection dev set: nothing beside
    assert "| run | seed | shift chosen on dev |" in capsys.readouterr().out
    # a threshold far above every score predicts nothing, one far below predicts every relation of every pair
    model, cfg = T.load(run)
    splits = T.prepare(cfg, progress=False)
    logits = T.infer(model, splits.features["dev"], batch_size=2)["logits"]
    far = pd.sweep(logits, splits.features["dev"], splits.docs["dev"], splits.id2rel, shifts=(-1e4, 1e4))
    assert far[1]["n_pred"] == 0 and far[1]["f1"] == 0.0
    assert far[0]["n_pred"] == logits.shape[0] * (logits.shape[1] - 1)


def test_probe_decision_reads_test_at_the_shift_a_second_selection_dev_set_chooses(cli_run, tmp_path, capsys):
    """A run on original labels selects on original dev and has gold dev beside; the smoke
    regime has no gold dev, so a copy of the smoke run names test as its second selection split:
    the mechanics are the same (its shift chosen on that split, test read there)."""
    import shutil

    from train_helpers import benchmark_script

    pd = benchmark_script("probe_decision")
    run, *_ = cli_run
    copy = tmp_path / run.dir.name
    shutil.copytree(run.dir, copy)
    cfg = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**cfg, "select": ["dev", "test"]}))
    results = pd.main([str(copy), "--out", str(tmp_path / "probe.json")])
    (row,) = results.values()
    assert row["select"] == "dev" and list(row["beside"]) == ["test"]
    b, test = row["beside"]["test"], row["curves"]["test"]
    best = max(test, key=lambda r: (r["f1"], -abs(r["shift"])))
    assert b["chosen_shift"] == best["shift"]
    assert b["test_f1_chosen"] == pytest.approx(best["f1"], abs=1e-9)  # the official score agrees with the curve
    assert b["dev_f1_at_0"] == pytest.approx(row["test_f1_at_0"], abs=1e-9)
    assert b["test_f1_chosen"] >= row["test_f1_chosen"]  # chosen on test itself: never below dev's choice there
    assert f"| {b['chosen_shift']:+.2f}: {100 * b['test_f1_chosen']:.1f} |" in capsys.readouterr().out


# --------------------------------------------------------------------------- predict
@pytest.fixture(scope="module")
def new_docs(tmp_path_factory):
    docs = D.load_regime("redocred-mini").test[2:4]  # documents the smoke run never saw
    path = tmp_path_factory.mktemp("cli-docs") / "docs.json"
    path.write_text(json.dumps(docs))
    return docs, path


def test_predict_cli_writes_official_predictions(cli_run, new_docs, tmp_path, capsys):
    run, *_ = cli_run
    docs, path = new_docs
    out = tmp_path / "pred.json"
    # threshold 0 predicts every relation of every pair; top-k 1 keeps one: one fact per ordered entity pair
    preds = P.main([str(run.dir), str(path), "--out", str(out), "--threshold", "0", "--top-k", "1",
                    "--precision", "fp32"])
    n_pairs = sum(len(d["vertexSet"]) * (len(d["vertexSet"]) - 1) for d in docs)
    written = E.read_predictions(out)
    assert len(written) == len(preds) == n_pairs
    assert {(p["title"], p["h_idx"], p["t_idx"]) for p in written} == \
        {(d["title"], h, t) for d in docs for h in range(len(d["vertexSet"]))
         for t in range(len(d["vertexSet"])) if h != t}
    assert f"{n_pairs} relation facts in 2 documents" in capsys.readouterr().out
    # the run's own decision rule gives what train.predict gives on the loaded model
    model, _ = T.load(run)
    default = P.main([str(run.dir), str(path), "--out", str(tmp_path / "p2.json"), "--precision", "fp32"])
    assert default == T.predict(model, docs, precision="fp32")


def test_predict_cli_errors_name_the_problem(cli_run, new_docs, tmp_path, capsys):
    run, *_ = cli_run
    docs, path = new_docs
    no_model = tmp_path / "no-model"
    shutil.copytree(run.dir, no_model)
    (no_model / "model.pt").unlink()
    with pytest.raises(SystemExit) as e:
        P.main([str(no_model), str(path)])
    assert e.value.code == 2 and "has no model.pt" in capsys.readouterr().err
    bad = [dict(d) for d in docs]
    bad[1]["vertexSet"] = []
    bad_path = tmp_path / "bad.json"
    bad_path.write_text(json.dumps(bad))
    with pytest.raises(SystemExit) as e:
        P.main([str(run.dir), str(bad_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "document 1" in err and "vertexSet" in err and repr(docs[1]["title"]) in err
    (tmp_path / "notjson.json").write_text("{oops")
    with pytest.raises(SystemExit):
        P.main([str(run.dir), str(tmp_path / "notjson.json")])
    assert "not a JSON file" in capsys.readouterr().err


# --------------------------------------------------------------------------- evaluate
def test_evaluate_cli_prints_official_scores(tmp_path, capsys):
    # one document, 3 entities, gold facts (0,1,P17) and (1,2,P131); predicted (0,1,P17) and
    # (2,0,P17): P = 1/2, R = 1/2, F1 = 1/2. The training document holds the fact "A" P17 "B",
    # so the correct prediction is "in train": Ign P = (1-1)/(2-1) = 0, Ign F1 = 0.
    doc = {"title": "d", "sents": [["A", "is", "in", "B", "of", "C", "."]],
           "vertexSet": [[{"name": "A", "sent_id": 0, "pos": [0, 1], "type": "LOC"}],
                         [{"name": "B", "sent_id": 0, "pos": [3, 4], "type": "LOC"}],
                         [{"name": "C", "sent_id": 0, "pos": [5, 6], "type": "LOC"}]],
           "labels": [{"h": 0, "t": 1, "r": "P17", "evidence": [0]}, {"h": 1, "t": 2, "r": "P131", "evidence": [0]}]}
    train_doc = {**doc, "title": "t", "labels": [doc["labels"][0]]}
    preds = [{"title": "d", "h_idx": 0, "t_idx": 1, "r": "P17"}, {"title": "d", "h_idx": 2, "t_idx": 0, "r": "P17"}]
    for name, obj in (("gold.json", [doc]), ("train.json", [train_doc]), ("pred.json", preds)):
        (tmp_path / name).write_text(json.dumps(obj))
    rep = E.main([str(tmp_path / "pred.json"), str(tmp_path / "gold.json"), "--train", str(tmp_path / "train.json")])
    printed = json.loads(capsys.readouterr().out)
    assert printed == rep
    assert (rep["precision"], rep["recall"], rep["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert rep["ign_f1"] == pytest.approx(0.0)


# --------------------------------------------------------------------------- --import
TOY_MODULE = '''
import torch
from pemscl.losses import register_loss

CALLS = []


@register_loss("cli-toy-ce", defaults={"temperature": 1.0})
def toy_ce(logits, labels, *, spec, features, neg_mask, reduction):
    """Softmax cross-entropy over NA + relations, at a temperature."""
    CALLS.append(spec.params["temperature"])
    logp = torch.log_softmax(logits.float() / spec.params["temperature"], 1)
    per_pair = -torch.where(labels > 0, logp, 0.0).sum(1)
    return (per_pair.sum() if reduction == "sum" else per_pair.mean()), {}
'''


@pytest.fixture
def toy_module(tmp_path, monkeypatch):
    (tmp_path / "cli_toy_loss.py").write_text(textwrap.dedent(TOY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield "cli_toy_loss"
    finally:
        if "cli-toy-ce" in registered_losses():
            unregister_loss("cli-toy-ce")
        sys.modules.pop("cli_toy_loss", None)


def test_imported_user_loss_is_listed_and_trains(toy_module, tmp_path, capsys):
    assert "cli-toy-ce" not in registered_losses()
    with pytest.raises(SystemExit):
        cli.parse(["--import", toy_module, "--help"])
    assert "cli-toy-ce" in capsys.readouterr().out and "cli-toy-ce" in LOSS_PRESETS
    run = cli.main(["--import", toy_module, *SMOKE, "--loss", "cli-toy-ce", "--loss-params", '{"temperature": 2.0}',
                    "--root", str(tmp_path / "runs"), "--save-model", "false"])
    assert run.config.loss == LossSpec(kind="cli-toy-ce", entropy=False, scl_weight=0.0, params={"temperature": 2.0})
    # smoke: 4 training documents in batches of 2, one epoch: the loop called the user's loss twice
    calls = sys.modules[toy_module].CALLS
    assert calls == [2.0, 2.0]
    assert run.history[0]["train_loss"] > 0 and "f1" in run.scores["dev"]


def test_python_dash_m_pemscl_train_runs_the_cli():
    # the `if __name__ == "__main__"` block of pemscl/train.py (what torchrun -m pemscl.train runs)
    out = subprocess.run([sys.executable, "-m", "pemscl.train", "--preset", "smoke", "--loss", "atl", "--print-config"],
                         capture_output=True, text=True, check=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert json.loads(out.stdout)["key"] == preset("smoke", loss=loss_spec("atl")).key()

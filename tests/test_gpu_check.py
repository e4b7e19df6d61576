"""The GPU check's report (pemscl.gpu_check), read from a folder like the one
benchmarks/gpu_check.sh writes: counts, dry run, the GPU runs beside their CPU records."""

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from test_leaderboard import _fake

from pemscl import claims as C
from pemscl import config as CF
from pemscl import experiments as X
from pemscl import gpu_check as G
from pemscl import leaderboard as LB
from pemscl import losses as LS
from pemscl import runner as R
from pemscl import runs as RS
from pemscl.runs import Run

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1" failures="2"
 skipped="3" tests="20" time="12.5"><testcase classname="t" name="a" time="1"/></testsuite></testsuites>"""


def _scores(dev, test, best, run, seconds, **extra):
    return {"dev": {"f1": dev}, "test": {"f1": test}, "best_epoch": best, "epochs_run": run,
            "seconds": seconds, **extra}


def _folder(tmp_path):
    d = tmp_path / "gpu_check"
    d.mkdir()
    (d / "tests.xml").write_text(JUNIT)
    (d / "dryrun.json").write_text(json.dumps({"part": "dryrun", "seconds": 44}))
    (d / "dryrun.log").write_text("dry run of profile paper: 3 configs\n[1/3] ATL ...\n[2/3] BCE ...\n")
    (d / "device_tests.json").write_text(json.dumps({"name": "Some GPU", "torch": "2.x"}))
    (d / "minilm_atl_66_scores.json").write_text(json.dumps(
        _scores(0.566, 0.570, 14, 17, 176.0, device="cuda", converged=True, peak_cuda_mb=1561.0)))
    (d / "minilm_atl_66_device.json").write_text(json.dumps({"name": "NVIDIA H200", "side_by_side": 8}))
    (d / "minilm_atl_66_config.json").write_text(json.dumps({"min_epochs": 15}))  # pemscl 67 has none: older
    (d / "minilm_pemscl_67_scores.json").write_text(json.dumps(_scores(0.5, 0.5, 3, 3, 60.0, device="cuda")))
    (d / "notes_scores.json").write_text("{}")  # not a run file: ignored
    return d


def test_report_counts_and_pairs_each_gpu_run_with_its_cpu_record(tmp_path):
    d = _folder(tmp_path)
    cpu = Run(dir=tmp_path, config=CF.preset("cpu", loss=LS.loss_spec("atl"), seed=66, device="cpu"),
              scores=_scores(0.563, 0.567, 14, 17, 57 * 60.0), history=[])
    other = Run(dir=tmp_path, config=CF.preset("cpu", loss=LS.loss_spec("atl"), seed=67, device="cpu"),
                scores=_scores(0.1, 0.1, 1, 1, 60.0), history=[])
    r = G.report([other, cpu], folder=d)
    assert r["device"] == "Some GPU"
    assert r["tests"] == {"tests": 20, "failures": 2, "errors": 1, "skipped": 3, "seconds": 12.5, "passed": 14}
    assert r["dry_run"] == {"seconds": 44, "trained": 2, "configs": 3}
    atl, pemscl = r["runs"]
    assert (atl["loss"], atl["seed"], atl["cpu_dev_f1"], atl["cpu_minutes"]) == ("atl", 66, 0.563, 57.0)
    assert pemscl["seed"] == 67 and pemscl["cpu_dev_f1"] is None  # no CPU record of that config
    assert (atl["min_epochs"], pemscl["min_epochs"]) == (15, None)
    # a GPU run of the older config (no min_epochs) is shown beside the CPU run of that older config
    old = Run(dir=tmp_path, config=CF.preset("cpu", loss=LS.loss_spec("atl"), seed=66, device="cpu", min_epochs=None),
              scores=_scores(0.1, 0.1, 1, 10, 60.0), history=[])
    assert G.cpu_counterpart("atl", 66, {old.config.key(): old}, None) is not None
    assert G.cpu_counterpart("atl", 66, {old.config.key(): old}, 15) is None
    md = G.markdown(r)
    assert "on Some GPU" in md and "14 passed, 2 failed, 1 errors, 3 skipped" in md
    assert "| atl | 66 | 56.6 | 56.3 | 57.0 | 56.7 | 14/17 | 14/17 | 2.9 | H200 x8 | 57 |" in md
    assert "| pemscl | 67 | 50.0 | – | 50.0 | – | 3/3 | – | 1.0 | – | – |" in md
    assert "1 of these runs predate `min_epochs`" in md and "0 of them stopped before epoch 15" in md
    stopped = [{"loss": "atl", "seed": 71, "min_epochs": None, "stopped_early": True, "epochs_run": 13},
               {"loss": "atl", "seed": 72, "min_epochs": None, "stopped_early": True, "epochs_run": 16},
               {"loss": "atl", "seed": 73, "min_epochs": 15, "stopped_early": True, "epochs_run": 15}]
    assert "2 of these runs predate `min_epochs`" in G._min_epochs_note(stopped)[1]
    assert "1 of them stopped before epoch 15 and would have trained on under the preset's rule (atl 71)" in \
        G._min_epochs_note(stopped)[1]
    assert r["replicates"] == [] and "on the GPU runs alone" not in md  # no seed has both losses of a claim
    assert [(m["loss"], m["n_seeds"], m["dev_f1"], m["dev_f1_sd"]) for m in r["means"]] == [
        ("atl", 1, 0.566, None), ("pemscl", 1, 0.5, None)]


# [predicted, correct, correct_in_train, gold] per test document; F1 by hand in the comments
ROWS = {("pemscl", 66): [[2, 2, 0, 2], [2, 1, 0, 2], [0, 0, 0, 1]],  # P 3/4, R 3/5: F1 2/3
        ("atl", 66): [[2, 1, 0, 2], [2, 1, 0, 2], [0, 0, 0, 1]],     # P 2/4, R 2/5: F1 4/9
        ("pemscl", 67): [[2, 1, 0, 2], [2, 1, 0, 2], [0, 0, 0, 1]],  # F1 4/9
        ("atl", 67): [[1, 1, 0, 2], [0, 0, 0, 2], [0, 0, 0, 1]],     # P 1/1, R 1/5: F1 1/3
        ("atl", 68): [[0, 0, 0, 2], [0, 0, 0, 2], [0, 0, 0, 1]]}     # no PEMSCL seed 68: left out


def test_replicate_pairs_the_gpu_runs_by_seed_and_judges_the_claim(tmp_path):
    for (loss, seed), rows in ROWS.items():
        (tmp_path / f"minilm_{loss}_{seed}_scores.json").write_text(json.dumps(
            _scores(0.5, 0.5, 3, 3, 60.0, doc_counts={"test": {"all": rows}})))
    rep = G.replicate(tmp_path)
    assert rep["seeds"] == [66, 67] and rep["n_seeds"] == 2 and rep["n_docs"] == 3
    assert rep["seed_diffs"] == pytest.approx([2 / 3 - 4 / 9, 4 / 9 - 1 / 3])
    assert rep["diff"] == pytest.approx(1 / 6)
    assert rep["ci_low"] < rep["diff"] < rep["ci_high"]
    assert rep["paper_effect"] == C.CLAIM_EFFECTS["pemscl-vs-atl"].effect
    assert rep["paper_outside"] == (not rep["ci_low"] <= rep["paper_effect"] <= rep["ci_high"])
    md = G.markdown({"device": None, "runs": G.gpu_runs(tmp_path), "replicates": [rep]})
    assert "`pemscl-vs-atl` (pemscl - atl, test F1, seeds 66-67, 2 paired): +16.67 [" in md
    assert f"**{rep['verdict']}**" in md and "Per seed: +22.22, +11.11." in md
    assert G.replicates(tmp_path) == [rep]  # no ablation runs: only the headline claim


def test_replicate_judges_an_ablation_claim_on_its_group_with_context(tmp_path):
    # the tail claim: PEMSCL vs no EM, no SCL on tail F1, head beside; rows as in ROWS
    tail = {66: ([[2, 2, 0, 2]], [[2, 0, 0, 2]]), 67: ([[2, 1, 0, 2]], [[0, 0, 0, 2]])}
    for seed, (a, b) in tail.items():
        for loss, rows in (("pemscl", a), ("pemscl-no-em-no-scl", b)):
            (tmp_path / f"minilm_{loss}_{seed}_scores.json").write_text(json.dumps(
                _scores(0.5, 0.5, 3, 3, 60.0, doc_counts={"test": {"all": rows, "tail": rows, "head": rows}})))
    rep = G.replicate(tmp_path, "tail")
    assert (rep["a"], rep["b"], rep["group"]) == ("pemscl", "pemscl-no-em-no-scl", "tail")
    # seed 66: F1 1 vs 0; seed 67: P 1/2 R 1/2 -> 1/2 vs 0
    assert rep["seed_diffs"] == pytest.approx([1.0, 0.5]) and rep["diff"] == pytest.approx(0.75)
    assert rep["context"]["head"]["diff"] == pytest.approx(0.75)
    assert rep["paper_effect"] == C.CLAIM_EFFECTS["tail"].effect
    assert [r["claim"] for r in G.replicates(tmp_path)] == ["tail"]
    line = G.replicate_line(rep)
    assert line.startswith("`tail` (pemscl - pemscl-no-em-no-scl, test tail F1, seeds 66-67, 2 paired): +75.00 [")
    assert "; head beside: +75.00 [" in line


def test_only_claims_of_cpu_preset_losses_are_replicable():
    assert G.replicable_claims() == ["pemscl-vs-atl", "em-helps", "scl-helps", "tail"]
    with pytest.raises(ValueError, match="original labels"):
        G.replicate(None, "ns-rescues")
    with pytest.raises(ValueError, match="unknown claim"):
        G.replicate(None, "no-such-claim")


def test_no_folder_no_section(tmp_path):
    assert G.report([], folder=tmp_path / "absent") is None
    assert G.markdown(None) == ""


def test_bench_comparison_on_a_gpu_shaped_result(tmp_path):
    """bench_attention_gpu.json as a GPU leaves it: MFU known, a batch out of memory, the fit searched."""
    def path(s, mfu, mb):
        return {"seconds_per_doc": {"median": s, "min": s * 0.9, "max": s * 1.1, "q25": s, "q75": s, "n": 5},
                "mfu": mfu, "peak_memory": {"kind": "torch.cuda.max_memory_allocated", "mb": mb}}

    fit = {p: {"searched": True, "max_batch": 4, "tried": [{"batch": 1, "fits": True, "peak_mb": 10240.0},
                                                           {"batch": 8, "fits": False, "peak_mb": 99000.0}]}
           for p in ("eager", "fast")}
    (tmp_path / "bench_attention_gpu.json").write_text(json.dumps({
        "mode": "compare", "device_name": "NVIDIA H200", "precision": "bfloat16",
        "encoder": {"layers": 24, "hidden": 1024}, "document": {"tokens": 1000}, "warmup": 2, "reps": 5,
        "flops_per_doc": 2.05e12, "device_peak_flops": 989e12, "peak_source": "H200: vendors' datasheets",
        "max_abs_logit_diff": 0.03, "logits": {"max_abs_logit_diff_fp32": 2e-6},
        "batches": [{"batch": 4, "paths": {"eager": path(0.02, 0.10, 30720.0), "fast": path(0.01, 0.2, 20480.0)},
                     "ratio_eager_over_fast": 2.0}, {"batch": 8, "paths": {}, "oom": True}],
        "fit": fit}))
    c = G.summary(tmp_path)["bench_attention"]
    assert c["device"] == "NVIDIA H200" and c["max_batch"] == {"eager": 4, "fast": 4} and c["fit_searched"]
    r4, r8 = c["rows"]
    assert (r4["ratio"], r4["eager_mfu"], r4["fast_s_per_doc"], r4["fast_peak_mb"]) == (2.0, 0.10, 0.01, 20480.0)
    assert r8["oom"] and r8["fast_s_per_doc"] is None
    md = G.markdown(G.summary(tmp_path))
    assert "MFU of 989 TFLOP/s, H200: vendors' datasheets, 2.05 TFLOP per document" in md
    assert "| 4 | 0.020 [0.018, 0.022] | 0.010 [0.009, 0.011] | 2.00 | 10.0% | 20.0% | 30.0 GiB | 20.0 GiB |" in md
    assert "| 8 | out of memory |" in md
    assert "the largest batch that fits (of 1, 2, 4, 8): eager 4, fast 4" in md and "1: 10.0 GiB, 8: OOM" in md
    assert "0.03 (bfloat16), 2e-06 in fp32" in md


def test_leaderboard_part_reads_its_gpu_runs_as_a_run_kind_of_their_own(tmp_path):
    # what `gpu_check.sh leaderboard` leaves: the record of its cuda runs, merged over two leases
    d = _folder(tmp_path)
    (d / "device_leaderboard.json").write_text(json.dumps({"name": "NVIDIA H100"}))
    cfgs = X.retarget(X.leaderboard("cpu"), device="cuda", seeds=[66, 69])
    assert len(cfgs) == 13 * 2 and {c.device for c in cfgs} == {"cuda"}
    lease1, lease2 = tmp_path / "lease1.jsonl", tmp_path / "lease2.jsonl"
    RS.export_runs([_fake(c) for c in cfgs if c.seed == 66], lease1)
    RS.export_runs([_fake(c) for c in cfgs if c.seed == 69 and c.label != "SSR-PU"], lease2)
    assert G.main(["--merge-runs", str(lease1), str(d / G.LEADERBOARD_RUNS)]) == 0
    assert G.merge_runs(lease2, d / G.LEADERBOARD_RUNS) == 11
    board = G.summary(d)["leaderboard"]
    assert board["seeds"] == [66, 69] and board["gpu"] == "NVIDIA H100"
    rows = {(r["labels"], r["loss"]): r for r in board["rows"]}
    assert len(rows) == 13 and rows[("gold", "pemscl")]["n_seeds"] == 2
    ssr = rows[("incomplete", "ssr-pu")]
    assert ssr["n_seeds"] == 1 and ssr["missing"] == ["SSR-PU (oog-mini, seed 69)"]
    assert board["reference"] == {"gold": "pemscl", "incomplete": "pemscl"}  # best on dev, as on the CPU
    md = G.markdown(G.summary(d))
    part = md.split("The leaderboard on the GPU")[1]
    assert "seeds 66, 69; NVIDIA H100" in part and part.count("| pemscl |") == 2
    # never mistaken for the CPU record: the CPU leaderboard of the same runs finds none of them
    assert all(r["n_seeds"] == 0 for r in LB.build(RS.load_exported(d / G.LEADERBOARD_RUNS), "cpu")["rows"])
    with pytest.raises(SystemExit):
        G.main(["--merge-runs", str(tmp_path / "none.jsonl"), str(d / G.LEADERBOARD_RUNS)])


def test_gpu_check_sh_leaderboard_commands(tmp_path, monkeypatch, capsys):
    """The leaderboard part under `set -euo pipefail` with a stand-in interpreter that records its
    argv: the runner's command line is one the real runner plans (cuda, the seeds and rows asked
    for), then the merge of the runs it recorded into the folder's leaderboard_runs.jsonl."""
    log, shim = tmp_path / "argv.log", tmp_path / "py"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {shlex.quote(str(log))}\n')
    shim.chmod(0o755)
    out = tmp_path / "out"
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHON": str(shim), "SEEDS": "66 69", "LABELS": "AFL,SSR-PU", "PARALLEL": "4"}
    r = subprocess.run(["bash", "benchmarks/gpu_check.sh", "leaderboard", str(out)], cwd=repo, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    runner = next(c for c in calls if c.startswith("-m pemscl.runner"))
    merge = next(c for c in calls if c.startswith("-m pemscl.gpu_check --merge-runs"))
    assert merge.endswith(f"/results/runs.jsonl {out / G.LEADERBOARD_RUNS}")
    assert json.loads((out / "leaderboard.json").read_text())["part"] == "leaderboard"
    # the argv as the shell split it (one word per argument: "66 69" stays one)
    argv = ["--profile", "cpu", "--only", "leaderboard", "--device", "cuda", "--seeds", "66 69",
            "--labels", "AFL,SSR-PU", "--workers", "4", "--threads", "2"]
    assert runner == "-m pemscl.runner " + " ".join(argv)
    monkeypatch.setenv("PEMSCL_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("PEMSCL_RUNS", str(tmp_path / "runs"))
    assert R.main([*argv, "--plan"]) == 0
    assert "8 of 8 runs missing" in capsys.readouterr().out

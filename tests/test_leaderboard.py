"""The leaderboard (issue 26) from fake runs with planted per-document counts (no training)."""

import dataclasses
import math
import statistics

import pytest
from test_claims import N_DOCS, f1, fake_run, rows

from pemscl import experiments as X
from pemscl import leaderboard as LB
from pemscl import report as REP
from pemscl import stats as S
from pemscl import tables as TB


def test_leaderboard_rows_reuse_the_recorded_configs():
    cfgs = X.leaderboard("cpu")
    assert len(cfgs) == 13 * 3 and {c.seed for c in cfgs} == {66, 67, 68}
    keys = {c.key() for c in cfgs}
    # ATL / BCE / NCRL / PEMSCL on gold are the headline's runs; Table 4's and the sweep's on original labels
    assert {c.key() for c in X.headline("cpu")} <= keys
    assert {c.key() for c in X.original_labels("cpu")} <= keys
    atl_ns = [c for c in X.ratio_sweep("cpu") if c.label == "ATL NS 0.1"]
    assert atl_ns and atl_ns[0].key() in keys
    new = keys - {c.key() for name in ("headline", "ablation", "original_labels", "ratio_sweep")
                  for c in X.EXPERIMENTS[name]("cpu")}
    # AFL and SSR-PU x 2 regimes x 3 seeds, BCE x 2 seeds, NCRL x 2 x 2 regimes, ATL and ATL+NS on OOG x 2
    assert len(new) == 12 + 2 + 4 + 4
    oog = [c for c in cfgs if c.regime == "oog-mini"]
    assert all(c.select == ("dev", "dev_gold") and c.epochs == 24 for c in oog)
    assert all(c.lr_encoder == 5e-5 and c.batch_size == 2 for c in cfgs)  # one optimiser setting for all
    # SSR-PU as its authors ran it: the released positive weight in both blocks, the prior multiple
    # 1 on gold labels (released fully supervised scripts), the loss default 3 on incomplete ones
    ssr = {(c.regime, c.seed): c for c in cfgs if c.label == "SSR-PU"}
    assert {s: c.loss.params for s, c in ssr.items()} == {
        **{("redocred-mini", s): {"pos_weight": "sqrt-odds", "prior_scale": 1.0} for s in (66, 67, 68)},
        **{("oog-mini", s): {"pos_weight": "sqrt-odds"} for s in (66, 67, 68)}}
    # nothing else differs from the registry's preset
    default = X.make_loss(X.get_profile("cpu"), "ssr-pu")
    assert ssr["oog-mini", 66].loss == dataclasses.replace(default, params={"pos_weight": "sqrt-odds"})


def _fake(cfg):
    # PEMSCL clearly best on gold (test 8/9 vs 7/9...), AFL tied with it; everything else below
    good = {"PEMSCL": (4, 4), "AFL": (4, 4), "SSR-PU": (4, 3), "PEMSCL+NS": (4, 4), "ATL+NS": (4, 3)}
    test = good.get(cfg.label, (2, 2))
    dev_f1 = {"PEMSCL": 0.6, "PEMSCL+NS": 0.55, "AFL": 0.58}.get(cfg.label, 0.4) + 0.001 * (cfg.seed - 66)
    run = fake_run(cfg, test, dev_f1=dev_f1, gold_dev_f1=0.5)
    if cfg.label == "AFL" and cfg.seed == 67:  # seed scatter: a tie, not a difference
        run.scores["doc_counts"]["test"]["all"] = rows(3, 4)
    run.scores["by_dev_gold"]["test_f1"] = f1(*test)
    run.scores["test"].update(ign_f1=f1(*test), head_f1=0.5, mid_f1=0.4, tail_f1=0.3)
    return run


def test_leaderboard_table_from_fake_runs():
    runs = [_fake(c) for c in X.leaderboard("cpu")]
    board = LB.build(runs, "cpu")
    rows_ = board["rows"]
    assert len(rows_) == 13 and all(r["n_seeds"] == 3 and not r["missing"] for r in rows_)
    names = {(r["labels"], r["loss"]) for r in rows_}
    assert ("incomplete", "atl+ns") in names and ("incomplete", "pemscl+ns") in names
    assert ("gold", "ssr-pu") in names and ("gold", "afl") in names
    # the reference is the best on dev, never chosen on test
    # (on original labels dev picks PEMSCL, not PEMSCL+NS: dev 0.60 vs 0.55 here)
    assert board["reference"] == {"gold": "pemscl", "incomplete": "pemscl"}
    gold = {r["loss"]: r for r in rows_ if r["labels"] == "gold"}
    assert gold["pemscl"]["test_f1"] == pytest.approx(f1(4, 4))
    assert gold["pemscl"]["vs_best"]["verdict"] == "reference"
    # ATL: 4/9 - 8/9 on every document and seed: a difference, and its value by hand
    atl = gold["atl"]["vs_best"]
    assert atl["diff"] == pytest.approx(f1(2, 2) - f1(4, 4)) and atl["verdict"] == "holds"
    assert atl["ci_high"] < 0
    # AFL: equal on seeds 66 and 68, 7/9 on 67: mean -1/27, interval over 0 -> not a difference
    afl = gold["afl"]["vs_best"]
    assert afl["diff"] == pytest.approx((f1(3, 4) - f1(4, 4)) / 3)
    assert afl["ci_low"] < 0 < afl["ci_high"] and afl["verdict"] in ("not resolved", "not measurable here")
    # each row's own interval holds its mean; identical seeds and documents: a zero-width interval
    assert gold["atl"]["ci_low"] == pytest.approx(gold["atl"]["test_f1"])
    assert gold["afl"]["ci_low"] < gold["afl"]["test_f1"] < gold["afl"]["ci_high"]
    inc = {r["loss"]: r for r in rows_ if r["labels"] == "incomplete"}
    assert inc["atl"]["test_f1_gold_dev"] == pytest.approx(f1(2, 2)) and inc["atl"]["regime"] == "oog-mini"
    md = LB.markdown(board)
    assert md.count("| pemscl |") == 2 and "reference" in md and "gold-dev sel." in md
    assert gold["atl"]["bf16_gemm"] == [None] * 3  # fake runs: not bf16 on a CPU
    assert "fp32 kernels" not in md


def test_a_row_says_which_of_its_bf16_runs_went_through_fp32_kernels():
    runs = [_fake(c) for c in X.leaderboard("cpu")]
    for r in runs:
        r.scores.update(precision="bfloat16", device="cpu")
        if r.config.label == "SSR-PU" and r.config.seed == 67 and r.config.regime == "oog-mini":
            r.scores["bf16_gemm"] = "fp32 accumulate"
    board = LB.build(runs, "cpu")
    ssr = {r["labels"]: r for r in board["rows"] if r["loss"] == "ssr-pu"}
    assert ssr["incomplete"]["bf16_gemm"] == ["native", "fp32 accumulate", "native"]  # seeds 66, 67, 68
    assert ssr["gold"]["bf16_gemm"] == ["native"] * 3  # recorded before the field existed: native
    gold_md, inc_md = LB.markdown(board).split("**oog-mini")
    assert "fp32 kernels" not in gold_md
    assert "bf16 through fp32 kernels, on a CPU without bf16 instructions (docs/speed.md): ssr-pu seed 67;" in inc_md


def test_leaderboard_with_missing_runs_says_so():
    cfgs = X.leaderboard("cpu")
    runs = [_fake(c) for c in cfgs if c.label not in ("SSR-PU",)]
    board = LB.build(runs, "cpu")
    ssr = [r for r in board["rows"] if r["loss"] == "ssr-pu"]
    assert len(ssr) == 2 and all(r["n_seeds"] == 0 and len(r["missing"]) == 3 for r in ssr)
    assert all(r["vs_best"]["verdict"] == "missing runs" and r["test_f1"] is None for r in ssr)


def test_a_row_holding_a_cut_short_run_says_it_is_to_be_trained_again():
    # SSR-PU on gold labels, seed 67, best at its last epoch of 18: the profile trains it again with 24
    runs = [_fake(c) for c in X.leaderboard("cpu")]
    short = next(r for r in runs if r.config.label == "SSR-PU" and r.config.regime == "redocred-mini"
                 and r.config.seed == 67)
    short.history = [{"dev_f1": f} for f in (0.30, 0.40, 0.50)]
    board = LB.build(runs, "cpu")
    ssr = next(r for r in board["rows"] if r["loss"] == "ssr-pu" and r["labels"] == "gold")
    assert ssr["n_seeds"] == 3 and ssr["pending"] == ["SSR-PU (redocred-mini, seed 67, 24 epochs)"]
    assert all(not r["pending"] for r in board["rows"] if r is not ssr)
    assert "Interim: 39 of the leaderboard's 39 runs are in, and 1 cut short" in LB.summary_markdown(board)
    # once the longer run is in, it takes the short one's place and nothing is pending
    longer = X.longer_configs("cpu", runs)[short.config.key()]
    board = LB.build(runs + [_fake(longer)], "cpu")
    ssr = next(r for r in board["rows"] if r["loss"] == "ssr-pu" and r["labels"] == "gold")
    assert ssr["runs"][1] == longer.key() and not ssr["pending"]
    assert "Interim" not in LB.summary_markdown(board)


def test_mean_bootstrap_by_hand():
    # every document alike: resampling documents changes nothing, so the interval is the seeds' t interval
    a, b = rows(4, 4), rows(3, 3)
    res = S.mean_bootstrap([a, b], n_boot=200)
    fa, fb = 8 / 9, 6 / 9
    sd = statistics.stdev([fa, fb])
    half = S.t_quantile(0.975, 1) * sd / math.sqrt(2)  # doc_se = 0: df = n - 1 = 1
    assert res.diff == pytest.approx((fa + fb) / 2) and res.doc_se == pytest.approx(0, abs=1e-12)
    assert (res.ci_low, res.ci_high) == pytest.approx(((fa + fb) / 2 - half, (fa + fb) / 2 + half))
    assert res.seed_diffs == pytest.approx((fa, fb)) and res.n_docs == N_DOCS
    one = S.mean_bootstrap([rows(4, 3)], n_boot=500)  # one seed: the documents' interval
    assert one.ci_low < f1(4, 3) < one.ci_high and one.seed_sd is None
    with pytest.raises(ValueError, match="documents"):
        S.mean_bootstrap([rows(4, 4), rows(4, 4, n=N_DOCS - 1)])


def test_readme_summary_carries_the_leaderboard_and_says_when_it_is_interim():
    runs = [_fake(c) for c in X.leaderboard("cpu")]
    whole = LB.summary_markdown(LB.build(runs, "cpu"))
    lines = [line for line in whole.splitlines() if line.startswith("| gold") or line.startswith("| incomplete")]
    assert len(lines) == 13 and "Interim" not in whole
    # best first within a regime; the reference row says so, ATL's difference is the hand value
    gold = [line.split(" | ")[1] for line in lines if line.startswith("| gold")]
    assert gold[0] == "pemscl" and set(gold[-3:]) == {"atl", "bce", "ncrl"}  # the three at 4/9
    atl = next(line for line in lines if line.startswith("| gold") and " | atl | " in line)
    assert f"{100 * (f1(2, 2) - f1(4, 4)):+.2f}" in atl and atl.endswith("| holds |")
    # SSR-PU missing: its rows leave the table, and the line says how many runs are in
    part = LB.summary_markdown(LB.build([r for r in runs if r.config.label != "SSR-PU"], "cpu"))
    assert "| ssr-pu |" not in part and "Interim: 33 of the leaderboard's 39 runs are in" in part
    assert LB.summary_markdown(LB.build([], "cpu")) == ""
    # the README's summary shows it only when there is a row, with the link beside its results link
    t = TB.build_tables([], "smoke")
    assert "leaderboard" not in REP.summary_markdown(t, [])
    t["leaderboard"] = LB.build(runs, "cpu")
    md = REP.summary_markdown(t, [], results_link="../docs/results.md")
    assert "[../docs/leaderboard.md](../docs/leaderboard.md)" in md and whole in md


def _probed(cfg, shift, test_at_0, test_chosen, beside=None):
    """A row as benchmarks/probe_decision.py writes it (values in fractions, curves included)."""
    return {"key": cfg.key(), "label": cfg.label, "loss": cfg.loss.kind, "regime": cfg.regime, "seed": cfg.seed,
            "select": "dev", "recorded_dev_f1": 0.464, "chosen_shift": shift, "dev_f1_at_0": 0.464,
            "dev_f1_chosen": 0.465, "test_f1_at_0": test_at_0, "test_f1_chosen": test_chosen,
            "test_precision_at_0": 0.781, "test_recall_at_0": 0.191, "test_precision_chosen": 0.759,
            "test_recall_chosen": 0.206, "beside": beside or {}, "curves": {"dev": [{"shift": 0.0, "f1": 0.464}]}}


def test_decision_probe_rows_are_this_boards_runs_and_show_in_the_results(tmp_path):
    import json

    cfgs = X.leaderboard("cpu")
    board = LB.build([_fake(c) for c in cfgs], "cpu")
    atl = next(c for c in cfgs if c.label == "ATL" and c.regime == "oog-mini" and c.seed == 67)
    afl = next(c for c in cfgs if c.label == "AFL" and c.regime == "redocred-mini" and c.seed == 66)
    other = dataclasses.replace(atl, seed=99)  # probed, but no run of this board
    gold_dev = {"dev_gold": {"chosen_shift": -4.0, "dev_f1_at_0": 0.32, "dev_f1_chosen": 0.421,
                             "test_f1_chosen": 0.408}}
    probed = {c.key(): _probed(c, *v) for c, v in [(atl, (-0.5, 0.307, 0.324, gold_dev)), (afl, (-0.1, 0.561, 0.563)),
                                                   (other, (0.0, 0.3, 0.3))]}
    path = tmp_path / LB.PROBE_FILE
    path.write_text(json.dumps(probed))
    got = LB.probe_rows(board, path)
    assert sorted(r["key"] for r in got) == sorted([atl.key(), afl.key()])  # the seed-99 probe is not this board's
    assert all("curves" not in r for r in got)
    assert LB.probe_rows(board, tmp_path / "never.json") == []
    md = LB.probe_markdown(got)
    lines = md.splitlines()
    assert lines[0].endswith("| test P / R chosen | shift on dev_gold: test F1 |")
    # sorted by regime name (oog-mini before redocred-mini), each value in % to one digit
    assert lines[2] == "| ATL (oog-mini) | 67 | -0.50 | 46.4 → 46.5 | 30.7 → 32.4 | 78.1 / 19.1 | 75.9 / 20.6 | -4.00: 40.8 |"
    assert lines[3] == "| AFL (redocred-mini) | 66 | -0.10 | 46.4 → 46.5 | 56.1 → 56.3 | 78.1 / 19.1 | 75.9 / 20.6 | – |"
    t = TB.build_tables([], "smoke")
    assert "decision rule leaves unused" not in REP.markdown(t, [], records={})
    t.update(leaderboard=board, probe=got)
    assert md in REP.markdown(t, [], records={})


def test_precision_twin_report_pairs_each_recorded_bf16_run_with_its_fp32_twin(tmp_path, monkeypatch):
    from train_helpers import benchmark_script

    from pemscl import runs as RS

    monkeypatch.setenv("PEMSCL_RESULTS", str(tmp_path))
    pt = benchmark_script("precision_twin")
    gold = {(c.label, c.seed): c for c in X.leaderboard("cpu") if c.regime == "redocred-mini"}
    atl, pem, atl67 = gold["ATL", 66], gold["PEMSCL", 66], gold["ATL", 67]
    assert pt.twin(atl).key() != atl.key() and pt.twin(atl).precision == "fp32"  # a run of its own in the record
    planted = [(atl, (4, 3)), (pt.twin(atl), (4, 4)), (pem, (3, 3)), (pt.twin(pem), (3, 4)), (atl67, (4, 4))]
    runs = []
    for cfg, test in planted:
        run = fake_run(cfg, test)
        run.scores["test"]["ign_f1"] = run.scores["test"]["f1"]
        runs.append(run)
    RS.export_runs(runs)
    out = pt.report("redocred-mini")
    # ATL 67 has no twin: left out; each pair's difference is fp32 minus bf16 (one more correct on odd documents)
    assert [(r["label"], r["seed"]) for r in out["pairs"]] == [("ATL", 66), ("PEMSCL", 66)]
    assert [r["diff_test_f1"] for r in out["pairs"]] == pytest.approx([f1(4, 4) - f1(4, 3), f1(3, 4) - f1(3, 3)])
    # ATL's two recorded bf16 seeds (7/9, 8/9) set the scale a difference is read on; PEMSCL has one
    assert [r["row_seed_sd_test_f1"] for r in out["pairs"]] == [pytest.approx(statistics.stdev([7 / 9, 8 / 9])), None]
    res = out["fp32_minus_bf16_test_f1"]
    assert res["n_seeds"] == 2 and res["diff"] == pytest.approx(1 / 9)
    assert 0 < res["ci_low"] < res["diff"] < res["ci_high"]
    assert (tmp_path / pt.OUT).exists()
    with pytest.raises(SystemExit, match="known: .*ATL:66"):
        pt.leaderboard_config("ATL", 99, "redocred-mini")

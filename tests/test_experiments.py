"""Experiment config lists per profile, summarising over seeds, the tables, results files."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from pemscl import bf16cpu as B16
from pemscl import claims as C
from pemscl import config as CF
from pemscl import experiments as X
from pemscl import fmt as FMT
from pemscl import losses as LS
from pemscl import report as REP
from pemscl import runner as R
from pemscl import runs as RS
from pemscl import tables as TB
from pemscl import utils as U
from pemscl import train as T
from pemscl.utils import atomic_write_json


# --------------------------------------------------------------------------- config lists
def _labels_seeds(cfgs):
    return [(c.label, c.seed) for c in cfgs]


@pytest.mark.parametrize("profile", ["smoke", "quick", "cpu", "paper"])
def test_experiment_labels_and_seeds_follow_claim_rows(profile):
    p = X.get_profile(profile)
    for exp, fn, labels in (("headline", X.headline, list(X.HEADLINE)), ("ablation", X.ablation, list(X.ABLATION)),
                            ("original_labels", X.original_labels, list(X.ORIGINAL_LABELS))):
        cfgs = [c for c in fn(profile) if c.regime in (p.gold_regime, p.oog_regime)]
        want = [(lab, s) for lab in labels for s in X.seeds_for(p, exp, lab)]
        assert _labels_seeds(cfgs) == want, (profile, exp)
        assert len({c.key() for c in cfgs}) == len(cfgs)  # every run of an experiment is distinct
    h = [c for c in X.headline(profile) if c.regime == p.gold_regime]
    assert [c.loss.kind for c in h if c.seed == p.seeds[0]] == ["atl", "bce", "ncrl", "pemscl"]

    n = X.original_labels(profile)
    regimes = {p.oog_regime} if p.ogg_from_oog else {p.oog_regime, p.ogg_regime}
    assert {c.regime for c in n} == regimes
    ns = next(c for c in n if c.label == "PEMSCL+NS")
    assert ns.loss.neg_sample_ratio == pytest.approx(p.ns_ratio)
    # every OOG run selects on both dev sets: the OGG view (when OGG is read from it) and the
    # ratio claim (which ratio each dev set picks) come from the same run
    assert all(c.select == ("dev", "dev_gold") for c in n if c.regime == p.oog_regime)

    s = X.ratio_sweep(profile)
    atl_ratios = p.ratios if p.atl_ratios is None else p.atl_ratios
    assert len(s) == (len(p.ratios) + len(atl_ratios)) * p.other_seeds
    assert sorted(X.sweep_point(c) for c in s) == sorted([("PEMSCL", r) for r in p.ratios]
                                                         + [("ATL", r) for r in atl_ratios])

    f = X.faithfulness(profile)
    wanted = [lab for lab, _, _ in X.FAITHFULNESS if lab != X.TOP4 and (
        p.faithfulness_rows is None or lab in p.faithfulness_rows or lab.startswith("paper default"))]
    assert [c.label for c in f] == wanted
    assert X.TOP4 not in [c.label for c in f]  # a decision rule: scored on the default run, not trained


def test_cpu_profile_full_finetuning_three_seeds_on_claim_rows():
    p = X.get_profile("cpu")
    for fn in (X.headline, X.ablation, X.original_labels, X.ratio_sweep):
        assert all(c.train_layers is None for c in fn("cpu")), fn.__name__
    assert all(c.train_layers == X.FAST_LAYERS for c in X.faithfulness("cpu"))  # exploratory rows
    seeds = {}
    for c in X.headline("cpu") + X.ablation("cpu") + X.original_labels("cpu"):
        seeds.setdefault(c.label, set()).add(c.seed)
    claim = {lab for rows in X.CLAIM_ROWS.values() for lab in rows}
    for lab, ss in seeds.items():
        assert ss == ({66, 67, 68} if lab in claim else {66}), lab
    assert seeds["no EM, no SCL"] == {66} and seeds["BCE"] == {66}
    oog = [c for c in X.original_labels("cpu")]
    assert all(c.max_train_docs == p.original_max_train_docs == 400 for c in oog)
    assert p.ratios[0] < p.ns_ratio < p.ratios[-1] == 1.0 and len(p.ratios) >= 3  # a choice to make
    assert X.layers("cpu") == [] and X.search("cpu") == []


def test_quick_profile_is_one_seed_on_the_fast_path():
    cfgs = X.all_configs("quick")
    assert {c.seed for c in cfgs} == {66}
    assert {c.train_layers for c in cfgs} == {X.FAST_LAYERS}
    assert {c.epochs for c in cfgs} == {4} and all(c.max_train_docs == 200 for c in cfgs)
    assert [c.label for c in X.faithfulness("quick")] == ["paper default", "paper default +NS", "NS mask per batch (#6)"]


def test_layers_experiment_compares_full_finetuning_with_top_layers():
    assert X.layers("smoke") == [] and X.layers("cpu") == []  # no layer counts in these profiles
    p = dataclasses.replace(X.get_profile("cpu"), layer_counts=(1, X.FAST_LAYERS))
    lay = X.layers(p)
    assert [c.label for c in lay] == ["full fine-tuning", "top 1 layers", f"top {X.FAST_LAYERS} layers"]
    assert [c.train_layers for c in lay] == [None, 1, X.FAST_LAYERS]
    assert all(c.loss == lay[0].loss and c.seed == p.seeds[0] and c.epochs == lay[0].epochs for c in lay)
    head = next(c for c in X.headline(p) if c.label == "PEMSCL")
    assert lay[0].key() == head.key()  # full fine-tuning is the headline PEMSCL run, trained once


def test_search_points_change_one_field_against_the_shared_reference():
    p = dataclasses.replace(X.get_profile("cpu"), search=(("λ=1", "pemscl", {"scl_weight": 1.0}),
                                                          ("τ=0.1", "pemscl", {"tau": 0.1}), ("ATL", "atl", {})))
    srch = X.search(p)
    ref = srch[0]
    abl = next(c for c in X.ablation(p) if c.label == "PEMSCL" and c.seed == p.seeds[0])
    assert ref.key() == abl.key()  # the reference is trained once, for the ablation
    assert [c.label for c in srch[1:]] == [lab for lab, _, _ in p.search]
    for c, (_, name, over) in zip(srch[1:], p.search):
        assert c.loss == X.make_loss(p, name, **over) and c.train_layers == ref.train_layers and c.seed == ref.seed
    lam = next(c for c in srch if c.loss.scl_weight == 1.0)
    assert dataclasses.replace(lam.loss, scl_weight=ref.loss.scl_weight) == ref.loss
    assert all("λ" not in c.folder_name() and "τ" not in c.folder_name() for c in srch)  # ASCII folders
    assert X.search("smoke") == []


def test_smoke_profile_is_tiny():
    for c in X.all_configs("smoke"):
        assert c.epochs == 1 and c.train_layers == 1
        assert c.max_train_docs <= 4 and c.max_dev_docs <= 3 and c.max_test_docs <= 3


def test_paper_profile_uses_paper_preset_and_full_regimes():
    h = X.headline("paper")
    gold = [c for c in h if c.regime == "redocred"]
    assert all(c.encoder == "roberta-large" and c.train_layers is None for c in gold)
    assert _labels_seeds(gold) == [(lab, s) for lab in X.HEADLINE for s in (66, 67, 68, 69, 70)]  # 5 seeds
    docred = [c for c in h if c.regime == "docred"]
    assert [c.label for c in docred[::5]] == [f"{lab} (DocRED)" for lab in X.HEADLINE]
    assert len(docred) == 20 and not any(c.eval_test for c in docred)  # DocRED test labels are not public
    assert {c.encoder for c in docred} == {"microsoft/deberta-large"}  # the paper's DocRED encoder (Table 5)
    pem = next(c for c in h if c.label == "PEMSCL")
    assert pem.loss.tau == pytest.approx(0.2) and pem.loss.scl_weight == pytest.approx(0.1)
    abl = X.ablation("paper")
    assert _labels_seeds(abl) == [(lab, s) for lab in X.ABLATION for s in (66, 67, 68)]  # 3 seeds, every row
    # the named variants keep what they switch off, even where the preset tunes the loss
    a = {c.label: c for c in abl if c.seed == 66}
    assert a["no SCL"].loss == X.make_loss(X.get_profile("paper"), "pemscl-no-scl")
    assert a["no SCL"].loss != a["PEMSCL"].loss and a["no SCL"].loss.tau == pytest.approx(0.2)
    assert {c.regime for c in X.original_labels("paper")} == {"oog", "ogg"}


def test_shared_configs_are_trained_once():
    keys = lambda cs: {c.key(): c for c in cs}  # noqa: E731
    n = {c.label: c for c in X.original_labels("cpu") if c.seed == 66}
    sweep = keys(X.ratio_sweep("cpu"))
    assert n["PEMSCL"].key() in sweep and n["ATL"].key() in sweep  # ratio 1.0 = the plain loss
    assert n["PEMSCL+NS"].key() in sweep  # ratio 0.1
    head = {c.label: c for c in X.headline("cpu") if c.seed == 66}
    abl = {c.label: c for c in X.ablation("cpu") if c.seed == 66}
    assert head["PEMSCL"].key() == abl["PEMSCL"].key()
    all_cfgs = X.all_configs("cpu")
    assert len(all_cfgs) == len({c.key() for c in all_cfgs})
    assert len(all_cfgs) < sum(len(fn("cpu")) for fn in X.EXPERIMENTS.values())
    # cpu: the faithfulness references run on the fast path, the ablation fully fine-tuned: not shared
    f = {c.label: c for c in X.faithfulness("cpu")}
    assert f["paper default"].key() != abl["PEMSCL"].key()
    # quick: everything on the fast path, so the references are the ablation's and Table 4's runs
    f = {c.label: c for c in X.faithfulness("quick")}
    assert f["paper default"].key() == next(c for c in X.ablation("quick") if c.label == "PEMSCL").key()
    assert f["paper default +NS"].key() == next(c for c in X.original_labels("quick") if c.label == "PEMSCL+NS").key()


def test_faithfulness_options_change_one_thing():
    every_row = dataclasses.replace(X.get_profile("cpu"), faithfulness_rows=None)
    f = {c.label: c for c in X.faithfulness(every_row)}
    base = f["paper default"]
    assert f["SupCon SCL (#1)"].loss.scl_variant == "supcon"
    assert f["NA anchors (#2)"].loss.na_anchors is True
    assert f["mean reduction (#4)"].loss.reduction == "mean"
    assert f["EM batch-average weights (#5)"].loss.em_batch_average is True
    for label, c in f.items():  # one field changed against its reference, nothing else
        ref = base if c.regime == base.regime else f["paper default +NS"]
        assert c.top_k is None and c.seed == ref.seed and c.train_layers == ref.train_layers, label
    assert f["NS mask per batch (#6)"].loss.neg_sample_per == "batch"
    assert f["NS mask per batch (#6)"].regime == "oog-mini"


def test_unknown_profile():
    with pytest.raises(ValueError, match="unknown profile"):
        X.headline("laptop")


# --------------------------------------------------------------------------- summarise
def _run(label, seed, dev_f1, test_f1, cfg=None, **extra):
    cfg = cfg or CF.TrainConfig(label=label, seed=seed)
    scores = {"best_epoch": 1, "threshold": None, "dev": {"f1": dev_f1, "ign_f1": dev_f1 - 0.01},
              "test": {"f1": test_f1, "ign_f1": test_f1 - 0.01}, "seconds": 10.0 * seed, "peak_rss_mb": 100.0,
              "device": "cpu", "precision": "fp32", **extra}
    return RS.Run(dir=Path(f"/nonexistent/{label}-{seed}"), config=cfg, scores=scores, history=[])


def test_summarise_mean_and_sample_std():
    runs = [_run("A", 1, 0.50, 0.40), _run("A", 2, 0.52, 0.44), _run("A", 3, 0.54, 0.48), _run("B", 1, 0.30, 0.20), None]
    rows = TB.summarise(runs, metrics=("dev_f1", "test_f1", "seconds"))
    assert [r["label"] for r in rows] == ["A", "B"]
    a, b = rows
    assert a["n"] == 3 and b["n"] == 1
    # by hand: mean 0.52; deviations -0.02, 0, 0.02 -> sum of squares 0.0008 / (3 - 1) -> std 0.02
    assert a["dev_f1"] == pytest.approx(0.52) and a["dev_f1_std"] == pytest.approx(0.02)
    # test: 0.40, 0.44, 0.48 -> mean 0.44, std 0.04; seconds 10, 20, 30 -> 20 +- 10
    assert a["test_f1"] == pytest.approx(0.44) and a["test_f1_std"] == pytest.approx(0.04)
    assert a["seconds"] == pytest.approx(20.0) and a["seconds_std"] == pytest.approx(10.0)
    assert b["dev_f1"] == pytest.approx(0.30) and b["dev_f1_std"] is None


def test_summarise_by_other_fields_and_flat_rows():
    rows = [{"model": "P", "ratio": 0.1, "x": 1.0}, {"model": "P", "ratio": 0.1, "x": 3.0}, {"model": "P", "ratio": 1.0, "x": 5.0}]
    out = TB.summarise(rows, by=("model", "ratio"), metrics=("x",))
    assert [(r["ratio"], r["n"], r["x"]) for r in out] == [(0.1, 2, 2.0), (1.0, 1, 5.0)]
    assert out[0]["x_std"] == pytest.approx(math.sqrt(2.0))


def test_flat_scores_keeps_ogg_view():
    r = _run("A", 1, 0.5, 0.4, by_dev_gold={"epoch": 2, "dev_gold_f1": 0.6, "test_f1": 0.45})
    row = TB.flat_scores(r)
    assert row["by_dev_gold_test_f1"] == 0.45 and row["by_dev_gold_dev_gold_f1"] == 0.6
    assert row["dev_f1"] == 0.5 and row["label"] == "A" and row["loss"] == "pemscl"


# --------------------------------------------------------------------------- build_tables
def test_build_tables_matches_runs_by_config_hash():
    # fake runs for the smoke ablation and original-label configs, stored under other labels
    runs = []
    for i, c in enumerate(X.ablation("smoke")):
        runs.append(_run("whatever", c.seed, 0.5 + 0.01 * i, 0.4, cfg=CF.override(c, label="folder-name")))
    for c in X.original_labels("smoke"):
        runs.append(_run("x", c.seed, 0.3, 0.2, cfg=c, dev_gold={"f1": 0.35},
                         by_dev_gold={"epoch": 1, "dev_gold_f1": 0.36, "test_f1": 0.25, "test_ign_f1": 0.24}))
    t = TB.build_tables(runs, "smoke")
    assert t["profile"] == "smoke"
    t3 = {r["label"]: r for r in t["table3"]}
    assert list(t3) == ["PEMSCL", "no EM", "no SCL", "no EM, no SCL"]
    # smoke ablation: PEMSCL seeds 66, 67 (i = 0, 1), no EM 66, 67 (i = 2, 3), ...; PEMSCL dev F1 0.50, 0.51
    assert t3["PEMSCL"]["n"] == 2 and t3["PEMSCL"]["dev_f1"] == pytest.approx(0.505)
    assert t3["PEMSCL"]["dev_f1_std"] == pytest.approx(math.sqrt(0.00005))
    assert t3["PEMSCL"]["paper"]["dev_f1"] == pytest.approx(79.89)
    t4 = {(r["regime"], r["label"]): r for r in t["table4"]}
    assert t4[("OOG", "PEMSCL+NS")]["orig_dev_f1"] == pytest.approx(0.3)
    assert t4[("OOG", "PEMSCL+NS")]["gold_dev_f1"] == pytest.approx(0.35)
    assert t4[("OGG", "PEMSCL+NS")]["test_f1"] == pytest.approx(0.25)
    assert t4[("OGG", "PEMSCL+NS")]["gold_dev_f1"] == pytest.approx(0.36)
    # in smoke the headline PEMSCL config is the ablation's (same layers and epochs): shared; the
    # headline's ATL (2 seeds: a claim row), BCE and NCRL have no run
    assert [r["label"] for r in t["table2"]] == ["PEMSCL"] and len(t["missing"]["headline"]) == 4
    # original-label PEMSCL / ATL are also the sweep's ratio-1.0 points, PEMSCL+NS its 0.1 point
    assert {(r["model"], r["ratio"]) for r in t["figure2"]} == {("PEMSCL", 1.0), ("ATL", 1.0), ("PEMSCL", 0.1)}
    assert t["cost"]["n_runs"] == len(runs)
    # planned: each distinct config of the profile once; what is not recorded is listed as missing, once
    assert t["cost"]["n_planned"] == len({c.key() for c in X.all_configs("smoke")})
    missing_keys = {c.key() for c in X.all_configs("smoke")} - {r.config.key() for r in runs}
    assert t["cost"]["n_planned"] - len(runs) == len(missing_keys)
    # every missing config is listed; the leaderboard names some configs of other experiments again
    # under its own row labels ("ATL+NS" is the sweep's "ATL NS 0.1"), so labels may exceed keys
    assert len({m for ms in t["missing"].values() for m in ms}) >= len(missing_keys)
    assert len({m for k, ms in t["missing"].items() if k != "leaderboard" for m in ms}) <= len(missing_keys)
    fa = {r["label"]: r for r in t["faithfulness"]}
    assert "top-4 cap (#8)" not in fa  # the fake runs carry no test_top4 scores
    assert t["cost"]["total_seconds"] == pytest.approx(sum(r.scores["seconds"] for r in runs))
    assert t["cost"]["wall_seconds_2"] == pytest.approx(X.makespan([r.scores["seconds"] for r in runs], 2))
    assert X.infer_profile(runs) == "smoke"


def test_top4_row_is_the_default_runs_test_scored_with_the_cap():
    runs = []
    for c in X.faithfulness("smoke"):
        top4 = {"f1": 0.48, "ign_f1": 0.47, "tail_f1": 0.1} if c.label == "paper default" else None
        extra = {"test_top4": top4} if top4 else {}
        runs.append(_run("x", c.seed, 0.5, 0.45, cfg=c, **extra))
    fa = {r["label"]: r for r in TB.build_tables(runs, "smoke")["faithfulness"]}
    assert fa["top-4 cap (#8)"]["test_f1"] == pytest.approx(0.48)
    assert fa["top-4 cap (#8)"]["test_ign_f1"] == pytest.approx(0.47)
    assert fa["top-4 cap (#8)"]["delta_test_f1"] == pytest.approx(0.48 - 0.45)
    assert fa["paper default"]["test_f1"] == pytest.approx(0.45)


def test_convergence_per_run_kind():
    # cpu headline: PEMSCL seeds 66-68 best at epochs 3, 5, 4, the last cut short; ATL one run
    runs = []
    for c in X.headline("cpu"):
        if c.label not in ("PEMSCL", "ATL") or (c.label == "ATL" and c.seed != 66):
            continue
        best = {66: 3, 67: 5, 68: 4}[c.seed] if c.label == "PEMSCL" else 7
        runs.append(_run("x", c.seed, 0.5, 0.4, cfg=c, best_epoch=best, epochs_run=best + 2,
                         converged=not (c.label == "PEMSCL" and c.seed == 68), stopped_early=True))
    conv = {(r["experiment"], r["label"]): r for r in TB.build_tables(runs, "cpu")["convergence"]}
    pem = conv[("headline", "PEMSCL")]
    assert (pem["n"], pem["n_converged"], pem["n_known"], pem["n_stopped_early"]) == (3, 2, 3, 3)
    assert pem["best_epoch_mean"] == pytest.approx(4.0) and (pem["best_epoch_min"], pem["best_epoch_max"]) == (3, 5)
    assert pem["epochs_run_max"] == 7 and pem["epochs_max"] == X.headline("cpu")[0].epochs
    assert conv[("headline", "ATL")]["best_epoch_mean"] == 7
    assert ("ablation", "PEMSCL") not in conv  # a shared run is counted once, under its first experiment
    cell = dict(REP.CONVERGENCE_COLS)["best epoch: mean (range)"](pem)
    assert cell == "4.0 (3–5)" and dict(REP.CONVERGENCE_COLS)["converged"](pem) == "2/3"


def test_runs_on_original_labels_are_also_judged_on_gold_dev():
    # PEMSCL+NS seed 66 climbs on original dev to the last epoch (cut short) while gold dev
    # peaked at epoch 2 (converged there); seed 67 climbs on both
    orig = {66: [0.30, 0.35, 0.38, 0.41], 67: [0.30, 0.35, 0.38, 0.41]}
    gold = {66: [0.36, 0.40, 0.39, 0.40], 67: [0.30, 0.33, 0.36, 0.40]}
    runs = []
    for c in X.original_labels("cpu"):
        if c.label == "PEMSCL+NS" and c.seed in orig:
            hist = [{"epoch": i + 1, "dev_f1": o, "dev_gold_f1": g} for i, (o, g) in enumerate(zip(orig[c.seed], gold[c.seed]))]
            r = _run("x", c.seed, 0.41, 0.38, cfg=c, best_epoch=4, epochs_run=4, converged=False)
            runs.append(dataclasses.replace(r, history=hist))
    assert [TB.other_dev_convergence(r) for r in runs] == [(True, 2), (False, 4)]
    gold_only = RS.Run(dir=runs[0].dir, config=X.headline("cpu")[0], scores={}, history=runs[0].history)
    assert TB.other_dev_convergence(gold_only) == (None, None)  # one selection dev set: nothing beside it
    t = TB.build_tables(runs, "cpu")
    row = next(r for r in t["convergence"] if r["label"] == "PEMSCL+NS")
    assert (row["n_converged"], row["n_converged_other"], row["n_known_other"]) == (0, 1, 2)
    assert row["other_dev"] == "dev_gold" and row["best_other_epoch_mean"] == pytest.approx(3.0)
    assert dict(REP.CONVERGENCE_COLS)["on gold dev: converged, best epoch"](row) == "1/2, 3.0 (2–4)"
    line = REP.summary_lines(t, [])[1]
    assert line.startswith("- Convergence: 0 of 2 runs converged on their selection dev set (cut short: PEMSCL+NS")
    assert line.endswith("judged on gold dev (the dev set of the gold-test claims they bear): 1 of 2 converged, "
                         "best gold-dev epoch 3.0 on average (2–4).")
    from pemscl import figures as F

    curve = next(c for c in t["curves"] if c["seed"] == 66)
    assert curve["dev_f1"] == orig[66] and curve["other_dev_f1"] == gold[66]
    fig = F.convergence_grid(t["curves"])
    dotted = [tuple(round(y, 6) for y in d.y) for d in fig.data if d.mode == "lines" and d.line.dash == "dot"]
    assert sorted(dotted) == sorted(tuple(100 * v for v in gold[s]) for s in (66, 67))  # gold dev beside
    assert [a.text for a in fig.layout.annotations] == ["PEMSCL+NS<br>oog-mini: 0/2 converged (1/2 on gold dev)"]


def test_convergence_curves_and_their_figure():
    from pemscl import figures as F

    # PEMSCL 66 converged (best epoch 2), 67 cut short (best = last epoch); ATL 66 a third curve
    curves = {("PEMSCL", 66): [0.40, 0.55, 0.54, 0.53], ("PEMSCL", 67): [0.30, 0.40, 0.45, 0.50],
              ("ATL", 66): [0.35, 0.45, 0.50, 0.49]}
    runs = []
    for c in X.headline("cpu"):
        if (c.label, c.seed) in curves:
            f1s = curves[(c.label, c.seed)]
            best = f1s.index(max(f1s)) + 1
            hist = [{"epoch": i + 1, "dev_f1": f} for i, f in enumerate(f1s)]
            r = _run("x", c.seed, 0.5, 0.4, cfg=c, best_epoch=best, epochs_run=4, converged=best <= 2)
            runs.append(dataclasses.replace(r, history=hist))
    rows = TB.build_tables(runs, "cpu")["curves"]
    got = {(r["label"], r["seed"]): r for r in rows}
    assert set(got) == set(curves)
    p67 = got[("PEMSCL", 67)]
    assert p67["dev_f1"] == curves[("PEMSCL", 67)] and p67["epoch"] == [1, 2, 3, 4]
    assert (p67["best_epoch"], p67["converged"], p67["dev_split"]) == (4, False, "dev")
    assert p67["min_epochs"] == X.headline("cpu")[0].min_epochs == 15
    fig = F.convergence_grid(rows, cols=2)
    # one panel per row kind, titled with how many of its runs converged
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["ATL<br>redocred-mini: 0/1 converged", "PEMSCL<br>redocred-mini: 1/2 converged"]
    lines = {(t.name, tuple(round(y, 6) for y in t.y)): t for t in fig.data if t.mode == "lines"}
    assert lines[("seed 67", (30.0, 40.0, 45.0, 50.0))].line.dash == "dash"   # cut short
    assert lines[("seed 66", (40.0, 55.0, 54.0, 53.0))].line.dash == "solid"  # converged
    stars = sorted((t.x[0], round(t.y[0], 6)) for t in fig.data if t.mode == "markers")
    assert stars == [(2, 55.0), (3, 50.0), (4, 50.0)]  # each run's best epoch
    assert [t.name for t in fig.data if t.showlegend is not False] == ["seed 66", "seed 67"]  # once per seed
    assert {sh.x0 for sh in fig.layout.shapes} == {15}  # min_epochs marked in each panel
    assert len(fig.layout.shapes) == 2


def test_dev_noise_pools_late_steps_of_runs_that_used_their_budget():
    # PEMSCL 66 and 67 ran all their epochs; 68 stopped early and must not count
    runs = []
    curves = {66: [0.40, 0.50, 0.52, 0.51, 0.53], 67: [0.40, 0.50, 0.50, 0.52, 0.51], 68: [0.50, 0.45, 0.40]}
    for c in X.headline("cpu"):
        if c.label == "PEMSCL":
            c = dataclasses.replace(c, epochs=5)
            hist = [{"epoch": i + 1, "dev_f1": f} for i, f in enumerate(curves[c.seed])]
            r = _run("x", c.seed, 0.5, 0.4, cfg=c, best_epoch=2, epochs_run=len(hist))
            runs.append(dataclasses.replace(r, history=hist))
    noise = TB.dev_noise({"headline": [r.config for r in runs]}, {"headline": runs}, last=3)
    # late steps: 66 -> +0.02, -0.01, +0.02; 67 -> 0, +0.02, -0.01 (68 left out)
    steps = [0.02, -0.01, 0.02, 0.0, 0.02, -0.01]
    assert (noise["n_runs"], noise["n_steps"]) == (2, 6)
    assert noise["step_mean"] == pytest.approx(sum(steps) / 6)
    mean = sum(steps) / 6
    sd = (sum((x - mean) ** 2 for x in steps) / 5) ** 0.5
    assert noise["step_sd"] == pytest.approx(sd) and noise["two_epoch_sd"] == pytest.approx(sd * 2 ** 0.5)
    # P(N(0, (sqrt 2 sd)^2) > 0.005), sd = 0.015055: z = 0.005 / 0.021292 = 0.2348, 1 - Phi(z) = 0.4072
    assert noise["flat_cut_short"] == pytest.approx(0.4072, abs=1e-4)
    assert "of the 2 runs that used their whole epoch budget" in REP.dev_noise_line(noise)
    assert TB.dev_noise({"headline": []}, {"headline": []}) is None and REP.dev_noise_line(None) == ""


def test_relation_groups_show_gold_facts_beside_f1():
    runs = []
    for c in X.ablation("smoke"):
        test = {"f1": 0.4, "tail_f1": 0.2 if c.seed == 66 else 0.3, "tail_n_gold": 12, "head_f1": 0.5,
                "head_n_gold": 300, "mid_f1": 0.35, "mid_n_gold": 80}
        runs.append(_run("x", c.seed, 0.5, 0.4, cfg=c, test=test))
    rows = [r for r in TB.build_tables(runs, "smoke")["groups"] if r["split"] == "test" and r["experiment"] == "ablation"]
    pem = next(r for r in rows if r["label"] == "PEMSCL")
    assert pem["tail_f1"] == pytest.approx(0.25) and pem["tail_n_gold"] == 12 and pem["head_n_gold"] == 300
    assert dict(REP.GROUP_COLS)["tail F1 (gold facts)"](pem) == "25.0 ± 7.1 (12)"


# --------------------------------------------------------------------------- files
README = """# project

intro text
<!-- summary:start -->
old summary
<!-- summary:end -->

## After
tail text
"""
RESULTS_DOC = README.replace("summary", "results")


def test_update_section_replaces_only_the_marked_section(tmp_path, monkeypatch):
    path = tmp_path / "README.md"
    path.write_text(README)
    REP.update_readme("## New\n| a |\n|---|\n| 1 |\n", path)
    text = path.read_text()
    before, rest = text.split(REP.SUMMARY_START)
    inside, after = rest.split(REP.SUMMARY_END)
    assert before == "# project\n\nintro text\n"
    assert inside == "\n## New\n| a |\n|---|\n| 1 |\n"
    assert after == "\n\n## After\ntail text\n"
    monkeypatch.setenv("PEMSCL_README", str(path))
    REP.update_readme("again")  # idempotent and follows the env var
    assert "again" in path.read_text() and "## New" not in path.read_text() and path.read_text().endswith("tail text\n")
    # the whole section goes to docs/results.md beside that README, between the results markers
    doc = tmp_path / "docs" / "results.md"
    doc.parent.mkdir()
    doc.write_text(RESULTS_DOC)
    assert REP.results_doc_path() == doc and REP.update_results_doc("## Whole") == doc
    assert doc.read_text() == RESULTS_DOC.replace("old results", "## Whole")
    path.write_text("# no markers\n")
    with pytest.raises(ValueError, match="summary:start"):
        REP.update_readme("x", path)
    with pytest.raises(ValueError, match="results:start"):
        REP.update_results_doc("x", path)


def test_results_doc_beside_a_readme_copy_starts_from_the_repository_one(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    monkeypatch.setenv("PEMSCL_README", str(readme))
    t, c = TB.build_tables([], "smoke"), C.judge([], "smoke")
    out = REP.write_docs(t, c)
    assert out == {"results_doc": tmp_path / "docs" / "results.md", "readme": readme}
    repo = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    doc = out["results_doc"].read_text()
    assert doc.split(REP.RESULTS_START)[0] == repo.split(REP.RESULTS_START)[0]  # the hand-written text
    assert doc.split(REP.RESULTS_END)[1] == repo.split(REP.RESULTS_END)[1]
    assert "Results (profile `smoke`)" in doc
    summary = readme.read_text().split(REP.SUMMARY_START)[1].split(REP.SUMMARY_END)[0]
    assert "Profile `smoke`" in summary and "[docs/results.md](docs/results.md)" in summary
    assert summary.count("| missing runs |") == 0 and summary.count("**missing runs**") == 6


def test_repository_docs_have_their_markers():
    root = Path(__file__).resolve().parents[1]
    for name, start, end in (("README.md", REP.SUMMARY_START, REP.SUMMARY_END),
                             ("docs/results.md", REP.RESULTS_START, REP.RESULTS_END)):
        text = (root / name).read_text()
        assert text.count(start) == 1 and text.count(end) == 1, name
        assert text.index(start) < text.index(end), name
    assert REP.RESULTS_START not in (root / "README.md").read_text()  # the whole section moved to docs/


def test_repository_docs_are_what_the_recorded_results_regenerate(monkeypatch):
    """docs/results.md's marked section and the README's summary are exactly what report writes for
    the tables and claims 07 recorded beside them in results/results.json (written in the same cell)."""
    monkeypatch.delenv("PEMSCL_FIGURES", raising=False)  # the committed PNGs the section shows
    root = Path(__file__).resolve().parents[1]
    d = json.loads((root / "results" / "results.json").read_text())
    doc = (root / "docs" / "results.md").read_text()
    inside = doc.split(REP.RESULTS_START + "\n")[1].split("\n" + REP.RESULTS_END)[0]
    assert inside == REP.markdown(d["tables"], d["claims"], level=3, records=d["records"],
                                  figures_from=root / "docs").strip()
    readme = (root / "README.md").read_text()
    summary = readme.split(REP.SUMMARY_START + "\n")[1].split("\n" + REP.SUMMARY_END)[0]
    assert summary == REP.summary_markdown(d["tables"], d["claims"]).strip()


def test_write_results_json_and_markdown(tmp_path):
    t = TB.build_tables([], "smoke")
    out = REP.write_results(t, C.judge([], "smoke"), tmp_path)
    data = json.loads(out["json"].read_text())
    assert set(data) == {"tables", "claims", "published", "records"}
    assert data["published"]["table2"]["PEMSCL"]["test_f1"] == 79.86
    assert [c["verdict"] for c in data["claims"]] == [C.MISSING] * 6
    md = out["md"].read_text()
    assert md.startswith("# Results (profile `smoke`)") and "## Claims" in md
    assert "runs.jsonl holds no records yet" in md and "exploratory" in md


def test_summary_groups_verdicts_and_weights_best_epochs_by_runs():
    claims = [{"id": "a", "verdict": "holds", "diff": 0.05, "ci_low": 0.01, "ci_high": 0.09, "n_seeds": 1,
               "paper_effect": 0.12, "mde": 0.05},
              {"id": "b", "verdict": "not resolved", "diff": -0.002, "ci_low": -0.01, "ci_high": 0.006, "n_seeds": 3,
               "paper_effect": 0.007, "mde": 0.012},
              {"id": "c", "verdict": C.MISSING}]
    conv = [{"label": "ATL", "regime": "r", "n_known": 3, "n_converged": 2, "best_epoch_mean": 15.0,
             "best_epoch_min": 14, "best_epoch_max": 16, "epochs_max": 18},
            {"label": "BCE", "regime": "r", "n_known": 1, "n_converged": 1, "best_epoch_mean": 17.0,
             "best_epoch_min": 17, "best_epoch_max": 17, "epochs_max": 18},
            {"label": "PEMSCL", "regime": "o", "n_known": 1, "n_converged": 1, "best_epoch_mean": 20.0,
             "best_epoch_min": 20, "best_epoch_max": 20, "epochs_max": 24}]
    tables = {"table2": [{"label": "ATL", "n": 3, "dev_f1": 0.564, "dev_f1_std": 0.007, "test_f1": 0.569,
                          "test_f1_std": 0.007}, {"label": "BCE", "n": 1, "dev_f1": 0.5, "test_f1": 0.5}],
              "convergence": conv, "cost": {"n_runs": 5, "total_seconds": 7200.0, "wall_seconds_2": 3600.0}}
    verdicts, heads, converged, cost = REP.summary_lines(tables, claims)
    assert verdicts == ("- Verdicts: **holds**: `a` +5.00 [+1.00, +9.00] on 1 seed (paper +12.00; MDE 5.00); "
                        "**contradicted**: none; **not resolved**: `b` -0.20 [-1.00, +0.60] on 3 seeds (paper "
                        "+0.70; MDE 1.20); **missing runs**: `c`.")
    assert heads == "- Headline rows, mean ± sd over seeds: ATL dev F1 56.4 ± 0.7, test F1 56.9 ± 0.7 (3 seeds)."
    # (15 x 3 + 17 x 1) / 4 runs = 15.5; the cut-short run is named with its row
    assert converged == ("- Convergence: 4 of 5 runs converged on their selection dev set "
                         "(cut short: ATL (r, 1 of 3)); best epoch "
                         "r 15.5 on average (14–17) of 18; o 20.0 on average (20–20) of 24.")
    assert cost == ("- Cost: 5 of the profile's 5 planned runs, 2.0 h of training, about 1.0 h of wall time "
                    "two side by side. Every planned run is in.")
    # a run still to train is named once however many experiments share it, and makes the verdicts interim
    tables["cost"]["n_planned"] = 6
    tables["missing"] = {"headline": ["ATL (r, seed 67)"], "ablation": ["ATL (r, seed 67)"], "other": []}
    assert REP.summary_lines(tables, claims)[-1] == (
        "- Cost: 5 of the profile's 6 planned runs, 2.0 h of training, about 1.0 h of wall time two side by side. "
        "Still to train: ATL (r, seed 67); until they are in, the verdicts are interim.")


def test_write_results_merges_runs_and_never_rewrites_the_record(tmp_path):
    cfgs = X.ablation("smoke")
    runs = [_run("x", c.seed, 0.4 + 0.01 * i, 0.3, cfg=c) for i, c in enumerate(cfgs)]
    record = tmp_path / "runs.jsonl"
    RS.export_runs(runs[:1], record)  # an earlier session recorded the first run
    foreign = {"folder": "older-abc", "key": "abc", "v": 1, "config": {}, "scores": {}, "history": []}
    record.write_text(record.read_text() + json.dumps(foreign) + "\n")
    before = record.read_text()
    t = TB.build_tables(runs, "smoke")
    REP.write_results(t, [], tmp_path)  # no runs given: the record is untouched
    assert record.read_text() == before
    other = _run("not-in-profile", 1, 0.9, 0.9)  # no smoke experiment has this config: not merged
    out = REP.write_results(t, [], tmp_path, runs=runs[1:] + [other])
    recs = [json.loads(x) for x in record.read_text().splitlines()]
    assert {r["key"] for r in recs} == {c.key() for c in cfgs} | {"abc"}  # merged, the old record kept
    data = json.loads(out["json"].read_text())
    assert data["records"] == {"1": 1, str(RS.HASH_VERSION): len(cfgs)}
    back = RS.load_exported(record)
    assert TB.build_tables(back, "smoke")["table3"] == t["table3"]  # the record rebuilds the tables


def test_ogg_view_survives_the_record(tmp_path):
    # Table 4's OGG rows and the ratio claim's gold-dev selection come from `by_dev_gold`; on a
    # fresh clone they are rebuilt from runs.jsonl alone, so the record must carry them whole
    cfgs = X.original_labels("smoke")
    counts = {"test": [[2, 1, 0, 3]], "test@dev_gold": [[1, 1, 0, 3]]}
    runs = [_run("x", c.seed, 0.3, 0.2 + 0.01 * i, cfg=c, dev_gold={"f1": 0.35}, doc_counts=counts,
                 by_dev_gold={"epoch": 1, "dev_gold_f1": 0.36 + 0.01 * i, "test_f1": 0.25, "test_ign_f1": 0.24})
            for i, c in enumerate(cfgs)]
    RS.export_runs(runs, tmp_path / "runs.jsonl")
    back = RS.gather_runs(root=tmp_path / "no-runs-here", record=tmp_path / "runs.jsonl")
    assert {r.config.key(): r.scores["by_dev_gold"] for r in back} == {r.config.key(): r.scores["by_dev_gold"] for r in runs}
    assert all(r.scores["doc_counts"] == counts for r in back)
    ogg = [r for r in TB.build_tables(back, "smoke")["table4"] if r["regime"] == "OGG"]
    assert ogg and ogg == [r for r in TB.build_tables(runs, "smoke")["table4"] if r["regime"] == "OGG"]
    assert all(r["test_f1"] == pytest.approx(0.25) for r in ogg)


def test_record_line_names_used_and_old_versions():
    line = REP.record_line({"1": 31, str(RS.HASH_VERSION): 4})
    assert line.startswith("results/runs.jsonl holds 35 run records")
    assert "31 of hash version 1 (kept, not used)" in line and f"4 of hash version {RS.HASH_VERSION} (used)" in line


def test_gather_runs_adds_recorded_runs_without_a_folder(tmp_path):
    cfgs = X.ablation("smoke")[:2]
    RS.export_runs([_run("x", c.seed, 0.4, 0.3, cfg=c) for c in cfgs], tmp_path / "runs.jsonl")
    got = RS.gather_runs(root=tmp_path / "no-runs-here", record=tmp_path / "runs.jsonl")
    assert sorted(r.config.key() for r in got) == sorted(c.key() for c in cfgs)
    assert RS.gather_runs(root=tmp_path / "no-runs-here", record=tmp_path / "absent.jsonl") == []


def _folder(root: Path, run: RS.Run) -> RS.Run:
    """run as a complete local run folder under root (what training leaves, without a model)."""
    d = root / run.config.folder_name()
    d.mkdir(parents=True)
    for name, obj in (("config.json", run.config), ("scores.json", run.scores), ("history.json", run.history)):
        atomic_write_json(d / name, obj)
    (d / "DONE").write_text("")
    return dataclasses.replace(run, dir=d)


def test_the_record_wins_over_a_local_folder_of_the_same_config(tmp_path):
    # on a fresh clone 05/06 train their models again: the reproduction must not change the judged results
    a, b = X.ablation("smoke")[:2]
    record = tmp_path / "runs.jsonl"
    RS.export_runs([_run("x", a.seed, 0.4, 0.3, cfg=a)], record)
    root = tmp_path / "runs"
    _folder(root, _run("x", a.seed, 0.41, 0.31, cfg=a))  # the same config trained again, slightly off
    _folder(root, _run("x", b.seed, 0.5, 0.5, cfg=b))  # not recorded: the folder serves
    got = {r.config.key(): r for r in RS.gather_runs(root=root, record=record)}
    assert set(got) == {a.key(), b.key()}
    assert got[a.key()].scores["dev"]["f1"] == 0.4 and got[b.key()].scores["dev"]["f1"] == 0.5
    assert got[b.key()].has_folder


def test_a_run_trained_again_for_its_weights_leaves_the_record_alone(tmp_path, monkeypatch, capsys):
    a, b = X.ablation("smoke")[:2]
    record = tmp_path / "runs.jsonl"
    RS.export_runs([_run("x", a.seed, 0.4, 0.3, cfg=a)], record)
    monkeypatch.setattr(RS, "record_path", lambda: record)
    monkeypatch.setattr(T, "train", lambda c, root=None, progress=False: _run("x", c.seed, 0.41, 0.29, cfg=c))
    got = R.run_all([a, b], root=tmp_path / "runs", need_weights=True)
    assert [r.scores["dev"]["f1"] for r in got] == [0.41, 0.41]  # the new models, for the notebook to load
    out = capsys.readouterr().out
    assert "trained for its weights; recorded run kept: dev F1 41.0 vs 40.0 recorded (+1.00), " \
           "test F1 29.0 vs 30.0 recorded (-1.00)" in out
    recs = {r.config.key(): r for r in RS.load_exported(record)}
    assert recs[a.key()].scores["dev"]["f1"] == 0.4  # kept as judged
    assert recs[b.key()].scores["dev"]["f1"] == 0.41  # a config not recorded yet is recorded as usual
    # and 07 merging the local runs does not displace the record either
    t = TB.build_tables(list(recs.values()), "smoke")
    REP.write_results(t, [], tmp_path, runs=got)
    assert RS.by_key(RS.load_exported(record))[a.key()].scores["dev"]["f1"] == 0.4


def test_a_bf16_config_is_trained_as_itself_on_a_cpu_without_bf16_and_set_beside_the_record(
        tmp_path, monkeypatch, capsys):
    # an AVX2-only CPU: the cpu profile's bf16 run is recorded; a notebook needs its weights. It was
    # once trained in fp32 there (another key, 20x cheaper than native bf16); with bf16's products in
    # fp32 kernels (bf16cpu) the recorded config itself is trained, and set beside the record.
    monkeypatch.setattr(U, "measured_cpu_precision", lambda: "fp32")
    monkeypatch.setattr(B16, "cpu_supports_bf16", lambda: False)
    cfg = dataclasses.replace(X.headline("cpu")[0], device="cpu")
    record = tmp_path / "runs.jsonl"
    RS.export_runs([_run("x", cfg.seed, 0.4, 0.3, cfg=cfg)], record)
    monkeypatch.setattr(RS, "record_path", lambda: record)
    trained = []

    def train(c, **k):
        trained.append(c)
        return _run("x", c.seed, 0.41, 0.31, cfg=c)

    monkeypatch.setattr(T, "train", train)
    got = R.run_all([cfg], root=tmp_path / "runs", need_weights=True)
    assert [c.key() for c in trained] == [cfg.key()] and trained[0].precision == "bf16"
    assert got[0].scores["dev"]["f1"] == 0.41
    assert ("(trained for its weights; recorded run kept: dev F1 41.0 vs 40.0 recorded (+1.00), "
            "test F1 31.0 vs 30.0 recorded (+1.00))") in capsys.readouterr().out
    assert RS.by_key(RS.load_exported(record))[cfg.key()].scores["dev"]["f1"] == 0.4  # the record as judged


def test_pct_and_table_md():
    assert FMT.pct(0.5234, 0.0123) == "52.3 ± 1.2" and FMT.pct(0.5) == "50.0" and FMT.pct(None) == "–"
    assert FMT.pct(0.52346, digits=2) == "52.35" and FMT.pct(None, missing=None) is None
    assert FMT.pts(-0.004) == "-0.40" and FMT.pts(0.0123, digits=1) == "+1.2" and FMT.pts(None) is None
    assert FMT.interval(0.0123, -0.004, 0.028) == "+1.23 [-0.40, +2.80]" and FMT.interval(None, 0, 0) is None
    md = FMT.table_md([{"a": 1, "b": None}], [("A", "a"), ("B", "b"), ("C", lambda r: r["a"] + 1)])
    assert md.splitlines() == ["| A | B | C |", "|---|---|---|", "| 1 | – | 2 |"]
    assert FMT.table_md([], [("A", "a")]) == "_No runs of this table are recorded yet._"
    # a `|` inside a cell is escaped, so the row keeps its width (FAITHFULNESS's 1/|P| split it once)
    assert FMT.row_md([5, "weighted 1/|P|", None]) == "| 5 | weighted 1/\\|P\\| | None |"


def test_schedule_trains_claim_pairs_first_then_full_runs_then_the_fast_path(tmp_path):
    cfgs = X.all_configs("cpu")
    order = R.schedule("cpu", cfgs[::-1], tmp_path)  # the order given does not matter (nothing interrupted)
    assert sorted(c.key() for c in order) == sorted(c.key() for c in cfgs)
    head = [(c.label, c.seed) for c in order[:6]]
    assert head == [("ATL", 66), ("PEMSCL", 66), ("ATL", 67), ("PEMSCL", 67), ("ATL", 68), ("PEMSCL", 68)]
    assert [(c.label, c.seed) for c in order[6:8]] == [("no EM", 66), ("no SCL", 66)]
    # 18 claim runs: ATL, PEMSCL, no EM, no SCL (gold) and PEMSCL, PEMSCL+NS (OOG), 3 seeds each
    claim = [(c.regime, c.label) for c in order[:18]]
    assert sorted(set(claim)) == [("oog-mini", "PEMSCL"), ("oog-mini", "PEMSCL+NS"), ("redocred-mini", "ATL"),
                                  ("redocred-mini", "PEMSCL"), ("redocred-mini", "no EM"), ("redocred-mini", "no SCL")]
    assert all(claim.count(x) == 3 for x in claim) and order[18].seed == 66
    # then the one-seed rows the tail and ratio-choice claims rest on, before Table 2's other losses
    nxt = [(c.label, c.regime) for c in order[18:21]]
    assert nxt == [("no EM, no SCL", "redocred-mini"), ("PEMSCL NS 0.05", "oog-mini"), ("PEMSCL NS 0.3", "oog-mini")]
    fast = [c.train_layers is not None for c in order]
    assert fast == sorted(fast) and any(fast)  # the fast path comes last


def _counted(cfg, correct: list[int]):
    # a run whose test counts have 10 predictions and 10 gold facts per document
    rows = [[10, k, 0, 10] for k in correct]
    return _run(cfg.label, cfg.seed, 0.5, sum(correct) / (10 * len(correct)), cfg=cfg,
                doc_counts={"test": {"all": rows}, "dev": {"all": rows}})


def test_more_seeds_while_the_headline_interval_is_wider_than_the_papers_effect():
    p = dataclasses.replace(X.get_profile("smoke"), more_seeds=(68, 69))
    planned = [c for c in X.headline(p) if c.label in ("ATL", "PEMSCL")]
    assert sorted({c.seed for c in planned}) == [66, 67]
    rng = np.random.default_rng(0)
    noisy = [_counted(c, rng.integers(0, 11, 30).tolist()) for c in planned]  # wide interval
    assert R.more_seeds(p, noisy[:-1]) == []  # a planned run is missing: nothing is due yet
    due = R.more_seeds(p, noisy)
    assert [(c.label, c.seed) for c in due] == [("ATL", 68), ("PEMSCL", 68)]
    assert [c.key() for c in due] == [c.key() for c in X.extra_seed_configs(p, [68])]
    half = noisy + [_counted(due[0], rng.integers(0, 11, 30).tolist())]
    assert [(c.label, c.seed) for c in R.more_seeds(p, half)] == [("PEMSCL", 68)]  # finish the seed first
    # the extra seed joins the claim and Table 2 once recorded
    both = half + [_counted(due[1], rng.integers(0, 11, 30).tolist())]
    claim = next(r for r in C.judge(both, p) if r["id"] == "pemscl-vs-atl")
    assert claim["seeds"] == [66, 67, 68] and claim["n_seeds"] == 3
    assert [(c.label, c.seed) for c in R.more_seeds(p, both)] == [("ATL", 69), ("PEMSCL", 69)]
    # PEMSCL ahead by the same 1 of 10 on every document: a zero-width interval, no seed due
    exact = [_counted(c, [6 if c.label == "PEMSCL" else 5] * 30) for c in planned]
    assert R.more_seeds(p, exact) == []
    assert R.more_seeds(X.get_profile("smoke"), noisy) == []  # the profile offers no more seeds
    # a training budget: the 4 planned runs took 10 * seed seconds each (660 + 670 + 660 + 670 s)
    assert X.trained_hours(p, noisy) == pytest.approx(2660 / 3600)
    over = dataclasses.replace(p, seed_budget_hours=2660 / 3600)  # spent: no new seed
    assert R.more_seeds(over, noisy) == [] and len(R.more_seeds(dataclasses.replace(over, seed_budget_hours=1), noisy)) == 2
    assert [(c.label, c.seed) for c in R.more_seeds(over, half)] == [("PEMSCL", 68)]  # a begun seed is finished


def test_plan_lifts_the_seed_budget_from_the_command_line(monkeypatch, capsys, tmp_path):
    # a profile over its seed budget offers no seed; --seed-budget-hours 0 lifts the cap, and the
    # seeds it then offers are the same configs (same keys) as under the profile's own budget
    p = dataclasses.replace(X.get_profile("smoke"), more_seeds=(68,), seed_budget_hours=0.1)
    rng = np.random.default_rng(0)
    noisy = [_counted(c, rng.integers(0, 11, 30).tolist()) for c in X.headline(p) if c.label in ("ATL", "PEMSCL")]
    monkeypatch.setitem(X.PROFILES, "smoke", p)
    monkeypatch.setattr(RS, "load_exported", lambda *a, **k: list(noisy))
    monkeypatch.setenv("PEMSCL_RUNS", str(tmp_path))  # no local run folders

    def due(*extra):
        assert R.main(["--profile", "smoke", "--plan", *extra]) == 0
        return capsys.readouterr().out.splitlines()[-1]

    assert due().endswith("is under 0.1 h; due now: none")  # 0.74 h recorded
    assert due("--seed-budget-hours", "0").endswith("wider than the paper's effect; due now: ATL seed 68, PEMSCL seed 68")
    assert due("--seed-budget-hours", "1").endswith("is under 1 h; due now: ATL seed 68, PEMSCL seed 68")
    assert X.get_profile("smoke").seed_budget_hours == 0.1  # the override changed no profile
    assert [c.key() for c in R.more_seeds(dataclasses.replace(p, seed_budget_hours=None), noisy)] == \
        [c.key() for c in X.extra_seed_configs(p, [68])]


def test_makespan_packs_longest_first_onto_the_first_free_worker():
    # 3, 3 go to the two workers, then 2, 2, 2 alternate: 3+2+2 = 7 (the best packing is 6: list
    # scheduling, not an optimum)
    assert X.makespan([2, 3, 2, 3, 2], 2) == 7
    assert X.makespan([5, 1, 1], 2) == 5  # the longest run bounds it
    assert X.makespan([4, 4, 4], 1) == 12 and X.makespan([], 2) == 0


def test_expected_minutes_is_the_whole_budget_at_the_slowest_recorded_pace():
    cfg = X.headline("cpu")[0]
    assert R._expected_minutes(cfg, [], epoch_minutes=4.0) == 4.0 * cfg.epochs
    same = _run("a", 66, 0.5, 0.5, cfg=CF.override(cfg, seed=70), epochs_run=10, seconds=10 * 180.0)
    slower = _run("b", 66, 0.5, 0.5, cfg=CF.override(cfg, seed=71), epochs_run=4, seconds=4 * 240.0)
    other_kind = _run("c", 66, 0.5, 0.5, cfg=CF.override(cfg, train_layers=2), epochs_run=1, seconds=6000.0)
    assert R._expected_minutes(cfg, [same, other_kind], 4.0) == pytest.approx(3.0 * cfg.epochs)
    assert R._expected_minutes(cfg, [same, slower, other_kind], 4.0) == pytest.approx(4.0 * cfg.epochs)
    # another regime of the same kind stands in when the run's own regime has nothing recorded
    oog = CF.override(cfg, regime="oog-mini")
    assert R._expected_minutes(oog, [same], 4.0) == pytest.approx(3.0 * cfg.epochs)
    # a cap of 400 documents paces like any run that trained on 400, not like one on 200
    capped = CF.override(cfg, regime="oog-mini", max_train_docs=400)
    on_400 = _run("d", 66, 0.5, 0.5, cfg=same.config, epochs_run=10, seconds=10 * 120.0, n_docs={"train": 400})
    on_200 = _run("e", 66, 0.5, 0.5, cfg=slower.config, epochs_run=4, seconds=4 * 600.0, n_docs={"train": 200})
    assert R._expected_minutes(capped, [on_400, on_200], 4.0) == pytest.approx(2.0 * cfg.epochs)
    assert R._expected_minutes(capped, [on_200], 4.0) == pytest.approx(4.0 * cfg.epochs)  # nothing on 400


def test_train_profile_side_by_side_records_each_run_and_respects_the_budget(tmp_path, monkeypatch):
    from pemscl import runs

    monkeypatch.setenv("PEMSCL_RESULTS", str(tmp_path / "results"))
    root = tmp_path / "runs"
    # no run fits in a budget of a few seconds (an unrecorded kind is expected to take 4 minutes an epoch)
    n = len(X.headline("smoke"))
    lines = R.train_profile("smoke", only=["headline"], workers=2, threads=1, budget_minutes=0.05, root=root)
    assert lines == [f"{n} runs left untrained: none fits in what is left of the budget (the shortest needs "
                     f"<= {4 * X.headline('smoke')[0].epochs} min at the slowest recorded pace)"]
    assert len(R.missing(X.headline("smoke"), root)) == n
    lines = R.train_profile("smoke", only=["headline"], workers=2, threads=1, root=root)
    cfgs = X.headline("smoke")
    assert len(lines) == len(cfgs) and R.missing(cfgs, root) == []
    recorded = runs.load_exported()
    assert sorted(r.config.key() for r in recorded) == sorted(c.key() for c in cfgs)
    assert all(r.scores["threads"] == 1 for r in recorded)
    # what is recorded is not trained again, even without the run folders (a fresh clone)
    import shutil
    shutil.rmtree(root)
    assert R.train_profile("smoke", only=["headline"], workers=2, root=root) == []
    # but the models notebooks 05/06 load are: trained again side by side, the recorded runs kept as judged
    before = {r.config.key(): r.scores for r in runs.load_exported()}
    want = X.weight_configs("smoke")
    assert {c.key() for c in want} == {c.key() for c in (*X.scl_configs("smoke"), *X.headline_configs("smoke"))}
    lines = R.train_profile("smoke", workers=2, threads=1, root=root, weights=True)
    assert len(lines) == len(want) and all(runs.find_run(c, root) is not None for c in want)
    again = [c for c in want if c.key() in before]
    assert again and sum("trained for its weights; recorded run kept" in line for line in lines) == len(again)
    after = {r.config.key(): r.scores for r in runs.load_exported()}
    assert all(after[k] == before[k] for k in before)  # nothing judged changed
    assert set(after) == set(before) | {c.key() for c in want}  # a model not recorded yet is recorded
    assert R.train_profile("smoke", workers=2, threads=1, root=root, weights=True) == []  # all here now


def test_plan_from_the_command_line(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PEMSCL_RESULTS": str(tmp_path), "PEMSCL_RUNS": str(tmp_path / "runs")}  # nothing trained
    out = subprocess.run([sys.executable, "-m", "pemscl.runner", "--profile", "cpu", "--plan"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    n = len(X.all_configs("cpu"))
    assert lines[0].startswith("ATL ") and lines[1].startswith("PEMSCL ")  # the claim pairs first
    assert f"{n} of {n} runs missing" in lines and lines[-1].endswith("due now: none")
    # nothing recorded: every run is expected at --epoch-minutes (4) for its whole epoch budget
    hours = sum(c.epochs * 4.0 for c in X.all_configs("cpu")) / 60
    assert f"at most {hours:.1f} hours of training" in out.stdout


def test_a_recorded_run_carries_over_to_a_later_min_epochs_only_if_it_never_stopped_before_it(tmp_path):
    old = CF.preset("cpu", loss=LS.loss_spec("atl"), seed=66, label="ATL", min_epochs=None)
    new = CF.override(old, min_epochs=15)
    assert RS.carries_over(old, {"stopped_early": True, "epochs_run": 17}, new)  # stopped at 17: the same run
    assert RS.carries_over(old, {"stopped_early": True, "epochs_run": 15}, new)
    assert RS.carries_over(old, {"stopped_early": False, "epochs_run": 18}, new)  # ran its whole budget
    assert not RS.carries_over(old, {"stopped_early": True, "epochs_run": 10}, new)  # new would go on
    assert not RS.carries_over(new, {"stopped_early": False, "epochs_run": 18}, old)  # old may stop sooner
    assert not RS.carries_over(old, {"stopped_early": False}, CF.override(new, seed=67))  # another run
    # a folder here is copied under the new key, with its config and the key it came from
    root = tmp_path / "runs"
    full = RS.Run(dir=root / old.folder_name(), config=old, history=[{"epoch": 1}],
                 scores={"stopped_early": True, "epochs_run": 16, "dev": {"f1": 0.5}})
    full.dir.mkdir(parents=True)
    for name, obj in (("config.json", old), ("scores.json", full.scores), ("history.json", full.history)):
        atomic_write_json(full.dir / name, obj)
    (full.dir / "DONE").write_text("")
    cut = _run("ATL", 67, 0.4, 0.4, cfg=CF.override(old, seed=67), stopped_early=True, epochs_run=10)
    planned = [new, CF.override(new, seed=67)]
    carried = RS.carry_over(planned, [full, cut], root)
    assert [r.config.key() for r in carried] == [new.key()]  # seed 67 stopped at 10: it must be retrained
    run = RS.Run.load(carried[0].dir)
    assert run.config.key() == new.key() and run.scores["carried_from"] == old.key()
    assert run.scores["dev"] == {"f1": 0.5} and run.history == [{"epoch": 1}]
    assert RS.carry_over(planned, [full, cut], root, copy=False)[0].scores == carried[0].scores
    assert RS.carry_over(planned, [full, cut, carried[0]], root) == []  # recorded already


def test_a_carried_run_is_recorded_as_a_pointer_that_loads_as_the_full_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PEMSCL_RUNS", str(tmp_path / "runs"))
    old = CF.preset("cpu", loss=LS.loss_spec("atl"), seed=66, label="ATL", min_epochs=None)
    new = CF.override(old, min_epochs=15)
    src = _run("ATL", 66, 0.5, 0.45, cfg=old, stopped_early=False, epochs_run=18,
               doc_counts={"test": [[3, 2, 0, 4]] * 500})  # per-document counts: most of a real record
    src.history = [{"epoch": 1, "dev_f1": 0.4}, {"epoch": 2, "dev_f1": 0.5}]
    carried = RS.carry_over([new], [src], copy=False)
    path = tmp_path / "runs.jsonl"
    RS.export_runs([src], path)
    full = path.stat().st_size
    RS.export_runs(carried, path)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    pointer = next(r for r in lines if r["key"] == new.key())
    assert pointer["carried_from"] == old.key() and "scores" not in pointer and "history" not in pointer
    assert path.stat().st_size < 1.5 * full  # a second full copy would double it
    loaded = RS.by_key(RS.load_exported(path))
    assert loaded[new.key()].scores == carried[0].scores and loaded[new.key()].history == src.history
    assert loaded[new.key()].config == new
    # the source trained again: the carried run keeps the scores it was carried with, in full
    RS.export_runs([_run("ATL", 66, 0.6, 0.55, cfg=old, stopped_early=False, epochs_run=18)], path)
    loaded = RS.by_key(RS.load_exported(path))
    assert loaded[old.key()].scores["test"]["f1"] == pytest.approx(0.55)
    assert loaded[new.key()].scores == carried[0].scores
    # a pointer whose source line is gone names its line
    lost = tmp_path / "lost.jsonl"
    RS.export_runs([src, *carried], lost)
    kept = [x for x in lost.read_text().splitlines() if json.loads(x)["key"] != old.key()]
    assert len(kept) == 1 and "scores" not in json.loads(kept[0])
    lost.write_text(kept[0] + "\n")
    with pytest.raises(ValueError, match=rf"lost.jsonl:1 .*carried over from {old.key()}"):
        RS.load_exported(lost)


def test_the_record_leaves_out_count_rows_the_groups_sum_to_and_loads_them_back(tmp_path, monkeypatch):
    monkeypatch.setenv("PEMSCL_RUNS", str(tmp_path / "runs"))
    head, mid, tail = [[3, 2, 1, 4], [0, 0, 0, 1]], [[1, 1, 0, 1], [2, 0, 0, 0]], [[0, 0, 0, 0], [1, 1, 0, 2]]
    summed = {"all": [[4, 3, 1, 5], [3, 1, 0, 3]], "head": head, "mid": mid, "tail": tail}
    # dev: a fact of a relation in no group, so "all" is more than the groups' sum and must stay
    other = {"all": [[5, 3, 1, 5], [3, 1, 0, 3]], "head": head, "mid": mid, "tail": tail}
    bare = {"all": [[1, 1, 0, 2]]}  # no groups: nothing to rebuild it from
    counts = {"test": summed, "dev": other, "dev_gold": bare}
    run = _run("ATL", 66, 0.5, 0.45, doc_counts=counts)
    path = tmp_path / "runs.jsonl"
    RS.export_runs([run], path)
    (line,) = path.read_text().splitlines()
    assert ", " not in line and '": ' not in line  # written without spaces
    stored = json.loads(line)["scores"]["doc_counts"]
    assert "all" not in stored["test"] and stored["dev"] == other and stored["dev_gold"] == bare
    (back,) = RS.load_exported(path)
    assert back.scores["doc_counts"] == counts and back.scores == json.loads(json.dumps(run.scores))
    # a line written before compaction (spaces, "all" rows kept) loads the same, and merging
    # another run rewrites it compactly without changing what it loads as
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps(RS.to_record(run), sort_keys=True) + "\n")
    assert RS.load_exported(old)[0].scores == back.scores
    RS.export_runs([_run("ATL", 67, 0.5, 0.45)], old)
    rewritten = next(x for x in old.read_text().splitlines() if json.loads(x)["key"] == run.config.key())
    assert rewritten == line
    assert RS.by_key(RS.load_exported(old))[run.config.key()].scores == back.scores


def test_interrupted_runs_are_scheduled_first_and_budgeted_for_their_remaining_epochs(tmp_path):
    cfgs = X.all_configs("cpu")
    late = next(c for c in R.schedule("cpu", cfgs) if c.train_layers is not None)  # scheduled last otherwise
    d = RS.run_dir_for(late, tmp_path)
    d.mkdir(parents=True)
    (d / T.STATE).write_bytes(b"")
    atomic_write_json(d / "history.json", [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}])
    assert R.epochs_done(late, tmp_path) == 3 and R.epochs_done(cfgs[0], tmp_path) == 0
    assert R.schedule("cpu", cfgs, tmp_path)[0].key() == late.key()
    assert R._expected_minutes(late, [], 4.0, tmp_path) == 4.0 * (late.epochs - 3)
    (d / "DONE").write_text("")  # a complete run has nothing left to resume
    assert R.epochs_done(late, tmp_path) == 0


def test_status_lists_interrupted_and_running_runs_with_their_pace(tmp_path):
    import os

    c = next(x for x in X.headline("cpu") if x.label == "PEMSCL" and x.seed == 67)
    d = RS.run_dir_for(c, tmp_path)
    d.mkdir(parents=True)
    (d / "state.pt").write_bytes(b"")
    hist = [{"epoch": i + 1, "dev_f1": f, "train_seconds": 150.0, "eval_seconds": 30.0}
            for i, f in enumerate([0.30, 0.45, 0.42])]
    (d / "history.json").write_text(json.dumps(hist))
    assert R.in_progress("smoke", tmp_path) == []  # another profile's config: not listed
    (row,) = R.in_progress("cpu", tmp_path)
    assert (row["label"], row["seed"], row["epochs_done"], row["epochs"]) == ("PEMSCL", 67, 3, c.epochs)
    assert (row["last_f1"], row["best_f1"], row["best_epoch"]) == (0.42, 0.45, 2)
    assert row["minutes_per_epoch"] == pytest.approx(3.0)          # (150 + 30) s
    assert row["minutes_left"] == pytest.approx(3.0 * (c.epochs - 3))
    assert row["pid"] is None and "interrupted" in R.progress_lines([row])[0]
    if not Path("/proc/locks").exists():
        pytest.skip("no /proc/locks here: who holds a run is unknown off Linux")
    with RS.training(d):  # what train() holds while it trains: /proc/locks names this process
        (row,) = R.in_progress("cpu", tmp_path)
        assert row["pid"] == os.getpid()
        line = R.progress_lines([row])[0]
        assert f"training (pid {os.getpid()})" in line and "dev F1 42.0 (best 45.0 at 2)" in line
    assert R.in_progress("cpu", tmp_path)[0]["pid"] is None  # released
    # a run in its first epoch has saved nothing, yet is listed while its trainer holds it
    first = next(x for x in X.headline("cpu") if x.label == "ATL" and x.seed == 68)
    f = RS.run_dir_for(first, tmp_path)
    f.mkdir(parents=True)
    assert [r["seed"] for r in R.in_progress("cpu", tmp_path)] == [67]  # an idle empty folder: not listed
    with RS.training(f):
        rows = {r["seed"]: r for r in R.in_progress("cpu", tmp_path)}
        assert (rows[68]["label"], rows[68]["epochs_done"], rows[68]["pid"]) == ("ATL", 0, os.getpid())
        assert "in its first epoch" in R.progress_lines([rows[68]])[0]
    assert [r["seed"] for r in R.in_progress("cpu", tmp_path)] == [67]
    (d / "DONE").write_text("")
    assert R.in_progress("cpu", tmp_path) == [] and "no run" in R.progress_lines([])[0]
    # an extra seed of the headline (train_profile adds them after the fixed list) is listed too
    extra = X.extra_seed_configs("cpu", [69])[0]
    e = RS.run_dir_for(extra, tmp_path)
    e.mkdir(parents=True)
    (e / "state.pt").write_bytes(b"")
    (e / "history.json").write_text(json.dumps(hist[:1]))
    assert [(r["label"], r["seed"], r["epochs_done"]) for r in R.in_progress("cpu", tmp_path)] == [(extra.label, 69, 1)]


def test_runs_on_original_labels_get_their_own_epoch_budget():
    # cpu: 24 epochs (early stopping not before 20) on oog-mini, fast path included; 18 / 15 elsewhere
    for c in X.all_configs("cpu"):
        want = (24, 20) if c.regime == "oog-mini" else (18, 15)
        assert (c.epochs, c.min_epochs) == want, (c.label, c.regime)
    # profiles without original_epochs keep one budget for every regime (quick's keys do not move)
    quick = {c.regime: (c.epochs, c.patience) for c in X.all_configs("quick")}
    assert set(quick.values()) == {(4, None)} and "oog-mini" in quick  # no early stopping there at all


def test_faithfulness_doc_names_each_measured_option_of_a_difference():
    from pemscl import faithfulness as FA

    labels = {lab for lab, _, _ in X.FAITHFULNESS}
    assert all(set(d.rows) <= labels for d in FA.DIFFERENCES)  # every row a difference names exists
    five = next(d for d in FA.DIFFERENCES if d.number == 5)
    measured = {"gamma2 over sampled negatives (#5, NS)": {"delta_test_f1": -0.0067}}
    # the cpu profile skips the batch-average row but measures the sampled-count one: both are named
    assert FA.effect(five, measured) == ("EM batch-average weights (#5): not run; "
                                         "gamma2 over sampled negatives (#5, NS): -0.7 F1")
    one = next(d for d in FA.DIFFERENCES if d.number == 2)
    assert FA.effect(one, {"NA anchors (#2)": {"delta_test_f1": -0.0311}}) == "-3.1 F1"
    assert FA.effect(one, {}) == "not run"
    assert FA.effect(next(d for d in FA.DIFFERENCES if not d.rows), measured) == "no option"


def _curve(*f1s, key="dev_f1"):
    return [{"epoch": i + 1, key: f} for i, f in enumerate(f1s)]


def test_a_claim_bearing_run_cut_short_is_trained_again_longer_and_stands_in_for_it(tmp_path, monkeypatch):
    p = dataclasses.replace(X.get_profile("smoke"), longer=(3, 2))
    assert X.longer_configs(p, []) == {}
    flat, climbing = _curve(0.50, 0.56, 0.55, 0.54), _curve(0.50, 0.52, 0.54, 0.56)  # converged / +2 F1 at the end
    runs = [_counted(c, [5] * 30) for c in X.headline(p) + X.ablation(p) + X.original_labels(p)]
    runs = list({r.config.key(): r for r in runs}.values())
    for r in runs:
        r.history = flat
    pick = lambda label, seed, regime=p.gold_regime: next(  # noqa: E731
        r for r in runs if (r.config.label, r.config.seed, r.config.regime) == (label, seed, regime))
    atl67 = pick("ATL", 67)
    # (BCE is a leaderboard row since issue 26, so its cut-short runs are trained longer too: kept flat here)
    atl67.history = climbing
    # original-label runs are end points by gold dev: climbing on original dev alone is not cut short
    ns = pick("PEMSCL+NS", 66, p.oog_regime)
    ns.history = [h | g for h, g in zip(climbing, _curve(0.30, 0.35, 0.34, 0.33, key="dev_gold_f1"))]
    longer = X.longer_configs(p, runs)
    assert list(longer) == [atl67.config.key()]
    new = longer[atl67.config.key()]
    assert (new.label, new.seed, new.regime, new.epochs, new.min_epochs) == ("ATL", 67, p.gold_regime, 3, 2)
    assert new.key() != atl67.config.key() and CF.override(new, epochs=1, min_epochs=None).key() == atl67.config.key()
    assert X.longer_configs(dataclasses.replace(p, longer=None), runs) == {}  # without `longer`: kept as they are
    assert [c.key() for c in R.after_the_list(p, runs, root=tmp_path / "runs")] == [new.key()]
    # --plan and train_profile read one list; a row filter keeps its rows' longer runs, and only theirs
    for_atl = [c.key() for c in R.planned_runs(p, runs, labels=["ATL"])]
    assert new.key() in for_atl and atl67.config.key() in for_atl
    assert new.key() not in {c.key() for c in R.planned_runs(p, runs, labels=["PEMSCL"])}
    assert new.key() in {c.key() for c in R.planned_runs(p, runs)}
    assert new.key() in {c.key() for c in X.profile_configs(p, records=runs)}
    # until the longer run is in, the tables read the short one and list the longer one to train
    t = TB.build_tables(runs, p)
    assert t["missing"]["longer"] == ["ATL (redocred-mini, seed 67, 3 epochs)"]
    assert REP.longer_line(t["longer"]).endswith("): ATL (redocred-mini, seed 67): still to train.")
    assert t["cost"]["n_planned"] == len({c.key() for c in X.all_configs(p)}) + 1
    claim = next(c for c in C.judge(runs, p) if c["id"] == "pemscl-vs-atl")
    assert atl67.config.key() in claim["runs_b"] and [x["key"] for x in claim["cut_short"]] == [atl67.config.key()]
    # the longer run (converged, 2 more correct facts a document) takes the short one's place
    done = _counted(new, [7] * 30)
    done.history = flat
    runs.append(done)
    t = TB.build_tables(runs, p)
    assert "longer" not in t["missing"] and t["cost"]["n_planned"] == len({c.key() for c in X.all_configs(p)}) + 1
    # the short run leaves the tables but not the cost: it was trained
    assert t["cost"]["n_runs"] == len(runs) and t["cost"]["total_seconds"] == sum(r.scores["seconds"] for r in runs)
    assert t["cost"]["per_experiment_seconds"]["replaced"] == atl67.scores["seconds"]
    claim = next(c for c in C.judge(runs, p) if c["id"] == "pemscl-vs-atl")
    assert claim["runs_b"] == [pick("ATL", 66).config.key(), new.key()] and claim["cut_short"] == []
    assert claim["seed_diffs"] == pytest.approx([0.0, -0.2])  # seed 67: 5 against 7 correct of 10
    atl = next(r for r in t["table2"] if r["label"] == "ATL")
    assert atl["n"] == 2 and atl["test_f1"] == pytest.approx(0.6)  # (0.5 + 0.7) / 2
    assert R.after_the_list(p, runs, root=tmp_path / "runs") == []
    assert ("- Cut short, so trained again with a longer budget (1 → 3 epochs; the tables and claims read the longer "
            "run, the record keeps both): ATL (redocred-mini, seed 67): dev F1 56.0 → 56.0 (best epoch 2, converged), "
            "test F1 50.0 → 70.0.") in REP.summary_lines(t, C.judge(runs, p))
    # the record keeps the longer run (and the short one it replaced); results name their profile
    monkeypatch.setitem(X.PROFILES, "smoke", p)
    REP.write_results(t, [], tmp_path, runs=runs)
    keys = {r.config.key() for r in RS.load_exported(tmp_path / "runs.jsonl")}
    assert {new.key(), atl67.config.key()} <= keys


def test_retarget_makes_another_run_kind_at_other_seeds():
    base = X.leaderboard("cpu")
    gpu = X.retarget(base, device="cuda", seeds=[66, 70], labels=["AFL"])
    assert [(c.label, c.regime, c.seed) for c in gpu] == [("AFL", "redocred-mini", 66), ("AFL", "redocred-mini", 70),
                                                         ("AFL", "oog-mini", 66), ("AFL", "oog-mini", 70)]
    cpu66 = next(c for c in base if c.label == "AFL" and c.regime == "redocred-mini" and c.seed == 66)
    # the same run but for its device: only the device type tells the keys apart
    diff = {k for k in set(gpu[0].hashed()) | set(cpu66.hashed()) if gpu[0].hashed().get(k) != cpu66.hashed().get(k)}
    assert diff == {"device_type"} and gpu[0].key() != cpu66.key()
    assert X.retarget(base) == base  # nothing asked: the same list
    assert X.retarget(base + base, seeds=[66]) == [c for c in base if c.seed == 66]  # duplicates dropped
    assert X.retarget(base, labels=["nope"]) == []


def test_plan_of_another_run_kind_from_the_command_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PEMSCL_RESULTS", str(tmp_path))
    monkeypatch.setenv("PEMSCL_RUNS", str(tmp_path / "runs"))  # nothing trained, nothing recorded
    assert R.main(["--only", "leaderboard", "--device", "cuda", "--seeds", "66 69", "--labels", "AFL,SSR-PU",
                   "--plan"]) == 0
    out = capsys.readouterr().out.splitlines()
    want = X.retarget(X.leaderboard("cpu"), device="cuda", seeds=[66, 69], labels=["AFL", "SSR-PU"])
    assert sorted(line.split()[-4] for line in out if "<= " in line) == sorted(c.key() for c in want)
    assert "8 of 8 runs missing" in out and not any("due now" in line for line in out)  # no seeds added after
    assert any("not of cuda" in line for line in out)
    with pytest.raises(SystemExit):
        R.main(["--only", "leaderboard", "--labels", "AFX", "--plan"])
    assert "no row labelled AFX in leaderboard; rows: AFL, ATL," in capsys.readouterr().err

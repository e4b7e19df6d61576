"""Experiment config lists per profile, summarising over seeds, claim verdicts, results files."""

import dataclasses
import json
import math
from pathlib import Path

import pytest

from pemscl import experiments as X
from pemscl import results as R
from pemscl import train as T


# --------------------------------------------------------------------------- config lists
@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_experiment_labels_and_sizes(profile):
    p = X.get_profile(profile)
    h = X.headline(profile)
    assert [c.label for c in h] == ["ATL", "BCE", "NCRL", "PEMSCL"] * p.headline_seeds
    assert [c.loss.kind for c in h[:4]] == ["atl", "bce", "ncrl", "pemscl"]
    assert {c.regime for c in h} == {p.gold_regime}

    a = X.ablation(profile)
    assert len(a) == 4 * len(p.seeds)
    assert [c.label for c in a[:4]] == ["PEMSCL", "no EM", "no SCL", "no EM, no SCL"]
    assert sorted({c.seed for c in a}) == sorted(p.seeds)
    assert len({c.key() for c in a}) == len(a)  # every ablation run is distinct

    n = X.noisy(profile)
    regimes = [p.oog_regime] if p.ogg_from_oog else [p.oog_regime, p.ogg_regime]
    assert [c.regime for c in n] == [g for g in regimes for _ in range(4 * p.noisy_seeds)]
    assert [c.label for c in n[:4]] == ["ATL", "NCRL", "PEMSCL", "PEMSCL+NS"]
    assert n[3].loss.neg_sample_ratio == pytest.approx(p.ns_ratio)
    assert all("dev_gold" in c.track for c in n if c.regime == p.oog_regime)

    s = X.ratio_sweep(profile)
    atl_ratios = p.ratios if p.atl_ratios is None else p.atl_ratios
    assert len(s) == (len(p.ratios) + len(atl_ratios)) * p.sweep_seeds
    assert sorted(X.sweep_point(c) for c in s) == sorted([("PEMSCL", r) for r in p.ratios]
                                                         + [("ATL", r) for r in atl_ratios])

    f = X.faithfulness(profile)
    wanted = [lab for lab, _, _ in X.FAITHFULNESS if lab != X.TOP4 and (
        p.faithfulness_rows is None or lab in p.faithfulness_rows or lab.startswith("paper default"))]
    assert [c.label for c in f] == wanted * p.faithfulness_seeds
    assert X.TOP4 not in [c.label for c in f]  # a decision rule: scored on the default run, not trained


def test_cpu_profile_full_finetuning_for_headline_fast_path_elsewhere():
    assert all(c.train_layers is None for c in X.headline("cpu"))
    for fn in (X.ablation, X.noisy, X.ratio_sweep, X.faithfulness):
        assert all(c.train_layers == X.FAST_LAYERS for c in fn("cpu"))
    assert len(X.get_profile("cpu").seeds) >= 3
    assert X.get_profile("cpu").ratios[0] < X.get_profile("cpu").ns_ratio < X.get_profile("cpu").ratios[-1] == 1.0


def test_layers_experiment_shares_runs_with_headline_and_ablation():
    p = X.get_profile("cpu")
    lay = X.layers("cpu")
    assert [c.train_layers for c in lay] == [None, *p.layer_counts]
    assert all(c.loss == lay[0].loss and c.seed == p.seeds[0] and c.epochs == lay[0].epochs for c in lay)
    head = next(c for c in X.headline("cpu") if c.label == "PEMSCL")
    assert lay[0].key() == head.key()  # full fine-tuning is the headline PEMSCL run
    if p.headline_epochs == p.fast_epochs and X.FAST_LAYERS in p.layer_counts:
        abl = next(c for c in X.ablation("cpu") if c.label == "PEMSCL" and c.seed == p.seeds[0])
        assert abl.key() in {c.key() for c in lay}
    assert X.layers("smoke") == [] or all(c.epochs == 1 for c in X.layers("smoke"))


def test_search_points_change_one_field_against_the_shared_reference():
    p = X.get_profile("cpu")
    srch = X.search("cpu")
    ref = srch[0]
    abl = next(c for c in X.ablation("cpu") if c.label == "PEMSCL" and c.seed == p.seeds[0])
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
    assert all(c.encoder == "roberta-large" and c.regime == "redocred" and c.train_layers is None for c in h)
    pem = next(c for c in h if c.label == "PEMSCL")
    assert pem.loss.tau == pytest.approx(0.2) and pem.loss.scl_weight == pytest.approx(0.1)
    # the named variants keep what they switch off, even where the preset tunes the loss
    a = {c.label: c for c in X.ablation("paper") if c.seed == 66}
    assert a["no SCL"].loss == X.make_loss(X.get_profile("paper"), "pemscl-no-scl")
    assert a["no SCL"].loss != a["PEMSCL"].loss and a["no SCL"].loss.tau == pytest.approx(0.2)
    assert {c.regime for c in X.noisy("paper")} == {"oog", "ogg"}


def test_shared_configs_are_trained_once():
    keys = lambda cs: {c.key(): c for c in cs}  # noqa: E731
    abl = [c for c in X.ablation("cpu") if c.label == "PEMSCL" and c.seed == X.get_profile("cpu").seeds[0]]
    f = {c.label: c for c in X.faithfulness("cpu")}
    n = {c.label: c for c in X.noisy("cpu")}
    assert f["paper default"].key() == abl[0].key()
    assert f["paper default +NS"].key() == n["PEMSCL+NS"].key()
    sweep = keys(X.ratio_sweep("cpu"))
    assert n["PEMSCL"].key() in sweep and n["ATL"].key() in sweep  # ratio 1.0 = the plain loss
    assert n["PEMSCL+NS"].key() in sweep  # ratio 0.1
    all_cfgs = X.all_configs("cpu")
    assert len(all_cfgs) == len({c.key() for c in all_cfgs})
    assert len(all_cfgs) < sum(len(fn("cpu")) for fn in X.EXPERIMENTS.values())


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
    cfg = cfg or T.TrainConfig(label=label, seed=seed)
    scores = {"best_epoch": 1, "threshold": None, "dev": {"f1": dev_f1, "ign_f1": dev_f1 - 0.01},
              "test": {"f1": test_f1, "ign_f1": test_f1 - 0.01}, "seconds": 10.0 * seed, "peak_rss_mb": 100.0,
              "device": "cpu", "precision": "fp32", **extra}
    return T.Run(dir=Path(f"/nonexistent/{label}-{seed}"), config=cfg, scores=scores, history=[])


def test_summarise_mean_and_sample_std():
    runs = [_run("A", 1, 0.50, 0.40), _run("A", 2, 0.52, 0.44), _run("A", 3, 0.54, 0.48), _run("B", 1, 0.30, 0.20), None]
    rows = X.summarise(runs, metrics=("dev_f1", "test_f1", "seconds"))
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
    out = X.summarise(rows, by=("model", "ratio"), metrics=("x",))
    assert [(r["ratio"], r["n"], r["x"]) for r in out] == [(0.1, 2, 2.0), (1.0, 1, 5.0)]
    assert out[0]["x_std"] == pytest.approx(math.sqrt(2.0))


def test_flat_scores_keeps_ogg_view():
    r = _run("A", 1, 0.5, 0.4, by_dev_gold={"epoch": 2, "dev_gold_f1": 0.6, "test_f1": 0.45})
    row = X.flat_scores(r)
    assert row["by_dev_gold_test_f1"] == 0.45 and row["by_dev_gold_dev_gold_f1"] == 0.6
    assert row["dev_f1"] == 0.5 and row["label"] == "A" and row["loss"] == "pemscl"


# --------------------------------------------------------------------------- build_tables
def test_build_tables_matches_runs_by_config_hash():
    # fake runs for the smoke ablation and noisy configs, stored under other labels
    runs = []
    for i, c in enumerate(X.ablation("smoke")):
        runs.append(_run("whatever", c.seed, 0.5 + 0.01 * i, 0.4, cfg=T.override(c, label="folder-name")))
    for c in X.noisy("smoke"):
        runs.append(_run("x", c.seed, 0.3, 0.2, cfg=c, dev_gold={"f1": 0.35},
                         by_dev_gold={"epoch": 1, "dev_gold_f1": 0.36, "test_f1": 0.25, "test_ign_f1": 0.24}))
    t = R.build_tables(runs, "smoke")
    assert t["profile"] == "smoke"
    t3 = {r["label"]: r for r in t["table3"]}
    assert list(t3) == ["PEMSCL", "no EM", "no SCL", "no EM, no SCL"]
    # seeds 66 (i = 0..3) and 67 (i = 4..7): PEMSCL dev F1 0.50 and 0.54
    assert t3["PEMSCL"]["n"] == 2 and t3["PEMSCL"]["dev_f1"] == pytest.approx(0.52)
    assert t3["PEMSCL"]["dev_f1_std"] == pytest.approx(math.sqrt(0.0008))
    assert t3["PEMSCL"]["paper"]["dev_f1"] == pytest.approx(79.89)
    t4 = {(r["regime"], r["label"]): r for r in t["table4"]}
    assert t4[("OOG", "PEMSCL+NS")]["orig_dev_f1"] == pytest.approx(0.3)
    assert t4[("OOG", "PEMSCL+NS")]["gold_dev_f1"] == pytest.approx(0.35)
    assert t4[("OGG", "PEMSCL+NS")]["test_f1"] == pytest.approx(0.25)
    assert t4[("OGG", "PEMSCL+NS")]["gold_dev_f1"] == pytest.approx(0.36)
    # in smoke the headline PEMSCL config is the ablation's (same layers and epochs): shared
    assert [r["label"] for r in t["table2"]] == ["PEMSCL"] and len(t["missing"]["headline"]) == 3
    # noisy PEMSCL / ATL are also the sweep's ratio-1.0 points, PEMSCL+NS its 0.1 point
    assert {(r["model"], r["ratio"]) for r in t["figure2"]} == {("PEMSCL", 1.0), ("ATL", 1.0), ("PEMSCL", 0.1)}
    assert t["cost"]["n_runs"] == len(runs)
    fa = {r["label"]: r for r in t["faithfulness"]}
    assert "top-4 cap (#8)" not in fa  # the fake runs carry no test_top4 scores
    assert t["cost"]["total_seconds"] == pytest.approx(sum(r.scores["seconds"] for r in runs))
    assert R.infer_profile(runs) == "smoke"


def test_top4_row_is_the_default_runs_test_scored_with_the_cap():
    runs = []
    for c in X.faithfulness("smoke"):
        top4 = {"f1": 0.48, "ign_f1": 0.47, "tail_f1": 0.1} if c.label == "paper default" else None
        extra = {"test_top4": top4} if top4 else {}
        runs.append(_run("x", c.seed, 0.5, 0.45, cfg=c, **extra))
    fa = {r["label"]: r for r in R.build_tables(runs, "smoke")["faithfulness"]}
    assert fa["top-4 cap (#8)"]["test_f1"] == pytest.approx(0.48)
    assert fa["top-4 cap (#8)"]["test_ign_f1"] == pytest.approx(0.47)
    assert fa["top-4 cap (#8)"]["delta_test_f1"] == pytest.approx(0.48 - 0.45)
    assert fa["paper default"]["test_f1"] == pytest.approx(0.45)


# --------------------------------------------------------------------------- claims
def _row(label, n=3, **metrics):
    row = {"label": label, "n": n}
    for k, (mean, std) in metrics.items():
        row[k], row[f"{k}_std"] = mean, std
    return row


def _tables(pemscl=0.60, atl=0.50, std=0.01, em=0.55, tail_full=0.40, tail_em=0.30, head_em=0.58):
    t3 = [_row("PEMSCL", dev_f1=(0.60, std), dev_tail_f1=(tail_full, std), dev_head_f1=(0.60, std)),
          _row("no EM", dev_f1=(em, std), dev_tail_f1=(tail_em, std), dev_head_f1=(head_em, std)),
          _row("no SCL", dev_f1=(0.60, std), dev_tail_f1=(tail_full, std), dev_head_f1=(0.60, std))]
    return {"profile": "cpu", "noise": {"test_f1": std, "dev_f1": std},
            "table2": [_row("ATL", n=1, test_f1=(atl, None)), _row("PEMSCL", n=1, test_f1=(pemscl, None))],
            "table3": t3,
            "table4": [{"regime": g, **_row(lab, n=1, test_f1=(v, None))} for g in ("OOG", "OGG")
                       for lab, v in (("PEMSCL", 0.30), ("PEMSCL+NS", 0.45))],
            "figure2": [{"model": "PEMSCL", "ratio": r, "n": 1, "dev_f1": d, "test_f1": t, "test_f1_std": None}
                        for r, d, t in ((0.1, 0.30, 0.50), (0.5, 0.35, 0.45), (1.0, 0.40, 0.30))]}


def test_claim_verdicts_follow_numbers_and_spread():
    v = {c["id"]: c for c in R.claims(_tables())}
    # PEMSCL vs ATL: +0.10 with single runs; fallback seed std 0.01 -> SE 0.0141, 2 SE 0.028
    assert v["pmt-em-scl-beats-atl"]["verdict"] == "holds"
    assert "60.00 vs 50.00" in v["pmt-em-scl-beats-atl"]["evidence"]
    # EM: 0.60 vs 0.55 with std 0.01, n 3 each -> SE 0.0082: holds; SCL: no difference
    assert v["em-helps"]["verdict"] == "holds"
    assert v["scl-helps"]["verdict"] == "inconclusive (within noise)"
    # tail: -EM tail drop 0.10 vs head drop 0.02 (holds); -SCL no drop anywhere -> combined inconclusive
    assert v["em-scl-most-on-tail"]["verdict"] == "inconclusive (within noise)"
    assert v["ns-rescues-original-labels"]["verdict"] == "holds"
    # original dev peaks at 1.0, gold test at 0.1; 0.20 lost >> 2 SE
    c = v["original-dev-misleads-ratio"]
    assert c["verdict"] == "inconclusive (missing runs)"  # ATL has no sweep points
    assert c["numbers"][0]["ratio_by_dev"] == 1.0 and c["numbers"][0]["ratio_by_test"] == 0.1
    assert all(k in c for k in ("claim", "paper", "evidence"))


def test_claim_does_not_hold_and_no_spread():
    v = {c["id"]: c["verdict"] for c in R.claims(_tables(pemscl=0.40, atl=0.50))}
    assert v["pmt-em-scl-beats-atl"] == "does not hold"
    t = _tables(std=None)
    t["noise"] = {}
    for r in t["table3"]:
        r["n"] = 1
    v = {c["id"]: c["verdict"] for c in R.claims(t)}
    assert v["pmt-em-scl-beats-atl"] == "inconclusive (no spread)"
    assert v["em-helps"] == "inconclusive (no spread)"
    v = {c["id"]: c["verdict"] for c in R.claims({"profile": "cpu"})}
    assert set(v.values()) == {"inconclusive (missing runs)"}


def test_ratio_claim_does_not_hold_when_both_pick_the_same_ratio():
    t = _tables()
    t["figure2"] = [{"model": m, "ratio": r, "n": 1, "dev_f1": d, "test_f1": d}
                    for m in ("PEMSCL", "ATL") for r, d in ((0.1, 0.5), (0.3, 0.45), (1.0, 0.4))]
    c = next(c for c in R.claims(t) if c["id"] == "original-dev-misleads-ratio")
    assert c["verdict"] == "does not hold"


def test_ratio_claim_ignores_a_model_with_only_two_ratios():
    t = _tables()  # PEMSCL at 0.1, 0.5, 1.0: original dev picks 1.0, gold test 0.1
    t["figure2"] += [{"model": "ATL", "ratio": r, "n": 1, "dev_f1": 0.3, "test_f1": 0.3} for r in (0.1, 1.0)]
    c = next(c for c in R.claims(t) if c["id"] == "original-dev-misleads-ratio")
    assert c["verdict"] == "holds" and "too few" in c["evidence"]
    t["figure2"] = t["figure2"][-2:]  # ATL's two points alone: nothing to judge
    c = next(c for c in R.claims(t) if c["id"] == "original-dev-misleads-ratio")
    assert c["verdict"].startswith("inconclusive")


# --------------------------------------------------------------------------- files
README = """# project

intro text
<!-- results:start -->
old results
<!-- results:end -->

## After
tail text
"""


def test_update_readme_replaces_only_the_marked_section(tmp_path, monkeypatch):
    path = tmp_path / "README.md"
    path.write_text(README)
    R.update_readme("## New\n| a |\n|---|\n| 1 |\n", path)
    text = path.read_text()
    before, rest = text.split("<!-- results:start -->")
    inside, after = rest.split("<!-- results:end -->")
    assert before == "# project\n\nintro text\n"
    assert inside == "\n## New\n| a |\n|---|\n| 1 |\n"
    assert after == "\n\n## After\ntail text\n"
    monkeypatch.setenv("PEMSCL_README", str(path))
    R.update_readme("again")  # idempotent and follows the env var
    assert "again" in path.read_text() and "## New" not in path.read_text() and path.read_text().endswith("tail text\n")
    path.write_text("# no markers\n")
    with pytest.raises(ValueError, match="results:start"):
        R.update_readme("x", path)


def test_repository_readme_has_the_results_markers():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert text.count(R.README_START) == 1 and text.count(R.README_END) == 1
    assert text.index(R.README_START) < text.index(R.README_END)


def test_write_results_json_and_markdown(tmp_path):
    t = R.build_tables([], "smoke")
    v = R.claims(t)
    out = R.write_results(t, v, tmp_path)
    data = json.loads(out["json"].read_text())
    assert set(data) == {"tables", "claims", "published"}
    assert data["published"]["table2"]["PEMSCL"]["test_f1"] == 79.86
    md = out["md"].read_text()
    assert md.startswith("# Results (profile `smoke`)") and "## Claims" in md


def test_exported_runs_rebuild_the_same_tables(tmp_path):
    runs = []
    for i, c in enumerate(X.ablation("smoke") + X.noisy("smoke")):
        extra = {"dev_gold": {"f1": 0.3}, "by_dev_gold": {"epoch": 1, "dev_gold_f1": 0.3, "test_f1": 0.2}} \
            if c.regime == "oog-mini" else {}
        r = _run("x", c.seed, 0.4 + 0.01 * i, 0.3 + 0.02 * i, cfg=c, **extra)
        r.history = [{"epoch": 1, "dev_f1": 0.4, "dev_n_pred": 7, "train_loss": 2.0}]
        runs.append(r)
    other = _run("not-in-profile", 1, 0.9, 0.9)  # no smoke experiment has this config: left out
    t = R.build_tables(runs, "smoke")
    out = R.write_results(t, R.claims(t), tmp_path, runs=runs + [other])
    back = R.load_exported(out["runs"])
    assert len(back) == len(runs) and {r.config.key() for r in back} == {r.config.key() for r in runs}
    assert back[0].history[0] == {"epoch": 1, "dev_f1": 0.4, "train_loss": 2.0}  # counts dropped, F1 kept
    t2 = R.build_tables(back, "smoke")
    for name in ("table2", "table3", "table4", "figure2"):
        assert t2[name] == t[name], name
    # a record edited so that its config no longer matches its key is refused
    lines = out["runs"].read_text().splitlines()
    rec = json.loads(lines[0])
    rec["config"]["seed"] = 12345
    out["runs"].write_text(json.dumps(rec) + "\n")
    with pytest.raises(ValueError, match="hashes to"):
        R.load_exported(out["runs"])


def test_pct_and_table_md():
    assert R.pct(0.5234, 0.0123) == "52.3 ± 1.2" and R.pct(0.5) == "50.0" and R.pct(None) == "–"
    md = R.table_md([{"a": 1, "b": None}], [("A", "a"), ("B", "b"), ("C", lambda r: r["a"] + 1)])
    assert md.splitlines() == ["| A | B | C |", "|---|---|---|", "| 1 | – | 2 |"]

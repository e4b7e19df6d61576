"""Claim verdicts from fake runs with planted per-document counts (no training).

Counts are built so F1 is easy by hand: every document has 5 gold facts and 4 predictions,
so over n documents F1 = 2 * correct / (4n + 5n) = 2 * correct / (9n).
"""

import json
import statistics
from pathlib import Path

import pytest

from pemscl import claims as C
from pemscl import experiments as X
from pemscl import report as REP
from pemscl import runs as RS
from pemscl import stats as S
from pemscl import tables as TB

N_DOCS = 40


def rows(even: int, odd: int, n: int = N_DOCS, pred: int = 4, gold: int = 5) -> list[list[int]]:
    """Per-document [predicted, correct, correct_in_train, gold]: `even` correct on even
    documents, `odd` on odd ones."""
    return [[pred, even if i % 2 == 0 else odd, 0, gold] for i in range(n)]


def split_counts(even: int, odd: int, tail: tuple[int, int] | None = None, n: int = N_DOCS) -> dict:
    """doc_counts of one split: "all" as given; "tail" its own counts (one gold fact per doc,
    one prediction), "head" and "mid" fixed."""
    t_even, t_odd = tail or (1, 1)
    return {"all": rows(even, odd, n), "head": rows(2, 2, n, pred=2, gold=3), "mid": rows(1, 1, n, pred=1, gold=1),
            "tail": [[1, t_even if i % 2 == 0 else t_odd, 0, 1] for i in range(n)]}


def fake_run(cfg, test=(4, 3), dev=None, *, tail=None, dev_f1=0.5, gold_dev_f1=None, test_at_gold=None,
             n=N_DOCS) -> RS.Run:
    """A complete-looking run of cfg: doc_counts for dev, test (and dev_gold / test@dev_gold)."""
    dev = dev or test
    doc_counts = {"test": split_counts(*test, tail=tail, n=n), "dev": split_counts(*dev, n=n),
                  "dev_gold": split_counts(*dev, n=n), "test@dev_gold": split_counts(*(test_at_gold or test), n=n)}
    scores = {"best_epoch": 2, "epochs_run": 4, "converged": True, "stopped_early": True, "seconds": 1.0,
              "dev": {"f1": dev_f1}, "test": {"f1": 2 * sum(test) * n / 2 / (9 * n)}, "doc_counts": doc_counts}
    if gold_dev_f1 is not None:
        scores["by_dev_gold"] = {"epoch": 2, "dev_gold_f1": gold_dev_f1}
    return RS.Run(dir=Path(f"/nonexistent/{cfg.folder_name()}"), config=cfg, scores=scores, history=[])


def f1(even: int, odd: int) -> float:
    # half the documents even, half odd: correct = n/2 * (even + odd); F1 = 2c / 9n
    return (even + odd) / 9


def by_id(rows_):
    return {c["id"]: c for c in rows_}


def headline_runs(profile, pemscl=(4, 3), atl=(3, 2)):
    return [fake_run(c, pemscl if c.label == "PEMSCL" else atl) for c in X.headline(profile)]


# --------------------------------------------------------------------------- verdicts
def test_planted_pemscl_better_than_atl_holds_with_the_right_diff():
    c = by_id(C.judge(headline_runs("cpu"), "cpu"))["pemscl-vs-atl"]
    # PEMSCL 140 correct of 40 docs -> 280/360; ATL 100 -> 200/360: +80/360 on every seed
    assert c["diff"] == pytest.approx(f1(4, 3) - f1(3, 2)) == pytest.approx(80 / 360)
    assert c["verdict"] == "holds" and c["ci_low"] > 0
    assert c["n_seeds"] == 3 and c["seeds"] == [66, 67, 68]
    want_a = [x.key() for x in X.headline("cpu") if x.label == "PEMSCL"]
    want_b = [x.key() for x in X.headline("cpu") if x.label == "ATL"]
    assert c["runs_a"] == want_a and c["runs_b"] == want_b  # seed-matched, in seed order
    assert c["paper_effect"] == pytest.approx(0.0213) and c["missing"] == []
    assert c["dev_diff"] == pytest.approx(80 / 360)  # dev counts = test counts here
    # planning: the fewest seeds whose MDE reaches the paper's effect, named in the claim's note
    n = c["seeds_for_paper_effect"]
    assert n >= 2 and S.mde_with(n, c["doc_se"], c["seed_sd"]) <= 0.0213
    assert n == 2 or S.mde_with(n - 1, c["doc_se"], c["seed_sd"]) > 0.0213
    assert f"about {n} paired seeds would detect" in REP.claim_notes([c])[0]


def test_reversed_is_contradicted():
    c = by_id(C.judge(headline_runs("cpu", pemscl=(3, 2), atl=(4, 3)), "cpu"))["pemscl-vs-atl"]
    assert c["diff"] == pytest.approx(-80 / 360) and c["verdict"] == "contradicted" and c["ci_high"] < 0


def test_identical_runs_not_resolved_noisy_equal_runs_not_measurable():
    # the same counts: every resample gives 0, so se = mde = 0 <= 2 * 0.0213: "not resolved"
    c = by_id(C.judge(headline_runs("cpu", pemscl=(4, 3), atl=(4, 3)), "cpu"))["pemscl-vs-atl"]
    assert c["diff"] == 0 and c["mde"] == 0 and c["verdict"] == "not resolved"
    # equal totals but opposite per-document patterns on 10 documents: diff 0, and a resample's
    # difference is 4 (E - O) / (9 n) with E - O of sd sqrt(n): se ~ 4 / (9 sqrt 10) = 0.14,
    # mde ~ 0.39 > 2 * 0.0213: this setup could not have seen the paper's effect
    runs = [fake_run(c, (4, 2) if c.label == "PEMSCL" else (2, 4), n=10) for c in X.headline("cpu")]
    c = by_id(C.judge(runs, "cpu"))["pemscl-vs-atl"]
    assert c["diff"] == pytest.approx(0, abs=1e-12)
    assert c["se"] == pytest.approx(4 / (9 * 10 ** 0.5), rel=0.15)
    assert c["mde"] > 2 * 0.0213 and c["verdict"] == "not measurable here"


def test_ablation_claims_and_tail_pair_only_matched_seeds():
    # cpu: PEMSCL, no EM, no SCL have 3 seeds, "no EM, no SCL" only seed 66
    runs = []
    for c in X.ablation("cpu"):
        test = {"PEMSCL": (4, 3), "no EM": (3, 3), "no SCL": (4, 3), "no EM, no SCL": (4, 3)}[c.label]
        tail = (1, 1) if c.label == "PEMSCL" else (0, 1)  # removing both loses half the tail facts
        runs.append(fake_run(c, test, tail=tail))
    out = by_id(C.judge(runs, "cpu"))
    assert out["em-helps"]["diff"] == pytest.approx(f1(4, 3) - f1(3, 3)) and out["em-helps"]["verdict"] == "holds"
    assert out["scl-helps"]["diff"] == 0 and out["scl-helps"]["verdict"] == "not resolved"
    t = out["tail"]
    assert t["group"] == "tail" and t["n_seeds"] == 1 and t["seeds"] == [66] and t["missing"] == []
    # tail: 1 prediction and 1 gold fact per doc; PEMSCL 40 correct -> F1 1; without both 20 -> F1 0.5
    assert t["diff"] == pytest.approx(0.5) and t["verdict"] == "holds"
    assert t["context"]["head"]["diff"] == 0  # head counts are the same for every row
    assert t["paper_effect"] == pytest.approx(0.6351 - 0.6116)


def test_ns_rescues_uses_the_original_label_runs_and_gold_dev_beside():
    runs = [fake_run(c, (4, 4) if c.label == "PEMSCL+NS" else (2, 2), dev=(1, 1)) for c in X.original_labels("cpu")]
    c = by_id(C.judge(runs, "cpu"))["ns-rescues"]
    assert c["diff"] == pytest.approx(f1(4, 4) - f1(2, 2)) and c["verdict"] == "holds" and c["n_seeds"] == 3
    assert c["dev_split"] == "dev_gold" and c["dev_diff"] == 0  # dev counts identical for both rows
    assert c["paper_effect"] == pytest.approx(0.1293)


def test_missing_runs_are_reported_not_judged():
    out = C.judge([], "cpu")
    assert [c["id"] for c in out] == ["pemscl-vs-atl", "em-helps", "scl-helps", "tail", "ns-rescues", "ratio-choice"]
    assert {c["verdict"] for c in out} == {C.MISSING} and C.MISSING not in S.VERDICTS
    atl = by_id(out)["pemscl-vs-atl"]
    assert "PEMSCL (redocred-mini, seed 66)" in atl["missing"] and "ATL (redocred-mini, seed 68)" in atl["missing"]
    assert atl["diff"] is None and atl["n_seeds"] == 0
    # one ATL seed missing: judged on the two matched seeds, the missing run listed
    runs = [r for r in headline_runs("cpu") if not (r.config.label == "ATL" and r.config.seed == 67)]
    atl = by_id(C.judge(runs, "cpu"))["pemscl-vs-atl"]
    assert atl["seeds"] == [66, 68] and atl["verdict"] == "holds"
    assert atl["missing"] == ["ATL (redocred-mini, seed 67)"]
    # a run without per-document counts cannot be resampled: listed as missing
    runs = headline_runs("cpu")
    for r in runs:
        r.scores.pop("doc_counts")
    atl = by_id(C.judge(runs, "cpu"))["pemscl-vs-atl"]
    assert atl["verdict"] == C.MISSING and all("without per-document counts" in m for m in atl["missing"])


def curve(*f1s, key="dev_f1"):
    return [{"epoch": i + 1, key: f} for i, f in enumerate(f1s)]


def test_a_claim_names_its_runs_cut_short_on_its_dev_set_and_what_more_gain_would_do():
    runs = headline_runs("cpu")  # +80/360 on every seed, 3 seeds
    flat, climbing = curve(0.50, 0.56, 0.55, 0.54), curve(0.50, 0.52, 0.54, 0.56)  # best then two lower; +2 F1
    for r in runs:
        r.history = climbing if (r.config.label, r.config.seed) == ("ATL", 67) else flat
    c = by_id(C.judge(runs, "cpu"))["pemscl-vs-atl"]
    atl67 = next(r for r in runs if (r.config.label, r.config.seed) == ("ATL", 67))
    assert [(x["key"], x["dev"], x["epochs"]) for x in c["cut_short"]] == [(atl67.config.key(), "dev", 4)]
    assert c["cut_short"][0]["last_gain"] == pytest.approx(0.04)
    # ATL is B: had it gained 4 points more, the 3-seed mean difference falls by 4/3 points
    chk = c["cut_short_check"]
    assert chk["shift"] == pytest.approx(-0.04 / 3) and chk["diff"] == pytest.approx(80 / 360 - 0.04 / 3)
    assert chk["ci_high"] - chk["ci_low"] == pytest.approx(c["ci_high"] - c["ci_low"]) and chk["verdict"] == "holds"
    note = REP.claim_notes([c])[0]
    assert "rests on 1 run cut short on dev: ATL (redocred-mini, seed 67), last two epochs +4.00 F1" in note
    assert REP.claim_runs_line([c]) == ("- Claim-bearing runs: 5 of 6 converged on the dev set of their claim (gold "
                                        "dev for the original-label claims): cut short ATL (redocred-mini, seed 67) "
                                        "(last two epochs +4.00 F1).")
    # original-label claims read gold test, so their runs are judged on gold dev, not on original dev
    runs = [fake_run(c, (4, 4) if c.label == "PEMSCL+NS" else (2, 2)) for c in X.original_labels("cpu")]
    for r in runs:
        r.history = [h | g for h, g in zip(climbing, curve(0.30, 0.35, 0.34, 0.33, key="dev_gold_f1"))]
    c = by_id(C.judge(runs, "cpu"))["ns-rescues"]
    assert c["cut_short"] == [] and c["cut_short_check"] is None
    assert REP.claim_runs_line([c]).startswith("- Claim-bearing runs: 6 of 6 converged")
    assert REP.claim_runs_line(C.judge([], "cpu")) is None


def test_a_one_seed_claim_borrows_the_widest_seed_spread_on_its_group_and_regime():
    # headline, 3 seeds: PEMSCL (4,3), (4,4), (4,2) against ATL (3,3) -> all-relation diffs 1/9,
    # 2/9, 0 (sd 1/9); tail: PEMSCL (1,1), (1,0), (1,1) against ATL (1,1) -> 0, -1/2, 0 (sd 0.2887)
    plan = {66: ((4, 3), (1, 1)), 67: ((4, 4), (1, 0)), 68: ((4, 2), (1, 1))}
    runs = [fake_run(c, plan[c.seed][0], tail=plan[c.seed][1]) if c.label == "PEMSCL" else fake_run(c, (3, 3))
            for c in X.headline("cpu")]
    # one seed each: "no EM, no SCL" (gold, tail claim) and the OOG pair (ns-rescues, original labels)
    runs += [fake_run(c, (4, 3), tail=(0, 1)) for c in X.ablation("cpu") if c.label == "no EM, no SCL"]
    oog = [c for c in X.original_labels("cpu") if c.seed == 66]
    runs += [fake_run(c, (4, 4) if c.label == "PEMSCL+NS" else (0, 0)) for c in oog]
    out = by_id(C.judge(runs, "cpu"))
    head = out["pemscl-vs-atl"]
    assert head["seed_sd_by_group"]["all"] == pytest.approx(1 / 9)
    assert head["seed_sd_by_group"]["tail"] == pytest.approx(statistics.stdev([0, -0.5, 0]))
    assert head["borrowed_from"] is None  # measured on its own seeds
    # ns-rescues: no multi-seed claim on original labels yet, so the gold one lends its all-relation spread
    ns = out["ns-rescues"]
    assert (ns["n_seeds"], ns["borrowed_from"], ns["borrowed_df"]) == (1, "pemscl-vs-atl", 2)
    assert ns["borrowed_seed_sd"] == pytest.approx(1 / 9) and ns["seed_sd"] is None
    assert ns["se"] == pytest.approx((ns["doc_se"] ** 2 + (1 / 9) ** 2) ** 0.5)
    half = S.t_quantile(0.975, ns["df"]) * ns["se"]
    assert (ns["ci_low"], ns["ci_high"]) == (pytest.approx(ns["diff"] - half), pytest.approx(ns["diff"] + half))
    assert ns["diff"] == pytest.approx(8 / 9) and ns["verdict"] == "holds"  # far beyond t(2.x) * 1/9
    note = REP.claim_notes([ns])[0]
    assert f"seed spread lent by `pemscl-vs-atl` (sd 11.11 F1 over 3 seeds; the interval's t has {ns['df']:.1f} df)" \
        in note and "the dev interval beside is documents-only" in note
    # planning at the lent spread: the fewest seeds whose MDE reaches the paper's effect
    n = ns["seeds_for_paper_effect"]
    assert n == S.seeds_needed(ns["doc_se"], 1 / 9, 0.1293) and f"about {n} paired seeds" in note
    assert "(documents only)" in dict(REP.CLAIM_COLS)["dev beside"](ns)
    assert "(documents only)" not in dict(REP.CLAIM_COLS)["dev beside"](head)
    # the tail claim borrows the tail's spread, not the whole set's
    t = out["tail"]
    assert t["borrowed_from"] == "pemscl-vs-atl" and t["borrowed_seed_sd"] == pytest.approx(0.2887, abs=1e-4)
    # the same spread with the planted effect shrunk below it is no longer resolved: +1/18 against sd 1/9
    small = [fake_run(r.config, (3, 3) if r.config.label == "PEMSCL+NS" else (3, 2)) if r.config in oog else r
             for r in runs]
    ns_small = by_id(C.judge(small, "cpu"))["ns-rescues"]
    assert ns_small["diff"] == pytest.approx(1 / 9) and ns_small["doc_ci_low"] > 0  # documents alone: "holds"
    assert ns_small["ci_low"] < 0 and ns_small["verdict"] != "holds"  # with the seeds' part: not
    # seeds that agreed exactly lend nothing: with every headline seed alike there is no lender
    flat = [fake_run(r.config, (4, 3) if r.config.label == "PEMSCL" else (3, 3)) if r.config in X.headline("cpu")
            else r for r in runs]
    ns_flat = by_id(C.judge(flat, "cpu"))["ns-rescues"]
    assert ns_flat["borrowed_from"] is None and ns_flat["ci_low"] == ns_flat["doc_ci_low"]
    assert "no multi-seed claim to lend a seed spread" in REP.claim_notes([ns_flat])[0]
    # with 2 seeds on original labels, ns-rescues is not a lender yet (one difference): ratio-choice
    # still borrows from the gold claims
    two = [fake_run(c, (4, 4) if c.label == "PEMSCL+NS" else (2, 2), gold_dev_f1=0.5)
           for c in X.original_labels("cpu") if c.seed in (66, 67)]
    sweep2 = [fake_run(c, (1, 1), gold_dev_f1=0.4, dev_f1=0.6 if X.sweep_point(c)[1] == 1.0 else 0.4)
              for c in X.ratio_sweep("cpu") if c.key() not in {c.key() for c in X.original_labels("cpu")}
              and X.sweep_point(c)[0] == "PEMSCL"]
    out2 = by_id(C.judge([r for r in runs if r.config not in oog] + two + sweep2, "cpu"))
    assert out2["ns-rescues"]["n_seeds"] == 2 and out2["ratio-choice"]["borrowed_from"] == "pemscl-vs-atl"
    # once the OOG pair has its 3 seeds, ratio-choice (one seed by plan) borrows from it, the same regime
    oog3 = {66: (4, 4), 67: (4, 3), 68: (4, 4)}
    more = [fake_run(c, oog3[c.seed] if c.label == "PEMSCL+NS" else (2, 2), gold_dev_f1=0.5)
            for c in X.original_labels("cpu")]
    keys = {c.key() for c in X.original_labels("cpu")}
    sweep = [fake_run(c, (1, 1), gold_dev_f1=0.4, dev_f1=0.6 if X.sweep_point(c)[1] == 1.0 else 0.4)
             for c in X.ratio_sweep("cpu") if c.key() not in keys and X.sweep_point(c)[0] == "PEMSCL"]
    out = by_id(C.judge(runs[:6] + more + sweep, "cpu"))
    assert out["ns-rescues"]["n_seeds"] == 3 and out["ns-rescues"]["borrowed_from"] is None
    assert out["ratio-choice"]["n_seeds"] == 1 and out["ratio-choice"]["borrowed_from"] == "ns-rescues"
    assert out["ratio-choice"]["borrowed_seed_sd"] == pytest.approx(statistics.stdev([0, 1 / 9, 0]))


# --------------------------------------------------------------------------- ratio choice
def test_ratio_choice_picks_by_each_dev_set_never_by_test():
    # cpu sweep, PEMSCL at 0.05, 0.1, 0.3, 1.0 (seed 66). Original dev peaks at 1.0, gold dev at
    # 0.1, gold test (either selection) at 0.05: the best-test ratio is neither dev set's choice.
    plan = {0.05: dict(dev_f1=0.40, gold_dev_f1=0.50, test=(4, 4), test_at_gold=(4, 4)),
            0.1: dict(dev_f1=0.45, gold_dev_f1=0.60, test=(4, 3), test_at_gold=(3, 3)),
            0.3: dict(dev_f1=0.50, gold_dev_f1=0.55, test=(2, 2), test_at_gold=(2, 2)),
            1.0: dict(dev_f1=0.60, gold_dev_f1=0.40, test=(1, 2), test_at_gold=(1, 1))}
    runs, keys = [], {}
    for c in X.ratio_sweep("cpu"):
        model, ratio = X.sweep_point(c)
        if model == "PEMSCL":
            runs.append(fake_run(c, **plan[ratio]))
            keys[ratio] = c.key()
    c = by_id(C.judge(runs, "cpu"))["ratio-choice"]
    assert c["choices"] == [{"seed": 66, "ratio_by_original_dev": 1.0, "ratio_by_gold_dev": 0.1,
                             "ratio_best_test": 0.05, "among": [0.05, 0.1, 0.3, 1.0],
                             "planned": [0.05, 0.1, 0.3, 1.0]}]
    assert "provisional" not in REP.claim_notes([c])[0]  # the whole sweep was there
    part = by_id(C.judge([r for r in runs if X.sweep_point(r.config)[1] != 0.3], "cpu"))["ratio-choice"]
    assert "among 3 of the 4 planned ratios (0.05, 0.1, 1): provisional" in REP.claim_notes([part])[0]
    assert c["runs_a"] == [keys[1.0]] and c["runs_b"] == [keys[0.1]]
    # A: ratio 1.0's "test" (its original-dev selection), 60 correct; B: ratio 0.1's
    # "test@dev_gold" (its gold-dev selection), 120 correct, not its "test" (140)
    assert c["diff"] == pytest.approx(f1(1, 2) - f1(3, 3))
    assert c["verdict"] == "holds" and c["paper_effect"] < 0  # original dev misleads: negative
    # changing ratio 0.1's "test" counts (the original-dev selection's) must not move B
    runs = [fake_run(r.config, **{**plan[X.sweep_point(r.config)[1]], **(
        {"test": (0, 0)} if X.sweep_point(r.config)[1] == 0.1 else {})}) for r in runs]
    assert by_id(C.judge(runs, "cpu"))["ratio-choice"]["diff"] == pytest.approx(f1(1, 2) - f1(3, 3))


def test_ratio_choice_needs_the_gold_dev_selection():
    runs = [fake_run(c) for c in X.ratio_sweep("cpu")]  # no by_dev_gold in scores
    c = by_id(C.judge(runs, "cpu"))["ratio-choice"]
    assert c["verdict"] == C.MISSING and any("seed 66" in m for m in c["missing"])


# --------------------------------------------------------------------------- report
def test_claims_table_forest_rows_and_results_json(tmp_path):
    runs = headline_runs("smoke")
    rows = C.judge(runs, "smoke")
    fr = C.forest_rows(rows)
    assert [r["id"] for r in fr] == ["pemscl-vs-atl"]  # only judged claims are plotted
    assert fr[0]["diff"] == pytest.approx(100 * 80 / 360) and fr[0]["paper"] == pytest.approx(2.13)
    md = REP.markdown(TB.build_tables(runs, "smoke"), rows, records={})
    claims_at, table2_at = md.index("## Claims"), md.index("Table 2")
    assert claims_at < table2_at  # claims first
    line = next(x for x in md.splitlines() if x.startswith("| PEMSCL beats ATL"))
    assert "**holds**" in line and "+22.22 [" in line and "+2.13" in line
    out = REP.write_results(TB.build_tables(runs, "smoke"), rows, tmp_path)
    data = json.loads(out["json"].read_text())
    c = data["claims"][0]
    for k in ("id", "claim", "verdict", "metric", "diff", "ci_low", "ci_high", "mde", "n_seeds", "runs_a", "runs_b",
              "paper_effect", "dev_diff"):
        assert k in c, k
    assert not (tmp_path / "runs.jsonl").exists()  # no runs given: the record is not touched


def test_forest_plot_has_one_line_per_claim_and_the_paper_marks():
    from pemscl import figures as F

    fr = [{"id": "a", "verdict": "holds", "diff": 2.0, "ci_low": 1.0, "ci_high": 3.0, "mde": 1.0, "paper": 2.1,
           "n_seeds": 3},
          {"id": "b", "verdict": "not resolved", "diff": 0.1, "ci_low": -1.0, "ci_high": 1.5, "mde": 1.2,
           "paper": 0.7, "n_seeds": 1}]
    fig = F.forest_plot(fr)
    ours = [t for t in fig.data if t.name.startswith("ours")]
    assert [t.name for t in ours] == ["ours: not resolved", "ours: holds"]
    b = ours[0]
    assert list(b.x) == [0.1] and list(b.error_x.array) == [pytest.approx(1.4)] and \
        list(b.error_x.arrayminus) == [pytest.approx(1.1)]
    paper = next(t for t in fig.data if t.name == "paper")
    assert sorted(zip(paper.y, paper.x)) == [("a (3 seeds)", 2.1), ("b (1 seed)", 0.7)]  # seeds named


def test_results_markdown_shows_the_figures_from_where_it_is_written(tmp_path, monkeypatch):
    figs = tmp_path / "figures"
    monkeypatch.setenv("PEMSCL_FIGURES", str(figs))
    runs = headline_runs("smoke")
    tables, rows = TB.build_tables(runs, "smoke"), C.judge(runs, "smoke")
    assert "![" not in REP.markdown(tables, rows, records={}, figures_from=tmp_path)  # no PNG written yet
    figs.mkdir()
    (figs / "07_claims_forest.png").write_bytes(b"png")
    md = REP.markdown(tables, rows, records={}, figures_from=tmp_path / "results")
    assert "(../figures/07_claims_forest.png)" in md and "07_convergence" not in md  # only what exists
    assert md.index("07_claims_forest.png") < md.index("# Table 2:")  # under the claims
    assert "(figures/07_claims_forest.png)" in REP.markdown(tables, rows, records={}, figures_from=tmp_path)
    assert "![" not in REP.markdown(tables, rows, records={})  # where it goes unknown: no image

"""The seed-paired document bootstrap: exact cases worked by hand, planted effects, input checks."""

import dataclasses
import itertools
import json
import math
import statistics

import numpy as np
import pytest

from pemscl import evaluate as E
from pemscl import stats as S

# Three documents with gold counts 2, 1, 1; rows are [predicted, correct, correct_in_train, gold].
#   A1: totals p 3, c 2, g 4 -> F1 = 2c / (p + g) = 4/7
#   B1: totals p 3, c 1, g 4 -> F1 = 2/7
#   A2: totals p 3, c 3, g 4 -> F1 = 6/7
#   B2 = A1                  -> F1 = 4/7
A1 = [[2, 2, 0, 2], [1, 0, 0, 1], [0, 0, 0, 1]]
B1 = [[2, 1, 0, 2], [1, 0, 0, 1], [0, 0, 0, 1]]
A2 = [[2, 2, 0, 2], [1, 1, 0, 1], [0, 0, 0, 1]]
B2 = A1


def synthetic_runs(rng, gold, n_seeds, keep=0.7, wrong=0.2, in_train=0.3):
    """One system's runs on fixed gold counts: each seed finds a random share of the gold facts."""
    runs = []
    for _ in range(n_seeds):
        correct = rng.binomial(gold, keep)
        predicted = correct + rng.binomial(gold, wrong)
        runs.append(np.stack([predicted, correct, rng.binomial(correct, in_train), gold], axis=1))
    return runs


# --------------------------------------------------------------------------- metrics
def test_metric_from_totals_matches_scores_from_counts():
    rng = np.random.default_rng(0)
    rows = [[0, 0, 0, 0], [0, 0, 0, 5], [3, 0, 0, 0], [4, 4, 4, 4], [4, 2, 2, 9]]  # 0/0 cases
    for _ in range(30):
        g, p = rng.integers(0, 20, size=2)
        c = rng.integers(0, min(g, p) + 1)
        rows.append([p, c, rng.integers(0, c + 1), g])
    for row in rows:
        want = E.scores_from_counts([row])
        for m in S.METRICS:
            assert S.metric_from_totals(np.array(row), m) == pytest.approx(want[m], abs=1e-15), (row, m)
    with pytest.raises(ValueError, match="unknown metric"):
        S.metric_from_totals(np.array(rows[0]), "accuracy")


def test_mde_factor_is_z975_plus_z80():
    assert S.MDE_FACTOR == pytest.approx(1.959964 + 0.841621, abs=1e-5)


# --------------------------------------------------------------------------- hand-worked
def test_seed_pairing_on_hand_worked_runs():
    r = S.paired_bootstrap([A1, A2], [B1, B2], n_boot=200)
    # per seed: 4/7 - 2/7 = 2/7 and 6/7 - 4/7 = 2/7: the seed effect cancels in each pair
    assert r.seed_diffs == pytest.approx((2 / 7, 2 / 7))
    assert r.diff == pytest.approx(2 / 7) and r.seed_sd == pytest.approx(0.0, abs=1e-15)
    assert (r.n_seeds, r.n_docs, r.n_boot) == (2, 3, 200)
    # the same runs paired the wrong way round: same mean difference, but now the seeds' own
    # difference (A2 is a better seed than A1) shows up: 4/7 - 4/7 = 0 and 6/7 - 2/7 = 4/7
    m = S.paired_bootstrap([A1, A2], [B2, B1], n_boot=200)
    assert m.seed_diffs == pytest.approx((0.0, 4 / 7))
    assert m.diff == pytest.approx(2 / 7)
    assert m.seed_sd == pytest.approx(statistics.stdev([0, 4 / 7]))  # (4/7) / sqrt(2)
    # one seed: no seed sd
    assert S.paired_bootstrap([A1], [B1], n_boot=10).seed_sd is None


def test_three_document_bootstrap_distribution():
    # With k0, k1, k2 draws of the three documents (k0 + k1 + k2 = 3), A1 has
    # p = 2k0 + k1, c = 2k0, g = 2k0 + k1 + k2 and B1 the same with c = k0, so
    #   F1(A1) - F1(B1) = 4k0 / (4k0 + 2k1 + k2) - 2k0 / (4k0 + 2k1 + k2) = 2k0 / (4k0 + 2k1 + k2).
    # It is 0 whenever document 0 is not drawn (probability (2/3)^3 = 8/27 > 2.5%), so the
    # interval's low end is exactly 0; it is 6/12 = 1/2 at its largest, when document 0 is drawn
    # three times (probability 1/27 > 2.5%), so the high end is exactly 1/2.
    exact = []
    for draw in itertools.product(range(3), repeat=3):  # the 27 equally likely resamples
        k0, k1, k2 = (draw.count(d) for d in range(3))
        exact.append(2 * k0 / (4 * k0 + 2 * k1 + k2))
    r = S.paired_bootstrap([A1], [B1], n_boot=20000, seed=3)
    assert r.diff == pytest.approx(2 / 7)
    assert (r.ci_low, r.ci_high) == (0.0, 0.5)
    assert r.se == pytest.approx(statistics.pstdev(exact), rel=0.03)
    assert r.mde == pytest.approx(S.MDE_FACTOR * r.se)
    # the interval touches 0, and 3 documents could not see a 1-point effect
    assert S.verdict(r, 0.01) == "not measurable here"


# --------------------------------------------------------------------------- behaviour on data
def test_identical_systems_differ_by_exactly_zero():
    rng = np.random.default_rng(1)
    gold = rng.poisson(30, size=200)
    runs = synthetic_runs(rng, gold, n_seeds=3)
    r = S.paired_bootstrap(runs, [x.copy() for x in runs], n_boot=500)
    # one shared resample per draw for both systems: every resampled difference is exactly 0
    assert r.diff == 0.0 and r.ci_low == 0.0 and r.ci_high == 0.0 and r.se == 0.0
    assert r.seed_sd == 0.0


def test_same_system_other_seeds_gives_a_narrow_interval_around_zero():
    rng = np.random.default_rng(2)
    gold = rng.poisson(30, size=300)
    a = synthetic_runs(rng, gold, n_seeds=5)
    b = synthetic_runs(rng, gold, n_seeds=5)
    r = S.paired_bootstrap(a, b, n_boot=1000)
    assert r.ci_low < 0 < r.ci_high
    # about 9,000 gold facts and 5 seeds: the documents pin the difference down to well under
    # 1 F1 point; the seeds' scatter widens the verdict's interval beyond that
    assert r.doc_ci_high - r.doc_ci_low < 0.01
    assert r.ci_high - r.ci_low > r.doc_ci_high - r.doc_ci_low
    assert abs(r.diff) < 0.005 and r.seed_sd is not None and r.seed_sd > 0


def test_combined_se_by_hand():
    # documents: se 0.2 points; seeds: sd 2.8 points over 3 seeds (the decisive profile's first
    # three ATL/PEMSCL pairs were about this)
    se, df = S.combined_se(0.002, 0.028, 3)
    seed_var = 0.028 ** 2 / 3                       # 2.61333e-4
    assert se == pytest.approx((0.002 ** 2 + seed_var) ** 0.5)  # 0.016289
    assert df == pytest.approx(2 * (4e-6 + seed_var) ** 2 / seed_var ** 2)  # 2.0617: the seeds dominate
    assert S.combined_se(0.002, 0.0, 3) == (0.002, float("inf"))  # seeds that agree add nothing
    assert S.t_quantile(0.975, float("inf")) == pytest.approx(1.959964, abs=1e-6)
    assert S.t_quantile(0.975, 2) == pytest.approx(4.302653, abs=1e-6)
    assert S.t_quantile(0.80, 2) == pytest.approx(1.060660, abs=1e-6)


def test_seeds_that_disagree_widen_the_interval_past_zero():
    """The documents alone would call a +1.9 point mean 'holds'; seed differences of -0.5, +1.1
    and +5.0 points say the next seed could land anywhere in several points."""
    rng = np.random.default_rng(5)
    gold = rng.poisson(30, size=400)
    a = synthetic_runs(rng, gold, n_seeds=3)
    b = []
    for run, k in zip(a, (30, -10, 160)):  # B loses k correct predictions (gains -k) per seed
        run = run.copy()
        room = run[:, 1] > 0 if k > 0 else run[:, 1] < run[:, 3]  # a correct one to lose / a gold one to find
        hit = np.flatnonzero(room)[:abs(k)]
        run[hit, 1] -= int(np.sign(k))
        run[hit, 0] -= int(np.sign(k))
        run[:, 2] = np.minimum(run[:, 2], run[:, 1])
        b.append(run)
    r = S.paired_bootstrap(a, b, n_boot=1000)
    assert r.seed_diffs[1] < 0 < r.seed_diffs[0] < r.seed_diffs[2]
    assert r.doc_ci_low > 0  # documents only: "significant"
    se, df = S.combined_se(r.doc_se, r.seed_sd, 3)
    assert (r.se, r.df) == (se, df)
    half = S.t_quantile(0.975, df) * se
    assert (r.ci_low, r.ci_high) == pytest.approx((r.diff - half, r.diff + half))
    assert r.ci_low < 0 < r.ci_high
    assert r.mde == pytest.approx((S.t_quantile(0.975, df) + S.t_quantile(0.8, df)) * se)
    assert S.verdict(r, 0.01) != "holds"


def test_planted_shift_has_the_right_sign_and_size():
    rng = np.random.default_rng(4)
    gold = rng.poisson(30, size=400)
    a = synthetic_runs(rng, gold, n_seeds=3)
    b = []
    for run in a:
        run = run.copy()
        # B misses one of A's correct predictions on every other document: correct and
        # predicted both drop by 1 there (in-train capped so the row stays possible)
        hit = (np.arange(len(run)) % 2 == 0) & (run[:, 1] > 0)
        run[hit, 0] -= 1
        run[hit, 1] -= 1
        run[:, 2] = np.minimum(run[:, 2], run[:, 1])
        b.append(run)
    # expected per seed, from the totals: F1 = 2c / (p + g), B has k fewer p and c
    want, approx = [], []
    for run_a, run_b in zip(a, b):
        p, c, _, g = run_a.sum(axis=0)
        k = p - run_b[:, 0].sum()
        assert 150 < k <= 200
        want.append(2 * c / (p + g) - 2 * (c - k) / (p - k + g))
        # to first order in k: d F1 = 2k (p + g - c) / (p + g)^2
        approx.append(2 * k * (p + g - c) / (p + g) ** 2)
    r = S.paired_bootstrap(a, b, n_boot=1000)
    assert r.seed_diffs == pytest.approx(tuple(want), rel=1e-12)
    assert r.diff == pytest.approx(np.mean(want), rel=1e-12)
    # ~200 of ~8,400 correct facts removed, p + g ~ 23,000: about 2 * 200 * 0.63 / 23,000 = 1.1 points
    assert r.diff == pytest.approx(np.mean(approx), rel=0.05)
    assert 0.009 < r.diff < 0.013
    assert 0 < r.ci_low < r.diff < r.ci_high
    assert S.verdict(r, 0.01) == "holds" and S.verdict(r, -0.01) == "contradicted"
    # the other way round: the same size with the sign flipped
    back = S.paired_bootstrap(b, a, n_boot=1000)
    assert back.diff == pytest.approx(-r.diff) and back.ci_high < 0


def test_group_metrics_and_doc_counts_dicts():
    rng = np.random.default_rng(5)
    gold_all, gold_tail = rng.poisson(20, size=50), rng.poisson(2, size=50)
    a_all, a_tail = synthetic_runs(rng, gold_all, 2), synthetic_runs(rng, gold_tail, 2, keep=0.5)
    b_all, b_tail = synthetic_runs(rng, gold_all, 2), synthetic_runs(rng, gold_tail, 2, keep=0.3)
    runs_a = [{"all": x.tolist(), "tail": y.tolist()} for x, y in zip(a_all, a_tail)]
    runs_b = [{"all": x.tolist(), "tail": y.tolist()} for x, y in zip(b_all, b_tail)]
    r = S.paired_bootstrap(runs_a, runs_b, metric="recall", group="tail", n_boot=200)
    want = [E.scores_from_counts(x)["recall"] - E.scores_from_counts(y)["recall"] for x, y in zip(a_tail, b_tail)]
    assert r.group == "tail" and r.metric == "recall"
    assert r.seed_diffs == pytest.approx(tuple(want))
    ign = S.paired_bootstrap(runs_a, runs_b, metric="ign_f1", n_boot=200)  # group None = "all"
    want = [E.scores_from_counts(x)["ign_f1"] - E.scores_from_counts(y)["ign_f1"] for x, y in zip(a_all, b_all)]
    assert ign.group == "all" and ign.seed_diffs == pytest.approx(tuple(want))


def test_repeatable_and_json_ready():
    rng = np.random.default_rng(6)
    gold = rng.poisson(10, size=40)
    a, b = synthetic_runs(rng, gold, 2), synthetic_runs(rng, gold, 2)
    r1 = S.paired_bootstrap(a, b, n_boot=300, seed=11)
    assert S.paired_bootstrap(a, b, n_boot=300, seed=11) == r1
    assert S.paired_bootstrap(a, b, n_boot=300, seed=12).ci_low != r1.ci_low
    d = json.loads(json.dumps(r1.to_dict()))
    assert d["seed_diffs"] == list(r1.seed_diffs) and S.verdict(d, 0.01) == S.verdict(r1, 0.01)


# --------------------------------------------------------------------------- input checks
def test_mismatched_runs_are_named():
    with pytest.raises(ValueError, match="A has 2 runs, B has 1"):
        S.paired_bootstrap([A1, A2], [B1])
    with pytest.raises(ValueError, match="at least one run"):
        S.paired_bootstrap([], [])
    with pytest.raises(ValueError, match="system B run 1 has 2 documents, system A run 0 has 3"):
        S.paired_bootstrap([A1, A2], [B1, B1[:2]])
    other_split = [row[:] for row in B1]
    other_split[2] = [0, 0, 0, 2]
    with pytest.raises(ValueError, match="system B run 0 .* gold count of document 2"):
        S.paired_bootstrap([A1], [other_split])
    with pytest.raises(ValueError, match="document 1 has impossible counts"):
        S.paired_bootstrap([A1], [[B1[0], [0, 1, 0, 1], B1[2]]])  # correct > predicted
    with pytest.raises(ValueError, match="no counts for group 'tail'"):
        S.paired_bootstrap([{"all": A1}], [{"all": B1}], group="tail")
    with pytest.raises(ValueError, match="plain row list"):
        S.paired_bootstrap([A1], [B1], group="tail")
    with pytest.raises(ValueError, match="unknown metric"):
        S.paired_bootstrap([A1], [B1], metric="accuracy")


# --------------------------------------------------------------------------- verdict
def _result(low, high, mde):
    return {"ci_low": low, "ci_high": high, "mde": mde}


def test_verdict_boundaries():
    # 1-2: the interval excludes 0 -> its side against the paper's
    assert S.verdict(_result(0.001, 0.02, 0.5), 0.25) == "holds"      # mde does not matter then
    assert S.verdict(_result(0.001, 0.02, 0.5), -0.25) == "contradicted"
    assert S.verdict(_result(-0.02, -0.001, 0.01), -0.25) == "holds"
    assert S.verdict(_result(-0.02, -0.001, 0.01), 0.25) == "contradicted"
    # 3-4: an end exactly at 0 contains 0; then mde against twice the paper's effect, strictly
    assert S.verdict(_result(0.0, 0.02, 0.5), 0.25) == "not resolved"             # 0.5 == 2 * 0.25
    assert S.verdict(_result(0.0, 0.02, 0.5), -0.25) == "not resolved"
    assert S.verdict(_result(-0.02, 0.0, math.nextafter(0.5, 1)), 0.25) == "not measurable here"
    assert S.verdict(_result(-0.02, 0.02, 0.1), 0.25) == "not resolved"
    for bad in (0.0, float("nan"), 1.5):
        with pytest.raises(ValueError, match="paper_effect"):
            S.verdict(_result(-0.02, 0.02, 0.1), bad)


def test_seeds_needed_by_hand():
    # documents' SE 0, seed sd 1: MDE(n) = (t(.975, n-1) + t(.8, n-1)) / sqrt(n)
    # n=3: (4.303 + 1.061) / 1.732 = 3.097; n=4: (3.182 + 0.978) / 2 = 2.080; n=5: (2.776 + 0.941) / 2.236 = 1.662
    assert S.mde_with(4, 0.0, 1.0) == pytest.approx(2.080, abs=1e-3)
    assert S.mde_with(5, 0.0, 1.0) == pytest.approx(1.662, abs=1e-3)
    assert S.seeds_needed(0.0, 1.0, 2.1) == 4 and S.seeds_needed(0.0, 1.0, 3.1) == 3
    assert S.seeds_needed(0.0, 1.0, 1.7) == 5
    # the documents' part alone gives an MDE of 2.80 x 1.0 with infinitely many seeds: 2.0 is out of reach
    assert S.seeds_needed(1.0, 1.0, 2.0) is None
    # and it agrees with what paired_bootstrap reports at those spreads
    r = S.paired_bootstrap([[[4, 3, 0, 5]], [[4, 2, 0, 5]], [[4, 4, 0, 5]]],
                           [[[4, 2, 0, 5]], [[4, 2, 0, 5]], [[4, 2, 0, 5]]], n_boot=200)
    assert S.mde_with(3, r.doc_se, r.seed_sd) == pytest.approx(r.mde)


def test_a_borrowed_seed_spread_by_hand():
    # one seed: documents' se 0.4 points; lent spread sd 1.0 point measured on 3 seeds (2 df)
    one = S.BootstrapResult(metric="f1", group="all", diff=0.05, ci_low=0.042, ci_high=0.058, se=0.004,
                            mde=S.MDE_FACTOR * 0.004, seed_sd=None, n_seeds=1, n_docs=40, n_boot=10, rng_seed=0,
                            seed_diffs=(0.05,), doc_ci_low=0.042, doc_ci_high=0.058, doc_se=0.004)
    r = S.with_borrowed_spread(one, 0.01, 2)
    total = 0.004 ** 2 + 0.01 ** 2                        # 1.16e-4
    df = 2 * total ** 2 / 0.01 ** 4                       # 2 * 1.3456 = 2.6912
    assert r.se == pytest.approx(total ** 0.5) and r.df == pytest.approx(2.6912)
    half = S.t_quantile(0.975, df) * total ** 0.5         # 3.37 * 0.01077 = 0.0363
    assert (r.ci_low, r.ci_high) == (pytest.approx(0.05 - half), pytest.approx(0.05 + half))
    assert r.ci_low < 0.042 and r.ci_high > 0.058           # wider than the documents' interval
    assert r.mde == pytest.approx((S.t_quantile(0.975, df) + S.t_quantile(0.8, df)) * total ** 0.5)
    assert (r.borrowed_seed_sd, r.borrowed_df, r.seed_sd) == (0.01, 2, None)  # lent, not measured
    assert (r.doc_ci_low, r.doc_ci_high, r.diff) == (0.042, 0.058, 0.05)      # the rest as it was
    # a lent spread of 0 adds nothing but turns the percentile interval into the normal one
    z = S.with_borrowed_spread(one, 0.0, 2)
    assert z.se == 0.004 and z.df == float("inf")
    assert (z.ci_low, z.ci_high) == (pytest.approx(0.05 - 1.959964 * 0.004), pytest.approx(0.05 + 1.959964 * 0.004))
    with pytest.raises(ValueError, match="one-seed"):
        S.with_borrowed_spread(dataclasses.replace(one, n_seeds=2), 0.01, 2)
    with pytest.raises(ValueError, match="df > 0"):
        S.with_borrowed_spread(one, 0.01, 0)

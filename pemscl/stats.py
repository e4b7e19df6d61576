"""Is system A better than system B on this split? A seed-paired bootstrap over documents.

Input is what :func:`pemscl.evaluate.doc_counts` writes for each run: one
``[predicted, correct, correct_in_train, gold]`` row per document of the scored split.
Because DocRED's metrics are ratios of corpus totals (micro F1), a document resample is
rescored from its summed rows, never by averaging per-document F1s.

The procedure (:func:`paired_bootstrap`):

1. each system is a list of runs, one per training seed; A[i] and B[i] share seed i, so
   the seed-to-seed noise they have in common cancels in their difference;
2. draw ``n_boot`` resamples of document indices (n draws with replacement from n); each
   resample is shared by every run of both systems, so the pairing over documents is
   kept too (a hard document counts as often for A as for B);
3. per resample: rescore every run, take ``mean_i(metric(A_i) - metric(B_i))``;
4. report the full-sample difference, the 95% percentile interval and the sd of the
   resampled differences (``doc_se``);

5. add the seeds' part: the bootstrap covers *which documents* were scored, for the seeds
   that were run; training randomness shows in how the per-seed differences scatter
   (``seed_sd``; the documents are the same for every seed, so that scatter is training
   alone). With two or more seeds the verdict's interval is
   ``diff ± t(0.975, df) · sqrt(se_doc² + seed_sd² / n_seeds)``, df by Welch-Satterthwaite
   (about n_seeds - 1 when the seeds dominate, large when the documents do), and the MDE
   uses the same se and t. Why: a claim about a loss is a claim about what a new training
   run would give. With seed differences of -0.5, +1.1 and +5.0 F1 points the document
   interval alone is about ±0.4 points wide and would call the mean "significant", while the
   next seed could move it by points. The document-only interval stays in the result
   (``doc_ci_low``, ``doc_ci_high``, ``doc_se``). With one seed training randomness is not
   measured: the interval is the documents' alone, and says so (``df`` is inf), unless a seed
   spread measured elsewhere is lent to it (:func:`with_borrowed_spread`, which the claims
   use: a one-seed verdict should not look surer than a three-seed one).

Kept free of torch; numpy does the resampling in a few array operations.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from statistics import NormalDist
from typing import Any

import numpy as np

from . import evaluate as E

METRICS = ("precision", "recall", "f1", "ign_precision", "ign_f1")
VERDICTS = ("holds", "contradicted", "not measurable here", "not resolved")

CI_LEVEL = 0.95
MDE_ALPHA = 0.05  # two-sided
MDE_POWER = 0.80
# z_{0.975} + z_{0.80} = 1.95996 + 0.84162 = 2.80158
MDE_FACTOR = NormalDist().inv_cdf(1 - MDE_ALPHA / 2) + NormalDist().inv_cdf(MDE_POWER)


@dataclass(frozen=True)
class BootstrapResult:
    """A - B on one metric; ``diff`` and the interval are fractions (0.01 = 1 F1 point)."""

    metric: str
    group: str             # "all", or the relation group ("head", "mid", "tail", ...)
    diff: float            # mean over seeds of metric(A_i) - metric(B_i), on all documents
    ci_low: float          # the verdict's 95% interval: documents and seeds (see the module doc)
    ci_high: float
    se: float              # sqrt(doc_se^2 + seed_sd^2 / n_seeds); doc_se with one seed (unless borrowed)
    mde: float             # (t(0.975, df) + t(0.80, df)) * se, see paired_bootstrap
    seed_sd: float | None  # sd over seeds of the per-seed differences; None with one seed
    n_seeds: int
    n_docs: int
    n_boot: int
    rng_seed: int
    seed_diffs: tuple[float, ...]  # metric(A_i) - metric(B_i) per seed, on all documents
    doc_ci_low: float = math.nan   # 2.5th percentile of the resampled differences (documents only)
    doc_ci_high: float = math.nan  # 97.5th percentile
    doc_se: float = math.nan       # sd of the resampled differences
    df: float = math.inf           # degrees of freedom of the t quantiles (inf: normal)
    borrowed_seed_sd: float | None = None  # one seed: the spread lent by another comparison
    borrowed_df: float | None = None       # (with_borrowed_spread); None when measured or absent

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seed_diffs"] = list(self.seed_diffs)  # JSON has no tuples
        return out


# --------------------------------------------------------------------------- input checks
def _count_array(run: Any, group: str, where: str) -> np.ndarray:
    """One run's rows for ``group`` as an (n_docs, 4) int array, checked for consistency."""
    if isinstance(run, Mapping):
        if group not in run:
            raise ValueError(f"{where} has no counts for group {group!r} (it has {sorted(run)})")
        run = run[group]
    elif group != "all":
        raise ValueError(f"{where} is a plain row list (group 'all'); group {group!r} needs "
                         "doc_counts' dict with that key")
    arr = np.asarray(run, dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] == 0:
        raise ValueError(f"{where}: expected one [predicted, correct, correct_in_train, gold] row "
                         f"per document, got an array of shape {arr.shape}")
    pred, corr, itr, gold = arr.T
    # a swapped column shows up as an impossible row: catch it before it becomes a result
    bad = (arr < 0).any(axis=1) | (corr > pred) | (corr > gold) | (itr > corr)
    if bad.any():
        d = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: document {d} has impossible counts {arr[d].tolist()} "
                         f"(need 0 <= correct_in_train <= correct <= predicted, gold)")
    return arr


def _stack_runs(runs_a: Sequence, runs_b: Sequence, group: str) -> np.ndarray:
    """(2, n_seeds, n_docs, 4): system, seed, document, count field."""
    if len(runs_a) == 0 or len(runs_b) == 0:
        raise ValueError(f"each system needs at least one run (A has {len(runs_a)}, B has {len(runs_b)})")
    if len(runs_a) != len(runs_b):
        raise ValueError(f"runs are paired by seed: A has {len(runs_a)} runs, B has {len(runs_b)}")
    arrays = {(s, i): _count_array(run, group, f"system {s} run {i}")
              for s, runs in (("A", runs_a), ("B", runs_b)) for i, run in enumerate(runs)}
    ref_key, ref = ("A", 0), arrays[("A", 0)]
    for (s, i), arr in arrays.items():
        if arr.shape[0] != ref.shape[0]:
            raise ValueError(f"system {s} run {i} has {arr.shape[0]} documents, system A run 0 has "
                             f"{ref.shape[0]}: runs must be scored on the same split")
        # the gold column depends on the documents only: a difference means another split or order
        diff = np.flatnonzero(arr[:, 3] != ref[:, 3])
        if diff.size:
            d = int(diff[0])
            raise ValueError(f"system {s} run {i} and system {ref_key[0]} run {ref_key[1]} disagree on "
                             f"the gold count of document {d} ({arr[d, 3]} vs {ref[d, 3]}): not the same "
                             "documents in the same order")
    n = len(runs_a)
    return np.stack([np.stack([arrays[(s, i)] for i in range(n)]) for s in ("A", "B")])


# --------------------------------------------------------------------------- metrics
def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # 0 where the denominator is 0, as evaluate._div
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _safe_f1(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    s = p + r
    return np.divide(2 * p * r, s, out=np.zeros_like(s), where=s > 0)


def metric_from_totals(totals: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` of summed counts; ``totals[..., :]`` = predicted, correct, correct_in_train, gold.

    The array form of evaluate.scores_from_counts (same formulas, same 0-for-0/0 rule).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    t = np.asarray(totals, dtype=float)
    pred, corr, itr, gold = t[..., 0], t[..., 1], t[..., 2], t[..., 3]
    if metric == "precision":
        return _safe_div(corr, pred)
    recall = _safe_div(corr, gold)
    if metric == "recall":
        return recall
    if metric == "f1":
        return _safe_f1(_safe_div(corr, pred), recall)
    ign_p = _safe_div(corr - itr, pred - itr)
    return ign_p if metric == "ign_precision" else _safe_f1(ign_p, recall)


def _resample_weights(rng: np.random.Generator, n_docs: int, n_boot: int) -> np.ndarray:
    """(n_boot, n_docs): how often each document is drawn in each resample (rows sum to n_docs)."""
    idx = rng.integers(0, n_docs, size=(n_boot, n_docs))
    flat = (idx + n_docs * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n_docs).reshape(n_boot, n_docs).astype(float)


# --------------------------------------------------------------------------- the bootstrap
def _check_args(metric: str, group: str | None, n_boot: int) -> str:
    """The group (None: "all"), after checking the metric and the resample count."""
    if n_boot < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    return group or "all"


def paired_bootstrap(runs_a: Sequence, runs_b: Sequence, *, metric: str = "f1", group: str | None = None,
                     n_boot: int = 2000, seed: int = 0) -> BootstrapResult:
    """Seed-paired document bootstrap of mean_i(metric(A_i) - metric(B_i)).

    ``runs_a`` / ``runs_b``: one entry per seed, A[i] paired with B[i]. An entry is either
    doc_counts' dict (then ``group`` picks its key: None or "all" for every fact, or e.g.
    "tail") or one plain row list. All runs must cover the same documents in the same order;
    a differing document count or a differing gold count on some document raises ValueError
    naming the runs and the document. ``metric`` is one of :data:`METRICS`. ``seed`` seeds the
    numpy generator, so the same call returns the same result.

    The MDE is ``(z_{1-alpha/2} + z_{power}) * se`` with alpha = 0.05 two-sided and power 0.8,
    i.e. about 2.80 * se. Why: the resampled differences are close to normal with sd ``se``,
    and verdict()'s "interval excludes 0" is (for a near-normal bootstrap) the two-sided
    test that rejects when |diff| > z_{0.975} * se. If the true effect is delta > 0, the
    estimate is ~ N(delta, se^2), so that test fires with probability
    Phi(delta / se - z_{0.975}) (+ a negligible chance of firing on the wrong side). That
    probability reaches 0.8 when delta / se - z_{0.975} = z_{0.8}, i.e. delta = (1.960 +
    0.842) * se. A true effect below the MDE is detected less than 80% of the time, so an
    interval containing 0 does not rule such an effect out. (It assumes the
    spread of the estimate is about the same under the effect as observed, which holds
    for the small shifts compared here.) With two or more seeds ``se`` includes the seeds'
    part and the z quantiles become t quantiles with ``df`` degrees of freedom (combined_se):
    with 3 seeds dominated by their scatter, t(0.975, 2) + t(0.8, 2) = 4.30 + 1.06 = 5.36.
    """
    group = _check_args(metric, group, n_boot)
    counts = _stack_runs(runs_a, runs_b, group)
    _, n_seeds, n_docs, _ = counts.shape

    # full sample with the scorer's own code, so diff matches the reported scores exactly
    full = [[E.scores_from_counts(counts[s, i].tolist())[metric] for i in range(n_seeds)] for s in (0, 1)]
    seed_diffs = tuple(a - b for a, b in zip(full[0], full[1]))
    diff = math.fsum(seed_diffs) / n_seeds

    rng = np.random.default_rng(seed)
    weights = _resample_weights(rng, n_docs, n_boot)
    # (n_docs, 2 * n_seeds * 4) -> totals of every run in every resample in one product
    flat = counts.transpose(2, 0, 1, 3).reshape(n_docs, -1).astype(float)
    totals = (weights @ flat).reshape(n_boot, 2, n_seeds, 4)
    values = metric_from_totals(totals, metric)                 # (n_boot, 2, n_seeds)
    boot = (values[:, 0] - values[:, 1]).mean(axis=1)           # (n_boot,)

    return _result(metric, group, diff, boot, seed_diffs, n_docs, n_boot, seed)


def _result(metric: str, group: str, point: float, boot: np.ndarray, per_seed: tuple[float, ...], n_docs: int,
            n_boot: int, rng_seed: int) -> BootstrapResult:
    """The interval of `point` (a mean over seeds) from its document resamples `boot` and the
    per-seed values' scatter (module doc, step 5); with one seed the documents' interval."""
    n_seeds = len(per_seed)
    tail = 100 * (1 - CI_LEVEL) / 2
    doc_low, doc_high = (float(x) for x in np.percentile(boot, [tail, 100 - tail]))
    doc_se = float(boot.std(ddof=1))
    seed_sd = statistics.stdev(per_seed) if n_seeds > 1 else None
    if seed_sd is None:  # one seed: training randomness unmeasured, the documents' interval
        low, high, se, df, mde = doc_low, doc_high, doc_se, math.inf, MDE_FACTOR * doc_se
    else:
        se, df = combined_se(doc_se, seed_sd, n_seeds)
        half = t_quantile(1 - (1 - CI_LEVEL) / 2, df) * se
        low, high = point - half, point + half
        mde = _mde(se, df)
    return BootstrapResult(
        metric=metric, group=group, diff=float(point), ci_low=low, ci_high=high, se=se, mde=mde,
        seed_sd=seed_sd, n_seeds=n_seeds, n_docs=n_docs, n_boot=n_boot, rng_seed=rng_seed, seed_diffs=per_seed,
        doc_ci_low=doc_low, doc_ci_high=doc_high, doc_se=doc_se, df=df)


def mean_bootstrap(runs: Sequence, *, metric: str = "f1", group: str | None = None, n_boot: int = 2000,
                   seed: int = 0) -> BootstrapResult:
    """One system's mean score over its seeds, with the interval paired_bootstrap gives a
    difference: the same document resamples for every seed (doc_se), plus the seeds' scatter
    (seed_sd of the per-seed scores) as sqrt(doc_se² + seed_sd² / n) with Welch df. ``diff`` is
    the mean score (not a difference) and ``seed_diffs`` the per-seed scores; with one seed the
    interval is the documents' percentile interval."""
    group = _check_args(metric, group, n_boot)
    counts = _stack_runs(runs, runs, group)[0]  # (n_seeds, n_docs, 4), documents checked alike
    n_seeds, n_docs, _ = counts.shape
    per_seed = tuple(E.scores_from_counts(counts[i].tolist())[metric] for i in range(n_seeds))
    mean = math.fsum(per_seed) / n_seeds
    weights = _resample_weights(np.random.default_rng(seed), n_docs, n_boot)
    totals = (weights @ counts.transpose(1, 0, 2).reshape(n_docs, -1).astype(float)).reshape(n_boot, n_seeds, 4)
    boot = metric_from_totals(totals, metric).mean(axis=1)
    return _result(metric, group, mean, boot, per_seed, n_docs, n_boot, seed)


def combined_se(doc_se: float, seed_sd: float, n_seeds: int, seed_df: float | None = None
                ) -> tuple[float, float]:
    """(se, df) of a mean difference over n_seeds seed-paired runs scored on one document set:
    se^2 = doc_se^2 + seed_sd^2 / n_seeds; df by Welch-Satterthwaite, the document part counted
    with infinite df (thousands of facts), the seed part with `seed_df` (n_seeds - 1 when the
    spread was measured on these seeds; the lender's df when it was borrowed)."""
    seed_df = n_seeds - 1 if seed_df is None else seed_df
    doc_var, seed_var = doc_se ** 2, seed_sd ** 2 / n_seeds
    total = doc_var + seed_var
    df = math.inf if seed_var == 0 else seed_df * total ** 2 / seed_var ** 2
    return math.sqrt(total), df


def with_borrowed_spread(res: BootstrapResult, seed_sd: float, seed_df: float) -> BootstrapResult:
    """A one-seed result whose interval and MDE also cover training randomness, with the seed
    spread (sd of per-seed differences, and its df) measured on another comparison:
    diff ± t(0.975, df) · sqrt(doc_se² + seed_sd²), df by Welch-Satterthwaite with the lender's
    df. Why: one seed cannot measure its own spread, and the documents-only interval leaves
    it out; the verdict should carry the spread that comparable runs showed."""
    if res.n_seeds != 1:
        raise ValueError(f"only a one-seed result borrows a seed spread; this one has {res.n_seeds} seeds")
    if not (seed_sd >= 0 and seed_df > 0):
        raise ValueError(f"a borrowed seed spread needs sd >= 0 and df > 0, got sd {seed_sd!r}, df {seed_df!r}")
    se, df = combined_se(res.doc_se, seed_sd, 1, seed_df=seed_df)
    half = t_quantile(1 - (1 - CI_LEVEL) / 2, df) * se
    return replace(res, ci_low=res.diff - half, ci_high=res.diff + half, se=se, df=df, mde=_mde(se, df),
                   borrowed_seed_sd=seed_sd, borrowed_df=seed_df)


def t_quantile(q: float, df: float) -> float:
    """Student's t quantile (the normal's for infinite df)."""
    if math.isinf(df):
        return NormalDist().inv_cdf(q)
    from scipy.stats import t

    return float(t.ppf(q, df))


def _mde(se: float, df: float) -> float:
    return (t_quantile(1 - MDE_ALPHA / 2, df) + t_quantile(MDE_POWER, df)) * se


def mde_with(n_seeds: int, doc_se: float, seed_sd: float) -> float:
    """The MDE paired_bootstrap would report with n_seeds seeds at these spreads."""
    return _mde(*combined_se(doc_se, seed_sd, n_seeds))


def seeds_needed(doc_se: float, seed_sd: float, target: float, max_seeds: int = 100) -> int | None:
    """The fewest seeds (at least 2) whose MDE, at the observed document SE and seed spread, is at
    most `target` (e.g. the paper's effect): what it would take to resolve a claim. None when
    even `max_seeds` would not do, e.g. when the documents' part alone exceeds it (2.8 x doc_se)."""
    for n in range(2, max_seeds + 1):
        if mde_with(n, doc_se, seed_sd) <= target:
            return n
    return None


# --------------------------------------------------------------------------- verdict
def verdict(result: BootstrapResult | Mapping, paper_effect: float) -> str:
    """Does this comparison reproduce the paper's effect (A - B, as a fraction: +0.5 F1 = 0.005)?

    Checks, in this order (the interval is closed: an end exactly at 0 contains 0):

    1. the interval excludes 0 on the paper's side (ci_low > 0 for a positive paper effect,
       ci_high < 0 for a negative one): "holds";
    2. the interval excludes 0 on the other side: "contradicted";
    3. the interval contains 0 and mde > 2 * |paper_effect|: "not measurable here" -- this
       setup could not have detected even twice the paper's effect with 80% power, so
       failing to see it says nothing about the paper;
    4. otherwise (contains 0, mde <= 2 * |paper_effect|): "not resolved".

    ``result`` is a :class:`BootstrapResult` or its ``to_dict()`` (e.g. read back from JSON).
    A paper effect of 0 has no direction, and one above 1 in size is in points, not a
    fraction: both raise ValueError.
    """
    r = result.to_dict() if isinstance(result, BootstrapResult) else result
    effect = float(paper_effect)
    if not math.isfinite(effect) or effect == 0:
        raise ValueError(f"paper_effect must be a nonzero finite number, got {paper_effect!r}")
    if abs(effect) > 1:
        raise ValueError(f"paper_effect {paper_effect!r} looks like points; give it as a fraction "
                         "(0.5 F1 points = 0.005)")
    low, high = float(r["ci_low"]), float(r["ci_high"])
    if low > 0 or high < 0:
        return "holds" if (low > 0) == (effect > 0) else "contradicted"
    return "not measurable here" if float(r["mde"]) > 2 * abs(effect) else "not resolved"

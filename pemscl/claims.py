"""A verdict on each of the paper's claims: the seed-paired document bootstrap (pemscl.stats)
of our difference, judged against the paper's effect (pemscl.published.CLAIM_EFFECTS).

    from pemscl import claims, runs
    rows = claims.judge(runs.gather_runs(), "cpu")
    [(c["id"], c["verdict"]) for c in rows]

Each claim compares two rows of one experiment (A - B on one split and relation group). Runs
are paired by their config seed; only seeds planned and present on both sides are used, so a
row with one seed against a row with three is judged on that one shared seed. The difference,
its 95% interval and the minimum detectable effect come from stats.paired_bootstrap over the
per-document counts every run stores (scores["doc_counts"][split]); the verdict is
stats.verdict: "holds", "contradicted", "not resolved" or "not measurable here". A claim with
no matched pair of runs gets "missing runs" and the missing runs' labels: the profile has not
been run, which says nothing about the paper.

A claim judged on one seed cannot measure how training randomness moves its difference, and
its documents-only interval would make it look surer than a three-seed claim. judge() lends
it the widest seed spread (sd of per-seed differences on the claim's relation group, with its
df) among the claims with 3 or more seeds of the same label regime (gold or original labels), or of
either regime while its own has none (lend_seed_spread; the row names the lender).

The dev-set difference of the same pairs is shown beside (dev_diff and its interval), never
used for the verdict: dev selected the epochs, so it is optimistic.

Each row also names the compared runs that were cut short (`cut_short`): runs whose curve on
the claim's dev set (gold dev for the original-label claims, whose numbers are gold test) had
not converged by the rule of runs.converged. The verdict does not change; the reader learns
which numbers may not be end points and by how much their curve still rose.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from . import evaluate as E
from . import experiments as X
from . import runs as RS
from . import stats as S
from .published import CLAIM_EFFECTS

N_BOOT = 2000
BOOT_SEED = 0  # one fixed resampling seed: the same runs always give the same intervals
MISSING = "missing runs"


@dataclass(frozen=True)
class Claim:
    """A - B between two rows of one experiment, on `split` and relation `group`."""

    id: str
    text: str
    experiment: str
    a: str
    b: str
    split: str = "test"
    group: str = "all"
    dev_split: str = "dev"
    original_labels: bool = False  # the rows trained on original labels (OOG regime)
    context_groups: tuple[str, ...] = ()  # other groups shown beside (e.g. head for the tail claim)


CLAIMS: tuple[Claim, ...] = (
    Claim("pemscl-vs-atl", "PEMSCL beats ATL (ATLOP's adaptive threshold loss) on gold labels",
          "headline", "PEMSCL", "ATL"),
    Claim("em-helps", "The EM term helps: removing it lowers F1", "ablation", "PEMSCL", "no EM"),
    Claim("scl-helps", "SCL helps: removing it lowers F1", "ablation", "PEMSCL", "no SCL"),
    Claim("tail", "EM and SCL help most on tail relations: removing both lowers tail F1 (head beside)",
          "ablation", "PEMSCL", X.TAIL_ROW, group="tail", context_groups=("head",)),
    # gold dev beside: the paper's own parallel ("improvement on both Gold-Dev and Gold-Test")
    Claim("ns-rescues", "Negative label sampling rescues training on original labels (OOG, gold test)",
          "original_labels", "PEMSCL+NS", "PEMSCL", dev_split="dev_gold", original_labels=True),
)
RATIO_CLAIM = ("ratio-choice", "Original-label dev misleads the choice of the negative sampling ratio: the "
               "ratio it picks scores lower on gold test than the ratio gold dev picks")


# --------------------------------------------------------------------------- pairing
def counts(run: RS.Run, split: str) -> Mapping | None:
    """The run's per-document counts on a split (doc_counts' {"all": rows, "head": ...}), or None."""
    return (run.scores.get("doc_counts") or {}).get(split)


def _label(cfg) -> str:
    return f"{cfg.label} ({cfg.regime}, seed {cfg.seed})"


def pair_by_seed(configs: Sequence, runs: Sequence, a: str, b: str, *, regime: str | None = None,
                 splits: Sequence[str] = ("test",), group: str = "all"
                 ) -> tuple[list[tuple[int, RS.Run, RS.Run]], list[str]]:
    """[(seed, run of A, run of B)] for every seed both rows plan, in seed order, and the labels
    of planned runs that are absent (or lack per-document counts of `group` on `splits`)."""
    rows: dict[str, dict[int, tuple[Any, RS.Run | None]]] = {a: {}, b: {}}
    for c, r in zip(configs, runs):
        if c.label in rows and (regime is None or c.regime == regime):
            rows[c.label][c.seed] = (c, r)
    pairs, missing = [], []
    for seed in sorted(set(rows[a]) & set(rows[b])):
        got = []
        for lab in (a, b):
            c, r = rows[lab][seed]
            if r is None:
                missing.append(_label(c))
            elif any(group not in (counts(r, s) or {}) for s in splits):
                missing.append(_label(c) + " without per-document counts")
            else:
                got.append(r)
        if len(got) == 2:
            pairs.append((seed, got[0], got[1]))
    return pairs, missing


def bootstrap(runs_a: Sequence[RS.Run], runs_b: Sequence[RS.Run], split: str, group: str = "all",
              split_b: str | None = None) -> S.BootstrapResult:
    """stats.paired_bootstrap of F1 on the runs' counts (B read from split_b when given)."""
    return S.paired_bootstrap([counts(r, split) for r in runs_a], [counts(r, split_b or split) for r in runs_b],
                              metric="f1", group=group, n_boot=N_BOOT, seed=BOOT_SEED)


# --------------------------------------------------------------------------- rows
def _empty(cid: str, text: str, claim_fields: Mapping) -> dict:
    eff = CLAIM_EFFECTS[cid]
    return {"id": cid, "claim": text, "verdict": MISSING, "metric": "f1", **claim_fields,
            "diff": None, "ci_low": None, "ci_high": None, "se": None, "mde": None, "seed_sd": None,
            "doc_ci_low": None, "doc_ci_high": None, "doc_se": None, "df": None,
            "borrowed_seed_sd": None, "borrowed_df": None, "borrowed_from": None, "seed_sd_by_group": {},
            "seed_diffs": [], "seeds_for_paper_effect": None, "n_seeds": 0, "seeds": [], "n_docs": None,
            "runs_a": [], "runs_b": [],
            "paper_effect": eff.effect, "paper_source": eff.source, "paper_dev_effect": eff.dev_effect,
            "dev_diff": None, "dev_ci_low": None, "dev_ci_high": None, "context": {}, "missing": [], "cut_short": [],
            "note": ""}


_RESULT_FIELDS = ("diff", "ci_low", "ci_high", "se", "mde", "seed_sd", "n_seeds", "n_docs", "doc_ci_low",
                  "doc_ci_high", "doc_se", "df", "borrowed_seed_sd", "borrowed_df")


def _fill(row: dict, res: S.BootstrapResult) -> dict:
    row.update({k: getattr(res, k) for k in _RESULT_FIELDS})
    row["seed_diffs"] = list(res.seed_diffs)
    row["verdict"] = S.verdict(res, row["paper_effect"])
    # planning: how many seeds, at today's spreads (measured, else lent), would detect the paper's effect
    spread = res.seed_sd if res.seed_sd is not None else res.borrowed_seed_sd
    row["seeds_for_paper_effect"] = (S.seeds_needed(res.doc_se, spread, abs(row["paper_effect"]))
                                     if spread is not None else None)
    return row


def _result(row: Mapping) -> S.BootstrapResult:
    """The BootstrapResult a filled row was made from (rows stay plain JSON-ready dicts)."""
    return S.BootstrapResult(metric=row["metric"], group=row["group"], n_boot=N_BOOT, rng_seed=BOOT_SEED,
                             seed_diffs=tuple(row["seed_diffs"]), **{k: row[k] for k in _RESULT_FIELDS})


def seed_sds(runs_a: Sequence[RS.Run], runs_b: Sequence[RS.Run], split: str, split_b: str | None = None
             ) -> dict[str, float]:
    """{group: sd over seeds of F1(A_i) - F1(B_i)} for every relation group all runs have counts
    of; empty with fewer than two seeds. What a multi-seed claim can lend a one-seed claim on
    any group (the tail's spread is several times the whole set's)."""
    if len(runs_a) < 2:
        return {}
    groups = set.intersection(*(set(counts(r, split) or {}) for r in runs_a),
                              *(set(counts(r, split_b or split) or {}) for r in runs_b))
    f1 = lambda r, sp, g: E.scores_from_counts(counts(r, sp)[g])["f1"]  # noqa: E731
    return {g: statistics.stdev(f1(a, split, g) - f1(b, split_b or split, g) for a, b in zip(runs_a, runs_b))
            for g in sorted(groups)}


# a spread measured on two seeds is one difference (1 df): by chance it can be a fraction of the
# true one, and a claim that borrows it looks surer than the claims with three seeds
MIN_LENDER_SEEDS = 3


def lend_seed_spread(rows: Sequence[dict]) -> list[dict]:
    """Every one-seed row with a multi-seed row's seed spread on its relation group lent to its
    interval and MDE (stats.with_borrowed_spread), and its verdict judged again. The lender:
    the row of at least MIN_LENDER_SEEDS seeds with the largest spread on that group, of the
    same label regime if there is one, else of any. The largest, not a pool: the claims share runs (PEMSCL is in
    three), so pooling their spreads would overstate the df; the widest errs on the side of
    "not resolved". A spread of 0 lends nothing (seeds that agreed exactly, or a degenerate
    group) and is passed over. Rows without a lender keep their documents-only interval. Only
    the verdict's interval is widened: dev beside and the context groups stay documents-only,
    and the notes say so."""
    out = []
    for row in rows:
        lenders = [r for r in rows if (r.get("n_seeds") or 0) >= MIN_LENDER_SEEDS
                   and math.isfinite(r.get("seed_sd_by_group", {}).get(row["group"], math.nan))
                   and r["seed_sd_by_group"][row["group"]] > 0]
        pool = [r for r in lenders if r["original_labels"] == row["original_labels"]] or lenders
        if row.get("n_seeds") != 1 or not pool:
            out.append(row)
            continue
        src = max(pool, key=lambda r: r["seed_sd_by_group"][row["group"]])
        row = _fill(dict(row), S.with_borrowed_spread(_result(row), src["seed_sd_by_group"][row["group"]],
                                                      src["n_seeds"] - 1))
        row["borrowed_from"] = src["id"]
        out.append(row)
    return out


def cut_short(runs: Iterable[RS.Run], dev_split: str) -> list[dict]:
    """The runs (each once) whose F1 curve on `dev_split` had not converged (runs.converged)
    by their last epoch: label, key, the dev set, and the gain of their last two epochs. A run
    without that curve in its history is left out: there is nothing to judge it on."""
    out, seen = [], set()
    for r in runs:
        key = r.config.key()
        f1s = RS.dev_curve(r, dev_split)
        if key in seen or not f1s:
            continue
        seen.add(key)
        if RS.curve_end(f1s)[0] is False:
            out.append({"run": _label(r.config), "key": key, "dev": dev_split, "epochs": len(f1s),
                        "last_gain": f1s[-1] - f1s[-3] if len(f1s) >= 3 else None})
    return out


def if_cut_short_went_on(row: dict) -> dict:
    """`row` with `cut_short_check`: the difference, interval and verdict had every cut-short
    run gained its last two epochs' dev gain once more, on the claim's split (a run of A
    raises the seed-mean difference by gain / n_seeds, one of B lowers it; the spread is kept).
    A rough bound on how far a run still climbing could move the claim: None with no cut-short run."""
    if not row.get("cut_short") or row.get("diff") is None:
        return {**row, "cut_short_check": None}
    shift = sum((x["last_gain"] or 0.0) * ((x["key"] in row["runs_a"]) - (x["key"] in row["runs_b"]))
                for x in row["cut_short"]) / row["n_seeds"]
    moved = {k: row[k] + shift for k in ("diff", "ci_low", "ci_high")} | {"mde": row["mde"]}
    return {**row, "cut_short_check": {**moved, "shift": shift, "verdict": S.verdict(moved, row["paper_effect"])}}


def _interval(res: S.BootstrapResult) -> dict:
    return {"diff": res.diff, "ci_low": res.ci_low, "ci_high": res.ci_high, "mde": res.mde}


def judge_pair(claim: Claim, configs: Sequence, runs: Sequence, profile: X.Profile) -> dict:
    """One two-row claim from the experiment's configs and their runs (None where missing)."""
    regime = profile.oog_regime if claim.original_labels else profile.gold_regime
    row = _empty(claim.id, claim.text, {"split": claim.split, "group": claim.group, "dev_split": claim.dev_split,
                                        "a": claim.a, "b": claim.b, "experiment": claim.experiment,
                                        "original_labels": claim.original_labels})
    pairs, row["missing"] = pair_by_seed(configs, runs, claim.a, claim.b, regime=regime, splits=(claim.split,),
                                         group=claim.group)
    if not pairs:
        row["note"] = "no seed with both runs"
        return row
    ra, rb = [p[1] for p in pairs], [p[2] for p in pairs]
    row.update(seeds=[p[0] for p in pairs], runs_a=[r.config.key() for r in ra], runs_b=[r.config.key() for r in rb],
               cut_short=cut_short(ra + rb, claim.dev_split))
    _fill(row, bootstrap(ra, rb, claim.split, claim.group))
    row["seed_sd_by_group"] = seed_sds(ra, rb, claim.split)
    for g in claim.context_groups:
        if all(g in counts(r, claim.split) for r in ra + rb):
            row["context"][g] = _interval(bootstrap(ra, rb, claim.split, g))
    if all(claim.group in (counts(r, claim.dev_split) or {}) for r in ra + rb):
        dev = bootstrap(ra, rb, claim.dev_split, claim.group)
        row.update(dev_diff=dev.diff, dev_ci_low=dev.ci_low, dev_ci_high=dev.ci_high)
    if row["missing"]:
        row["note"] = f"judged on {len(pairs)} matched seed(s); {len(row['missing'])} planned run(s) missing"
    return row


def _ratio_runs(configs: Sequence, runs: Sequence, model: str) -> tuple[dict[int, list], list[str]]:
    """{seed: [(ratio, run)]} of one model's sweep, and the labels of absent runs."""
    by_seed: dict[int, list] = {}
    missing = []
    for c, r in zip(configs, runs):
        m, ratio = X.sweep_point(c)
        if m != model:
            continue
        if r is None:
            missing.append(_label(c))
        else:
            by_seed.setdefault(c.seed, []).append((ratio, r))
    return by_seed, missing


def _dev_f1(run: RS.Run) -> float | None:
    return (run.scores.get("dev") or {}).get("f1")


def _gold_dev_f1(run: RS.Run) -> float | None:
    return (run.scores.get("by_dev_gold") or {}).get("dev_gold_f1")


def choose_ratios(points: Sequence[tuple[float, RS.Run]]) -> dict:
    """Which ratio original dev picks (max dev F1, the run's own selection on original dev) and
    which gold dev picks (max gold-dev F1 of the gold-dev selection); ties go to the first
    point. The best gold-test ratio is recorded for the reader and used for nothing."""
    by_dev = max(points, key=lambda p: _dev_f1(p[1]))
    by_gold = max(points, key=lambda p: _gold_dev_f1(p[1]))
    by_test = max(points, key=lambda p: (p[1].scores.get("test") or {}).get("f1") or 0.0)
    return {"ratio_by_original_dev": by_dev[0], "ratio_by_gold_dev": by_gold[0], "ratio_best_test": by_test[0],
            "run_by_original_dev": by_dev[1], "run_by_gold_dev": by_gold[1]}


def judge_ratio(configs: Sequence, runs: Sequence, model: str = "PEMSCL") -> dict:
    """Gold-test F1 at the ratio original dev picks (its original-dev selection, doc_counts
    "test") minus gold-test F1 at the ratio gold dev picks (its gold-dev selection,
    doc_counts "test@dev_gold"), per seed of the sweep, paired by seed."""
    cid, text = RATIO_CLAIM
    row = _empty(cid, text, {"split": "test", "group": "all", "dev_split": None, "a": f"{model} at the ratio "
                             "original dev picks", "b": f"{model} at the ratio gold dev picks",
                             "experiment": "ratio_sweep", "original_labels": True})
    by_seed, row["missing"] = _ratio_runs(configs, runs, model)
    picks, skipped = [], []
    for seed in sorted(by_seed):
        pts = by_seed[seed]
        usable = all(_dev_f1(r) is not None and _gold_dev_f1(r) is not None and counts(r, "test") is not None
                     and counts(r, "test@dev_gold") is not None for _, r in pts)
        if len(pts) < 2 or not usable:
            skipped.append(seed)
            continue
        picks.append((seed, choose_ratios(pts)))
    planned = sorted({X.sweep_point(c)[1] for c in configs if X.sweep_point(c)[0] == model})
    row["choices"] = [{"seed": s, **{k: v for k, v in c.items() if k.startswith("ratio")},
                       "among": sorted(r for r, _ in by_seed[s]), "planned": planned} for s, c in picks]
    if skipped:
        row["missing"] += [f"{model} sweep, seed {s}: fewer than 2 ratios or no gold-dev selection / counts"
                           for s in skipped]
    row["note"] = "dev not shown: the two choices are made on different dev sets"
    if not picks:
        return row
    ra, rb = [c["run_by_original_dev"] for _, c in picks], [c["run_by_gold_dev"] for _, c in picks]
    # both picks read gold test, so gold dev says whether they are end points (as for ns-rescues)
    row.update(seeds=[s for s, _ in picks], runs_a=[r.config.key() for r in ra], runs_b=[r.config.key() for r in rb],
               cut_short=cut_short(ra + rb, "dev_gold"))
    row["seed_sd_by_group"] = seed_sds(ra, rb, "test", split_b="test@dev_gold")
    return _fill(row, bootstrap(ra, rb, "test", split_b="test@dev_gold"))


def judge(runs: Iterable, profile: str | X.Profile) -> list[dict]:
    """Every claim's row (results.json "claims"), in CLAIMS order then the ratio choice."""
    p = X.get_profile(profile)
    cfgs, att = X.attach_all(runs, p)
    out = [judge_pair(c, cfgs[c.experiment], att[c.experiment], p) for c in CLAIMS]
    out.append(judge_ratio(cfgs["ratio_sweep"], att["ratio_sweep"]))
    return [if_cut_short_went_on(r) for r in lend_seed_spread(out)]


def judge_claim(claim_id: str, runs: Iterable, profile: str | X.Profile) -> dict:
    """One two-row claim's row, attaching only its experiment's runs (judge() does them all).
    A one-seed row keeps its documents-only interval here: lending a seed spread needs the
    other claims (judge())."""
    p = X.get_profile(profile)
    claim = next(c for c in CLAIMS if c.id == claim_id)
    cfgs, att = X.attach_all(runs, p, names=[claim.experiment])
    return if_cut_short_went_on(judge_pair(claim, cfgs[claim.experiment], att[claim.experiment], p))


def forest_rows(claim_rows: Sequence[Mapping]) -> list[dict]:
    """The forest plot's data in F1 points: each judged claim's difference and interval beside
    the paper's effect (claims without runs are left out)."""
    pts = lambda x: None if x is None else 100 * x  # noqa: E731
    return [{"id": c["id"], "verdict": c["verdict"], "diff": pts(c["diff"]), "ci_low": pts(c["ci_low"]),
             "ci_high": pts(c["ci_high"]), "mde": pts(c["mde"]), "paper": pts(c["paper_effect"]),
             "n_seeds": c["n_seeds"]}
            for c in claim_rows if c.get("diff") is not None]

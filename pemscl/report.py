"""Writing the results: Markdown tables, results/results.{json,md}, docs/results.md, the README's summary.

    from pemscl import claims, report, runs, tables
    all_runs = runs.gather_runs()
    t, c = tables.build_tables(all_runs, "cpu"), claims.judge(all_runs, "cpu")
    report.write_results(t, c)                      # results/results.json and results/results.md
    report.write_docs(t, c)                         # docs/results.md (the whole section), README.md (its summary)

The claims table comes first (verdict, our difference with its 95% interval, the minimum
detectable effect, the paper's effect, dev beside), then the tables. Nothing here computes a
number; it formats what tables.py and claims.py return.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any, Mapping, Sequence

from . import experiments as X
from . import gpu_check
from . import leaderboard as LB
from . import runs as RS
from .config import HASH_VERSION
from .fmt import interval, pct, pts, table_md
from .published import PUBLISHED
from .runs import FLAT_GAIN
from .utils import REPO, atomic_write_text, figures_dir, readme_path, results_dir, to_jsonable

# the whole results section lives between these markers in docs/results.md (README_* kept as the older names)
RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"
README_START, README_END = RESULTS_START, RESULTS_END
# the README's short results (the claims in one table, the headline rows, the cost) between these
SUMMARY_START, SUMMARY_END = "<!-- summary:start -->", "<!-- summary:end -->"
RESULTS_DOC = Path("docs") / "results.md"


# --------------------------------------------------------------------------- cells


def show_table(rows: Sequence[Mapping], columns: Sequence[tuple[str, Any]]):
    """table_md as a rendered Markdown cell output in a notebook."""
    from IPython.display import Markdown

    return Markdown(table_md(rows, columns))


def m(metric: str):
    """Column getter: mean ± std of a summarised metric, in %."""
    return lambda r: pct(r.get(metric), r.get(f"{metric}_std"))


def paper_col(metric: str):
    return lambda r: None if not r.get("paper") or r["paper"].get(metric) is None else f"{r['paper'][metric]:.2f}"


def with_gold(metric: str, n_gold: str):
    """'41.2 ± 3.0 (57)': a group's F1 beside its number of gold facts."""
    return lambda r: None if r.get(metric) is None else (
        pct(r[metric], r.get(f"{metric}_std")) + ("" if r.get(n_gold) is None else f" ({r[n_gold]:.0f})"))


def _epochs(r: Mapping, prefix: str = "best_epoch") -> str | None:
    if r.get(f"{prefix}_mean") is None:
        return None
    lo, hi = r[f"{prefix}_min"], r[f"{prefix}_max"]
    return f"{r[f'{prefix}_mean']:.1f}" + ("" if lo == hi else f" ({lo}–{hi})")


def _pooled(rows: Sequence[Mapping], prefix: str, n: str) -> str:
    """'17.6 on average (14–21)': convergence rows' mean epochs weighted by their runs (n)."""
    rows = [r for r in rows if r.get(f"{prefix}_mean") is not None and r.get(n)]
    mean = sum(r[f"{prefix}_mean"] * r[n] for r in rows) / sum(r[n] for r in rows)
    return (f"{mean:.1f} on average ({min(r[f'{prefix}_min'] for r in rows)}–"
            f"{max(r[f'{prefix}_max'] for r in rows)})")


# --------------------------------------------------------------------------- columns
CLAIM_COLS = [("claim", "claim"), ("verdict", lambda r: f"**{r['verdict']}**"),
              ("ours: A − B [95% CI]", lambda r: interval(r.get("diff"), r.get("ci_low"), r.get("ci_high"))),
              ("MDE", lambda r: pts(r.get("mde"), sign=False)), ("seeds", "n_seeds"),
              ("paper", lambda r: pts(r.get("paper_effect"))),
              ("dev beside", lambda r: (interval(r.get("dev_diff"), r.get("dev_ci_low"), r.get("dev_ci_high")) or "–")
               + (" (documents only)" if r.get("n_seeds") == 1 and r.get("dev_diff") is not None else ""))]
TABLE2_COLS = [("model", "label"), ("n", "n"), ("dev Ign F1", m("dev_ign_f1")), ("dev F1", m("dev_f1")),
               ("test Ign F1", m("test_ign_f1")), ("test F1", m("test_f1")),
               ("paper test Ign F1", paper_col("test_ign_f1")), ("paper test F1", paper_col("test_f1"))]
TABLE3_COLS = [("model", "label"), ("n", "n"), ("dev Ign F1", m("dev_ign_f1")), ("dev F1", m("dev_f1")),
               ("head F1", m("dev_head_f1")), ("mid F1", m("dev_mid_f1")), ("tail F1", m("dev_tail_f1")),
               ("test F1", m("test_f1")), ("test tail F1", m("test_tail_f1")),
               ("paper dev F1", paper_col("dev_f1")), ("paper tail F1", paper_col("dev_tail_f1"))]
TABLE4_COLS = [("regime", "regime"), ("model", "label"), ("n", "n"), ("orig dev F1", m("orig_dev_f1")),
               ("gold dev F1", m("gold_dev_f1")), ("gold test Ign F1", m("test_ign_f1")),
               ("gold test F1", m("test_f1")), ("paper gold test F1", paper_col("test_f1"))]
FIGURE2_COLS = [("model", "model"), ("ratio", "ratio"), ("n", "n"), ("orig dev F1", m("dev_f1")),
                ("gold dev F1", m("by_dev_gold_dev_gold_f1")), ("gold test F1 (orig dev selection)", m("test_f1")),
                ("gold test F1 (gold dev selection)", m("by_dev_gold_test_f1"))]
GROUP_COLS = [("experiment", "experiment"), ("model", "label"), ("split", "split"), ("n", "n"), ("F1", m("f1")),
              *[(f"{g} F1 (gold facts)", with_gold(f"{g}_f1", f"{g}_n_gold")) for g in ("head", "mid", "tail")]]
def dev_noise_line(n: Mapping | None) -> str:
    """tables.dev_noise as one sentence: how noisy late dev F1 is, against the flat-curve rule."""
    if not n:
        return ""
    return (f"Late in a run dev F1 still moves: over the last {n['last']} epochs of the {n['n_runs']} runs that "
            f"used their whole epoch budget, one epoch to the next changed it by {100 * n['step_mean']:+.2f} on "
            f"average with sd {100 * n['step_sd']:.2f} "
            f"F1 ({n['n_steps']} steps). A two-epoch change then has sd about {100 * n['two_epoch_sd']:.2f}, so "
            f"the rule's {100 * n['flat_gain']:.1f} F1 would call about {100 * n['flat_cut_short']:.0f}% of "
            "truly flat curves cut short: read a \"cut short\" with a small last gain as noise, not as a "
            "run still learning.")


CONVERGENCE_COLS = [("experiment", "experiment"), ("row", "label"), ("regime", "regime"),
                    ("converged", lambda r: f"{r['n_converged']}/{r['n']}"),
                    ("best epoch: mean (range)", _epochs),
                    ("epochs run (max / limit)", lambda r: f"{r['epochs_run_max']} / {r['epochs_max']}"),
                    ("stopped early", "n_stopped_early"),
                    ("on gold dev: converged, best epoch", lambda r: None if r.get("n_known_other") is None else
                     f"{r['n_converged_other']}/{r['n_known_other']}, " + _epochs(r, "best_other_epoch"))]
FAITH_COLS = [("option", "label"), ("setting", "setting"), ("n", "n"), ("dev F1", m("dev_f1")),
              ("test F1", m("test_f1")), ("tail F1", m("test_tail_f1")),
              ("Δ test F1 (pts)", lambda r: pts(r.get("delta_test_f1")))]
LAYER_COLS = [("trained", "label"), ("n", "n"), ("dev F1", m("dev_f1")), ("test Ign F1", m("test_ign_f1")),
              ("test F1", m("test_f1")), ("dev tail F1", m("dev_tail_f1")),
              ("minutes", lambda r: None if r.get("seconds") is None else f"{r['seconds'] / 60:.1f}")]
SEARCH_COLS = [("run", "label"), ("dev F1", m("dev_f1")), ("dev tail F1", m("dev_tail_f1")),
               ("test Ign F1", m("test_ign_f1")), ("test F1", m("test_f1"))]


# --------------------------------------------------------------------------- text
HOW_TO_READ = (
    "A − B in F1 points on gold test, mean over seed-matched pairs of runs (seeds present in both rows only). "
    "The 95% interval covers both sources of chance: which documents were scored (a document bootstrap, 2000 "
    "resamples shared by every run) and which seeds were trained (the scatter of the per-seed differences): "
    "diff ± t · sqrt(SE_docs² + sd_seeds² / n), t with Welch-Satterthwaite degrees of freedom "
    "(stats.paired_bootstrap). A claim judged on one seed borrows the seeds' part: the widest nonzero sd_seeds, on its relation group, of the "
    "claims with 3 or more seeds of its label regime (of any regime while its own has none), with that claim's df; its "
    "note names the lender (claims.lend_seed_spread). MDE: the smallest effect "
    "this setup detects with 80% power ((t₀.₉₇₅ + t₀.₈) × SE). Verdicts: *holds* / *contradicted*: the interval "
    "excludes 0 on the paper's / the other side; *not measurable here*: it contains 0 and the MDE exceeds twice "
    "the paper's effect; *not resolved*: it contains 0 although the paper's effect is within reach; *missing "
    "runs*: the profile has not been run. Per-seed differences and the documents-only interval are in the notes "
    "below and in results.json. Paper effects are RoBERTa-large on the full data, ours a smaller encoder on "
    "less: the direction is what should carry over.")


def record_line(summary: Mapping[str, int]) -> str:
    """How many runs the record holds per hash version, and which version is used."""
    if not summary:
        return "results/runs.jsonl holds no records yet."
    parts = [f"{n} of hash version {v}" + (" (used)" if str(v) == str(HASH_VERSION) else " (kept, not used)")
             for v, n in sorted(summary.items())]
    return f"results/runs.jsonl holds {sum(summary.values())} run records: " + ", ".join(parts) + "."


def claim_notes(claim_rows: Sequence[Mapping]) -> list[str]:
    """One bullet per claim: how it was measured, the paper's source, what is missing."""
    out = []
    for c in claim_rows:
        bits = [f"`{c['id']}`: {c.get('a')} vs {c.get('b')} ({c.get('experiment')}), {c.get('split')} F1"
                + ("" if c.get("group") in (None, "all") else f" on {c['group']} relations")
                + f"; paper {pts(c['paper_effect'])} ({c['paper_source']})"]
        if c.get("seed_diffs"):
            bits.append("per seed " + ", ".join(f"{s}: {pts(d)}" for s, d in zip(c.get("seeds") or [], c["seed_diffs"]))
                        + f"; documents only {interval(c['diff'], c.get('doc_ci_low'), c.get('doc_ci_high'))}")
        if c.get("seed_sd") is not None or c.get("borrowed_seed_sd") is not None:  # a spread to plan with
            need = c.get("seeds_for_paper_effect")
            bits.append(f"at these spreads about {need} paired seeds would detect the paper's effect with 80% "
                        "power" if need else "at these spreads no number of seeds would detect the paper's "
                        "effect (the documents' part alone is too wide)")
        if c.get("borrowed_from"):
            beside = [x for x, on in (("dev", c.get("dev_diff") is not None), ("group", bool(c.get("context")))) if on]
            bits.append(f"one seed: seed spread lent by `{c['borrowed_from']}` (sd {100 * c['borrowed_seed_sd']:.2f} F1 "
                        f"over {c['borrowed_df'] + 1:g} seeds; the interval's t has {c['df']:.1f} df)"
                        + (f"; the {' and '.join(beside)} interval{'s' if len(beside) > 1 else ''} beside "
                           f"{'are' if len(beside) > 1 else 'is'} documents-only" if beside else ""))
        elif c.get("n_seeds") == 1:
            bits.append("one seed and no multi-seed claim to lend a seed spread: the interval is the documents' "
                        "alone and leaves training randomness out")
        for g, v in (c.get("context") or {}).items():
            bits.append(f"{g} beside: {interval(v['diff'], v['ci_low'], v['ci_high'])}")
        if c.get("choices"):
            bits.append("ratios picked: " + "; ".join(
                f"seed {x['seed']}: original dev {x['ratio_by_original_dev']:g}, gold dev {x['ratio_by_gold_dev']:g} "
                f"(best on test {x['ratio_best_test']:g}, not used)"
                + ("" if x.get("among") == x.get("planned") or not x.get("among") else
                   f", among {len(x['among'])} of the {len(x['planned'])} planned ratios "
                   f"({', '.join(f'{r:g}' for r in x['among'])}): provisional until the sweep is complete")
                for x in c["choices"]))
        if c.get("cut_short"):
            bits.append(f"rests on {len(c['cut_short'])} run{'s' if len(c['cut_short']) > 1 else ''} cut short on "
                        + ", ".join(f"{x['dev'].replace('_', ' ')}: {x['run']}" + (
                            "" if x.get("last_gain") is None else f", last two epochs {pts(x['last_gain'])} F1")
                                    for x in c["cut_short"])
                        + (" (their numbers may not be end points)" if len(c["cut_short"]) > 1
                           else " (its number may not be an end point)"))
            chk = c.get("cut_short_check")
            if chk:
                bits.append(f"had {'they' if len(c['cut_short']) > 1 else 'it'} gained as much again on "
                            f"{c.get('split')}: {interval(chk['diff'], chk['ci_low'], chk['ci_high'])}, "
                            f"{chk['verdict']}")
        if c.get("missing"):
            bits.append("missing: " + ", ".join(c["missing"]))
        if c.get("note"):
            bits.append(c["note"])
        out.append("- " + "; ".join(bits))
    return out


VERDICT_ORDER = ("holds", "contradicted", "not resolved", "not measurable here", "missing runs")


def _claim_brief(c: Mapping) -> str:
    """'`id` +0.66 [-1.57, +2.89] on 3 seeds (paper +2.13; MDE 2.85)'."""
    if c.get("diff") is None:
        return f"`{c['id']}`"
    return (f"`{c['id']}` {interval(c['diff'], c.get('ci_low'), c.get('ci_high'))} on {c.get('n_seeds')} "
            f"seed{'s' if c.get('n_seeds') != 1 else ''} (paper {pts(c.get('paper_effect'))}; MDE "
            f"{pts(c.get('mde'), sign=False)})")


def claim_runs_line(claim_rows: Sequence[Mapping]) -> str | None:
    """How many distinct runs the judged claims rest on and how many of them converged on their
    claim's dev set (claims.cut_short); None when no claim was judged."""
    keys = {k for c in claim_rows for k in (c.get("runs_a") or []) + (c.get("runs_b") or [])}
    if not keys:
        return None
    short = {x["key"]: x for c in claim_rows for x in c.get("cut_short") or []}
    return (f"- Claim-bearing runs: {len(keys) - len(short)} of {len(keys)} converged on the dev set of their claim "
            "(gold dev for the original-label claims)"
            + (": cut short " + ", ".join(f"{x['run']}" + ("" if x.get("last_gain") is None else
                                                           f" (last two epochs {pts(x['last_gain'])} F1)")
                                          for x in short.values()) if short else "") + ".")


def longer_line(rows: Sequence[Mapping]) -> str:
    """The claim-bearing runs trained again with a longer budget (tables.longer_table)."""
    def one(r: Mapping) -> str:
        if r["key"] is None:
            return f"{r['run']}: still to train"
        return (f"{r['run']}: {r['dev']} F1 {pct(r['dev_f1_short'])} → {pct(r['dev_f1'])} (best epoch "
                f"{r['best_epoch']}, {'converged' if r['converged'] else 'cut short again'}), test F1 "
                f"{pct(r['test_f1_short'])} → {pct(r['test_f1'])}")
    budgets = sorted({(r["epochs_short"], r["epochs"]) for r in rows})
    return ("- Cut short, so trained again with a longer budget ("
            + ", ".join(f"{a} → {b} epochs" for a, b in budgets)
            + "; the tables and claims read the longer run, the record keeps both): "
            + "; ".join(map(one, rows)) + ".")


def summary_lines(tables: Mapping, claim_rows: Sequence[Mapping]) -> list[str]:
    """The results in a few bullets, every number read from the tables and claims: the verdicts
    grouped, ATL and PEMSCL of the headline, how many runs converged and the epochs they needed
    per regime, and the cost. What the closing of a profile reports, kept current by 07."""
    out = []
    by = {v: [c for c in claim_rows if c.get("verdict") == v] for v in VERDICT_ORDER}
    out.append("- Verdicts: " + "; ".join(f"**{v}**: " + (", ".join(map(_claim_brief, cs)) if cs else "none")
                                         for v, cs in by.items() if cs or v in VERDICT_ORDER[:2]) + ".")
    heads = [r for r in tables.get("table2", []) if r.get("label") in X.CLAIM_ROWS["headline"]]
    if heads:
        out.append("- Headline rows, mean ± sd over seeds: " + "; ".join(
            f"{r['label']} dev F1 {pct(r.get('dev_f1'), r.get('dev_f1_std'))}, test F1 "
            f"{pct(r.get('test_f1'), r.get('test_f1_std'))} ({r['n']} seed{'s' if r['n'] != 1 else ''})"
            for r in heads) + ".")
    conv = tables.get("convergence", [])
    if conv:
        known = sum(r["n_known"] for r in conv)
        short = [f"{r['label']} ({r['regime']}, {r['n_known'] - r['n_converged']} of {r['n_known']})"
                 for r in conv if r["n_converged"] < r["n_known"]]
        regimes: dict[str, list[Mapping]] = {}
        for r in conv:
            if r.get("best_epoch_mean") is not None and r["n_known"]:
                regimes.setdefault(r["regime"], []).append(r)
        other = [r for r in conv if r.get("n_known_other")]
        out.append(f"- Convergence: {sum(r['n_converged'] for r in conv)} of {known} runs converged on their "
                   "selection dev set" + (f" (cut short: {', '.join(short)})" if short else "") + "; best epoch "
                   + "; ".join(f"{reg} {_pooled(rs, 'best_epoch', 'n_known')} of {max(r['epochs_max'] for r in rs)}"
                               for reg, rs in regimes.items()) + "."
                   + (f" The runs selected on original dev, judged on gold dev (the dev set of the gold-test claims "
                      f"they bear): {sum(r['n_converged_other'] for r in other)} of "
                      f"{sum(r['n_known_other'] for r in other)} converged, best gold-dev epoch "
                      f"{_pooled(other, 'best_other_epoch', 'n_known_other')}." if other else ""))
    line = claim_runs_line(claim_rows)
    if line:
        out.append(line)
    if tables.get("longer"):
        out.append(longer_line(tables["longer"]))
    cost = tables.get("cost") or {}
    if cost.get("n_runs"):
        planned = cost.get("n_planned") or cost["n_runs"]
        gaps = sorted({m for ms in (tables.get("missing") or {}).values() for m in ms})
        out.append(f"- Cost: {cost['n_runs']} of the profile's {planned} planned runs, "
                   f"{cost['total_seconds'] / 3600:.1f} h of training, about "
                   f"{(cost.get('wall_seconds_2') or 0) / 3600:.1f} h of wall time two side by side."
                   + (f" Still to train: {', '.join(gaps)}; until they are in, the verdicts are interim."
                      if gaps else " Every planned run is in."))
    return out


def figure_md(name: str, alt: str, where: str | Path | None) -> list[str]:
    """An image line for figures/<name>.png, relative to the folder the Markdown lives in
    (`where`); nothing when that is unknown or the PNG was not written (no Chrome)."""
    png = figures_dir() / f"{name}.png"
    if where is None or not png.exists():
        return []
    return [f"![{alt}]({Path(os.path.relpath(png, Path(where))).as_posix()})", ""]


LEADERBOARD_NOTE = (
    "Mean test F1 over the claim seeds ± sd; the 95% interval counts documents and seeds. *vs reference*: "
    "the seed-paired difference to the row best on the selection dev set (never chosen on test), with its "
    "interval: *holds* = a real difference, *not resolved* = a tie at this resolution, *not measurable here* = "
    "the MDE exceeds 2 F1 points. Every loss has the optimiser settings chosen on ATL and its paper's own "
    "hyper-parameters, untuned here (docs/leaderboard.md has the fairness notes).")


def markdown(tables: Mapping, claim_rows: Sequence[Mapping], level: int = 2,
             records: Mapping[str, int] | None = None, figures_from: str | Path | None = None) -> str:
    """The results as Markdown (headings start at `level`): claims first, then the tables.
    figures_from: the folder the Markdown will be written to, so the forest plot and the
    convergence figure (07's PNGs) can be shown with paths that resolve from there."""
    h = "#" * level
    cost = tables.get("cost", {})
    p = X.get_profile(tables["profile"])
    records = RS.record_summary() if records is None else records
    lines = [f"{h} Results (profile `{tables['profile']}`)", "",
             f"Generated {tables.get('generated', '')} by `07_results.ipynb` from the runs; do not edit by hand. "
             f"F1 in %, mean ± std over seeds (n runs). Paper columns: {PUBLISHED['source']}, shown for "
             f"orientation only (different encoder and data size). {record_line(records)}", "",
             f"{h}# In short", "", *summary_lines(tables, claim_rows), "",
             f"{h}# Claims", "", table_md(claim_rows, CLAIM_COLS), "", HOW_TO_READ, "", *claim_notes(claim_rows), "",
             *figure_md("07_claims_forest", "each claim's difference and 95% interval beside the paper's effect",
                        figures_from),
             f"{h}# Table 2: losses on gold labels ({p.gold_regime}, test)", "", table_md(tables["table2"], TABLE2_COLS), "",
             f"{h}# Table 3: ablation ({p.gold_regime})", "", table_md(tables["table3"], TABLE3_COLS), "",
             f"{h}# Relation groups: F1 beside each group's gold facts", "",
             "Head = the 10 most frequent relations in training, tail = the 20 rarest (the paper's cut); "
             "in brackets the gold facts of that group on that split: few facts, wide swings.", "",
             table_md(tables.get("groups", []), GROUP_COLS), "",
             f"{h}# Table 4: training on original labels (gold test)", "", table_md(tables["table4"], TABLE4_COLS), "",
             f"{h}# Figure 2: negative sampling ratio ({p.oog_regime})", "", table_md(tables["figure2"], FIGURE2_COLS), "",
             f"{h}# Convergence: epochs each run kind needed", "",
             "Converged: the best epoch was followed by two epochs that did not beat it, or the last two epochs "
             f"gained at most {100 * FLAT_GAIN:g} F1 (runs.converged); otherwise the run was cut short by its "
             "epoch limit. A run trained on original labels is selected on original dev, whose curve keeps "
             "rewarding a model that learns the annotation's gaps; the claims on those runs read gold test, so the "
             "last column judges the same rule on gold dev (tables.other_dev_convergence), and that column says "
             "whether their numbers are end points.", "",
             table_md(tables.get("convergence", []), CONVERGENCE_COLS), "",
             dev_noise_line(tables.get("dev_noise")), "",
             *figure_md("07_convergence", "selection dev F1 per epoch of every run, per row", figures_from),
             f"{h}# Paper vs released code (FAITHFULNESS.md): exploratory", "",
             "Exploratory: the fast path (top layers only) and one seed; a Δ here points at something to run "
             "properly, it is not a finding.", "", table_md(tables["faithfulness"], FAITH_COLS), ""]
    if tables.get("leaderboard"):
        lines += [f"{h}# Leaderboard: which loss to train with (same encoder, seeds, schedule, tuning)", "",
                  LEADERBOARD_NOTE, "", LB.markdown(tables["leaderboard"]),
                  *figure_md("07_leaderboard", "each loss's test F1 with its interval, published numbers hollow",
                             figures_from)]
    if tables.get("probe"):
        lines += ["**How much each decision rule leaves unused** (`benchmarks/probe_decision.py`)", "",
                  LB.PROBE_NOTE, "", LB.probe_markdown(tables["probe"]), ""]
    if tables.get("search"):
        lines += [f"{h}# Small search on dev (one seed, {p.gold_regime})", "",
                  table_md(tables["search"], SEARCH_COLS), ""]
    if tables.get("layers"):
        lines += [f"{h}# Fast path: trained layers vs full fine-tuning (PEMSCL, {p.gold_regime}, one seed)", "",
                  table_md(tables["layers"], LAYER_COLS), ""]
    if cost:
        per = ", ".join(f"{k} {v / 60:.1f} min" for k, v in cost.get("per_experiment_seconds", {}).items() if v)
        lines += [f"{h}# Cost", "",
                  f"{cost.get('n_runs', 0)} runs, {cost.get('total_seconds', 0) / 60:.1f} min of training in total "
                  f"({per or '–'}), about {(cost.get('wall_seconds_2') or 0) / 3600:.1f} h of wall time when trained two "
                  f"side by side (longest first); longest run {(cost.get('max_seconds') or 0) / 60:.1f} min; peak memory "
                  f"{(cost.get('peak_rss_mb') or 0) / 1024:.1f} GiB RSS"
                  + (f", {cost['peak_cuda_mb'] / 1024:.1f} GiB GPU" if cost.get("peak_cuda_mb") else "")
                  + f"; devices: {', '.join(cost.get('devices', [])) or '–'}.", ""]
    if tables.get("gpu"):
        lines += [gpu_check.markdown(tables["gpu"], level=level + 1)]
    missing = {k: v for k, v in tables.get("missing", {}).items() if v}
    if missing:
        lines += ["Missing runs: " + "; ".join(f"{k}: {len(v)}" for k, v in missing.items()), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- files
def write_results(tables: Mapping, claim_rows: Sequence[Mapping], folder: str | Path | None = None,
                  runs: Sequence[RS.Run] | None = None) -> dict:
    """results.json (tables, claims, the paper's numbers, the record's summary) and results.md.

    Given runs, those of this profile's experiments not yet recorded are merged into
    folder/runs.jsonl (runs.export_runs: merge only, every other record is kept; a recorded run
    is never displaced by a local folder of its config, e.g. one trained again for its weights).
    The record is never rebuilt from the run folders present here. Returns {"json", "md"[, "runs"]}."""
    folder = Path(folder) if folder is not None else results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    if runs is not None:
        keys = {c.key() for c in X.profile_configs(tables["profile"], records=runs)}
        out["runs"] = RS.export_runs([r for r in runs if r.config.key() in keys], folder / "runs.jsonl",
                                     keep_recorded=True)
    records = RS.record_summary(folder / "runs.jsonl")
    js, md = folder / "results.json", folder / "results.md"
    payload = {"tables": tables, "claims": list(claim_rows), "published": PUBLISHED, "records": records}
    atomic_write_text(js, json.dumps(to_jsonable(payload), indent=1))
    atomic_write_text(md, markdown(tables, claim_rows, level=1, records=records, figures_from=folder) + "\n")
    return {"json": js, "md": md, **out}


def results_doc_path() -> Path:
    """docs/results.md beside the README (both move with $PEMSCL_README, like docs/FAITHFULNESS.md)."""
    return readme_path().parent / RESULTS_DOC


def update_section(md: str, path: str | Path, start: str = RESULTS_START, end: str = RESULTS_END) -> Path:
    """Replace what lies between the markers `start` and `end` in `path` with `md`; nothing else changes."""
    path = Path(path)
    text = path.read_text()
    pat = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pat.search(text):
        raise ValueError(f"{path} has no {start} ... {end} section")
    path.write_text(pat.sub(lambda _: f"{start}\n{md.strip()}\n{end}", text, count=1))
    return path


def update_results_doc(md: str, path: str | Path | None = None) -> Path:
    """The whole results section (`markdown(..., level=3)`) into docs/results.md, between the results
    markers. A README copy elsewhere ($PEMSCL_README: the smoke pipeline, the dry run, the tests) gets
    the repository's docs/results.md beside it first, so its hand-written text is the repository's."""
    path = Path(path) if path is not None else results_doc_path()
    if not path.exists() and path.resolve() != (REPO / RESULTS_DOC).resolve():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((REPO / RESULTS_DOC).read_text())
    return update_section(md, path, RESULTS_START, RESULTS_END)


def update_readme(md: str, path: str | Path | None = None) -> Path:
    """The README's short results (`summary_markdown`) between its summary markers."""
    return update_section(md, Path(path) if path is not None else readme_path(), SUMMARY_START, SUMMARY_END)


SUMMARY_COLS = [c for c in CLAIM_COLS if c[0] in ("claim", "verdict", "ours: A − B [95% CI]", "seeds", "paper")]


def summary_markdown(tables: Mapping, claim_rows: Sequence[Mapping], results_link: str = "docs/results.md") -> str:
    """The README's results in short: each claim's verdict with its interval beside the paper's effect,
    the headline rows and the cost (the lines of *In short*), and a link to the whole section. No
    timestamp, so the README changes only when a number does."""
    keep = ("- Headline rows", "- Cost")
    lb_link = (PurePosixPath(results_link).parent / "leaderboard.md").as_posix()  # docs/ beside results.md
    return "\n".join([
        f"Profile `{tables['profile']}`, written by `07_results.ipynb` from the run record (do not edit by hand); "
        f"every table, interval, note and figure is in [{results_link}]({results_link}). A − B in F1 points on "
        "gold test, 95% interval over documents and seeds; *paper*: the paper's effect (RoBERTa-large, full "
        "data), whose direction, not size, should carry over.", "",
        table_md(claim_rows, SUMMARY_COLS), "",
        *[line for line in summary_lines(tables, claim_rows) if line.startswith(keep)],
        *(["", "The leaderboard (which loss to train with: same encoder, seeds, schedule and tuning for every "
           "loss; the reference is each regime's row best on the selection dev set; fairness notes in "
           f"[{lb_link}]({lb_link})):", "", board]
          if (board := LB.summary_markdown(tables.get("leaderboard") or {})) else [])])


def write_docs(tables: Mapping, claim_rows: Sequence[Mapping]) -> dict[str, Path]:
    """docs/results.md (the whole section, figures linked from docs/) and the README's summary, both
    beside $PEMSCL_README or the repository's README. Returns {"results_doc", "readme"}."""
    doc = results_doc_path()
    link = Path(os.path.relpath(doc, readme_path().parent)).as_posix()
    return {"results_doc": update_results_doc(markdown(tables, claim_rows, level=3, figures_from=doc.parent), doc),
            "readme": update_readme(summary_markdown(tables, claim_rows, results_link=link))}

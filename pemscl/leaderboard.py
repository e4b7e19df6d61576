"""The leaderboard of DocRE losses (issue 26): one row per (label regime, loss), each on the same
seeds, encoder, schedule, optimiser and statistics, with its interval and its difference to the
regime's reference row.

    from pemscl import leaderboard, runs
    board = leaderboard.build(runs.gather_runs(), "cpu")
    board["rows"][0]["loss"], board["rows"][0]["test_f1"], board["rows"][0]["vs_best"]["verdict"]

A row's interval (`ci_low`, `ci_high`) is that of its mean test F1 over seeds, with the claims'
two sources of chance: documents (a bootstrap shared by every seed) and seeds (their scatter,
t with Welch-Satterthwaite df; stats.mean_bootstrap). `vs_best` is the seed-paired difference
to the regime's reference row (stats.paired_bootstrap, as the claims): the reference is the row
with the best mean F1 on the *selection dev set* (the test set never chooses anything); its
verdict is "holds" when the interval excludes 0 (a real difference), "not measurable here" when
it contains 0 and the minimum detectable effect is over twice TIE_EFFECT, else "not resolved" (a
tie at this resolution: ties are called ties). On incomplete labels every row is selected on
original dev, as a user without gold labels would; the gold-dev selection of the same runs is
shown beside (`test_f1_gold_dev`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from . import experiments as X
from . import runs as RS
from . import stats as S
from .fmt import MISSING, interval, pct, row_md, table_md
from .claims import BOOT_SEED, N_BOOT, counts
from .utils import results_dir

# The smallest difference worth knowing between two losses: one F1 point. A comparison whose MDE
# exceeds twice this cannot tell a point apart from nothing ("not measurable here").
TIE_EFFECT = 0.01
GROUPS = ("head", "mid", "tail")


def row_name(name: str, ns: bool) -> str:
    """The loss as results/leaderboard.json names it: the registry name, "+ns" for NS rows."""
    return f"{name.removesuffix('-ns')}+ns" if ns else name


def _mean(xs: Sequence[float | None]) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _sd(xs: Sequence[float | None]) -> float | None:
    xs = [x for x in xs if x is not None]
    if len(xs) < 2:
        return None
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _score(run: RS.Run, split: str, key: str = "f1") -> float | None:
    return (run.scores.get(split) or {}).get(key)


def _test_by_gold_dev(run: RS.Run) -> float | None:
    view = run.scores.get("by_dev_gold") or {}
    return view.get("test_f1")


def _verdict(res: S.BootstrapResult) -> str:
    if res.ci_low > 0 or res.ci_high < 0:
        return "holds"
    return "not measurable here" if res.mde > 2 * TIE_EFFECT else "not resolved"


def bf16_gemm(run: RS.Run) -> str | None:
    """How a CPU run's bf16 products were computed: "native" (bf16 instructions; every bf16 CPU run
    recorded before bf16cpu existed) or "fp32 accumulate" (bf16cpu, a CPU without them); None when
    the run is not bf16 on a CPU."""
    s = run.scores
    if s.get("precision") != "bfloat16" or not str(s.get("device", "cpu")).startswith("cpu"):
        return None
    return s.get("bf16_gemm", "native")


def _row(p: X.Profile, labels: str, label: str, name: str, ns: bool, runs: list[RS.Run],
         planned: list, longer: Mapping) -> dict[str, Any]:
    row: dict[str, Any] = {
        "regime": X.leaderboard_regime(p, labels), "labels": labels, "label": label, "loss": row_name(name, ns),
        "n_seeds": len(runs), "seeds": [r.config.seed for r in runs], "runs": [r.config.key() for r in runs],
        "missing": RS.missing_labels([c for c, _ in planned], [r for _, r in planned]),
        # a run cut short whose longer run is still to train: the row holds it until that is in
        "pending": [RS.run_label(c, longer[c.key()].epochs)
                    for c, r in planned if r is not None and c.key() in longer],
        "converged": [r.scores.get("converged") for r in runs],
        "bf16_gemm": [bf16_gemm(r) for r in runs],
        "test_f1": _mean([_score(r, "test") for r in runs]), "test_f1_sd": _sd([_score(r, "test") for r in runs]),
        "test_ign_f1": _mean([_score(r, "test", "ign_f1") for r in runs]),
        "dev_f1": _mean([_score(r, "dev") for r in runs]),
        "training_hours": sum(r.scores.get("seconds") or 0.0 for r in runs) / 3600,
        "ci_low": None, "ci_high": None,
    }
    for g in GROUPS:
        row[f"test_{g}_f1"] = _mean([_score(r, "test", f"{g}_f1") for r in runs])
    if labels == "incomplete":
        row["dev_gold_f1"] = _mean([_score(r, "dev_gold") for r in runs])
        row["test_f1_gold_dev"] = _mean([_test_by_gold_dev(r) for r in runs])
    have = [r for r in runs if "all" in (counts(r, "test") or {})]
    if have and len(have) == len(runs):
        res = S.mean_bootstrap([counts(r, "test") for r in runs], metric="f1", n_boot=N_BOOT, seed=BOOT_SEED)
        row.update(ci_low=res.ci_low, ci_high=res.ci_high, ci_df=res.df)
    return row


def build(runs: Iterable, profile: str | X.Profile, configs: Sequence | None = None) -> dict[str, Any]:
    """{"rows": one per (label regime, loss), "reference": the reference row of each regime, ...}.
    configs: the planned runs when they are not the profile's own leaderboard (e.g. the same runs on
    a GPU at other seeds: experiments.retarget); a row holds the runs of its label and regime."""
    runs = RS.as_runs(runs)
    p = X.get_profile(profile)
    if configs is None:
        longer = X.longer_configs(p, runs)
        cfgs, att = X.attach_all(runs, p, names=["leaderboard"], longer=longer)
        planned = list(zip(cfgs["leaderboard"], att["leaderboard"]))
    else:
        longer = {}
        planned = list(zip(configs, X.attach(configs, runs)))
    rows, reference = [], {}
    for labels, table in X.LEADERBOARD.items():
        regime = X.leaderboard_regime(p, labels)
        block = []
        for label, (name, ns) in table.items():
            mine = [(c, r) for c, r in planned if c.regime == regime and c.label == label]
            got = sorted((r for _, r in mine if r is not None), key=lambda r: r.config.seed)
            block.append((_row(p, labels, label, name, ns, got, mine, longer), got))
        scored = [(row, got) for row, got in block if got and row["dev_f1"] is not None]
        best_row, best_runs = max(scored, key=lambda x: x[0]["dev_f1"]) if scored else (None, [])
        reference[labels] = best_row["loss"] if best_row else None
        for row, got in block:
            row["vs_best"] = _vs(row, got, best_row, best_runs)
            rows.append(row)
    return {"rows": rows, "reference": reference, "tie_effect": TIE_EFFECT, "profile": p.name,
            "reference_rule": "best mean F1 on the selection dev set (original dev on incomplete labels)"}


def _vs(row: dict, runs: list[RS.Run], best: dict | None, best_runs: list[RS.Run]) -> dict[str, Any]:
    """The seed-paired test F1 difference row - reference, on the seeds both have."""
    out: dict[str, Any] = {"reference": best["loss"] if best else None, "diff": None, "ci_low": None,
                           "ci_high": None, "mde": None, "n_seeds": 0, "verdict": "missing runs"}
    if best is None or not runs:
        return out
    if best["loss"] == row["loss"]:
        return {**out, "diff": 0.0, "verdict": "reference", "n_seeds": len(runs)}
    theirs = {r.config.seed: r for r in best_runs}
    pairs = [(r, theirs[r.config.seed]) for r in runs if r.config.seed in theirs
             and "all" in (counts(r, "test") or {}) and "all" in (counts(theirs[r.config.seed], "test") or {})]
    if not pairs:
        return out
    res = S.paired_bootstrap([counts(a, "test") for a, _ in pairs], [counts(b, "test") for _, b in pairs],
                             metric="f1", n_boot=N_BOOT, seed=BOOT_SEED)
    return {**out, "diff": res.diff, "ci_low": res.ci_low, "ci_high": res.ci_high, "mde": res.mde,
            "n_seeds": res.n_seeds, "seed_diffs": list(res.seed_diffs), "verdict": _verdict(res)}


def _vs_text(v: Mapping) -> str:
    """A row's difference to the reference in points, with its interval when there is one."""
    return interval(v["diff"], v.get("ci_low"), v.get("ci_high")) or MISSING


def markdown(board: Mapping) -> str:
    """The two tables (one per label regime) as markdown: F1 in %, mean ± sd over seeds."""
    lines = []
    for labels in X.LEADERBOARD:
        rows = [r for r in board["rows"] if r["labels"] == labels]
        if not rows:
            continue
        title = ("gold labels" if labels == "gold" else
                 "incomplete labels (original train, selected on original dev; gold-dev selection beside)")
        lines += [f"**{rows[0]['regime']}, {title}** (reference: {board['reference'].get(labels)}, best on dev)", ""]
        head = "| loss | seeds | test F1 | 95% CI | Ign F1 | dev F1 | head / mid / tail | vs reference | verdict | hours |"
        if labels == "incomplete":
            head += " test F1 (gold-dev sel.) |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        for r in sorted(rows, key=lambda r: -(r["test_f1"] or -1)):
            v = r["vs_best"]
            ci = f"[{pct(r['ci_low'], digits=2)}, {pct(r['ci_high'], digits=2)}]" if r["ci_low"] is not None else "–"
            cells = [r["loss"], str(r["n_seeds"]), pct(r["test_f1"], r.get("test_f1_sd"), digits=2), ci, pct(r["test_ign_f1"], digits=2), pct(r["dev_f1"], digits=2),
                     " / ".join(pct(r[f"test_{g}_f1"], digits=2) for g in GROUPS), _vs_text(v), v["verdict"], f"{r['training_hours']:.1f}"]
            if labels == "incomplete":
                cells.append(pct(r.get("test_f1_gold_dev"), digits=2))
            lines.append(row_md(cells))
        emulated = [f"{r['loss']} seed {seed}" for r in rows
                    for seed, k in zip(r["seeds"], r.get("bf16_gemm") or []) if k == "fp32 accumulate"]
        if emulated:  # the same bf16 arithmetic, another kernel (and machine): said, not hidden
            lines += ["", f"bf16 through fp32 kernels, on a CPU without bf16 instructions (docs/speed.md): "
                          f"{', '.join(emulated)}; every other run in native bf16."]
        lines.append("")
    return "\n".join(lines)


def summary_markdown(board: Mapping) -> str:
    """The README's leaderboard in short: per label regime, each loss's mean test F1 ± sd and its
    seed-paired difference to the reference row with interval and verdict, best first. While runs
    are missing, a line says how many and that the rows are interim."""
    rows = [r for r in board.get("rows", []) if r["n_seeds"]]
    if not rows:
        return ""
    lines = ["| labels | loss | seeds | test F1 ± sd | vs reference [95% CI] | verdict |", "|---|---|---|---|---|---|"]
    for labels in X.LEADERBOARD:
        for r in sorted((r for r in rows if r["labels"] == labels), key=lambda r: -(r["test_f1"] or -1)):
            lines.append(row_md([f"{labels} ({r['regime']})", r["loss"], r["n_seeds"],
                                 pct(r["test_f1"], r.get("test_f1_sd"), digits=2), _vs_text(r["vs_best"]),
                                 r["vs_best"]["verdict"]]))
    missing = sum(len(r["missing"]) for r in board["rows"])
    pending = [p for r in board["rows"] for p in r.get("pending", [])]
    planned = missing + sum(r["n_seeds"] for r in board["rows"])
    if missing or pending:
        again = (f", and {len(pending)} cut short, to be trained again with the longer budget "
                 f"({', '.join(pending)})" if pending else "")
        lines += ["", f"Interim: {planned - missing} of the leaderboard's {planned} runs are in{again}; a row "
                      "with fewer than 3 seeds, or a run still to be trained again, and every verdict beside it, "
                      "may still change."]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the decision probe beside it
PROBE_FILE = "probe_decision.json"  # written by benchmarks/probe_decision.py, keyed by run key
PROBE_NOTE = (
    "A diagnostic beside the leaderboard, not a row of it: each probed run's threshold moved by a shift d "
    "(\"r when f_r > f_NA + d\"), d chosen on the run's selection dev set, test read at d = 0 (the run as "
    "recorded) and at the chosen d; for a run on original labels, also at the shift gold dev chooses (last "
    "column). It needs a run's model, so it covers the runs trained on the machine that ran "
    "`benchmarks/probe_decision.py`; docs/leaderboard.md says how to read it.")


def probe_rows(board: Mapping, path: str | Path | None = None) -> list[dict]:
    """The decision probe's results for the runs of this leaderboard (by run key, so another
    profile's probes never show), without their dev/test curves; [] when the probe never ran."""
    path = Path(path) if path is not None else results_dir() / PROBE_FILE
    if not path.exists():
        return []
    keys = {k for r in board.get("rows", []) for k in r.get("runs", [])}
    return [{k: v for k, v in r.items() if k != "curves"} for key, r in json.loads(path.read_text()).items()
            if key in keys]


def probe_markdown(rows: Iterable[Mapping]) -> str:
    """The probe's table: per run the shift its selection dev set chose, dev and test F1 at 0 and
    there, test precision / recall, and test F1 at each second selection set's own shift."""
    columns = [("run", lambda r: f"{r['label']} ({r['regime']})"), ("seed", "seed"),
               ("shift chosen on dev", lambda r: f"{r['chosen_shift']:+.2f}"),
               ("dev F1 at 0 → chosen", lambda r: f"{pct(r['dev_f1_at_0'])} → {pct(r['dev_f1_chosen'])}"),
               ("test F1 at 0 → chosen", lambda r: f"{pct(r['test_f1_at_0'])} → {pct(r['test_f1_chosen'])}"),
               ("test P / R at 0", lambda r: f"{pct(r['test_precision_at_0'])} / {pct(r['test_recall_at_0'])}"),
               ("test P / R chosen", lambda r: f"{pct(r['test_precision_chosen'])} / {pct(r['test_recall_chosen'])}")]
    rows = sorted(rows, key=lambda r: (r["regime"], r["label"] or "", r["seed"]))
    for other in dict.fromkeys(s for r in rows for s in r.get("beside") or {}):  # rows probed before it: "–"
        def at_other(r, other=other):
            b = (r.get("beside") or {}).get(other)
            return f"{b['chosen_shift']:+.2f}: {pct(b['test_f1_chosen'])}" if b else MISSING
        columns.append((f"shift on {other}: test F1", at_other))
    return table_md(rows, columns)

"""The paper's tables from runs: Tables 2-4, Figure 2, faithfulness, layers, search, relation
groups, convergence and cost.

    from pemscl import runs, tables
    t = tables.build_tables(runs.gather_runs(), profile="cpu")
    t["table3"]          # one row per ablation label: n, <metric>, <metric>_std, paper

Runs are matched to a profile's experiment configs by config hash (experiments.attach), so a
run counts wherever its config appears, under that experiment's row label. Means and sample
stds over seeds (`summarise`); published numbers (pemscl.published) sit beside ours
for orientation only. Whether a difference is real is claims.py's job, not this module's.
"""

from __future__ import annotations

import math
import time
from statistics import NormalDist, fmean, stdev
from typing import Any, Iterable, Mapping, Sequence

from . import experiments as X
from . import gpu_check
from . import runs as RS
from .published import PUBLISHED
from .runs import Run

GROUPS = ("head", "mid", "tail")


# --------------------------------------------------------------------------- summarising runs


def flat_scores(run: Run | Mapping) -> dict:
    """One flat row per run: config fields used for grouping plus `<split>_<metric>` scores.

    Splits: dev, dev_gold, test, test_top4; `by_dev_gold_*` is the same run as a gold dev set
    would have selected it (the OGG view). A Mapping is taken as an already flat row.
    """
    if isinstance(run, Mapping):
        return dict(run)
    c, s = run.config, run.scores
    row: dict[str, Any] = {"label": c.label, "regime": c.regime, "loss": c.loss.kind, "seed": c.seed,
                           "encoder": c.encoder, "train_layers": c.train_layers, "epochs": c.epochs,
                           "neg_sample_ratio": c.loss.neg_sample_ratio, "noise_drop": c.noise_drop,
                           "key": c.key(), "dir": str(run.dir), "best_epoch": s.get("best_epoch"),
                           "seconds": s.get("seconds"), "peak_rss_mb": s.get("peak_rss_mb"),
                           "peak_cuda_mb": s.get("peak_cuda_mb"), "device": s.get("device"),
                           "precision": s.get("precision"), "converged": s.get("converged"),
                           "epochs_run": s.get("epochs_run"), "stopped_early": s.get("stopped_early")}
    for split in ("dev", "dev_gold", "test", "test_top4", "by_dev_gold"):
        for k, v in (s.get(split) or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                row[f"{split}_{k}"] = v
    return row


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof=1; None with fewer than 2 values)."""
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


DEFAULT_METRICS = ("dev_ign_f1", "dev_f1", "test_ign_f1", "test_f1", "seconds")


def summarise(runs: Iterable[Run | Mapping | None], by: Sequence[str] = ("label",),
              metrics: Sequence[str] = DEFAULT_METRICS) -> list[dict]:
    """Mean and std (ddof=1) over the runs sharing the `by` fields, rows in first-seen order.

    Each row: the `by` fields, n (runs averaged), then `<metric>` (mean) and `<metric>_std`
    (None when n < 2) for every metric. Missing runs (None) are skipped.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        if r is None:
            continue
        row = flat_scores(r)
        groups.setdefault(tuple(row.get(b) for b in by), []).append(row)
    out = []
    for key, rows in groups.items():
        res: dict[str, Any] = dict(zip(by, key))
        res["n"] = len(rows)
        for m in metrics:
            mean, std = mean_std([r.get(m) for r in rows])
            res[m], res[f"{m}_std"] = mean, std
        out.append(res)
    return out


# --------------------------------------------------------------------------- runs in


def longer_runs(runs: Sequence, longer: Mapping) -> tuple[list, list[RS.Run]]:
    """(the longer configs (`longer`: experiments.longer_configs) of cut-short claim-bearing runs
    that have no run yet: still to train, the cut-short runs whose longer run is in: out of the
    tables, but trained, so in the cost)."""
    by_key = RS.by_key(runs)
    return ([c for c in longer.values() if c.key() not in by_key],
            [by_key[k] for k, c in longer.items() if c.key() in by_key])


# --------------------------------------------------------------------------- helpers
def _rename(row: dict, mapping: Mapping[str, str]) -> dict:
    out = {}
    for k, v in row.items():
        for old, new in mapping.items():
            if k == old or k == f"{old}_std":
                k = new + k[len(old):]
                break
        out[k] = v
    return out


def _distinct(cfgs: Mapping[str, list], att: Mapping[str, list]) -> list[tuple[str, RS.Run]]:
    """Each distinct run once, with the first experiment it appears in (a run shared by the
    headline and the ablation is one run, trained once)."""
    seen, out = set(), []
    for name in cfgs:
        for r in att[name]:
            if r is not None and r.config.key() not in seen:
                seen.add(r.config.key())
                out.append((name, r))
    return out


# --------------------------------------------------------------------------- the tables
TABLE3_METRICS = ("dev_ign_f1", "dev_f1", "dev_head_f1", "dev_mid_f1", "dev_tail_f1", "test_f1", "test_tail_f1")


def table2(att: Mapping[str, list]) -> list[dict]:
    """Table 2: the headline losses on gold labels."""
    rows = summarise(att["headline"], metrics=("dev_ign_f1", "dev_f1", "test_ign_f1", "test_f1", "seconds"))
    for r in rows:
        r["paper"] = PUBLISHED["table2"].get(r["label"])
    return rows


def table3(att: Mapping[str, list]) -> list[dict]:
    """Table 3: the ablation over seeds."""
    rows = summarise(att["ablation"], metrics=TABLE3_METRICS)
    for r in rows:
        r["paper"] = PUBLISHED["table3"].get(r["label"])
    return rows


def table4(p: X.Profile, cfgs: Mapping[str, list], att: Mapping[str, list]) -> list[dict]:
    """Table 4: original-label training; OOG selects on original dev, OGG on gold dev (read from
    the OOG runs' gold-dev selection when the profile has no OGG runs of its own)."""
    rows = []
    exp = "original_labels"
    for regime, name, ren in ((p.oog_regime, "OOG", {"dev_ign_f1": "orig_dev_ign_f1", "dev_f1": "orig_dev_f1",
                                                     "dev_gold_ign_f1": "gold_dev_ign_f1",
                                                     "dev_gold_f1": "gold_dev_f1"}),
                              (p.ogg_regime, "OGG", {"dev_ign_f1": "gold_dev_ign_f1", "dev_f1": "gold_dev_f1"})):
        sel = [r for r, c in zip(att[exp], cfgs[exp]) if c.regime == regime]
        for r in summarise(sel, metrics=tuple(ren) + ("test_ign_f1", "test_f1")):
            rows.append({"regime": name, **_rename(r, ren), "paper": PUBLISHED["table4"][name].get(r["label"])})
    if p.ogg_from_oog:
        sel = [r for r, c in zip(att[exp], cfgs[exp]) if c.regime == p.oog_regime]
        ren = {"by_dev_gold_dev_gold_ign_f1": "gold_dev_ign_f1", "by_dev_gold_dev_gold_f1": "gold_dev_f1",
               "by_dev_gold_test_ign_f1": "test_ign_f1", "by_dev_gold_test_f1": "test_f1"}
        for r in summarise(sel, metrics=tuple(ren)):
            rows.append({"regime": "OGG", **_rename(r, ren), "selected_on": f"{p.oog_regime} dev_gold",
                         "paper": PUBLISHED["table4"]["OGG"].get(r["label"])})
    return rows


def figure2(cfgs: Mapping[str, list], att: Mapping[str, list]) -> list[dict]:
    """Figure 2: the negative sampling ratio sweep on OOG, per model and ratio."""
    pts = []
    for c, r in zip(cfgs["ratio_sweep"], att["ratio_sweep"]):
        if r is not None:
            model, ratio = X.sweep_point(c)
            pts.append({**flat_scores(r), "model": model, "ratio": ratio})
    return summarise(pts, by=("model", "ratio"),
                       metrics=("dev_f1", "dev_gold_f1", "by_dev_gold_dev_gold_f1", "test_ign_f1", "test_f1",
                                "by_dev_gold_test_f1"))


def faithfulness(cfgs: Mapping[str, list], att: Mapping[str, list]) -> list[dict]:
    """Each released-code option against its paper-default reference. Exploratory: the fast
    path and one seed, so a delta here is a pointer, not a finding."""
    where = {label: w for label, w, _ in X.FAITHFULNESS}
    fa = summarise(att["faithfulness"], metrics=("dev_f1", "test_ign_f1", "test_f1", "test_tail_f1"))
    # the top-4 cap (#8) changes decisions only: the paper-default runs' test set scored with it
    default_runs = [flat_scores(r) for r, c in zip(att["faithfulness"], cfgs["faithfulness"])
                    if r is not None and c.label == "paper default"]
    top4 = [{**r, "label": X.TOP4, **{f"test_{m}": r.get(f"test_top4_{m}") for m in ("ign_f1", "f1", "tail_f1")}}
            for r in default_runs if r.get("test_top4_f1") is not None]
    if top4:
        row = summarise(top4, metrics=("test_ign_f1", "test_f1", "test_tail_f1"))[0]
        row["dev_f1"], row["dev_f1_std"] = None, None  # dev selection is the default run's
        fa.append(row)
    ref = {"gold": next((r for r in fa if r["label"] == "paper default"), None),
           "oog": next((r for r in fa if r["label"] == "paper default +NS"), None)}
    for r in fa:
        r["setting"] = where.get(r["label"])
        base = ref.get(r["setting"])
        ok = base is not None and base is not r and r["test_f1"] is not None and base["test_f1"] is not None
        r["delta_test_f1"] = r["test_f1"] - base["test_f1"] if ok else None
    return fa


def relation_groups(cfgs: Mapping[str, list], att: Mapping[str, list]) -> list[dict]:
    """Head / mid / tail F1 per row and split, each beside how many gold facts its group has on
    that split (`{split}_{group}_n_gold`): a tail F1 on 30 facts moves by 3 points per fact."""
    rows = []
    plan = (("headline", ("dev", "test")), ("ablation", ("dev", "test")), ("original_labels", ("test",)))
    for exp, splits in plan:
        for split in splits:
            metrics = [f"{split}_{m}" for m in ("f1",)] + [f"{split}_{g}_{k}" for g in GROUPS for k in ("f1", "n_gold")]
            for r in summarise(att.get(exp, []), metrics=metrics):
                out = {"experiment": exp, "label": r["label"], "split": split, "n": r["n"],
                       "f1": r[f"{split}_f1"], "f1_std": r[f"{split}_f1_std"]}
                for g in GROUPS:
                    out[f"{g}_f1"], out[f"{g}_f1_std"] = r[f"{split}_{g}_f1"], r[f"{split}_{g}_f1_std"]
                    out[f"{g}_n_gold"] = r[f"{split}_{g}_n_gold"]
                rows.append(out)
    return rows


def other_dev_convergence(run: RS.Run) -> tuple[bool | None, int | None]:
    """(converged, best epoch) of a run's second selection dev set (gold dev, for a run trained
    on original labels and selected on original dev); (None, None) for a run with one.

    On original labels the first dev set keeps rewarding a model that learns the annotation's
    gaps, so its curve may climb to the end of any budget while gold dev has long gone flat;
    the claims on such runs read gold test, so gold dev is the curve that says whether their
    numbers are end points."""
    if not run.config.select or len(run.config.select) < 2:
        return None, None
    return RS.curve_end(RS.dev_curve(run, run.config.select[1]))


def convergence(cfgs: Mapping[str, list], att: Mapping[str, list]) -> list[dict]:
    """Per run kind (experiment, row label): how many runs converged (runs.converged: the best
    epoch was followed by two that did not beat it, or the curve went flat) and how many
    epochs they needed to reach their best epoch (mean, min, max) and ran in all; for runs
    with a second selection dev set (gold dev on original labels) the same on that curve
    (other_dev_convergence; None elsewhere)."""
    kinds: dict[tuple[str, str, str], list[RS.Run]] = {}
    for exp, r in _distinct(cfgs, att):  # a label names one row per regime (the leaderboard has ATL in two)
        kinds.setdefault((exp, r.config.label, r.config.regime), []).append(r)
    rows = []
    for (exp, label, _regime), rs in kinds.items():
        s = [r.scores for r in rs]
        best = [x["best_epoch"] for x in s if x.get("best_epoch") is not None]
        ran = [x["epochs_run"] for x in s if x.get("epochs_run") is not None]
        rows.append({"experiment": exp, "label": label, "regime": rs[0].config.regime, "n": len(rs),
                     "n_converged": sum(x.get("converged") is True for x in s),
                     "n_known": sum(x.get("converged") is not None for x in s),
                     "n_stopped_early": sum(x.get("stopped_early") is True for x in s),
                     "best_epoch_mean": sum(best) / len(best) if best else None,
                     "best_epoch_min": min(best, default=None), "best_epoch_max": max(best, default=None),
                     "epochs_run_max": max(ran, default=None), "epochs_max": max(r.config.epochs for r in rs)})
        other = [other_dev_convergence(r) for r in rs]
        if any(c is not None for c, _ in other):
            bests = [b for _, b in other if b is not None]
            rows[-1] |= {"other_dev": rs[0].config.select[1],
                         "n_converged_other": sum(c is True for c, _ in other),
                         "n_known_other": sum(c is not None for c, _ in other),
                         "best_other_epoch_mean": sum(bests) / len(bests),
                         "best_other_epoch_min": min(bests), "best_other_epoch_max": max(bests)}
    return rows


def convergence_curves(cfgs: Mapping[str, list], att: Mapping[str, list]) -> list[dict]:
    """Every distinct run's selection-dev F1 per epoch with what convergence() counts (its best
    epoch, converged or cut short) and the schedule it ran under (min_epochs, the budget):
    the data of the convergence figure, one row per run, grouped by experiment and row label."""
    out = []
    for exp, r in _distinct(cfgs, att):
        key = f"{r.config.select[0]}_f1" if r.config.select else None
        hist = [h for h in r.history or [] if key and h.get(key) is not None]
        if not hist:
            continue
        other = f"{r.config.select[1]}_f1" if len(r.config.select) > 1 else None
        out.append({"experiment": exp, "label": r.config.label, "regime": r.config.regime, "seed": r.config.seed,
                    "dev_split": r.config.select[0], "epoch": [h["epoch"] for h in hist],
                    "dev_f1": [h[key] for h in hist], "best_epoch": r.scores.get("best_epoch"),
                    # the second selection dev set (gold dev on original labels), drawn beside
                    "other_dev_f1": [h.get(other) for h in hist] if other else None,
                    "other_converged": other_dev_convergence(r)[0],
                    "converged": r.scores.get("converged"), "min_epochs": r.config.min_epochs,
                    "epochs": r.config.epochs})
    return out


def dev_noise(cfgs: Mapping[str, list], att: Mapping[str, list], last: int = 3) -> dict | None:
    """How much the selection dev F1 moves from one epoch to the next late in a run, where the
    learning rate is nearly spent: the steps between each run's last `last` + 1 epochs, pooled
    over the runs that used their whole epoch budget (an early-stopped run ends on the falls
    that stopped it, and is converged by the first rule anyway).
    It sizes convergence's flat-curve rule: a two-epoch change of a curve that no longer climbs
    has sd about sqrt(2) x the step sd (steps taken as independent), so `flat_cut_short` is the
    share of truly flat curves the rule would still call cut short (normal approximation)."""

    steps, n_runs = [], 0
    for _, r in _distinct(cfgs, att):
        f1s = RS.dev_curve(r, r.config.select[0]) if r.config.select else []
        if len(f1s) > last and len(f1s) >= r.config.epochs:
            n_runs += 1
            tail = f1s[-(last + 1):]
            steps += [b - a for a, b in zip(tail, tail[1:])]
    if len(steps) < 2:
        return None
    sd = stdev(steps)
    two = sd * 2 ** 0.5
    return {"n_runs": n_runs, "n_steps": len(steps), "last": last, "step_mean": fmean(steps), "step_sd": sd,
            "two_epoch_sd": two, "flat_gain": RS.FLAT_GAIN,
            "flat_cut_short": 1 - NormalDist(0, two).cdf(RS.FLAT_GAIN) if two > 0 else 0.0}


def longer_table(p: X.Profile, runs: Sequence[RS.Run], longer: Mapping) -> list[dict]:
    """One row per cut-short claim-bearing run and its longer run (`longer`:
    experiments.longer_configs): both budgets, the longer run's key (None while still to train)
    and both runs' dev and test F1, the longer one's best epoch and whether its curve converged
    on the claim's dev set."""
    by_key, out = RS.by_key(runs), []
    for k, c in longer.items():
        short, long = by_key[k], by_key.get(c.key())
        split = X.claim_dev_split(p, c)
        f1s = RS.dev_curve(long, split) if long else []
        ok, best = RS.curve_end(f1s)
        out.append({"run": f"{c.label} ({c.regime}, seed {c.seed})", "short_key": k,
                    "key": c.key() if long else None,
                    "epochs_short": short.config.epochs, "epochs": c.epochs, "min_epochs": c.min_epochs,
                    "dev": split, "dev_f1_short": max(RS.dev_curve(short, split), default=None),
                    "test_f1_short": (short.scores.get("test") or {}).get("f1"),
                    "dev_f1": max(f1s, default=None),
                    "test_f1": (long.scores.get("test") or {}).get("f1") if long else None,
                    "best_epoch": best, "converged": ok})
    return out


def cost(cfgs: Mapping[str, list], att: Mapping[str, list], replaced: Sequence[RS.Run] = (),
         pending: int = 0) -> dict:
    """Seconds and memory of every distinct run that took part, once, and of the `replaced`
    cut-short runs (trained, then stood in for by a longer run: experiment "replaced");
    n_planned counts both and the `pending` longer runs still to train."""
    where: dict[str, list[str]] = {r.config.key(): ["replaced"] for r in replaced}
    for n in cfgs:
        for r in att[n]:
            if r is not None and n not in where.setdefault(r.config.key(), []):
                where[r.config.key()].append(n)
    rows = []
    for _, r in [*_distinct(cfgs, att), *(("replaced", r) for r in replaced)]:
        f = flat_scores(r)
        rows.append({"label": f["label"], "experiments": where[f["key"]], "regime": f["regime"], "seed": f["seed"],
                     "train_layers": f["train_layers"], "seconds": f["seconds"], "peak_rss_mb": f["peak_rss_mb"],
                     "peak_cuda_mb": f.get("peak_cuda_mb"), "device": f["device"], "precision": f["precision"]})
    secs = [r["seconds"] or 0.0 for r in rows]
    planned = {c.key() for n in cfgs for c in cfgs[n]} | {r.config.key() for r in replaced}
    # the recorded runs trained two at a time, one thread each (the cpu profile's way on 2 cores)
    return {"runs": rows, "n_runs": len(rows), "n_planned": len(planned) + pending, "total_seconds": sum(secs),
            "wall_seconds_2": X.makespan(secs, 2),
            "per_experiment_seconds": {n: sum(r["seconds"] or 0.0 for r in rows if r["experiments"][0] == n)
                                       for n in [*cfgs, *(["replaced"] if replaced else [])]},
            "max_seconds": max(secs) if secs else None,
            "peak_rss_mb": max((r["peak_rss_mb"] or 0 for r in rows), default=None),
            "peak_cuda_mb": max((r["peak_cuda_mb"] or 0 for r in rows), default=None) or None,
            "devices": sorted({str(r["device"]) for r in rows})}


def build_tables(runs: Iterable, profile: str | X.Profile | None = None) -> dict:
    """Every table of a profile from its runs. Configs without a run are listed under "missing"
    and their rows are left out (or have a smaller n than planned)."""
    runs = RS.as_runs(runs)
    p = X.get_profile(profile or X.infer_profile(runs))
    longer = X.longer_configs(p, runs)  # once: configs, cost and the longer table all read it
    cfgs, att = X.attach_all(runs, p, longer=longer)
    missing = {n: RS.missing_labels(cfgs[n], att[n]) for n in cfgs}
    pending, replaced = longer_runs(runs, longer)  # the tables show a cut-short run until its longer one is in
    if pending:
        missing["longer"] = [RS.run_label(c, c.epochs) for c in pending]
    return {"profile": p.name, "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
            "published_source": PUBLISHED["source"], "missing": missing,
            "table2": table2(att), "table3": table3(att), "table4": table4(p, cfgs, att),
            "figure2": figure2(cfgs, att), "faithfulness": faithfulness(cfgs, att),
            # how many trained layers keep F1 near full fine-tuning (None: all layers)
            "layers": summarise(att.get("layers", []), by=("label", "train_layers"),
                                  metrics=("dev_f1", "test_ign_f1", "test_f1", "dev_tail_f1", "seconds")),
            # the small search on gold dev (one seed)
            "search": summarise(att.get("search", []), metrics=("dev_f1", "dev_tail_f1", "test_ign_f1", "test_f1")),
            "groups": relation_groups(cfgs, att), "convergence": convergence(cfgs, att),
            "curves": convergence_curves(cfgs, att),
            "dev_noise": dev_noise(cfgs, att), "cost": cost(cfgs, att, replaced, pending=len(pending)),
            "longer": longer_table(p, runs, longer),
            # what benchmarks/gpu_check.sh measured, beside the CPU runs of the same configs (None: never run)
            "gpu": gpu_check.report(runs)}

"""The paper's tables from runs: Tables 2-4, Figure 2, faithfulness, layers, search, relation
groups, convergence and cost.

    from pemscl import tables
    t = tables.build_tables(tables.gather_runs(), profile="cpu")
    t["table3"]          # one row per ablation label: n, <metric>, <metric>_std, paper

Runs are matched to a profile's experiment configs by config hash (experiments.attach), so a
run counts wherever its config appears, under that experiment's row label. Means and sample
stds over seeds (experiments.summarise); published numbers (pemscl.published) sit beside ours
for orientation only. Whether a difference is real is claims.py's job, not this module's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from . import experiments as X
from . import gpu_check
from . import runs as RS
from .published import PUBLISHED

GROUPS = ("head", "mid", "tail")


# --------------------------------------------------------------------------- runs in
def gather_runs(root: str | Path | None = None, record: str | Path | None = None) -> list[RS.Run]:
    """Every run known here: the runs.jsonl records of this hash version (a fresh clone rebuilds
    the tables from them), then the complete local folders of configs not recorded. Where both
    exist the record wins: it is the run the committed results were judged on, and a local
    folder of the same config is the same run or a reproduction trained for its weights."""
    path = Path(record) if record is not None else RS.record_path()
    rec = RS.load_exported(path, strict=False) if path.exists() else []
    keys = {r.config.key() for r in rec}
    return rec + [r for r in RS.list_runs(root) if r.config.key() not in keys]


def as_runs(runs: Iterable) -> list[RS.Run]:
    """Run objects from Runs or flat rows that name a run folder ({"dir": ...})."""
    out = []
    for r in runs:
        if isinstance(r, RS.Run):
            out.append(r)
        elif isinstance(r, Mapping) and r.get("dir"):
            out.append(RS.Run.load(r["dir"]))
    return out


def infer_profile(runs: Sequence[RS.Run]) -> str:
    """The profile whose configs match the most runs (ties: the first in PROFILES)."""
    keys = {r.config.key() for r in runs}
    best, best_n = "cpu", -1
    for name in X.PROFILES:
        try:
            n = sum(c.key() in keys for c in X.all_configs(name))
        except Exception:  # a profile whose presets cannot be built here
            continue
        if n > best_n:
            best, best_n = name, n
    return best


def experiment_configs(name: str, p: X.Profile, runs: Sequence, longer: Mapping) -> list:
    """An experiment's configs; the headline's include the seeds added to PEMSCL vs ATL by the
    interval rule (experiments.more_seeds) where they were run, and a claim-bearing config cut
    short is replaced by its longer config (`longer`: experiments.longer_configs) once that has
    a run."""
    cfgs = X.EXPERIMENTS[name](p)
    keys = {r.config.key() for r in runs}
    if name == "headline":
        cfgs += [c for c in X.extra_seed_configs(p, p.more_seeds) if c.key() in keys]
    longer = {k: c for k, c in longer.items() if c.key() in keys}
    return [longer.get(c.key(), c) for c in cfgs]


def longer_runs(runs: Sequence, longer: Mapping) -> tuple[list, list[RS.Run]]:
    """(the longer configs (`longer`: experiments.longer_configs) of cut-short claim-bearing runs
    that have no run yet: still to train, the cut-short runs whose longer run is in: out of the
    tables, but trained, so in the cost)."""
    by_key = RS.by_key(runs)
    return ([c for c in longer.values() if c.key() not in by_key],
            [by_key[k] for k, c in longer.items() if c.key() in by_key])


def attach_all(runs: Iterable, profile: str | X.Profile, names: Iterable[str] | None = None,
               longer: Mapping | None = None) -> tuple[dict[str, list], dict[str, list]]:
    """({experiment: configs}, {experiment: run or None per config}) for a profile (every
    experiment, or those named). `longer`: experiments.longer_configs, computed here if not given."""
    runs = as_runs(runs)
    p = X.get_profile(profile)
    longer = X.longer_configs(p, runs) if longer is None else longer
    cfgs = {name: experiment_configs(name, p, runs, longer) for name in (names or X.EXPERIMENTS)}
    return cfgs, {name: X.attach(c, runs) for name, c in cfgs.items()}


def missing_labels(configs: Sequence, runs: Sequence) -> list[str]:
    return [f"{c.label} ({c.regime}, seed {c.seed})" for c, r in zip(configs, runs) if r is None]


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
    rows = X.summarise(att["headline"], metrics=("dev_ign_f1", "dev_f1", "test_ign_f1", "test_f1", "seconds"))
    for r in rows:
        r["paper"] = PUBLISHED["table2"].get(r["label"])
    return rows


def table3(att: Mapping[str, list]) -> list[dict]:
    """Table 3: the ablation over seeds."""
    rows = X.summarise(att["ablation"], metrics=TABLE3_METRICS)
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
        for r in X.summarise(sel, metrics=tuple(ren) + ("test_ign_f1", "test_f1")):
            rows.append({"regime": name, **_rename(r, ren), "paper": PUBLISHED["table4"][name].get(r["label"])})
    if p.ogg_from_oog:
        sel = [r for r, c in zip(att[exp], cfgs[exp]) if c.regime == p.oog_regime]
        ren = {"by_dev_gold_dev_gold_ign_f1": "gold_dev_ign_f1", "by_dev_gold_dev_gold_f1": "gold_dev_f1",
               "by_dev_gold_test_ign_f1": "test_ign_f1", "by_dev_gold_test_f1": "test_f1"}
        for r in X.summarise(sel, metrics=tuple(ren)):
            rows.append({"regime": "OGG", **_rename(r, ren), "selected_on": f"{p.oog_regime} dev_gold",
                         "paper": PUBLISHED["table4"]["OGG"].get(r["label"])})
    return rows


def figure2(cfgs: Mapping[str, list], att: Mapping[str, list]) -> list[dict]:
    """Figure 2: the negative sampling ratio sweep on OOG, per model and ratio."""
    pts = []
    for c, r in zip(cfgs["ratio_sweep"], att["ratio_sweep"]):
        if r is not None:
            model, ratio = X.sweep_point(c)
            pts.append({**X.flat_scores(r), "model": model, "ratio": ratio})
    return X.summarise(pts, by=("model", "ratio"),
                       metrics=("dev_f1", "dev_gold_f1", "by_dev_gold_dev_gold_f1", "test_ign_f1", "test_f1",
                                "by_dev_gold_test_f1"))


def faithfulness(cfgs: Mapping[str, list], att: Mapping[str, list]) -> list[dict]:
    """Each released-code option against its paper-default reference. Exploratory: the fast
    path and one seed, so a delta here is a pointer, not a finding."""
    where = {label: w for label, w, _ in X.FAITHFULNESS}
    fa = X.summarise(att["faithfulness"], metrics=("dev_f1", "test_ign_f1", "test_f1", "test_tail_f1"))
    # the top-4 cap (#8) changes decisions only: the paper-default runs' test set scored with it
    default_runs = [X.flat_scores(r) for r, c in zip(att["faithfulness"], cfgs["faithfulness"])
                    if r is not None and c.label == "paper default"]
    top4 = [{**r, "label": X.TOP4, **{f"test_{m}": r.get(f"test_top4_{m}") for m in ("ign_f1", "f1", "tail_f1")}}
            for r in default_runs if r.get("test_top4_f1") is not None]
    if top4:
        row = X.summarise(top4, metrics=("test_ign_f1", "test_f1", "test_tail_f1"))[0]
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
            for r in X.summarise(att.get(exp, []), metrics=metrics):
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
    from .train import curve_end

    if not run.config.select or len(run.config.select) < 2:
        return None, None
    return curve_end(RS.dev_curve(run, run.config.select[1]))


def convergence(cfgs: Mapping[str, list], att: Mapping[str, list]) -> list[dict]:
    """Per run kind (experiment, row label): how many runs converged (train.converged: the best
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
    from statistics import NormalDist, fmean, stdev

    from .train import FLAT_GAIN

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
            "two_epoch_sd": two, "flat_gain": FLAT_GAIN,
            "flat_cut_short": 1 - NormalDist(0, two).cdf(FLAT_GAIN) if two > 0 else 0.0}


def longer_table(p: X.Profile, runs: Sequence[RS.Run], longer: Mapping) -> list[dict]:
    """One row per cut-short claim-bearing run and its longer run (`longer`:
    experiments.longer_configs): both budgets, the longer run's key (None while still to train)
    and both runs' dev and test F1, the longer one's best epoch and whether its curve converged
    on the claim's dev set."""
    from .train import curve_end

    by_key, out = RS.by_key(runs), []
    for k, c in longer.items():
        short, long = by_key[k], by_key.get(c.key())
        split = X.claim_dev_split(p, c)
        f1s = RS.dev_curve(long, split) if long else []
        ok, best = curve_end(f1s)
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
        f = X.flat_scores(r)
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
    runs = as_runs(runs)
    p = X.get_profile(profile or infer_profile(runs))
    longer = X.longer_configs(p, runs)  # once: configs, cost and the longer table all read it
    cfgs, att = attach_all(runs, p, longer=longer)
    missing = {n: missing_labels(cfgs[n], att[n]) for n in cfgs}
    pending, replaced = longer_runs(runs, longer)  # the tables show a cut-short run until its longer one is in
    if pending:
        missing["longer"] = [f"{c.label} ({c.regime}, seed {c.seed}, {c.epochs} epochs)" for c in pending]
    return {"profile": p.name, "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
            "published_source": PUBLISHED["source"], "missing": missing,
            "table2": table2(att), "table3": table3(att), "table4": table4(p, cfgs, att),
            "figure2": figure2(cfgs, att), "faithfulness": faithfulness(cfgs, att),
            # how many trained layers keep F1 near full fine-tuning (None: all layers)
            "layers": X.summarise(att.get("layers", []), by=("label", "train_layers"),
                                  metrics=("dev_f1", "test_ign_f1", "test_f1", "dev_tail_f1", "seconds")),
            # the small search on gold dev (one seed)
            "search": X.summarise(att.get("search", []), metrics=("dev_f1", "dev_tail_f1", "test_ign_f1", "test_f1")),
            "groups": relation_groups(cfgs, att), "convergence": convergence(cfgs, att),
            "curves": convergence_curves(cfgs, att),
            "dev_noise": dev_noise(cfgs, att), "cost": cost(cfgs, att, replaced, pending=len(pending)),
            "longer": longer_table(p, runs, longer),
            # what benchmarks/gpu_check.sh measured, beside the CPU runs of the same configs (None: never run)
            "gpu": gpu_check.report(runs)}

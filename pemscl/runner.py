"""Running a profile: train what is missing (one config at a time, or side by side in worker
processes), reuse what is recorded, order the rest under a time budget, and add seeds to the
headline claim while its interval is wide.

    python -m pemscl.runner --profile cpu --plan                 # what is missing, and its cost
    python -m pemscl.runner --profile cpu --workers 2 --threads 1 --budget-minutes 165
    python -m pemscl.runner --profile cpu --status               # runs in progress here

    from pemscl import experiments, runner
    runs = runner.run_all(experiments.ablation("cpu"))   # trains what is missing, reuses the rest

The catalogue of profiles and configs is pemscl.experiments; the tables pemscl.tables.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import math
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch

from . import claims as C
from . import layout as L
from . import runs as RS
from . import train as T
from . import utils as U
from .config import TrainConfig
from .experiments import (CLAIM_ROWS, EXPERIMENTS, PROFILES, TAIL_ROW, Profile, ablation, all_configs,
                          extra_seed_configs, get_profile, longer_configs, makespan, profile_configs, ratio_sweep,
                          retarget, sweep_point, trained_hours, weight_configs)
from .fmt import pct
from .runs import Run
from .utils import read_json


def more_seeds(profile: str | Profile, records: Sequence[Run]) -> list[TrainConfig]:
    """The runs of the next seed for PEMSCL vs ATL, or [] when none is due.

    A seed is due while the claim's 95% interval, judged on the recorded runs, is wider than the
    paper's effect (+2.1 F1 on Re-DocRED test) and `profile.more_seeds` has one left. Nothing is
    due until every planned run of the claim is recorded. A seed half trained is finished before
    the interval is looked at again (its other run is what is returned)."""
    p = get_profile(profile)
    if not p.more_seeds:
        return []
    row = C.judge_claim("pemscl-vs-atl", records, p)
    if row["verdict"] == C.MISSING or row["missing"]:
        return []
    have = {r.config.key() for r in records}
    for s in p.more_seeds:
        todo = [c for c in extra_seed_configs(p, [s]) if c.key() not in have]
        if len(todo) == 1:
            return todo
        if todo:
            wide = row["ci_high"] - row["ci_low"] > row["paper_effect"]
            return todo if wide and trained_hours(p, records) < (p.seed_budget_hours or math.inf) else []
    return []


def run_line(run: Run, source: str = "trained") -> str:
    s = run.scores
    dev, test = (s.get("dev") or {}).get("f1"), (s.get("test") or {}).get("f1")
    conv = "" if s.get("converged") is None else ("  converged" if s["converged"] else "  CUT SHORT")
    return (f"{run.config.label or run.dir.name:<28} {run.config.regime:<14} seed {run.config.seed:<3} "
            f"{s.get('seconds', 0):7.1f}s  ep {s.get('best_epoch', '-')}/{s.get('epochs_run', '-')}  "
            f"dev F1 {pct(dev)}  test F1 {pct(test)}{conv}" + ("" if source == "trained" else f"  ({source})"))


def reproduction(run: Run, recorded: Run) -> str:
    """How a run trained again from a recorded config compares with the record: the same
    seed and config, so any gap is the machine's arithmetic (thread count, CPU kernels)."""
    parts = []
    for split in ("dev", "test"):
        a, b = (run.scores.get(split) or {}).get("f1"), (recorded.scores.get(split) or {}).get("f1")
        if a is not None and b is not None:
            parts.append(f"{split} F1 {100 * a:.1f} vs {100 * b:.1f} recorded ({100 * (a - b):+.2f})")
    return "recorded run kept" + (": " + ", ".join(parts) if parts else "")


def retrain_requested() -> bool:
    return os.environ.get("PEMSCL_RETRAIN", "") not in ("", "0")


def run_all(configs: Sequence[TrainConfig], progress: bool = True, root: str | Path | None = None,
            train_progress: bool = False, *, need_weights: bool = False, record: bool = True,
            retrain: bool | None = None) -> list[Run]:
    """Train each config in turn (never in parallel: one torch job per machine) unless it is
    already done: a complete local run folder, else a run recorded in results/runs.jsonl
    (unless need_weights: a notebook that loads the model; or retrain / $PEMSCL_RETRAIN=1).
    Each newly trained run is merged into runs.jsonl at once (record), so an interrupted
    profile keeps every finished run. One summary line per run; runs labelled as the configs.

    A run trained only for its weights (need_weights, the config already recorded) leaves the
    record alone: the recorded run is the one the results were judged on, and the new one is a
    reproduction of it, whose scores are printed beside the recorded ones (`reproduction`)."""
    retrain = retrain_requested() if retrain is None else retrain
    records = {} if retrain else RS.by_key(RS.load_exported(strict=False))
    out = []
    t0 = time.time()
    for i, cfg in enumerate(configs):
        run, source = RS.find_run(cfg, root), "local"
        if run is None and records and not need_weights:
            run, source = RS.recorded(cfg, records), "recorded"
            carried = [] if run is not None else RS.carry_over([cfg], records.values(), root)
            if carried:  # a recorded run that is this config's run too (RS.carries_over)
                run, source = carried[0], "carried over"
                if record:
                    RS.export_runs(carried)
        kept = RS.recorded(cfg, records) if records else None  # set beside a run trained here
        if run is None:
            run, source = T.train(cfg, root=root, progress=train_progress), "trained"
            if kept is not None:
                source = "trained for its weights; " + reproduction(run, kept)
            elif record:
                RS.export_runs([run])
        out.append(run.labelled(cfg.label))
        if progress:
            print(f"[{i + 1}/{len(configs)}] {run_line(out[-1], source)}", flush=True)
    if progress and configs:
        print(f"{len(configs)} runs, {time.time() - t0:.0f}s wall", flush=True)
    return out


def missing(configs: Sequence[TrainConfig], root: str | Path | None = None) -> list[TrainConfig]:
    """The configs with neither a complete local run nor a record in runs.jsonl."""
    records = RS.by_key(RS.load_exported(strict=False))
    return [c for c in configs if RS.find_run(c, root) is None and RS.recorded(c, records) is None]


def _kind(c: TrainConfig) -> tuple:
    # what sets the time an epoch takes: the encoder's trained layers, precision and batch size
    # (and the number of training documents: _same_size)
    return (c.encoder, c.train_layers, c.precision, c.batch_size)


def _same_size(r: Run, cfg: TrainConfig) -> bool:
    """Did r train on as many documents as cfg will? A cap (max_train_docs) matches any run that
    saw that many (oog-mini's first 400 documents pace like redocred-mini's 400); no cap matches
    runs without one (their regime is preferred by _expected_minutes)."""
    if cfg.max_train_docs is None:
        return r.config.max_train_docs is None
    return (r.scores.get("n_docs") or {}).get("train") == cfg.max_train_docs


def epochs_done(cfg: TrainConfig, root: str | Path | None = None) -> int:
    """Epochs an interrupted run of cfg has saved here (its state resumes them); 0 if none."""
    d = RS.run_dir_for(cfg, root)
    if RS.is_complete(d) or not (d / L.STATE).exists() or not (d / L.HISTORY).exists():
        return 0
    return len(read_json(d / L.HISTORY))


def planned_runs(profile: str | Profile, records: Sequence[Run], only: Iterable[str] | None = None,
                 device: str | None = None, seeds: Sequence[int] | None = None,
                 labels: Iterable[str] | None = None) -> list[TrainConfig]:
    """The runs a profile plans (or another run kind of them: experiments.retarget, as they are
    when device, seeds and labels are all None), with the longer runs now due of those recorded
    cut short (longer_configs). One list for what --plan shows and train_profile trains: they
    once differed, and `--labels BCE` listed BCE's longer runs, then trained nothing."""
    planned = retarget(all_configs(profile, only=only), device, seeds, labels)
    keys = {c.key() for c in planned}
    return planned + [c for k, c in longer_configs(profile, records).items() if k in keys]


def after_the_list(profile: str | Profile, records: Sequence[Run], only: Iterable[str] | None = None,
                   grow: bool = True, root: str | Path | None = None) -> list[TrainConfig]:
    """What train_profile trains once the planned list is started, judged on the runs recorded
    so far: the longer runs of claim-bearing runs recorded cut short (longer_configs), then,
    with `grow`, the next seed for PEMSCL vs ATL (more_seeds)."""
    keys, have = {c.key() for c in profile_configs(profile, only, records=[])}, RS.by_key(records)
    out = missing([c for k, c in longer_configs(profile, records).items() if k in keys and c.key() not in have], root)
    return out + (more_seeds(profile, records) if grow else [])


def in_progress(profile: str | Profile = "cpu", root: str | Path | None = None,
                only: Iterable[str] | None = None) -> list[dict]:
    """The profile's runs with saved epochs and no DONE here: each with its epochs done of its
    budget, last and best selection-dev F1, minutes per epoch so far, the pid training it now
    (runs.holder; None: interrupted, resumed by the next train of its config), minutes since
    its last save, and the minutes its remaining epochs take at its own pace (no early stop)."""
    out = []
    for c in profile_configs(profile, only):
        done = epochs_done(c, root)
        d = RS.run_dir_for(c, root)
        row = {"label": c.label, "regime": c.regime, "seed": c.seed, "key": c.key(), "folder": d.name,
               "epochs_done": done, "epochs": c.epochs, "min_epochs": c.min_epochs}
        if not done:
            pid = RS.holder(d) if d.is_dir() and not RS.is_complete(d) else None
            if pid:  # in its first epoch: nothing saved yet, but it is being trained
                out.append(row | {"last_f1": None, "best_f1": None, "best_epoch": None, "minutes_per_epoch": None,
                                  "pid": pid, "minutes_since_save": None, "minutes_left": None})
            continue
        hist = read_json(d / L.HISTORY)
        key = f"{c.select[0]}_f1" if c.select else "dev_f1"
        f1s = [h.get(key) for h in hist]
        best = max(range(len(f1s)), key=lambda i: f1s[i] if f1s[i] is not None else -1.0)
        per_epoch = sum(h.get("train_seconds", 0.0) + h.get("eval_seconds", 0.0) for h in hist) / 60 / len(hist)
        out.append(row | {"last_f1": f1s[-1], "best_f1": f1s[best], "best_epoch": best + 1,
                          "minutes_per_epoch": per_epoch, "pid": RS.holder(d),
                          "minutes_since_save": (time.time() - (d / L.HISTORY).stat().st_mtime) / 60,
                          "minutes_left": per_epoch * (c.epochs - done)})
    return out


def progress_lines(rows: Sequence[Mapping]) -> list[str]:
    """in_progress() as one line per run (what `--status` prints)."""
    if not rows:
        return ["no run of this profile is in progress or interrupted here"]
    return [f"{r['label']:<28} {r['regime']:<14} seed {r['seed']:<4} epoch {r['epochs_done']:>2}/{r['epochs']:<3} "
            + _progress(r) for r in rows]


def _progress(r: Mapping) -> str:
    """The part of a --status line after the run's name and epoch."""
    if not r["epochs_done"]:
        return f"training (pid {r['pid']}), in its first epoch (none saved yet)"
    return (f"dev F1 {pct(r['last_f1'])} (best {pct(r['best_f1'])} at {r['best_epoch']})  "
            f"{r['minutes_per_epoch']:.1f} min/epoch  "
            + (f"training (pid {r['pid']}), saved {r['minutes_since_save']:.0f} min ago, "
               f"<= {r['minutes_left']:.0f} min to go" if r["pid"] else
               f"interrupted {r['minutes_since_save']:.0f} min ago: the next run of the profile resumes it"))


def _expected_minutes(cfg: TrainConfig, records: Sequence[Run], epoch_minutes: float,
                      root: str | Path | None = None) -> float:
    """Worst case (the rest of the epoch budget, no early stop) at the slowest recorded minutes
    per epoch of the same kind, preferring the same regime; epoch_minutes when nothing of the
    kind is recorded. A run is only started when this fits in the time left."""
    same = [r for r in records if _kind(r.config) == _kind(cfg) and _same_size(r, cfg) and r.scores.get("epochs_run")]
    same = [r for r in same if r.config.regime == cfg.regime] or same
    per_epoch = max((r.scores["seconds"] / 60 / r.scores["epochs_run"] for r in same), default=epoch_minutes)
    return per_epoch * (cfg.epochs - epochs_done(cfg, root))


def schedule(profile: str | Profile, todo: Sequence[TrainConfig],
             root: str | Path | None = None) -> list[TrainConfig]:
    """The order to train in: interrupted runs first (the cheapest to finish), then the
    claim-bearing rows, claim by claim and seed by seed with a claim's rows side by side (so each
    finished seed completes a pair), then the one-seed rows a claim also rests on (the tail
    claim's "no EM, no SCL", PEMSCL's ratio sweep), then the other fully fine-tuned runs, then
    the fast path (short runs that fill the end of a session)."""
    p = get_profile(profile)
    rank: dict[str, int] = {}
    for exp, rows in CLAIM_ROWS.items():
        cfgs = [c for c in EXPERIMENTS[exp](p) if c.label in rows]
        for s in p.seeds:
            for c in cfgs:
                if c.seed == s:
                    rank.setdefault(c.key(), len(rank))
    for c in ablation(p) + ratio_sweep(p):
        if c.label == TAIL_ROW or (c.regime == p.oog_regime and sweep_point(c)[0] == "PEMSCL"):
            rank.setdefault(c.key(), len(rank))
    last = len(rank)
    return sorted(todo, key=lambda c: (epochs_done(c, root) == 0, rank.get(c.key(), last),
                                       c.train_layers is not None))


def _train_one(cfg: TrainConfig, threads: int, root) -> str:
    torch.set_num_threads(threads)
    try:
        run = T.train(cfg, root=root, progress=False)
    except RS.RunInProgress:  # another scheduler (or a notebook) has it: not this one's to finish
        return f"{cfg.label:<28} {cfg.regime:<14} seed {cfg.seed:<4} skipped: trained by another process"
    kept = RS.recorded(cfg, RS.by_key(RS.load_exported(strict=False)))
    if kept is not None:  # trained for its model (train_profile(weights=True)): the record stays
        return run_line(run.labelled(cfg.label), "trained for its weights; " + reproduction(run, kept))
    RS.export_runs([run])  # merged under a lock: two workers may finish at once
    return run_line(run.labelled(cfg.label))


def train_profile(profile: str | Profile, *, workers: int = 1, threads: int | None = None,
                  budget_minutes: float | None = None, epoch_minutes: float = 4.0,
                  only: Iterable[str] | None = None, root: str | Path | None = None,
                  weights: bool = False, device: str | None = None, seeds: Sequence[int] | None = None,
                  labels: Iterable[str] | None = None) -> list[str]:
    """Train what a profile lacks, `workers` runs side by side (each with `threads` threads; on
    2 cores two single-threaded runs out-train one two-threaded run: benchmarks/bench_parallel.py),
    starting a run only while it can finish within budget_minutes (`schedule` sets the order; a
    run that does not fit is passed over for a shorter one). epoch_minutes: the guess for a kind
    of run with nothing recorded (4: a MiniLM epoch of 400 documents, bf16, one thread of two
    side by side, with its dev pass). Returns the summary lines.

    weights=True trains instead the runs whose models notebooks 05/06 load (weight_configs) that
    have no local folder, as those notebooks would one at a time: on a fresh clone, before the
    notebooks run. A recorded run trained again this way leaves its record as it is.

    device / seeds / labels: the planned runs as another run kind (experiments.retarget): e.g. the
    leaderboard on a GPU at more seeds; no run is added after the list then."""
    other_kind = device is not None or seeds is not None or labels is not None
    if weights:
        todo = [c for c in weight_configs(profile) if RS.find_run(c, root) is None]
    else:
        records = RS.load_exported(strict=False)
        planned = planned_runs(profile, records, only, device, seeds, labels)
        carried = RS.carry_over(planned, records, root)
        if carried:  # recorded runs that are also runs of a changed config (e.g. a later min_epochs)
            RS.export_runs(carried)
            print(f"{len(carried)} recorded runs carried over to their new configs (runs.carries_over)", flush=True)
        todo = schedule(profile, missing(planned, root), root)
    grow = not weights and (only is None or "headline" in only)  # more seeds for PEMSCL vs ATL after the list
    extend = not weights and not other_kind  # a weights or retargeted list is all: nothing is added after it
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    records = RS.load_exported(strict=False)
    deadline = time.time() + 60 * budget_minutes if budget_minutes else None
    lines: list[str] = []
    started: set[str] = set()
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        running: set = set()
        while True:
            while len(running) < workers:
                if not todo and extend:  # the list is started: what the recorded runs now call for
                    todo = [c for c in after_the_list(profile, records, only, grow, root) if c.key() not in started]
                fits = [c for c in todo if not deadline
                        or time.time() + 60 * _expected_minutes(c, records, epoch_minutes, root) <= deadline]
                if not fits:
                    break
                todo.remove(fits[0])
                started.add(fits[0].key())
                print(f"started {fits[0].label} ({fits[0].regime}, seed {fits[0].seed}, {fits[0].key()})", flush=True)
                running.add(pool.submit(_train_one, fits[0], threads, root))
            if not running:
                break
            done, running = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for f in done:
                lines.append(f.result())
                print(lines[-1], flush=True)
            records = RS.load_exported(strict=False)  # the finished runs pace the next estimates
    if todo:  # what the budget left out is said: an empty log is no answer
        need = min(_expected_minutes(c, records, epoch_minutes, root) for c in todo)
        lines.append(f"{len(todo)} runs left untrained: none fits in what is left of the budget "
                     f"(the shortest needs <= {need:.0f} min at the slowest recorded pace)")
        print(lines[-1], flush=True)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pemscl.runner",
                                 description="Plan or train a profile's runs outside the notebooks.")
    ap.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    ap.add_argument("--only", default="", help="comma-separated experiments (default: all)")
    ap.add_argument("--plan", action="store_true", help="list what is missing and stop")
    ap.add_argument("--weights", action="store_true",
                    help="train the models notebooks 05/06 load that have no local folder (a recorded run "
                         "trained again this way keeps its record), side by side with --workers")
    ap.add_argument("--status", action="store_true",
                    help="show the runs in progress or interrupted here (epochs, dev F1, pace) and stop")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: cores / workers)")
    ap.add_argument("--budget-minutes", type=float, default=None,
                    help="start a run only if its whole epoch budget, at the slowest recorded pace of its "
                         "kind, fits in the time left")
    ap.add_argument("--epoch-minutes", type=float, default=4.0,
                    help="minutes per epoch assumed for a kind of run with nothing recorded")
    ap.add_argument("--seed-budget-hours", type=float, default=None,
                    help="replace the profile's cap on recorded training below which seeds are added to "
                         "PEMSCL vs ATL while its interval is wide (0: no cap); the runs' configs do not change")
    ap.add_argument("--device", default=None,
                    help="train the planned runs on this device instead (e.g. cuda): another run kind, its own key, "
                         "never pooled with the recorded CPU runs (experiments.retarget)")
    ap.add_argument("--seeds", default=None, help="comma- or space-separated seeds instead of each run's own")
    ap.add_argument("--labels", default=None, help="comma-separated row labels to keep (e.g. AFL,SSR-PU)")
    a = ap.parse_args(argv)
    only = [s for s in a.only.split(",") if s] or None
    seeds = [int(s) for s in a.seeds.replace(",", " ").split()] if a.seeds else None
    labels = [s.strip() for s in a.labels.split(",") if s.strip()] if a.labels else None
    if labels is not None:
        known = {c.label for c in all_configs(a.profile, only=only)}
        unknown = sorted(set(labels) - known)
        if unknown:
            ap.error(f"no row labelled {', '.join(unknown)} in {a.only or 'the profile'}; rows: {', '.join(sorted(known))}")
    other = dict(device=a.device, seeds=seeds, labels=labels)
    profile = get_profile(a.profile)
    if a.seed_budget_hours is not None:  # a scheduling rule, not a config: run keys stay the same
        profile = dataclasses.replace(profile, seed_budget_hours=a.seed_budget_hours or None)
    if a.status:
        print("\n".join(progress_lines(in_progress(profile, only=only))))
        return 0
    if a.plan:
        records = RS.load_exported(strict=False)
        planned = planned_runs(profile, records, only=only, **other)
        carried = RS.carry_over(planned, records, copy=False)  # counted here, recorded by training
        records += carried
        carried_keys = {r.config.key() for r in carried}
        todo = schedule(profile, [c for c in missing(planned) if c.key() not in carried_keys])
        if carried:
            print(f"{len(carried)} recorded runs carry over to their new configs (recorded when training starts)")
        minutes = [_expected_minutes(c, records, a.epoch_minutes) for c in todo]
        for c, m in zip(todo, minutes):
            print(f"{c.label:<36} {c.regime:<14} seed {c.seed}  layers {c.train_layers}  {c.key()}  "
                  f"<= {m:.0f} min")
        print(f"{len(todo)} of {len(planned)} runs missing")
        wall = makespan(minutes, a.workers) / 60
        side = f"; about {wall:.1f} h of wall time with --workers {a.workers}" if a.workers > 1 else ""
        print(f"at most {sum(minutes) / 60:.1f} hours of training at the slowest recorded pace of each kind "
              f"(no early stop{side})")
        if a.device:
            print(f"(the pace is that of the recorded runs of each kind, on their own device, not of {a.device})")
        if profile.more_seeds and all(v is None for v in other.values()):
            due = more_seeds(profile, records)
            budget = (f" and the profile's recorded training ({trained_hours(profile, records):.1f} h so far) is "
                      f"under {profile.seed_budget_hours:g} h" if profile.seed_budget_hours else "")
            print(f"then seeds {', '.join(map(str, profile.more_seeds))} for PEMSCL vs ATL, one at a time while its "
                  f"interval is wider than the paper's effect{budget}; due now: "
                  + (", ".join(f"{c.label} seed {c.seed}" for c in due) or "none"))
        return 0
    train_profile(profile, workers=a.workers, threads=a.threads, budget_minutes=a.budget_minutes,
                  epoch_minutes=a.epoch_minutes, only=only, weights=a.weights, **other)
    return 0


if __name__ == "__main__":
    # run the package's module, not this __main__ copy, so that the workers (spawned processes)
    # unpickle pemscl.runner._train_one, not a function of a __main__ they do not have
    from pemscl.runner import main as _main

    raise SystemExit(_main())

"""The paper's experiments as lists of TrainConfigs, per profile; running and summarising them.

    from pemscl import experiments as X
    runs = X.run_all(X.ablation("cpu"))          # trains what is missing, reuses the rest
    X.summarise(runs, metrics=("dev_f1", "dev_tail_f1"))   # mean ± std over seeds per label

A profile says how big everything is:
  smoke  CI: a few documents, one epoch, one trained layer; the whole notebook sequence in minutes
  cpu    the real mini regimes with MiniLM on 2 CPU cores: full fine-tuning for the headline
         rows, the fast top-layers path (FAST_LAYERS) for seeds, ablations and sweeps
  paper  a GPU, the full data sets and the paper's presets (RoBERTa-large), full fine-tuning

Experiment functions return configs whose `label` is the row name ("PEMSCL", "no EM", ...).
A run is identified by its config's hash, not its label, so the same config appearing in two
experiments (the ablation's PEMSCL and the faithfulness baseline) is trained once.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from . import train as T
from .losses import LossSpec, loss_spec

# Layers trained on the fast path of the cpu profile (MiniLM has 6). The lead tunes this.
FAST_LAYERS = 2


@dataclass
class Profile:
    """How large each experiment is. None in epochs / doc limits means: the preset's value."""

    name: str
    preset: str = "cpu"  # pemscl.train preset every config starts from
    gold_regime: str = "redocred-mini"  # train, dev and test on gold labels
    oog_regime: str = "oog-mini"  # original train, original dev, gold test
    ogg_regime: str = "ogg-mini"  # original train, gold dev, gold test
    headline_layers: int | None = None  # None: full fine-tuning
    fast_layers: int | None = FAST_LAYERS  # None: full fine-tuning everywhere
    headline_epochs: int | None = None
    fast_epochs: int | None = None
    max_train_docs: int | None = None
    fast_max_train_docs: int | None = None  # cap for fast-path runs only (None: max_train_docs)
    max_dev_docs: int | None = None
    max_test_docs: int | None = None
    seeds: tuple[int, ...] = (66, 67, 68)  # ablation rows (paper Table 3: 3 runs)
    headline_seeds: int = 1  # how many of `seeds` the other experiments use
    noisy_seeds: int = 1
    sweep_seeds: int = 1
    faithfulness_seeds: int = 1
    ns_ratio: float = 0.1  # the paper's negative sampling ratio (set on dev, Table 4)
    ratios: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0)
    atl_ratios: tuple[float, ...] | None = None  # ATL's points in Figure 2 (None: `ratios`)
    # the fast path's layer counts compared with full fine-tuning (PEMSCL, gold regime, first seed)
    layer_counts: tuple[int, ...] = ()
    # a small hyperparameter search on gold dev, fast path, first seed: (row label, loss name,
    # loss field overrides); the unchanged PEMSCL run is listed first as the reference
    search: tuple[tuple[str, str, dict], ...] = ()
    # FAITHFULNESS rows to run (labels); None: all of them
    faithfulness_rows: tuple[str, ...] | None = None
    # OGG from the OOG runs: on the mini regimes both train on the same original-label documents
    # and OGG's dev is OOG's dev_gold (same 138 docs, gold labels), so one run tracked on both
    # dev sets gives both rows (the epoch each dev set picks). The full OGG dev (all of Re-DocRED
    # dev) is larger than OOG's paired dev_gold, so the paper profile trains OGG separately.
    ogg_from_oog: bool = True
    overrides: dict = field(default_factory=dict)  # extra TrainConfig fields for every run


PROFILES: dict[str, Profile] = {
    "smoke": Profile(name="smoke", preset="smoke", headline_layers=1, fast_layers=1, headline_epochs=1,
                     fast_epochs=1, max_train_docs=4, max_dev_docs=3, max_test_docs=3, seeds=(66, 67),
                     ratios=(0.1, 1.0)),
    # ~2 hours on 2 cores (measured: see results/). What was cut to get there: one seed outside
    # the ablation, original-label runs on the first 400 of oog-mini's 761 training docs, a 4-point
    # PEMSCL sweep and 2 ATL points, the released-code options that change training (#1, #2, #6;
    # #8 is scored on every run), and n = 1, 2, 3 on the fast-path question.
    "cpu": Profile(name="cpu", preset="cpu", headline_layers=None, fast_layers=FAST_LAYERS,
                   headline_epochs=None, fast_epochs=None, fast_max_train_docs=400, seeds=(66, 67, 68),
                   ratios=(0.05, 0.1, 0.3, 1.0), atl_ratios=(0.1, 1.0), layer_counts=(1, 2, 3),
                   faithfulness_rows=("SupCon SCL (#1)", "NA anchors (#2)", "NS mask per batch (#6)"),
                   search=(("PEMSCL λ=1", "pemscl", {"scl_weight": 1.0}), ("PEMSCL τ=1", "pemscl", {"tau": 1.0}),
                           ("ATL", "atl", {}))),
    "paper": Profile(name="paper", preset="paper-redocred", gold_regime="redocred", oog_regime="oog",
                     ogg_regime="ogg", headline_layers=None, fast_layers=None, seeds=(66, 67, 68),
                     headline_seeds=1, ogg_from_oog=False),
}

# row label -> loss_spec name
HEADLINE = {"ATL": "atl", "BCE": "bce", "NCRL": "ncrl", "PEMSCL": "pemscl"}
ABLATION = {"PEMSCL": "pemscl", "no EM": "pemscl-no-em", "no SCL": "pemscl-no-scl", "no EM, no SCL": "pemscl-no-em-no-scl"}
NOISY = {"ATL": "atl", "NCRL": "ncrl", "PEMSCL": "pemscl", "PEMSCL+NS": "pemscl-ns"}
SWEEP_MODELS = {"PEMSCL": "pemscl", "ATL": "atl"}

# released-code behaviours (FAITHFULNESS.md #) as (label, where, TrainConfig/loss overrides);
# where "gold" compares with the paper default on the gold regime, "oog" with PEMSCL+NS on OOG
FAITHFULNESS = [
    ("paper default", "gold", {}),
    ("SupCon SCL (#1)", "gold", {"loss_scl_variant": "supcon"}),
    ("NA anchors (#2)", "gold", {"loss_na_anchors": True}),
    ("mean reduction (#4)", "gold", {"loss_reduction": "mean"}),
    ("EM batch-average weights (#5)", "gold", {"loss_em_batch_average": True}),
    ("top-4 cap (#8)", "gold", {"top_k": 4}),  # no training of its own: the default run's test_top4
    ("paper default +NS", "oog", {}),
    ("NS mask per batch (#6)", "oog", {"loss_neg_sample_per": "batch"}),
]


def get_profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {sorted(PROFILES)}")
    return PROFILES[profile]


# --------------------------------------------------------------------------- building configs
def _tuned_loss_fields(p: Profile) -> dict:
    """Loss fields the preset changes from the default PEMSCL spec (e.g. the paper's tau, lambda)."""
    base, default = T.preset(p.preset).loss, loss_spec("pemscl")
    return {f.name: getattr(base, f.name) for f in dataclasses.fields(LossSpec)
            if getattr(base, f.name) != getattr(default, f.name)}


def make_loss(p: Profile, name: str, **overrides) -> LossSpec:
    """The named loss with the profile's tuned hyperparameters, except the fields the named
    variant sets itself (so "pemscl-no-scl" keeps SCL off even when the preset tunes lambda)."""
    named, default = loss_spec(name), loss_spec("pemscl")
    tuned = {k: v for k, v in _tuned_loss_fields(p).items() if getattr(named, k) == getattr(default, k)}
    return dataclasses.replace(named, **{**tuned, **overrides})


def make_config(p: Profile, label: str, loss: LossSpec, *, regime: str, fast: bool, seed: int,
                **overrides) -> T.TrainConfig:
    over: dict[str, Any] = {"regime": regime, "loss": loss, "label": label, "seed": seed,
                            "train_layers": p.fast_layers if fast else p.headline_layers}
    epochs = p.fast_epochs if fast else p.headline_epochs
    if epochs is not None:
        over["epochs"] = epochs
    for k in ("max_train_docs", "max_dev_docs", "max_test_docs"):
        if getattr(p, k) is not None:
            over[k] = getattr(p, k)
    if fast and p.fast_max_train_docs is not None:
        over["max_train_docs"] = p.fast_max_train_docs
    if regime == p.oog_regime:
        # score original dev and gold dev every epoch: one run gives the OOG row (selected on
        # original dev) and the OGG view (selected on gold dev; its test is scored once at the end)
        over["track"] = ("dev", "dev_gold")
    over.update(p.overrides)
    over.update(overrides)
    return T.override(T.preset(p.preset), **over)


def headline(profile: str | Profile = "cpu") -> list[T.TrainConfig]:
    """Paper Table 2 at this scale: ATL, BCE, NCRL, PEMSCL on the gold regime (full fine-tuning)."""
    p = get_profile(profile)
    return [make_config(p, label, make_loss(p, name), regime=p.gold_regime, fast=False, seed=s)
            for s in p.seeds[: p.headline_seeds] for label, name in HEADLINE.items()]


def ablation(profile: str | Profile = "cpu") -> list[T.TrainConfig]:
    """Paper Table 3: PEMSCL without EM, without SCL, without both, over the profile's seeds."""
    p = get_profile(profile)
    return [make_config(p, label, make_loss(p, name), regime=p.gold_regime, fast=True, seed=s)
            for s in p.seeds for label, name in ABLATION.items()]


def noisy(profile: str | Profile = "cpu") -> list[T.TrainConfig]:
    """Paper Table 4: training on original labels, OOG and OGG regimes (OGG read from the OOG
    runs when profile.ogg_from_oog)."""
    p = get_profile(profile)
    out = []
    for regime in (p.oog_regime,) if p.ogg_from_oog else (p.oog_regime, p.ogg_regime):
        for s in p.seeds[: p.noisy_seeds]:
            for label, name in NOISY.items():
                over = {"neg_sample_ratio": p.ns_ratio} if name.endswith("-ns") else {}
                out.append(make_config(p, label, make_loss(p, name, **over), regime=regime, fast=True, seed=s))
    return out


def _ns_loss(p: Profile, name: str, ratio: float) -> LossSpec:
    # ratio 1.0 keeps every negative label: exactly the plain loss, so reuse the plain config
    if ratio >= 1.0:
        return make_loss(p, name)
    return make_loss(p, f"{name}-ns" if name == "pemscl" else name, neg_sample_ratio=ratio)


def ratio_sweep(profile: str | Profile = "cpu") -> list[T.TrainConfig]:
    """Paper Figure 2: PEMSCL and ATL with negative label sampling ratios on OOG."""
    p = get_profile(profile)
    ratios = {"PEMSCL": p.ratios, "ATL": p.ratios if p.atl_ratios is None else p.atl_ratios}
    return [make_config(p, f"{label} NS {r:g}", _ns_loss(p, name, r), regime=p.oog_regime, fast=True, seed=s)
            for s in p.seeds[: p.sweep_seeds] for label, name in SWEEP_MODELS.items() for r in ratios[label]]


def sweep_point(cfg: T.TrainConfig) -> tuple[str, float]:
    """(model, ratio) of a ratio_sweep config, read from the config itself."""
    model = {v: k for k, v in SWEEP_MODELS.items()}.get(cfg.loss.kind, cfg.loss.kind.upper())
    r = cfg.loss.neg_sample_ratio
    return model, float(r) if r is not None and r > 0 else 1.0


def faithfulness(profile: str | Profile = "cpu") -> list[T.TrainConfig]:
    """Paper default vs each released-code behaviour that changes results (FAITHFULNESS.md)."""
    p = get_profile(profile)
    out = []
    for s in p.seeds[: p.faithfulness_seeds]:
        for label, where, over in FAITHFULNESS:
            if label == TOP4 or (p.faithfulness_rows is not None and label not in p.faithfulness_rows
                                 and label not in ("paper default", "paper default +NS")):
                continue  # the top-4 cap is a decision rule: every run scores test_top4 beside test
            if where == "gold":
                loss_over = {k[5:]: v for k, v in over.items() if k.startswith("loss_")}
                rest = {k: v for k, v in over.items() if not k.startswith("loss_")}
                out.append(make_config(p, label, make_loss(p, "pemscl", **loss_over), regime=p.gold_regime,
                                       fast=True, seed=s, **rest))
            else:
                loss_over = {"neg_sample_ratio": p.ns_ratio,
                             **{k[5:]: v for k, v in over.items() if k.startswith("loss_")}}
                out.append(make_config(p, label, make_loss(p, "pemscl-ns", **loss_over), regime=p.oog_regime,
                                       fast=True, seed=s))
    return out


TOP4 = "top-4 cap (#8)"


def layers(profile: str | Profile = "cpu") -> list[T.TrainConfig]:
    """PEMSCL on gold labels training only the top n layers (fast path) for each of the profile's
    layer counts, plus full fine-tuning (the headline run when the epochs match): which n keeps
    F1 close to full fine-tuning."""
    p = get_profile(profile)
    if not p.layer_counts:
        return []
    s = p.seeds[0]
    out = [make_config(p, "full fine-tuning", make_loss(p, "pemscl"), regime=p.gold_regime, fast=False, seed=s)]
    for n in p.layer_counts:
        cfg = make_config(p, f"top {n} layers", make_loss(p, "pemscl"), regime=p.gold_regime, fast=True, seed=s,
                          train_layers=n)
        if p.headline_epochs != p.fast_epochs:  # compare at equal training length
            cfg = dataclasses.replace(cfg, epochs=p.headline_epochs or T.preset(p.preset).epochs)
        out.append(cfg)
    return out


def search(profile: str | Profile = "cpu") -> list[T.TrainConfig]:
    """The profile's small search (lambda, tau, the baseline on the same fast path), with the
    default PEMSCL fast-path run (the ablation's first seed) as reference."""
    p = get_profile(profile)
    if not p.search:
        return []
    s = p.seeds[0]
    ref = make_config(p, "PEMSCL (λ=0.1, τ=0.2)", make_loss(p, "pemscl"), regime=p.gold_regime, fast=True, seed=s)
    return [ref] + [make_config(p, label, make_loss(p, name, **over), regime=p.gold_regime, fast=True, seed=s)
                    for label, name, over in p.search]


EXPERIMENTS = {"headline": headline, "ablation": ablation, "noisy": noisy, "ratio_sweep": ratio_sweep,
               "faithfulness": faithfulness, "layers": layers, "search": search}


def all_configs(profile: str | Profile = "cpu", only: Iterable[str] | None = None) -> list[T.TrainConfig]:
    """Every experiment's configs, duplicates (same hash) removed, in experiment order."""
    seen, out = set(), []
    for name, fn in EXPERIMENTS.items():
        if only is not None and name not in only:
            continue
        for cfg in fn(profile):
            if cfg.key() not in seen:
                seen.add(cfg.key())
                out.append(cfg)
    return out


def plan(profile: str | Profile = "cpu") -> list[dict]:
    """Per experiment: configs, how many are new (not already listed by an earlier experiment),
    and how many of those use full fine-tuning; what a profile costs before running it."""
    p = get_profile(profile)
    seen, rows = set(), []
    for name, fn in EXPERIMENTS.items():
        cfgs = fn(p)
        new = [c for c in cfgs if c.key() not in seen]
        seen.update(c.key() for c in cfgs)
        rows.append({"experiment": name, "configs": len(cfgs), "new_runs": len(new),
                     "full_finetuning": sum(c.train_layers is None for c in new),
                     "regimes": ", ".join(sorted({c.regime for c in cfgs}))})
    return rows


# --------------------------------------------------------------------------- running
def find_run(cfg: T.TrainConfig, root: str | Path | None = None) -> T.Run | None:
    """The complete run of this config (matched by hash, whatever its folder label), or None."""
    root = Path(root or T.runs_dir())
    if not root.exists():
        return None
    for d in sorted(root.glob(f"*-{cfg.key()}")):
        if (d / "DONE").exists():
            return T.Run.load(d)
    return None


def _as(run: T.Run, cfg: T.TrainConfig) -> T.Run:
    # carry the experiment's label: the same run may be "PEMSCL" in one table and
    # "paper default" in another
    return dataclasses.replace(run, config=dataclasses.replace(run.config, label=cfg.label))


def _fmt(x) -> str:
    return "  -  " if x is None else f"{100 * x:5.1f}"


def run_line(run: T.Run, reused: bool = False) -> str:
    s = run.scores
    dev, test = (s.get("dev") or {}).get("f1"), (s.get("test") or {}).get("f1")
    return (f"{run.config.label or run.dir.name:<28} {run.config.regime:<14} seed {run.config.seed:<3} "
            f"{s.get('seconds', 0):7.1f}s  dev F1 {_fmt(dev)}  test F1 {_fmt(test)}"
            + ("  (reused)" if reused else ""))


def run_all(configs: Sequence[T.TrainConfig], progress: bool = True, root: str | Path | None = None,
            train_progress: bool = False) -> list[T.Run]:
    """Train each config in turn (never in parallel: one torch job per machine), reusing
    complete runs; one summary line per run. Returns runs labelled as the configs."""
    out = []
    t0 = time.time()
    for i, cfg in enumerate(configs):
        run = find_run(cfg, root)
        reused = run is not None
        if run is None:
            run = T.train(cfg, root=root, progress=train_progress)
        run = _as(run, cfg)
        out.append(run)
        if progress:
            print(f"[{i + 1}/{len(configs)}] {run_line(run, reused)}", flush=True)
    if progress and configs:
        print(f"{len(configs)} runs, {time.time() - t0:.0f}s wall", flush=True)
    return out


def attach(configs: Sequence[T.TrainConfig], runs: Iterable[T.Run]) -> list[T.Run | None]:
    """The run of each config among `runs` (by hash), labelled as the config; None if missing."""
    by_key = {r.config.key(): r for r in runs}
    return [_as(by_key[c.key()], c) if c.key() in by_key else None for c in configs]


# --------------------------------------------------------------------------- summarising
def flat_scores(run: T.Run | Mapping) -> dict:
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
                           "precision": s.get("precision")}
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


def summarise(runs: Iterable[T.Run | Mapping | None], by: Sequence[str] = ("label",),
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

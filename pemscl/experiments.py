"""The paper's experiments as lists of TrainConfigs, per profile; running and summarising them.

    from pemscl import experiments
    runs = experiments.run_all(experiments.ablation("cpu"))   # trains what is missing, reuses the rest
    experiments.summarise(runs, metrics=("test_f1", "test_tail_f1"))   # mean ± std over seeds per label

A profile says how big everything is:
  smoke  CI: a few documents, one epoch, one trained layer; the whole notebook sequence in minutes
  quick  what `make workbench` runs by default: every experiment once (one seed) on the fast path
         (top layers trained on cached lower layers), about an hour on 2 cores
  cpu    the decisive profile: full fine-tuning on the mini regimes, early stopping on the selection
         dev set, 3 paired seeds for every row a claim rests on (ATL and PEMSCL, no EM, no SCL on
         Re-DocRED; PEMSCL and PEMSCL+NS on original labels), one seed for the other rows;
         about 12 hours on 2 cores, recorded in results/runs.jsonl so it is trained once
  paper  a GPU, the full data sets and the paper's presets (Table 5): Re-DocRED and DocRED, 5 seeds
         for Table 2 and 3 for Table 3, the paper's fixed epochs

Experiment functions return configs whose `label` is the row name ("PEMSCL", "no EM", ...).
A run is identified by its config's hash, not its label, so the same config appearing in two
experiments (the ablation's PEMSCL and the headline's PEMSCL) is trained once.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from . import runs as RS
from . import train as T
from .losses import LossSpec, loss_spec
from . import utils as U
from .utils import read_json

# Layers trained on the fast path (MiniLM has 6): the quick profile and the exploratory
# released-code options. Full fine-tuning is 4.5-10 F1 points better at 4 epochs (session 2).
FAST_LAYERS = 2


@dataclass
class Profile:
    """How large each experiment is. None in epochs / doc limits means: the preset's value."""

    name: str
    preset: str = "cpu"  # pemscl.config preset every config starts from
    gold_regime: str = "redocred-mini"  # train, dev and test on gold labels
    oog_regime: str = "oog-mini"  # original train, original dev, gold test
    ogg_regime: str = "ogg-mini"  # original train, gold dev, gold test
    docred_regime: str | None = None  # Table 2's DocRED columns (paper profile), with docred_preset
    docred_preset: str = "paper-docred"
    train_layers: int | None = None  # every run of Tables 2-4 and Fig. 2 (None: full fine-tuning)
    faithfulness_layers: int | None = FAST_LAYERS  # the exploratory released-code options
    epochs: int | None = None
    patience: int | None | str = "preset"  # early stopping; "preset": the preset's value
    max_train_docs: int | None = None
    original_max_train_docs: int | None = None  # cap for runs on original labels (oog-mini has 761)
    # epoch budget and min_epochs of every run on original labels (None: as the other runs). In
    # the cpu profile PEMSCL+NS still climbed on original dev at the end of 18 epochs (seeds 66
    # and 67: +1.4 and +1.8 F1 over the last two) while plain PEMSCL had levelled off; the whole
    # OOG table and sweep get the longer budget, so its rows stay comparable.
    original_epochs: int | None = None
    original_min_epochs: int | None = None
    max_dev_docs: int | None = None
    max_test_docs: int | None = None
    seeds: tuple[int, ...] = (66, 67, 68)
    claim_seeds: int = 3  # rows a claim rests on (CLAIM_ROWS)
    leaderboard_seeds: int | None = None  # seeds of every leaderboard row (None: claim_seeds)
    other_seeds: int = 1  # the other rows of Tables 2-4 and the ratio curve
    table_seeds: dict = field(default_factory=dict)  # experiment -> seeds for all its rows (paper: 5 / 3)
    ns_ratio: float = 0.1  # the paper's negative sampling ratio (set on dev, Table 4)
    ratios: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0)
    atl_ratios: tuple[float, ...] | None = None  # ATL's points in Figure 2 (None: `ratios`)
    # the fast path's layer counts compared with full fine-tuning (PEMSCL, gold regime, first seed)
    layer_counts: tuple[int, ...] = ()
    # a small hyperparameter search on gold dev, first seed: (row label, loss name, loss overrides)
    search: tuple[tuple[str, str, dict], ...] = ()
    # FAITHFULNESS rows to run (labels); None: all of them
    faithfulness_rows: tuple[str, ...] | None = None
    # OGG from the OOG runs: on the mini regimes both train on the same original-label documents
    # and OGG's dev is OOG's dev_gold (same 138 docs, gold labels), so one run selecting on both
    # dev sets gives both rows. The full OGG dev (all of Re-DocRED dev) is larger than OOG's
    # paired dev_gold, so the paper profile trains OGG separately.
    ogg_from_oog: bool = True
    overrides: dict = field(default_factory=dict)  # extra TrainConfig fields for every run
    # further seeds for the headline claim's rows (ATL, PEMSCL), taken one at a time by
    # train_profile while the claim's interval is wider than the paper's effect (`more_seeds`)
    more_seeds: tuple[int, ...] = ()
    # ... and only while the profile's recorded training (every run of it, in hours) is under
    # this budget (None: no limit). A seed with one of its two runs recorded is finished anyway.
    seed_budget_hours: float | None = None
    # (epochs, min_epochs) of a second run of a claim-bearing config whose curve on its claim's dev
    # set was cut short (train.converged): that config trained again with the longer budget, and
    # the tables and claims read the longer run in its place (longer_configs). None: a run cut
    # short stays as it is, marked so.
    longer: tuple[int, int] | None = None


PROFILES: dict[str, Profile] = {
    "smoke": Profile(name="smoke", preset="smoke", train_layers=1, faithfulness_layers=1, epochs=1,
                     max_train_docs=4, max_dev_docs=3, max_test_docs=3, seeds=(66, 67), claim_seeds=2,
                     leaderboard_seeds=1,  # the notebook test's time: 4 new runs, not 14
                     ratios=(0.1, 1.0)),
    # about an hour on 2 cores: one seed, the fast path, 4 epochs, 200 training documents
    "quick": Profile(name="quick", preset="cpu", train_layers=FAST_LAYERS, epochs=4, patience=None,
                     max_train_docs=200, original_max_train_docs=200, seeds=(66,), claim_seeds=1,
                     ratios=(0.1, 1.0), atl_ratios=(0.1, 1.0),
                     faithfulness_rows=("NS mask per batch (#6)",),
                     # new training: the precision this machine measures fastest (bf16 where it
                     # pays, so the runs recorded in bf16 keep their keys there)
                     overrides={"precision": "auto"}),
    # the decisive profile (issue 9): ~26 fully fine-tuned runs of 20-30 minutes
    "cpu": Profile(name="cpu", preset="cpu", train_layers=None, original_max_train_docs=400,
                   original_epochs=24, original_min_epochs=20,
                   seeds=(66, 67, 68), claim_seeds=3, ratios=(0.05, 0.1, 0.3, 1.0), atl_ratios=(0.1, 1.0),
                   more_seeds=(69, 70, 71, 72), seed_budget_hours=12.0,  # issue 9: "about 12 hours"
                   longer=(24, 20),  # the original-label runs' budget, which converged all 12 of them
                   faithfulness_rows=("SupCon SCL (#1)", "NA anchors (#2)", "NS mask per batch (#6)",
                                      "gamma2 over sampled negatives (#5, NS)", "long-tail term x anchor share (#12)")),
    "paper": Profile(name="paper", preset="paper-redocred", gold_regime="redocred", oog_regime="oog",
                     ogg_regime="ogg", docred_regime="docred", train_layers=None, faithfulness_layers=None,
                     seeds=(66, 67, 68, 69, 70), claim_seeds=3, other_seeds=1,
                     table_seeds={"headline": 5, "ablation": 3}, ogg_from_oog=False),
}

# row label -> loss_spec name
HEADLINE = {"ATL": "atl", "BCE": "bce", "NCRL": "ncrl", "PEMSCL": "pemscl"}
ABLATION = {"PEMSCL": "pemscl", "no EM": "pemscl-no-em", "no SCL": "pemscl-no-scl", "no EM, no SCL": "pemscl-no-em-no-scl"}
ORIGINAL_LABELS = {"ATL": "atl", "NCRL": "ncrl", "PEMSCL": "pemscl", "PEMSCL+NS": "pemscl-ns"}
SWEEP_MODELS = {"PEMSCL": "pemscl", "ATL": "atl"}
# The field's question (issue 26): which loss to train with, on complete and on incomplete labels,
# every contender with the same encoder, seeds, schedule, optimiser (chosen on ATL) and statistics.
# Row label -> (loss_spec name, negative sampling at the profile's ratio). The registry names the rows
# of results/leaderboard.json ("+ns" appended for NS).
LEADERBOARD = {
    "gold": {"ATL": ("atl", False), "BCE": ("bce", False), "NCRL": ("ncrl", False), "PEMSCL": ("pemscl", False),
             "AFL": ("afl", False), "SSR-PU": ("ssr-pu", False)},
    "incomplete": {"ATL": ("atl", False), "ATL+NS": ("atl", True), "NCRL": ("ncrl", False),
                   "PEMSCL": ("pemscl", False), "PEMSCL+NS": ("pemscl-ns", True), "AFL": ("afl", False),
                   "SSR-PU": ("ssr-pu", False)},
}
# the rows each claim is judged on: these get `claim_seeds` paired seeds
CLAIM_ROWS = {"headline": ("ATL", "PEMSCL"), "ablation": ("PEMSCL", "no EM", "no SCL"),
              "original_labels": ("PEMSCL", "PEMSCL+NS")}
TAIL_ROW = "no EM, no SCL"  # the tail claim's other row: one seed by plan, scheduled after CLAIM_ROWS

# released-code behaviours (FAITHFULNESS.md #) as (label, where, TrainConfig/loss overrides);
# where "gold" compares with the paper default on the gold regime, "oog" with PEMSCL+NS on OOG.
# Exploratory: the fast path and one seed.
FAITHFULNESS = [
    ("paper default", "gold", {}),
    ("SupCon SCL (#1)", "gold", {"loss_scl_variant": "supcon"}),
    ("NA anchors (#2)", "gold", {"loss_na_anchors": True}),
    ("mean reduction (#4)", "gold", {"loss_reduction": "mean"}),
    ("EM batch-average weights (#5)", "gold", {"loss_em_batch_average": True}),
    ("top-4 cap (#8)", "gold", {"top_k": 4}),  # no training of its own: the default run's test_top4
    ("long-tail term x anchor share (#12)", "gold", {"loss_longtail_scale": "anchor-share"}),
    ("paper default +NS", "oog", {}),
    ("NS mask per batch (#6)", "oog", {"loss_neg_sample_per": "batch"}),
    ("gamma2 over sampled negatives (#5, NS)", "oog", {"loss_neg_count": "sampled"}),
]
TOP4 = "top-4 cap (#8)"


def get_profile(profile: str | Profile) -> Profile:
    """The named profile, or the Profile given; under a pipeline dry run ($PEMSCL_DRY_RUN) either is
    shrunk to two optimiser steps per config with dry_run=True (pemscl.dryrun.shrink)."""
    if not isinstance(profile, Profile):
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; known: {sorted(PROFILES)}")
        profile = PROFILES[profile]
    from . import dryrun  # imported here: dryrun builds on this module

    return dryrun.shrink(profile) if dryrun.active() else profile


# --------------------------------------------------------------------------- building configs
def _tuned_loss_fields(p: Profile, preset: str | None = None) -> dict:
    """Loss fields the preset changes from the default PEMSCL spec (e.g. the paper's tau, lambda)."""
    base, default = T.preset(preset or p.preset).loss, loss_spec("pemscl")
    return {f.name: getattr(base, f.name) for f in dataclasses.fields(LossSpec)
            if getattr(base, f.name) != getattr(default, f.name)}


def make_loss(p: Profile, name: str, preset: str | None = None, **overrides) -> LossSpec:
    """The named loss with the profile's tuned hyperparameters, except the fields the named
    variant sets itself (so "pemscl-no-scl" keeps SCL off even when the preset tunes lambda)."""
    named, default = loss_spec(name), loss_spec("pemscl")
    tuned = {k: v for k, v in _tuned_loss_fields(p, preset).items() if getattr(named, k) == getattr(default, k)}
    return dataclasses.replace(named, **{**tuned, **overrides})


def make_config(p: Profile, label: str, loss: LossSpec, *, regime: str, seed: int, fast: bool = False,
                preset: str | None = None, **overrides) -> T.TrainConfig:
    """One run of the profile. fast: the exploratory fast path (faithfulness_layers)."""
    over: dict[str, Any] = {"regime": regime, "loss": loss, "label": label, "seed": seed,
                            "train_layers": p.faithfulness_layers if fast else p.train_layers}
    if p.epochs is not None:
        over["epochs"] = p.epochs
    if p.patience != "preset":
        over["patience"] = p.patience
    for k in ("max_train_docs", "max_dev_docs", "max_test_docs"):
        if getattr(p, k) is not None:
            over[k] = getattr(p, k)
    if regime in (p.oog_regime, p.ogg_regime) and p.original_max_train_docs is not None:
        over["max_train_docs"] = p.original_max_train_docs
    if regime in (p.oog_regime, p.ogg_regime) and p.original_epochs is not None:
        over["epochs"], over["min_epochs"] = p.original_epochs, p.original_min_epochs
    if regime == p.oog_regime:
        # select on original dev and on gold dev: one run gives the OOG row and the OGG view
        # (and the ratio claim: which ratio each dev set would pick)
        over["select"] = ("dev", "dev_gold")
    over.update(p.overrides)
    over.update(overrides)
    return T.override(T.preset(preset or p.preset), **over)


def seeds_for(p: Profile, experiment: str, row: str) -> tuple[int, ...]:
    if experiment in p.table_seeds:
        return p.seeds[: p.table_seeds[experiment]]
    claim = row in CLAIM_ROWS.get(experiment, ())
    return p.seeds[: p.claim_seeds if claim else p.other_seeds]


def headline_config(p: Profile, label: str, seed: int) -> T.TrainConfig:
    """One row of Table 2 (a HEADLINE label) on the gold regime at one seed."""
    return make_config(p, label, make_loss(p, HEADLINE[label]), regime=p.gold_regime, seed=seed)


def headline(profile: str | Profile = "cpu") -> list[T.TrainConfig]:
    """Paper Table 2 at this scale: ATL, BCE, NCRL, PEMSCL on the gold regime (and on DocRED in
    the paper profile, whose test labels are not public: scored on dev)."""
    p = get_profile(profile)
    out = [headline_config(p, label, s) for label in HEADLINE for s in seeds_for(p, "headline", label)]
    if p.docred_regime:
        out += [make_config(p, f"{label} (DocRED)", make_loss(p, name, preset=p.docred_preset),
                            regime=p.docred_regime, seed=s, preset=p.docred_preset, eval_test=False)
                for label, name in HEADLINE.items() for s in seeds_for(p, "headline", label)]
    return out


def ablation(profile: str | Profile = "cpu") -> list[T.TrainConfig]:
    """Paper Table 3: PEMSCL without EM, without SCL, without both."""
    p = get_profile(profile)
    return [make_config(p, label, make_loss(p, name), regime=p.gold_regime, seed=s)
            for label, name in ABLATION.items() for s in seeds_for(p, "ablation", label)]


def original_labels(profile: str | Profile = "cpu") -> list[T.TrainConfig]:
    """Paper Table 4: training on original (noisy) labels, OOG and OGG regimes (OGG read from
    the OOG runs when profile.ogg_from_oog)."""
    p = get_profile(profile)
    out = []
    for regime in (p.oog_regime,) if p.ogg_from_oog else (p.oog_regime, p.ogg_regime):
        for label, name in ORIGINAL_LABELS.items():
            over = {"neg_sample_ratio": p.ns_ratio} if name.endswith("-ns") else {}
            out += [make_config(p, label, make_loss(p, name, **over), regime=regime, seed=s)
                    for s in seeds_for(p, "original_labels", label)]
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
    return [make_config(p, f"{label} NS {r:g}", _ns_loss(p, name, r), regime=p.oog_regime, seed=s)
            for s in p.seeds[: p.other_seeds] for label, name in SWEEP_MODELS.items() for r in ratios[label]]


def sweep_point(cfg: T.TrainConfig) -> tuple[str, float]:
    """(model, ratio) of a ratio_sweep config, read from the config itself."""
    model = {v: k for k, v in SWEEP_MODELS.items()}.get(cfg.loss.kind, cfg.loss.kind.upper())
    r = cfg.loss.neg_sample_ratio
    return model, float(r) if r is not None and r > 0 else 1.0


def faithfulness(profile: str | Profile = "cpu") -> list[T.TrainConfig]:
    """Paper default vs each released-code behaviour that changes results (FAITHFULNESS.md).
    Exploratory: the fast path (faithfulness_layers) and one seed."""
    p = get_profile(profile)
    out = []
    for s in p.seeds[:1]:
        for label, where, over in FAITHFULNESS:
            if label == TOP4 or (p.faithfulness_rows is not None and label not in p.faithfulness_rows
                                 and label not in ("paper default", "paper default +NS")):
                continue  # the top-4 cap is a decision rule: every run scores test_top4 beside test
            loss_over = {k[5:]: v for k, v in over.items() if k.startswith("loss_")}
            rest = {k: v for k, v in over.items() if not k.startswith("loss_")}
            if where == "gold":
                out.append(make_config(p, label, make_loss(p, "pemscl", **loss_over), regime=p.gold_regime,
                                       fast=True, seed=s, **rest))
            else:
                loss_over = {"neg_sample_ratio": p.ns_ratio, **loss_over}
                out.append(make_config(p, label, make_loss(p, "pemscl-ns", **loss_over), regime=p.oog_regime,
                                       fast=True, seed=s, **rest))
    return out


def layers(profile: str | Profile = "cpu") -> list[T.TrainConfig]:
    """PEMSCL on gold labels training only the top n layers (fast path) for each of the profile's
    layer counts, plus full fine-tuning: which n keeps F1 close to full fine-tuning."""
    p = get_profile(profile)
    if not p.layer_counts:
        return []
    s = p.seeds[0]
    out = [make_config(p, "full fine-tuning", make_loss(p, "pemscl"), regime=p.gold_regime, seed=s,
                       train_layers=None)]
    for n in p.layer_counts:
        out.append(make_config(p, f"top {n} layers", make_loss(p, "pemscl"), regime=p.gold_regime, seed=s,
                               train_layers=n))
    return out


def search(profile: str | Profile = "cpu") -> list[T.TrainConfig]:
    """The profile's small search (lambda, tau, the baseline), with the default PEMSCL run as
    reference."""
    p = get_profile(profile)
    if not p.search:
        return []
    s = p.seeds[0]
    ref = make_config(p, "PEMSCL (λ=0.1, τ=0.2)", make_loss(p, "pemscl"), regime=p.gold_regime, seed=s)
    return [ref] + [make_config(p, label, make_loss(p, name, **over), regime=p.gold_regime, seed=s)
                    for label, name, over in p.search]


def leaderboard_regime(p: Profile, labels: str) -> str:
    """The regime of a leaderboard block: gold labels, or incomplete (original) training labels."""
    return p.gold_regime if labels == "gold" else p.oog_regime


def leaderboard(profile: str | Profile = "cpu") -> list[T.TrainConfig]:
    """Every LEADERBOARD row at the claim seeds (cpu: 66-68). The configs are those of the headline,
    Table 4 and the ratio sweep where a row is theirs (same key: their recorded runs are reused);
    on original labels every run selects on original dev (a user without gold labels) and gold
    dev beside, as Table 4's runs do."""
    p = get_profile(profile)
    out = []
    for labels, rows in LEADERBOARD.items():
        regime = leaderboard_regime(p, labels)
        for label, (name, ns) in rows.items():
            loss = make_loss(p, name, **({"neg_sample_ratio": p.ns_ratio} if ns else {}))
            n = p.claim_seeds if p.leaderboard_seeds is None else p.leaderboard_seeds
            out += [make_config(p, label, loss, regime=regime, seed=s) for s in p.seeds[:n]]
    return out


def extra_seed_configs(profile: str | Profile, seeds: Iterable[int]) -> list[T.TrainConfig]:
    """The headline claim's rows (CLAIM_ROWS: ATL and PEMSCL) at further seeds, seed by seed."""
    p = get_profile(profile)
    return [headline_config(p, label, s) for s in seeds for label in CLAIM_ROWS["headline"]]


def more_seeds(profile: str | Profile, records: Sequence[T.Run]) -> list[T.TrainConfig]:
    """The runs of the next seed for PEMSCL vs ATL, or [] when none is due.

    A seed is due while the claim's 95% interval, judged on the recorded runs, is wider than the
    paper's effect (+2.1 F1 on Re-DocRED test) and `profile.more_seeds` has one left. Nothing is
    due until every planned run of the claim is recorded. A seed half trained is finished before
    the interval is looked at again (its other run is what is returned)."""
    from . import claims as C

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


def profile_configs(profile: str | Profile, only: Iterable[str] | None = None,
                    records: Iterable[T.Run] | None = None) -> list[T.TrainConfig]:
    """all_configs and what train_profile may add after them: with the headline, the extra
    seeds; and the longer runs of the cut-short claim-bearing runs among `records` (default:
    runs.jsonl)."""
    p = get_profile(profile)
    configs = all_configs(p, only=only)
    if only is None or "headline" in only:
        keys = {c.key() for c in configs}
        configs += [c for c in extra_seed_configs(p, p.more_seeds) if c.key() not in keys]
    if p.longer:
        records = RS.load_exported(strict=False) if records is None else records
        keys = {c.key() for c in configs}
        configs += [c for k, c in longer_configs(p, records).items() if k in keys and c.key() not in keys]
    return configs


def claim_configs(profile: str | Profile) -> list[T.TrainConfig]:
    """The configs the two-row claims rest on: CLAIM_ROWS at their seeds, the tail claim's
    row and the headline's extra seeds (the ratio claim's runs are those the dev sets pick)."""
    p = get_profile(profile)
    out = [c for exp, rows in CLAIM_ROWS.items() for c in EXPERIMENTS[exp](p) if c.label in rows]
    out += [c for c in ablation(p) if c.label == TAIL_ROW] + extra_seed_configs(p, p.more_seeds)
    out += leaderboard(p)  # every leaderboard row rests on converged runs too
    return out


def claim_dev_split(p: Profile, cfg: T.TrainConfig) -> str:
    """The dev set that says whether a claim-bearing run is an end point: gold dev for runs on
    original labels (their claims read gold test), else the dev set it was selected on."""
    return "dev_gold" if cfg.regime == p.oog_regime and "dev_gold" in (cfg.select or ()) else "dev"


def longer_configs(profile: str | Profile, records: Iterable[T.Run]) -> dict[str, T.TrainConfig]:
    """{key of a claim-bearing config whose recorded run was cut short on its claim's dev set:
    that config with the profile's `longer` (epochs, min_epochs)}. Seed, label and everything
    else stay, so the longer run pairs with the same seeds of the other rows; a longer run that
    is cut short again stays so (there is no third budget). Judged on dev, never on test."""
    from .train import curve_end

    p = get_profile(profile)
    if not p.longer:
        return {}
    have = RS.by_key(records)
    out = {}
    for c in claim_configs(p):
        r = have.get(c.key())
        if r is None or c.epochs >= p.longer[0] or c.key() in out:
            continue
        if curve_end(RS.dev_curve(r, claim_dev_split(p, c)))[0] is False:
            out[c.key()] = T.override(c, epochs=p.longer[0], min_epochs=p.longer[1])
    return out


def trained_hours(profile: str | Profile, records: Sequence[T.Run]) -> float:
    """Hours of training the profile's recorded runs took (each distinct run once, its extra
    seeds and longer runs included): what `seed_budget_hours` is checked against."""
    keys = {c.key() for c in profile_configs(profile, records=records)}
    seconds = {r.config.key(): r.scores.get("seconds") or 0.0 for r in records if r.config.key() in keys}
    return sum(seconds.values()) / 3600


def makespan(seconds: Iterable[float], workers: int = 2) -> float:
    """Wall time of runs of these lengths trained `workers` at a time, longest first, each
    started as soon as a worker is free (list scheduling; within 4/3 of the best packing)."""
    free = [0.0] * max(1, workers)
    for s in sorted(seconds, reverse=True):
        i = free.index(min(free))
        free[i] += s
    return max(free)


def headline_configs(profile: str = "cpu", first: str = "atl", second: str = "pemscl"):
    """Two of the headline's configs by loss kind, first seed (default ATL vs PEMSCL, as paper
    Fig. 3): the case study's pair."""
    cfgs = headline(profile)
    seed = min(c.seed for c in cfgs)
    pick = {}
    for c in cfgs:
        if c.seed == seed and c.loss.kind in (first, second) and c.regime == get_profile(profile).gold_regime:
            pick.setdefault(c.loss.kind, c)
    missing = {first, second} - set(pick)
    if missing:
        raise ValueError(f"the {profile} headline has no {sorted(missing)} config")
    return pick[first], pick[second]


def _loss_diff(a: LossSpec, b: LossSpec) -> int:
    return sum(getattr(a, f.name) != getattr(b, f.name) for f in dataclasses.fields(LossSpec))


def scl_configs(profile: str = "cpu", seed_index: int = 0):
    """(with SCL, without SCL): the ablation's PEMSCL row and its no-SCL row for one seed.

    Picked by config, not label: SCL is on when loss.scl_weight > 0. Of all on/off pairs, the
    one whose losses differ in the fewest fields, the earliest row first on ties (PEMSCL vs
    no SCL, not no EM vs no EM, no SCL): the embedding view's pair.
    """
    cfgs = ablation(profile)
    seed = sorted({c.seed for c in cfgs})[seed_index]
    cfgs = [c for c in cfgs if c.seed == seed]
    with_scl = [c for c in cfgs if c.loss.scl_weight > 0]
    without = [c for c in cfgs if not c.loss.scl_weight > 0]
    if not with_scl or not without:
        raise ValueError(f"the {profile} ablation has no SCL on/off pair for seed {seed}")
    pairs = [(_loss_diff(a.loss, b.loss), cfgs.index(a), cfgs.index(b)) for a in with_scl for b in without]
    _, i, j = min(pairs)
    return cfgs[i], cfgs[j]


def weight_configs(profile: str | Profile = "cpu") -> list[T.TrainConfig]:
    """The runs whose models the notebooks load (05: scl_configs, 06: headline_configs), once."""
    out: list[T.TrainConfig] = []
    for c in (*scl_configs(profile), *headline_configs(profile)):
        if c.key() not in {o.key() for o in out}:
            out.append(c)
    return out


EXPERIMENTS = {"headline": headline, "ablation": ablation, "original_labels": original_labels,
               "ratio_sweep": ratio_sweep, "faithfulness": faithfulness, "layers": layers, "search": search,
               "leaderboard": leaderboard}


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
def _fmt(x) -> str:
    return "  -  " if x is None else f"{100 * x:5.1f}"


def run_line(run: T.Run, source: str = "trained") -> str:
    s = run.scores
    dev, test = (s.get("dev") or {}).get("f1"), (s.get("test") or {}).get("f1")
    conv = "" if s.get("converged") is None else ("  converged" if s["converged"] else "  CUT SHORT")
    return (f"{run.config.label or run.dir.name:<28} {run.config.regime:<14} seed {run.config.seed:<3} "
            f"{s.get('seconds', 0):7.1f}s  ep {s.get('best_epoch', '-')}/{s.get('epochs_run', '-')}  "
            f"dev F1 {_fmt(dev)}  test F1 {_fmt(test)}{conv}" + ("" if source == "trained" else f"  ({source})"))


def reproduction(run: T.Run, recorded: T.Run) -> str:
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


def for_this_machine(cfg: T.TrainConfig) -> tuple[T.TrainConfig, str | None]:
    """The config to train on this machine, and a note when it is not `cfg` itself.

    The cpu profile pins bf16, the precision its recorded runs were trained in, so that their keys
    hold everywhere and they are read, not retrained. Training such a config anew on a CPU where
    bf16 autocast is slow (measured: `utils.measured_cpu_precision`; 20x slower on an AVX2-only
    EPYC) would take many hours, so it trains in the measured precision instead: another run
    (another key), whose scores are shown beside the record's where one exists."""
    device = U.resolve_device(cfg.device)
    if (cfg.precision == "bf16" and device.type == "cpu" and not os.environ.get("PEMSCL_PRECISION")
            and U.measured_cpu_precision() == "fp32"):
        return dataclasses.replace(cfg, precision="auto"), "in fp32, not the recorded bf16 (bf16 is slow on this CPU)"
    return cfg, None


def run_all(configs: Sequence[T.TrainConfig], progress: bool = True, root: str | Path | None = None,
            train_progress: bool = False, *, need_weights: bool = False, record: bool = True,
            retrain: bool | None = None) -> list[T.Run]:
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
        here, note = for_this_machine(cfg)
        if run is None and here is not cfg:  # trained here before, in this machine's precision
            run, source = RS.find_run(here, root), f"local, {note}"
        if run is None:
            run, source = T.train(here, root=root, progress=train_progress), "trained"
            kept = RS.recorded(cfg, records) if records else None
            if kept is not None:
                source = "trained for its weights; " + (f"{note}; " if note else "") + reproduction(run, kept)
            elif note:
                source = f"trained, {note}"
            elif record:
                RS.export_runs([run])
        out.append(run.labelled(cfg.label))
        if progress:
            print(f"[{i + 1}/{len(configs)}] {run_line(out[-1], source)}", flush=True)
    if progress and configs:
        print(f"{len(configs)} runs, {time.time() - t0:.0f}s wall", flush=True)
    return out


def attach(configs: Sequence[T.TrainConfig], runs: Iterable[T.Run]) -> list[T.Run | None]:
    """The run of each config among `runs` (by hash), labelled as the config; None if missing."""
    by_key = {r.config.key(): r for r in runs}
    return [by_key[c.key()].labelled(c.label) if c.key() in by_key else None for c in configs]


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


# --------------------------------------------------------------------------- a profile's runs, outside the notebooks
def missing(configs: Sequence[T.TrainConfig], root: str | Path | None = None) -> list[T.TrainConfig]:
    """The configs with neither a complete local run nor a record in runs.jsonl."""
    records = RS.by_key(RS.load_exported(strict=False))
    return [c for c in configs if RS.find_run(c, root) is None and RS.recorded(c, records) is None]


def _kind(c: T.TrainConfig) -> tuple:
    # what sets the time an epoch takes: the encoder's trained layers, precision and batch size
    # (and the number of training documents: _same_size)
    return (c.encoder, c.train_layers, c.precision, c.batch_size)


def _same_size(r: T.Run, cfg: T.TrainConfig) -> bool:
    """Did r train on as many documents as cfg will? A cap (max_train_docs) matches any run that
    saw that many (oog-mini's first 400 documents pace like redocred-mini's 400); no cap matches
    runs without one (their regime is preferred by _expected_minutes)."""
    if cfg.max_train_docs is None:
        return r.config.max_train_docs is None
    return (r.scores.get("n_docs") or {}).get("train") == cfg.max_train_docs


def epochs_done(cfg: T.TrainConfig, root: str | Path | None = None) -> int:
    """Epochs an interrupted run of cfg has saved here (its state resumes them); 0 if none."""
    d = RS.run_dir_for(cfg, root)
    if RS.is_complete(d) or not (d / T.STATE).exists() or not (d / "history.json").exists():
        return 0
    return len(read_json(d / "history.json"))


def after_the_list(profile: str | Profile, records: Sequence[T.Run], only: Iterable[str] | None = None,
                   grow: bool = True, root: str | Path | None = None) -> list[T.TrainConfig]:
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
        hist = read_json(d / "history.json")
        key = f"{c.select[0]}_f1" if c.select else "dev_f1"
        f1s = [h.get(key) for h in hist]
        best = max(range(len(f1s)), key=lambda i: f1s[i] if f1s[i] is not None else -1.0)
        per_epoch = sum(h.get("train_seconds", 0.0) + h.get("eval_seconds", 0.0) for h in hist) / 60 / len(hist)
        out.append(row | {"last_f1": f1s[-1], "best_f1": f1s[best], "best_epoch": best + 1,
                          "minutes_per_epoch": per_epoch, "pid": RS.holder(d),
                          "minutes_since_save": (time.time() - (d / "history.json").stat().st_mtime) / 60,
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
    pct = lambda x: "–" if x is None else f"{100 * x:.1f}"  # noqa: E731
    return (f"dev F1 {pct(r['last_f1'])} (best {pct(r['best_f1'])} at {r['best_epoch']})  "
            f"{r['minutes_per_epoch']:.1f} min/epoch  "
            + (f"training (pid {r['pid']}), saved {r['minutes_since_save']:.0f} min ago, "
               f"<= {r['minutes_left']:.0f} min to go" if r["pid"] else
               f"interrupted {r['minutes_since_save']:.0f} min ago: the next run of the profile resumes it"))


def _expected_minutes(cfg: T.TrainConfig, records: Sequence[T.Run], epoch_minutes: float,
                      root: str | Path | None = None) -> float:
    """Worst case (the rest of the epoch budget, no early stop) at the slowest recorded minutes
    per epoch of the same kind, preferring the same regime; epoch_minutes when nothing of the
    kind is recorded. A run is only started when this fits in the time left."""
    same = [r for r in records if _kind(r.config) == _kind(cfg) and _same_size(r, cfg) and r.scores.get("epochs_run")]
    same = [r for r in same if r.config.regime == cfg.regime] or same
    per_epoch = max((r.scores["seconds"] / 60 / r.scores["epochs_run"] for r in same), default=epoch_minutes)
    return per_epoch * (cfg.epochs - epochs_done(cfg, root))


def schedule(profile: str | Profile, todo: Sequence[T.TrainConfig],
             root: str | Path | None = None) -> list[T.TrainConfig]:
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


def _train_one(cfg: T.TrainConfig, threads: int, root) -> str:
    import torch

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
                  weights: bool = False) -> list[str]:
    """Train what a profile lacks, `workers` runs side by side (each with `threads` threads; on
    2 cores two single-threaded runs out-train one two-threaded run: benchmarks/bench_parallel.py),
    starting a run only while it can finish within budget_minutes (`schedule` sets the order; a
    run that does not fit is passed over for a shorter one). epoch_minutes: the guess for a kind
    of run with nothing recorded (4: a MiniLM epoch of 400 documents, bf16, one thread of two
    side by side, with its dev pass). Returns the summary lines.

    weights=True trains instead the runs whose models notebooks 05/06 load (weight_configs) that
    have no local folder, as those notebooks would one at a time: on a fresh clone, before the
    notebooks run. A recorded run trained again this way leaves its record as it is."""
    import concurrent.futures as cf
    import multiprocessing as mp

    if weights:
        todo = [c for c in weight_configs(profile) if RS.find_run(c, root) is None]
    else:
        planned = all_configs(profile, only=only)
        carried = RS.carry_over(planned, RS.load_exported(strict=False), root)
        if carried:  # recorded runs that are also runs of a changed config (e.g. a later min_epochs)
            RS.export_runs(carried)
            print(f"{len(carried)} recorded runs carried over to their new configs (runs.carries_over)", flush=True)
        todo = schedule(profile, missing(planned, root), root)
    grow = not weights and (only is None or "headline" in only)  # more seeds for PEMSCL vs ATL after the list
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    records = RS.load_exported(strict=False)
    deadline = time.time() + 60 * budget_minutes if budget_minutes else None
    lines: list[str] = []
    started: set[str] = set()
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        running: set = set()
        while True:
            while len(running) < workers:
                if not todo and not weights:  # the list is started: what the recorded runs now call for
                    todo = [c for c in after_the_list(profile, records, only, grow, root) if c.key() not in started]
                fits = [c for c in todo if not deadline
                        or time.time() + 60 * _expected_minutes(c, records, epoch_minutes, root) <= deadline]
                if not fits:
                    break
                todo.remove(fits[0])
                started.add(fits[0].key())
                running.add(pool.submit(_train_one, fits[0], threads, root))
            if not running:
                break
            done, running = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for f in done:
                lines.append(f.result())
                print(lines[-1], flush=True)
            records = RS.load_exported(strict=False)  # the finished runs pace the next estimates
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m pemscl.experiments",
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
    a = ap.parse_args(argv)
    only = [s for s in a.only.split(",") if s] or None
    profile = get_profile(a.profile)
    if a.seed_budget_hours is not None:  # a scheduling rule, not a config: run keys stay the same
        profile = dataclasses.replace(profile, seed_budget_hours=a.seed_budget_hours or None)
    if a.status:
        print("\n".join(progress_lines(in_progress(profile, only=only))))
        return 0
    if a.plan:
        records = RS.load_exported(strict=False)
        planned = all_configs(profile, only=only)
        keys = {c.key() for c in planned}
        planned += [c for k, c in longer_configs(profile, records).items() if k in keys]  # due now
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
        if profile.more_seeds:
            due = more_seeds(profile, records)
            budget = (f" and the profile's recorded training ({trained_hours(profile, records):.1f} h so far) is "
                      f"under {profile.seed_budget_hours:g} h" if profile.seed_budget_hours else "")
            print(f"then seeds {', '.join(map(str, profile.more_seeds))} for PEMSCL vs ATL, one at a time while its "
                  f"interval is wider than the paper's effect{budget}; due now: "
                  + (", ".join(f"{c.label} seed {c.seed}" for c in due) or "none"))
        return 0
    train_profile(profile, workers=a.workers, threads=a.threads, budget_minutes=a.budget_minutes,
                  epoch_minutes=a.epoch_minutes, only=only, weights=a.weights)
    return 0


if __name__ == "__main__":
    # run the package's module, not this __main__ copy: claims and tables import
    # pemscl.experiments, whose Profile class must be the one these objects are made of
    from pemscl.experiments import main as _main

    raise SystemExit(_main())

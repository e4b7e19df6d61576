"""The loss as configuration, without torch: :class:`LossSpec`, the loss registry and every
built-in preset (``loss_spec(name)``), so that configs, their keys, the tables and the report are
built where torch is not installed.

The torch code of the losses lives in :mod:`pemscl.losses`. A built-in kind (pemscl, atl, bce,
ncrl, afl, ssr-pu) is declared here with its params, their check and its presets; its function
(and SSR-PU's ``prepare`` hook) is attached when :mod:`pemscl.losses` is imported, which every
caller that computes a loss does (``compute_loss`` lives there). Until then :func:`get_loss` and
:func:`prepare_loss` of a built-in kind raise, naming that import; everything else here (building
and checking specs, presets, ``registered_losses``, user losses registered with their own
function) works without it. This module imports no package module, not even lazily: importing
pemscl.losses from here would close the circle losses -> lossspec -> losses, which
tests/test_imports.py forbids for function-level imports too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .registry import claim, lookup

if TYPE_CHECKING:
    import torch

# --------------------------------------------------------------------------- option values
NEG_COUNTS = ("all", "sampled")  # LossSpec.neg_count (gamma2 of EM under sampling, Eq. 12)
LONGTAIL_SCALES = ("paper", "anchor-share")  # LossSpec.longtail_scale (SCL Eq. 9, FAITHFULNESS #12)
AFL_POS_WEIGHTS = ("focal", "one-plus-focal")
SSR_NONNEG = ("max", "defit")
SSR_POS_WEIGHTS = ("none", "sqrt-odds")


# --------------------------------------------------------------------------- checks of the built-in params
def _check_afl_params(p: Mapping[str, Any]) -> None:
    g = p.get("gamma", 1.0)
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g < 0:
        raise ValueError(f"afl: the focal gamma must be a finite number >= 0, got {g!r}")
    if p.get("pos_weight", "focal") not in AFL_POS_WEIGHTS:
        raise ValueError(f"afl: pos_weight must be one of {AFL_POS_WEIGHTS}, got {p.get('pos_weight')!r}")


def _check_prior_value(name: str, v: Any, lo_open: bool = True) -> None:
    vals = v if isinstance(v, (list, tuple)) else [v]
    for x in vals:
        ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
        if not ok or not ((0 < x < 1) if lo_open else (0 <= x < 1)):
            raise ValueError(f"ssr-pu: {name} must be {'in (0, 1)' if lo_open else 'in [0, 1)'} "
                             f"(a number or a list of one per relation), got {v!r}")


def _check_ssr_params(p: Mapping[str, Any]) -> None:
    if p.get("prior") is not None:
        _check_prior_value("prior", p["prior"])
    if p.get("labeled_prior") is not None:
        _check_prior_value("labeled_prior", p["labeled_prior"], lo_open=False)
    s = p.get("prior_scale", 3.0)
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
        raise ValueError(f"ssr-pu: prior_scale must be a finite number > 0, got {s!r}")
    m = p.get("margin", 0.25)
    if isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m) or m < 0:
        raise ValueError(f"ssr-pu: margin must be a finite number >= 0, got {m!r}")
    if p.get("nonneg", "max") not in SSR_NONNEG:
        raise ValueError(f"ssr-pu: nonneg must be one of {SSR_NONNEG}, got {p.get('nonneg')!r}")
    if p.get("pos_weight", "none") not in SSR_POS_WEIGHTS:
        raise ValueError(f"ssr-pu: pos_weight must be one of {SSR_POS_WEIGHTS}, got {p.get('pos_weight')!r}")
    g = p.get("defit_gamma", 1.0)
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g < 0:
        raise ValueError(f"ssr-pu: defit_gamma must be a finite number >= 0, got {g!r}")


# --------------------------------------------------------------------------- loss specification
@dataclass
class LossSpec:
    """A loss as configuration, so ablations and released-code behaviours are configs, not edits.

    ``kind`` names a loss of the registry (:func:`register_loss`); the SCL term (scl_weight, tau,
    ...) and negative label sampling are generic and apply to every kind. Every default is the
    paper's behaviour; the released code's behaviours are the named alternatives."""

    kind: str = "pemscl"          # a registered loss: "pemscl" | "atl" | "bce" | "ncrl" | "afl" | "ssr-pu" | ...
    entropy: bool = True          # EM term, Eq. 6 (pemscl)
    gamma: str = "count"          # EM weights: "count" (1/|P|, 1/|N|) or "one"
    scl_weight: float = 0.1       # lambda of Eq. 11 (0 disables SCL); FAITHFULNESS #3 folds tau/tau_base in here
    tau: float = 0.2              # SCL temperature
    scl_variant: str = "paper"    # "paper" (Eq. 8) | "supcon" (FAITHFULNESS #1)
    na_anchors: bool = False      # FAITHFULNESS #2
    neg_sample_ratio: float | None = None   # Eq. 12-13 when set (< 1); applied to any kind
    neg_sample_per: str = "pair"  # "pair" (paper) | "batch" (FAITHFULNESS #6)
    em_batch_average: bool = False  # FAITHFULNESS #5
    ncrl_shift: float = 0.0       # NCRL margin shift
    # Batch reduction. "sum" follows the paper (Eq. 7 and 10 sum over the batch); "mean" is the
    # released code (FAITHFULNESS #4): L1 means over pairs and SCL over all pairs with non-anchors
    # as zeros ("mean_all"), so both terms are divided by the same N and the L1 : lambda L2 balance
    # is identical under either choice - only the overall scale differs (~N = 1,000-1,600 pairs for
    # 4 Re-DocRED documents). AdamW is invariant to a constant loss scale (up to eps), but grad-norm
    # clipping at 1.0 is not: with "sum" the clip fires on nearly every step, so each step's update
    # direction is normalised before Adam and batches with more pairs no longer weigh more; with
    # "mean" the clip rarely fires. Nothing here makes the sum unstable at lr 2e-5 (Adam absorbs the
    # scale), so the paper's sum is the default; "mean" reproduces the released code.
    reduction: str = "sum"
    # gamma2 of the EM term under negative sampling (FAITHFULNESS #5, Eq. 12): "all" = |N_{h,t}|,
    # every negative of the pair (Eq. 12 reuses Eq. 6's gamma2; the released NS code divides by
    # it too) | "sampled" = |N'_{h,t}|, only the negatives that enter the sum
    neg_count: str = "all"
    # SCL long-tail term, Eq. 9 (FAITHFULNESS #12): "paper" as written | "anchor-share" each
    # anchor's term times A / N, the batch's share of anchors (released code under mixed precision)
    longtail_scale: str = "paper"
    # hyper-parameters of the kind's own loss (names and defaults declared by register_loss);
    # string keys and JSON values, so the spec hashes and round-trips through JSON
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.params, Mapping):
            raise TypeError(f"LossSpec.params must be a dict, got {type(self.params).__name__}")
        self.params = dict(self.params)  # a copy: presets never share a mutable dict with their users
        bad = [k for k in self.params if not isinstance(k, str)]
        if bad:
            raise TypeError(f"LossSpec.params keys must be strings (JSON), got {bad}")
        # a registered loss's own check of its params (e.g. an SSR-PU prior outside (0, 1), a
        # negative focal gamma) runs here, so a bad value fails where the config is built - in
        # loss_spec(), TrainConfig.from_dict / the CLI - before any training starts
        entry = _LOSSES.get(self.kind)
        if entry is not None and entry.check is not None:
            entry.check({**entry.defaults, **self.params})


# --------------------------------------------------------------------------- registry
# A loss function maps (logits, labels) to the reduced L1 term and named parts for logging:
#   fn(logits, labels, *, spec, features, neg_mask, reduction) -> (l1, parts)
# logits / labels (N, 1+R) with column 0 = NA (see pemscl.losses' docstring); spec: the LossSpec, its
# params completed with the registered defaults; features: the pair features or group factors
# (zh, zt), or None; neg_mask: bool (N, 1+R) of the negatives that enter (Eq. 12), or None when
# not sampling; reduction: "sum" or "mean" over pairs. l1 is a 0-dim tensor, parts a dict of
# 0-dim tensors (not "l1" / "scl", which compute_loss fills in).
LossFn = Callable[..., "tuple[torch.Tensor, dict[str, torch.Tensor]]"]
RESERVED_PARTS = ("l1", "scl")


@dataclass(frozen=True)
class RegisteredLoss:
    name: str
    # the loss function; None only inside the registry, for a built-in kind whose function
    # pemscl.losses has not attached yet (get_loss never returns such an entry)
    fn: LossFn | None
    defaults: Mapping[str, Any]  # the params this loss accepts, with their default values
    # check(params) raises ValueError for bad values of the (default-completed) params; run when a
    # LossSpec of this kind is built and again in compute_loss
    check: Callable[[Mapping[str, Any]], None] | None = None
    # prepare(spec, train_labels) -> spec: fills params estimated from the training labels (see
    # prepare_loss); None for losses that need nothing from the training set
    prepare: Callable[..., "LossSpec"] | None = None


_LOSSES: dict[str, RegisteredLoss] = {}
LOSS_PRESETS: dict[str, LossSpec] = {}
_DEFAULT_PRESET = object()  # sentinel: "register the plain preset LossSpec(kind=name, no EM, no SCL)"


def register_loss(name: str, fn: LossFn | None = None, *, defaults: Mapping[str, Any] | None = None,
                  preset: LossSpec | None = _DEFAULT_PRESET, replace: bool = False,  # type: ignore[assignment]
                  check: Callable[[Mapping[str, Any]], None] | None = None,
                  prepare: Callable[..., LossSpec] | None = None):
    """Register ``fn`` as the loss of kind ``name``; usable directly or as a decorator::

        @register_loss("softmax-ce", defaults={"temperature": 1.0})
        def softmax_ce(logits, labels, *, spec, features, neg_mask, reduction):
            ...
            return l1, {}

    ``defaults``: the hyper-parameters the loss reads from ``spec.params`` and their defaults;
    any other key in spec.params is an error. ``preset``: also registered as loss_spec(name);
    left out, ``LossSpec(kind=name, entropy=False, scl_weight=0.0)`` (like the baselines: no
    SCL), None for no preset. ``replace``: overwrite an existing loss (and preset) of that name.
    ``check``: validates the params (raise ValueError), when a LossSpec of this kind is built.
    ``prepare``: ``prepare(spec, train_labels) -> spec``, see :func:`prepare_loss`.
    Returns ``fn`` (so the decorator leaves the function usable on its own)."""
    if fn is None:
        return lambda f: register_loss(name, f, defaults=defaults, preset=preset, replace=replace,
                                       check=check, prepare=prepare)
    if not callable(fn):
        raise TypeError(f"loss {name!r}: fn must be callable, got {type(fn).__name__}")
    _add(name, fn, defaults=defaults, preset=preset, replace=replace, check=check, prepare=prepare)
    return fn


def _add(name: str, fn: LossFn | None, *, defaults: Mapping[str, Any] | None, preset: LossSpec | None,
         replace: bool, check: Callable[[Mapping[str, Any]], None] | None,
         prepare: Callable[..., LossSpec] | None) -> None:
    """register_loss after its checks of the name and the function (fn None: a built-in kind
    whose function pemscl.losses attaches, see _builtin)."""
    claim(_LOSSES, name, what="loss", replace=replace)
    if preset is _DEFAULT_PRESET:
        preset = LossSpec(kind=name, entropy=False, scl_weight=0.0)
    if preset is not None:
        if preset.kind != name:
            raise ValueError(f"the preset of loss {name!r} has kind {preset.kind!r}")
        claim(LOSS_PRESETS, name, what="loss preset", replace=replace)
    if check is not None:
        check(dict(defaults or {}))  # the declared defaults must pass their own check
        if preset is not None:
            check({**(defaults or {}), **preset.params})
    _LOSSES[name] = RegisteredLoss(name, fn, dict(defaults or {}), check, prepare)
    if preset is not None:
        LOSS_PRESETS[name] = preset


def register_preset(name: str, spec: LossSpec, *, replace: bool = False) -> LossSpec:
    """Make ``loss_spec(name)`` return ``spec`` (a variant of a registered loss)."""
    lookup(_LOSSES, spec.kind, what="loss kind")  # a preset is a variant of a registered loss
    LOSS_PRESETS[claim(LOSS_PRESETS, name, what="loss preset", replace=replace)] = spec
    return spec


def unregister_loss(name: str) -> None:
    """Remove loss ``name`` and every preset of that kind (for notebooks and tests)."""
    lookup(_LOSSES, name, what="loss kind")
    del _LOSSES[name]
    for preset_name in [k for k, v in LOSS_PRESETS.items() if v.kind == name]:
        del LOSS_PRESETS[preset_name]


def registered_losses() -> tuple[str, ...]:
    """The registered loss kinds, sorted."""
    return tuple(sorted(_LOSSES))


def get_loss(kind: str) -> RegisteredLoss:
    if lookup(_LOSSES, kind, what="loss kind").fn is None:
        raise RuntimeError(f"loss {kind!r} is built in and its function is torch code in pemscl.losses, "
                           f"which is not imported yet: import pemscl.losses (compute_loss lives there)")
    return _LOSSES[kind]


def prepare_loss(spec: LossSpec, train_labels) -> LossSpec:
    """``spec`` with the params its loss estimates from the training set filled in (the same spec
    for losses without a ``prepare`` hook). ``train_labels``: the (N, 1+R) labels of all training
    pairs, or the training features' per-document "labels" arrays. SSR-PU fills ``labeled_prior``
    (pi_labeled per relation) unless it is set. Deterministic in the labels, so every rank of a
    distributed run and a resumed run get the same spec. Called once before training (by the
    training loop, on the full training split); a spec that was not prepared falls back to the
    loss's own default (SSR-PU: the labelled shares of each batch)."""
    entry = get_loss(spec.kind)
    return entry.prepare(spec, train_labels) if entry.prepare is not None else spec


def loss_spec(name: str = "pemscl", **overrides) -> LossSpec:
    """A preset from LOSS_PRESETS with fields overridden, e.g. loss_spec("pemscl", tau=2.0)."""
    return replace(lookup(LOSS_PRESETS, name, what="loss"), **overrides)


# --------------------------------------------------------------------------- built-in losses
# Declared here with their params, checks and presets, so that loss_spec(name) and the checks work
# without torch; pemscl.losses attaches each one's function (_attach) when it is imported.
_BUILTINS: set[str] = set()


def _builtin(name: str, *, defaults: Mapping[str, Any] | None = None,
             check: Callable[[Mapping[str, Any]], None] | None = None,
             preset: LossSpec | None = _DEFAULT_PRESET) -> None:  # type: ignore[assignment]
    _add(name, None, defaults=defaults, preset=preset, replace=False, check=check, prepare=None)
    _BUILTINS.add(name)


def _attach(kind: str, fn: LossFn | None = None, *, prepare: Callable[..., LossSpec] | None = None):
    """pemscl.losses: give the built-in ``kind`` its function (and ``prepare`` hook); usable as a
    decorator, returns ``fn``. An entry already replaced (register_loss(..., replace=True)) or
    removed (unregister_loss) before pemscl.losses was imported is left as the user made it."""
    if fn is None:
        return lambda f: _attach(kind, f, prepare=prepare)
    if kind not in _BUILTINS:
        raise ValueError(f"{kind!r} is not a built-in loss kind; built in: {sorted(_BUILTINS)}")
    entry = _LOSSES.get(kind)
    if entry is not None and entry.fn is None:
        _LOSSES[kind] = replace(entry, fn=fn, prepare=prepare)
    return fn


_builtin("pemscl", preset=LossSpec())  # Eq. 7 (or L_NA1 of Eq. 13 under sampling): PMT + EM
register_preset("pemscl-no-em", LossSpec(entropy=False))
register_preset("pemscl-no-scl", LossSpec(scl_weight=0.0))
register_preset("pemscl-no-em-no-scl", LossSpec(entropy=False, scl_weight=0.0))
register_preset("pemscl-ns", LossSpec(neg_sample_ratio=0.1))  # the paper's OOG / OGG ratio (Table 4)

_builtin("atl")
_builtin("bce")
_builtin("ncrl")

# AFL: the threshold-class adaptive focal loss; decision f_r > f_TH (the default decide, no tuned threshold)
AFL_DEFAULTS = {"gamma": 1.0,           # the focusing parameter (released default --gamma_pos 1.0)
                "pos_weight": "focal"}  # "focal" (paper, Eq. 9) | "one-plus-focal" (released code)
_builtin("afl", defaults=AFL_DEFAULTS, check=_check_afl_params)

# SSR-PU. Decision rule: the released evaluate() (isrank=1) predicts r when f_r > f_NA - the
# none-class score is the adaptive threshold the squared ranking loss is trained against - so SSR-PU
# uses the default decide() and, unlike BCE, needs no global threshold tuned on dev
# (train.needs_threshold stays BCE-only).
SSR_PU_DEFAULTS = {
    "prior": None,          # true prior pi: None -> prior_scale x pi_labeled; or a float / R floats in (0, 1)
    "prior_scale": 3.0,     # pi = prior_scale x pi_labeled (released --e: 3.0 incomplete labels, 1.0 fully supervised)
    "labeled_prior": None,  # pi_labeled per relation: None -> the training labels (prepare_loss), else each batch's
    "margin": 0.25,         # m of the squared ranking loss (released scripts --m 0.25)
    "nonneg": "max",        # "max" (nnPU risk, max(0, R-)) | "defit" (released: -gamma R- where R- < beta)
    "beta": 0.0,            # "defit" only: released --beta
    "defit_gamma": 1.0,     # "defit" only: released --gamma
    "pos_weight": "none",   # "none" | "sqrt-odds" (released: R+ x sqrt((1 - pi) / pi))
}
# "mean": the SSR-PU objective is a risk (expectations over pairs); "sum" scales it by N
_builtin("ssr-pu", defaults=SSR_PU_DEFAULTS, check=_check_ssr_params,
         preset=LossSpec(kind="ssr-pu", entropy=False, scl_weight=0.0, reduction="mean"))

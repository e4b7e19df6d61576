"""Losses for DocRE: PEMSCL (PMT + EM + SCL + negative label sampling) and the ATL / BCE / NCRL / AFL /
SSR-PU baselines, behind a registry so that a new loss is one function and one name.

Conventions shared by every loss here:

* ``logits`` (N, 1+R) and multi-hot ``labels`` (N, 1+R) (float, bool or uint8); column 0 is NA
  (1 iff the pair has no positive relation). The NA column is the threshold class, never a
  "relation": positives and negatives are read from columns 1..R only.
* ``reduction`` is "none" (shape (N,)), "mean" (over pairs, as the released code does,
  FAITHFULNESS #4) or "sum" (over pairs, as the paper writes Eq. 7 / 10).
* Inputs are never mutated. (The released code zeroes ``labels[:, 0]`` in place, which turns every
  pair into an SCL anchor in fp32 - FAITHFULNESS #2; that is reachable only as ``na_anchors=True``.)
* Everything is computed in float32 with autocast disabled, so bf16 / fp16 logits or features
  give finite losses and gradients; pairwise terms use logsigmoid / softplus of the margins
  m_r = f_r - f_NA instead of softmaxes over 1e30-masked logits.

Composition. A :class:`LossSpec` is a loss as configuration; :func:`compute_loss` (what the
training loop calls) runs the registered loss named by ``spec.kind`` for L1, then adds the generic
parts every kind shares: negative label sampling (Eq. 12-13, a ``neg_mask`` handed to the loss) and
``scl_weight`` x SCL (Eq. 8-11). The built-in kinds pemscl / atl / bce / ncrl are registered through
the same :func:`register_loss` as user losses; a loss's own hyper-parameters live in
``LossSpec.params`` (declared with defaults at registration). Presets (``loss_spec(name)``) come from
:func:`register_loss` / :func:`register_preset`. The spec, the registry and the built-in presets
live in :mod:`pemscl.lossspec` (no torch: configs and reports are built without it) and are
imported here; this module adds the torch code and attaches the built-in kinds' functions.
AFL (Tan et al., Findings of ACL 2022) and SSR-PU (Wang et al., EMNLP 2022) keep their released
code's departures from their papers as params (FAITHFULNESS.md, one section each); SSR-PU's class
priors come from the training labels through :func:`prepare_loss`.

Paper vs released code (FAITHFULNESS.md): every default is the paper; the released code's
behaviours are named options - scl_variant="supcon" (#1), na_anchors (#2), reduction="mean" (#4),
em_batch_average (#5), neg_sample_per="batch" (#6), longtail_scale="anchor-share" (#12);
neg_count="all" (#5 / Eq. 12) is both the paper's and the released code's gamma2 under sampling.

Paper: Guo, Kok, Bing, "Towards Integration of Discriminability and Robustness for
Document-Level Relation Extraction" (EACL 2023), Sections 3.3-3.5 and Appendix D.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import replace
from typing import Any, Iterator, Mapping, Sequence, Union

import torch
import torch.nn.functional as F

# the registry and the option values are part of this module's API (the torch-free half lives in pemscl.lossspec)
from .lossspec import (AFL_DEFAULTS, AFL_POS_WEIGHTS, LONGTAIL_SCALES, LOSS_PRESETS, NEG_COUNTS, RESERVED_PARTS,
                       SSR_NONNEG, SSR_POS_WEIGHTS, SSR_PU_DEFAULTS, LossFn, LossSpec, RegisteredLoss, _attach,
                       _check_afl_params, _LOSSES, get_loss, loss_spec, prepare_loss, register_loss, register_preset,
                       registered_losses, unregister_loss)

Features = Union[torch.Tensor, Sequence[torch.Tensor]]

REDUCTIONS = ("none", "mean", "sum")
_NORM_EPS = 1e-12  # same floor as F.normalize, so both Gram forms agree on near-zero vectors


# --------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _full_precision(device: torch.device) -> Iterator[None]:
    """Disable autocast: inside a bf16/fp16 autocast region matmuls would otherwise run in half
    precision again, and the loss sums thousands of terms."""
    try:
        ctx = torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # a device type autocast does not know
        ctx = contextlib.nullcontext()
    with ctx:
        yield


def _prep(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 logits (a new tensor when cast, never the caller's) and bool labels on their device."""
    if logits.dim() != 2 or labels.shape != logits.shape:
        raise ValueError(f"logits and labels must both be (N, 1+R); got {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    return logits.float(), labels.to(logits.device) > 0


def _entered_negatives(pos: torch.Tensor, neg_mask: torch.Tensor | None) -> torch.Tensor:
    """Negative relations (columns 1..R) that enter the loss: all of them, or those neg_mask keeps
    (Eq. 12: only the sampled subset N'_{h,t} of an NA pair's negatives). Positives always enter."""
    neg = ~pos
    if neg_mask is not None:
        if neg_mask.shape[1] != pos.shape[1] + 1:
            raise ValueError("neg_mask must be (N, 1+R) like labels")
        neg = neg & neg_mask[:, 1:].to(pos.device).bool()
    return neg


def _reduce(v: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return v
    if reduction == "sum":
        return v.sum()
    if reduction == "mean":
        # an empty batch gives 0 (a sum over nothing), not NaN
        return v.mean() if v.numel() else v.sum()
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_reduction(reduction: str, allowed: Sequence[str] = REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {tuple(allowed)}, got {reduction!r}")


# --------------------------------------------------------------------------- PMT + EM (Eq. 3-7, 12)
def pmt_em_terms(logits: torch.Tensor, labels: torch.Tensor, *, gamma: str = "count",
                 neg_mask: torch.Tensor | None = None, em_batch_average: bool = False,
                 neg_count: str = "all") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair PMT (Eq. 4) and EM (Eq. 6) terms, each of shape (N,). See :func:`pmt_loss`."""
    if gamma not in ("count", "one"):
        raise ValueError(f"gamma must be 'count' or 'one', got {gamma!r}")
    if neg_count not in NEG_COUNTS:
        raise ValueError(f"neg_count must be one of {NEG_COUNTS}, got {neg_count!r}")
    with _full_precision(logits.device):
        lg, lb = _prep(logits, labels)
        pos = lb[:, 1:]
        neg = _entered_negatives(pos, neg_mask)
        # Eq. 3 with margins: P^r(r) = sigma(m_r), P^eta(r) = sigma(-m_r), m_r = f_r - f_NA
        m = lg[:, 1:] - lg[:, :1]
        log_pr, log_peta = F.logsigmoid(m), F.logsigmoid(-m)
        # Eq. 4: softplus(f_NA - f_r) = -log sigma(m_r) on positives, softplus(f_r - f_NA) on negatives;
        # torch.where (not a product with a 0/1 mask) so an excluded term's value never reaches the sum
        zero = lg.new_zeros(())
        pmt = -torch.where(pos, log_pr, zero).sum(1) - torch.where(neg, log_peta, zero).sum(1)
        # Eq. 5: binary entropy of (P^r, P^eta), from the log-probabilities so it stays finite
        # (and exactly 0, not NaN) when a margin saturates at +-80 or beyond
        ent = -(log_pr.exp() * log_pr + log_peta.exp() * log_peta)
        h_pos = torch.where(pos, ent, zero).sum(1)
        h_neg = torch.where(neg, ent, zero).sum(1)
        if gamma == "one":
            w_pos = w_neg = torch.ones_like(h_pos)
        else:
            # Eq. 6 with gamma1 = |P_{h,t}|, gamma2 = |N_{h,t}| per pair; max(.,1) for NA pairs
            # (no positives) and all-positive pairs. Under sampling (Eq. 12, FAITHFULNESS #5)
            # "all" keeps gamma2 = |N_{h,t}|, every negative of the pair, as Eq. 12 literally
            # reuses Eq. 6's gamma2 and as the released NS code divides; "sampled" counts
            # |N'_{h,t}|, the entropies actually summed (a per-negative mean).
            n_neg = ~pos if neg_count == "all" else neg
            w_pos = 1.0 / pos.sum(1).clamp(min=1).float()
            w_neg = 1.0 / n_neg.sum(1).clamp(min=1).float()
            if em_batch_average:
                # FAITHFULNESS #5: the released code divides an (N,) entropy sum by (N, 1) counts;
                # broadcasting yields an N x N matrix whose mean weights every pair's entropy sum by
                # the batch average of 1/|P| (and of 1/|N|) instead of its own. The row-wise form
                # below has exactly that mean.
                w_pos = w_pos.mean().expand_as(w_pos)
                w_neg = w_neg.mean().expand_as(w_neg)
        em = w_pos * h_pos + w_neg * h_neg
    return pmt, em


def pmt_loss(logits: torch.Tensor, labels: torch.Tensor, *, entropy: bool = True, gamma: str = "count",
             neg_mask: torch.Tensor | None = None, em_batch_average: bool = False,
             neg_count: str = "all", reduction: str = "mean") -> torch.Tensor:
    """Pairwise moving-threshold loss (Eq. 4), plus entropy minimisation (Eq. 6) when ``entropy``.

    Each relation r in 1..R is compared with NA alone (Eq. 3), so positives are never ranked
    against each other. ``gamma``: "count" -> 1/|P|, 1/|N| per pair (Re-DocRED), "one" -> 1
    (DocRED, Table 5). ``neg_mask`` (bool (N, 1+R), from :func:`sample_negative_mask`) drops
    negatives where False from both the PMT and EM sums (Eq. 12); positives always enter.
    ``neg_count``: what gamma2 counts under sampling - "all" negatives of the pair (Eq. 12 as
    written, and the released NS code) or only the "sampled" ones that enter.
    ``em_batch_average``: the released code's broadcasting of the EM weights (FAITHFULNESS #5).
    """
    _check_reduction(reduction)
    pmt, em = pmt_em_terms(logits, labels, gamma=gamma, neg_mask=neg_mask,
                           em_batch_average=em_batch_average, neg_count=neg_count)
    return _reduce(pmt + em if entropy else pmt, reduction)


# --------------------------------------------------------------------------- negative label sampling (Eq. 12)
def sample_negative_mask(labels: torch.Tensor, ratio: float, generator: torch.Generator | None = None,
                         per: str = "pair") -> torch.Tensor:
    """Which negative labels enter the loss (bool (N, 1+R)), Section 3.5.

    For every NA pair (labels[:, 0] == 1) each relation column is kept independently with
    probability ``ratio`` (a uniform random subset N'_{h,t}); pairs with a positive relation keep
    every column, so Eq. 13 leaves their L1 unchanged. Column 0 is always True.
    ``per="batch"`` reproduces the released ``PMTEMloss_NS`` (FAITHFULNESS #6): one (1+R)-wide
    keep-mask drawn per call and shared by all NA pairs of the batch.
    """
    if per not in ("pair", "batch"):
        raise ValueError(f"per must be 'pair' or 'batch', got {per!r}")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    n, c = labels.shape
    # draw where the generator lives (train.py passes a CPU generator with CUDA labels)
    dev = generator.device if generator is not None else labels.device
    shape = (n, c) if per == "pair" else (1, c)
    keep = (torch.rand(shape, generator=generator, device=dev) < ratio).to(labels.device).expand(n, c)
    na = (labels[:, 0] > 0)[:, None]
    mask = keep | ~na
    mask[:, 0] = True  # mask is a fresh tensor (the | allocates), so this never writes into keep
    return mask


# --------------------------------------------------------------------------- pair features and Gram matrix
def group_outer(zh: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
    """x = concat_k vec(z_h^k (x) z_t^k) (Eq. 14), materialised: (N, K, b) x 2 -> (N, K*b*b).

    Index k*b*b + i*b + j holds z_h^k[i] * z_t^k[j]. Kept in the inputs' dtype: the classifier
    (Eq. 15) runs it under autocast."""
    if zh.shape != zt.shape or zh.dim() != 3:
        raise ValueError(f"zh and zt must both be (N, K, b); got {tuple(zh.shape)} and {tuple(zt.shape)}")
    n, k, b = zh.shape
    return (zh.unsqueeze(3) * zt.unsqueeze(2)).reshape(n, k * b * b)


def _as_factors(features: Features):
    if isinstance(features, torch.Tensor):
        return features.float()
    zh, zt = (f.float() for f in features)
    if zh.shape != zt.shape or zh.dim() != 3:
        raise ValueError(f"group factors must both be (N, K, b); got {tuple(zh.shape)} and {tuple(zt.shape)}")
    return zh, zt


def _raw_gram(features: Features, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Unnormalised Gram matrix x_i . x_j in float32: (N, N), or (len(rows), N) for the given rows."""
    f = _as_factors(features)
    if isinstance(f, torch.Tensor):
        return (f if rows is None else f[rows]) @ f.T
    zh, zt = f
    zh_r, zt_r = (zh, zt) if rows is None else (zh[rows], zt[rows])
    # vec(a (x) b) . vec(c (x) d) = (a . c)(b . d), so per group the Gram of the outer products is
    # the elementwise product of the two factor Grams: O(K N^2 b) instead of O(N^2 K b^2), and
    # the (N, K b^2) vectors are never built. One batched matmul per factor over the K groups.
    gh = torch.bmm(zh_r.transpose(0, 1), zh.permute(1, 2, 0))  # (K, R, N)
    gt = torch.bmm(zt_r.transpose(0, 1), zt.permute(1, 2, 0))
    return (gh * gt).sum(0)


def _sq_norms(features: Features) -> torch.Tensor:
    """|x_i|^2 (N,) without the Gram matrix: for group factors sum_k |z_h^k|^2 |z_t^k|^2."""
    f = _as_factors(features)
    if isinstance(f, torch.Tensor):
        return f.pow(2).sum(-1)
    zh, zt = f
    return (zh.pow(2).sum(-1) * zt.pow(2).sum(-1)).sum(-1)


def pair_gram(features: Features, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Cosine similarities x_i . x_j / (|x_i| |x_j|), float32: (N, N), or (len(rows), N) when
    ``rows`` (indices) picks the anchors, which is all SCL needs (B_P is a few % of the pairs).

    ``features`` is the pair embedding (N, D), or the group factors ``(zh, zt)`` each (N, K, b)
    standing for x = group_outer(zh, zt) (Eq. 14, FAITHFULNESS #7), whose Gram matrix is computed
    without materialising x."""
    dev = features.device if isinstance(features, torch.Tensor) else features[0].device
    with _full_precision(dev):
        g = _raw_gram(features, rows)
        # |x_i| floored like F.normalize (and so that sqrt's gradient stays finite)
        inv = 1.0 / _sq_norms(features).clamp(min=_NORM_EPS ** 2).sqrt().clamp(min=_NORM_EPS)
        inv_r = inv if rows is None else inv[rows]
        return g * inv_r[:, None] * inv[None, :]


# --------------------------------------------------------------------------- SCL (Eq. 8-10)
def scl_loss(features: Features, labels: torch.Tensor, *, tau: float, variant: str = "paper",
             na_anchors: bool = False, longtail_scale: str = "paper", reduction: str = "mean") -> torch.Tensor:
    """Supervised contrastive loss for multi-label, long-tailed pairs (Eq. 8-10).

    Anchors are the pairs with >= 1 positive relation (B_P of Eq. 10). The positives S_i of anchor
    i are the other pairs sharing >= 1 positive relation (NA column excluded); the denominator runs
    over every other pair of the batch, NA pairs included. Anchor with S_i non-empty:
    ``variant="paper"`` (Eq. 8)  -log( mean_{p in S_i} exp(s_ip/tau) / sum_{d != i} exp(s_id/tau) );
    ``variant="supcon"`` (FAITHFULNESS #1) -mean_{p in S_i} log( exp(s_ip/tau) / sum_{d != i} exp(s_id/tau) ).
    Anchor with S_i empty (long tail): Eq. 9, log sum_{d != i} exp(s_id/tau).
    ``na_anchors`` (FAITHFULNESS #2, released fp32 behaviour): NA pairs are anchors too and get
    the Eq. 9 term (they are never positives of each other).
    ``longtail_scale`` (FAITHFULNESS #12): "paper" keeps Eq. 9 as is; "anchor-share" multiplies
    each Eq. 9 term by A / N, the batch's share of anchors, as the released code does under
    mixed precision (A = N, a factor of 1, with ``na_anchors``).
    ``reduction``: "none" (N,) with 0 for non-anchors, "sum" over anchors (Eq. 10), "mean" over
    anchors, "mean_all" over all N pairs with non-anchors as zeros (released code, FAITHFULNESS #4).
    A batch with < 2 pairs or no anchor gives 0, still attached to the graph.

    Only the anchors' rows of the similarity matrix are computed (A x N instead of N x N): with
    ~7% of Re-DocRED pairs positive this is what keeps SCL a small share of a training step.
    """
    if variant not in ("paper", "supcon"):
        raise ValueError(f"variant must be 'paper' or 'supcon', got {variant!r}")
    if longtail_scale not in LONGTAIL_SCALES:
        raise ValueError(f"longtail_scale must be one of {LONGTAIL_SCALES}, got {longtail_scale!r}")
    _check_reduction(reduction, REDUCTIONS + ("mean_all",))
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    first = features if isinstance(features, torch.Tensor) else features[0]
    n = first.shape[0]
    if labels.shape[0] != n:
        raise ValueError(f"{n} feature rows but {labels.shape[0]} label rows")
    with _full_precision(first.device):
        rel = (labels.to(first.device) > 0)[:, 1:]
        has_pos = rel.any(1)
        anchors = torch.ones_like(has_pos) if na_anchors else has_pos
        idx = anchors.nonzero().squeeze(1)
        val = torch.zeros(n, dtype=torch.float32, device=first.device)
        if n < 2 or idx.numel() == 0:
            # no d != i (Eq. 8/9 undefined) or no anchor: 0, but keep the graph (and a grad of 0)
            val = val + 0.0 * (first.float().sum() if isinstance(features, torch.Tensor)
                               else sum(f.float().sum() for f in features))
        else:
            s = pair_gram(features, rows=idx) / tau  # (A, N)
            self_ = torch.zeros_like(s, dtype=torch.bool)
            self_[torch.arange(idx.numel(), device=s.device), idx] = True
            relf = rel.float()
            share = (relf[idx] @ relf.T > 0) & ~self_  # S_i: share >= 1 positive relation
            n_pos = share.sum(1)
            # log of Eq. 9 / the denominator of Eq. 8: logsumexp over d != i (never empty, n >= 2)
            log_den = torch.logsumexp(s.masked_fill(self_, float("-inf")), 1)
            has_partner = n_pos > 0
            if variant == "paper":
                # log mean_p exp(s_ip) = logsumexp_{p in S_i} s_ip - log |S_i|; rows without partners
                # are set to 0 before the logsumexp so no all -inf row (NaN gradient) is formed
                pos_s = torch.where(share, s, float("-inf"))
                pos_s = torch.where(has_partner[:, None], pos_s, 0.0)
                log_num = torch.logsumexp(pos_s, 1) - n_pos.clamp(min=1).float().log()
                term = log_den - log_num
            else:
                mean_pos_s = torch.where(share, s, 0.0).sum(1) / n_pos.clamp(min=1)
                term = log_den - mean_pos_s
            long_tail = log_den
            if longtail_scale == "anchor-share":
                # FAITHFULNESS #12: the released code adds an (N, 1) column of Eq. 9 values to an
                # (N,) row of Eq. 8 values and masks the columns by anchor, so the mean over the
                # N x N result weights each Eq. 9 value by A / N^2 instead of 1 / N
                long_tail = log_den * (idx.numel() / n)
            # Eq. 10: Eq. 8 if |S| > 0 else Eq. 9; non-anchors stay 0
            val = val.index_put((idx,), torch.where(has_partner, term, long_tail))
    if reduction == "mean":
        return val.sum() / anchors.sum().clamp(min=1)
    if reduction == "mean_all":
        return _reduce(val, "mean")
    return _reduce(val, reduction)


# --------------------------------------------------------------------------- baselines
def atl_loss(logits: torch.Tensor, labels: torch.Tensor, *, neg_mask: torch.Tensor | None = None,
             reduction: str = "mean") -> torch.Tensor:
    """ATLOP's adaptive-thresholding loss (Zhou et al., 2021); the NA column is the TH class.

    L1 = sum_{r in P} -log softmax_{P u {TH}}(f)_r ; L2 = -log softmax_{N u {TH}}(f)_TH.
    ``neg_mask`` drops negatives from L2's softmax (negative label sampling applied to ATL, for
    the paper's Figure 2)."""
    _check_reduction(reduction)
    with _full_precision(logits.device):
        lg, lb = _prep(logits, labels)
        pos = lb.clone()
        pos[:, 0] = False  # NA is the threshold, never a positive (on our copy, not the caller's labels)
        th = torch.zeros_like(pos)
        th[:, 0] = True
        neg = torch.cat([th[:, :1], _entered_negatives(pos[:, 1:], neg_mask)], 1)  # N' u {TH}
        # masked logsumexp: the TH column is in both sets, so no row is all -inf
        lse_pos = torch.logsumexp(lg.masked_fill(~(pos | th), float("-inf")), 1)
        lse_neg = torch.logsumexp(lg.masked_fill(~neg, float("-inf")), 1)
        l1 = pos.sum(1) * lse_pos - torch.where(pos, lg, 0.0).sum(1)  # sum_P (lse - f_r)
        l2 = lse_neg - lg[:, 0]
    return _reduce(l1 + l2, reduction)


def bce_loss(logits: torch.Tensor, labels: torch.Tensor, *, neg_mask: torch.Tensor | None = None,
             reduction: str = "mean") -> torch.Tensor:
    """Independent sigmoid BCE per relation column 1..R, summed per pair; column 0 is unused
    (prediction uses a fixed threshold tuned on dev, model side). ``neg_mask`` drops negatives."""
    _check_reduction(reduction)
    with _full_precision(logits.device):
        lg, lb = _prep(logits, labels)
        pos = lb[:, 1:]
        z = lg[:, 1:]
        # -log sigma(z) on positives, -log sigma(-z) on negatives
        v = torch.where(pos, -F.logsigmoid(z), 0.0) + torch.where(_entered_negatives(pos, neg_mask),
                                                                    -F.logsigmoid(-z), 0.0)
    return _reduce(v.sum(1), reduction)


def _ncrl_ce(x: torch.Tensor, y: torch.Tensor, shift: float, include: torch.Tensor | None = None) -> torch.Tensor:
    """NCRL's shifted binary CE on margins x, elementwise: -log sigma(x) where y, else
    -log min(1 - sigma(x) + shift, 1) (where ``include``)."""
    pos_term = -F.logsigmoid(x)
    if shift > 0:
        # log(min(sigma(-x) + shift, 1)) = min(logaddexp(log sigma(-x), log shift), 0): exact, never
        # log 0 (the argument is >= shift), and no eps clamp needed
        neg_term = -torch.clamp(torch.logaddexp(F.logsigmoid(-x), x.new_tensor(math.log(shift))), max=0.0)
    else:
        neg_term = -F.logsigmoid(-x)
    neg = ~y if include is None else (~y & include)
    return torch.where(y, pos_term, 0.0) + torch.where(neg, neg_term, 0.0)


def ncrl_loss(logits: torch.Tensor, labels: torch.Tensor, *, shift: float = 0.0, regulariser: bool = True,
              neg_mask: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """None-class ranking loss (Zhou and Lee, IJCAI 2022), on margins m_r = f_r - f_NA.

    Positives: -log sigma(m_r). Negatives: -log p with p = min(1 - sigma(m_r) + shift, 1), the
    probability of the correct (NA-wins) side raised by the margin shift. This equals the
    "probability shifting" form -log(1 - p_neg), p_neg = max(sigma(m_r) - shift, 0), since
    1 - max(q - s, 0) = min(1 - q + s, 1). Regulariser: the same CE on the NA margin
    f_NA - mean_r f_r against the NA label (as NCRL's code, the shift applies to its negative side
    too; with shift 0 it is a plain BCE). Differences from NCRL's code: exact logsigmoid instead of
    clamping probabilities at 1e-8 (which caps each term at 18.4 and zeroes its gradient beyond),
    and ``neg_mask`` (negative label sampling) drops negatives. With shift=0 and no regulariser it
    equals ``pmt_loss(entropy=False)``.
    """
    _check_reduction(reduction)
    if shift < 0:
        raise ValueError(f"shift must be >= 0, got {shift}")
    with _full_precision(logits.device):
        lg, lb = _prep(logits, labels)
        pos = lb[:, 1:]
        include = _entered_negatives(pos, neg_mask) if neg_mask is not None else None
        v = _ncrl_ce(lg[:, 1:] - lg[:, :1], pos, shift, include).sum(1)
        if regulariser:
            v = v + _ncrl_ce(lg[:, 0] - lg[:, 1:].mean(1), lb[:, 0], shift)
    return _reduce(v, reduction)


# --------------------------------------------------------------------------- AFL (Tan et al., 2022)
def afl_loss(logits: torch.Tensor, labels: torch.Tensor, *, gamma: float = 1.0, pos_weight: str = "focal",
             neg_mask: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Adaptive focal loss (Tan, He, Bing, Ng, Findings of ACL 2022, Section 3.3, "Adaptive Focal
    Loss"); column 0 is the threshold class TH.

    Positives, each ranked against TH alone (a two-way softmax):
        P(r) = exp(f_r) / (exp(f_r) + exp(f_TH)) = sigma(f_r - f_TH),
        L1 = -sum_{r in P} (1 - P(r))^gamma log P(r).
    TH against the negatives, as ATLOP's L2:
        L2 = -log( exp(f_TH) / sum_{r' in N u {TH}} exp(f_r') ),  L_AFL = L1 + L2.
    ``pos_weight="one-plus-focal"``: the released code's weight (1 + (1 - P(r))^gamma) on each
    positive's log P(r) (FAITHFULNESS, AFL #1). ``neg_mask`` drops negatives from L2's softmax
    (negative label sampling). Decision rule: f_r > f_TH, the default :func:`pemscl.model.decide`.
    """
    _check_reduction(reduction)
    _check_afl_params({"gamma": gamma, "pos_weight": pos_weight})
    with _full_precision(logits.device):
        lg, lb = _prep(logits, labels)
        pos = lb[:, 1:]
        m = lg[:, 1:] - lg[:, :1]
        log_p = F.logsigmoid(m)                               # log P(r)
        focal = torch.exp(gamma * F.logsigmoid(-m))           # (1 - P(r))^gamma, finite for any margin
        if pos_weight == "one-plus-focal":
            focal = 1.0 + focal
        l1 = -torch.where(pos, focal * log_p, 0.0).sum(1)
        keep = torch.cat([torch.ones_like(pos[:, :1]), _entered_negatives(pos, neg_mask)], 1)  # {TH} u N'
        l2 = torch.logsumexp(lg.masked_fill(~keep, float("-inf")), 1) - lg[:, 0]
    return _reduce(l1 + l2, reduction)


# --------------------------------------------------------------------------- SSR-PU (Wang et al., 2022)
def labeled_priors(labels: torch.Tensor | Sequence[Any]) -> list[float]:
    """pi_labeled per relation 1..R: the share of entity pairs labelled with r in ``labels``
    ((N, 1+R), or a list of per-document (n_pairs, 1+R) arrays, e.g. the training features'
    "labels"). This is SSR-PU's estimate from the training labels (released prepro.py:
    relation counts over all training pairs)."""
    if not isinstance(labels, torch.Tensor):
        labels = torch.cat([torch.as_tensor(x) for x in labels]) if len(labels) else torch.zeros(0, 1)
    lb = labels > 0
    return (lb[:, 1:].double().sum(0) / max(lb.shape[0], 1)).tolist()


def ssr_square_loss(z: torch.Tensor, y: float, margin: float) -> torch.Tensor:
    """The squared ranking loss of SSR-PU, elementwise: l(z, y) = (y z - m)^2 / 4 on the shifted
    score z = f_r - f_NA (the none-class score as adaptive threshold), y = +1 or -1."""
    return 0.25 * (y * z - margin) ** 2


def ssr_pu_risks(logits: torch.Tensor, labels: torch.Tensor, *, prior: torch.Tensor, labeled_prior: torch.Tensor,
                 margin: float = 0.25, nonneg: str = "max", beta: float = 0.0, defit_gamma: float = 1.0,
                 pos_weight: str = "none", neg_mask: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-relation SSR-PU risks, each (R,): (risk, positive part, negative part before max).

    For relation r (one binary PU problem per relation, Wang et al. EMNLP 2022, Section 3), P_r the
    pairs labelled r, U_r the other pairs (unlabelled for r), l the squared ranking loss
    (:func:`ssr_square_loss`) of z = f_r - f_NA, pi the true prior of r and pi_L its labelled prior:
        pi_U = (pi - pi_L) / (1 - pi_L)      (prior of r among the unlabelled pairs: the prior shift)
        R+ = pi E_P[l(z, +1)]
        R- = (1 - pi) / (1 - pi_U) E_U[l(z, -1)] - pi_U (1 - pi) / (1 - pi_U) E_P[l(z, -1)]
        risk = R+ + max(0, R-)               (non-negative PU risk, nnPU of Kiryo et al. 2017)
    Since 1 - pi_U = (1 - pi) / (1 - pi_L), the weights of R- are (1 - pi_L) and (pi - pi_L): that
    form is used, which stays finite at pi = 1. Empty P_r / U_r give expectations of 0.
    ``nonneg="defit"`` (released code, FAITHFULNESS SSR-PU #2): where R- < beta the risk is
    -defit_gamma * R- (Kiryo's gradient-ascent step on the negative part; R+ dropped), else R+ + R-.
    ``pos_weight="sqrt-odds"`` (released code, SSR-PU #3): R+ times sqrt((1 - pi) / pi).
    ``neg_mask`` (negative label sampling) drops sampled-out pairs from U_r; positives always enter.
    """
    with _full_precision(logits.device):
        lg, lb = _prep(logits, labels)
        pos = lb[:, 1:]
        unl = _entered_negatives(pos, neg_mask)
        z = lg[:, 1:] - lg[:, :1]
        pi = prior.to(lg.device, torch.float32)
        pi_l = labeled_prior.to(lg.device, torch.float32)

        def mean_over(mask, v):  # E over the pairs of mask, per relation column; 0 when empty
            return torch.where(mask, v, 0.0).sum(0) / mask.sum(0).clamp(min=1)

        e_p_plus = mean_over(pos, ssr_square_loss(z, 1.0, margin))
        e_p_minus = mean_over(pos, ssr_square_loss(z, -1.0, margin))
        e_u_minus = mean_over(unl, ssr_square_loss(z, -1.0, margin))
        r_pos = pi * e_p_plus
        if pos_weight == "sqrt-odds":
            w = torch.where(pi > 0, ((1 - pi) / pi.clamp(min=1e-12)).sqrt(), torch.zeros_like(pi))
            r_pos = r_pos * w
        r_neg = (1 - pi_l) * e_u_minus - (pi - pi_l) * e_p_minus
        if nonneg == "max":
            risk = r_pos + r_neg.clamp(min=0)
        else:
            risk = torch.where(r_neg < beta, -defit_gamma * r_neg, r_pos + r_neg)
    return risk, r_pos, r_neg


def _per_relation(name: str, v: Any, r: int) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.float32).reshape(-1)
    if t.numel() == 1:
        return t.expand(r).clone()
    if t.numel() != r:
        raise ValueError(f"ssr-pu: {name} has {t.numel()} values for {r} relations")
    return t


# --------------------------------------------------------------------------- built-in losses
# their params, checks and presets are declared in pemscl.lossspec; here each gets its function
@_attach("pemscl")
def _pemscl_l1(logits, labels, *, spec, features, neg_mask, reduction):
    """Eq. 7 (or L_NA1 of Eq. 13 under sampling): PMT + EM, parts "pmt" and "em"."""
    pmt, em = pmt_em_terms(logits, labels, gamma=spec.gamma, neg_mask=neg_mask,
                           em_batch_average=spec.em_batch_average, neg_count=spec.neg_count)
    parts = {"pmt": _reduce(pmt, reduction)}
    l1 = parts["pmt"]
    if spec.entropy:
        parts["em"] = _reduce(em, reduction)
        l1 = l1 + parts["em"]
    return l1, parts


@_attach("atl")
def _atl_l1(logits, labels, *, spec, features, neg_mask, reduction):
    return atl_loss(logits, labels, neg_mask=neg_mask, reduction=reduction), {}


@_attach("bce")
def _bce_l1(logits, labels, *, spec, features, neg_mask, reduction):
    return bce_loss(logits, labels, neg_mask=neg_mask, reduction=reduction), {}


@_attach("ncrl")
def _ncrl_l1(logits, labels, *, spec, features, neg_mask, reduction):
    return ncrl_loss(logits, labels, shift=spec.ncrl_shift, neg_mask=neg_mask, reduction=reduction), {}


@_attach("afl")
def _afl_l1(logits, labels, *, spec, features, neg_mask, reduction):
    p = spec.params
    return afl_loss(logits, labels, gamma=p["gamma"], pos_weight=p["pos_weight"], neg_mask=neg_mask,
                    reduction=reduction), {}


def _prepare_ssr(spec: LossSpec, train_labels) -> LossSpec:
    if spec.params.get("labeled_prior") is not None:
        return spec
    return replace(spec, params={**spec.params, "labeled_prior": labeled_priors(train_labels)})


@_attach("ssr-pu", prepare=_prepare_ssr)
def _ssr_pu_l1(logits, labels, *, spec, features, neg_mask, reduction):
    """Sum over relations of the SSR-PU risk (:func:`ssr_pu_risks`); parts "pu_pos" (sum of R+)
    and "pu_neg" (sum of R-, before the non-negative correction)."""
    p = spec.params
    r = logits.shape[1] - 1
    pl = p["labeled_prior"] if p["labeled_prior"] is not None else labeled_priors(labels)
    pi_l = _per_relation("labeled_prior", pl, r)
    pi = (p["prior_scale"] * pi_l).clamp(max=1.0) if p["prior"] is None else _per_relation("prior", p["prior"], r)
    risk, r_pos, r_neg = ssr_pu_risks(logits, labels, prior=pi, labeled_prior=pi_l, margin=p["margin"],
                                      nonneg=p["nonneg"], beta=p["beta"], defit_gamma=p["defit_gamma"],
                                      pos_weight=p["pos_weight"], neg_mask=neg_mask)
    scale = float(logits.shape[0]) if reduction == "sum" else 1.0
    return risk.sum() * scale, {"pu_pos": r_pos.sum() * scale, "pu_neg": r_neg.sum() * scale}


# --------------------------------------------------------------------------- composition
def _check_spec(spec: LossSpec) -> RegisteredLoss:
    """The registered loss of spec.kind, after checking the generic fields and params."""
    entry = get_loss(spec.kind)
    if spec.reduction not in ("sum", "mean"):
        raise ValueError(f"LossSpec.reduction must be 'sum' or 'mean', got {spec.reduction!r}")
    if spec.neg_count not in NEG_COUNTS:
        raise ValueError(f"LossSpec.neg_count must be one of {NEG_COUNTS}, got {spec.neg_count!r}")
    if spec.longtail_scale not in LONGTAIL_SCALES:
        raise ValueError(f"LossSpec.longtail_scale must be one of {LONGTAIL_SCALES}, got {spec.longtail_scale!r}")
    unknown = sorted(set(spec.params) - set(entry.defaults))
    if unknown:
        raise ValueError(f"loss {spec.kind!r} has no params {unknown}; it accepts {sorted(entry.defaults)}")
    if entry.check is not None:
        entry.check({**entry.defaults, **spec.params})
    return entry


def _check_output(kind: str, l1, parts) -> None:
    if not (isinstance(l1, torch.Tensor) and l1.dim() == 0):
        raise ValueError(f"loss {kind!r} must return a 0-dim tensor as L1 (reduced as asked), got "
                         f"{tuple(l1.shape) if isinstance(l1, torch.Tensor) else type(l1).__name__}")
    if not isinstance(parts, Mapping):
        raise ValueError(f"loss {kind!r} must return (l1, parts) with parts a dict, got {type(parts).__name__}")
    clash = sorted(set(parts) & set(RESERVED_PARTS))
    if clash:
        raise ValueError(f"loss {kind!r} returned reserved part names {clash}")
    bad = sorted(k for k, v in parts.items() if torch.as_tensor(v).dim() != 0)
    if bad:
        raise ValueError(f"loss {kind!r}: parts {bad} are not scalars (reduce them as asked)")


def compute_loss(spec: LossSpec, logits: torch.Tensor, labels: torch.Tensor, features: Features | None = None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of ``spec`` (Eq. 11, or Eq. 13 with negative sampling) and its parts for logging.

    Parts: "l1" (the registered loss of spec.kind: Eq. 7 / L_NA1 for pemscl, or the baseline's),
    the kind's own parts ("pmt" and "em" for pemscl), "scl" (L2, before lambda) when
    scl_weight > 0. ``features`` (the pair embedding, or the group factors (zh, zt)) is required
    when scl_weight > 0. ``generator`` drives the sampling.
    """
    entry = _check_spec(spec)
    red = spec.reduction
    neg_mask = None
    if spec.neg_sample_ratio is not None and spec.neg_sample_ratio < 1:
        neg_mask = sample_negative_mask(labels, spec.neg_sample_ratio, generator, per=spec.neg_sample_per)
    full = replace(spec, params={**entry.defaults, **spec.params}) if entry.defaults else spec
    l1, own = entry.fn(logits, labels, spec=full, features=features, neg_mask=neg_mask, reduction=red)
    _check_output(spec.kind, l1, own)
    parts: dict[str, torch.Tensor] = {**own, "l1": l1}
    total = l1
    if spec.scl_weight:
        if features is None:
            raise ValueError("scl_weight > 0 needs the pair features (or group factors (zh, zt))")
        # Eq. 13: L2 is unchanged by negative sampling (it works on embeddings, not labels)
        l2 = scl_loss(features, labels, tau=spec.tau, variant=spec.scl_variant, na_anchors=spec.na_anchors,
                      longtail_scale=spec.longtail_scale, reduction="sum" if red == "sum" else "mean_all")
        parts["scl"] = l2
        total = total + spec.scl_weight * l2
    # one device sync for all parts instead of one per float()
    values = torch.stack([torch.as_tensor(v).detach().float().to(l1.device) for v in parts.values()]).tolist()
    return total, dict(zip(parts, values))

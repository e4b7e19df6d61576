"""Losses against values worked out by hand (math module, one scalar at a time), plus the
properties the training code relies on: reductions, options from FAITHFULNESS.md, the factorised
Gram matrix, sampling statistics, half-precision robustness, and never mutating inputs."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pemscl.losses import (LOSS_PRESETS, LossSpec, atl_loss, bce_loss, compute_loss, group_outer, loss_spec,
                           ncrl_loss, pair_gram, pmt_em_terms, pmt_loss, sample_negative_mask, scl_loss)


# --------------------------------------------------------------------------- scalar references
def sp(x):  # softplus
    return math.log1p(math.exp(x))


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def H(m):  # binary entropy of (sigma(m), sigma(-m)), Eq. 5
    p, q = sig(m), sig(-m)
    return -(p * math.log(p) + q * math.log(q))


# three pairs, R = 3: A has P={1}, N={2,3}; B is NA; C has every relation positive
F_A = [0.5, 2.0, -1.0, 0.0]
F_B = [1.0, 0.3, -0.7, 1.5]
F_C = [-0.2, 1.0, 0.4, -0.5]
LOGITS = torch.tensor([F_A, F_B, F_C])
LABELS = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]], dtype=torch.float)


def margins(f):
    return [f[r] - f[0] for r in range(1, len(f))]


def pmt_hand(f, pos, keep=None):
    """Eq. 4 for one pair; keep = negative relation indices that enter (default all)."""
    m = margins(f)
    negs = [r for r in range(len(m)) if r not in pos and (keep is None or r in keep)]
    return sum(sp(-m[r]) for r in pos) + sum(sp(m[r]) for r in negs), negs


def em_hand(f, pos, negs, gamma="count"):
    m = margins(f)
    g1 = max(len(pos), 1) if gamma == "count" else 1
    g2 = max(len(negs), 1) if gamma == "count" else 1
    return sum(H(m[r]) for r in pos) / g1 + sum(H(m[r]) for r in negs) / g2


def hand_rows(gamma="count", entropy=True):
    out = []
    for f, pos in ((F_A, [0]), (F_B, []), (F_C, [0, 1, 2])):
        p, negs = pmt_hand(f, pos)
        out.append(p + (em_hand(f, pos, negs, gamma) if entropy else 0.0))
    return out


# --------------------------------------------------------------------------- PMT + EM
def test_pmt_em_hand_values_and_reductions():
    rows = hand_rows()
    # spell out pair A once, fully by hand, to pin the reference helpers themselves
    mA = [2.0 - 0.5, -1.0 - 0.5, 0.0 - 0.5]
    a = (math.log(1 + math.exp(-mA[0])) + math.log(1 + math.exp(mA[1])) + math.log(1 + math.exp(mA[2]))
         + H(mA[0]) / 1 + (H(mA[1]) + H(mA[2])) / 2)
    assert rows[0] == pytest.approx(a, abs=1e-12)
    none = pmt_loss(LOGITS, LABELS, reduction="none")
    assert none.shape == (3,)
    assert none.tolist() == pytest.approx(rows, abs=1e-5)
    assert float(pmt_loss(LOGITS, LABELS, reduction="sum")) == pytest.approx(sum(rows), abs=1e-5)
    assert float(pmt_loss(LOGITS, LABELS, reduction="mean")) == pytest.approx(sum(rows) / 3, abs=1e-5)
    # NA pair: no positive term; all-positive pair: no negative term
    assert none[1].item() == pytest.approx(rows[1], abs=1e-5)
    assert none[2].item() == pytest.approx(rows[2], abs=1e-5)


def test_pmt_without_entropy_and_gamma_one():
    assert pmt_loss(LOGITS, LABELS, entropy=False, reduction="none").tolist() == pytest.approx(
        hand_rows(entropy=False), abs=1e-5)
    one = pmt_loss(LOGITS, LABELS, gamma="one", reduction="none")
    assert one.tolist() == pytest.approx(hand_rows(gamma="one"), abs=1e-5)
    # gamma only rescales EM where a pair has > 1 positive or > 1 negative
    count = pmt_loss(LOGITS, LABELS, gamma="count", reduction="none")
    assert torch.all(one > count)


def test_neg_mask_excludes_negative_from_pmt_and_em():
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1, 3] = False  # NA pair B: relation 3 leaves both sums
    mask[2, 1] = False  # a positive never leaves
    p, negs = pmt_hand(F_B, [], keep=[0, 1])
    assert negs == [0, 1]
    m = margins(F_B)
    # default (Eq. 12 literally, FAITHFULNESS #5): gamma2 = |N_{h,t}| = 3, every negative of B,
    # although only the 2 sampled entropies are summed
    got = pmt_loss(LOGITS, LABELS, neg_mask=mask, reduction="none")
    assert got[1].item() == pytest.approx(p + (H(m[0]) + H(m[1])) / 3, abs=1e-5)
    assert got[0].item() == pytest.approx(hand_rows()[0], abs=1e-5)
    assert got[2].item() == pytest.approx(hand_rows()[2], abs=1e-5)
    torch.testing.assert_close(got, pmt_loss(LOGITS, LABELS, neg_mask=mask, neg_count="all", reduction="none"))
    # "sampled": gamma2 = |N'_{h,t}| = 2, the entropies that enter
    smp = pmt_loss(LOGITS, LABELS, neg_mask=mask, neg_count="sampled", reduction="none")
    assert smp[1].item() == pytest.approx(p + em_hand(F_B, [], negs), abs=1e-5)
    assert smp[1].item() == pytest.approx(p + (H(m[0]) + H(m[1])) / 2, abs=1e-5)
    torch.testing.assert_close(smp[[0, 2]], got[[0, 2]])  # unsampled pairs: the counts agree
    # without a mask both counts are the same
    torch.testing.assert_close(pmt_loss(LOGITS, LABELS, neg_count="sampled", reduction="none"),
                               pmt_loss(LOGITS, LABELS, reduction="none"))
    with pytest.raises(ValueError, match="neg_count"):
        pmt_loss(LOGITS, LABELS, neg_count="entered")


def test_em_batch_average_matches_released_broadcasting():
    torch.manual_seed(0)
    lg = torch.randn(5, 6, dtype=torch.float64)
    lb = torch.zeros(5, 6)
    lb[0, [1, 2]] = 1
    lb[1, 0] = 1
    lb[2, [1, 3, 4, 5]] = 1
    lb[3, 2] = 1
    lb[4, 0] = 1
    pmt, em = pmt_em_terms(lg, lb)
    ba = pmt_loss(lg, lb, em_batch_average=True, reduction="none")
    # the released code: (N,) entropy sums divided by (N, 1) counts -> N x N, then .mean()
    m = (lg[:, 1:] - lg[:, :1]).float()
    p = torch.sigmoid(m)
    ent = -(p * p.log() + (1 - p) * (1 - p).log())
    pos = lb[:, 1:] > 0
    cp = pos.sum(1, keepdim=True).clamp(min=1).float()
    cn = (~pos).sum(1, keepdim=True).clamp(min=1).float()
    released = (pmt + (ent * pos).sum(1) / cp + (ent * ~pos).sum(1) / cn).mean()
    assert float(ba.mean()) == pytest.approx(float(released), rel=1e-5)
    assert not torch.allclose(ba, pmt + em)  # counts differ -> differs from per-pair weights
    # equal counts in every pair -> the batch average is each pair's own weight
    eq = torch.zeros(5, 6)
    eq[torch.arange(5), torch.tensor([1, 2, 3, 4, 5])] = 1
    torch.testing.assert_close(pmt_loss(lg, eq, em_batch_average=True, reduction="none"),
                               pmt_loss(lg, eq, reduction="none"))


# --------------------------------------------------------------------------- negative sampling
def _big_labels(n=2000, r=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    lb = torch.zeros(n, 1 + r)
    has = torch.rand(n, generator=g) < 0.3
    cols = torch.randint(1, 1 + r, (n,), generator=g)
    lb[has, cols[has]] = 1
    lb[~has, 0] = 1
    return lb


def test_sample_negative_mask_pair():
    lb = _big_labels()
    na = lb[:, 0] > 0
    mask = sample_negative_mask(lb, 0.1, torch.Generator().manual_seed(1))
    assert mask.dtype == torch.bool and mask.shape == lb.shape
    assert mask[:, 0].all() and mask[~na].all()
    frac = mask[na, 1:].float().mean().item()
    n_draws = int(na.sum()) * 96
    assert abs(frac - 0.1) < 5 * math.sqrt(0.1 * 0.9 / n_draws)  # 5 sigma
    assert not (mask[na][0] == mask[na][1:]).all(1).all()  # rows differ
    again = sample_negative_mask(lb, 0.1, torch.Generator().manual_seed(1))
    assert torch.equal(mask, again)
    assert sample_negative_mask(lb, 1.0).all()
    none_kept = sample_negative_mask(lb, 0.0, torch.Generator().manual_seed(1))
    assert not none_kept[na, 1:].any() and none_kept[~na].all()


def test_sample_negative_mask_batch_shares_one_row():
    lb = _big_labels(n=300)
    na = lb[:, 0] > 0
    mask = sample_negative_mask(lb, 0.5, torch.Generator().manual_seed(2), per="batch")
    rows = mask[na]
    assert (rows == rows[0]).all()
    assert mask[~na].all() and mask[:, 0].all()
    assert 0 < rows[0, 1:].sum() < 96


# --------------------------------------------------------------------------- SCL
TAU = 0.5
ANGLES = [0.0, 0.5, 1.2, 2.0, 3.0]
NORMS = [1.0, 3.0, 0.5, 2.0, 7.0]  # the loss must normalise
# pair 0: {1}; 1: {1, 2} (two positives: 0 and 2); 2: {2}; 3: NA; 4: {3}, no partner (Eq. 9)
SCL_LABELS = torch.tensor([[0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]],
                          dtype=torch.float)


def scl_feats():
    return torch.tensor([[n * math.cos(a), n * math.sin(a)] for a, n in zip(ANGLES, NORMS)])


def e(i, j):
    return math.exp(math.cos(ANGLES[i] - ANGLES[j]) / TAU)


def den(i):
    return sum(e(i, d) for d in range(5) if d != i)


def scl_hand(variant="paper", na_anchors=False):
    S = {0: [1], 1: [0, 2], 2: [1], 4: []}
    out = [0.0] * 5
    for i, ps in S.items():
        if not ps:
            out[i] = math.log(den(i))  # Eq. 9
        elif variant == "paper":
            out[i] = -math.log(sum(e(i, p) for p in ps) / len(ps) / den(i))
        else:
            out[i] = -sum(math.log(e(i, p) / den(i)) for p in ps) / len(ps)
    if na_anchors:
        out[3] = math.log(den(3))
    return out


def test_scl_hand_values_paper_and_supcon():
    x = scl_feats()
    paper = scl_loss(x, SCL_LABELS, tau=TAU, reduction="none")
    supcon = scl_loss(x, SCL_LABELS, tau=TAU, variant="supcon", reduction="none")
    assert paper.tolist() == pytest.approx(scl_hand("paper"), abs=1e-5)
    assert supcon.tolist() == pytest.approx(scl_hand("supcon"), abs=1e-5)
    # they differ only for the anchor with two positives (Jensen: paper <= supcon)
    assert paper[1] < supcon[1] - 1e-4
    torch.testing.assert_close(paper[[0, 2, 3, 4]], supcon[[0, 2, 3, 4]])
    assert paper[3] == 0  # NA pair: not an anchor


def test_scl_reductions_and_na_anchors():
    x = scl_feats()
    hand = scl_hand()
    anchors_sum = sum(hand)
    assert float(scl_loss(x, SCL_LABELS, tau=TAU, reduction="sum")) == pytest.approx(anchors_sum, abs=1e-5)
    assert float(scl_loss(x, SCL_LABELS, tau=TAU, reduction="mean")) == pytest.approx(anchors_sum / 4, abs=1e-5)
    assert float(scl_loss(x, SCL_LABELS, tau=TAU, reduction="mean_all")) == pytest.approx(anchors_sum / 5, abs=1e-5)
    na = scl_loss(x, SCL_LABELS, tau=TAU, na_anchors=True, reduction="none")
    assert na.tolist() == pytest.approx(scl_hand(na_anchors=True), abs=1e-5)
    assert float(scl_loss(x, SCL_LABELS, tau=TAU, na_anchors=True, reduction="sum")) > anchors_sum + 1e-3


def test_scl_longtail_anchor_share_hand_values():
    x = scl_feats()
    hand = scl_hand()
    got = scl_loss(x, SCL_LABELS, tau=TAU, longtail_scale="anchor-share", reduction="none")
    # 4 anchors (0, 1, 2, 4) among 5 pairs: only pair 4's Eq. 9 term is scaled, by 4 / 5
    assert got.tolist() == pytest.approx(hand[:4] + [math.log(den(4)) * 4 / 5], abs=1e-5)
    summed = scl_loss(x, SCL_LABELS, tau=TAU, longtail_scale="anchor-share", reduction="sum")
    assert float(summed) == pytest.approx(sum(hand[:4]) + math.log(den(4)) * 0.8, abs=1e-5)
    # every pair an anchor (FAITHFULNESS #2): the share is 1, nothing changes
    na = scl_loss(x, SCL_LABELS, tau=TAU, na_anchors=True, longtail_scale="anchor-share", reduction="none")
    assert na.tolist() == pytest.approx(scl_hand(na_anchors=True), abs=1e-5)
    with pytest.raises(ValueError, match="longtail_scale"):
        scl_loss(x, SCL_LABELS, tau=TAU, longtail_scale="half")


def test_scl_longtail_anchor_share_equals_broadcast_mean():
    # the released form: (N,) Eq. 8 row + (N, 1) Eq. 9 column, columns masked by anchor, N x N mean
    g = torch.Generator().manual_seed(8)
    n = 12
    x = torch.randn(n, 5, generator=g)
    lb = torch.zeros(n, 5)
    lb[torch.arange(n), torch.tensor([0, 1, 1, 2, 0, 3, 4, 0, 2, 0, 0, 1])] = 1  # 3 and 4 partnerless
    rel = lb[:, 1:] > 0
    anchor = rel.any(1).float()
    terms = scl_loss(x, lb, tau=0.3, variant="supcon", reduction="none")
    partner = ((rel.float() @ rel.float().T) > 0).fill_diagonal_(False).any(1)
    eq8 = torch.where(partner, terms, 0.0)
    eq9 = torch.where(partner, 0.0, terms) * anchor
    released = ((eq8[None, :] + eq9[:, None]) * anchor[None, :]).mean()
    got = scl_loss(x, lb, tau=0.3, variant="supcon", longtail_scale="anchor-share", reduction="mean_all")
    assert float(got) == pytest.approx(float(released), rel=1e-6)
    assert float(eq9.sum()) > 0.1  # the long-tail terms are really there


def test_scl_gradients_finite_with_partnerless_anchor():
    x = scl_feats().requires_grad_(True)
    for variant in ("paper", "supcon"):
        x.grad = None
        scl_loss(x, SCL_LABELS, tau=TAU, variant=variant, reduction="sum").backward()
        assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("n", [0, 1])
def test_scl_degenerate_batches_give_zero(n):
    x = torch.randn(n, 8, requires_grad=True)
    lb = torch.zeros(n, 4)
    lb[:, 1] = 1
    for red in ("sum", "mean", "mean_all"):
        v = scl_loss(x, lb, tau=0.2, reduction=red)
        assert float(v.detach()) == 0.0
        if n:
            v.backward()
            assert torch.isfinite(x.grad).all()


def test_scl_no_anchor_gives_zero_with_grad():
    x = torch.randn(6, 8, requires_grad=True)
    lb = torch.zeros(6, 4)
    lb[:, 0] = 1
    v = scl_loss(x, lb, tau=0.2, reduction="mean")
    assert float(v.detach()) == 0.0 and v.requires_grad
    v.backward()
    assert torch.isfinite(x.grad).all()


# --------------------------------------------------------------------------- Gram from group factors
@pytest.mark.parametrize("k,b", [(2, 3), (6, 64), (16, 64)])
def test_pair_gram_from_factors_matches_materialised(k, b):
    g = torch.Generator().manual_seed(k)
    n = 40
    zh = torch.tanh(torch.randn(n, k, b, generator=g))
    zt = torch.tanh(torch.randn(n, k, b, generator=g))
    x = group_outer(zh, zt)
    assert x.shape == (n, k * b * b)
    # layout of Eq. 14: group k, then z_h index i, then z_t index j
    assert x[3, 1 * b * b + 2 * b + 0].item() == pytest.approx((zh[3, 1, 2] * zt[3, 1, 0]).item(), rel=1e-6)
    xn = F.normalize(x, dim=-1)
    torch.testing.assert_close(pair_gram((zh, zt)), xn @ xn.T, atol=1e-5, rtol=0)
    torch.testing.assert_close(pair_gram(x), xn @ xn.T, atol=1e-5, rtol=0)
    # the anchor rows alone (what SCL uses) are the same rows of the full matrix
    rows = torch.tensor([0, 7, 39])
    torch.testing.assert_close(pair_gram((zh, zt), rows=rows), (xn @ xn.T)[rows], atol=1e-5, rtol=0)
    torch.testing.assert_close(pair_gram(x, rows=rows), (xn @ xn.T)[rows], atol=1e-5, rtol=0)


def test_scl_from_factors_matches_materialised_value_and_grad():
    g = torch.Generator().manual_seed(3)
    n, k, b = 30, 4, 8
    lb = torch.zeros(n, 5)
    rel = torch.randint(0, 5, (n,), generator=g)
    lb[torch.arange(n), rel] = 1
    zh = torch.randn(n, k, b, generator=g, requires_grad=True)
    zt = torch.randn(n, k, b, generator=g, requires_grad=True)
    a = scl_loss((zh, zt), lb, tau=0.2, reduction="sum")
    ga = torch.autograd.grad(a, (zh, zt))
    m = scl_loss(group_outer(zh, zt), lb, tau=0.2, reduction="sum")
    gm = torch.autograd.grad(m, (zh, zt))
    torch.testing.assert_close(a, m, atol=1e-4, rtol=1e-5)
    for u, v in zip(ga, gm):
        torch.testing.assert_close(u, v, atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------- baselines
def test_atl_hand_values():
    a = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.5)))
    a += -math.log(math.exp(0.5) / (math.exp(0.5) + math.exp(-1.0) + math.exp(0.0)))
    b = -math.log(math.exp(1.0) / sum(math.exp(v) for v in F_B))  # NA: L1 = 0, TH against all
    zc = sum(math.exp(v) for v in F_C)
    c = sum(-math.log(math.exp(F_C[r]) / zc) for r in (1, 2, 3))  # all positive: L2 = -log 1 = 0
    got = atl_loss(LOGITS, LABELS, reduction="none")
    assert got.tolist() == pytest.approx([a, b, c], abs=1e-5)
    assert float(atl_loss(LOGITS, LABELS, reduction="sum")) == pytest.approx(a + b + c, abs=1e-5)
    # a dropped negative leaves L2's softmax
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1, 3] = False
    b2 = -math.log(math.exp(1.0) / (math.exp(1.0) + math.exp(0.3) + math.exp(-0.7)))
    assert atl_loss(LOGITS, LABELS, neg_mask=mask, reduction="none")[1].item() == pytest.approx(b2, abs=1e-5)


def test_bce_hand_values():
    rows = []
    for f, y in zip((F_A, F_B, F_C), LABELS.tolist()):
        rows.append(sum(-math.log(sig(f[r])) if y[r] else -math.log(1 - sig(f[r])) for r in (1, 2, 3)))
    assert bce_loss(LOGITS, LABELS, reduction="none").tolist() == pytest.approx(rows, abs=1e-5)
    assert float(bce_loss(LOGITS, LABELS)) == pytest.approx(sum(rows) / 3, abs=1e-5)


def test_ncrl_equals_pmt_without_shift_and_regulariser():
    g = torch.Generator().manual_seed(5)
    lg = torch.randn(50, 8, generator=g) * 4
    lb = _big_labels(50, 7, seed=5)
    torch.testing.assert_close(ncrl_loss(lg, lb, regulariser=False, reduction="none"),
                               pmt_loss(lg, lb, entropy=False, reduction="none"))
    mask = sample_negative_mask(lb, 0.3, g)
    torch.testing.assert_close(ncrl_loss(lg, lb, regulariser=False, neg_mask=mask, reduction="none"),
                               pmt_loss(lg, lb, entropy=False, neg_mask=mask, reduction="none"))


def test_ncrl_shift_and_regulariser_hand_values():
    s = 0.05
    rows = []
    for f, y in zip((F_A, F_B, F_C), LABELS.tolist()):
        m = margins(f)
        v = 0.0
        for r in range(3):
            if y[r + 1]:
                v += -math.log(sig(m[r]))
            else:
                v += -math.log(min(1 - sig(m[r]) + s, 1.0))
                # the same value as NCRL's probability shifting: -log(1 - max(sigma - s, 0))
                assert -math.log(1 - max(sig(m[r]) - s, 0.0)) == pytest.approx(-math.log(min(1 - sig(m[r]) + s, 1.0)))
        z = f[0] - sum(f[1:]) / 3  # NA margin regulariser, same shifted CE against the NA label
        v += -math.log(sig(z)) if y[0] else -math.log(min(1 - sig(z) + s, 1.0))
        rows.append(v)
    got = ncrl_loss(LOGITS, LABELS, shift=s, reduction="none")
    assert got.tolist() == pytest.approx(rows, abs=1e-5)
    # shift 0 with the regulariser: plain BCE on the NA margin
    reg = [(-math.log(sig(f[0] - sum(f[1:]) / 3)) if y[0] else -math.log(1 - sig(f[0] - sum(f[1:]) / 3)))
           for f, y in zip((F_A, F_B, F_C), LABELS.tolist())]
    base = pmt_loss(LOGITS, LABELS, entropy=False, reduction="none")
    assert (ncrl_loss(LOGITS, LABELS, reduction="none") - base).tolist() == pytest.approx(reg, abs=1e-5)


# --------------------------------------------------------------------------- composition
def test_presets_and_loss_spec():
    assert set(LOSS_PRESETS) == {"pemscl", "pemscl-no-em", "pemscl-no-scl", "pemscl-no-em-no-scl", "pemscl-ns",
                                 "atl", "bce", "ncrl", "afl", "ssr-pu"}
    assert loss_spec("pemscl") == LossSpec()
    assert loss_spec("pemscl-ns").neg_sample_ratio == 0.1
    assert loss_spec("pemscl", tau=2.0).tau == 2.0 and LOSS_PRESETS["pemscl"].tau == 0.2
    with pytest.raises(ValueError):
        loss_spec("nope")


def _batch(n=40, r=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    lb = _big_labels(n, r, seed=seed)
    feats = (torch.randn(n, 3, 4, generator=g), torch.randn(n, 3, 4, generator=g))
    return torch.randn(n, 1 + r, generator=g), lb, feats


def test_compute_loss_parts_and_mean_sum_scaling():
    lg, lb, feats = _batch()
    total, parts = compute_loss(loss_spec("pemscl"), lg, lb, features=feats)
    assert set(parts) == {"pmt", "em", "l1", "scl"}
    assert parts["l1"] == pytest.approx(parts["pmt"] + parts["em"], rel=1e-5)
    assert float(total) == pytest.approx(parts["l1"] + 0.1 * parts["scl"], rel=1e-5)
    assert parts["pmt"] == pytest.approx(float(pmt_loss(lg, lb, entropy=False, reduction="sum")), rel=1e-5)
    assert parts["scl"] == pytest.approx(float(scl_loss(feats, lb, tau=0.2, reduction="sum")), rel=1e-5)
    # "mean" divides L1 and SCL by the same N (SCL as mean_all): the L1 : lambda L2 balance is kept
    mean_total, _ = compute_loss(loss_spec("pemscl", reduction="mean"), lg, lb, features=feats)
    assert float(mean_total) * len(lg) == pytest.approx(float(total), rel=1e-5)
    _, p = compute_loss(loss_spec("pemscl-no-em-no-scl"), lg, lb)
    assert set(p) == {"pmt", "l1"}
    for name, fn in (("atl", atl_loss), ("bce", bce_loss), ("ncrl", ncrl_loss)):
        t, p = compute_loss(loss_spec(name), lg, lb)
        assert set(p) == {"l1"} and float(t) == pytest.approx(float(fn(lg, lb, reduction="sum")), rel=1e-5)
    with pytest.raises(ValueError):
        compute_loss(loss_spec("pemscl"), lg, lb)  # SCL on but no features


def test_compute_loss_negative_sampling_is_seeded_and_reaches_baselines():
    lg, lb, feats = _batch()
    spec = loss_spec("pemscl-ns")
    a, _ = compute_loss(spec, lg, lb, features=feats, generator=torch.Generator().manual_seed(7))
    b, _ = compute_loss(spec, lg, lb, features=feats, generator=torch.Generator().manual_seed(7))
    full, _ = compute_loss(loss_spec("pemscl"), lg, lb, features=feats)
    assert float(a) == float(b) and float(a) < float(full)
    for name in ("atl", "bce", "ncrl"):
        ns, _ = compute_loss(loss_spec(name, neg_sample_ratio=0.1), lg, lb, generator=torch.Generator().manual_seed(7))
        plain, _ = compute_loss(loss_spec(name), lg, lb)
        assert float(ns) != float(plain)


def test_compute_loss_neg_count_hand_values():
    # Eq. 12: gamma2 under sampling counts every negative ("all", default) or the sampled ones
    ratio, seed = 0.5, 3
    mask = sample_negative_mask(LABELS, ratio, torch.Generator().manual_seed(seed))  # what compute_loss draws
    kept = [r - 1 for r in range(1, 4) if mask[1, r]]  # NA pair B's sampled negatives
    assert 0 < len(kept) < 3  # this seed keeps a strict, non-empty subset
    m = margins(F_B)
    pmt_b = sum(sp(m[r]) for r in kept)
    ent_b = sum(H(m[r]) for r in kept)
    rows = hand_rows()
    for neg_count, gamma2 in (("all", 3), ("sampled", len(kept))):
        spec = loss_spec("pemscl-ns", neg_sample_ratio=ratio, scl_weight=0.0, neg_count=neg_count)
        total, parts = compute_loss(spec, LOGITS, LABELS, generator=torch.Generator().manual_seed(seed))
        want = rows[0] + rows[2] + pmt_b + ent_b / gamma2
        assert float(total) == pytest.approx(want, abs=1e-5), neg_count
        assert parts["pmt"] == pytest.approx(sum(hand_rows(entropy=False)[i] for i in (0, 2)) + pmt_b, abs=1e-5)
    assert loss_spec("pemscl-ns").neg_count == "all"
    with pytest.raises(ValueError, match="neg_count"):
        compute_loss(loss_spec("pemscl", neg_count="entered", scl_weight=0.0), LOGITS, LABELS)


def test_compute_loss_longtail_scale():
    x = scl_feats()
    lg = torch.zeros(5, 4)
    _, paper = compute_loss(loss_spec("pemscl", tau=TAU), lg, SCL_LABELS, features=x)
    _, share = compute_loss(loss_spec("pemscl", tau=TAU, longtail_scale="anchor-share"), lg, SCL_LABELS,
                           features=x)
    assert LossSpec().longtail_scale == "paper"
    hand = scl_hand()
    assert paper["scl"] == pytest.approx(sum(hand), abs=1e-4)
    assert share["scl"] == pytest.approx(sum(hand[:4]) + math.log(den(4)) * 0.8, abs=1e-4)
    assert share["l1"] == paper["l1"]


def test_label_dtypes_agree():
    lg, lb, feats = _batch()
    ref = [f(lg, lb, reduction="none") for f in (pmt_loss, atl_loss, bce_loss, ncrl_loss)]
    for dt in (torch.bool, torch.uint8):
        got = [f(lg, lb.to(dt), reduction="none") for f in (pmt_loss, atl_loss, bce_loss, ncrl_loss)]
        for u, v in zip(ref, got):
            torch.testing.assert_close(u, v)
        torch.testing.assert_close(scl_loss(feats, lb.to(dt), tau=0.2), scl_loss(feats, lb, tau=0.2))


def test_inputs_not_mutated():
    lg, lb, (zh, zt) = _batch()
    copies = [t.clone() for t in (lg, lb, zh, zt)]
    mask = sample_negative_mask(lb, 0.5, torch.Generator().manual_seed(0))
    mask_copy = mask.clone()
    for f in (pmt_loss, atl_loss, bce_loss, ncrl_loss):
        f(lg, lb, neg_mask=mask)
    scl_loss((zh, zt), lb, tau=0.2, na_anchors=True)
    for name in LOSS_PRESETS:
        compute_loss(loss_spec(name, neg_sample_ratio=0.5), lg, lb, features=(zh, zt),
                     generator=torch.Generator().manual_seed(0))
    for t, c in zip((lg, lb, zh, zt), copies):
        assert torch.equal(t, c)
    assert torch.equal(mask, mask_copy)


@pytest.mark.parametrize("name", sorted(LOSS_PRESETS))
def test_bf16_autocast_large_logits_finite(name):
    g = torch.Generator().manual_seed(11)
    n, r = 64, 10
    lb = _big_labels(n, r, seed=11)
    lg = ((torch.rand(n, 1 + r, generator=g) * 2 - 1) * 80).to(torch.bfloat16).requires_grad_(True)
    zh = (torch.randn(n, 4, 8, generator=g) * 20).to(torch.bfloat16).requires_grad_(True)
    zt = (torch.randn(n, 4, 8, generator=g) * 20).to(torch.bfloat16).requires_grad_(True)
    spec = loss_spec(name, scl_weight=0.1 if name.startswith("pemscl") and "no-scl" not in name else 0.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, parts = compute_loss(spec, lg, lb, features=(zh, zt), generator=g)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(math.isfinite(v) for v in parts.values())
    loss.backward()
    assert torch.isfinite(lg.grad.float()).all()
    if spec.scl_weight:
        assert torch.isfinite(zh.grad.float()).all() and torch.isfinite(zt.grad.float()).all()


def test_bf16_autocast_each_loss_finite():
    lg = torch.tensor([[80.0, -80.0, 80.0, -80.0], [-80.0, 80.0, 80.0, -80.0]], dtype=torch.bfloat16,
                      requires_grad=True)
    lb = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.float)
    for fn in (pmt_loss, atl_loss, bce_loss, ncrl_loss):
        lg.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            v = fn(lg, lb, reduction="sum")
        v.backward()
        assert torch.isfinite(v) and torch.isfinite(lg.grad.float()).all(), fn.__name__
    # saturated margins: pair 0 has m = (-160 positive, 0 and -160 negative): PMT = 160 + log 2 + 0,
    # EM = H(-160)/1 + (H(0) + H(-160))/2 = log 2 / 2 (a saturated entropy is exactly 0, not NaN)
    v = pmt_loss(lg, lb, reduction="none")
    assert v[0].item() == pytest.approx(160.0 + math.log(2) + math.log(2) / 2, rel=1e-6)


def test_pair_gram_stays_float32_under_autocast():
    # without disabling autocast the factor Grams would run as bf16 matmuls (errors ~1e-2)
    g = torch.Generator().manual_seed(4)
    zh, zt = torch.randn(50, 6, 64, generator=g), torch.randn(50, 6, 64, generator=g)
    ref = pair_gram((zh, zt))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = pair_gram((zh, zt))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)

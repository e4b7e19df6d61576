"""The AFL and SSR-PU baselines of the loss registry (issue 26): values by hand for a small batch,
their released-code options, gradients, negative label sampling, bad params failing where the
config is built, the CLI, and a smoke training run of each.

The batch, used throughout: three pairs, R = 3 relations (4 columns, column 0 = NA / TH).
    pair A: f = [0.0,  1.0, -1.0,  0.5], relation {1}
    pair B: f = [0.2, -0.3,  0.4, -1.0], NA
    pair C: f = [0.5,  0.0,  2.0, -0.5], relations {1, 2}
Margins z_r = f_r - f_NA (columns 1..3): A [1.0, -1.0, 0.5], B [-0.5, 0.2, -1.2], C [-0.5, 1.5, -1.0].
"""
from __future__ import annotations

import math

import pytest
import torch

from pemscl import cli
from pemscl import config as CF
from pemscl import losses as L
from pemscl import train as T
from pemscl.losses import LossSpec, compute_loss, loss_spec, prepare_loss, sample_negative_mask

LOGITS = torch.tensor([[0.0, 1.0, -1.0, 0.5], [0.2, -0.3, 0.4, -1.0], [0.5, 0.0, 2.0, -0.5]])
LABELS = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0]], dtype=torch.float)


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


# --------------------------------------------------------------------------- AFL by hand
def afl_hand(row, lab, gamma=1.0, one_plus=False, keep=None):
    """L1 = -sum_P w(P_r) log P_r with P_r = sigma(f_r - f_TH), w = (1 - P_r)^gamma (or 1 + that);
    L2 = log sum_{TH u N'} exp(f) - f_TH."""
    l1 = 0.0
    for r in range(1, len(row)):
        if lab[r]:
            p = sig(row[r] - row[0])
            w = (1 - p) ** gamma + (1.0 if one_plus else 0.0)
            l1 -= w * math.log(p)
    cols = [0] + [r for r in range(1, len(row)) if not lab[r] and (keep is None or keep[r])]
    l2 = math.log(sum(math.exp(row[c]) for c in cols)) - row[0]
    return l1 + l2


def test_afl_by_hand():
    rows, labs = LOGITS.tolist(), LABELS.tolist()
    hand = [afl_hand(r, y) for r, y in zip(rows, labs)]
    # pin the reference by hand, gamma = 1:
    # A: P_1 = sigma(1) = 0.731059, L1 = -(1 - 0.731059) ln 0.731059 = 0.268941 * 0.313262 = 0.084249;
    #    L2 = ln(e^0 + e^-1 + e^0.5) - 0 = ln(1 + 0.367879 + 1.648721) = ln 3.016601 = 1.104131
    assert hand[0] == pytest.approx(0.268941 * 0.313262 + 1.104131, abs=2e-6)
    # B (NA): L1 = 0, L2 = ln(e^0.2 + e^-0.3 + e^0.4 + e^-1) - 0.2 = ln(1.221403 + 0.740818 + 1.491825
    #    + 0.367879) - 0.2 = ln 3.821925 - 0.2 = 1.140754
    assert hand[1] == pytest.approx(1.140754, abs=2e-6)
    # C: P_1 = sigma(-0.5) = 0.377541, P_2 = sigma(1.5) = 0.817574;
    #    L1 = 0.622459 * 0.974077 + 0.182426 * 0.201413 = 0.606323 + 0.036743 = 0.643066;
    #    L2 = ln(e^0.5 + e^-0.5) - 0.5 = ln 2.255252 - 0.5 = 0.313262
    assert hand[2] == pytest.approx(0.643066 + 0.313262, abs=3e-6)
    total, parts = compute_loss(loss_spec("afl"), LOGITS, LABELS)  # the preset: sum over pairs, no SCL
    assert float(total) == pytest.approx(sum(hand), abs=1e-5) and parts == pytest.approx({"l1": sum(hand)}, abs=1e-5)
    per_pair = L.afl_loss(LOGITS, LABELS, reduction="none")
    assert per_pair.tolist() == pytest.approx(hand, abs=1e-5)
    mean, _ = compute_loss(loss_spec("afl", reduction="mean"), LOGITS, LABELS)
    assert float(mean) == pytest.approx(sum(hand) / 3, abs=1e-5)
    # gamma = 2 and the released weight 1 + (1 - P)^gamma
    g2 = sum(afl_hand(r, y, gamma=2.0) for r, y in zip(rows, labs))
    got2 = float(compute_loss(loss_spec("afl", params={"gamma": 2.0}), LOGITS, LABELS)[0])
    assert got2 == pytest.approx(g2, abs=1e-5)
    rel = sum(afl_hand(r, y, one_plus=True) for r, y in zip(rows, labs))
    got = float(compute_loss(loss_spec("afl", params={"pos_weight": "one-plus-focal"}), LOGITS, LABELS)[0])
    assert got == pytest.approx(rel, abs=1e-5) and rel > sum(hand) + 0.1
    # gamma = 0 is a plain pairwise CE of each positive against TH
    g0 = sum(afl_hand(r, y, gamma=0.0) for r, y in zip(rows, labs))
    got0 = float(compute_loss(loss_spec("afl", params={"gamma": 0.0}), LOGITS, LABELS)[0])
    assert got0 == pytest.approx(g0, abs=1e-5)


def test_afl_negative_sampling_drops_negatives_from_l2_only():
    keep = torch.ones(3, 4, dtype=torch.bool)
    keep[1, 2] = False  # NA pair B loses relation 2 from its L2 softmax
    keep[0, 3] = False  # and A its relation 3
    got = L.afl_loss(LOGITS, LABELS, neg_mask=keep, reduction="none").tolist()
    want = [afl_hand(r, y, keep=k) for r, y, k in zip(LOGITS.tolist(), LABELS.tolist(), keep.tolist())]
    assert got == pytest.approx(want, abs=1e-5)
    # B: ln(e^0.2 + e^-0.3 + e^-1) - 0.2 = ln 2.330100 - 0.2 = 0.645911
    assert want[1] == pytest.approx(0.645911, abs=2e-6)
    # positives always enter: C is unchanged by a mask on its positive columns
    keep2 = torch.ones(3, 4, dtype=torch.bool)
    keep2[2, 1:3] = False
    assert L.afl_loss(LOGITS, LABELS, neg_mask=keep2, reduction="none")[2] == pytest.approx(
        afl_hand(LOGITS[2].tolist(), LABELS[2].tolist()), abs=1e-5)


# --------------------------------------------------------------------------- SSR-PU by hand
# Explicit labelled priors pi_L = [0.2, 0.1, 0.05] and prior_scale 3: pi = [0.6, 0.3, 0.15]; m = 0.25.
# l(z, +1) = (z - m)^2 / 4, l(z, -1) = (z + m)^2 / 4.
# r = 1: P = {A, C} (z 1.0, -0.5), U = {B} (z -0.5)
#   E_P l+ = ((0.75^2 + 0.75^2) / 4) / 2 = 0.140625;  E_P l- = ((1.25^2 + 0.25^2) / 4) / 2 = 0.203125
#   E_U l- = 0.25^2 / 4 = 0.015625
#   R+ = 0.6 * 0.140625 = 0.084375;  R- = 0.8 * 0.015625 - 0.4 * 0.203125 = 0.0125 - 0.08125 = -0.06875
#   (paper form: pi_U = (0.6 - 0.2) / 0.8 = 0.5, (1 - pi) / (1 - pi_U) = 0.8, pi_U (1 - pi) / (1 - pi_U) = 0.4)
#   risk = 0.084375 + max(0, -0.06875) = 0.084375
# r = 2: P = {C} (z 1.5), U = {A, B} (z -1.0, 0.2)
#   E_P l+ = 1.25^2 / 4 = 0.390625;  E_P l- = 1.75^2 / 4 = 0.765625
#   E_U l- = (0.75^2 / 4 + 0.45^2 / 4) / 2 = (0.140625 + 0.050625) / 2 = 0.095625
#   R+ = 0.3 * 0.390625 = 0.1171875;  R- = 0.9 * 0.095625 - 0.2 * 0.765625 = 0.0860625 - 0.153125 = -0.0670625
#   risk = 0.1171875 + max(0, -0.0670625) = 0.1171875
# r = 3: P = {}, U = {A, B, C} (z 0.5, -1.2, -1.0)
#   E_U l- = (0.75^2 + 0.95^2 + 0.75^2) / 4 / 3 = (0.140625 + 0.225625 + 0.140625) / 3 = 0.168958333
#   R+ = 0;  R- = 0.95 * 0.168958333 = 0.160510417;  risk = 0.160510417
SSR_PARAMS = {"labeled_prior": [0.2, 0.1, 0.05]}
SSR_RISKS = [0.084375, 0.1171875, 0.160510417]
SSR_POS = [0.084375, 0.1171875, 0.0]
SSR_NEG = [-0.06875, -0.0670625, 0.160510417]


def test_ssr_pu_by_hand():
    total, parts = compute_loss(loss_spec("ssr-pu", params=SSR_PARAMS), LOGITS, LABELS)
    # the preset reduces as the paper's risk does: a sum over relations of expectations over pairs
    assert loss_spec("ssr-pu").reduction == "mean"
    assert float(total) == pytest.approx(sum(SSR_RISKS), abs=1e-6)  # 0.362072917
    assert parts == pytest.approx({"l1": sum(SSR_RISKS), "pu_pos": sum(SSR_POS), "pu_neg": sum(SSR_NEG)}, abs=1e-6)
    # "sum" is N x the risk, like the other losses' sums over pairs
    s, _ = compute_loss(loss_spec("ssr-pu", params=SSR_PARAMS, reduction="sum"), LOGITS, LABELS)
    assert float(s) == pytest.approx(3 * 0.362072917, abs=1e-5)
    # the per-relation function, with the priors given directly
    risk, r_pos, r_neg = L.ssr_pu_risks(LOGITS, LABELS, prior=torch.tensor([0.6, 0.3, 0.15]),
                                        labeled_prior=torch.tensor([0.2, 0.1, 0.05]))
    assert risk.tolist() == pytest.approx(SSR_RISKS, abs=1e-6)
    assert r_pos.tolist() == pytest.approx(SSR_POS, abs=1e-6) and r_neg.tolist() == pytest.approx(SSR_NEG, abs=1e-6)
    # an explicit true prior replaces prior_scale x pi_L: the same numbers
    explicit = loss_spec("ssr-pu", params={**SSR_PARAMS, "prior": [0.6, 0.3, 0.15], "prior_scale": 7.0})
    assert float(compute_loss(explicit, LOGITS, LABELS)[0]) == pytest.approx(sum(SSR_RISKS), abs=1e-6)


def test_ssr_pu_released_options():
    # "defit" (released, beta 0, gamma 1): r = 1 and r = 2 have R- < 0 (-0.06875, -0.0670625), so
    # their risks are -R- (R+ dropped); r = 3 keeps R+ + R- = 0.160510417
    d, _ = compute_loss(loss_spec("ssr-pu", params={**SSR_PARAMS, "nonneg": "defit"}), LOGITS, LABELS)
    assert float(d) == pytest.approx(0.06875 + 0.0670625 + 0.160510417, abs=1e-6)
    # defit_gamma 2 doubles those two; beta 0.3 also catches r = 3 (0.1605 < 0.3): -0.160510417
    d2, _ = compute_loss(loss_spec("ssr-pu", params={**SSR_PARAMS, "nonneg": "defit", "defit_gamma": 2.0}),
                         LOGITS, LABELS)
    assert float(d2) == pytest.approx(0.1375 + 0.134125 + 0.160510417, abs=1e-6)
    d3, _ = compute_loss(loss_spec("ssr-pu", params={**SSR_PARAMS, "nonneg": "defit", "beta": 0.3}), LOGITS, LABELS)
    assert float(d3) == pytest.approx(0.06875 + 0.0670625 - 0.160510417, abs=1e-6)
    # "sqrt-odds": R+ x sqrt((1 - pi) / pi): r = 1 x sqrt(0.4 / 0.6) = 0.816497, r = 2 x sqrt(0.7 / 0.3) = 1.527525
    w, parts = compute_loss(loss_spec("ssr-pu", params={**SSR_PARAMS, "pos_weight": "sqrt-odds"}), LOGITS, LABELS)
    pos = 0.084375 * 0.816497 + 0.1171875 * 1.527525
    assert parts["pu_pos"] == pytest.approx(pos, abs=1e-6)
    assert float(w) == pytest.approx(pos + 0.160510417, abs=1e-6)
    # margin 1 (the released argparse default) changes the numbers: r = 3 alone, E_U l- =
    # (1.5^2 + 0.2^2 + 0^2) / 4 / 3 = 0.190833, R- = 0.95 x 0.190833 = 0.181292
    _, r3, n3 = L.ssr_pu_risks(LOGITS, LABELS, prior=torch.tensor([0.6, 0.3, 0.15]),
                               labeled_prior=torch.tensor([0.2, 0.1, 0.05]), margin=1.0)
    assert float(n3[2]) == pytest.approx(0.95 * 2.29 / 12, abs=1e-6)


def test_ssr_pu_priors_from_the_training_labels():
    # pi_L per relation: pairs labelled r / all pairs. Here relation 1 on A and C (2/3), 2 on C (1/3), 3 none
    assert L.labeled_priors(LABELS) == pytest.approx([2 / 3, 1 / 3, 0.0])
    # a list of per-document arrays (the features' "labels") gives the same shares over all pairs
    docs = [LABELS[:1].numpy().astype("uint8"), LABELS[1:].numpy().astype("uint8")]
    assert L.labeled_priors(docs) == pytest.approx([2 / 3, 1 / 3, 0.0])
    spec = prepare_loss(loss_spec("ssr-pu"), docs)
    assert spec.params["labeled_prior"] == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert loss_spec("ssr-pu").params == {}  # the preset is untouched
    assert prepare_loss(spec, LABELS[:1]) is spec  # a set labeled_prior is kept
    assert prepare_loss(loss_spec("afl"), docs) == loss_spec("afl")  # losses without the hook: unchanged
    # unprepared, the loss estimates pi_L from the batch it sees: the same value here, where the
    # batch is the whole "training set"
    a = float(compute_loss(loss_spec("ssr-pu"), LOGITS, LABELS)[0])
    b = float(compute_loss(spec, LOGITS, LABELS)[0])
    assert a == pytest.approx(b, abs=1e-6)
    # scaled priors are capped at 1: pi_L 2/3 x 3 = 2 -> pi = 1, where R- = (1 - pi_L) E_U - (1 - pi_L) E_P
    risk, _, r_neg = L.ssr_pu_risks(LOGITS, LABELS, prior=torch.tensor([1.0, 1.0, 0.0]),
                                    labeled_prior=torch.tensor([2 / 3, 1 / 3, 0.0]))
    assert torch.isfinite(risk).all()
    assert float(r_neg[0]) == pytest.approx((1 / 3) * 0.015625 - (1 / 3) * 0.203125, abs=1e-6)


def test_ssr_pu_negative_sampling_drops_unlabelled_pairs():
    keep = torch.ones(3, 4, dtype=torch.bool)
    keep[1, 2] = False  # pair B leaves U for relation 2: E_U l- = 0.140625 (A alone)
    keep[0, 3] = False  # pair A leaves U for relation 3: E_U l- = (0.225625 + 0.140625) / 2 = 0.183125
    risk, _, r_neg = L.ssr_pu_risks(LOGITS, LABELS, prior=torch.tensor([0.6, 0.3, 0.15]),
                                    labeled_prior=torch.tensor([0.2, 0.1, 0.05]), neg_mask=keep)
    # r = 2: R- = 0.9 x 0.140625 - 0.2 x 0.765625 = -0.0265625 (still clipped); r = 3: R- = 0.95 x 0.183125
    assert r_neg.tolist() == pytest.approx([-0.06875, -0.0265625, 0.17396875], abs=1e-6)
    assert risk.tolist() == pytest.approx([SSR_RISKS[0], SSR_RISKS[1], 0.17396875], abs=1e-6)
    # a positive's column is never dropped: masking C's relation-2 column changes nothing
    keep2 = torch.ones(3, 4, dtype=torch.bool)
    keep2[2, 2] = False
    risk2, _, _ = L.ssr_pu_risks(LOGITS, LABELS, prior=torch.tensor([0.6, 0.3, 0.15]),
                                 labeled_prior=torch.tensor([0.2, 0.1, 0.05]), neg_mask=keep2)
    assert risk2.tolist() == pytest.approx(SSR_RISKS, abs=1e-6)


@pytest.mark.parametrize("name", ["afl", "ssr-pu"])
def test_compute_loss_samples_negatives_for_the_new_losses(name):
    labels = torch.tensor([[1, 0, 0, 0, 0, 0]] * 4 + [[0, 1, 0, 0, 1, 0]], dtype=torch.float)
    logits = torch.randn(5, 6, generator=torch.Generator().manual_seed(3))
    params = {"labeled_prior": [0.2] * 5} if name == "ssr-pu" else {}
    spec = loss_spec(name, neg_sample_ratio=0.5, params=params)
    ns, _ = compute_loss(spec, logits, labels, generator=torch.Generator().manual_seed(1))
    mask = sample_negative_mask(labels, 0.5, torch.Generator().manual_seed(1))
    assert not mask.all()  # the seed does drop some negatives
    full = L.get_loss(name)
    direct, _ = full.fn(logits, labels, spec=LossSpec(**{**spec.__dict__, "params": {**full.defaults, **params}}),
                        features=None, neg_mask=mask, reduction=spec.reduction)
    plain, _ = compute_loss(loss_spec(name, params=params), logits, labels)
    assert float(ns) == pytest.approx(float(direct), abs=1e-6)
    assert float(ns) != pytest.approx(float(plain), abs=1e-4)


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name,params", [("afl", {}), ("afl", {"pos_weight": "one-plus-focal", "gamma": 2.0}),
                                         ("ssr-pu", SSR_PARAMS), ("ssr-pu", {**SSR_PARAMS, "nonneg": "defit"})])
def test_gradients_match_finite_differences(name, params):
    spec = loss_spec(name, params=params)
    x = LOGITS.clone().requires_grad_(True)
    compute_loss(spec, x, LABELS)[0].backward()
    eps = 1e-3
    num = torch.zeros_like(LOGITS)
    for i in range(3):
        for j in range(4):
            up, down = LOGITS.clone(), LOGITS.clone()
            up[i, j] += eps
            down[i, j] -= eps
            hi, lo = float(compute_loss(spec, up, LABELS)[0]), float(compute_loss(spec, down, LABELS)[0])
            num[i, j] = (hi - lo) / (2 * eps)
    assert torch.allclose(x.grad, num, atol=2e-3), (x.grad, num)
    if name == "afl":  # the loss falls when a positive's logit rises (A's relation 1, C's relation 2)
        assert x.grad[0, 1] < 0 and x.grad[2, 2] < 0
    else:  # the squared loss pulls a positive's margin to m = 0.25 from either side
        assert x.grad[2, 1] < 0 < x.grad[0, 1]  # C: z = -0.5 < m rises; A: z = 1.0 > m falls


def test_ssr_pu_max_stops_the_gradient_of_a_clipped_negative_risk():
    # r = 1's R- is negative and clipped at 0: only R+ = pi E_P[(z - m)^2 / 4] moves it. d/dz at A
    # (z = 1.0): 0.6 x (1/2) x 2 x 0.75 / 4 = 0.1125 on f_1, and minus that on f_NA from this term
    x = LOGITS.clone().requires_grad_(True)
    risk, _, _ = L.ssr_pu_risks(x, LABELS, prior=torch.tensor([0.6, 0.3, 0.15]),
                                labeled_prior=torch.tensor([0.2, 0.1, 0.05]))
    risk[0].backward()
    assert float(x.grad[0, 1]) == pytest.approx(0.1125, abs=1e-6)
    assert float(x.grad[1, 1]) == 0.0  # B is only in U for r = 1: its term was clipped away


@pytest.mark.parametrize("name", ["afl", "ssr-pu"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_and_saturated_logits_stay_finite(name, dtype):
    x = (LOGITS * 60).to(dtype).requires_grad_(True)  # margins up to +-120
    loss, _ = compute_loss(loss_spec(name), x, LABELS)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and torch.isfinite(x.grad.float()).all()


def test_inputs_are_not_mutated():
    lg, lb = LOGITS.clone(), LABELS.clone()
    for name in ("afl", "ssr-pu"):
        compute_loss(loss_spec(name), lg, lb)
    assert torch.equal(lg, LOGITS) and torch.equal(lb, LABELS)


# --------------------------------------------------------------------------- names, bad input, CLI
def test_loss_spec_names_and_registry():
    assert {"afl", "ssr-pu"} <= set(L.registered_losses())
    assert loss_spec("afl") == LossSpec(kind="afl", entropy=False, scl_weight=0.0)
    assert loss_spec("ssr-pu") == LossSpec(kind="ssr-pu", entropy=False, scl_weight=0.0, reduction="mean")
    assert L.get_loss("afl").defaults == {"gamma": 1.0, "pos_weight": "focal"}
    d = L.get_loss("ssr-pu").defaults
    assert (d["margin"], d["prior_scale"], d["prior"], d["nonneg"], d["pos_weight"]) == (0.25, 3.0, None, "max", "none")
    # decision rule: both use the threshold class (the default decide), no tuned threshold
    assert not T.needs_threshold(CF.preset("smoke", loss=loss_spec("ssr-pu")))
    assert not T.needs_threshold(CF.preset("smoke", loss=loss_spec("afl")))
    with pytest.raises(ValueError, match=r"unknown loss 'afl-typo'.*'afl'.*'ssr-pu'"):
        loss_spec("afl-typo")


@pytest.mark.parametrize("name,params,match", [
    ("ssr-pu", {"prior": 1.5}, r"prior must be in \(0, 1\)"),
    ("ssr-pu", {"prior": 0.0}, r"prior must be in \(0, 1\)"),
    ("ssr-pu", {"prior": 1}, r"prior must be in \(0, 1\)"),
    ("ssr-pu", {"prior": -0.1}, r"prior must be in \(0, 1\)"),
    ("ssr-pu", {"prior": [0.2, 1.0, 0.3]}, r"prior must be in \(0, 1\)"),
    ("ssr-pu", {"prior": "high"}, r"prior must be in \(0, 1\)"),
    ("ssr-pu", {"labeled_prior": [0.1, 1.2]}, r"labeled_prior must be in \[0, 1\)"),
    ("ssr-pu", {"prior_scale": 0.0}, "prior_scale must be"),
    ("ssr-pu", {"margin": -1.0}, "margin must be"),
    ("ssr-pu", {"nonneg": "clip"}, "nonneg must be one of"),
    ("afl", {"gamma": -0.5}, r"focal gamma must be a finite number >= 0"),
    ("afl", {"gamma": float("nan")}, r"focal gamma must be a finite number >= 0"),
    ("afl", {"pos_weight": "both"}, "pos_weight must be one of"),
])
def test_bad_params_fail_when_the_config_is_built(name, params, match):
    with pytest.raises(ValueError, match=match):
        loss_spec(name, params=params)
    with pytest.raises(ValueError, match=match):  # a TrainConfig from JSON (resume, --print-config round trip)
        CF.config_from_dict({"loss": {"kind": name, "params": params}})
    with pytest.raises(ValueError, match=match):  # and a spec changed after it was built is caught at the loss
        spec = loss_spec(name)
        spec.params.update(params)
        compute_loss(spec, LOGITS, LABELS)


def test_ssr_pu_prior_list_must_have_one_value_per_relation():
    with pytest.raises(ValueError, match="2 values for 3 relations"):
        compute_loss(loss_spec("ssr-pu", params={"prior": [0.2, 0.3]}), LOGITS, LABELS)


def test_cli_builds_and_rejects_the_new_losses(capsys):
    _, cfg = cli.parse(["--preset", "smoke", "--loss", "ssr-pu", "--loss-params", '{"prior_scale": 1.0}'])
    assert cfg.loss == loss_spec("ssr-pu", params={"prior_scale": 1.0})
    _, cfg = cli.parse(["--preset", "smoke", "--loss", "afl", "--loss-params", '{"gamma": 2.0}'])
    assert cfg.loss.kind == "afl" and cfg.loss.params == {"gamma": 2.0}
    with pytest.raises(SystemExit) as e:
        cli.parse(["--preset", "smoke", "--loss", "ssr-pu", "--loss-params", '{"prior": 2.0}'])
    assert e.value.code == 2 and "prior must be in (0, 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.parse(["--loss", "afl", "--loss-params", '{"gamma": -1}'])
    assert e.value.code == 2 and "focal gamma" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.parse(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "afl" in out and "ssr-pu" in out


# --------------------------------------------------------------------------- smoke training
@pytest.mark.parametrize("name", ["afl", "ssr-pu"])
def test_smoke_training_gives_finite_losses(name, tmp_path):
    run = T.train(CF.preset("smoke", loss=loss_spec(name), label=f"field-{name}"), root=tmp_path, progress=False)
    rows = [h for h in run.history if "train_loss" in h]
    assert rows and all(math.isfinite(h["train_loss"]) and math.isfinite(h["train_l1"]) for h in rows)
    if name == "ssr-pu":
        assert all(math.isfinite(h["train_pu_pos"]) and math.isfinite(h["train_pu_neg"]) for h in rows)
    assert run.scores.get("threshold") is None  # the threshold class decides, nothing tuned on dev


def test_faithfulness_doc_has_a_section_per_method():
    from pemscl import faithfulness as FA

    doc = FA.render(None)
    for m in FA.METHODS:
        assert m.kind in L.registered_losses() and f"loss `{m.kind}`" in doc
        assert [d.number for d in m.differences] == list(range(1, len(m.differences) + 1))
    # every param an option names is one the loss declares
    for kind, names in (("ssr-pu", ("prior_scale", "prior", "nonneg", "beta", "defit_gamma", "pos_weight",
                                    "margin")), ("afl", ("pos_weight", "gamma"))):
        opts = " ".join(d.option for d in next(m for m in FA.METHODS if m.kind == kind).differences)
        assert all(f"'{n}'" in opts for n in names) and set(names) <= set(L.get_loss(kind).defaults)


def test_ssr_pu_prepared_on_the_training_split_trains(tmp_path):
    # what the training loop does once before training (see prepare_loss): pi_labeled from every
    # training pair, then a run with those priors
    cfg = CF.preset("smoke", loss=loss_spec("ssr-pu"), label="field-ssr-pu-prepared")
    splits = T.prepare(cfg, progress=False)
    train_labels = [f["labels"] for f in splits.features["train"]]
    spec = prepare_loss(cfg.loss, train_labels)
    pl = spec.params["labeled_prior"]
    n_pairs = sum(len(x) for x in train_labels)
    assert len(pl) == len(splits.rel2id) - 1 and all(0 <= p < 1 for p in pl)
    assert sum(pl) * n_pairs == pytest.approx(sum(int(x[:, 1:].sum()) for x in train_labels))
    run = T.train(CF.preset("smoke", loss=spec, label="field-ssr-pu-prepared"), root=tmp_path, progress=False,
                  splits=splits)
    assert all(math.isfinite(h["train_loss"]) for h in run.history)

"""The loss registry: a toy loss registered from outside runs through compute_loss (values by
hand), built-ins are ordinary registry entries, params hash and round-trip, and mistakes raise
clear errors."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from pemscl import losses as L
from pemscl.losses import (LOSS_PRESETS, LossSpec, atl_loss, compute_loss, get_loss, loss_spec, register_loss,
                           register_preset, registered_losses, sample_negative_mask, scl_loss, unregister_loss)
from pemscl.utils import stable_hash

# two pairs, R = 2: pair 0 has relations {1, 2}; pair 1 is NA
LOGITS = torch.tensor([[0.5, 2.0, -1.0], [1.0, 0.3, -0.7]])
LABELS = torch.tensor([[0, 1, 1], [1, 0, 0]], dtype=torch.float)
TOY = "toy-softmax-ce"


def toy_ce(logits, labels, *, spec, features, neg_mask, reduction):
    """Softmax CE over NA + relations with temperature T: -sum_{c: y_c = 1} log softmax(f / T)_c;
    sampled-out negatives leave the softmax."""
    z = logits.float() / spec.params["temperature"]
    if neg_mask is not None:
        z = z.masked_fill(~neg_mask & ~(labels > 0), float("-inf"))
    # where, not a product: a sampled-out column's -inf must not meet a 0 label (NaN)
    per_pair = -torch.where(labels > 0, torch.log_softmax(z, 1), 0.0).sum(1)
    red = per_pair.sum() if reduction == "sum" else per_pair.mean()
    return red, {"targets": (labels > 0).sum().float()}


def toy_hand(row, labels, t=1.0, keep=None):
    cols = [c for c in range(len(row)) if keep is None or keep[c] or labels[c]]
    lse = math.log(sum(math.exp(row[c] / t) for c in cols))
    return sum(lse - row[c] / t for c in range(len(row)) if labels[c])


def hand_rows(t=1.0):
    return [toy_hand(r, y, t) for r, y in zip(LOGITS.tolist(), LABELS.tolist())]


@pytest.fixture
def toy():
    register_loss(TOY, toy_ce, defaults={"temperature": 1.0})
    try:
        yield TOY
    finally:
        if TOY in registered_losses():
            unregister_loss(TOY)


def test_toy_loss_runs_through_compute_loss(toy):
    rows = hand_rows()
    # pin the reference once by hand: pair 1 (NA) is -log softmax(f)_NA
    assert rows[1] == pytest.approx(-math.log(math.exp(1.0) / (math.exp(1.0) + math.exp(0.3) + math.exp(-0.7))))
    spec = loss_spec(toy)  # the default preset: no EM, no SCL
    assert spec == LossSpec(kind=toy, entropy=False, scl_weight=0.0)
    total, parts = compute_loss(spec, LOGITS, LABELS)
    assert float(total) == pytest.approx(sum(rows), abs=1e-6)
    assert parts == pytest.approx({"targets": 3.0, "l1": sum(rows)}, abs=1e-6)
    mean, _ = compute_loss(loss_spec(toy, reduction="mean"), LOGITS, LABELS)
    assert float(mean) == pytest.approx(sum(rows) / 2, abs=1e-6)
    # its own hyper-parameter, overriding the registered default
    hot, _ = compute_loss(loss_spec(toy, params={"temperature": 2.0}), LOGITS, LABELS)
    assert float(hot) == pytest.approx(sum(hand_rows(2.0)), abs=1e-6)
    assert sum(hand_rows(2.0)) != pytest.approx(sum(rows), abs=1e-3)


def test_toy_loss_gets_generic_scl_and_sampling(toy):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 4, generator=g)
    total, parts = compute_loss(loss_spec(toy, scl_weight=0.5, tau=0.3), LOGITS, LABELS, features=feats)
    assert parts["scl"] == pytest.approx(float(scl_loss(feats, LABELS, tau=0.3, reduction="sum")), abs=1e-6)
    assert float(total) == pytest.approx(sum(hand_rows()) + 0.5 * parts["scl"], abs=1e-6)
    # negative sampling reaches the toy as the mask sample_negative_mask draws from the same seed
    labels = torch.tensor([[1, 0, 0, 0, 0, 0]] * 3, dtype=torch.float)
    logits = torch.randn(3, 6, generator=g)
    mask = sample_negative_mask(labels, 0.5, torch.Generator().manual_seed(4))
    assert not mask.all()
    got, _ = compute_loss(loss_spec(toy, neg_sample_ratio=0.5), logits, labels,
                          generator=torch.Generator().manual_seed(4))
    want = sum(toy_hand(r, y, keep=k) for r, y, k in zip(logits.tolist(), labels.tolist(), mask.tolist()))
    assert float(got) == pytest.approx(want, abs=1e-5)


def test_presets_and_variants(toy):
    register_preset("toy-hot", LossSpec(kind=toy, entropy=False, scl_weight=0.1, params={"temperature": 3.0}))
    assert loss_spec("toy-hot").params == {"temperature": 3.0}
    # a spec's params are its own: editing one never edits the preset
    s = loss_spec("toy-hot")
    s.params["temperature"] = 9.0
    assert LOSS_PRESETS["toy-hot"].params == {"temperature": 3.0}
    with pytest.raises(ValueError, match="already registered"):
        register_preset("toy-hot", LossSpec(kind=toy))
    unregister_loss(toy)  # the loss and every preset of its kind go
    assert toy not in LOSS_PRESETS and "toy-hot" not in LOSS_PRESETS and toy not in registered_losses()


def test_decorator_with_explicit_preset_and_no_preset():
    try:
        @register_loss("toy-deco", preset=LossSpec(kind="toy-deco", entropy=False, scl_weight=0.2, tau=1.0))
        def deco(logits, labels, *, spec, features, neg_mask, reduction):
            return logits.float().sum() * 0.0 + 1.5, {}

        assert callable(deco) and deco.__name__ == "deco"  # the decorator returns the function
        assert loss_spec("toy-deco").scl_weight == 0.2
        register_loss("toy-nopreset", deco, preset=None)
        assert "toy-nopreset" in registered_losses() and "toy-nopreset" not in LOSS_PRESETS
        total, parts = compute_loss(LossSpec(kind="toy-nopreset", scl_weight=0.0), LOGITS, LABELS)
        assert float(total) == 1.5 and parts == {"l1": 1.5}
    finally:
        for name in ("toy-deco", "toy-nopreset"):
            if name in registered_losses():
                unregister_loss(name)


def test_builtins_are_registry_entries():
    assert {"pemscl", "atl", "bce", "ncrl"} <= set(registered_losses())
    for kind in ("pemscl", "atl", "bce", "ncrl"):
        assert get_loss(kind).name == kind and get_loss(kind).defaults == {}
    assert loss_spec("atl") == LossSpec(kind="atl", entropy=False, scl_weight=0.0)
    # compute_loss has no private path for the built-ins: replacing "atl" changes what it runs
    original = get_loss("atl")
    try:
        register_loss("atl", lambda logits, labels, **kw: (logits.float().sum() * 0.0 + 7.0, {}),
                      preset=LOSS_PRESETS["atl"], replace=True)
        assert float(compute_loss(loss_spec("atl"), LOGITS, LABELS)[0]) == 7.0
    finally:
        register_loss("atl", original.fn, defaults=original.defaults, preset=LossSpec(kind="atl", entropy=False,
                                                                                    scl_weight=0.0), replace=True)
    assert float(compute_loss(loss_spec("atl"), LOGITS, LABELS)[0]) == pytest.approx(
        float(atl_loss(LOGITS, LABELS, reduction="sum")), abs=1e-6)


def test_params_hash_and_json_round_trip():
    a = LossSpec(kind="x", params={"temperature": 2.0, "margins": [0.1, 0.2]})
    b = LossSpec(kind="x", params={"margins": [0.1, 0.2], "temperature": 2.0})  # other insertion order
    assert stable_hash(dataclasses.asdict(a)) == stable_hash(dataclasses.asdict(b))
    assert stable_hash(dataclasses.asdict(a)) != stable_hash(dataclasses.asdict(
        LossSpec(kind="x", params={"temperature": 2.5, "margins": [0.1, 0.2]})))
    back = LossSpec(**json.loads(json.dumps(dataclasses.asdict(a))))
    assert back == a
    assert LossSpec().params == {} and LossSpec().params is not LossSpec().params
    with pytest.raises(TypeError, match="keys must be strings"):
        LossSpec(params={1: 2.0})


def test_error_messages(toy):
    with pytest.raises(ValueError, match=r"unknown loss kind 'nope'.*'atl'.*'pemscl'"):
        compute_loss(LossSpec(kind="nope", scl_weight=0.0), LOGITS, LABELS)
    with pytest.raises(ValueError, match="already registered.*replace=True"):
        register_loss(toy, toy_ce)
    with pytest.raises(ValueError, match="already registered"):
        register_loss("pemscl", toy_ce)
    with pytest.raises(ValueError, match=r"no params \['temprature'\].*\['temperature'\]"):
        compute_loss(loss_spec(toy, params={"temprature": 2.0}), LOGITS, LABELS)
    with pytest.raises(ValueError, match="no params"):
        compute_loss(loss_spec("atl", params={"x": 1}), LOGITS, LABELS)
    with pytest.raises(ValueError, match="has kind 'pemscl'"):
        register_loss("toy-other", toy_ce, preset=LossSpec())
    assert "toy-other" not in registered_losses()  # a refused registration leaves nothing behind
    with pytest.raises(ValueError, match="unknown loss kind 'ghost'"):
        register_preset("ghost-preset", LossSpec(kind="ghost"))
    with pytest.raises(ValueError, match="unknown loss 'ghost'"):
        loss_spec("ghost")
    # a replacement that breaks the contract is named
    register_loss(toy, lambda logits, labels, **kw: (logits.float().sum(1), {}), replace=True)
    with pytest.raises(ValueError, match="0-dim tensor"):
        compute_loss(loss_spec(toy), LOGITS, LABELS)
    register_loss(toy, lambda logits, labels, **kw: (logits.float().sum(), {"l1": logits.sum()}), replace=True)
    with pytest.raises(ValueError, match="reserved part names"):
        compute_loss(loss_spec(toy), LOGITS, LABELS)
    register_loss(toy, lambda logits, labels, **kw: (logits.float().sum(), {"rows": logits.sum(1)}), replace=True)
    with pytest.raises(ValueError, match=r"parts \['rows'\] are not scalars"):
        compute_loss(loss_spec(toy), LOGITS, LABELS)
    assert L._LOSSES[toy].defaults == {}  # replace=True replaced the declared params too


# Keys computed before LossSpec and the registry moved to pemscl.lossspec (fp32 on cpu, so that no
# machine's precision measurement enters): moving the spec must not orphan a recorded run. A change
# of HASH_VERSION changes them all on purpose (tests/test_regression.py pins that side).
PRESET_KEYS = {"paper-redocred": "685180c7af21", "paper-docred": "3bf1e701137c",
               "paper-docred-released": "f6fe5d7faeda", "cpu": "50774357c4d9", "smoke": "58cf6038fbab"}
LOSS_KEYS = {"afl": "c65cfcd3f19b", "atl": "bb0094e033f8", "bce": "afa4413d349d", "ncrl": "5807d67a1ef8",
             "pemscl": "50774357c4d9", "pemscl-no-em": "1c3792c8ec32", "pemscl-no-em-no-scl": "0f7448cd8299",
             "pemscl-no-scl": "ce3dbb506204", "pemscl-ns": "c28a29046d77", "ssr-pu": "be331d3c445a"}


def test_config_keys_did_not_change_with_the_spec_module():
    from pathlib import Path

    from pemscl import config, experiments, runs

    assert {n: config.preset(n, precision="fp32", device="cpu").key() for n in PRESET_KEYS} == PRESET_KEYS
    assert {n: config.preset("cpu", loss=loss_spec(n), precision="fp32", device="cpu").key()
            for n in LOSS_KEYS} == LOSS_KEYS
    # the committed record: strict, so a record whose config no longer hashes to its key raises
    record = Path(__file__).resolve().parents[1] / "results" / "runs.jsonl"
    recs = runs.load_exported(record, strict=True)
    assert len(recs) >= 58
    _, attached = experiments.attach_all(recs, "cpu")
    assert sum(r is not None for rows in attached.values() for r in rows) >= 56

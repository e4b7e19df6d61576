"""Issue 25's speed options keep the numbers: length buckets (evaluation and training), the fused
AdamW kernel, torch.compile, and the precision every new training run resolves by measurement.
(Timings are benchmarks' business: benchmarks/bench_attention.py; nothing here times anything.)"""

import dataclasses
import os

import numpy as np
import pytest
import torch

from pemscl import config as CF
from pemscl import experiments as X
from pemscl import losses as LS
from pemscl import runner as R
from pemscl import train as T
from pemscl import utils as U
from test_model import feature, tiny_model  # tests/ is on sys.path (rootdir conftest)
from train_helpers import no_dropout_build


# --------------------------------------------------------------------------- evaluation buckets
def test_infer_sorts_by_length_and_returns_rows_in_document_order():
    m = tiny_model()
    lengths = [30, 8, 22, 12, 31, 9, 16]
    feats = [feature(n, [[(1, 2)], [(3, 4)], [(5, 6)]][: 2 + i % 2], seed=i, title=f"d{i}")
             for i, n in enumerate(lengths)]
    got = T.infer(m, feats, batch_size=3)
    one = [T.infer(m, [f], batch_size=1) for f in feats]  # no batching at all: the reference
    for name in ("logits", "zh", "zt"):
        want = torch.cat([o[name] for o in one])
        assert got[name].shape == want.shape
        assert torch.allclose(got[name], want, atol=1e-5), name
    # the batches really were by length: the first batch holds the three shortest documents
    seen = []
    orig = T._forward
    try:
        T._forward = lambda model, fs, idx, *a, **k: (seen.append(list(idx)), orig(model, fs, idx, *a, **k))[1]
        T.infer(m, feats, batch_size=3)
    finally:
        T._forward = orig
    assert seen == [[1, 5, 3], [6, 2, 0], [4]]
    empty = T.infer(m, [], batch_size=3)
    assert empty["logits"].shape == (0, 97)


# --------------------------------------------------------------------------- training buckets
def _cfg(**kw):
    return CF.preset("smoke", batch_size=2, **kw)


def test_epoch_batches_default_is_the_epoch_order():
    feats = [{"input_ids": [0] * n} for n in (5, 50, 7, 30, 9, 8, 44)]
    s = T.Streams(66)
    got = T.epoch_batches(_cfg(), s, 0, feats)
    order = s.order(0, len(feats))
    assert got == [order[i: i + 2] for i in range(0, 7, 2)]


def test_length_buckets_keep_every_document_and_the_seed_pairing():
    rng = np.random.default_rng(0)
    feats = [{"input_ids": [0] * int(n)} for n in rng.integers(10, 1000, 101)]
    cfg = _cfg(length_buckets=True)
    a = T.epoch_batches(cfg, T.Streams(66), 3, feats)
    # every document once per epoch, ceil(n / batch) steps as without buckets
    assert sorted(j for b in a for j in b) == list(range(101)) and len(a) == 51
    # documents of a batch are neighbours in length: much less padding than the random order
    pad = lambda bs: sum(max(len(feats[j]["input_ids"]) for j in b) * len(b) - sum(len(feats[j]["input_ids"]) for j in b)
                         for b in bs)
    assert pad(a) < 0.3 * pad(T.epoch_batches(_cfg(), T.Streams(66), 3, feats))
    # the seed and epoch alone decide: another loss, or a stream that drew numbers, changes nothing
    s = T.Streams(66)
    torch.rand(5, generator=s.sampling)
    other = dataclasses.replace(cfg, loss=LS.loss_spec("atl"))
    assert T.epoch_batches(other, s, 3, feats) == a
    assert T.epoch_batches(cfg, T.Streams(66), 4, feats) != a  # another epoch, other batches
    assert T.epoch_batches(cfg, T.Streams(67), 3, feats) != a
    # batches are shuffled, not short-to-long
    firsts = [len(feats[b[0]]["input_ids"]) for b in a]
    assert firsts != sorted(firsts)
    assert cfg.key() != _cfg().key()  # other batches, another run


# --------------------------------------------------------------------------- optimiser kernel
def test_fused_adamw_makes_the_update_of_the_default_loop():
    torch.manual_seed(0)
    ws = [torch.randn(33, 17, requires_grad=True), torch.randn(17, requires_grad=True)]
    ref = [w.detach().clone().requires_grad_(True) for w in ws]
    kw = dict(lr=1e-2, eps=1e-6, weight_decay=0.01)
    fused = torch.optim.AdamW(ws, **kw, **T.adamw_kernel(torch.device("cpu")))
    loop = torch.optim.AdamW(ref, **kw, foreach=False)
    assert fused.defaults.get("fused") is True
    for step in range(5):
        g = torch.Generator().manual_seed(step)
        for a, b in zip(ws, ref):
            a.grad = torch.randn(a.shape, generator=g)
            b.grad = a.grad.clone()
        fused.step()
        loop.step()
    for a, b in zip(ws, ref):
        assert (a - b).abs().max() < 1e-6
        assert (a - ws[0].new_tensor(0)).abs().max() > 0  # the parameters did move
    assert T.adamw_kernel(torch.device("meta")) == {}


# --------------------------------------------------------------------------- torch.compile
@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("ATEN_CPU_CAPABILITY")),
                    reason="compile is refused under an ATen ISA cap (see the next test): it aborts in inductor")
def test_compiled_encoder_gives_the_uncompiled_loss(tmp_path, monkeypatch):
    # dropout off in both: compiled dropout draws its masks with inductor's own RNG, so with it on
    # the one step differs by its masks (0.1% in the loss, 6% in the dev predictions of a one-step
    # model on one CI machine), which says nothing about the kernels
    monkeypatch.setattr(T, "build", no_dropout_build(T.build))
    base = dict(train_layers=None, max_train_docs=2, max_dev_docs=1, max_test_docs=1, epochs=1, batch_size=2,
                precision="fp32", save_model=False, eval_test=False)
    plain = T.train(CF.preset("smoke", label="plain", **base), root=tmp_path, progress=False)
    comp = T.train(CF.preset("smoke", label="compiled", compile=True, **base), root=tmp_path / "c", progress=False)
    assert plain.config.key() == comp.config.key()  # a kernel choice, not another run
    a, b = plain.history[0]["train_loss"], comp.history[0]["train_loss"]
    assert np.isfinite(a) and a == pytest.approx(b, rel=1e-4)
    # the model after the step predicts the same pairs, up to the few whose logit sits on the
    # threshold within the kernels' rounding
    assert comp.scores["dev"]["n_pred"] == pytest.approx(plain.scores["dev"]["n_pred"], rel=5e-3)


def test_compile_is_refused_under_an_aten_isa_cap(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    model = torch.nn.Module()
    with pytest.raises(ValueError, match="ATEN_CPU_CAPABILITY"):
        T.compile_encoder(model, torch.device("cpu"))


# --------------------------------------------------------------------------- precision of new training
def test_new_training_resolves_precision_by_measurement(monkeypatch):
    monkeypatch.delenv("PEMSCL_PRECISION", raising=False)
    assert CF.preset("smoke").precision == "auto"
    quick = X.make_config(X.get_profile("quick"), "ATL", X.make_loss(X.get_profile("quick"), "atl"),
                          regime="redocred-mini", seed=66)
    assert quick.precision == "auto"
    # the cpu profile keeps the bf16 of its recorded runs (their keys) and trains in it everywhere:
    # on a CPU without bf16 instructions its products run in fp32 kernels (bf16cpu), and it says so
    cpu = X.headline("cpu")[0]
    assert cpu.precision == "bf16"
    monkeypatch.setattr(U, "measured_cpu_precision", lambda: "fp32")
    monkeypatch.setenv("PEMSCL_BF16_GEMM", "fp32")
    assert "fp32 kernels, rounded to bf16" in U.precision_line(cpu.precision, torch.device("cpu"))
    monkeypatch.setattr(U, "measured_cpu_precision", lambda: "bf16")
    same = dataclasses.replace(cpu, device="cpu")
    assert same.key() == dataclasses.replace(same, precision="auto").key()  # bf16 pays here: the same run

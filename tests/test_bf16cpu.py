"""bf16 autocast on a CPU without bf16 instructions: products through fp32 kernels (pemscl/bf16cpu.py)."""

import pytest
import torch

from pemscl import bf16cpu as B
from pemscl import config as CF
from pemscl import train as T
from pemscl import utils as U

CPU = torch.device("cpu")


def test_a_product_accumulates_in_fp32_and_rounds_once_to_bf16():
    # 1 + 3 * 2**-8: every operand is a bf16 number; the exact sum needs 9 significant bits, bf16
    # keeps 8, and it lies half-way between 1 + 2**-7 and 1 + 2**-6: round-to-even gives 1 + 2**-6.
    # A kernel that rounded each partial sum to bf16 would give 1.0 (1 + 2**-8 rounds back to 1).
    a = torch.tensor([[1.0, 2.0 ** -8, 2.0 ** -8, 2.0 ** -8]], dtype=torch.bfloat16)
    b = torch.ones(4, 1, dtype=torch.bfloat16)
    with B.Fp32Accumulate() as mode:
        out = a @ b
        bias = torch.addmm(torch.tensor([0.5], dtype=torch.bfloat16), a, b)
        batched = torch.bmm(a[None], b[None])
    assert out.dtype == bias.dtype == batched.dtype == torch.bfloat16
    assert out.item() == batched.item() == 1 + 2.0 ** -6
    assert bias.item() == 1.5 + 2.0 ** -6  # 1.51171875: half-way between steps of 2**-7, to the even one
    assert mode.count == 3
    with B.Fp32Accumulate() as mode:  # fp32 products pass through untouched
        assert torch.equal(a.float() @ b.float(), torch.tensor([[1.01171875]]))
    assert mode.count == 0


def test_its_products_are_the_native_bf16_kernels_up_to_the_order_of_the_sums():
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(64, 48, generator=g).bfloat16(), torch.randn(96, 48, generator=g).bfloat16()
    native = torch.nn.functional.linear(x, w)
    with B.Fp32Accumulate():
        emulated = torch.nn.functional.linear(x, w)
    diff = (native.float() - emulated.float()).abs()
    assert (diff == 0).float().mean() > 0.99  # nearly every output the same bits ...
    assert (diff <= native.float().abs() * 2.0 ** -7 + 1e-6).all()  # ... the rest within one bf16 step


def test_attention_and_the_backward_go_through_fp32_kernels_and_agree_with_fp32_math():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 16, 8, generator=g).bfloat16().requires_grad_() for _ in range(3))
    with B.Fp32Accumulate() as mode:
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        out.float().square().sum().backward()
    assert out.dtype == q.grad.dtype == torch.bfloat16 and mode.count == 2  # the forward and its backward
    # the reference: the same bf16 inputs, attention written out in fp32
    qf, kf, vf = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = torch.softmax(qf @ kf.transpose(-1, -2) / 8 ** 0.5, -1) @ vf
    ref.square().sum().backward()
    assert torch.allclose(out.float(), ref, rtol=2 ** -7, atol=1e-6)
    assert torch.allclose(q.grad.float(), qf.grad, rtol=2 ** -6, atol=2e-2)


def test_it_is_on_exactly_where_bf16_meets_a_cpu_without_bf16_instructions(monkeypatch):
    monkeypatch.delenv("PEMSCL_BF16_GEMM", raising=False)
    monkeypatch.setattr(B, "cpu_supports_bf16", lambda: False)
    assert B.emulate(CPU, torch.bfloat16)
    assert not B.emulate(CPU, None) and not B.emulate(CPU, torch.float16)
    assert not B.emulate(torch.device("cuda"), torch.bfloat16)
    assert isinstance(B.gemms(CPU, torch.bfloat16), B.Fp32Accumulate)
    monkeypatch.setattr(B, "cpu_supports_bf16", lambda: True)
    assert not B.emulate(CPU, torch.bfloat16)
    monkeypatch.setenv("PEMSCL_BF16_GEMM", "fp32")  # forced either way
    assert B.emulate(CPU, torch.bfloat16)
    monkeypatch.setenv("PEMSCL_BF16_GEMM", "bf16")
    with pytest.raises(ValueError, match="PEMSCL_BF16_GEMM must be 'native' or 'fp32'"):
        B.emulate(CPU, torch.bfloat16)
    # utils.autocast takes the mode with it; its line says what a pinned bf16 run does here
    monkeypatch.setenv("PEMSCL_BF16_GEMM", "fp32")
    with U.autocast(CPU, torch.bfloat16):
        y = torch.ones(2, 3) @ torch.ones(3, 1)  # autocast makes it bf16, the mode an fp32 product
    assert y.dtype == torch.bfloat16 and y.tolist() == [[3.0], [3.0]]
    assert "fp32 kernels, rounded to bf16" in U.precision_line("bf16", CPU)


def test_a_bf16_run_through_fp32_kernels_learns_and_says_so(tmp_path, monkeypatch):
    # (the native kernels are not trained here: on an AVX2-only CPU they take 11x as long)
    monkeypatch.setenv("PEMSCL_BF16_GEMM", "fp32")
    cfg = CF.preset("smoke", precision="bf16", train_layers=1, epochs=2, max_train_docs=8, max_dev_docs=4,
                    max_test_docs=2, label="bf16-fp32-kernels")
    run = T.train(cfg, root=tmp_path, progress=False)
    assert run.scores["precision"] == "bfloat16" and run.scores["bf16_gemm"] == "fp32 accumulate"
    losses = [h["train_loss"] for h in run.history]
    assert losses[1] < losses[0]  # it learns: the second epoch's loss is below the first's


def test_compile_with_emulated_bf16_is_refused_before_training(monkeypatch):
    monkeypatch.setenv("PEMSCL_BF16_GEMM", "fp32")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    with pytest.raises(ValueError, match="compile=True with bf16 on a CPU without bf16 instructions"):
        T.compile_encoder(None, CPU, torch.bfloat16)  # refused before the model is touched

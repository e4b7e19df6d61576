"""bf16 autocast on a CPU without bf16 instructions, at fp32 speed and with bf16's arithmetic.

bf16 autocast means: matrix products take bf16 operands, accumulate in fp32 and return bf16.
CPUs with AVX512-BF16 or AMX do that in hardware. On a CPU without them (an AVX2-only EPYC)
PyTorch 2.13 still runs bf16 GEMMs, but in a slow generic kernel: measured there, one thread, a
1024x384 @ 384x1536 product took 927 ms in bf16 against 13.5 ms in fp32, and a MiniLM DocRE
training step 11.6 s a document against 0.87 s (`benchmarks/bf16_cpu.py`, results/bf16_cpu.json).
That put every run of the cpu profile, which is bf16 throughout, out of reach of such a machine.

The same arithmetic is cheap in fp32: a bf16 number is an fp32 number with the low 16 mantissa
bits zero, so casting the bf16 operands up, multiplying with the fp32 kernel (which accumulates
in fp32) and rounding the result to bf16 is what the bf16 instruction computes, up to the order
in which the fp32 sums are added. Measured against the native bf16 kernel on the same CPU,
99.989% of that product's outputs are the same bits and the rest within two bf16 steps; through
a whole step the rounding differences compound as they do between any two bf16 kernels (the
benchmark's `agreement`: closer to the native path than fp32 is). This path's step: 0.99 s.
The one place it differs by design is attention: PyTorch's bf16 flash-attention kernel rounds
the softmax probabilities to bf16 before the product with V; here they stay fp32 (a slightly
more exact bf16 run, not a different method).

`Fp32Accumulate` is a dispatch mode, below autograd and autocast: it sees the bf16 products that
autocast made, in the forward and in the backward, and nothing else changes. It is switched on
only where it pays (`emulate`): bf16 on a CPU whose flags lack avx512_bf16 / amx_bf16, unless
$PEMSCL_BF16_GEMM says "native" (to compare the two) or "fp32" (to force it)."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# the products bf16 autocast sends to a GEMM kernel, and which of their outputs are bf16 (the
# flash-attention forward also returns the log-sum-exp, which the bf16 kernel keeps in fp32)
BF16_OUTPUTS = {
    aten.mm.default: None, aten.addmm.default: None, aten.bmm.default: None, aten.baddbmm.default: None,
    aten.addbmm.default: None, aten.mv.default: None, aten.addmv.default: None, aten.dot.default: None,
    aten._scaled_dot_product_flash_attention_for_cpu.default: (0,),
    aten._scaled_dot_product_flash_attention_for_cpu_backward.default: None,
}


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 matmul (AVX512-BF16 / AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def gemm_kernels() -> str:
    """"native" or "fp32": how bf16 products are computed on this CPU ($PEMSCL_BF16_GEMM overrides)."""
    forced = os.environ.get("PEMSCL_BF16_GEMM", "")
    if forced:
        if forced not in ("native", "fp32"):
            raise ValueError(f"PEMSCL_BF16_GEMM must be 'native' or 'fp32', got {forced!r}")
        return forced
    return "native" if cpu_supports_bf16() else "fp32"


def emulate(device: torch.device, dtype: torch.dtype | None) -> bool:
    """True when bf16 products on `device` should go through fp32 kernels."""
    return device.type == "cpu" and dtype == torch.bfloat16 and gemm_kernels() == "fp32"


def _up(x):
    return x.float() if isinstance(x, torch.Tensor) and x.dtype == torch.bfloat16 else x


class Fp32Accumulate(TorchDispatchMode):
    """Runs every bf16 matrix product through the fp32 kernel and rounds its result to bf16.
    `count` is how many products it took over (a test and the benchmark read it)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in BF16_OUTPUTS or not any(isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16
                                               for a in args):
            return func(*args, **kwargs)
        self.count += 1
        out = func(*[_up(a) for a in args], **{k: _up(v) for k, v in kwargs.items()})
        if isinstance(out, torch.Tensor):
            return out.bfloat16()
        keep = BF16_OUTPUTS[func]
        return type(out)(o.bfloat16() if isinstance(o, torch.Tensor) and (keep is None or i in keep) else o
                         for i, o in enumerate(out))


def gemms(device: torch.device, dtype: torch.dtype | None):
    """The mode where `emulate` says so, else a null context: wrap a forward and its backward."""
    return Fp32Accumulate() if emulate(device, dtype) else contextlib.nullcontext()

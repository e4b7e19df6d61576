"""bf16 autocast on this CPU three ways: fp32, bf16 with the CPU's own bf16 kernels ("native"),
and bf16 with its products in fp32 kernels rounded to bf16 ("fp32 accumulate", pemscl/bf16cpu.py).

    OMP_NUM_THREADS=1 python benchmarks/bf16_cpu.py            # ~3 minutes on an AVX2-only CPU
    OMP_NUM_THREADS=1 python benchmarks/bf16_cpu.py --reps 2   # quicker

Measures, one process, the paths alternating after a warm-up:
  gemm        one 1024x384 @ 384x1536 product: ms per path, and how many of the bf16 outputs of
              "fp32 accumulate" are bit for bit those of "native" (the rest: how far, in bf16 units)
  step        full fine-tuning steps of the fast MiniLM DocRE model, batch 2, real redocred-mini
              documents (PEMSCL loss): seconds per document per path
  agreement   one forward and backward from the same weights: relative difference of the logits and
              of the gradient, "fp32 accumulate" vs "native", beside "fp32" vs "native" for scale
Written to results/bf16_cpu.json (or $PEMSCL_RESULTS) with the machine; trains no run.
On a CPU with bf16 instructions "native" is what training uses and the comparison still holds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from unittest import mock

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))

from bench_attention import CPU, alternate, machine, optimiser, train_step  # noqa: E402

from pemscl import bf16cpu  # noqa: E402
from pemscl import data as D  # noqa: E402
from pemscl.features import load_features  # noqa: E402
from pemscl.losses import compute_loss, loss_spec  # noqa: E402
from pemscl.model import DocREModel, ModelConfig, batch_to, resolve_encoder  # noqa: E402
from pemscl.utils import atomic_write_json, results_dir  # noqa: E402

PATHS = {"fp32": (None, "native"), "native": (torch.bfloat16, "native"), "fp32 accumulate": (torch.bfloat16, "fp32")}


def kernels(which: str):
    """$PEMSCL_BF16_GEMM for the duration (bf16cpu reads it on each autocast)."""
    return mock.patch.dict(os.environ, {"PEMSCL_BF16_GEMM": which})


def case_gemm(reps: int) -> dict:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1024, 384, generator=g), torch.randn(384, 1536, generator=g)
    ab, bb = a.bfloat16(), b.bfloat16()
    fns = {"fp32": lambda: a @ b, "native": lambda: ab @ bb}

    def emulated():
        with bf16cpu.Fp32Accumulate():
            return ab @ bb
    fns["fp32 accumulate"] = emulated
    times = alternate({k: (lambda r, f=f: f()) for k, f in fns.items()}, reps, warmup=1, docs_per_call=1)
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    nat, emu = (ab @ bb).float(), emulated().float()
    ulp = (nat - emu).abs() / (nat.abs() * 2.0 ** -7)  # bf16 keeps 8 significant bits
    return {"ms": ms, "bitwise_equal": float((nat == emu).float().mean()), "max_diff_bf16_units": float(ulp.max())}


def models(n_classes: int) -> dict[str, DocREModel]:
    out = {}
    for name in PATHS:
        torch.manual_seed(0)
        out[name] = DocREModel(ModelConfig(encoder="minilm", num_classes=n_classes))
    return out


def case_step(feats, n_classes: int, reps: int) -> dict:
    ms = models(n_classes)
    for m in ms.values():
        m.train()
    opts = {k: optimiser(m, "fast") for k, m in ms.items()}
    spec = loss_spec("pemscl")
    batches = [feats[i * 2: (i + 1) * 2] for i in range(len(feats) // 2)]

    def call(name):
        def run(r):
            with kernels(PATHS[name][1]):
                train_step(ms[name], opts[name], batches[r % len(batches)], PATHS[name][0], spec)
        return run
    times = alternate({name: call(name) for name in PATHS}, reps, warmup=1, docs_per_call=2)
    return {"s_per_doc": {k: statistics.median(v) for k, v in times.items()},
            "spread": {k: [min(v), max(v)] for k, v in times.items()}, "repeats": reps}


def case_agreement(feats, n_classes: int) -> dict:
    ms = models(n_classes)
    spec = loss_spec("pemscl")
    logits, grads = {}, {}
    for name, (amp, which) in PATHS.items():
        m = ms[name]
        m.train()
        b = batch_to(m.collate(feats[:2]), CPU)
        with kernels(which), bf16cpu.gemms(CPU, amp):
            torch.manual_seed(0)  # the same dropout masks in every path
            with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
                out = m(b)
            loss, _ = compute_loss(spec, out["logits"].float(), b["labels"],
                                   features=(out["zh"].float(), out["zt"].float()),
                                   generator=torch.Generator().manual_seed(0))
            loss.backward()
        logits[name] = out["logits"].detach().float()
        grads[name] = torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])

    def rel(x, y):
        return float((x - y).norm() / y.norm())
    return {f"{k} vs native": {"logits": rel(logits[k], logits["native"]), "grad": rel(grads[k], grads["native"])}
            for k in ("fp32 accumulate", "fp32")}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="timed steps per path (native bf16 is slow where emulated)")
    ap.add_argument("--out", type=Path, default=None, help="default: results/bf16_cpu.json")
    a = ap.parse_args(argv)
    rel2id = D.load_rel2id()
    regime = D.load_regime("redocred-mini")
    feats = load_features(regime.train[:2 * (a.reps + 1)], resolve_encoder("minilm"), rel2id=rel2id, progress=False)
    res = {"machine": {**machine(), "bf16_gemm_here": bf16cpu.gemm_kernels()}}
    res["gemm"] = case_gemm(max(5, 3 * a.reps))
    print("gemm", res["gemm"], flush=True)
    res["step"] = case_step(feats, len(rel2id), a.reps)
    print("step", res["step"]["s_per_doc"], flush=True)
    res["agreement"] = case_agreement(feats, len(rel2id))
    print("agreement", res["agreement"], flush=True)
    out = a.out or results_dir() / "bf16_cpu.json"
    atomic_write_json(out, res)
    print(f"wrote {out}")
    return res


if __name__ == "__main__":
    main()

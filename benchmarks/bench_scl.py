"""Factorised vs materialised Gram matrix of the SCL pair features (Eq. 14, FAITHFULNESS #7).

    python benchmarks/bench_scl.py [--pairs 1500] [--reps 3] [--device cpu|cuda] [--sizes 6x64,16x64]

The SCL features are x = concat_k vec(z_h^k (x) z_t^k), (N, K*b*b): 24,576 wide for MiniLM
(emb 384 / block 64 -> K=6) and 65,536 for RoBERTa-large (1024 / 64 -> K=16). The materialised
path builds x (group_outer), L2-normalises it and multiplies x @ x.T: O(N^2 K b^2). pair_gram on
the factors (zh, zt) uses x_i . x_j = sum_k (z_h,i^k . z_h,j^k)(z_t,i^k . z_t,j^k): O(N^2 K b).
Both are timed forward + backward (a random cotangent on the cosine matrix), median over reps
after one warm-up, and must agree to 1e-5.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from pemscl.losses import group_outer, pair_gram


def materialised(zh: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
    x = F.normalize(group_outer(zh, zt), dim=-1)
    return x @ x.T


def factorised(zh: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
    return pair_gram((zh, zt))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_fwd_bwd(fn, zh, zt, cot, reps: int) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for _ in range(reps + 1):  # the first call warms up
        zh.grad = zt.grad = None
        _sync(zh.device)
        t = time.perf_counter()
        out = fn(zh, zt)
        out.backward(cot)
        _sync(zh.device)
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:]), out.detach()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=1500)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", default="6x64,16x64", help="KxB group sizes, comma separated")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator(device=device).manual_seed(0)
    print(f"device={device} threads={torch.get_num_threads()} pairs={args.pairs} reps={args.reps} (fwd+bwd, median)")
    print("| K x b | x width | materialised s | factorised s | speed-up | max |diff| |")
    print("|---|---:|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        k, b = (int(v) for v in size.lower().split("x"))
        n = args.pairs
        # tanh factors, like the model's head extractors
        zh = torch.tanh(torch.randn(n, k, b, generator=g, device=device)).requires_grad_(True)
        zt = torch.tanh(torch.randn(n, k, b, generator=g, device=device)).requires_grad_(True)
        cot = torch.randn(n, n, generator=g, device=device)
        t_mat, g_mat = time_fwd_bwd(materialised, zh, zt, cot, args.reps)
        grads_mat = (zh.grad.clone(), zt.grad.clone())
        t_fac, g_fac = time_fwd_bwd(factorised, zh, zt, cot, args.reps)
        diff = (g_mat - g_fac).abs().max().item()
        assert diff < 1e-5, f"Gram matrices differ by {diff}"
        for a, c in zip(grads_mat, (zh.grad, zt.grad)):
            torch.testing.assert_close(a, c, atol=1e-3, rtol=1e-3)
        print(f"| {k} x {b} | {k * b * b:,} | {t_mat:.3f} | {t_fac:.3f} | {t_mat / t_fac:.1f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()

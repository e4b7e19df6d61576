"""benchmarks/bench_paper_shape.py at tiny size on a CPU: the eager-vs-fast comparison (--compare),
the analytic FLOP count behind its MFU, the device peak table, and benchmarks/gpu_check.sh's bench
part (its command lines, run with a stand-in interpreter: no GPU needed)."""

import json
import math
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from train_helpers import bench_paper_shape

from pemscl import gpu_check as G

REPO = Path(__file__).resolve().parents[1]
TINY = ["--layers", "2", "--hidden", "64", "--batch", "1", "--warmup", "0", "--reps", "1", "--device", "cpu"]


def _bench():
    return bench_paper_shape()


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpu_check")
    out = folder / "bench_attention_gpu.json"
    res = _bench().main(["--compare", *TINY, "--precision", "fp32", "--out", str(out)])
    return folder, res, json.loads(out.read_text())


def tiny_flops_per_doc(layers=2, h=64, inter=256, emb=768, block=64, classes=97, windows=(512, 512), pairs=870):
    """The benchmark's formula for the tiny shape, counted by hand (RoBERTa layers, ATLOP head)."""
    layer = 4 * (h * h + h) + 2 * h + (h * inter + inter) + (inter * h + h) + 2 * h  # no embeddings
    head = 2 * (2 * h * emb + emb) + emb * block * classes + classes
    dense = 6 * layers * layer * sum(windows)
    attention = 3 * sum(4 * layers * L * L * h for L in windows)
    return dense + attention + 6 * head * pairs


def test_compare_runs_both_paths_on_the_same_weights(compared):
    _, res, saved = compared
    assert saved["mode"] == "compare" and saved["precision"] == "fp32" and saved["device_name"] == "cpu"
    assert set(saved["paths"]) == {"eager", "fast"}
    assert saved["paths"]["eager"]["attention_impl"] == {"encoder": "eager", "last_layer": "eager"}
    assert saved["paths"]["fast"]["attention_impl"] == {"encoder": "sdpa", "last_layer": "eager"}
    assert "fused=True" in saved["paths"]["fast"]["optimizer"] and "default" in saved["paths"]["eager"]["optimizer"]
    assert saved["max_abs_logit_diff"] < 1e-4 and "max_abs_logit_diff_fp32" not in saved["logits"]
    (row,) = saved["batches"]
    assert row["batch"] == 1 and set(row["paths"]) == {"eager", "fast"}
    for p, v in row["paths"].items():
        sp = v["seconds_per_doc"]
        assert 0 < sp["min"] <= sp["median"] <= sp["max"] and sp["n"] == 1
        assert v["mfu"] is None  # a CPU has no peak in the table
        assert v["peak_memory"]["kind"].startswith("peak RSS") and v["peak_memory"]["mb"] > 0
        assert list(v["step_seconds"]) == ["encoder", "pooling", "head", "loss", "backward_optimizer"]
    ratio = saved["ratio_eager_over_fast"]
    assert math.isfinite(ratio) and ratio > 0
    assert ratio == pytest.approx(row["paths"]["eager"]["seconds_per_doc"]["median"]
                                  / row["paths"]["fast"]["seconds_per_doc"]["median"])
    assert saved["mfu"] == {"eager": None, "fast": None}
    assert saved["device_peak_flops"] is None and saved["peak_source"] is None
    assert saved["fit"]["fast"] == {"searched": False, "max_batch": 1, "note": "not searched on a CPU: the batches given"}
    assert res["ratio_eager_over_fast"] == ratio


def test_flops_per_doc_is_the_formula(compared):
    _, _, saved = compared
    f = saved["flops"]
    assert saved["flops_per_doc"] > 0
    assert saved["flops_per_doc"] == pytest.approx(tiny_flops_per_doc(), rel=1e-12)
    assert f["window_lengths"] == [512, 512] and f["tokens"] == 1024 and f["pairs"] == 870
    assert f["total"] == f["dense_flops"] + f["attention_flops"] + f["head_flops"]
    assert f["attention_flops"] == 3 * 4 * 2 * 512 ** 2 * 64 * 2


def test_mfu_is_flops_over_seconds_over_peak():
    B = _bench()
    f = B.analytic_flops(100, 10, 2, 8, [4, 2], 3)
    assert f["dense_flops"] == 6 * 100 * 6 and f["attention_flops"] == 3 * 4 * 2 * 8 * (16 + 4)
    assert f["head_flops"] == 6 * 10 * 3
    assert B.mfu(2e12, 2.0, 1e12) == pytest.approx(1.0)
    assert B.mfu(2e12, 2.0, None) is None


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H100 SXM5 80GB", 989e12),
    ("NVIDIA H200", 989e12), ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA A100 80GB PCIe", 312e12),
    ("NVIDIA L40S", 362e12), ("NVIDIA A10", 125e12), ("NVIDIA GeForce RTX 4090", 165e12),
    ("NVIDIA A10G", None), ("Tesla T4", None), ("cpu", None), (None, None)])
def test_device_peak_table(name, peak):
    got, source = _bench().device_peak_flops(name)
    assert got == peak
    assert (source is None) == (peak is None)
    if peak:
        assert "datasheets" in source and "no sparsity" in source


def test_peak_override_wins():
    B = _bench()
    assert B.device_peak_flops("NVIDIA H100 80GB HBM3", 500.0) == (500e12, "--peak-tflops (given)")
    assert B.device_peak_flops("cpu", 1.5)[0] == 1.5e12


def test_gpu_check_summarises_the_comparison(compared):
    folder, _, saved = compared
    s = G.summary(folder)
    c = s["bench_attention"]
    (row,) = c["rows"]
    assert row["batch"] == 1 and row["ratio"] == saved["ratio_eager_over_fast"]
    assert row["fast_s_per_doc"] == saved["batches"][0]["paths"]["fast"]["seconds_per_doc"]["median"]
    assert row["eager_mfu"] is None and row["fast_peak_mb"] > 0
    assert c["max_abs_logit_diff"] == saved["max_abs_logit_diff"] and c["fit_searched"] is False
    md = G.markdown(s)
    assert "Eager against fast attention at the paper's shape (2x64, 1000-token documents, fp32" in md
    assert "no known device peak: MFU not reported" in md and "| 1 | " in md


def test_gpu_check_sh_bench_commands(tmp_path):
    """The bench part under `set -euo pipefail` with a stand-in interpreter that records its argv:
    both benchmark command lines parse, and a failing benchmark fails the script."""
    log = tmp_path / "argv.log"
    shim = tmp_path / "py"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {shlex.quote(str(log))}\n'
                    'case "$*" in *--compare*) exit "${SHIM_RC:-0}";; esac\n')
    shim.chmod(0o755)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": str(shim)}
    r = subprocess.run(["bash", "benchmarks/gpu_check.sh", "bench", str(out)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    calls = [line.split() for line in log.read_text().splitlines() if "bench_paper_shape.py" in line]
    assert len(calls) == 2
    B = _bench()
    single, comp = (B.parse_args(c[1:]) for c in calls)
    assert not single.compare and single.attention == "fast" and single.batch == 4
    assert single.out == str(out / "bench_paper_shape.json")
    assert comp.compare and comp.batches == [4, 8] and (comp.warmup, comp.reps) == (2, 5)
    assert comp.out == str(out / "bench_attention_gpu.json")
    assert (out / "bench.log").exists() and (out / "bench_attention_gpu.log").exists()
    r = subprocess.run(["bash", "benchmarks/gpu_check.sh", "bench", str(out)], cwd=REPO,
                       env={**env, "SHIM_RC": "3"}, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0  # pipefail: the benchmark's failure is not hidden by tee


def test_fit_search_steps_up_until_out_of_memory(monkeypatch):
    """fit_search (the GPU's largest-batch search) on a CPU, with out-of-memory simulated above one
    document (two windows): batch 1 fits, 2 does not, 4 is not tried."""
    import torch

    B = _bench()
    real = B.timed_step

    def step(model, opt, batch, *args):
        if batch["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, opt, batch, *args)

    monkeypatch.setattr(B, "timed_step", step)
    a = B.parse_args(TINY + ["--precision", "fp32"])
    pre = B.C.preset(B.PRESET)
    feats = [B.synthetic_feature(B.DocShape(), a.vocab, __import__("numpy").random.default_rng(0)) for _ in range(2)]
    fit = B.fit_search(a, 1, feats, torch.device("cpu"), None, pre, batches=(1, 2, 4))
    for p in ("eager", "fast"):
        assert fit[p]["searched"] and fit[p]["max_batch"] == 1
        assert [(t["batch"], t["fits"]) for t in fit[p]["tried"]] == [(1, True), (2, False)]

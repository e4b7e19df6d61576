"""Helpers shared by the tests that train whole runs or load a benchmark script."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def no_dropout_build(real_build):
    """`train.build` with every dropout off, so two runs that draw their dropout masks differently
    (two ranks, a compiled encoder) can be compared number for number."""
    def build(cfg, splits, **kw):
        ctx = real_build(cfg, splits, **kw)
        for m in ctx.model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0  # the encoder's attention dropout reads this too
        return ctx

    return build


def benchmark_script(name: str):
    """benchmarks/<name>.py as a module (the scripts there are not part of the package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(mod)
    return mod


def bench_paper_shape():
    return benchmark_script("bench_paper_shape")

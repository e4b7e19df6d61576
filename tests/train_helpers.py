"""Helpers shared by the tests that train whole runs."""
from __future__ import annotations

import torch


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

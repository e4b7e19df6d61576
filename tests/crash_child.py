"""A smoke run trained and recorded in a process of its own, as a train_profile worker does
(runner._train_one), and killed with SIGKILL (what the OOM killer or a preempted job
sends: no handler, no cleanup) at a chosen point. Used by tests/test_crash.py.

    python tests/crash_child.py ROOT [POINT N]

POINT, counted in calls of this process:
    step           before the Nth optimiser step (mid-epoch)
    state-half     while writing the Nth state.pt: half its bytes in the temp file
    state-written  the Nth state.pt complete in its temp file, not yet renamed
    state-linked   the Nth state.pt replacing an older one: that one kept as state.prev.pt, the new
                   one not yet renamed (the Nth call of _keep_previous: the N+1th save)
    record         the Nth merged runs.jsonl complete in its temp file, not yet renamed (lock held)
Without POINT the run is not interrupted. Prints "steps <n>": the optimiser steps this process
took, so a test sees from which epoch a rerun resumed.
"""
from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

import torch

from pemscl import config as CF
from pemscl import losses as LS
from pemscl import runner
from pemscl import runs as RS
from pemscl import train as T
from pemscl.utils import atomic_path

# 4 training documents in batches of 2: 2 steps an epoch, 3 epochs; fp32 on one CPU thread
# (_train_one sets it), so runs are equal bit for bit; NS draws from the sampling stream too
CONFIG = dict(epochs=3, device="cpu", precision="fp32", max_train_docs=4, label="test-crash",
              loss=LS.loss_spec("pemscl-ns"))


def config() -> CF.TrainConfig:
    return CF.preset("smoke", **CONFIG)


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def on_call(n: int, fn, *, after: bool):
    """fn, killing the process before (or after) its nth call."""
    calls = 0

    def wrapped(*a, **k):
        nonlocal calls
        calls += 1
        if calls == n and not after:
            die()
        out = fn(*a, **k)
        if calls == n:
            die()
        return out

    return wrapped


def arm(point: str, n: int) -> None:
    if point == "step":
        T.train_step = on_call(n, T.train_step, after=False)
    elif point == "state-half":
        real, saves = torch.save, 0

        def save(obj, f, *a, **k):
            nonlocal saves
            if isinstance(obj, dict) and obj.get("format") == T.STATE_FORMAT:  # the resumable state only
                saves += 1
                if saves == n:
                    buf = io.BytesIO()
                    real(obj, buf)
                    Path(f).write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
                    die()
            return real(obj, f, *a, **k)

        torch.save = save
    elif point == "state-written":
        T.fsync_file = on_call(n, T.fsync_file, after=True)  # train's name: called by save_state alone
    elif point == "state-linked":
        T._keep_previous = on_call(n, T._keep_previous, after=True)
    elif point == "record":
        merges = 0

        def write(path, text, durable=False):  # runs' name: called by export_runs alone
            nonlocal merges
            merges += 1
            with atomic_path(path) as tmp:
                Path(tmp).write_text(text, encoding="utf-8")
                if merges == n:
                    die()  # inside the block: the temp file stays, the rename never happens

        RS.atomic_write_text = write
    else:
        raise SystemExit(f"unknown point {point!r}")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        arm(argv[1], int(argv[2]))
    steps, real_step = 0, T.train_step

    def count(ctx, idx):
        nonlocal steps
        steps += 1
        return real_step(ctx, idx)

    T.train_step = count
    print(runner._train_one(config(), 1, argv[0]), flush=True)
    print(f"steps {steps}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

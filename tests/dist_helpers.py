"""Run a function on W local CPU processes joined in a gloo process group, for tests.

    results = run_ranks(fn, 2, arg1, arg2)   # fn(dist, arg1, arg2) on ranks 0 and 1

``fn`` must be importable by name (a module-level function of a test module or of this one): the
ranks are fresh "spawn" interpreters that unpickle it. Each rank gets torchrun's environment
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) so ``pemscl.distributed.init`` works as
under torchrun; the return values (picklable; tensors are copied) come back in rank order. A rank
that raises fails the call with its traceback; a hang fails it after ``timeout_s``.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue
import socket
import traceback
from typing import Any, Callable


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    """torchrun's variables for one local rank (also usable for subprocess-launched ranks)."""
    return {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
            "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _entry(rank: int, world: int, port: int, fn: Callable, args: tuple, out: Any) -> None:
    os.environ.update(rank_env(rank, world, port))
    try:
        import torch

        from pemscl import distributed

        torch.set_num_threads(1)
        d = distributed.init(backend="gloo", timeout_s=60)
        try:
            # plain pickle: tensors are copied into the bytes, not shared through file descriptors
            # that would vanish with this process
            out.put((rank, True, pickle.dumps(fn(d, *args))))
        finally:
            distributed.shutdown(d)
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises
        out.put((rank, False, traceback.format_exc()))


def run_ranks(fn: Callable, world: int = 2, *args, timeout_s: float = 90.0) -> list:
    """``fn(dist, *args)`` on ``world`` gloo ranks; their results in rank order."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_entry, args=(r, world, port, fn, args, out), daemon=True) for r in range(world)]
    # CPU ranks even on a GPU machine: a spawned child inherits the environment at start, and with
    # a GPU visible each rank would pick NCCL and cuda:RANK (one GPU has no cuda:1)
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:
        for p in procs:
            p.start()
    finally:
        if hidden is None:
            del os.environ["CUDA_VISIBLE_DEVICES"]
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = hidden
    results: dict[int, Any] = {}
    errors: list[str] = []
    try:
        for _ in range(world):
            try:
                rank, ok, payload = out.get(timeout=timeout_s)
            except queue.Empty:
                errors.append(f"no answer within {timeout_s}s from ranks {sorted(set(range(world)) - set(results))}")
                break
            if ok:
                results[rank] = pickle.loads(payload)
            else:
                errors.append(f"rank {rank} failed:\n{payload}")
                break  # the other ranks are likely stuck in a collective with the failed one
    finally:
        for p in procs:
            p.join(timeout=5 if not errors else 0.5)
            if p.is_alive():
                p.kill()
                p.join()
    if errors:
        raise RuntimeError("\n".join(errors))
    return [results[r] for r in range(world)]

"""Multi-process (several GPUs, or several CPU processes) primitives for training and evaluation.

Why the whole batch is gathered: PEMSCL's SCL term (Eq. 8-10) contrasts every anchor pair with every
other pair of the batch, so a loss computed per GPU on its own documents is a different loss (the
paper's Limitation section). Plain data parallelism would change the method with the GPU count.
Instead every rank

1. forwards a contiguous chunk of the global batch (``Dist.shard``) through the DDP-wrapped model,
2. gathers ``logits``, ``labels`` and the SCL group factors ``zh``, ``zt`` to the global batch
   (``Dist.gather``, with autograd, rows in the original order),
3. computes the SAME full loss as one process would (negative sampling from an identically seeded
   generator, so every rank draws the same mask),
4. backwards; DDP averages the parameter gradients over the W ranks.

Gradient scale: ``gather``'s backward hands each rank W x the upstream gradient of its own rows (the
sum over ranks of identical upstream gradients, as torch.distributed.nn.functional.all_gather would
produce), so rank r holds W x (the true contribution of its chunk), and DDP's 1/W average yields
exactly the single-process gradient. Clipping, AdamW and the scheduler then see the same numbers on
every rank, and the replicas stay identical.

A rank whose chunk is empty (the last, short batch) must still forward and backward, or DDP's
gradient all-reduce waits for it forever: ``borrow_if_empty`` gives it one document of the batch and
``local_outputs`` keeps none of its rows for the gather while tying all its outputs to the loss with
a zero weight (every parameter gets a zero gradient, DDP's buckets all fill). Typical loop::

    d = distributed.init()
    model = distributed.wrap(model.to(device), d)
    for idx in global_batches:                                   # same order on every rank
        mine, borrowed = distributed.borrow_if_empty(d.shard(idx), idx)
        out = model(collate([feats[i] for i in mine]))
        local, tie = distributed.local_outputs({**out, "labels": labels}, borrowed)
        g = {k: d.gather(v) for k, v in local.items()}
        loss, parts = compute_loss(spec, g["logits"], g["labels"], (g["zh"], g["zt"]), generator=gen)
        (loss + tie).backward()                                  # identical loss value on every rank
    # evaluation: each rank infers d.shard(docs) with distributed.unwrap(model), then
    # logits = d.gather_rows(local_logits)                       # all rows, original order

Bit-identity with one process also needs dropout off (the encoder draws its dropout masks from each
rank's own RNG stream); with dropout on the runs agree in distribution, not bit for bit.
"""
from __future__ import annotations

import datetime
import inspect
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.distributed as tdist
from torch import Tensor, nn

_MAX_DIMS = 7  # gather exchanges shapes as fixed-length int64 rows: [ndim, d0, ..., d6]


# --------------------------------------------------------------------------- sharding
def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """[start, stop) of rank's contiguous chunk of n items, sized like torch.tensor_split: the
    first n % world ranks get one item more. Concatenating the chunks in rank order gives 0..n-1."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}")
    q, r = divmod(n, world)
    start = rank * q + min(rank, r)
    return start, start + q + (rank < r)


# --------------------------------------------------------------------------- gather with autograd
class _GatherRows(torch.autograd.Function):
    """Concatenation along dim 0 of every rank's tensor, in rank order.

    Backward: W x this rank's slice of the upstream gradient. That is the sum over ranks of the
    upstream gradients (what an all-reduce in backward would compute) under the contract of this
    module, that every rank computes the same loss from the gathered tensors. Doing it without a
    collective matters: an all-reduce inside backward would interleave with DDP's bucket
    all-reduces, and its position among them depends on the local graph (the borrowing rank's
    graph differs), so ranks could issue collectives in different orders and hang.
    """

    @staticmethod
    def forward(ctx, t: Tensor, d: "Dist") -> Tensor:  # type: ignore[override]
        sizes, out = _all_gather_rows(t.detach(), d)
        ctx.bounds = (sum(sizes[: d.rank]), sum(sizes[: d.rank + 1]))
        ctx.world = d.world
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        start, stop = ctx.bounds
        return grad[start:stop] * ctx.world, None


def _all_gather_rows(t: Tensor, d: "Dist") -> tuple[list[int], Tensor]:
    """(dim-0 sizes per rank, their concatenation) for tensors whose dim-0 sizes differ (0 allowed).

    Sizes and trailing shapes are exchanged first; every rank then sends its rows padded to the
    largest size (all_gather needs equal shapes) and the padding is cut off again."""
    if t.dim() == 0 or t.dim() > _MAX_DIMS:
        raise ValueError(f"gather needs a tensor with 1..{_MAX_DIMS} dims, got shape {tuple(t.shape)}")
    row = [t.dim(), *t.shape] + [-1] * (_MAX_DIMS - t.dim())
    shape = torch.tensor(row, dtype=torch.int64, device=t.device)
    shapes = [torch.empty_like(shape) for _ in range(d.world)]
    tdist.all_gather(shapes, shape)
    rows = torch.stack(shapes).tolist()
    # every rank sees the same table, so every rank raises (no rank is left waiting in a collective)
    if any(r[0] != rows[0][0] or r[2:] != rows[0][2:] for r in rows):
        shown = [tuple(r[1: r[0] + 1]) for r in rows]
        raise ValueError(f"gather: shapes must agree except dim 0, got {shown} by rank")
    sizes = [r[1] for r in rows]
    if max(sizes) == 0:  # nothing anywhere: skip the empty collective
        return sizes, t.clone()
    # gloo has no bool all_gather; a byte carries the same information
    send = t.to(torch.uint8) if t.dtype == torch.bool else t
    most = max(sizes)
    if send.shape[0] < most:
        send = torch.cat([send, send.new_zeros((most - send.shape[0], *send.shape[1:]))])
    bufs = [torch.empty_like(send) for _ in range(d.world)]
    tdist.all_gather(bufs, send.contiguous())
    out = torch.cat([b[:n] for b, n in zip(bufs, sizes)])
    return sizes, out.to(t.dtype)


# --------------------------------------------------------------------------- the handle
@dataclass
class Dist:
    """This process's place in the job. ``Dist()`` is the single-process case, where every method
    is an identity (no process group is needed), so training code calls them unconditionally."""

    rank: int = 0
    world: int = 1
    device: torch.device | None = None  # the device this rank should use; None: the caller decides

    @property
    def is_main(self) -> bool:
        """The rank that writes files and logs (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def shard(self, items: Sequence) -> list:
        """This rank's contiguous chunk of ``items`` (may be empty), see :func:`shard_bounds`."""
        start, stop = shard_bounds(len(items), self.rank, self.world)
        return list(items[start:stop])

    def gather(self, t: Tensor) -> Tensor:
        """Every rank's ``t`` concatenated along dim 0 in rank order, differentiably (see
        :class:`_GatherRows` for the gradient, which assumes every rank computes the same loss from
        the result). dim-0 sizes may differ between ranks, 0 included; the other dims must agree."""
        if not self.active:
            return t
        if not (t.requires_grad and torch.is_grad_enabled()):
            return _all_gather_rows(t, self)[1]  # labels, masks: no graph to build
        return _GatherRows.apply(t, self)

    def gather_rows(self, local_rows: Tensor) -> Tensor:
        """Like :meth:`gather` without autograd, for evaluation: each rank infers its shard of the
        documents and every rank (rank 0 included) gets all rows in the original order."""
        if not self.active:
            return local_rows.detach()
        with torch.no_grad():
            # NCCL moves only CUDA tensors: gather on this rank's device, return on the caller's
            rows = local_rows.detach().to(self._comm_device())
            return _all_gather_rows(rows, self)[1].to(local_rows.device)

    def gather_objects(self, obj: Any) -> list:
        """Every rank's picklable ``obj``, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list = [None] * self.world
        tdist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """``src``'s ``obj`` on every rank (the others' ``obj`` is ignored)."""
        if not self.active:
            return obj
        box = [obj if self.rank == src else None]
        tdist.broadcast_object_list(box, src=src)
        return box[0]

    def barrier(self) -> None:
        if not self.active:
            return
        if tdist.get_backend() == "nccl" and self.device is not None and self.device.type == "cuda":
            # names the GPU, so NCCL does not have to guess the rank -> device mapping
            tdist.barrier(device_ids=[self.device.index])
        else:
            tdist.barrier()

    def all_reduce_sum(self, x: Tensor | float) -> Tensor | float:
        """The sum over ranks of a tensor (a new tensor; ``x`` is untouched) or of a number."""
        if not self.active:
            return x
        is_number = not torch.is_tensor(x)
        t = torch.tensor(float(x), dtype=torch.float64, device=self._comm_device()) if is_number \
            else x.detach().clone()
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return float(t) if is_number else t

    def all_reduce_mean(self, x: Tensor | float) -> Tensor | float:
        """The mean over ranks (floating-point tensors or numbers)."""
        s = self.all_reduce_sum(x)
        return s / self.world if self.active else s

    def _comm_device(self) -> torch.device:
        # NCCL only moves CUDA tensors
        return self.device if self.device is not None else torch.device("cpu")


# --------------------------------------------------------------------------- empty chunks
def borrow_if_empty(chunk: Sequence, batch: Sequence) -> tuple[list, bool]:
    """(items to forward, borrowed). An empty chunk (more ranks than documents left) becomes
    ``[batch[0]]`` with borrowed=True: the rank must still run forward and backward for DDP's
    all-reduce to complete. Pass its outputs through :func:`local_outputs` so the borrowed document
    contributes no rows and zero gradient."""
    if len(chunk):
        return list(chunk), False
    if not len(batch):
        raise ValueError("borrow_if_empty: the global batch is empty too; skip the step on every rank")
    return [batch[0]], True


def local_outputs(outputs: Mapping[str, Tensor], borrowed: bool) -> tuple[dict[str, Tensor], Tensor]:
    """(the rows this rank contributes to the gather, a scalar to add to the loss).

    Not borrowed: the outputs unchanged and a constant 0. Borrowed: every tensor cut to 0 rows (the
    right trailing shape and dtype for the gather) and 0 x the sum of all outputs that require grad,
    so backward reaches every parameter the forward used with an exact zero gradient. The loss
    value is unchanged by the tie; add it before calling backward."""
    if not borrowed:
        return dict(outputs), torch.zeros(())
    tie = torch.zeros(())
    for v in outputs.values():
        if torch.is_tensor(v) and v.requires_grad:
            tie = tie.to(v.device) + v.float().sum() * 0.0
    return {k: v[:0] for k, v in outputs.items()}, tie


# --------------------------------------------------------------------------- process group
def init(backend: str | None = None, timeout_s: float | None = None) -> Dist:
    """Join the job described by torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
    MASTER_PORT). ``Dist()`` (world 1, no process group) when not launched that way or WORLD_SIZE=1.

    backend None: "nccl" when CUDA is available (the rank then owns cuda:LOCAL_RANK, made the
    current device), else "gloo" on CPU. An already initialised process group is reused."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        n_gpus = torch.cuda.device_count()
        if local_rank >= n_gpus:
            # else CUDA's "invalid device ordinal" from set_device, which names neither cause
            raise RuntimeError(f"rank {rank} has LOCAL_RANK {local_rank}, but this machine has {n_gpus} CUDA "
                               f"device(s): NCCL needs one GPU per rank; start at most {n_gpus} ranks per "
                               f"machine (torchrun --nproc_per_node={max(n_gpus, 1)})")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not tdist.is_initialized():
        kw = {} if timeout_s is None else {"timeout": datetime.timedelta(seconds=timeout_s)}
        tdist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world, **kw)
    return Dist(rank=rank, world=world, device=device)


def wrap(model: nn.Module, dist: Dist, **ddp_kwargs) -> nn.Module:
    """DistributedDataParallel around ``model`` (already on ``dist.device``) when the job has several
    ranks, else ``model`` itself. DDP copies rank 0's parameters to every rank here, so replicas
    start identical whatever each rank's seed did.

    Buffers are synced at construction but not in every forward (forward_sync_buffers, or
    broadcast_buffers before torch 2.13, False unless ``ddp_kwargs`` say otherwise): the encoder's
    buffers are constant position / token-type ids, and a buffer broadcast in every forward would
    hang sharded evaluation, where ranks run different numbers of batches. Every trainable parameter must be used by each forward (see
    :func:`borrow_if_empty`); frozen ones (requires_grad False, e.g. the cached bottom layers) are
    ignored by DDP."""
    if not dist.active:
        return model
    if dist.device is not None and dist.device.type == "cuda":
        ddp_kwargs.setdefault("device_ids", [dist.device.index])
        ddp_kwargs.setdefault("output_device", dist.device.index)
    if not {"broadcast_buffers", "forward_sync_buffers"} & set(ddp_kwargs):
        # torch >= 2.13 renamed the switch (init-time sync stays on: replicas start identical)
        new_name = "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters
        ddp_kwargs["forward_sync_buffers" if new_name else "broadcast_buffers"] = False
    return nn.parallel.DistributedDataParallel(model, **ddp_kwargs)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP (for saving, evaluation and attribute access), else ``model``."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def shutdown(dist: Dist) -> None:
    """Leave the process group (a no-op for a single process)."""
    if dist.active and tdist.is_initialized():
        tdist.destroy_process_group()

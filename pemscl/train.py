"""Training: the loop, its steps, resumable state, load and predict.

    from pemscl import config, losses, train
    cfg = config.preset("cpu", loss=losses.loss_spec("atl"), epochs=12)
    run = train.train(cfg)            # reused when its folder is complete, resumed when interrupted
    run.scores["test"]["f1"]

`train()` reads as the method: for each epoch, one pass of optimiser steps over the training
documents in a seeded order (`train_epoch`), scoring of the selection dev sets (`evaluate_epoch`),
each dev set keeping the state of its best epoch (`Selection`), a checkpoint of everything
needed to continue (`save_state`), and early stopping once no dev set has improved for
`patience` epochs. Then the selected states are scored on dev and test (`final_scores`) and the
run folder is written (`write_run`); see pemscl.runs for what the folder holds.

Under torchrun each rank trains on a contiguous share of every global batch; the logits, labels
and SCL features of the whole batch are gathered with their gradients, so every rank computes the
loss of the global batch, exactly as one process would (pemscl.distributed).

The fast path (`train_layers=n`): the lower layers' outputs are computed once per split and
cached on disk (keyed by encoder, layer and data hash); only the top n layers and the head
are trained.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import random
import resource
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import data as D
from . import distributed
from . import evaluate as E
from . import export
from . import runs as RS
from .bf16cpu import emulate, gemms
from .config import TrainConfig
from .features import docs_hash, load_features
from . import layout as L
from .layout import PREV_STATE, STATE, checkpoint_path
from .losses import compute_loss
from .model import (DocREModel, ModelConfig, batch_to, checkpoint_classes, decide, parameter_groups,
                    resolve_encoder, to_official)
from .runs import Run, is_complete, run_dir_for
from .utils import (atomic_path, atomic_torch_save, atomic_write_json, autocast, cache_dir, fsync_file,
                    precision_line, read_json, resolve_device, resolve_precision, stable_hash)

try:
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover
    def tqdm(x=None, **_):
        return x

BCE_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))
# 2: plain tensors, numbers and strings with a checksum, read by torch.load(weights_only=True);
# 1 (pickled numpy and python random states) is refused: only unpickling could read it
STATE_FORMAT = 2


# --------------------------------------------------------------------------- data for a config
@dataclass
class Splits:
    regime: D.Regime
    docs: dict[str, list[dict]]
    features: dict[str, list[dict]]
    rel2id: dict[str, int] = field(default_factory=dict)
    # head / mid / tail: one ranking of every relation by training-pair count, for every split
    groups: dict[str, list[str]] = field(default_factory=dict)

    @property
    def id2rel(self) -> dict[int, str]:
        return D.id2rel(self.rel2id)


def prepare(cfg: TrainConfig, progress: bool = True) -> Splits:
    regime = D.load_regime(cfg.regime)
    if cfg.noise_drop:
        regime = D.noisy(regime, drop=cfg.noise_drop, seed=cfg.noise_seed)
    limits = {"train": cfg.max_train_docs, "dev": cfg.max_dev_docs, "test": cfg.max_test_docs}
    docs = {s: (getattr(regime, s)[: limits[s]] if limits[s] else getattr(regime, s)) for s in limits}
    if getattr(regime, "dev_gold", None) is not None:
        docs["dev_gold"] = regime.dev_gold[: limits["dev"]] if limits["dev"] else regime.dev_gold
    rel2id = getattr(regime, "rel2id", None) or D.load_rel2id()
    feats = {s: load_features(d, resolve_encoder(cfg.encoder), rel2id=rel2id, max_len=cfg.max_len,
                              source=f"{cfg.regime}/{s}", progress=progress)
             for s, d in docs.items() if d}
    groups = E.relation_groups(docs["train"], relations=rel2id)
    return Splits(regime=regime, docs=docs, features=feats, rel2id=dict(rel2id), groups=groups)


# --------------------------------------------------------------------------- random streams
def stream_seed(seed: int, name: str) -> int:
    """A seed of its own for each named random stream of a run."""
    return int(hashlib.sha256(f"{seed}/{name}".encode()).hexdigest()[:15], 16)


class Streams:
    """Separate random streams, so runs with the same seed and different losses stay paired.

    init: the head's initial weights (global RNGs, seeded once before the model is built);
    order: each epoch's document order, derived from (seed, epoch) alone, so it never depends
    on what else drew numbers; dropout: the global torch RNG, re-seeded after the model is
    built, so only dropout draws from it during training; sampling: negative label sampling,
    a generator of its own. Runs with and without NS therefore see the same documents in the
    same order with the same initial weights.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self.sampling = torch.Generator().manual_seed(stream_seed(seed, "sampling"))

    def seed_init(self) -> None:
        s = stream_seed(self.seed, "init")
        random.seed(s)
        np.random.seed(s % 2**32)
        torch.manual_seed(s)

    def seed_dropout(self) -> None:
        torch.manual_seed(stream_seed(self.seed, "dropout"))  # also seeds every CUDA device

    def order(self, epoch: int, n: int) -> list[int]:
        g = torch.Generator().manual_seed(stream_seed(self.seed, f"order/{epoch}"))
        return torch.randperm(n, generator=g).tolist()

    def state(self) -> dict:
        """Every stream's state as tensors, numbers and strings only, so a saved state loads with
        torch.load(weights_only=True): numpy's state holds an array and python's a tuple of ints,
        which only unpickling could restore."""
        np_name, np_key, np_pos, np_has_gauss, np_gauss = np.random.get_state()
        py_version, py_internal, py_gauss = random.getstate()
        return {"sampling": self.sampling.get_state(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "numpy": {"name": str(np_name), "key": torch.from_numpy(np_key.astype(np.int64)), "pos": int(np_pos),
                          "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
                "python": {"version": int(py_version), "internal": torch.tensor(py_internal, dtype=torch.int64),
                           "gauss": py_gauss}}

    def load_state(self, s: dict) -> None:
        self.sampling.set_state(s["sampling"])
        torch.set_rng_state(s["torch"])
        if s.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(s["cuda"])
        n, p = s["numpy"], s["python"]
        np.random.set_state((n["name"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
        random.setstate((p["version"], tuple(p["internal"].tolist()), p["gauss"]))


# --------------------------------------------------------------------------- layer cache
class LayerCache:
    """Lower-layer hidden states per document window, computed once and kept on disk.

    Stored in fp16 (half the disk and memory); the bottom layers run in eval mode, so the
    cache is exactly what a frozen bottom would produce, minus dropout.
    """

    def __init__(self, model: DocREModel, features: Sequence[dict], first_layer: int, *, encoder: str,
                 data_key: str, device: torch.device, amp_dtype, progress: bool = True):
        key = stable_hash({"encoder": encoder, "layer": first_layer, "data": data_key,
                           "window": model.config.window, "v": 1}, n=16)
        path = cache_dir() / "layers" / f"{key}.pt"
        self.first_layer = first_layer
        self.hidden = _read_layer_cache(path, len(features)) if path.exists() else None
        if self.hidden is None:
            self.hidden = []
            was = model.training
            model.eval()
            for f in tqdm(features, desc=f"caching layer {first_layer}", disable=not progress, leave=False):
                b = batch_to(model.collate([f], with_labels=False), device)
                with torch.no_grad(), autocast(device, amp_dtype):
                    h = model.encode_bottom(b["input_ids"], b["attention_mask"], first_layer)
                self.hidden.append(h.to("cpu", torch.float16))
            model.train(was)
            atomic_torch_save(self.hidden, path)

    def batch(self, indices: Sequence[int], lw: int, device) -> torch.Tensor:
        """Windows of the documents in `indices`, in collate's order, padded to lw."""
        wins = [w for i in indices for w in self.hidden[i]]
        out = torch.zeros(len(wins), lw, wins[0].shape[-1], dtype=torch.float32)
        for j, w in enumerate(wins):
            out[j, : w.shape[0]] = w.float()
        return out.to(device)


def _read_layer_cache(path: Path, n_docs: int) -> list[torch.Tensor] | None:
    """A layer cache file read without unpickling (weights_only); None, with a warning naming it,
    when it is damaged, planted or does not match its features: it is computed again."""
    try:
        hidden = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(hidden, list) or len(hidden) != n_docs or not all(torch.is_tensor(h) for h in hidden):
            raise ValueError(f"not {n_docs} tensors")
        return hidden
    except Exception as e:  # whatever the file is, it is not used
        why = (str(e).strip().splitlines() or [""])[0][:200]
        warnings.warn(f"ignoring unreadable layer cache {path}: {type(e).__name__}: {why}; rebuilding", stacklevel=3)
        return None


# --------------------------------------------------------------------------- inference
def _forward(model, features: Sequence[dict], idx: Sequence[int], device, amp_dtype, cache, with_labels: bool):
    b = batch_to(distributed.unwrap(model).collate([features[j] for j in idx], with_labels=with_labels), device)
    hidden = cache.batch(idx, b["input_ids"].shape[1], device) if cache is not None else None
    with autocast(device, amp_dtype):
        out = model(b, cached_hidden=hidden, first_layer=cache.first_layer if cache is not None else 0)
    return b, out


@torch.no_grad()
def infer(model: DocREModel, features: Sequence[dict], *, batch_size: int = 4, device=None, amp_dtype=None,
          cache: LayerCache | None = None, progress: bool = False, desc: str = "predict",
          dist: distributed.Dist | None = None) -> dict[str, torch.Tensor]:
    """Logits (and group factors) for every pair of `features`, in order. Under torchrun each
    rank scores a contiguous share of the documents and every rank gets all rows back."""
    dist = dist or distributed.Dist()
    model = distributed.unwrap(model)
    device = device or next(model.parameters()).device
    was = model.training
    model.eval()
    mine = dist.shard(list(range(len(features))))
    n, g, k = model.config.num_classes, model.n_groups, model.block_size
    # batches of documents of similar length: less padding to run through the encoder; each
    # document's rows are put back in place, so the output is in the order of `features`
    by_length = sorted(mine, key=lambda j: len(features[j]["input_ids"]))
    rows: dict[int, dict[str, torch.Tensor]] = {}
    for i in tqdm(range(0, len(by_length), batch_size), desc=desc, disable=not progress or not dist.is_main,
                  leave=False):
        idx = by_length[i: i + batch_size]
        _, out = _forward(model, features, idx, device, amp_dtype, cache, with_labels=False)
        sizes = [len(features[j]["hts"]) for j in idx]
        split = {name: out[name].float().cpu().split(sizes) for name in ("logits", "zh", "zt")}
        for pos, j in enumerate(idx):
            rows[j] = {name: split[name][pos] for name in split}
    model.train(was)
    empty = {"logits": torch.zeros(0, n), "zh": torch.zeros(0, g, k), "zt": torch.zeros(0, g, k)}
    res = {name: torch.cat([rows[j][name] for j in mine]) if mine else empty[name] for name in empty}
    if dist.active:
        res = {name: dist.gather_rows(v) for name, v in res.items()}
    return res


def tune_threshold(logits: torch.Tensor, features, docs, id2rel, top_k=None) -> float:
    """The BCE baseline's fixed probability threshold, chosen for F1 on the given (dev) split."""
    best, best_f1 = 0.5, -1.0
    for th in BCE_THRESHOLDS:
        preds = to_official(decide(logits, top_k=top_k, threshold=float(th)), features, id2rel)
        f1 = E.score(preds, docs)["f1"]
        if f1 > best_f1:
            best, best_f1 = float(th), f1
    return best


def report(logits, features, docs, train_docs, id2rel, *, top_k=None, threshold=None, groups=None):
    """The official scores of one split (empty without gold labels) and its predictions."""
    preds = to_official(decide(logits, top_k=top_k, threshold=threshold), features, id2rel)
    labelled = bool(docs) and docs[0].get("labels") is not None
    rep = E.full_report(preds, docs, train_docs=train_docs, groups=groups) if labelled else {}
    return rep, preds


# --------------------------------------------------------------------------- one run's moving parts
@dataclass
class Selection:
    """A dev set choosing an epoch: its best F1 so far, that epoch, its threshold and weights."""

    split: str
    f1: float = -1.0
    epoch: int = 0
    threshold: float | None = None
    state: dict | None = None

    def offer(self, epoch: int, f1: float, threshold: float | None, model) -> bool:
        if f1 <= self.f1:
            return False
        self.f1, self.epoch, self.threshold, self.state = f1, epoch, threshold, _trainable_state(model)
        return True


@dataclass
class Context:
    """What the steps of a run share: config, data, model, optimiser and random streams."""

    cfg: TrainConfig
    splits: Splits
    model: DocREModel
    net: torch.nn.Module  # the model as trained: DistributedDataParallel under torchrun
    opt: torch.optim.Optimizer
    sched: Any
    scaler: Any
    streams: Streams
    device: torch.device
    amp: Any
    caches: dict
    dist: distributed.Dist
    progress: bool
    steps_per_epoch: int

    def infer(self, split: str, desc: str = "") -> torch.Tensor:
        return infer(self.model, self.splits.features[split], batch_size=self.cfg.batch_size, device=self.device,
                     amp_dtype=self.amp, cache=self.caches.get(split), dist=self.dist,
                     progress=self.progress and bool(desc), desc=desc)["logits"]

    def report(self, split: str, logits, threshold=None, top_k="cfg"):
        return report(logits, self.splits.features[split], self.splits.docs[split], self.splits.docs["train"],
                      self.splits.id2rel, top_k=self.cfg.top_k if top_k == "cfg" else top_k,
                      threshold=threshold, groups=self.splits.groups)


def _trainable_state(model) -> dict[str, torch.Tensor]:
    model = distributed.unwrap(model)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items() if k in names}


def needs_threshold(cfg: TrainConfig) -> bool:
    """Losses whose decision rule is a probability threshold tuned on the selection dev set."""
    return cfg.loss.kind == "bce"


def adamw_kernel(device: torch.device) -> dict:
    """AdamW's fused kernel (one kernel per step over all parameters) on CUDA and CPU, where torch
    has it; the default per-tensor loop elsewhere. Same update up to rounding (tests/test_train.py);
    benchmarks/bench_attention.py measures the step with it."""
    if device.type in ("cuda", "cpu"):
        return {"fused": True}
    return {"foreach": True} if device.type in ("mps", "xpu") else {}


def compile_encoder(model: DocREModel, device: torch.device, amp: torch.dtype | None = None) -> None:
    """torch.compile the encoder (TrainConfig.compile, off by default). Dynamic shapes: every batch
    has its own window length. The attention hook and the pooling stay outside the graph.

    Refused on a CPU whose ATen kernels are capped by $ATEN_CPU_CAPABILITY (as when mimicking an
    older CPU): inductor compiles for the CPU's own instruction set, and the mix aborted the whole
    process (measured: AVX512 CPU, ATEN_CPU_CAPABILITY=avx2, the compiled smoke run). Refused too
    with bf16 on a CPU without bf16 instructions: bf16cpu reroutes eager mode's products (compiled
    graphs unchecked)."""
    if device.type == "cpu" and os.environ.get("ATEN_CPU_CAPABILITY"):
        raise ValueError("compile=True on a CPU with $ATEN_CPU_CAPABILITY set aborts in inductor's kernels; "
                         "unset it or train without compile")
    if emulate(device, amp):  # whether inductor's graphs pass their GEMMs through the mode is unchecked
        raise ValueError("compile=True with bf16 on a CPU without bf16 instructions is not supported: bf16cpu "
                         "reroutes the bf16 products of eager mode to fp32 kernels, and compiled graphs were "
                         "not checked; train without compile (on CPU it measured slower anyway: docs/speed.md)")
    model.plm.compile(dynamic=True)  # in place: parameter names (checkpoints, state) stay as they are


def build(cfg: TrainConfig, splits: Splits, *, dist: distributed.Dist, progress: bool) -> Context:
    """Model (frozen bottom on the fast path), optimiser, schedule and streams for a config."""
    streams = Streams(cfg.seed)
    device = dist.device or resolve_device(cfg.device)
    amp = resolve_precision(cfg.precision, device)
    streams.seed_init()
    if dist.is_main:
        print(precision_line(cfg.precision, device), flush=True)
    model = DocREModel(ModelConfig(encoder=cfg.encoder, emb_size=cfg.emb_size, block_size=cfg.block_size,
                                   num_classes=len(splits.rel2id), attention=cfg.attention)).to(device)
    if cfg.compile:
        compile_encoder(model, device, amp)
    caches: dict[str, LayerCache] = {}
    if cfg.train_layers is not None:
        n_layers = len(model.layers)
        if not 1 <= cfg.train_layers <= n_layers:
            raise ValueError(f"train_layers must be in 1..{n_layers} for {cfg.encoder}")
        first = n_layers - cfg.train_layers
        for p in model.plm.parameters():
            p.requires_grad_(False)
        for p in model.layers[first:].parameters():
            p.requires_grad_(True)
        for s, feats in splits.features.items():
            caches[s] = LayerCache(model, feats, first, encoder=resolve_encoder(cfg.encoder),
                                   data_key=docs_hash(splits.docs[s]) + f":{cfg.max_len}", device=device,
                                   amp_dtype=amp, progress=progress and dist.is_main)
    streams.seed_dropout()
    opt = torch.optim.AdamW(parameter_groups(model, cfg.lr_encoder, cfg.lr_head), eps=cfg.adam_eps,
                            weight_decay=cfg.weight_decay, **adamw_kernel(device))
    steps_per_epoch = math.ceil(len(splits.features["train"]) / cfg.batch_size)
    total = max(1, steps_per_epoch * cfg.epochs)
    warm = int(cfg.warmup_ratio * total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / max(1, warm) if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    scaler = torch.amp.GradScaler("cuda") if (amp == torch.float16 and device.type == "cuda") else None
    return Context(cfg=cfg, splits=splits, model=model, net=distributed.wrap(model, dist), opt=opt, sched=sched,
                   scaler=scaler, streams=streams, device=device, amp=amp, caches=caches, dist=dist,
                   progress=progress, steps_per_epoch=steps_per_epoch)


# --------------------------------------------------------------------------- the steps
def train_step(ctx: Context, idx: Sequence[int]) -> tuple[float, dict[str, float]]:
    """One optimiser step on the global batch `idx`: this rank forwards its share, the batch's
    outputs are gathered (with gradients) and the loss is the global batch's, as in one process."""
    cfg, dist = ctx.cfg, ctx.dist
    # a rank left without documents by a short last batch still joins the step (borrowed, zero-weighted)
    mine, borrowed = distributed.borrow_if_empty(dist.shard(list(idx)), list(idx))
    b, o = _forward(ctx.net, ctx.splits.features["train"], mine, ctx.device, ctx.amp, ctx.caches.get("train"),
                    with_labels=True)
    local, tie = distributed.local_outputs({"logits": o["logits"].float(), "zh": o["zh"].float(),
                                            "zt": o["zt"].float(), "labels": b["labels"]}, borrowed)
    logits, zh, zt, labels = (dist.gather(local[k]) for k in ("logits", "zh", "zt", "labels"))
    loss, parts = compute_loss(cfg.loss, logits, labels, features=(zh, zt), generator=ctx.streams.sampling)
    loss = loss + tie.to(loss.device)
    ctx.opt.zero_grad(set_to_none=True)
    if ctx.scaler is not None:
        ctx.scaler.scale(loss).backward()
        ctx.scaler.unscale_(ctx.opt)
    else:
        with gemms(ctx.device, ctx.amp):  # the backward's bf16 products, as the forward's (bf16cpu)
            loss.backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), cfg.grad_clip)
    if optimizer_step(ctx.opt, ctx.scaler):
        ctx.sched.step()
    return float(loss.detach()), parts


def optimizer_step(opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> bool:
    """One optimiser step; False when fp16 loss scaling skipped it (inf/nan gradients: the scale
    was too high and is lowered). The caller then leaves the learning-rate schedule where it is,
    so the skipped first steps of an fp16 run do not eat into its warmup."""
    if scaler is None:
        opt.step()
        return True
    before = scaler.get_scale()
    scaler.step(opt)
    scaler.update()
    return scaler.get_scale() >= before  # update() lowers the scale only after a skipped step


BUCKET_BATCHES = 16  # length buckets: documents are sorted by length within runs of this many batches


def epoch_batches(cfg: TrainConfig, streams: Streams, epoch: int, features: Sequence[dict]) -> list[list[int]]:
    """This epoch's training batches (document indices), from the seed, the epoch and the document
    lengths alone, so every loss trained with a seed sees the same batches in the same order.

    Default: consecutive slices of the epoch's random order. length_buckets: that order cut into
    runs of BUCKET_BATCHES batches, each run sorted by length and sliced into batches (similar
    lengths, less padding), and the batches shuffled (stream "buckets/<epoch>") so that epochs
    do not go from short to long documents."""
    order, bs = streams.order(epoch, len(features)), cfg.batch_size
    if not cfg.length_buckets:
        return [order[i: i + bs] for i in range(0, len(order), bs)]
    batches = []
    for c in range(0, len(order), bs * BUCKET_BATCHES):
        run = sorted(order[c: c + bs * BUCKET_BATCHES], key=lambda j: len(features[j]["input_ids"]))
        batches += [run[i: i + bs] for i in range(0, len(run), bs)]
    g = torch.Generator().manual_seed(stream_seed(streams.seed, f"buckets/{epoch}"))
    return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]


def train_epoch(ctx: Context, epoch: int, bar=None) -> dict:
    """One pass over the training documents in this epoch's order; mean loss and its parts."""
    ctx.net.train()
    t0 = time.time()
    sums: dict[str, float] = {}
    for idx in epoch_batches(ctx.cfg, ctx.streams, epoch, ctx.splits.features["train"]):
        loss, parts = train_step(ctx, idx)
        for k, v in {"loss": loss, **parts}.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
    return {"epoch": epoch + 1, "train_seconds": time.time() - t0,
            **{f"train_{k}": v / max(1, ctx.steps_per_epoch) for k, v in sums.items()}}


def evaluate_epoch(ctx: Context, row: dict, selections: list[Selection]) -> None:
    """Score the selection dev sets (each tuning its own BCE threshold) and the tracked splits;
    each dev set keeps this epoch's state if it is its best so far."""
    t0 = time.time()
    thresholds: dict[str, float | None] = {}
    for sel in selections:
        lg = ctx.infer(sel.split)
        th = tune_threshold(lg, ctx.splits.features[sel.split], ctx.splits.docs[sel.split], ctx.splits.id2rel,
                            ctx.cfg.top_k) if needs_threshold(ctx.cfg) else None
        rep, _ = ctx.report(sel.split, lg, threshold=th)
        row.update({f"{sel.split}_{k}": v for k, v in rep.items() if isinstance(v, (int, float))})
        thresholds[sel.split] = th
        sel.offer(row["epoch"], rep["f1"], th, ctx.model)
    primary = thresholds[selections[0].split] if selections else None
    for split in ctx.cfg.track:
        if split in ctx.splits.features and split not in thresholds:
            rep, _ = ctx.report(split, ctx.infer(split), threshold=primary)
            row.update({f"{split}_{k}": v for k, v in rep.items() if isinstance(v, (int, float))})
    row["eval_seconds"] = time.time() - t0


def should_stop(cfg: TrainConfig, epoch: int, selections: list[Selection]) -> bool:
    """After `epoch` epochs: every dev set's best is `patience` epochs old, and at least
    `min_epochs` epochs are done."""
    return cfg.patience is not None and epoch >= (cfg.min_epochs or 0) and bool(selections) and all(
        epoch - s.epoch >= cfg.patience for s in selections)


# --------------------------------------------------------------------------- resumable state
class UnusableState(RuntimeError):
    """A resumable state file that cannot be trusted: truncated, damaged, of an older format, or
    not a weights-only file (a pickle is refused unread)."""


def _plain(obj: Any) -> Any:
    """obj with numpy scalars as python numbers (a dev F1 can be a np.float64), which
    torch.load(weights_only=True) reads; containers rebuilt, everything else as it is."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


def _digest(obj: Any) -> str:
    """sha256 of a state's content: every tensor's dtype, shape and bytes and every other value's
    repr, in order. torch.load reads flipped bytes in tensor data without complaint; the digest
    saved beside them does not match then."""
    h = hashlib.sha256()

    def walk(x):
        if isinstance(x, torch.Tensor):
            t = x.detach().to("cpu").contiguous().reshape(-1)
            h.update(f"T{t.dtype}{tuple(x.shape)};".encode())
            h.update(t.view(torch.uint8).numpy().data)
        elif isinstance(x, dict):
            h.update(f"D{len(x)};".encode())
            for k, v in x.items():
                walk(k)
                walk(v)
        elif isinstance(x, (list, tuple)):
            h.update(f"L{len(x)};".encode())
            for v in x:
                walk(v)
        else:
            h.update(f"{type(x).__name__}:{x!r};".encode())

    walk(obj)
    return h.hexdigest()


def save_state(out: Path, ctx: Context, epoch: int, history: list, selections: list[Selection],
               seconds: float) -> None:
    """Everything needed to continue after `epoch`: trainable weights, optimiser, schedule,
    scaler, every random stream, the history and each dev set's best state.

    Written to a temp file and renamed over STATE, so a process killed while saving leaves the
    last state whole; the state it replaces is kept as PREV_STATE (a hard link: STATE never goes
    missing), so a STATE damaged later still leaves the epoch before it to resume from."""
    if not ctx.dist.is_main:
        return
    atomic_write_json(out / L.HISTORY, history)  # readable while the run trains (curves, progress)
    state = {"format": STATE_FORMAT, "key": ctx.cfg.key(), "epoch": epoch, "history": _plain(history),
             "model": _trainable_state(ctx.model), "optimizer": ctx.opt.state_dict(),
             "scheduler": ctx.sched.state_dict(),
             "scaler": ctx.scaler.state_dict() if ctx.scaler is not None else None,
             "streams": ctx.streams.state(), "selections": [_plain(dataclasses.asdict(s)) for s in selections],
             "seconds": seconds}
    state["sha256"] = _digest(state)
    path = out / STATE
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
        fsync_file(tmp)
        if path.exists():
            _keep_previous(path, out / PREV_STATE)


def _keep_previous(path: Path, prev: Path) -> None:
    link = prev.with_name(f".{prev.name}.link.tmp")
    try:
        if prev.exists() and os.path.samefile(path, prev):
            return  # kept already (a run killed after linking it, then resumed): renaming a link onto it is a no-op
        link.unlink(missing_ok=True)
        os.link(path, link)
        os.replace(link, prev)
    except OSError:  # no hard links on this file system: STATE is missing until the rename; load falls back
        os.replace(path, prev)


def read_state(path: Path) -> dict:
    """A saved state, read without unpickling (weights_only) and checked against its digest;
    UnusableState, naming the file, when it cannot be trusted."""
    try:
        s = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        why = (str(e).strip().splitlines() or [""])[0][:200]
        raise UnusableState(f"{path}: refused, not a readable weights-only state file (truncated, damaged, written "
                            f"by an older version or not a state at all): {type(e).__name__}: {why}") from None
    if not isinstance(s, dict) or s.get("format") != STATE_FORMAT:
        raise UnusableState(f"{path}: refused, not a state of format {STATE_FORMAT}")
    if s.get("sha256") != _digest({k: v for k, v in s.items() if k != "sha256"}):
        raise UnusableState(f"{path}: refused, its content does not match its checksum (damaged)")
    return s


def load_state(out: Path, ctx: Context) -> dict | None:
    """The saved state of an interrupted run of this config, restored into ctx; None if none.

    STATE is tried first, then PREV_STATE. A file that cannot be trusted is reported by name
    (a warning) and moved aside as <name>.unusable once an older state resumes the run, so the
    next save does not keep it as the previous state. When states exist and none is usable,
    UnusableState is raised: the run is never silently trained again from epoch 0."""
    bad: list[tuple[Path, str]] = []
    found = None
    for name in (STATE, PREV_STATE):
        path = out / name
        if not path.exists():
            continue
        try:
            found = path, read_state(path)
            break
        except UnusableState as e:
            if ctx.dist.is_main:  # every rank reads the state; one reports
                warnings.warn(str(e), stacklevel=2)
            bad.append((path, str(e)))
    if found is None:
        if bad:
            raise UnusableState(f"{out}: no usable state to resume from ({'; '.join(why for _, why in bad)}). "
                                "Delete those files to train this run again from epoch 0, or train with force=True "
                                "(--force)")
        return None
    path, s = found
    if s.get("key") != ctx.cfg.key():
        return None
    if ctx.dist.is_main:
        for b, _ in bad:  # one rank moves them; a rank reading after the move goes to PREV_STATE all the same
            os.replace(b, b.with_name(b.name + ".unusable"))
    if path.name != STATE and ctx.dist.is_main:
        warnings.warn(f"{out / STATE} is {'unusable' if bad else 'missing'}: resuming from {path} "
                      f"(epoch {s['epoch']})", stacklevel=2)
    ctx.model.load_state_dict(s["model"], strict=False)
    ctx.opt.load_state_dict(s["optimizer"])
    ctx.sched.load_state_dict(s["scheduler"])
    if ctx.scaler is not None and s.get("scaler"):
        ctx.scaler.load_state_dict(s["scaler"])
    ctx.streams.load_state(s["streams"])
    return s


# --------------------------------------------------------------------------- after training
def final_scores(ctx: Context, selections: list[Selection], history: list) -> tuple[dict, dict]:
    """Dev and test scores of the state the first dev set chose (and of each other dev set's
    choice on test), with per-document counts of every scored split; and the predictions."""
    cfg = ctx.cfg
    primary = selections[0] if selections else Selection("none")
    if primary.state is not None:
        ctx.model.load_state_dict(primary.state, strict=False)
    scores: dict[str, Any] = {"best_epoch": primary.epoch, "threshold": primary.threshold}
    counts: dict[str, Any] = {}
    preds_out: dict[str, list] = {}
    test_logits = None
    for split in ("dev", "dev_gold", "test"):
        if split not in ctx.splits.features or (split == "test" and not cfg.eval_test):
            continue
        lg = ctx.infer(split, desc=f"eval {split}")
        rep, preds = ctx.report(split, lg, threshold=primary.threshold)
        scores[split], preds_out[split] = rep, preds
        if rep:
            counts[split] = E.doc_counts(preds, ctx.splits.docs[split], train_docs=ctx.splits.docs["train"],
                                         groups=ctx.splits.groups)
        if split == "test":
            test_logits = lg
            if cfg.top_k is None and primary.threshold is None and rep:
                # the released code's top-4 cap (FAITHFULNESS #8) costs nothing to score beside
                scores["test_top4"], _ = ctx.report(split, lg, top_k=4)
    for sel in selections[1:]:
        # another dev set's choice (OGG: gold dev): its epoch's dev scores, and test scored with
        # the state and threshold that dev set chose
        row = next((h for h in history if h["epoch"] == sel.epoch), {})
        view = {"epoch": sel.epoch, "threshold": sel.threshold,
                **{k: v for k, v in row.items() if k.startswith(f"{sel.split}_")}}
        if test_logits is not None and scores.get("test"):
            same = sel.epoch == primary.epoch and sel.threshold == primary.threshold
            if same:
                rep, preds = scores["test"], preds_out["test"]
            else:
                ctx.model.load_state_dict(sel.state, strict=False)
                rep, preds = ctx.report("test", ctx.infer("test", desc=f"eval test (by {sel.split})"),
                                        threshold=sel.threshold)
                ctx.model.load_state_dict(primary.state, strict=False)  # the saved model is the first choice
            view.update({f"test_{k}": v for k, v in rep.items() if isinstance(v, (int, float))})
            counts[f"test@{sel.split}"] = E.doc_counts(preds, ctx.splits.docs["test"],
                                                       train_docs=ctx.splits.docs["train"], groups=ctx.splits.groups)
        scores[f"by_{sel.split}"] = view
    scores["doc_counts"] = counts
    scores["groups"] = ctx.splits.groups
    return scores, preds_out


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_run(out: Path, ctx: Context, history: list, scores: dict, preds: dict, seconds: float,
              stopped_early: bool) -> None:
    """The complete run folder; DONE last, and the resumable state removed (load/predict need
    only model.pt)."""
    if not ctx.dist.is_main:
        return
    f1s = [h.get(f"{ctx.cfg.select[0]}_f1", 0.0) for h in history] if ctx.cfg.select else []
    scores.update({"epochs_run": len(history), "stopped_early": stopped_early,
                   "converged": RS.converged(f1s, scores["best_epoch"]), "seconds": seconds,
                   "peak_rss_mb": _peak_rss_mb(), "device": str(ctx.device), "world_size": ctx.dist.world,
                   "threads": torch.get_num_threads(),
                   "precision": str(ctx.amp).replace("torch.", "") if ctx.amp else "fp32",
                   **({"bf16_gemm": "fp32 accumulate" if emulate(ctx.device, ctx.amp) else "native"}
                      if ctx.amp == torch.bfloat16 and ctx.device.type == "cpu" else {}),
                   "n_docs": {s: len(d) for s, d in ctx.splits.docs.items()}})
    if ctx.device.type == "cuda":
        scores["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    for split, p in preds.items():
        E.write_predictions(p, out / L.predictions_file(split))
    atomic_write_json(out / L.HISTORY, history)
    atomic_write_json(out / L.SCORES, scores)
    if ctx.cfg.save_model:
        atomic_torch_save(_trainable_state(ctx.model), checkpoint_path(out))
    # the relation set the model's output columns stand for (a custom data set may be known
    # only to the script that registered it; predict must not need to find it again)
    atomic_write_json(out / L.REL2ID, ctx.splits.rel2id)
    (out / L.DONE).write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
    for name in (STATE, PREV_STATE, STATE + ".unusable", PREV_STATE + ".unusable"):
        (out / name).unlink(missing_ok=True)


# --------------------------------------------------------------------------- the loop
def train(cfg: TrainConfig, root: str | Path | None = None, *, force: bool = False, progress: bool = True,
          splits: Splits | None = None, dist: distributed.Dist | None = None,
          on_epoch_end: Callable[[dict, Context], None] | None = None) -> Run:
    """Train (or reuse, or resume) the run for `cfg`; returns the Run with its dev/test scores.

    `on_epoch_end(row, ctx)` is called after each epoch's checkpoint (live curves in a notebook;
    raising from it interrupts the run, which a rerun then resumes)."""
    dist = dist or distributed.Dist()
    if dist.active and dist.broadcast_object(cfg.key()) != cfg.key():
        # e.g. precision "auto" measured differently on two ranks: they would write different runs
        raise RuntimeError(f"rank {dist.rank} resolves the config to another key than rank 0: "
                           f"{cfg.hashed()}; set precision explicitly")
    out = run_dir_for(cfg, root)
    if is_complete(out) and not force:
        return Run.load(out).labelled(cfg.label)
    with _hold(out, dist):
        if is_complete(out) and not force:  # finished by the process that held it
            return Run.load(out).labelled(cfg.label)
        return _train(cfg, out, force=force, progress=progress, splits=splits, dist=dist,
                      on_epoch_end=on_epoch_end)


@contextlib.contextmanager
def _hold(out: Path, dist: distributed.Dist):
    """runs.training(out), taken by rank 0 and its answer shared: when another process holds the
    folder every rank raises RunInProgress (rank 0 refused alone would leave the other ranks
    waiting at their first collective)."""
    with contextlib.ExitStack() as held:
        refused = None
        if dist.is_main:
            try:
                held.enter_context(RS.training(out))
            except RS.RunInProgress as e:
                refused = str(e)
        if dist.active:
            refused = dist.broadcast_object(refused)
        if refused:
            raise RS.RunInProgress(refused)
        yield


def _train(cfg: TrainConfig, out: Path, *, force: bool, progress: bool, splits: Splits | None,
           dist: distributed.Dist, on_epoch_end: Callable[[dict, Context], None] | None) -> Run:
    """train() once the run folder is held."""
    if dist.is_main and out.is_dir():
        # temp files of a writer killed before its rename (atomic_path): nobody else writes here
        for tmp in out.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
    splits = splits or prepare(cfg, progress=progress and dist.is_main)
    ctx = build(cfg, splits, dist=dist, progress=progress)
    selections = [Selection(s) for s in cfg.select if s in splits.features]
    resumed = None if force else load_state(out, ctx)
    if resumed is None and dist.is_main:
        if out.exists():
            shutil.rmtree(out)  # a finished run being forced, or a folder without usable state
        out.mkdir(parents=True)
        atomic_write_json(out / L.CONFIG, cfg)
    dist.barrier()
    history = resumed["history"] if resumed else []
    if resumed:
        selections = [Selection(**s) for s in resumed["selections"]]
    start, t_start = (resumed["epoch"] if resumed else 0), time.time() - (resumed["seconds"] if resumed else 0.0)

    # killed after the checkpoint of the epoch that ended the run early: nothing is left to train
    stopped = bool(resumed) and start < cfg.epochs and should_stop(cfg, start, selections)
    bar = tqdm(total=ctx.steps_per_epoch * cfg.epochs, initial=ctx.steps_per_epoch * start,
               desc=cfg.folder_name(), disable=not progress or not dist.is_main)
    for epoch in range(start, start if stopped else cfg.epochs):
        row = train_epoch(ctx, epoch, bar)
        evaluate_epoch(ctx, row, selections)
        history.append(row)
        save_state(out, ctx, epoch + 1, history, selections, time.time() - t_start)
        if on_epoch_end is not None:
            on_epoch_end(row, ctx)
        if should_stop(cfg, epoch + 1, selections):
            stopped = epoch + 1 < cfg.epochs
            break
    bar.close()

    scores, preds = final_scores(ctx, selections, history)
    write_run(out, ctx, history, scores, preds, time.time() - t_start, stopped)
    dist.barrier()
    return Run.load(out).labelled(cfg.label)


# --------------------------------------------------------------------------- load / predict
def load(run: Run | str | Path, device: str = "auto") -> tuple[DocREModel, TrainConfig]:
    """The trained model of a run (pretrained encoder + the run's trained parameters), or of a
    folder written by `python -m pemscl.export` (safetensors and JSON, no run folder needed)."""
    if not isinstance(run, Run) and export.is_export(run):
        return export.load_export(run, device=device)
    run = run if isinstance(run, Run) else Run.load(run)
    cfg = run.config
    path = checkpoint_path(run.dir)
    if not path.exists():
        raise FileNotFoundError(f"{run.dir} has no {path.name}: trained with save_model=False, or known only "
                                "from results/runs.jsonl (train it here to get the weights)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    n_classes = checkpoint_classes(state)
    model = DocREModel(ModelConfig(encoder=cfg.encoder, emb_size=cfg.emb_size, block_size=cfg.block_size,
                                   **({"num_classes": n_classes} if n_classes else {})))
    missing = set(state) - set(model.state_dict())
    if missing:
        raise RuntimeError(f"checkpoint has unknown parameters: {sorted(missing)[:5]}")
    model.load_state_dict(state, strict=False)
    model.to(resolve_device(device)).eval()
    model.threshold = run.scores.get("threshold")
    rel_path = run.dir / L.REL2ID
    model.rel2id = read_json(rel_path) if rel_path.exists() else D.regime_rel2id(cfg.regime)
    return model, cfg


def predict(model: DocREModel, docs: list[dict], *, top_k: int | None = None, threshold: float | None = None,
            batch_size: int = 4, precision: str = "auto", return_logits: bool = False, progress: bool = False,
            rel2id: dict[str, int] | None = None):
    """Official-format predictions for new DocRED-format documents (validated first), named by
    the model's relation set (the run's, attached by `load`; DocRED's 97 otherwise)."""
    rel2id = rel2id or getattr(model, "rel2id", None) or D.load_rel2id()
    if len(rel2id) != model.config.num_classes:
        raise ValueError(f"the relation set has {len(rel2id)} classes but the model {model.config.num_classes}: "
                         "pass the run's rel2id (train.load attaches it)")
    D.validate_docs(docs, source="predict", rel2id=rel2id)
    id2rel = D.id2rel(rel2id)
    feats = load_features(docs, resolve_encoder(model.config.encoder), rel2id=rel2id, source="predict",
                          progress=progress)
    device = next(model.parameters()).device
    threshold = threshold if threshold is not None else getattr(model, "threshold", None)
    out = infer(model, feats, batch_size=batch_size, device=device,
                amp_dtype=resolve_precision(precision, device), progress=progress)
    preds = to_official(decide(out["logits"], top_k=top_k, threshold=threshold), feats, id2rel)
    return (preds, out, feats) if return_logits else preds


if __name__ == "__main__":  # python -m pemscl.train / torchrun -m pemscl.train: see pemscl.cli
    from .cli import main

    main()

"""One training step at the paper's shape: a random-init RoBERTa-large under bf16 autocast on long documents.

    python benchmarks/bench_paper_shape.py                 # RoBERTa-large, batch 4 (or the largest that fits)
    python benchmarks/bench_paper_shape.py --batch 8 --precision bf16
    python benchmarks/bench_paper_shape.py --layers 2 --hidden 64 --batch 1 --warmup 0   # seconds, for tests
    python benchmarks/bench_paper_shape.py --attention eager          # the path before issue 25
    python benchmarks/bench_paper_shape.py --compare --batches 4 8 --warmup 2 --reps 5 --out X.json

No download: the encoder is `transformers.RobertaModel` built from a `RobertaConfig` (24 layers, 1,024
hidden, 16 heads, 514 positions) with random weights, and the head is the paper-redocred preset's
(emb 768, block 64, PEMSCL loss with its tau / lambda / gamma). The tokenizer does not matter for time
or memory, so documents are synthetic features of a long Re-DocRED document: ~1,000 tokens of random
ids (two overlapping 512-token windows), 30 entities with 45 mentions and 36 labelled facts (the 50
longest Re-DocRED dev/test documents average 23 entities, 37 mentions, 36 facts; the largest reach 31
entities or 56 mentions), and every ordered entity pair (870).

Reported (printed and written to results/bench_paper_shape.json, or $PEMSCL_RESULTS):
  parameters      encoder / head / total
  step split      encoder (windows + transformer + stitching) / pooling / head / loss /
                  backward + optimizer (clip, AdamW step), seconds, then seconds per document
  peak memory     this process's peak RSS on a CPU; torch.cuda.max_memory_allocated on a GPU
  memory table    an ESTIMATE of GPU memory per batch size: a fixed part (fp32 weights, gradients and
                  AdamW's two moments: 16 bytes per parameter) plus what the forward keeps for the
                  backward, measured at 1 and 2 documents (distinct tensor storages saved by autograd,
                  bf16 weight copies included) and extrapolated linearly. Not included: transient
                  buffers of the backward, allocator fragmentation and the CUDA context (~0.5-1 GiB).

  FLOPs, MFU      an analytic count per document (printed in its parts):
                    6 x encoder parameters without the embeddings x tokens processed (the sum of the
                      document's window lengths, padding included: what the encoder computes)
                  + 12 x layers x window_len^2 x hidden per window (attention scores and context:
                      4 x layers x L^2 x hidden forward, x 3 for forward + backward)
                  + 6 x head parameters x entity pairs
                  (embeddings, pooling, loss and the optimiser are left out). MFU = FLOPs per step /
                  median step seconds / the device's dense bf16 tensor-core peak, from the vendors'
                  datasheets (no sparsity; DEVICE_PEAKS) or --peak-tflops; None on a CPU or a device
                  the table does not know. Both attention paths do the same arithmetic: one count.

--attention fast (default: SDPA kernels in every encoder layer but the last, fused AdamW) or eager
(every layer eager, the default AdamW: the path before issue 25).

--batch is tried first; on out-of-memory the batch steps down by one until a step fits.

--compare: both paths in one process, the same weights (the fast model loads the eager one's
state_dict), for each of --batches (default: --batch): warm-up steps, then --reps rounds of one eager
and one fast step, alternating. Per path: median and spread (min, max, quartiles) of seconds per
document, MFU and peak memory (torch.cuda.max_memory_allocated, reset before each path's steps, with
what was allocated at the reset beside it: both models and their AdamW state stay resident; on a CPU
the process's peak RSS, which never resets); the ratio eager / fast (above 1: fast is faster); the
largest |logit| difference of the two paths on the first batch in eval mode (at the run's precision
and, when that is not fp32, in fp32 too); and on a GPU the largest batch among FIT_BATCHES that fits
for each path alone (the other model freed), with the peak memory of every batch tried. Written to
--out (default: <results>/bench_attention_gpu.json).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from pemscl import config as C  # noqa: E402
from pemscl.losses import compute_loss  # noqa: E402
from pemscl.model import NUM_CLASSES, DocREModel, ModelConfig, collate  # noqa: E402
from pemscl.utils import atomic_write_json, autocast, resolve_device, resolve_precision, results_dir  # noqa: E402

PRESET = "paper-redocred"
GIB = 2**30
FIXED_BYTES_PER_PARAM = 16  # fp32 weight 4 + fp32 gradient 4 + AdamW exp_avg 4 + exp_avg_sq 4
TABLE_BATCHES = (1, 2, 4, 8, 16)
FIT_BATCHES = (1, 2, 4, 8)
ATTENTION_PATHS = ("eager", "fast")
# Dense bf16 tensor-core peaks (FLOP/s, no sparsity) from the vendors' datasheets, matched in this order
# against torch.cuda.get_device_name(): the first pattern found in the name wins.
DEVICE_PEAKS = (
    (r"H100.*PCIe", 756e12, "H100 PCIe"),
    (r"H100.*(SXM|HBM3)", 989e12, "H100 SXM"),
    (r"H200", 989e12, "H200"),
    (r"A100", 312e12, "A100"),
    (r"L40S", 362e12, "L40S"),
    (r"\bA10\b", 125e12, "A10"),
    (r"RTX 4090", 165e12, "RTX 4090"),
)
PEAK_SOURCE = "vendors' datasheets (NVIDIA), dense bf16 tensor-core peak, no sparsity"
ROBERTA_SPECIALS = {"bos": 0, "pad": 1, "eos": 2}
ROBERTA_VOCAB = 50265


@dataclass(frozen=True)
class DocShape:
    """A synthetic long document: token count (CLS and SEP included), entities, mentions, facts."""

    tokens: int = 1000
    entities: int = 30
    mentions: int = 45
    facts: int = 36


# --------------------------------------------------------------------------- model and data
def build_model(layers: int, hidden: int, heads: int, intermediate: int, vocab: int,
                emb_size: int | None, block_size: int, attention: str = "fast") -> DocREModel:
    """DocREModel around a random-init RobertaModel of the given size (roberta-large's options), with
    the attention kernels of `attention` (ModelConfig.attention: "fast" or "eager")."""
    from transformers import RobertaConfig, RobertaModel

    cfg = RobertaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=intermediate, max_position_embeddings=514, type_vocab_size=1,
                        pad_token_id=ROBERTA_SPECIALS["pad"], bos_token_id=ROBERTA_SPECIALS["bos"],
                        eos_token_id=ROBERTA_SPECIALS["eos"], layer_norm_eps=1e-5)
    cfg._attn_implementation = "eager"  # DocREModel sets the kernels of `attention` (the last layer eager)
    plm = RobertaModel(cfg, add_pooling_layer=False)
    return DocREModel(ModelConfig(encoder=f"roberta (random init, {layers} x {hidden})", emb_size=emb_size,
                                  block_size=block_size, attention=attention), plm=plm)


def make_optimizer(model: DocREModel, attention: str, device: torch.device, lr: float, eps: float):
    """AdamW over the trainable parameters: the fused kernel (train.adamw_kernel) on the fast path,
    torch's default on the eager one (as before issue 25). Returns (optimizer, description)."""
    from pemscl.train import adamw_kernel

    kernel = adamw_kernel(device) if attention == "fast" else {}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, eps=eps, **kernel)
    return opt, "AdamW " + (", ".join(f"{k}={v}" for k, v in kernel.items()) or "(torch default)")


def attention_impl(model: DocREModel) -> dict:
    """The kernels the encoder runs: its config's implementation and the last self-attention's."""
    from pemscl.model import _last_self_attention

    last = _last_self_attention(model.plm)
    return {"encoder": getattr(model.plm.config, "_attn_implementation", None),
            "last_layer": getattr(getattr(last, "config", None), "_attn_implementation", None)}


def synthetic_feature(shape: DocShape, vocab: int, rng: np.random.Generator) -> dict:
    """Features as pemscl.features makes them: <s> ids </s>, mention spans, all pairs, multi-hot labels."""
    if shape.mentions < shape.entities:
        raise ValueError("every entity needs a mention: mentions >= entities")
    n_special = len(ROBERTA_SPECIALS) + 2  # <s> <pad> </s> <unk> <mask> are never drawn
    ids = [ROBERTA_SPECIALS["bos"]] + rng.integers(n_special, vocab, shape.tokens - 2).tolist() + [ROBERTA_SPECIALS["eos"]]
    starts = np.sort(rng.choice(np.arange(1, shape.tokens - 4), shape.mentions, replace=False))
    owner = np.concatenate([np.arange(shape.entities), rng.integers(0, shape.entities, shape.mentions - shape.entities)])
    rng.shuffle(owner)
    entity_pos = [[] for _ in range(shape.entities)]
    for s, e in zip(starts.tolist(), owner.tolist()):
        entity_pos[e].append((s, s + 3))
    n = shape.entities
    hts = [(h, t) for h in range(n) for t in range(n) if h != t]
    labels = np.zeros((len(hts), NUM_CLASSES), dtype=np.float32)
    rows = rng.choice(len(hts), min(shape.facts, len(hts)), replace=False)
    labels[rows, rng.integers(1, NUM_CLASSES, len(rows))] = 1
    labels[:, 0] = labels[:, 1:].sum(1) == 0
    return {"title": "synthetic", "input_ids": ids, "entity_pos": entity_pos, "hts": hts, "labels": labels}


def make_batch(model: DocREModel, feats: list[dict], device: torch.device) -> dict:
    b = collate(feats, window=model.config.window, sep_repeat=model.sep_repeat)
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in b.items()}


def parameter_counts(model: DocREModel) -> dict[str, int]:
    enc = sum(p.numel() for p in model.plm.parameters())
    total = sum(p.numel() for p in model.parameters())
    return {"encoder": enc, "head": total - enc, "total": total}


# --------------------------------------------------------------------------- FLOPs and MFU
def analytic_flops(encoder_params: int, head_params: int, layers: int, hidden: int,
                   window_lengths, pairs: float) -> dict:
    """FLOPs of one training step (forward + backward) on one document: the parts and their sum.
    encoder_params: the encoder's parameters without the embeddings; window_lengths: the document's
    encoder windows (tokens, padding included); pairs: its entity pairs."""
    tokens = float(sum(window_lengths))
    dense = 6.0 * encoder_params * tokens
    attn = 3.0 * sum(4.0 * layers * float(L) ** 2 * hidden for L in window_lengths)
    head = 6.0 * head_params * pairs
    return {"formula": "6 x encoder_params x tokens + 3 x sum over windows of 4 x layers x L^2 x hidden "
                       "+ 6 x head_params x pairs",
            "encoder_params_no_embeddings": encoder_params, "head_params": head_params, "layers": layers,
            "hidden": hidden, "window_lengths": [int(L) for L in window_lengths], "tokens": tokens,
            "pairs": pairs, "dense_flops": dense, "attention_flops": attn, "head_flops": head,
            "total": dense + attn + head}


def model_flops(model: DocREModel, batch: dict, n_docs: int) -> dict:
    """analytic_flops for one document of `batch` (all documents of the benchmark have one shape)."""
    plm = model.plm
    emb = getattr(plm, "embeddings", None) or plm.get_input_embeddings()
    n_plm = sum(p.numel() for p in plm.parameters())
    enc = n_plm - sum(p.numel() for p in emb.parameters())
    head = sum(p.numel() for p in model.parameters()) - n_plm
    n_win, win_len = batch["input_ids"].shape
    per_doc = n_win // n_docs
    return analytic_flops(enc, head, plm.config.num_hidden_layers, plm.config.hidden_size,
                          [win_len] * per_doc, len(batch["pair_h"]) / n_docs)


def device_peak_flops(device_name: str | None, override_tflops: float | None = None):
    """(peak FLOP/s, source) of a device by name: --peak-tflops when given, else DEVICE_PEAKS' first
    match; (None, None) for a CPU or an unknown device (MFU is then not reported)."""
    import re

    if override_tflops is not None:
        return float(override_tflops) * 1e12, "--peak-tflops (given)"
    name = device_name or ""
    if name.lower() == "cpu":
        return None, None
    for pattern, peak, label in DEVICE_PEAKS:
        if re.search(pattern, name):
            return peak, f"{label}: {PEAK_SOURCE}"
    return None, None


def mfu(flops_per_step: float, step_seconds: float, peak: float | None) -> float | None:
    return None if not peak or not step_seconds else flops_per_step / step_seconds / peak


def flops_lines(f: dict) -> list[str]:
    return [f"FLOPs per document (forward + backward): {f['total']:.4g} = dense 6 x {f['encoder_params_no_embeddings']:,} "
            f"encoder params (no embeddings) x {f['tokens']:g} tokens = {f['dense_flops']:.4g}",
            f"  + attention 3 x 4 x {f['layers']} layers x L^2 x {f['hidden']} hidden over windows "
            f"{f['window_lengths']} = {f['attention_flops']:.4g}",
            f"  + head 6 x {f['head_params']:,} head params x {f['pairs']:g} pairs = {f['head_flops']:.4g}"]


# --------------------------------------------------------------------------- one step
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_loss(model, batch, spec, amp, device, clock=None):
    """Encoder, pooling, head (under autocast) and loss, as train.train_step does; clock(name) marks
    the end of each part."""
    mark = clock or (lambda name: None)
    with autocast(device, amp):
        wh, wa = model.run_encoder(batch["input_ids"], batch["attention_mask"])
        seq, att = model.stitch(wh, wa, batch)
        mark("encoder")
        hs, ts, ctx = model.pool(seq, att, batch)
        mark("pooling")
        logits, zh, zt = model.head(hs, ts, ctx)
        mark("head")
    loss, _ = compute_loss(spec, logits.float(), batch["labels"], features=(zh.float(), zt.float()),
                           generator=torch.Generator().manual_seed(0))
    mark("loss")
    return loss


def timed_step(model, opt, batch, spec, amp, device, grad_clip: float) -> dict[str, float]:
    """Seconds per part of one optimiser step."""
    times: dict[str, float] = {}
    _sync(device)
    last = [time.perf_counter()]

    def clock(name):
        _sync(device)
        now = time.perf_counter()
        times[name] = now - last[0]
        last[0] = now

    loss = forward_loss(model, batch, spec, amp, device, clock)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    clock("backward_optimizer")
    return times


def saved_activation_bytes(model, batch, spec, amp, device) -> int:
    """Bytes of the distinct tensor storages autograd keeps from forward to backward (the graph is
    dropped afterwards: no backward runs)."""
    storages: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = forward_loss(model, batch, spec, amp, device)
    del loss
    return sum(storages.values())


def is_oom(e: BaseException) -> bool:
    return isinstance(e, getattr(torch, "OutOfMemoryError", ())) or (
        isinstance(e, RuntimeError) and ("out of memory" in str(e) or "can't allocate memory" in str(e)))


# --------------------------------------------------------------------------- memory
def peak_memory_mb(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"kind": "torch.cuda.max_memory_allocated", "mb": torch.cuda.max_memory_allocated(device) / 2**20}
    return {"kind": "peak RSS of this process (ru_maxrss)",
            "mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def memory_estimate(n_params: int, act_1: int, act_2: int, batches=TABLE_BATCHES) -> dict:
    """Linear extrapolation from the activations at 1 and 2 documents; an estimate, not a measurement."""
    per_doc = act_2 - act_1
    intercept = act_1 - per_doc  # per-step tensors that do not grow with documents (bf16 weight copies, ...)
    fixed = FIXED_BYTES_PER_PARAM * n_params
    table = [{"batch": b, "bytes": fixed + intercept + b * per_doc,
              "gib": (fixed + intercept + b * per_doc) / GIB} for b in batches]
    return {"estimate": True,
            "method": "fixed (16 bytes/parameter: fp32 weights, grads, AdamW moments) + intercept + batch x "
                      "per-document activations, the activations measured at 1 and 2 documents as the storages "
                      "autograd saves for the backward; excludes backward transients, fragmentation, CUDA context",
            "fixed_bytes": fixed, "intercept_bytes": intercept, "per_doc_bytes": per_doc,
            "measured_activation_bytes": {"1": act_1, "2": act_2}, "table": table}


# --------------------------------------------------------------------------- main
def parse_args(argv=None):
    pre = C.preset(PRESET)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4, help="documents per step (steps down on out-of-memory)")
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--heads", type=int, default=None, help="default: hidden / 64 (roberta-large: 16)")
    ap.add_argument("--intermediate", type=int, default=None, help="default: 4 x hidden")
    ap.add_argument("--vocab", type=int, default=ROBERTA_VOCAB)
    ap.add_argument("--emb-size", type=int, default=pre.emb_size)
    ap.add_argument("--block-size", type=int, default=pre.block_size)
    ap.add_argument("--tokens", type=int, default=DocShape.tokens)
    ap.add_argument("--entities", type=int, default=DocShape.entities)
    ap.add_argument("--mentions", type=int, default=DocShape.mentions)
    ap.add_argument("--facts", type=int, default=DocShape.facts)
    ap.add_argument("--precision", default="bf16", help="bf16 | fp16 | fp32 | auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (allocator, AdamW state)")
    ap.add_argument("--reps", type=int, default=1, help="timed steps (the median is reported)")
    ap.add_argument("--no-estimate", action="store_true", help="skip the 1- and 2-document activation measurement")
    ap.add_argument("--attention", default="fast", choices=ATTENTION_PATHS,
                    help="fast: SDPA but the last layer, fused AdamW; eager: the path before issue 25")
    ap.add_argument("--compare", action="store_true", help="eager and fast in one process, steps alternating")
    ap.add_argument("--batches", type=int, nargs="+", default=None,
                    help="with --compare: the batch sizes to time (default: --batch)")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="the device's peak (TFLOP/s) for MFU, instead of the DEVICE_PEAKS table")
    ap.add_argument("--out", default=None, help="JSON path (default: <results>/bench_paper_shape.json, "
                                               "with --compare <results>/bench_attention_gpu.json)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def run(a) -> dict:
    pre = C.preset(PRESET)
    device = resolve_device(a.device)
    amp = resolve_precision(a.precision, device)
    heads = a.heads or max(1, a.hidden // 64)
    torch.manual_seed(a.seed)
    model = build_model(a.layers, a.hidden, heads, a.intermediate or 4 * a.hidden, a.vocab, a.emb_size,
                        a.block_size, attention=a.attention).to(device)
    model.train()
    counts = parameter_counts(model)
    opt, opt_desc = make_optimizer(model, a.attention, device, pre.lr_encoder, pre.adam_eps)
    shape = DocShape(a.tokens, a.entities, a.mentions, a.facts)
    rng = np.random.default_rng(a.seed)
    feats = [synthetic_feature(shape, a.vocab, rng) for _ in range(max(a.batch, 2))]

    estimate = None
    if not a.no_estimate:
        acts = [saved_activation_bytes(model, make_batch(model, feats[:n], device), pre.loss, amp, device) for n in (1, 2)]
        estimate = memory_estimate(counts["total"], *acts)

    batch, steps = a.batch, []
    while True:
        try:
            b = make_batch(model, feats[:batch], device)
            for _ in range(a.warmup):
                timed_step(model, opt, b, pre.loss, amp, device, pre.grad_clip)
            steps = [timed_step(model, opt, b, pre.loss, amp, device, pre.grad_clip) for _ in range(a.reps)]
            break
        except Exception as e:  # noqa: BLE001 (only out-of-memory is retried)
            if not is_oom(e) or batch == 1:
                raise
            print(f"batch {batch}: out of memory, trying {batch - 1}", flush=True)
            opt.zero_grad(set_to_none=True)
            b = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
            batch -= 1

    split = {k: float(np.median([s[k] for s in steps])) for k in steps[0]}
    total = sum(split.values())
    n_windows = len(b["win_doc"])
    name = device_name(device)
    flops = model_flops(model, b, batch)
    peak, source = device_peak_flops(name, a.peak_tflops)
    return {"device": str(device), "device_name": name,
            "threads": torch.get_num_threads(), "precision": str(amp).replace("torch.", "") if amp else "fp32",
            "encoder": {"class": type(model.plm).__name__, "layers": a.layers, "hidden": a.hidden, "heads": heads,
                        "intermediate": a.intermediate or 4 * a.hidden, "vocab": a.vocab},
            "head": {"emb_size": model.emb_size, "block_size": model.block_size, "loss": asdict(pre.loss)},
            "document": asdict(shape), "windows_per_doc": n_windows / batch,
            "pairs_per_doc": len(b["pair_h"]) / batch,
            "batch_requested": a.batch, "batch": batch, "parameters": counts,
            "step_seconds": split, "step_total_seconds": total, "seconds_per_doc": total / batch,
            "peak_memory": peak_memory_mb(device), "memory_estimate": estimate,
            "attention": a.attention, "attention_impl": attention_impl(model), "optimizer": opt_desc,
            "flops": flops, "flops_per_doc": flops["total"], "device_peak_flops": peak, "peak_source": source,
            "mfu": mfu(flops["total"] * batch, total, peak)}


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _mfu_text(m: float | None) -> str:
    return "not reported (no known peak for this device; --peak-tflops sets one)" if m is None else f"{m:.1%}"


def report(res: dict) -> str:
    p = res["parameters"]
    lines = [f"device {res['device_name']} ({res['threads']} threads), {res['precision']} autocast, "
             f"{res['encoder']['class']} {res['encoder']['layers']} layers x {res['encoder']['hidden']} hidden, "
             f"head emb {res['head']['emb_size']} x block {res['head']['block_size']}",
             f"documents: {res['document']['tokens']} tokens ({res['windows_per_doc']:g} windows), "
             f"{res['document']['entities']} entities, {res['document']['mentions']} mentions, "
             f"{res['pairs_per_doc']:g} pairs; batch {res['batch']} (asked {res['batch_requested']})",
             f"parameters: encoder {p['encoder']:,}  head {p['head']:,}  total {p['total']:,}",
             f"{'part':<20}{'s/step':>10}{'share':>8}"]
    for k, v in res["step_seconds"].items():
        lines.append(f"{k:<20}{v:>10.3f}{v / res['step_total_seconds']:>8.1%}")
    lines += [f"{'total':<20}{res['step_total_seconds']:>10.3f}",
              f"seconds per document: {res['seconds_per_doc']:.3f}  (attention {res['attention']}: "
              f"{res['attention_impl']}, {res['optimizer']})", *flops_lines(res["flops"]),
              f"MFU: {_mfu_text(res['mfu'])}"
              + (f" of {res['device_peak_flops'] / 1e12:g} TFLOP/s ({res['peak_source']})" if res["device_peak_flops"] else ""),
              f"peak memory: {res['peak_memory']['mb']:,.0f} MB ({res['peak_memory']['kind']})"]
    est = res["memory_estimate"]
    if est:
        lines.append(f"ESTIMATED GPU memory per batch (fixed {est['fixed_bytes'] / GIB:.2f} GiB + "
                     f"{est['intercept_bytes'] / GIB:.2f} GiB + {est['per_doc_bytes'] / GIB:.3f} GiB per document; "
                     "extrapolated from 1 and 2 documents, without CUDA context and backward transients):")
        lines += [f"  batch {r['batch']:>3}: {r['gib']:7.2f} GiB" for r in est["table"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------- --compare
def eval_logits(model: DocREModel, batch: dict, amp, device) -> torch.Tensor:
    """The model's logits on `batch` in eval mode, without gradients (its train/eval mode restored)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast(device, amp):
            wh, wa = model.run_encoder(batch["input_ids"], batch["attention_mask"])
            seq, att = model.stitch(wh, wa, batch)
            logits, _, _ = model.head(*model.pool(seq, att, batch))
        return logits.float()
    finally:
        model.train(was)


def _spread(xs) -> dict:
    q25, q50, q75 = np.percentile(xs, [25, 50, 75])
    return {"median": float(q50), "min": float(min(xs)), "max": float(max(xs)), "q25": float(q25),
            "q75": float(q75), "n": len(xs)}


def _reset_peak(device: torch.device) -> float:
    """Reset the CUDA peak counter; MB allocated at the reset (0 on a CPU)."""
    if device.type != "cuda":
        return 0.0
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device) / 2**20


def _path_memory(device: torch.device, baseline_mb: float) -> dict:
    m = peak_memory_mb(device)
    if device.type == "cuda":
        return {**m, "baseline_mb": baseline_mb, "above_baseline_mb": m["mb"] - baseline_mb,
                "note": "baseline: allocated at the reset (both models and their AdamW state resident)"}
    return {**m, "note": "process-wide peak so far: not reset between paths"}


def _free(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def fit_search(a, heads, feats, device, amp, pre, batches=FIT_BATCHES) -> dict:
    """Per path alone on the GPU: two steps at each batch of `batches` in increasing order until one
    runs out of memory; the largest that fits and the peak memory of every batch tried."""
    out = {}
    for path in ATTENTION_PATHS:
        _free(device)
        torch.manual_seed(a.seed)
        model = build_model(a.layers, a.hidden, heads, a.intermediate or 4 * a.hidden, a.vocab, a.emb_size,
                            a.block_size, attention=path).to(device).train()
        opt, _ = make_optimizer(model, path, device, pre.lr_encoder, pre.adam_eps)
        tried, best = [], None
        for n in batches:
            base = _reset_peak(device)
            try:
                b = make_batch(model, feats[:n], device)
                for _ in range(2):  # the second step holds AdamW's state beside the activations
                    timed_step(model, opt, b, pre.loss, amp, device, pre.grad_clip)
                tried.append({"batch": n, "fits": True, "peak_mb": peak_memory_mb(device)["mb"], "baseline_mb": base})
                best = n
            except Exception as e:  # noqa: BLE001 (only out-of-memory is caught)
                if not is_oom(e):
                    raise
                tried.append({"batch": n, "fits": False, "peak_mb": peak_memory_mb(device)["mb"], "baseline_mb": base})
                break
            finally:
                b = None
                opt.zero_grad(set_to_none=True)
                _free(device)
        out[path] = {"searched": True, "max_batch": best, "tried": tried,
                     "kind": "torch.cuda.max_memory_allocated, this path's model alone on the device"}
        del model, opt
    _free(device)
    return out


def compare(a) -> dict:
    """Eager and fast in one process, alternating steps; see the module's docstring."""
    pre = C.preset(PRESET)
    device = resolve_device(a.device)
    amp = resolve_precision(a.precision, device)
    heads = a.heads or max(1, a.hidden // 64)
    batches = list(a.batches or [a.batch])
    models, opts, opt_desc = {}, {}, {}
    for path in ATTENTION_PATHS:
        torch.manual_seed(a.seed)
        models[path] = build_model(a.layers, a.hidden, heads, a.intermediate or 4 * a.hidden, a.vocab, a.emb_size,
                                   a.block_size, attention=path).to(device)
    models["fast"].load_state_dict(models["eager"].state_dict())  # the same weights
    impl = {p: attention_impl(m) for p, m in models.items()}
    for path in ATTENTION_PATHS:
        models[path].train()
        opts[path], opt_desc[path] = make_optimizer(models[path], path, device, pre.lr_encoder, pre.adam_eps)
    counts = parameter_counts(models["fast"])
    shape = DocShape(a.tokens, a.entities, a.mentions, a.facts)
    rng = np.random.default_rng(a.seed)
    n_feats = max(batches + ([max(FIT_BATCHES)] if device.type == "cuda" else []))
    feats = [synthetic_feature(shape, a.vocab, rng) for _ in range(n_feats)]
    name = device_name(device)
    peak, source = device_peak_flops(name, a.peak_tflops)

    # logits of the two paths before any step: same weights, eval mode, the first batch
    b0 = make_batch(models["eager"], feats[:batches[0]], device)
    flops = model_flops(models["eager"], b0, batches[0])
    diffs = {"batch": batches[0], "precision": str(amp).replace("torch.", "") if amp else "fp32"}
    diffs["max_abs_logit_diff"] = float((eval_logits(models["eager"], b0, amp, device)
                                         - eval_logits(models["fast"], b0, amp, device)).abs().max())
    if amp is not None:
        diffs["max_abs_logit_diff_fp32"] = float((eval_logits(models["eager"], b0, None, device)
                                                  - eval_logits(models["fast"], b0, None, device)).abs().max())
    b0 = None

    rows = []
    for n in batches:
        row = {"batch": n, "paths": {}}
        try:
            batch = make_batch(models["eager"], feats[:n], device)  # the same windows for both models
            for _ in range(a.warmup):
                for path in ATTENTION_PATHS:
                    timed_step(models[path], opts[path], batch, pre.loss, amp, device, pre.grad_clip)
            steps = {p: [] for p in ATTENTION_PATHS}
            base = {p: 0.0 for p in ATTENTION_PATHS}
            mem = {}
            # one round of each path alone first, with the peak counter reset before it: its peak memory
            for path in ATTENTION_PATHS:
                for o in opts.values():  # gradients of the last step go: the baseline is weights + AdamW state
                    o.zero_grad(set_to_none=True)
                base[path] = _reset_peak(device)
                steps[path].append(timed_step(models[path], opts[path], batch, pre.loss, amp, device, pre.grad_clip))
                mem[path] = _path_memory(device, base[path])
            for _ in range(a.reps - 1):  # then alternating: eager, fast, eager, fast, ...
                for path in ATTENTION_PATHS:
                    steps[path].append(timed_step(models[path], opts[path], batch, pre.loss, amp, device,
                                                  pre.grad_clip))
        except Exception as e:  # noqa: BLE001 (only out-of-memory is caught)
            if not is_oom(e):
                raise
            row["oom"] = True
        batch = None
        if row.get("oom"):  # outside the except block: its traceback no longer holds the step's tensors
            print(f"batch {n}: out of memory with both models resident", flush=True)
            rows.append(row)
            for o in opts.values():
                o.zero_grad(set_to_none=True)
            _free(device)
            continue
        for path in ATTENTION_PATHS:
            totals = [sum(s.values()) for s in steps[path]]
            med = float(np.median(totals))
            row["paths"][path] = {
                "seconds_per_doc": _spread([t / n for t in totals]), "step_total_seconds": med,
                "step_seconds": {k: float(np.median([s[k] for s in steps[path]])) for k in steps[path][0]},
                "mfu": mfu(flops["total"] * n, med, peak), "peak_memory": mem[path]}
        eager_s, fast_s = (row["paths"][p]["seconds_per_doc"]["median"] for p in ATTENTION_PATHS)
        row["ratio_eager_over_fast"] = eager_s / fast_s if fast_s > 0 else None
        rows.append(row)

    done = [r for r in rows if not r.get("oom")]
    last = done[-1] if done else None
    if device.type == "cuda":  # each path alone: free both models, their gradients and AdamW state first
        for o in opts.values():
            o.zero_grad(set_to_none=True)
        opts.clear()
        models.clear()
        _free(device)
        fit = fit_search(a, heads, feats, device, amp, pre)
    else:
        fit = {p: {"searched": False, "max_batch": max((r["batch"] for r in done), default=None),
                   "note": "not searched on a CPU: the batches given"} for p in ATTENTION_PATHS}
    return {"mode": "compare", "device": str(device), "device_name": name, "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "precision": str(amp).replace("torch.", "") if amp else "fp32",
            "encoder": {"class": "RobertaModel", "layers": a.layers, "hidden": a.hidden, "heads": heads,
                        "intermediate": a.intermediate or 4 * a.hidden, "vocab": a.vocab},
            "head": {"emb_size": a.emb_size, "block_size": a.block_size, "loss": asdict(pre.loss)},
            "document": asdict(shape), "parameters": counts, "warmup": a.warmup, "reps": a.reps,
            "order": "warm-up, one step of each path with the peak memory reset before it, then eager, fast, "
                     "eager, fast, ... on the same batch",
            "paths": {p: {"attention_impl": impl[p], "optimizer": opt_desc[p]} for p in ATTENTION_PATHS},
            "flops": flops, "flops_per_doc": flops["total"], "device_peak_flops": peak, "peak_source": source,
            "logits": diffs, "max_abs_logit_diff": diffs["max_abs_logit_diff"], "batches": rows,
            # the largest batch timed, at the top level
            "batch": last["batch"] if last else None,
            "ratio_eager_over_fast": last["ratio_eager_over_fast"] if last else None,
            "seconds_per_doc": {p: last["paths"][p]["seconds_per_doc"]["median"] for p in ATTENTION_PATHS} if last else None,
            "mfu": {p: last["paths"][p]["mfu"] for p in ATTENTION_PATHS} if last else None,
            "fit": fit}


def compare_report(res: dict) -> str:
    e = res["encoder"]
    lines = [f"device {res['device_name']} ({res['threads']} threads), {res['precision']} autocast, "
             f"{e['class']} {e['layers']} layers x {e['hidden']} hidden; {res['document']['tokens']}-token documents; "
             f"warm-up {res['warmup']}, {res['reps']} alternating rounds",
             *(f"  {p}: kernels {v['attention_impl']}, {v['optimizer']}" for p, v in res["paths"].items()),
             *flops_lines(res["flops"]),
             "peak: " + (f"{res['device_peak_flops'] / 1e12:g} TFLOP/s ({res['peak_source']})"
                         if res["device_peak_flops"] else "unknown: MFU not reported (--peak-tflops sets one)"),
             f"max |logit| difference, eval mode, same weights, batch {res['logits']['batch']}: "
             f"{res['logits']['max_abs_logit_diff']:.3g} ({res['logits']['precision']})"
             + (f", {res['logits']['max_abs_logit_diff_fp32']:.3g} (fp32)" if "max_abs_logit_diff_fp32" in res["logits"] else ""),
             f"{'batch':>5} {'path':>6} {'s/doc median':>13} {'[min, max]':>20} {'MFU':>7} {'peak MB':>10} {'eager/fast':>11}"]
    for r in res["batches"]:
        if r.get("oom"):
            lines.append(f"{r['batch']:>5}  out of memory with both models resident")
            continue
        for p, v in r["paths"].items():
            sp = v["seconds_per_doc"]
            rng = f"[{sp['min']:.4f}, {sp['max']:.4f}]"
            m = "-" if v["mfu"] is None else f"{v['mfu']:.1%}"
            ratio = f"{r['ratio_eager_over_fast']:>11.3f}" if p == "fast" and r["ratio_eager_over_fast"] else ""
            lines.append(f"{r['batch']:>5} {p:>6} {sp['median']:>13.4f} {rng:>20} {m:>7} "
                         f"{v['peak_memory']['mb']:>10,.0f} {ratio}")
    for p, f in res["fit"].items():
        if f.get("searched"):
            tried = ", ".join(f"{t['batch']}: " + (f"{t['peak_mb']:,.0f} MB" if t["fits"] else "OOM") for t in f["tried"])
            lines.append(f"{p}: largest batch that fits alone: {f['max_batch']} (peak memory by batch {tried})")
        else:
            lines.append(f"{p}: batch fit {f['note']}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    a = parse_args(argv)
    if a.compare:
        res = compare(a)
        out = Path(a.out) if a.out else results_dir() / "bench_attention_gpu.json"
        text = compare_report(res)
    else:
        res = run(a)
        out = Path(a.out) if a.out else results_dir() / "bench_paper_shape.json"
        text = report(res)
    atomic_write_json(out, res)
    print(text)
    print(f"written to {out}")
    return res


if __name__ == "__main__":
    main()

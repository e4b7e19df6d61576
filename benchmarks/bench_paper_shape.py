"""One training step at the paper's shape: a random-init RoBERTa-large under bf16 autocast on long documents.

    python benchmarks/bench_paper_shape.py                 # RoBERTa-large, batch 4 (or the largest that fits)
    python benchmarks/bench_paper_shape.py --batch 8 --precision bf16
    python benchmarks/bench_paper_shape.py --layers 2 --hidden 64 --batch 1 --warmup 0   # seconds, for tests

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

--batch is tried first; on out-of-memory the batch steps down by one until a step fits.
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
                emb_size: int | None, block_size: int) -> DocREModel:
    """DocREModel around a random-init RobertaModel of the given size (roberta-large's options)."""
    from transformers import RobertaConfig, RobertaModel

    cfg = RobertaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=intermediate, max_position_embeddings=514, type_vocab_size=1,
                        pad_token_id=ROBERTA_SPECIALS["pad"], bos_token_id=ROBERTA_SPECIALS["bos"],
                        eos_token_id=ROBERTA_SPECIALS["eos"], layer_norm_eps=1e-5)
    cfg._attn_implementation = "eager"  # ATLOP pools the attention probabilities
    plm = RobertaModel(cfg, add_pooling_layer=False)
    return DocREModel(ModelConfig(encoder=f"roberta (random init, {layers} x {hidden})", emb_size=emb_size,
                                  block_size=block_size), plm=plm)


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
    ap.add_argument("--out", default=None, help="JSON path (default: <results>/bench_paper_shape.json)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def run(a) -> dict:
    pre = C.preset(PRESET)
    device = resolve_device(a.device)
    amp = resolve_precision(a.precision, device)
    heads = a.heads or max(1, a.hidden // 64)
    torch.manual_seed(a.seed)
    model = build_model(a.layers, a.hidden, heads, a.intermediate or 4 * a.hidden, a.vocab, a.emb_size,
                        a.block_size).to(device)
    model.train()
    counts = parameter_counts(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=pre.lr_encoder, eps=pre.adam_eps)
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
    return {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "precision": str(amp).replace("torch.", "") if amp else "fp32",
            "encoder": {"class": type(model.plm).__name__, "layers": a.layers, "hidden": a.hidden, "heads": heads,
                        "intermediate": a.intermediate or 4 * a.hidden, "vocab": a.vocab},
            "head": {"emb_size": model.emb_size, "block_size": model.block_size, "loss": asdict(pre.loss)},
            "document": asdict(shape), "windows_per_doc": n_windows / batch,
            "pairs_per_doc": len(b["pair_h"]) / batch,
            "batch_requested": a.batch, "batch": batch, "parameters": counts,
            "step_seconds": split, "step_total_seconds": total, "seconds_per_doc": total / batch,
            "peak_memory": peak_memory_mb(device), "memory_estimate": estimate}


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
              f"seconds per document: {res['seconds_per_doc']:.3f}",
              f"peak memory: {res['peak_memory']['mb']:,.0f} MB ({res['peak_memory']['kind']})"]
    est = res["memory_estimate"]
    if est:
        lines.append(f"ESTIMATED GPU memory per batch (fixed {est['fixed_bytes'] / GIB:.2f} GiB + "
                     f"{est['intercept_bytes'] / GIB:.2f} GiB + {est['per_doc_bytes'] / GIB:.3f} GiB per document; "
                     "extrapolated from 1 and 2 documents, without CUDA context and backward transients):")
        lines += [f"  batch {r['batch']:>3}: {r['gib']:7.2f} GiB" for r in est["table"]]
    return "\n".join(lines)


def main(argv=None) -> dict:
    a = parse_args(argv)
    res = run(a)
    out = Path(a.out) if a.out else results_dir() / "bench_paper_shape.json"
    atomic_write_json(out, res)
    print(report(res))
    print(f"written to {out}")
    return res


if __name__ == "__main__":
    main()

"""Where one training step's time goes, on real Re-DocRED documents.

    python benchmarks/bench_step.py [--encoder minilm] [--precision auto|bf16|fp32]
                                    [--batch 4] [--reps 5] [--train-layers N]

A step is cut at detached boundaries so each part's forward and backward are timed alone:
encoder (windows + transformer + stitching), pooling (entities, localized context),
bilinear head (extractors, group outer product, classifier), losses (PMT + EM + SCL + NS).
The head is compared with a bare torch matmul of the classifier's shapes (forward + the two
backward matmuls), its lower bound. Prints seconds per document (median over reps).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pemscl import data as D
from pemscl.features import load_features
from pemscl.losses import compute_loss, loss_spec
from pemscl.model import DocREModel, ModelConfig, collate, resolve_encoder
from pemscl.utils import autocast, resolve_device, resolve_precision


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def step_parts(model, batch, spec, amp, device, hidden=None, first=0):
    t = {}
    with autocast(device, amp):
        if hidden is None:
            (wh, wa), t["encoder_fwd"] = timed(lambda: model.run_encoder(batch["input_ids"], batch["attention_mask"]))
        else:
            (wh, wa), t["encoder_fwd"] = timed(lambda: model.run_top_layers(hidden, batch["attention_mask"], first))
        (seq, att), dt = timed(lambda: model.stitch(wh, wa, batch))
        t["encoder_fwd"] += dt
        seq_d = seq.detach().requires_grad_(True)
        att_d = att.detach().requires_grad_(True)
        (hs, ts, ctx), t["pool_fwd"] = timed(lambda: model.pool(seq_d, att_d, batch))
        hs_d, ts_d, ctx_d = (x.detach().requires_grad_(True) for x in (hs, ts, ctx))
        (logits, zh, zt), t["head_fwd"] = timed(lambda: model.head(hs_d, ts_d, ctx_d))
    lg = logits.detach().float().requires_grad_(True)
    zh_d = zh.detach().float().requires_grad_(True)
    zt_d = zt.detach().float().requires_grad_(True)

    def loss_fb():
        loss, _ = compute_loss(spec, lg, batch["labels"], features=(zh_d, zt_d), generator=torch.Generator().manual_seed(0))
        loss.backward()
        return loss

    _, t["loss_fwd_bwd"] = timed(loss_fb)
    _, t["head_bwd"] = timed(lambda: torch.autograd.backward([logits, zh, zt], [lg.grad.to(logits.dtype), zh_d.grad.to(zh.dtype), zt_d.grad.to(zt.dtype)]))
    _, t["pool_bwd"] = timed(lambda: torch.autograd.backward([hs, ts, ctx], [hs_d.grad, ts_d.grad, ctx_d.grad]))
    _, t["encoder_bwd"] = timed(lambda: torch.autograd.backward([seq, att], [seq_d.grad, att_d.grad]))
    return t, logits.shape[0]


def matmul_bound(n, d, c, amp, device, reps):
    x = torch.randn(n, d, device=device, requires_grad=True)
    w = torch.randn(c, d, device=device, requires_grad=True)
    times = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        with autocast(device, amp):
            y = x @ w.T
        y.float().sum().backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--emb-size", type=int, default=None)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--train-layers", type=int, default=None, help="time the fast path (top N layers on cached input)")
    ap.add_argument("--loss", default="pemscl-ns")
    args = ap.parse_args(argv)

    device = resolve_device("auto")
    amp = resolve_precision(args.precision, device)
    torch.manual_seed(0)
    docs = D.load_regime("redocred-mini").train[: args.batch * args.reps]
    feats = load_features(docs, resolve_encoder(args.encoder), rel2id=D.load_rel2id(), progress=False)
    model = DocREModel(ModelConfig(encoder=args.encoder, emb_size=args.emb_size, block_size=args.block_size)).to(device)
    model.train()
    spec = loss_spec(args.loss)
    first = len(model.layers) - args.train_layers if args.train_layers else 0
    rows = []
    pairs = []
    for r in range(args.reps + 1):  # first rep warms up
        fs = feats[(r % args.reps) * args.batch: (r % args.reps + 1) * args.batch]
        b = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in collate(fs).items()}
        hidden = None
        if args.train_layers:
            with autocast(device, amp):
                hidden = model.encode_bottom(b["input_ids"], b["attention_mask"], first).float()
        model.zero_grad(set_to_none=True)
        t, n = step_parts(model, b, spec, amp, device, hidden, first)
        if r:
            rows.append(t)
            pairs.append(n)
    med = {k: statistics.median(r[k] for r in rows) / args.batch for k in rows[0]}
    n_pairs = int(statistics.median(pairs))
    head = med["head_fwd"] + med["head_bwd"]
    bound = matmul_bound(n_pairs, model.emb_size * model.block_size, model.config.num_classes, amp, device, args.reps) / args.batch
    total = sum(med.values())
    print(f"device={device} precision={amp} encoder={args.encoder} emb={model.emb_size} block={model.block_size} "
          f"batch={args.batch} docs, median pairs/batch={n_pairs}, fast-path layers={args.train_layers}")
    print(f"{'part':<14}{'s/doc':>10}{'share':>9}")
    for name, parts in [("encoder", ("encoder_fwd", "encoder_bwd")), ("pooling", ("pool_fwd", "pool_bwd")),
                        ("head", ("head_fwd", "head_bwd")), ("losses", ("loss_fwd_bwd",))]:
        s = sum(med[p] for p in parts)
        print(f"{name:<14}{s:>10.4f}{s / total:>8.1%}")
    print(f"{'total':<14}{total:>10.4f}")
    print(f"head vs bare matmul ({n_pairs}x{model.emb_size * model.block_size} @ {model.emb_size * model.block_size}x"
          f"{model.config.num_classes}, fwd+bwd): {head:.4f} vs {bound:.4f} s/doc = {head / bound:.2f}x")


if __name__ == "__main__":
    main()

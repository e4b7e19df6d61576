"""Learning-rate probe for the cpu preset: dev F1 per epoch for a few (encoder lr, head lr, batch).

    python benchmarks/probe_lr.py                       # the grid the cpu preset was chosen from
    python benchmarks/probe_lr.py --grid 5e-5,3e-4,4 1e-4,1e-3,4 --epochs 4 --layers 2

Each point is an ordinary run (folder under $PEMSCL_RUNS/probes, reused when complete), PEMSCL on
redocred-mini with the fast path; the table is what the cpu preset's comment quotes.
"""

from __future__ import annotations

import argparse

from pemscl import train as T
from pemscl.utils import runs_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", nargs="+", default=["5e-5,3e-4,4", "1e-4,1e-3,4", "1e-4,1e-3,2"],
                    help="lr_encoder,lr_head,batch_size triples")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2, help="fast path: trained top layers (0: full fine-tuning)")
    ap.add_argument("--max-test-docs", type=int, default=200)
    args = ap.parse_args()
    rows = []
    for point in args.grid:
        lr_e, lr_h, bs = point.split(",")
        cfg = T.preset("cpu", epochs=args.epochs, lr_encoder=float(lr_e), lr_head=float(lr_h), batch_size=int(bs),
                       train_layers=args.layers or None, max_test_docs=args.max_test_docs,
                       label=f"probe-enc{lr_e}-head{lr_h}-b{bs}")
        run = T.train(cfg, root=runs_dir() / "probes", progress=False)
        curve = " ".join(f"{100 * h['dev_f1']:5.1f}" for h in run.history)
        rows.append(f"{lr_e:>8} {lr_h:>8} {bs:>5}   {curve}   test F1 {100 * run.scores['test']['f1']:5.1f}"
                    f"   {run.scores['seconds'] / 60:4.1f} min")
        print(rows[-1], flush=True)
    print(f"\nlr_enc  lr_head  batch   dev F1 by epoch   (PEMSCL, top {args.layers} layers, {args.epochs} epochs)")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

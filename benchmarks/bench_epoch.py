"""Wall time of one training epoch on a regime's full training split.

    python benchmarks/bench_epoch.py                         # fast path, top 2 layers, oog-mini (761 docs)
    python benchmarks/bench_epoch.py --layers 0 --regime redocred-mini   # full fine-tuning

Trains one epoch of PEMSCL with the cpu preset into a throwaway folder and prints the epoch's
training seconds (dev scoring and the one-off layer cache excluded: both are reported apart).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from pemscl import config as CF

from pemscl import train as T


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--regime", default="oog-mini")
    ap.add_argument("--layers", type=int, default=2, help="fast path: trained top layers (0: full fine-tuning)")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: the cpu preset's)")
    args = ap.parse_args()
    over = {"batch_size": args.batch} if args.batch else {}
    cfg = CF.preset("cpu", regime=args.regime, epochs=1, train_layers=args.layers or None, eval_test=False,
                   save_model=False, track=("dev",), label="bench-epoch", **over)
    t0 = time.time()
    splits = T.prepare(cfg, progress=False)
    t_prep = time.time() - t0
    with tempfile.TemporaryDirectory() as root:
        run = T.train(cfg, root=root, progress=False, splits=splits)
    h = run.history[0]
    n = len(splits.docs["train"])
    print(f"{args.regime}: {n} training docs, batch {cfg.batch_size}, "
          f"{'top ' + str(args.layers) + ' layers' if args.layers else 'full fine-tuning'}, "
          f"{run.scores['precision']} on {run.scores['device']}")
    print(f"epoch {h['train_seconds']:.1f} s ({h['train_seconds'] / n:.3f} s/doc); dev scoring {h['eval_seconds']:.1f} s; "
          f"features {t_prep:.1f} s; whole run incl. layer cache {run.scores['seconds']:.1f} s")


if __name__ == "__main__":
    main()

"""Two single-threaded training runs side by side, or one two-threaded run: which trains more
documents per second on this machine? And fp32 or bf16 autocast? Run it alone on the machine.

    python benchmarks/bench_parallel.py [--steps 30] [--precision fp32]

Each worker times `--steps` full fine-tuning steps (cpu preset, MiniLM, batch 2, redocred-mini
training documents in the run's order) after 3 warm-up steps. "one" runs one worker with
torch.set_num_threads(2); "two" runs two workers at once with one thread each (different
seeds, so they read different documents, as two runs of a profile would). Throughput is
documents per second summed over the workers. Results are merged into
results/bench_parallel.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time


def worker(threads: int, seed: int, steps: int, precision: str, out: mp.Queue) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    from pemscl import config, distributed, train

    cfg = config.preset("cpu", seed=seed, precision=precision, label="bench")
    splits = train.prepare(cfg, progress=False)
    ctx = train.build(cfg, splits, dist=distributed.Dist(), progress=False)
    order = ctx.streams.order(0, len(splits.features["train"]))
    batches = [order[i: i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    for b in batches[:3]:
        train.train_step(ctx, b)
    t0 = time.perf_counter()
    for b in batches[3: 3 + steps]:
        train.train_step(ctx, b)
    seconds = time.perf_counter() - t0
    out.put({"seed": seed, "threads": threads, "docs": steps * cfg.batch_size, "seconds": seconds})


def measure(n_workers: int, threads: int, steps: int, precision: str) -> dict:
    q: mp.Queue = mp.get_context("spawn").Queue()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=worker, args=(threads, 66 + i, steps, precision, q)) for i in range(n_workers)]
    for p in procs:
        p.start()
    rows = [q.get() for _ in procs]
    for p in procs:
        p.join()
    docs_per_s = sum(r["docs"] / r["seconds"] for r in rows)
    return {"workers": n_workers, "threads_each": threads, "precision": precision, "docs_per_s": docs_per_s,
            "s_per_doc_each": [r["seconds"] / r["docs"] for r in rows]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    a = ap.parse_args()
    from pemscl.utils import atomic_write_text, results_dir

    rows = []
    for prec in a.precision:
        for n, threads in ((1, 2), (2, 1)):
            r = measure(n, threads, a.steps, prec)
            rows.append(r)
            print(f"{prec}: {n} worker(s) x {threads} thread(s): {r['docs_per_s']:.2f} docs/s "
                  f"(s/doc each: {', '.join(f'{x:.3f}' for x in r['s_per_doc_each'])})", flush=True)
    path = results_dir() / "bench_parallel.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    known[platform.node() or "machine"] = {"cpu_count": os.cpu_count(), "steps": a.steps, "rows": rows,
                                           "date": time.strftime("%Y-%m-%d %H:%M")}
    atomic_write_text(path, json.dumps(known, indent=1) + "\n")


if __name__ == "__main__":
    main()

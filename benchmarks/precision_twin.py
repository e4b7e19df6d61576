"""Does the precision a machine trains in change what a run scores? Trains the fp32 twin of
recorded `cpu`-profile leaderboard runs (trained in bf16 autocast) and sets them side by side.

    python benchmarks/precision_twin.py --train "ATL:66"      # one twin per process
    python benchmarks/precision_twin.py --report              # -> results/precision_twins.json

`precision="auto"` lets each machine train in what it measures fastest (bf16 autocast where the
CPU has native bf16, fp32 on an AVX2-only one), and the cpu profile's recorded runs are all bf16.
Whether a run trained elsewhere in fp32 may stand beside them is a measured question: a twin has
the same config, seed, data order and schedule, and differs only in precision. Its difference
to the recorded run is the effect of precision plus the divergence any change in rounding sets
off (a fine-tuning trajectory is chaotic), so one pair is weak evidence and several pairs are an
interval. Each twin is merged into results/runs.jsonl under its own key (precision is part of
it), so the record keeps it. Run `--train` for two twins side by side with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pemscl import experiments as X  # noqa: E402
from pemscl import runs as RS  # noqa: E402
from pemscl import stats as S  # noqa: E402
from pemscl.claims import BOOT_SEED, N_BOOT, counts  # noqa: E402
from pemscl.utils import atomic_write_json, results_dir  # noqa: E402

OUT = "precision_twins.json"


def leaderboard_config(label: str, seed: int, regime: str):
    """The recorded leaderboard config of (row label, seed, regime): e.g. ("ATL", 66, gold)."""
    found = [c for c in X.leaderboard("cpu") if c.label == label and c.seed == seed and c.regime == regime]
    if not found:
        known = sorted({f"{c.label}:{c.seed}" for c in X.leaderboard("cpu") if c.regime == regime})
        raise SystemExit(f"no leaderboard run {label}:{seed} in {regime}; known: {', '.join(known)}")
    return found[0]


def twin(cfg):
    return dataclasses.replace(cfg, precision="fp32")


def pairs(regime: str, recs: dict) -> list[tuple]:
    """(config, recorded bf16 run, fp32 twin) for every leaderboard run of `regime` that has both
    in `recs` (runs.by_key of the record)."""
    out = []
    for c in X.leaderboard("cpu"):
        a, b = RS.recorded(c, recs), RS.recorded(twin(c), recs)
        if c.regime == regime and a is not None and b is not None:
            out.append((c, a, b))
    return out


def _summary(run) -> dict:
    s = run.scores
    return {"key": run.config.key(), "test_f1": s["test"]["f1"], "test_ign_f1": s["test"]["ign_f1"],
            "dev_f1": s["dev"]["f1"], "best_epoch": s.get("best_epoch"), "epochs_run": s.get("epochs_run"),
            "minutes": (s.get("seconds") or 0) / 60, "converged": s.get("converged"),
            "precision": s.get("precision")}


def seed_sd(label: str, regime: str, recs: dict) -> float | None:
    """The sd of test F1 over the row's recorded bf16 seeds: the scale a twin's difference is read on
    (two runs a seed apart differ by about sqrt(2) of it)."""
    f1s = [r.scores["test"]["f1"] for c in X.leaderboard("cpu") if c.label == label and c.regime == regime
           for r in [RS.recorded(c, recs)] if r is not None]
    return statistics.stdev(f1s) if len(f1s) > 1 else None


def report(regime: str) -> dict:
    """fp32 minus bf16 per pair, and over the pairs the claims' interval (documents and pairs:
    each pair plays the part of a seed; with one pair, the documents' interval only)."""
    recs = RS.by_key(RS.load_exported(strict=False))  # read once: every pair and row looks in it
    found = pairs(regime, recs)
    rows = [{"label": c.label, "seed": c.seed, "bf16": _summary(a), "fp32": _summary(b),
             "diff_test_f1": b.scores["test"]["f1"] - a.scores["test"]["f1"],
             "diff_dev_f1": b.scores["dev"]["f1"] - a.scores["dev"]["f1"],
             "row_seed_sd_test_f1": seed_sd(c.label, regime, recs)} for c, a, b in found]
    res = None
    if found:
        res = S.paired_bootstrap([counts(b, "test") for _, _, b in found], [counts(a, "test") for _, a, _ in found],
                                 n_boot=N_BOOT, seed=BOOT_SEED).to_dict()
    out = {"regime": regime, "n_pairs": len(rows), "pairs": rows, "fp32_minus_bf16_test_f1": res,
           "command": "python benchmarks/precision_twin.py --report"}
    atomic_write_json(results_dir() / OUT, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", metavar="LABEL:SEED", help="train the fp32 twin of this leaderboard run")
    ap.add_argument("--regime", default="redocred-mini")
    ap.add_argument("--report", action="store_true")
    a = ap.parse_args()
    if a.train:
        from pemscl import train as T

        label, seed = a.train.rsplit(":", 1)
        cfg = twin(leaderboard_config(label, int(seed), a.regime))
        run = T.train(cfg, progress=False)
        RS.export_runs([run])
        print(f"{cfg.label} seed {cfg.seed} fp32: test F1 {run.scores['test']['f1']:.4f}, "
              f"{run.scores['seconds'] / 60:.0f} min, key {cfg.key()}")
    if a.report:
        out = report(a.regime)
        for r in out["pairs"]:
            print(f"{r['label']:8s} seed {r['seed']}: test F1 bf16 {100 * r['bf16']['test_f1']:.2f} "
                  f"fp32 {100 * r['fp32']['test_f1']:.2f} ({100 * r['diff_test_f1']:+.2f}); best epoch "
                  f"{r['bf16']['best_epoch']} / {r['fp32']['best_epoch']}; "
                  f"{r['bf16']['minutes']:.0f} / {r['fp32']['minutes']:.0f} min; the row's seed sd "
                  f"{100 * (r['row_seed_sd_test_f1'] or float('nan')):.2f}")
        res = out["fp32_minus_bf16_test_f1"]
        if res:
            print(f"fp32 - bf16 over {res['n_seeds']} pairs: {100 * res['diff']:+.2f} "
                  f"[{100 * res['ci_low']:+.2f}, {100 * res['ci_high']:+.2f}], MDE {100 * res['mde']:.2f}")


if __name__ == "__main__":
    main()

"""How much F1 a trained run's decision rule leaves unused: the rule as trained against the same
rule with its threshold moved by a margin chosen on the run's selection dev set.

Every loss of the leaderboard but BCE decides "relation r when f_r > f_NA" (the NA column is a
learned threshold per pair; for SSR-PU the score its ranking loss is trained against). Such a
rule is only as good as the loss calibrates f_NA: a loss that ranks well but sets its threshold
too low over-predicts. The probe moves the threshold by a shift d, "r when f_r > f_NA + d",
picks d for F1 on the selection dev set (test is never used to choose), and reports dev and
test at d = 0 (the run as recorded) and at the chosen d. A large gain says the loss's ranking is
better than its own decision rule shows; no gain says the threshold is where it should be.
BCE is left out: its rule is already a probability threshold tuned on dev.

A run with a second selection dev set (on original labels: original dev first, gold dev
beside) also gets the shift gold dev would choose, read on test (`beside`): how much of what
incomplete labels cost is a threshold set too high, which a user with gold dev labels could move.

This is a diagnostic, not a leaderboard row: the leaderboard keeps each method's own rule. Runs
need their model (a local run folder with model.pt). Results are merged into
results/probe_decision.json, keyed by run key; inference runs in the run's own precision, so
d = 0 gives the recorded dev F1 again (the probe checks it).

    python benchmarks/probe_decision.py runs/SSR-PU-54e105e3bf80 runs/AFL-a6d40562b2c5
    python benchmarks/probe_decision.py --report
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from pemscl import evaluate as E
from pemscl import train as T
from pemscl import leaderboard as LB
from pemscl.model import decide, to_official
from pemscl.runs import Run
from pemscl.utils import atomic_write_text, resolve_device, resolve_precision, results_dir

# in logit units, 0 included: steps of 0.02 near 0 (SSR-PU's scores sit within its margin of 0.25 of
# f_NA: one step of 0.25 took its dev F1 from 50 to 28), then steps of 0.25 out to -6 and +4 (ATL
# trained on original labels took -2, the first grid's edge, on gold dev: its threshold sits far high)
SHIFTS = tuple(sorted({round(0.02 * i, 2) for i in range(-15, 16)} | {round(0.25 * i, 2) for i in range(-24, 17)}))
OUT = LB.PROBE_FILE


def sweep(logits: torch.Tensor, features: Sequence[dict], docs: Sequence[dict], id2rel,
          shifts: Sequence[float] = SHIFTS, top_k: int | None = None) -> list[dict]:
    """F1, precision, recall and predictions of "r when f_r > f_NA + d" for each shift d.

    Counted on the pairs' label rows (a low threshold predicts millions of facts: building the
    official prediction list for each shift took minutes a shift); n_gold is the official count,
    so a gold fact no pair carries still counts as missed. `official` scores one shift the
    official way."""
    gold = torch.cat([torch.as_tensor(f["labels"]) for f in features])[:, 1:] > 0
    n_gold = official(logits, features, docs, id2rel, 0.0, top_k)["n_gold"]
    rows = []
    for d in shifts:
        moved = logits.clone()
        moved[:, 0] += d
        pos = decide(moved, top_k=top_k)[:, 1:]
        tp, n_pred = int((pos & gold).sum()), int(pos.sum())
        p, r = tp / n_pred if n_pred else 0.0, tp / n_gold if n_gold else 0.0
        rows.append({"shift": float(d), "f1": 2 * p * r / (p + r) if p + r else 0.0, "precision": p, "recall": r,
                     "n_pred": n_pred, "n_gold": n_gold})
    return rows


def official(logits: torch.Tensor, features: Sequence[dict], docs: Sequence[dict], id2rel, shift: float,
             top_k: int | None = None) -> dict:
    """The official scores (evaluate.score) of one shift."""
    moved = logits.clone()
    moved[:, 0] += shift
    return E.score(to_official(decide(moved, top_k=top_k), features, id2rel), docs)


def best_shift(rows: Sequence[dict]) -> dict:
    """The row of highest F1; on a tie the shift nearest 0 (the rule as trained) wins."""
    return max(rows, key=lambda r: (r["f1"], -abs(r["shift"])))


def at_edge(row: dict, shifts: Sequence[float] = SHIFTS) -> list[tuple[str, float]]:
    """The (split, shift) choices of a probed row that sit on the grid's edge: the best shift may
    lie beyond it, so the gain read there is a lower bound."""
    choices = [(row["select"], row["chosen_shift"]), *((s, b["chosen_shift"]) for s, b in row["beside"].items())]
    return [(split, d) for split, d in choices if d in (min(shifts), max(shifts))]


def probe(run_dir: str | Path, shifts: Sequence[float] = SHIFTS) -> dict:
    run = Run.load(run_dir)
    cfg = run.config
    if T.needs_threshold(cfg):
        raise SystemExit(f"{run_dir}: {cfg.loss.kind} decides with a probability threshold tuned on dev already")
    model, cfg = T.load(run, device="cpu")
    device = resolve_device("cpu")
    splits = T.prepare(cfg, progress=False)
    selects = list(dict.fromkeys(cfg.select or ("dev",)))
    select = selects[0]  # the run's own selection: it chose the saved epoch, and here the shift
    curves, logits = {}, {}
    for split in dict.fromkeys([*selects, "test"]):
        logits[split] = T.infer(model, splits.features[split], batch_size=cfg.batch_size, device=device,
                                amp_dtype=resolve_precision(cfg.precision, device))["logits"]
        curves[split] = sweep(logits[split], splits.features[split], splits.docs[split], splits.id2rel, shifts,
                              cfg.top_k)
    chosen = best_shift(curves[select])["shift"]
    others = {s: best_shift(curves[s])["shift"] for s in selects[1:]}  # same model, another dev's shift
    # the official scores wanted: each dev set at 0 and its own choice, test at 0 and every choice
    wanted = {select: [0.0, chosen], **{s: [0.0, d] for s, d in others.items()}}
    wanted["test"] = [0.0, chosen, *others.values()]
    at = {split: {d: official(logits[split], splits.features[split], splits.docs[split], splits.id2rel, d, cfg.top_k)
                  for d in dict.fromkeys(wanted[split])} for split in logits}
    beside = {s: {"chosen_shift": d, "dev_f1_at_0": at[s][0.0]["f1"], "dev_f1_chosen": at[s][d]["f1"],
                  "test_f1_chosen": at["test"][d]["f1"]} for s, d in others.items()}
    recorded = (run.scores.get(select) or {}).get("f1")
    return {"key": cfg.key(), "label": cfg.label, "loss": cfg.loss.kind, "regime": cfg.regime, "seed": cfg.seed,
            "select": select, "recorded_dev_f1": recorded, "chosen_shift": chosen,
            "dev_f1_at_0": at[select][0.0]["f1"], "dev_f1_chosen": at[select][chosen]["f1"],
            "test_f1_at_0": at["test"][0.0]["f1"], "test_f1_chosen": at["test"][chosen]["f1"],
            "test_precision_at_0": at["test"][0.0]["precision"], "test_recall_at_0": at["test"][0.0]["recall"],
            "test_precision_chosen": at["test"][chosen]["precision"],
            "test_recall_chosen": at["test"][chosen]["recall"], "beside": beside, "curves": curves}


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="*", help="run folders with a model.pt")
    ap.add_argument("--out", default=None, help=f"JSON to merge into (default: results/{OUT})")
    ap.add_argument("--report", action="store_true", help="print the table of what is recorded (also after probing)")
    a = ap.parse_args(argv)
    path = Path(a.out) if a.out else results_dir() / OUT
    for d in a.runs:
        t0 = time.time()
        row = probe(d)
        known = json.loads(path.read_text()) if path.exists() else {}  # read again: another process may write
        known[row["key"]] = {**row, "seconds": round(time.time() - t0, 1), "threads": torch.get_num_threads()}
        atomic_write_text(path, json.dumps(known, indent=1) + "\n")
        if row["recorded_dev_f1"] is not None and abs(row["dev_f1_at_0"] - row["recorded_dev_f1"]) > 0.005:
            print(f"warning: {d}: dev F1 at shift 0 is {100 * row['dev_f1_at_0']:.2f}, the record says "
                  f"{100 * row['recorded_dev_f1']:.2f} (another CPU's arithmetic?)", file=sys.stderr)
        print(f"{d}: shift {row['chosen_shift']:+.2f} chosen on {row['select']}; test F1 "
              f"{100 * row['test_f1_at_0']:.2f} → {100 * row['test_f1_chosen']:.2f}", flush=True)
        for split, d_split in at_edge(row):
            print(f"warning: {d}: the shift chosen on {split}, {d_split:+.2f}, is the grid's edge", file=sys.stderr)
    results = json.loads(path.read_text()) if path.exists() else {}
    print(LB.probe_markdown(results.values()))
    return results


if __name__ == "__main__":
    main()

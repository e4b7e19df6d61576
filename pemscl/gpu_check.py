"""What `benchmarks/gpu_check.sh` measured on a GPU machine, as a table for the results.

The script leaves its files in results/gpu_check/ (or the folder given): the pytest report of the
CUDA tests, the paper profile's dry run, training steps at the paper's shape (the fast path alone,
and eager against fast: `bench_comparison`), and whole runs
of the `cpu` preset on the GPU (minilm_<loss>_<seed>_scores.json / _history.json). `summary()`
reads them; `markdown()` shows them beside the CPU runs of the same config from the run record,
so a reader sees whether the GPU path gives the CPU's numbers and how much faster. Where both
rows of a claim ran as cpu-preset losses on the same seeds (`replicable_claims`: pemscl-vs-atl
and the ablation's em-helps, scl-helps and tail), `replicate()` judges that claim on the GPU runs
as a run kind of its own: GPU kernels and the MiniLM weights rounded to fp16 on the way to the
machine (the transfer limit), so they are never pooled with the CPU runs of the claim.
"""

from __future__ import annotations

import argparse
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Mapping, Sequence

from . import claims as C
from . import config as CF
from . import experiments as X
from . import leaderboard as LB
from . import lossspec as LS
from . import runs as RS
from . import stats as S
from .fmt import pct, pts, table_md
from .utils import read_json, results_dir

FOLDER = "gpu_check"
LEADERBOARD_RUNS = "leaderboard_runs.jsonl"  # `gpu_check.sh leaderboard`: the record of its GPU runs
RUN_FILE = re.compile(r"minilm_(?P<loss>[a-z0-9-]+)_(?P<seed>\d+)_scores\.json$")


def folder_path(folder: str | Path | None = None) -> Path:
    return Path(folder) if folder is not None else results_dir() / FOLDER


def _json(path: Path):
    return read_json(path) if path.exists() else None  # the script's parts are run one by one


def test_counts(xml_path: Path) -> dict | None:
    """Totals of a pytest --junitxml report: tests, failures, errors, skipped, seconds."""
    if not xml_path.exists():
        return None
    root = ET.parse(xml_path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    total["seconds"] = sum(float(s.get("time", 0)) for s in suites)
    total["passed"] = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    return total


def dry_run(folder: Path) -> dict | None:
    """Configs trained and seconds of the paper profile's dry run (dryrun.json, dryrun.log)."""
    info = _json(folder / "dryrun.json")
    log = folder / "dryrun.log"
    if info is None or not log.exists():
        return None
    done = re.findall(r"^\[(\d+)/(\d+)\]", log.read_text(), re.M)
    return {"seconds": info["seconds"], "trained": len(done), "configs": int(done[-1][1]) if done else 0}


def gpu_runs(folder: Path) -> list[dict]:
    """The whole runs on the GPU: loss, seed, dev/test F1, best epoch, epochs run, minutes."""
    out = []
    for path in sorted(folder.glob("minilm_*_scores.json")):
        m = RUN_FILE.search(path.name)
        if not m:
            continue
        s = _json(path)
        gpu = _json(path.with_name(path.name.replace("_scores.json", "_device.json"))) or {}
        cfg = _json(path.with_name(path.name.replace("_scores.json", "_config.json"))) or {}
        out.append({"loss": m["loss"], "seed": int(m["seed"]), "device": s.get("device"),
                    "min_epochs": cfg.get("min_epochs"),  # runs without a config predate the field
                    "gpu": gpu.get("name"), "side_by_side": gpu.get("side_by_side"),
                    "dev_f1": s["dev"]["f1"], "test_f1": s["test"]["f1"], "best_epoch": s["best_epoch"],
                    "epochs_run": s["epochs_run"], "converged": s.get("converged"),
                    "stopped_early": s.get("stopped_early"),
                    "minutes": s["seconds"] / 60, "peak_cuda_mb": s.get("peak_cuda_mb")})
    return out


def _doc_counts(folder: Path, loss: str, seed: int, split: str) -> Mapping | None:
    return ((_json(folder / f"minilm_{loss}_{seed}_scores.json") or {}).get("doc_counts") or {}).get(split)


def _claim_losses(claim_id: str):
    """(claim, loss preset of its row A, of its row B) for a claim the GPU runs can judge: both
    rows are cpu-preset runs on gold labels that differ only in the loss."""
    claim = next((c for c in C.CLAIMS if c.id == claim_id), None)
    if claim is None:
        raise ValueError(f"unknown claim {claim_id!r}; known: {[c.id for c in C.CLAIMS]}")
    loss_of = {"ATL": "atl", **X.ABLATION}  # row label -> the --loss preset `gpu_check.sh minilm` runs
    if claim.original_labels or claim.a not in loss_of or claim.b not in loss_of:
        raise ValueError(f"claim {claim_id!r} needs runs the GPU check does not make (rows {claim.a!r}, "
                         f"{claim.b!r}{', original labels' if claim.original_labels else ''})")
    return claim, loss_of[claim.a], loss_of[claim.b]


def replicable_claims() -> list[str]:
    """The claims whose two rows `gpu_check.sh minilm` can run (LOSSES names their presets)."""
    out = []
    for c in C.CLAIMS:
        try:
            _claim_losses(c.id)
        except ValueError:
            continue
        out.append(c.id)
    return out


def replicate(folder: str | Path | None = None, claim_id: str = "pemscl-vs-atl",
              runs: Sequence[Mapping] | None = None) -> dict | None:
    """The claim `claim_id` judged on the GPU runs alone: seed-paired bootstrap of F1(A) - F1(B)
    on the claim's split and relation group, over every seed both losses ran, with the claims'
    own resampling and verdict rule (and the claim's context groups beside); None when no seed
    has both. `paper_outside` says whether the paper's effect lies outside the interval.
    runs: gpu_runs(folder) when the caller has it already."""
    claim, a, b = _claim_losses(claim_id)
    folder = folder_path(folder)
    runs = gpu_runs(folder) if runs is None else runs
    seeds = sorted({r["seed"] for r in runs if r["loss"] == a} & {r["seed"] for r in runs if r["loss"] == b})
    pairs = [(s, _doc_counts(folder, a, s, claim.split), _doc_counts(folder, b, s, claim.split)) for s in seeds]
    pairs = [p for p in pairs if p[1] is not None and p[2] is not None]
    if not pairs:
        return None

    def boot(group):
        return S.paired_bootstrap([p[1] for p in pairs], [p[2] for p in pairs], metric="f1", group=group,
                                  n_boot=C.N_BOOT, seed=C.BOOT_SEED)

    res = boot(claim.group)
    effect = C.CLAIM_EFFECTS[claim_id].effect
    context = {g: C._interval(boot(g)) for g in claim.context_groups if all(g in p[1] and g in p[2] for p in pairs)}
    return {**res.to_dict(), "claim": claim_id, "a": a, "b": b, "split": claim.split, "group": claim.group,
            "seeds": [p[0] for p in pairs], "paper_effect": effect, "verdict": S.verdict(res, effect),
            "paper_outside": not (res.ci_low <= effect <= res.ci_high), "context": context}


def replicates(folder: str | Path | None = None, runs: Sequence[Mapping] | None = None) -> list[dict]:
    """replicate() of every replicable claim that has at least one paired seed, in CLAIMS order."""
    folder = folder_path(folder)
    runs = gpu_runs(folder) if runs is None else runs
    return [r for r in (replicate(folder, c, runs=runs) for c in replicable_claims()) if r is not None]


def loss_means(runs: Sequence[Mapping]) -> list[dict]:
    """Per loss: seeds, and mean and sd (over seeds) of dev and test F1 and of the epochs run."""
    import statistics as st

    out = []
    first = ("atl", "pemscl")  # the headline pair first, then the ablation's rows by name
    for loss in sorted({r["loss"] for r in runs}, key=lambda x: (first.index(x) if x in first else 2, x)):
        rs = [r for r in runs if r["loss"] == loss]
        row = {"loss": loss, "n_seeds": len(rs), "seeds": sorted(r["seed"] for r in rs)}
        for k in ("dev_f1", "test_f1", "epochs_run"):
            v = [r[k] for r in rs]
            row[k] = st.mean(v)
            row[f"{k}_sd"] = st.stdev(v) if len(v) > 1 else None
        out.append(row)
    return out


def bench_comparison(folder: Path) -> dict | None:
    """The eager-vs-fast comparison at the paper's shape (bench_attention_gpu.json, written by
    `bench_paper_shape.py --compare`), condensed: per batch and path the median seconds per document
    and its [min, max], MFU and peak memory, the ratio eager / fast; the logit difference of the two
    paths, the FLOP count and peak behind the MFU, and the largest batch that fits each path."""
    b = _json(folder / "bench_attention_gpu.json")
    if not b:
        return None
    paths = ("eager", "fast")
    rows = []
    for r in b.get("batches", []):
        row = {"batch": r["batch"], "oom": bool(r.get("oom")), "ratio": r.get("ratio_eager_over_fast")}
        for p in paths:
            v = (r.get("paths") or {}).get(p)
            sp = (v or {}).get("seconds_per_doc") or {}
            row.update({f"{p}_s_per_doc": sp.get("median"),
                        f"{p}_spread": [sp["min"], sp["max"]] if sp else None,
                        f"{p}_mfu": (v or {}).get("mfu"),
                        f"{p}_peak_mb": ((v or {}).get("peak_memory") or {}).get("mb")})
        rows.append(row)
    fit = b.get("fit") or {}
    enc = b.get("encoder", {})
    return {"device": b.get("device_name"), "precision": b.get("precision"), "layers": enc.get("layers"),
            "hidden": enc.get("hidden"), "tokens": (b.get("document") or {}).get("tokens"),
            "warmup": b.get("warmup"), "reps": b.get("reps"),
            "max_abs_logit_diff": b.get("max_abs_logit_diff"),
            "max_abs_logit_diff_fp32": (b.get("logits") or {}).get("max_abs_logit_diff_fp32"),
            "flops_per_doc": b.get("flops_per_doc"), "device_peak_flops": b.get("device_peak_flops"),
            "peak_source": b.get("peak_source"), "rows": rows,
            "max_batch": {p: (fit.get(p) or {}).get("max_batch") for p in paths},
            "fit_searched": any((fit.get(p) or {}).get("searched") for p in paths),
            "fit_peak_mb": {p: {t["batch"]: (t["peak_mb"] if t["fits"] else None) for t in (fit.get(p) or {}).get("tried", [])}
                            for p in paths}}


def leaderboard(folder: str | Path | None = None) -> dict | None:
    """The leaderboard of the GPU runs alone (`gpu_check.sh leaderboard`), as leaderboard.build makes
    it for the CPU record: the cpu profile's rows on cuda at every seed any of them ran (a seed a row
    lacks is listed as missing); None without the file."""
    folder = folder_path(folder)
    path = folder / LEADERBOARD_RUNS
    if not path.exists():
        return None
    runs = RS.load_exported(path, strict=False)
    seeds = sorted({r.config.seed for r in runs})
    board = LB.build(runs, "cpu", configs=X.retarget(X.leaderboard("cpu"), device="cuda", seeds=seeds))
    gpu = (_json(folder / "device_leaderboard.json") or {}).get("name")  # the latest lease's GPU
    return {**board, "seeds": seeds, "gpu": gpu}


def merge_runs(source: str | Path, dest: str | Path) -> int:
    """The runs recorded in `source` merged into the record `dest` (runs.export_runs: same key
    replaced, every other line kept); how many. For the leaderboard's GPU runs of several leases."""
    runs = RS.load_exported(source, strict=True)
    RS.export_runs(runs, dest)
    return len(runs)


def summary(folder: str | Path | None = None) -> dict | None:
    """Everything the folder holds, or None when the GPU check was never run."""
    folder = folder_path(folder)
    if not folder.is_dir():
        return None
    bench = _json(folder / "bench_paper_shape.json")
    # the GPU of the tests, dry run and bench (the runs name their own: parts may use other machines)
    device = next((d for d in (_json(folder / f"device_{p}.json") for p in ("tests", "dryrun", "bench")) if d), {})
    runs = gpu_runs(folder)
    return {"device": device.get("name") or (bench or {}).get("device_name"), "torch": device.get("torch"),
            "tests": test_counts(folder / "tests.xml"), "dry_run": dry_run(folder), "bench": bench,
            "bench_attention": bench_comparison(folder),
            "runs": runs, "means": loss_means(runs), "replicates": replicates(folder, runs=runs),
            "leaderboard": leaderboard(folder)}


def cpu_counterpart(loss: str, seed: int, index: Mapping, min_epochs: int | None = None) -> object | None:
    """The recorded CPU run of the cpu preset with this loss, seed and min_epochs (the GPU
    run's config but for its device), or None; index: runs.by_key of the record."""
    return RS.recorded(CF.preset("cpu", loss=LS.loss_spec(loss), seed=seed, device="cpu", min_epochs=min_epochs),
                       index)


def report(records: Sequence, folder: str | Path | None = None) -> dict | None:
    """summary() with each GPU run's CPU counterpart (cpu_dev_f1, cpu_test_f1, cpu_best_epoch,
    cpu_epochs_run, cpu_minutes; None where no CPU run is recorded)."""
    s = summary(folder)
    if s is None:
        return None
    index = RS.by_key(records)
    for r in s["runs"]:
        c = cpu_counterpart(r["loss"], r["seed"], index, r.get("min_epochs"))
        cs = c.scores if c is not None else {}
        r.update({"cpu_dev_f1": cs.get("dev", {}).get("f1"), "cpu_test_f1": cs.get("test", {}).get("f1"),
                  "cpu_best_epoch": cs.get("best_epoch"), "cpu_epochs_run": cs.get("epochs_run"),
                  "cpu_minutes": cs["seconds"] / 60 if cs else None})
    return s


def _epochs(best, run) -> str | None:
    return f"{best}/{run}" if run else None


def _gpu(r) -> str | None:
    name = (r.get("gpu") or "").replace("NVIDIA ", "").split(" ")[0] or None
    return name and (f"{name} x{r['side_by_side']}" if r.get("side_by_side") else name)


RUN_COLS = [("loss", "loss"), ("seed", "seed"), ("GPU dev F1", lambda r: pct(r["dev_f1"])),
            ("CPU dev F1", lambda r: pct(r.get("cpu_dev_f1"))), ("GPU test F1", lambda r: pct(r["test_f1"])),
            ("CPU test F1", lambda r: pct(r.get("cpu_test_f1"))),
            ("GPU best/run epochs", lambda r: _epochs(r["best_epoch"], r["epochs_run"])),
            ("CPU best/run epochs", lambda r: _epochs(r.get("cpu_best_epoch"), r.get("cpu_epochs_run"))),
            ("GPU min", lambda r: f"{r['minutes']:.1f}"), ("GPU (runs sharing it)", _gpu),
            ("CPU min", lambda r: f"{r['cpu_minutes']:.0f}" if r.get("cpu_minutes") else None)]


def _min_epochs_note(runs: Sequence[Mapping]) -> list[str]:
    """Which GPU runs predate the cpu preset's min_epochs and which of those it would change."""
    need = CF.preset("cpu").min_epochs
    older = [r for r in runs if r.get("min_epochs") is None]
    if not older or not need:
        return []
    cut = [r for r in older if r.get("stopped_early") and r["epochs_run"] < need]
    return ["", f"{len(older)} of these runs predate `min_epochs` (their CPU column shows the CPU run of that "
            f"older config). {len(cut)} of them stopped before epoch {need} and would have trained on under the "
            "preset's rule (" + (", ".join(f"{r['loss']} {r['seed']}" for r in cut) or "none") + "); the rest are "
            "the same runs under it."]


MEAN_COLS = [("loss", "loss"), ("seeds", lambda r: f"{r['n_seeds']} ({r['seeds'][0]}-{r['seeds'][-1]})"),
             ("dev F1", lambda r: pct(r["dev_f1"], r["dev_f1_sd"])),
             ("test F1", lambda r: pct(r["test_f1"], r["test_f1_sd"])),
             ("epochs run", lambda r: f"{r['epochs_run']:.1f}" + (f" ± {r['epochs_run_sd']:.1f}"
                                                                   if r["epochs_run_sd"] is not None else ""))]


def replicate_line(rep: Mapping) -> str:
    """One replicate() result as a sentence."""
    group = "" if rep.get("group", "all") == "all" else f" {rep['group']}"
    ctx = "".join(f"; {g} beside: {pts(c['diff'])} [{pts(c['ci_low'])}, {pts(c['ci_high'])}]"
                  for g, c in (rep.get("context") or {}).items())
    return (f"`{rep['claim']}` ({rep['a']} - {rep['b']}, {rep['split']}{group} F1, seeds "
            f"{rep['seeds'][0]}-{rep['seeds'][-1]}, {rep['n_seeds']} paired): {pts(rep['diff'])} "
            f"[{pts(rep['ci_low'])}, {pts(rep['ci_high'])}], MDE {100 * rep['mde']:.2f}, seed sd of the difference "
            f"{100 * (rep['seed_sd'] or 0):.2f}: **{rep['verdict']}**"
            + (f"; the paper's {pts(rep['paper_effect'])} lies outside the interval" if rep["paper_outside"] else "")
            + f"{ctx}. Per seed: " + ", ".join(pts(d) for d in rep["seed_diffs"]) + ".")


def _mb(x) -> str:
    return "–" if x is None else f"{x / 1024:.1f} GiB"


def _comparison_lines(c: Mapping) -> list[str]:
    """bench_comparison() as a bullet and a table."""
    fmt_mfu = lambda m: "–" if m is None else f"{100 * m:.1f}%"  # noqa: E731
    fmt_s = lambda x, sp: "–" if x is None else f"{x:.3f} [{sp[0]:.3f}, {sp[1]:.3f}]"  # noqa: E731
    diff = c.get("max_abs_logit_diff")
    lines = [f"- Eager against fast attention at the paper's shape ({c['layers']}x{c['hidden']}, {c['tokens']}-token "
             f"documents, {c['precision']}, steps alternating after {c['warmup']} warm-up, {c['reps']} rounds"
             + (f"; MFU of {c['device_peak_flops'] / 1e12:g} TFLOP/s, {c['peak_source']}, "
                f"{c['flops_per_doc'] / 1e12:.2f} TFLOP per document" if c.get("device_peak_flops") else
                "; no known device peak: MFU not reported") + "): largest |logit| difference "
             + ("–" if diff is None else f"{diff:.2g}") + f" ({c['precision']})"
             + (f", {c['max_abs_logit_diff_fp32']:.2g} in fp32" if c.get("max_abs_logit_diff_fp32") is not None else "")
             + (f"; the largest batch that fits (of 1, 2, 4, 8): eager {c['max_batch']['eager']}, fast "
                f"{c['max_batch']['fast']}, peak memory alone by batch: " + "; ".join(
                    f"{p} " + ", ".join(f"{n}: {_mb(m) if m is not None else 'OOM'}" for n, m in c["fit_peak_mb"][p].items())
                    for p in ("eager", "fast")) if c.get("fit_searched") else "")
             + ". Peak memory in the table: both models and their AdamW state resident.", "",
             "| batch | eager s/doc [min, max] | fast s/doc [min, max] | eager / fast | eager MFU | fast MFU "
             "| eager peak | fast peak |", "|---|---|---|---|---|---|---|---|"]
    for r in c["rows"]:
        if r["oom"]:
            lines.append(f"| {r['batch']} | out of memory | | | | | | |")
            continue
        lines.append(f"| {r['batch']} | {fmt_s(r['eager_s_per_doc'], r['eager_spread'])} | "
                     f"{fmt_s(r['fast_s_per_doc'], r['fast_spread'])} | "
                     + ("–" if r["ratio"] is None else f"{r['ratio']:.2f}")
                     + f" | {fmt_mfu(r['eager_mfu'])} | {fmt_mfu(r['fast_mfu'])} | {_mb(r['eager_peak_mb'])} | "
                     f"{_mb(r['fast_peak_mb'])} |")
    lines.append("")
    return lines


def markdown(s: Mapping | None, level: int = 2) -> str:
    """report() as Markdown, '' when there is none."""
    if not s:
        return ""
    h = "#" * level
    lines = [f"{h} GPU path (measured by `benchmarks/gpu_check.sh` on {s['device'] or 'a GPU'})", ""]
    t = s.get("tests")
    if t:
        lines.append(f"- Tests with CUDA visible (tests/test_gpu.py and the training, model, loss and "
                     f"distributed suites): {t['passed']} passed, {t['failures']} failed, {t['errors']} errors, "
                     f"{t['skipped']} skipped, {t['seconds']:.0f} s.")
    d = s.get("dry_run")
    if d:
        lines.append(f"- Paper profile dry run on the GPU (tiny encoders of each paper class, 2 steps per "
                     f"config): {d['trained']} of {d['configs']} configs trained, {d['seconds']} s.")
    b = s.get("bench")
    if b:
        enc = b["encoder"]
        lines.append(f"- One training step at the paper's shape ({enc['class']} {enc['layers']}x{enc['hidden']}, "
                     f"{b['document']['tokens']}-token documents, {b['batch']} per batch, {b['precision']}): "
                     f"{b['step_total_seconds']:.3f} s, {b['seconds_per_doc']:.3f} s per document, peak "
                     f"{b['peak_memory']['mb'] / 1024:.1f} GiB"
                     + (f", MFU {100 * b['mfu']:.1f}% ({b['flops_per_doc'] / 1e12:.2f} TFLOP per document)"
                        if b.get("mfu") is not None else "")
                     + (f", {b['attention']} attention" if b.get("attention") else "") + ".")
    c = s.get("bench_attention")
    if c:
        lines += _comparison_lines(c)
    if s.get("runs"):
        lines += ["", "Whole runs of the `cpu` preset (MiniLM, redocred-mini, 18 epochs, patience 3, bf16) on the "
                  "GPU beside the recorded CPU run of the same config and seed (F1 in %; minutes of the whole "
                  "run, the GPU's with as many runs sharing the GPU as its column says, the CPU's with one "
                  "thread and a second run beside it):", "",
                  table_md(s["runs"], RUN_COLS)]
        lines += _min_epochs_note(s["runs"])
        lines += ["", "GPU and CPU kernels sum in different orders, so a GPU run and the CPU run of its seed "
                  "drift apart like two seeds would; agreement within the seed spread is what to expect."]
    if s.get("means"):
        lines += ["", "Per loss over its GPU seeds (mean ± sd across seeds, F1 in %):", "",
                  table_md(s["means"], MEAN_COLS)]
    reps = s.get("replicates") or []
    if reps:
        lines += ["", "Claims judged on the GPU runs alone, seed-paired, with the claims' bootstrap and verdict "
                  "rule (A - B on test F1, in points):", ""]
        lines += [f"- {replicate_line(rep)}" for rep in reps]
        lines += ["", "A run kind of its own (GPU kernels, fp16-rounded MiniLM weights), so these are reported "
                  "here and not pooled with the CPU runs that the claims table judges."]
    board = s.get("leaderboard")
    if board and any(r["n_seeds"] for r in board["rows"]):
        lines += ["", f"The leaderboard on the GPU (`gpu_check.sh leaderboard`, seeds {', '.join(map(str, board['seeds']))}; "
                  f"{board['gpu'] or 'a GPU'}): the cpu profile's configs on cuda, a run kind of its own, never "
                  "pooled with the CPU leaderboard; the same statistics and reference rule.", "",
                  LB.markdown(board)]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pemscl.gpu_check",
                                 description="What benchmarks/gpu_check.sh measured, as the results show it.")
    ap.add_argument("--merge-runs", nargs=2, metavar=("SOURCE", "DEST"),
                    help="merge the runs recorded in SOURCE (a runs.jsonl) into DEST")
    ap.add_argument("folder", nargs="?", default=None, help="the gpu_check folder (default: results/gpu_check)")
    a = ap.parse_args(argv)
    if a.merge_runs:
        src, dest = a.merge_runs
        if not Path(src).exists():
            ap.error(f"{src} does not exist: no run finished")
        print(f"{merge_runs(src, dest)} runs merged into {dest}")
        return 0
    print(markdown(summary(a.folder)) or f"nothing measured in {folder_path(a.folder)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

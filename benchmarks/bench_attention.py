"""The all-eager encoder against the fast one, side by side in one process (issue 25).

    python benchmarks/bench_attention.py            # every case (~10 minutes on 2 cores)
    python benchmarks/bench_attention.py --quick    # fewer repeats, a shallow paper shape (< 2 minutes)
    python benchmarks/bench_attention.py --profile  # where a MiniLM training step's time goes, per path

"eager" is the path before issue 25: every encoder layer with eager attention (the attention maps
of all layers kept for the backward), AdamW's per-tensor loop, evaluation batches in document
order. "fast" is today's default: SDPA kernels in every layer but the last (ATLOP pools that one's
probabilities), fused AdamW, evaluation batches sorted by length. Both models hold the same weights.

Cases (each timed alternately A, B, A, B, ... after a warm-up, so both see the same machine):
  minilm_train_fp32 / _bf16   full fine-tuning steps of MiniLM, batch 2, real redocred-mini documents
  minilm_infer                inference over 50 redocred-mini dev documents, batch 2 (the cpu preset's),
                              in the precision this machine measures fastest
  paper_shape_train           one training step of a random-init RoBERTa-large (24 x 1024; --quick: 2
                              layers) on a ~1,000-token document (two windows), batch 1
  minilm_train_compiled       (not with --quick) the fast path with and without torch.compile

Per case: eager_s_per_doc and fast_s_per_doc (medians), their spread (min, max), ratio (eager / fast,
above 1: the fast path is faster) and max_abs_logit_diff (the two paths' logits on the same batch in
eval mode). Written to results/bench_attention.json (or $PEMSCL_RESULTS) with the machine's
description; nothing here trains a run or touches results/runs.jsonl.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from pemscl import data as D  # noqa: E402
from pemscl.bf16cpu import gemms  # noqa: E402
from pemscl import train as T  # noqa: E402
from pemscl.features import load_features  # noqa: E402
from pemscl.losses import compute_loss, loss_spec  # noqa: E402
from pemscl.model import DocREModel, ModelConfig, batch_to, parameter_groups, resolve_encoder  # noqa: E402
from pemscl.utils import (_cpu_name, atomic_write_json, atomic_write_text, autocast, cpu_capability,  # noqa: E402
                          precision_line, resolve_precision, results_dir)

CPU = torch.device("cpu")


# --------------------------------------------------------------------------- the two paths
def minilm_pair(n_classes: int) -> dict[str, DocREModel]:
    """Eager and fast MiniLM models with the same weights (the head seeded alike)."""
    out = {}
    for name in ("eager", "fast"):
        torch.manual_seed(0)
        out[name] = DocREModel(ModelConfig(encoder="minilm", num_classes=n_classes, attention=name))
    out["fast"].load_state_dict(out["eager"].state_dict())
    return out


def optimiser(model: DocREModel, path: str) -> torch.optim.Optimizer:
    kernel = T.adamw_kernel(CPU) if path == "fast" else {"foreach": False}
    return torch.optim.AdamW(parameter_groups(model, 5e-5, 5e-4), eps=1e-6, **kernel)


def train_step(model, opt, feats, amp, spec) -> None:
    b = batch_to(model.collate(feats), CPU)
    with autocast(CPU, amp):
        out = model(b)
    loss, _ = compute_loss(spec, out["logits"].float(), b["labels"], features=(out["zh"].float(), out["zt"].float()),
                           generator=torch.Generator().manual_seed(0))
    opt.zero_grad(set_to_none=True)
    with gemms(CPU, amp):  # the backward's bf16 products as train.train_step runs them (bf16cpu)
        loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def logit_diff(models: dict[str, DocREModel], feats, amp=None) -> float:
    """Largest |logit| difference of the two paths on one batch, eval mode, same weights."""
    out = {}
    for name, m in models.items():
        was = m.training
        m.eval()
        with torch.no_grad(), autocast(CPU, amp):
            out[name] = m(batch_to(m.collate(feats), CPU))["logits"].float()
        m.train(was)
    return float((out["eager"] - out["fast"]).abs().max())


def alternate(steps: dict, reps: int, warmup: int, docs_per_call: int) -> dict[str, list[float]]:
    """Seconds per document of each path, calls alternating between the paths."""
    for _ in range(warmup):
        for fn in steps.values():
            fn(0)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(reps):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn(r)
            times[name].append((time.perf_counter() - t0) / docs_per_call)
    return times


def summarise(times: dict[str, list[float]], diff: float, **extra) -> dict:
    a, b = times["eager"], times["fast"]
    ea, fa = statistics.median(a), statistics.median(b)
    return {"eager_s_per_doc": ea, "fast_s_per_doc": fa, "ratio": ea / fa,
            "eager_spread": [min(a), max(a)], "fast_spread": [min(b), max(b)], "repeats": len(a),
            "max_abs_logit_diff": diff, **extra}


# --------------------------------------------------------------------------- cases
def case_minilm_train(feats, n_classes, amp, reps, warmup, batch=2) -> dict:
    models = minilm_pair(n_classes)
    for m in models.values():
        m.train()
    opts = {k: optimiser(m, k) for k, m in models.items()}
    spec = loss_spec("pemscl")
    batches = [feats[i * batch: (i + 1) * batch] for i in range(len(feats) // batch)]
    diff = logit_diff(models, batches[0], amp)  # before any step: the same weights
    steps = {k: (lambda r, k=k: train_step(models[k], opts[k], batches[r % len(batches)], amp, spec)) for k in models}
    return summarise(alternate(steps, reps, warmup, batch), diff, batch=batch,
                     precision=str(amp).replace("torch.", "") if amp else "fp32")


def in_order_infer(model, feats, batch, amp) -> None:
    """Evaluation as before issue 25: batches in document order."""
    model.eval()
    with torch.no_grad():
        for i in range(0, len(feats), batch):
            T._forward(model, feats, list(range(i, min(i + batch, len(feats)))), CPU, amp, None, with_labels=False)


def case_minilm_infer(feats, n_classes, amp, reps, warmup, batch=2) -> dict:
    models = minilm_pair(n_classes)
    diff = logit_diff(models, feats[:batch], amp)
    steps = {"eager": lambda r: in_order_infer(models["eager"], feats, batch, amp),
             "fast": lambda r: T.infer(models["fast"], feats, batch_size=batch, device=CPU, amp_dtype=amp)}
    pad = {"eager": _padding(feats, list(range(len(feats))), batch),
           "fast": _padding(feats, sorted(range(len(feats)), key=lambda j: len(feats[j]["input_ids"])), batch)}
    return summarise(alternate(steps, reps, warmup, len(feats)), diff, docs=len(feats), batch=batch,
                     padded_token_share={k: round(v, 3) for k, v in pad.items()},
                     precision=str(amp).replace("torch.", "") if amp else "fp32")


def _padding(feats, order, batch) -> float:
    """Share of the encoder's input positions that are padding, for batches taken in `order`."""
    total = pad = 0
    for i in range(0, len(order), batch):
        lens = [min(len(feats[j]["input_ids"]), 512) for j in order[i: i + batch]]
        total += max(lens) * len(lens)
        pad += max(lens) * len(lens) - sum(lens)
    return pad / total


def case_paper_shape(amp, reps, warmup, layers) -> dict:
    from transformers import RobertaConfig, RobertaModel

    from bench_paper_shape import DocShape, synthetic_feature

    feat = synthetic_feature(DocShape(), 50265, np.random.default_rng(0))
    cfg = RobertaConfig(vocab_size=50265, hidden_size=1024, num_hidden_layers=layers, num_attention_heads=16,
                        intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                        bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5)  # roberta-large's options
    models = {}
    for name in ("eager", "fast"):
        torch.manual_seed(0)
        plm = RobertaModel(copy.deepcopy(cfg), add_pooling_layer=False)  # a config each: the kernels are set on it
        models[name] = DocREModel(ModelConfig(encoder="roberta-large (random init)", emb_size=768, block_size=64,
                                              attention=name), plm=plm)
    models["fast"].load_state_dict(models["eager"].state_dict())
    opts = {k: optimiser(m, k) for k, m in models.items()}
    spec = loss_spec("pemscl", tau=0.2, scl_weight=0.1, gamma="count")
    diff = logit_diff(models, [feat], amp)
    for m in models.values():
        m.train()
    steps = {k: (lambda r, k=k: train_step(models[k], opts[k], [feat], amp, spec)) for k in models}
    return summarise(alternate(steps, reps, warmup, 1), diff, batch=1, layers=layers, hidden=1024,
                     tokens=DocShape().tokens, precision=str(amp).replace("torch.", "") if amp else "fp32")


def case_compiled(feats, n_classes, reps, warmup, batch=2) -> dict:
    """The fast path with torch.compile (TrainConfig.compile) against without: 'eager' here is the
    uncompiled fast path; warm-up includes the compilation, whose time is reported."""
    models = {}
    for name in ("eager", "fast"):
        torch.manual_seed(0)
        models[name] = DocREModel(ModelConfig(encoder="minilm", num_classes=n_classes)).train()
    models["fast"].load_state_dict(models["eager"].state_dict())
    t0 = time.perf_counter()
    T.compile_encoder(models["fast"], CPU)
    opts = {k: optimiser(m, "fast") for k, m in models.items()}
    spec = loss_spec("pemscl")
    batches = [feats[i * batch: (i + 1) * batch] for i in range(len(feats) // batch)]
    steps = {k: (lambda r, k=k: train_step(models[k], opts[k], batches[r % len(batches)], None, spec)) for k in models}
    diff = logit_diff(models, batches[1])  # same weights, before any step (the first call compiles)
    train_step(models["fast"], opts["fast"], batches[0], None, spec)
    compile_s = time.perf_counter() - t0
    res = summarise(alternate(steps, reps, warmup, batch), diff, batch=batch, precision="fp32",
                    compile_seconds=compile_s)
    res["note"] = "eager_* = the fast path uncompiled, fast_* = compiled; ratio > 1: compiling pays"
    return res


# --------------------------------------------------------------------------- where the time goes
def profile_steps(feats, n_classes, amp, rows: int = 14) -> dict[str, str]:
    """torch.profiler's operator table (self CPU time, top `rows`) of three MiniLM training steps
    of each path after a warm-up step: what the attention kernels can and cannot change."""
    from torch.profiler import ProfilerActivity, profile

    models = minilm_pair(n_classes)
    spec = loss_spec("pemscl")
    tables = {}
    for name, model in models.items():
        model.train()
        opt = optimiser(model, name)
        train_step(model, opt, feats[:2], amp, spec)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(3):
                train_step(model, opt, feats[2 * i: 2 * i + 2], amp, spec)
        tables[name] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40)
    return tables


# --------------------------------------------------------------------------- main
def machine() -> dict:
    return {"cpu": _cpu_name(), "capability": cpu_capability(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "precision_auto": precision_line("auto", CPU), "date": time.strftime("%Y-%m-%d %H:%M")}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and a 2-layer paper shape (< 2 minutes)")
    ap.add_argument("--reps", type=int, default=None, help="timed repeats per path (default 8; --quick 3)")
    ap.add_argument("--cases", default=None, help="comma-separated subset of the case names")
    ap.add_argument("--out", type=Path, default=None, help="default: results/bench_attention.json")
    ap.add_argument("--profile", action="store_true",
                    help="print and save (results/bench_attention_profile.txt) the operator table of MiniLM "
                         "training steps of each path, in the precision this machine measures fastest, and stop")
    a = ap.parse_args(argv)
    reps = a.reps or (3 if a.quick else 8)
    warmup = 1
    wanted = set(a.cases.split(",")) if a.cases else None
    rel2id = D.load_rel2id()
    regime = D.load_regime("redocred-mini")
    enc = resolve_encoder("minilm")
    train_feats = load_features(regime.train[:2 * reps], enc, rel2id=rel2id, progress=False)
    dev_feats = load_features(regime.dev[: 20 if a.quick else 50], enc, rel2id=rel2id, progress=False)
    auto = resolve_precision("auto", CPU)
    if a.profile:
        tables = profile_steps(train_feats if len(train_feats) >= 8 else
                               load_features(regime.train[:8], enc, rel2id=rel2id, progress=False), len(rel2id), auto)
        text = precision_line("auto", CPU) + "\n" + "".join(
            f"\n== {name}: 3 MiniLM training steps, batch 2, self CPU time ==\n{t}" for name, t in tables.items())
        print(text)
        atomic_write_text((a.out.parent if a.out else results_dir()) / "bench_attention_profile.txt", text)
        return {"profile": tables}
    res = {"machine": machine(), "quick": a.quick, "cases": {}}
    print(res["machine"]["precision_auto"])
    cases = {
        "minilm_train_fp32": lambda: case_minilm_train(train_feats, len(rel2id), None, reps, warmup),
        "minilm_train_bf16": lambda: case_minilm_train(train_feats, len(rel2id), torch.bfloat16, reps, warmup),
        "minilm_infer": lambda: case_minilm_infer(dev_feats, len(rel2id), auto, max(2, reps // 2), warmup),
        "paper_shape_train": lambda: case_paper_shape(auto, 2 if a.quick else 3, warmup, 2 if a.quick else 24),
    }
    if not a.quick:
        cases["minilm_train_compiled"] = lambda: case_compiled(train_feats, len(rel2id), reps, 2)
    if "bf16" not in res["machine"]["precision_auto"] and (wanted is None or "minilm_train_bf16" not in wanted):
        cases.pop("minilm_train_bf16")  # bf16 emulated here (tens of times slower): nobody trains in it
    sys.path.insert(0, str(Path(__file__).parent))
    for name, fn in cases.items():
        if wanted is not None and name not in wanted:
            continue
        t0 = time.perf_counter()
        res["cases"][name] = r = fn()
        print(f"{name:<24} eager {r['eager_s_per_doc']:.4f} s/doc  fast {r['fast_s_per_doc']:.4f} s/doc  "
              f"ratio {r['ratio']:.2f}  max|dlogit| {r['max_abs_logit_diff']:.1e}  ({time.perf_counter() - t0:.0f}s)",
              flush=True)
    out = a.out or results_dir() / "bench_attention.json"
    atomic_write_json(out, res)
    print(f"wrote {out}")
    return res


if __name__ == "__main__":
    main()

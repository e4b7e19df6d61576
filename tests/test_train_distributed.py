"""The training loop under torch.distributed (2 CPU ranks, gloo): equal to one process.

(a) Optimiser steps of the real model (MiniLM, fast path, fp32) on a global batch split over two
    ranks give the loss, the gradients and the updated parameters of the same steps in one
    process: an even split (2 + 2 documents), an odd one (2 + 1), and a one-document batch that
    leaves rank 1 empty (it borrows a document with zero weight); with and without negative
    sampling (every rank must draw the same mask). Dropout is off for the compared steps (eval
    mode), as each rank would otherwise draw its own masks.
(b) A whole 2-rank run through the command line (`cli.main`, which hands its Dist to
    `train.train(..., dist=d)` as under torchrun) writes one normal run folder, from rank 0 only,
    with the history, scores and weights of the same run in one process (dropout set to 0 in
    both, for the same reason); rank 0 alone prints and records it.
(c) A run folder that another process holds refuses every rank, not rank 0 alone.

Each scenario kind shares one spawn of two ranks (interpreter and model start-up cost seconds).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from dist_helpers import run_ranks
from train_helpers import no_dropout_build
from pemscl import config as CF
from pemscl import distributed
from pemscl import losses as LS
from pemscl import runs as RS
from pemscl import train as T

# device pinned: the ranks are CPU processes (dist_helpers), so the one-process reference is too
STEP_CFG = dict(device="cpu", precision="fp32", train_layers=1, max_train_docs=4, batch_size=4, seed=11)
# global batches (indices of the 4 training documents): 2 + 2, 2 + 1, and 1 + 0 (rank 1 borrows)
STEPS = [[0, 1, 2, 3], [3, 0, 2], [1]]
LOSSES = ("pemscl", "pemscl-ns", "afl", "ssr-pu")  # the new baselines too (issue 26)
RUN_CFG = dict(device="cpu", precision="fp32", epochs=1, seed=5, label="dist-run")  # smoke: 4 docs, batch 2, 2 + 2 eval docs


def _step_cfg(loss: str) -> CF.TrainConfig:
    return CF.preset("smoke", loss=LS.loss_spec(loss), **STEP_CFG)


def _steps(d: distributed.Dist) -> dict[str, list[dict]]:
    """Loss, parts, gradients and parameters after each step of STEPS, for each loss."""
    out = {}
    for name in LOSSES:
        cfg = _step_cfg(name)
        ctx = T.build(cfg, T.prepare(cfg, progress=False), dist=d, progress=False)
        ctx.net.eval()  # no dropout: the steps are deterministic functions of the batch
        rows = []
        for idx in STEPS:
            loss, parts = T.train_step(ctx, idx)
            trainable = [(n, p) for n, p in ctx.model.named_parameters() if p.requires_grad]
            rows.append({"loss": loss, "parts": parts,
                         "grads": {n: p.grad.detach().clone() for n, p in trainable},
                         "params": {n: p.detach().clone() for n, p in trainable}})
        out[name] = rows
    return out


def _worst(got: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> float:
    """The largest difference over all tensors, each relative to its reference's largest entry.

    The scale has a floor of 1e-4 x the largest entry of any tensor: a gradient that is 0 in
    exact arithmetic (the attention keys' bias: softmax ignores a shift shared by all keys)
    holds rounding noise only (~1e-11), which no summation order reproduces."""
    assert got.keys() == ref.keys()
    floor = 1e-4 * max(float(r.abs().max()) for r in ref.values())
    return max(float((got[k] - ref[k]).abs().max()) / max(float(ref[k].abs().max()), floor) for k in ref)


def _worst_abs(got: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> float:
    return max(float((got[k] - ref[k]).abs().max()) for k in ref)


def _rank_steps(d: distributed.Dist, ref_path: str) -> dict:
    """On each rank: the same steps under DDP, compared here with the single-process reference
    (the tensors are too large to send back: a few MB per step)."""
    ref = torch.load(ref_path, weights_only=True)
    mine = _steps(d)
    return {name: [{"loss": g["loss"], "parts": g["parts"], "grad_err": _worst(g["grads"], r["grads"]),
                    "param_err": _worst_abs(g["params"], r["params"]), "n": len(g["grads"])}
                   for g, r in zip(mine[name], ref[name])] for name in LOSSES}


@pytest.fixture(scope="module")
def step_results(tmp_path_factory):
    ref = _steps(distributed.Dist())  # also writes the feature and layer caches the ranks then read
    path = tmp_path_factory.mktemp("dist-steps") / "ref.pt"
    torch.save(ref, path)
    return ref, run_ranks(_rank_steps, 2, str(path), timeout_s=120)


@pytest.mark.parametrize("loss", LOSSES)
def test_distributed_steps_equal_one_process(step_results, loss):
    ref, ranks = step_results
    lr_head = CF.preset("smoke").lr_head
    for s, want in enumerate(ref[loss]):
        assert want["loss"] > 0 and any(float(g.abs().max()) > 0 for g in want["grads"].values())
        for rank, res in enumerate(ranks):
            got = res[loss][s]
            where = f"{loss}, step {s} ({len(STEPS[s])} docs), rank {rank}"
            assert got["n"] == len(want["grads"]), where
            assert got["loss"] == pytest.approx(want["loss"], rel=1e-5), where
            assert got["parts"] == pytest.approx(want["parts"], rel=1e-5, abs=1e-6), where
            assert got["grad_err"] < 1e-5, (where, got["grad_err"])
            # AdamW's early steps are about lr x sign(g): a gradient entry near 0 amplifies rounding
            # by up to lr x |dg| / eps, so the parameters agree to a small fraction of one update
            assert got["param_err"] < 0.05 * lr_head, (where, got["param_err"])


def test_negative_sampling_draws_the_same_mask_on_every_rank(step_results):
    # the NS loss differs from the plain one (so a mask was drawn) and still agrees across ranks
    # (checked above); here: it is not the plain loss in disguise
    ref, _ = step_results
    assert ref["pemscl-ns"][0]["loss"] != pytest.approx(ref["pemscl"][0]["loss"], rel=1e-3)


# --------------------------------------------------------------------------- (b) a whole run
CLI_ARGS = ["--preset", "smoke", "--device", "cpu", "--precision", "fp32", "--epochs", "1", "--seed", "5", "--label", "dist-run",
            "--no-progress", "--record"]  # = preset("smoke", **RUN_CFG)


def _rank_run(d: distributed.Dist, root: str, results: str) -> dict:
    """A whole run on this rank through the command line (as under torchrun), recording every
    file this rank writes itself and what it prints."""
    import contextlib
    import io
    import os
    import pathlib

    from pemscl import cli, runs
    from pemscl import evaluate as E

    os.environ["PEMSCL_RESULTS"] = results  # --record merges into <results>/runs.jsonl
    writes: list[str] = []

    def recording(fn, path_arg):
        def wrapper(*a, **k):
            writes.append(str(a[path_arg]))
            return fn(*a, **k)

        return wrapper

    T.build = no_dropout_build(T.build)
    T.atomic_write_json = recording(T.atomic_write_json, 0)
    T.atomic_torch_save = recording(T.atomic_torch_save, 1)
    E.write_predictions = recording(E.write_predictions, 1)
    runs.atomic_write_text = recording(runs.atomic_write_text, 0)
    for meth in ("write_text", "mkdir", "unlink"):
        setattr(pathlib.Path, meth, recording(getattr(pathlib.Path, meth), 0))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run = cli.main([*CLI_ARGS, "--root", root])  # joins the process group run_ranks opened
    return {"dir": str(run.dir), "writes": [w for w in writes if w.startswith((root, results))],
            "history": run.history, "scores": run.scores, "printed": out.getvalue()}


@pytest.fixture(scope="module")
def dist_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist-run")
    results = tmp_path_factory.mktemp("dist-results")
    one_root = tmp_path_factory.mktemp("one-run")
    cfg = CF.preset("smoke", **RUN_CFG)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(T, "build", no_dropout_build(T.build))
        one = T.train(cfg, root=one_root, progress=False)  # also fills the caches before the ranks start
    ranks = run_ranks(_rank_run, 2, str(root), str(results), timeout_s=120)
    return one, ranks, root, results


def test_distributed_run_writes_one_complete_folder_from_rank_0(dist_run):
    one, (r0, r1), root, results = dist_run
    d = Path(r0["dir"])
    # one run folder (beside it only rank 0's lock file, runs.training)
    assert r1["dir"] == r0["dir"] and d.parent == root
    assert sorted(p.name for p in root.iterdir()) == sorted([d.name, f".{d.name}.lock"])
    for name in ("config.json", "history.json", "scores.json", "predictions_dev.json", "predictions_test.json",
                 "model.pt", "DONE"):
        assert (d / name).exists(), name
    assert not (d / T.STATE).exists()
    assert r1["writes"] == [] and any(w.endswith("model.pt") for w in r0["writes"])
    # rank 0 alone prints the summary and records the run
    # (its first line is the precision it chose and why, printed where the model is built)
    first, second = r0["printed"].splitlines()[:2]
    assert first.startswith("precision fp32:") and second == f"run: {d}"
    assert "dev F1" in r0["printed"] and r1["printed"] == ""
    lines = (results / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["folder"] == d.name
    run = RS.Run.load(d)
    assert run.config == CF.preset("smoke", **RUN_CFG)
    assert run.scores["world_size"] == 2 and "f1" in run.scores["dev"] and "f1" in run.scores["test"]
    assert r1["scores"] == r0["scores"] == json.loads((d / "scores.json").read_text())


def test_distributed_run_equals_the_single_process_run(dist_run):
    one, (r0, _), _, _ = dist_run
    d = Path(r0["dir"])
    assert d.name == one.dir.name  # same config, same key
    h2, h1 = r0["history"], one.history
    assert len(h2) == len(h1) == 1
    for k in ("train_loss", "train_l1", "train_scl", "dev_f1", "dev_precision", "dev_recall"):
        assert h2[0][k] == pytest.approx(h1[0][k], rel=1e-5, abs=1e-9), k
    for split in ("dev", "test"):
        assert r0["scores"][split]["f1"] == pytest.approx(one.scores[split]["f1"], abs=1e-9), split
    a = torch.load(d / "model.pt", weights_only=True)
    b = torch.load(one.dir / "model.pt", weights_only=True)
    assert a.keys() == b.keys()
    # two AdamW steps: parameters agree to a small fraction of one update (see the step test)
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 0.1 * CF.preset("smoke").lr_head and math.isfinite(worst)


def _rank_refused(d: distributed.Dist, root: str) -> str:
    from pemscl import runs

    try:
        T.train(CF.preset("smoke", **RUN_CFG), root=root, progress=False, dist=d)
    except runs.RunInProgress:
        return "refused"
    return "trained"


def test_a_held_run_folder_refuses_every_rank(tmp_path):
    from pemscl import runs

    # before: rank 0 alone raised and rank 1 went on to train, stuck at its first collective
    with runs.training(RS.run_dir_for(CF.preset("smoke", **RUN_CFG), tmp_path)):
        assert run_ranks(_rank_refused, 2, str(tmp_path), timeout_s=60) == ["refused", "refused"]

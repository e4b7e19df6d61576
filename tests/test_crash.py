"""Issue 27: nothing on a load path unpickles, and a crash loses nothing.

Crashes are real: a smoke run in a process of its own (tests/crash_child.py) is killed with
SIGKILL mid-epoch, while writing state.pt and while merging into runs.jsonl; the rerun must end
with the history, weights and record of a run never interrupted. A state.pt or record line
damaged afterwards is reported by name, and the run resumes from its last good epoch.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import crash_child
from pemscl import config as CF
from pemscl import runs as RS
from pemscl import train as T

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def _env(results: Path) -> dict:
    # the children import this checkout's pemscl (and crash_child), whatever is installed
    path = os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "PEMSCL_RESULTS": str(results), "OMP_NUM_THREADS": "1"}


def child(root: Path, results: Path, *kill) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TESTS / "crash_child.py"), str(root), *map(str, kill)],
                          env=_env(results), capture_output=True, text=True, timeout=600)


def killed(root: Path, results: Path, point: str, n: int) -> subprocess.CompletedProcess:
    out = child(root, results, point, n)
    assert out.returncode == -signal.SIGKILL, (out.returncode, out.stdout, out.stderr)
    return out


def finished(root: Path, results: Path) -> tuple[subprocess.CompletedProcess, int]:
    """The rerun, completing; and the optimiser steps it took (2 an epoch)."""
    out = child(root, results)
    assert out.returncode == 0, out.stderr
    return out, int(out.stdout.split("steps ")[-1])


def _strip_times(rows):
    return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in rows]


def _record(results: Path) -> list[dict]:
    return [json.loads(line) for line in (results / "runs.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The run never interrupted: its folder and record."""
    base = tmp_path_factory.mktemp("whole")
    _, steps = finished(base / "runs", base / "results")
    assert steps == 6  # 3 epochs of 2 steps
    return T.run_dir_for(crash_child.config(), base / "runs"), base / "results"


def assert_same_run(d: Path, results: Path, whole) -> None:
    ref, ref_results = whole
    assert (d / "DONE").exists()
    assert _strip_times(json.loads((d / "history.json").read_text())) == \
        _strip_times(json.loads((ref / "history.json").read_text()))
    a = torch.load(ref / "model.pt", weights_only=True)
    b = torch.load(d / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((d / "scores.json").read_text())["test"] == json.loads((ref / "scores.json").read_text())["test"]
    # nothing of the crash is left: no state, no temp file of a killed writer
    assert sorted(p.name for p in d.iterdir()) == sorted(p.name for p in ref.iterdir())
    # the record holds the run once, intact, with the uninterrupted run's curve and scores
    (rec,) = _record(results)
    (want,) = _record(ref_results)
    assert rec["key"] == want["key"] and _strip_times(rec["history"]) == _strip_times(want["history"])
    assert rec["scores"]["test"] == want["scores"]["test"]
    assert [r.config.key() for r in RS.load_exported(results / "runs.jsonl")] == [want["key"]]


@pytest.fixture(scope="module")
def killed_in_epoch_3(tmp_path_factory):
    """A runs folder whose run was killed before its 5th step (the first of epoch 3); each test
    works on a copy."""
    base = tmp_path_factory.mktemp("killed")
    killed(base / "runs", base / "results", "step", 5)
    return base / "runs"


# --------------------------------------------------------------------------- killed, then rerun
@pytest.mark.slow
def test_killed_mid_epoch_the_rerun_resumes_to_the_uninterrupted_run(tmp_path, whole, killed_in_epoch_3):
    shutil.copytree(killed_in_epoch_3, tmp_path / "runs")
    d = T.run_dir_for(crash_child.config(), tmp_path / "runs")
    assert not (d / "DONE").exists() and T.read_state(d / T.STATE)["epoch"] == 2
    _, steps = finished(tmp_path / "runs", tmp_path / "results")
    assert steps == 2  # epoch 3 alone: from the last saved epoch, not from the start
    assert_same_run(d, tmp_path / "results", whole)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["state-half", "state-written", "state-linked"])
def test_killed_while_writing_state_the_rerun_resumes_from_the_last_whole_one(tmp_path, whole, point):
    # the second save (after epoch 2) is cut short; state-linked: the third, once epoch 2's state is
    # linked as state.prev.pt and epoch 3's is written but not renamed
    n = 2
    killed(tmp_path / "runs", tmp_path / "results", point, n)
    d = T.run_dir_for(crash_child.config(), tmp_path / "runs")
    assert list(d.glob(".state.pt.*.tmp"))  # killed with the new state in its temp file
    last = 2 if point == "state-linked" else 1
    assert T.read_state(d / T.STATE)["epoch"] == last  # the state before it is whole
    out, steps = finished(tmp_path / "runs", tmp_path / "results")
    assert steps == 6 - 2 * last and "unusable" not in out.stderr
    assert_same_run(d, tmp_path / "results", whole)


@pytest.mark.slow
def test_killed_while_merging_the_record_the_rerun_records_the_run_once(tmp_path, whole):
    results = tmp_path / "results"
    results.mkdir()
    other = RS.Run(dir=Path("/nonexistent/other"), config=CF.TrainConfig(label="other", seed=99, precision="fp32"),
                   scores={"test": {"f1": 0.5}}, history=[])
    RS.export_runs([other], results / "runs.jsonl")
    before = (results / "runs.jsonl").read_bytes()
    killed(tmp_path / "runs", results, "record", 1)
    assert (results / "runs.jsonl").read_bytes() == before  # the record as it was, the new one in a temp file
    assert list(results.glob(".runs.jsonl.*.tmp"))
    _, steps = finished(tmp_path / "runs", results)
    assert steps == 0  # the run was complete: reused, only recorded
    assert not list(results.glob(".runs.jsonl.*.tmp"))
    keys = [r["key"] for r in _record(results)]
    assert sorted(keys) == sorted([other.config.key(), crash_child.config().key()])
    lines = (results / "runs.jsonl").read_bytes().splitlines(keepends=True)
    assert before in lines  # the other record untouched
    (results / "runs.jsonl").write_bytes(b"".join(x for x in lines if x != before))
    assert_same_run(T.run_dir_for(crash_child.config(), tmp_path / "runs"), results, whole)


# --------------------------------------------------------------------------- damaged state
class _RunsCode:
    """Unpickling this creates `marker`: what a crafted state.pt could do instead."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return Path.touch, (Path(self.marker),)


def _damage(path: Path, how: str, marker: Path) -> None:
    blob = path.read_bytes() if path.exists() else b""
    if how == "truncated":
        path.write_bytes(blob[: len(blob) // 2])
    elif how == "flipped":  # bytes in the middle (tensor data): torch.load alone reads it without complaint
        mid = len(blob) // 2
        path.write_bytes(blob[:mid] + bytes(b ^ 0xFF for b in blob[mid: mid + 16]) + blob[mid + 16:])
    else:  # a pickle that runs code when torch.load(weights_only=False) reads it
        torch.save({"format": T.STATE_FORMAT, "payload": _RunsCode(marker)}, path)


def test_planted_pickle_runs_code_when_unpickled(tmp_path):
    marker = tmp_path / "marker"
    _damage(tmp_path / "state.pt", "pickle", marker)
    torch.load(tmp_path / "state.pt", weights_only=False)  # what load_state did before issue 27
    assert marker.exists()  # so the tests below would see it run


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated", "flipped", "pickle"])
def test_damaged_state_is_reported_and_the_run_resumes_from_the_epoch_before(tmp_path, whole, killed_in_epoch_3,
                                                                            how):
    shutil.copytree(killed_in_epoch_3, tmp_path / "runs")  # states of epochs 2 and 1 saved
    d = T.run_dir_for(crash_child.config(), tmp_path / "runs")
    assert T.read_state(d / T.PREV_STATE)["epoch"] == 1
    marker = tmp_path / "marker"
    _damage(d / T.STATE, how, marker)
    out, steps = finished(tmp_path / "runs", tmp_path / "results")
    assert f"{d / T.STATE}: refused" in out.stderr  # the damaged file named
    assert f"resuming from {d / T.PREV_STATE} (epoch 1)" in out.stderr
    assert steps == 4 and not marker.exists()  # epochs 2 and 3 trained again, nothing executed
    assert_same_run(d, tmp_path / "results", whole)


def test_planted_pickle_as_the_only_state_is_refused_unread_and_kept(tmp_path):
    cfg = CF.preset("smoke", device="cpu", precision="fp32", label="test-planted")
    d = T.run_dir_for(cfg, tmp_path)
    d.mkdir(parents=True)
    marker = tmp_path / "marker"
    _damage(d / T.STATE, "pickle", marker)
    with pytest.warns(UserWarning, match="refused"), pytest.raises(T.UnusableState) as e:
        T.train(cfg, root=tmp_path, progress=False)
    assert str(d / T.STATE) in str(e.value) and "force=True" in str(e.value)
    assert not marker.exists()
    assert (d / T.STATE).exists()  # never silently trained again from epoch 0


def test_planted_pickle_as_a_layer_cache_is_ignored_and_rebuilt_never_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PEMSCL_CACHE", str(tmp_path / "cache"))  # the fast path's layer caches go here
    cfg = CF.preset("smoke", device="cpu", precision="fp32", save_model=False, label="test-layer-cache")
    first = T.train(cfg, root=tmp_path / "a", progress=False)
    layers = sorted((tmp_path / "cache" / "layers").iterdir())
    assert len(layers) == 3  # train, dev, test
    marker = tmp_path / "marker"
    for f in layers:
        torch.save([_RunsCode(marker)], f)
    with pytest.warns(UserWarning, match="ignoring unreadable layer cache .*layers"):
        again = T.train(cfg, root=tmp_path / "b", progress=False)
    assert not marker.exists()
    assert again.history[0]["train_loss"] == pytest.approx(first.history[0]["train_loss"], rel=1e-5)
    assert all(isinstance(torch.load(f, weights_only=True), list) for f in layers)  # rebuilt in place


def test_a_run_killed_after_the_checkpoint_of_its_early_stop_does_not_train_on(tmp_path, monkeypatch):
    # a flat dev curve: epoch 1 stays the best, so patience 1 ends the run after epoch 2 of 4
    real = T.report

    def report(*a, **k):
        rep, preds = real(*a, **k)
        return {**rep, "f1": 0.5}, preds

    monkeypatch.setattr(T, "report", report)
    cfg = CF.preset("smoke", epochs=4, patience=1, device="cpu", precision="fp32", save_model=False,
                   label="test-stop-resume")

    class Killed(Exception):
        pass

    def kill(row, ctx):  # after epoch 2's checkpoint, before the loop sees that the run is over
        if row["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        T.train(cfg, root=tmp_path, progress=False, on_epoch_end=kill)
    steps = []
    real_step = T.train_step
    monkeypatch.setattr(T, "train_step", lambda ctx, idx: steps.append(idx) or real_step(ctx, idx))
    run = T.train(cfg, root=tmp_path, progress=False)
    assert steps == [] and [h["epoch"] for h in run.history] == [1, 2]
    assert run.scores["stopped_early"] and run.scores["epochs_run"] == 2 and run.scores["best_epoch"] == 1


def test_random_streams_round_trip_through_a_weights_only_file(tmp_path):
    import random

    streams = T.Streams(3)
    streams.seed_init()
    random.gauss(0, 1), np.random.standard_normal()  # a cached gaussian in both states
    torch.save(streams.state(), tmp_path / "s.pt")

    def draw():
        return (random.random(), random.gauss(0, 1), float(np.random.rand()), float(np.random.standard_normal()),
                torch.rand(3).tolist(), torch.rand(2, generator=streams.sampling).tolist())

    first = draw()
    streams.seed_init()  # anything else: the restored state must undo it
    torch.rand(5, generator=streams.sampling)
    streams.load_state(torch.load(tmp_path / "s.pt", weights_only=True))
    assert draw() == first


# --------------------------------------------------------------------------- the record
def _runs(n: int, tag: str) -> list[RS.Run]:
    return [RS.Run(dir=Path(f"/nonexistent/{tag}-{i}"),
                   config=CF.TrainConfig(label=f"{tag}-{i}", seed=i, precision="fp32"),
                   scores={"test": {"f1": i / 100}}, history=[{"epoch": 1, "dev_f1": i / 100}]) for i in range(n)]


def test_a_damaged_record_line_is_named_kept_by_merges_and_skipped_unless_strict(tmp_path):
    path = tmp_path / "runs.jsonl"
    first, second, third = _runs(3, "r")
    RS.export_runs([first, second], path)
    lines = path.read_text().splitlines()
    damaged = lines[1][: len(lines[1]) // 2]  # cut mid-line
    path.write_text(lines[0] + "\n" + damaged + "\n")
    with pytest.raises(ValueError, match=f"{path}:2 is not JSON"):
        RS.load_exported(path)
    with pytest.warns(UserWarning, match=f"{path}:2 is not JSON"):
        assert [r.config.key() for r in RS.load_exported(path, strict=False)] == [first.config.key()]
    with pytest.warns(UserWarning, match=f"{path}:2 is not JSON.*kept"):
        RS.export_runs([third], path)
    after = path.read_text().splitlines()
    assert after[-1] == damaged and len(after) == 3  # nothing dropped: git can restore that line's run
    with pytest.warns(UserWarning, match=f"{path}:3 is not JSON"):
        keys = {r.config.key() for r in RS.load_exported(path, strict=False)}
    assert keys == {first.config.key(), third.config.key()}


_MERGER = """
import sys, time
from pathlib import Path
from pemscl import config as CF, runs as RS
tag, path, go = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
# seeds of their own: the label is not part of a run's key
runs = [RS.Run(dir=Path(f"/nonexistent/{tag}-{i}"), config=CF.TrainConfig(label=f"{tag}-{i}", seed=10 * tag + i,
               precision="fp32"), scores={"test": {"f1": i / 100}}, history=[]) for i in range(5)]
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
for run in runs:
    RS.export_runs([run], path)
"""


def test_processes_merging_at_the_same_moment_lose_no_record(tmp_path):
    path, go = tmp_path / "runs.jsonl", tmp_path / "go"
    tags = [1, 2, 3, 4]
    procs = [subprocess.Popen([sys.executable, "-c", _MERGER, str(tag), str(path), str(go)], env=_env(tmp_path),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for tag in tags]
    for p in procs:  # every process started and waiting before any merges
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    keys = [json.loads(line)["key"] for line in path.read_text().splitlines()]
    want = [CF.TrainConfig(seed=10 * t + i, precision="fp32").key() for t in tags for i in range(5)]
    assert len(keys) == 20 and sorted(keys) == sorted(want)  # 20 merges: every record once
    assert not list(tmp_path.glob(".runs.jsonl.*.tmp"))


def test_a_merger_killed_while_holding_the_lock_blocks_nobody(tmp_path):
    # the lock is the OS's: it goes with the killed process, and the next merge cleans its temp file
    path = tmp_path / "runs.jsonl"
    code = ("import os, signal, sys\nfrom pemscl import runs as RS\n"
            "with RS._locked(__import__('pathlib').Path(sys.argv[1])):\n"
            "    open(sys.argv[2], 'w').write('{half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    tmp = tmp_path / ".runs.jsonl.x.tmp"
    out = subprocess.run([sys.executable, "-c", code, str(path), str(tmp)], env=_env(tmp_path), timeout=120)
    assert out.returncode == -signal.SIGKILL and tmp.exists()
    with RS._locked(path, wait=False):  # BlockingIOError if the dead process still held it
        pass
    RS.export_runs(_runs(1, "k"), path)
    assert [r["key"] for r in map(json.loads, path.read_text().splitlines())] == [_runs(1, "k")[0].config.key()]
    assert not tmp.exists()

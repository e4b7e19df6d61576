"""Run storage: the Run record, run folders, and the committed record results/runs.jsonl.

A run folder (runs/<label>-<config hash>/) holds config.json, history.json (a row per
epoch), scores.json, predictions_<split>.json, model.pt (trained parameters only) and DONE,
written last. While a run trains it also holds state.pt (everything needed to continue after
a crash or a preempted job, read without unpickling) and state.prev.pt (the one an epoch
before, what a damaged state.pt falls back to); a complete run drops them.

`results/runs.jsonl` is the record that outlives machines and sessions: one JSON line per run
(config, scores with per-document counts, the per-epoch curve). It is only ever merged into,
never rewritten from the folders present on one machine, so a fresh clone, or a smaller
profile, never erases what earlier sessions recorded. Records written under an older
HASH_VERSION are kept in the file but not used. A run carried over to a new config (carry_over)
is stored as a pointer to the record it came from (`carried_from`), not as a second copy.
The lines are written without spaces, and a split's per-document counts leave out their "all"
rows when they are exactly the sum of the relation groups' rows (head + mid + tail): loading
puts them back, so every reader (load_exported) sees the counts as the run wrote them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from . import evaluate as E
from . import layout as L
from .config import HASH_VERSION, TrainConfig, config_from_dict
from .utils import atomic_write_json, atomic_write_text, read_json, results_dir, runs_dir, to_jsonable


@dataclass
class Run:
    dir: Path
    config: TrainConfig
    scores: dict
    history: list

    @classmethod
    def load(cls, run_dir: str | Path) -> "Run":
        run_dir = Path(run_dir)
        if not is_complete(run_dir):
            raise FileNotFoundError(f"{run_dir} is not a complete run (no DONE marker)")
        return cls(dir=run_dir, config=config_from_dict(read_json(run_dir / L.CONFIG)),
                   scores=read_json(run_dir / L.SCORES), history=read_json(run_dir / L.HISTORY))

    def labelled(self, label: str) -> "Run":
        """The same run under another row name (one run can be "PEMSCL" in one table and
        "paper default" in another)."""
        return dataclasses.replace(self, config=dataclasses.replace(self.config, label=label))

    @property
    def has_folder(self) -> bool:
        """False for a run known only from runs.jsonl (no model, no predictions here)."""
        return is_complete(self.dir)

    def predictions(self, split: str = "test") -> list[dict]:
        return E.read_predictions(self.dir / L.predictions_file(split))


def dev_curve(run: Run, split: str) -> list[float]:
    """The run's F1 per epoch on `split` (e.g. "dev", "dev_gold"), epochs without it skipped."""
    return [h[f"{split}_f1"] for h in run.history or [] if h.get(f"{split}_f1") is not None]


# pure checks on a dev curve: is the run at its end point?
FLAT_GAIN = 0.005  # converged(): at most this much dev F1 gained over the last two epochs counts as flat


def converged(f1s: Sequence[float], best_epoch: int) -> bool:
    """Converged: the best epoch is followed by two epochs that do not beat it, or the last two
    epochs together gained at most 0.5 F1 (FLAT_GAIN). Otherwise the run was cut short."""
    if best_epoch and len(f1s) - best_epoch >= 2:
        return True
    return len(f1s) >= 3 and f1s[-1] - f1s[-3] <= FLAT_GAIN


def curve_end(f1s: Sequence[float]) -> tuple[bool | None, int | None]:
    """(converged, best epoch) of a dev F1 curve, the first best epoch on ties; (None, None)
    for an empty curve."""
    if not f1s:
        return None, None
    best = list(f1s).index(max(f1s)) + 1
    return converged(f1s, best), best


def run_label(cfg: TrainConfig, epochs: int | None = None) -> str:
    """How a results table names one run: "ATL (redocred-mini, seed 66)", with the epoch budget
    when it says which of two budgets of the same run is meant."""
    budget = f", {epochs} epochs" if epochs is not None else ""
    return f"{cfg.label} ({cfg.regime}, seed {cfg.seed}{budget})"


def missing_labels(configs: Sequence[TrainConfig], runs: Sequence) -> list[str]:
    """The labels of the planned configs whose run (same position in `runs`) is None."""
    return [run_label(c) for c, r in zip(configs, runs) if r is None]


def is_complete(run_dir: str | Path) -> bool:
    return (Path(run_dir) / L.DONE).exists()


def run_dir_for(cfg: TrainConfig, root: str | Path | None = None) -> Path:
    """The folder of cfg's run: an existing one with the same config hash (complete first,
    then an interrupted one that can be resumed), whatever label it was trained under (the
    label names, it does not define), else a new one."""
    root = Path(root or runs_dir())
    if root.exists():
        found = sorted(root.glob(f"*-{cfg.key()}"), key=lambda p: (not is_complete(p), p.name))
        if found:
            return found[0]
    return root / cfg.folder_name()


def find_run(cfg: TrainConfig, root: str | Path | None = None) -> Run | None:
    """The complete local run of this config, labelled as the config, or None."""
    d = run_dir_for(cfg, root)
    return Run.load(d).labelled(cfg.label) if is_complete(d) else None


def carries_over(old: TrainConfig, scores: dict, new: TrainConfig) -> bool:
    """Is the finished run of `old` (its scores) exactly the run `new` would train? True when
    the configs differ at most in min_epochs, new waits at least as long as old did, and the
    run was not stopped before new's min_epochs: every epoch until then is the same, and new
    stops where old stopped (or at the end of the budget)."""
    if old.key() == new.key():
        return True
    if dataclasses.replace(old, min_epochs=new.min_epochs).key() != new.key():
        return False  # something besides min_epochs differs
    if (new.min_epochs or 0) < (old.min_epochs or 0):
        return False  # new may stop where old went on
    return not scores.get("stopped_early") or scores.get("epochs_run", 0) >= (new.min_epochs or 0)


def carry_over(configs: Iterable[TrainConfig], records: Iterable[Run], root: str | Path | None = None,
               copy: bool = True) -> list[Run]:
    """Runs for configs that have none recorded but whose run a recorded one already is
    (carries_over: e.g. a later min_epochs that the run never reached), as runs of the new
    config with scores["carried_from"] = the old key. Where the old run's folder is here (and
    copy), it is copied to the new config's folder, weights and predictions included. Export
    the result to record it."""
    records = list(records)
    have = by_key(records)
    stem: dict[str, list[Run]] = {}
    for r in records:
        stem.setdefault(dataclasses.replace(r.config, min_epochs=None).key(), []).append(r)
    out, seen = [], set()
    for cfg in configs:
        key = cfg.key()
        if key in have or key in seen:
            continue
        old = next((r for r in stem.get(dataclasses.replace(cfg, min_epochs=None).key(), [])
                    if carries_over(r.config, r.scores, cfg)), None)
        if old is None:
            continue
        seen.add(key)
        scores = {**old.scores, "carried_from": old.config.key()}
        new_dir = run_dir_for(cfg, root)
        if copy and old.has_folder and not new_dir.exists():
            shutil.copytree(old.dir, new_dir)
            atomic_write_json(new_dir / L.CONFIG, cfg)
            atomic_write_json(new_dir / L.SCORES, scores)
        out.append(Run(dir=new_dir, config=cfg, scores=scores, history=old.history))
    return out


def list_runs(root: str | Path | None = None) -> list[Run]:
    root = Path(root or runs_dir())
    if not root.exists():
        return []
    return [Run.load(p) for p in sorted(root.iterdir()) if is_complete(p)]


# --------------------------------------------------------------------------- the record
def record_path() -> Path:
    return results_dir() / "runs.jsonl"


_CURVE_KEYS = ("epoch", "train_seconds", "eval_seconds", "train_loss")


def to_record(run: Run) -> dict:
    curve = [{k: v for k, v in h.items() if k in _CURVE_KEYS or k.endswith(("_f1", "_precision", "_recall"))}
             for h in run.history]
    return to_jsonable({"folder": run.dir.name, "key": run.config.key(), "v": HASH_VERSION,
                      "config": dataclasses.asdict(run.config), "scores": run.scores, "history": curve})


def _scan(path: Path) -> tuple[list[dict], list[tuple[int, str, str]]]:
    """The records of the file, and its lines that are not a JSON record: (line number, the
    line, why). The file is only ever replaced whole (export_runs), so such a line was damaged
    outside this code: an edit, a merge conflict, a disk fault."""
    if not path.exists():
        return [], []
    out, bad = [], []
    for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if line.strip():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                bad.append((i, line, f"not JSON ({e})"))
                continue
            if isinstance(rec, dict):
                out.append(rec)
            else:
                bad.append((i, line, f"not a record (a JSON {type(rec).__name__})"))
    return out, bad


def _read_lines(path: Path, strict: bool = True) -> list[dict]:
    """The records of the file. A damaged line is refused (strict: ValueError naming file and
    line) or reported as a warning naming them and skipped."""
    out, bad = _scan(path)
    for i, _, why in bad:
        msg = f"{path}:{i} is {why}; fix or remove that line (git has the record as committed)"
        if strict:
            raise ValueError(msg)
        warnings.warn(msg + "; skipped", stacklevel=3)
    return out


def _group_sum(groups: dict) -> list[list[int]]:
    rows = [g for name, g in groups.items() if name != "all"]
    return [[sum(col) for col in zip(*doc)] for doc in zip(*rows)]


def _compacted(rec: dict) -> dict:
    """rec as written to the file: each split's "all" count rows dropped when they equal the sum
    of its groups' rows (kept when some relation is in no group, or there are no groups)."""
    counts = (rec.get("scores") or {}).get("doc_counts")
    if not counts:
        return rec
    small = {split: {k: v for k, v in groups.items() if k != "all"}
             if isinstance(groups, dict) and len(groups) > 1 and "all" in groups
             and groups["all"] == _group_sum(groups) else groups
             for split, groups in counts.items()}
    return rec | {"scores": rec["scores"] | {"doc_counts": small}}


def _expanded(rec: dict) -> dict:
    """A line as read from the file with any "all" rows _compacted dropped put back."""
    counts = (rec.get("scores") or {}).get("doc_counts")
    if not counts or all(not isinstance(groups, dict) or "all" in groups for groups in counts.values()):
        return rec
    full = {split: groups if not isinstance(groups, dict) or "all" in groups
            else {"all": _group_sum(groups), **groups}
            for split, groups in counts.items()}
    return rec | {"scores": rec["scores"] | {"doc_counts": full}}


def _pointer(rec: dict, recs: dict) -> dict:
    """rec as a pointer to the record it was carried over from (config and key of its own,
    scores and curve read from the source) when its scores and curve are exactly the source's:
    a carried record then costs a line of config instead of a second copy of every per-document
    count. Anything else is returned as it is."""
    scores = rec.get("scores") or {}
    src = recs.get((scores.get("carried_from"), rec.get("v")))
    if src is None or "scores" not in src:
        return rec
    if {k: v for k, v in scores.items() if k != "carried_from"} != src["scores"] or rec["history"] != src["history"]:
        return rec
    return {k: v for k, v in rec.items() if k not in ("scores", "history")} | {"carried_from": scores["carried_from"]}


def _resolve(rec: dict, recs: dict, where: str) -> dict:
    """A pointer record (see _pointer) with the scores and curve of its source filled in."""
    if "carried_from" not in rec:
        return rec
    src = recs.get((rec["carried_from"], rec.get("v")))
    if src is None or "scores" not in src:
        raise ValueError(f"{where} ({rec.get('folder')}) was carried over from {rec['carried_from']}, "
                         "which the record does not hold; restore that line from git")
    full = {k: v for k, v in rec.items() if k != "carried_from"}  # the key lives on in scores, as in a copy
    return full | {"scores": {**src["scores"], "carried_from": rec["carried_from"]}, "history": src["history"]}


def export_runs(runs: Iterable[Run], path: str | Path | None = None, *, keep_recorded: bool = False) -> Path:
    """Merge runs into the record: a run already recorded (same key) is replaced by the newer
    one, or left as recorded with keep_recorded (a local folder of a recorded config must not
    displace the run the results were judged on); every other line is kept as it was (a
    carried-over copy may become a pointer to its source, which loads the same). Lines are
    sorted by folder name so diffs stay small."""
    path = Path(path) if path is not None else record_path()
    new = [to_record(run) for run in runs]
    with _locked(path):  # two runs side by side may finish at once: read-merge-write under a lock
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)  # left by a merger killed before its rename: only the lock holder writes
        found, bad = _scan(path)
        for i, _, why in bad:
            warnings.warn(f"{path}:{i} is {why}; kept as it is at the end of the file, fix or remove it",
                          stacklevel=2)
        recs = {(r.get("key"), r.get("v")): _expanded(r) for r in found}
        if keep_recorded:
            new = [rec for rec in new if (rec["key"], rec["v"]) not in recs]
        replaced = {(rec["key"], rec["v"]) for rec in new}
        # a pointer keeps the scores it was carried with, even when its source is trained again
        recs = {k: _resolve(r, recs, str(path)) if (r.get("carried_from"), r.get("v")) in replaced else r
                for k, r in recs.items()}
        for rec in new:
            recs[(rec["key"], rec["v"])] = rec
        recs = {k: _pointer(r, recs) for k, r in recs.items()}
        lines = sorted(recs.values(), key=lambda r: (str(r.get("v")), r.get("folder", "")))
        text = "".join(json.dumps(_compacted(r), sort_keys=True, separators=(",", ":")) + "\n" for r in lines)
        # a damaged line is kept, not dropped: it may be the only copy of a run that git can restore
        text += "".join(line + "\n" for _, line, _ in bad)
        atomic_write_text(path, text, durable=True)  # a merger killed mid-write leaves the record as it was
    return path


@contextlib.contextmanager
def _locked(path: Path, wait: bool = True):
    """An exclusive lock on .<name>.lock beside path, for this block; the OS releases it when the
    holder dies, so a killed process never leaves a stale lock. wait=False raises BlockingIOError
    when another open file holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def holder(run_dir: str | Path) -> int | None:
    """The pid of the process training run_dir now (holding its lock), read from /proc/locks
    without touching the lock: taking it, even for an instant, could make a scheduler starting
    that run see RunInProgress and pass it over. None when nobody holds it, or off Linux."""
    lock = Path(run_dir).with_name(f".{Path(run_dir).name}.lock")
    try:
        st, table = lock.stat(), Path("/proc/locks").read_text()
    except OSError:
        return None
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():  # "1: FLOCK  ADVISORY  WRITE 5819 fd:01:123456 0 EOF"
        f = line.split()
        if len(f) >= 6 and f[1] == "FLOCK" and f[5] == ident:
            return int(f[4])
    return None


class RunInProgress(RuntimeError):
    """Another process is training this run folder right now."""


@contextlib.contextmanager
def training(run_dir: str | Path):
    """Hold a run folder for training: a second process (another notebook, a second scheduler)
    asking for the same config gets RunInProgress instead of writing into the same folder."""
    run_dir = Path(run_dir)
    try:
        with _locked(run_dir, wait=False):
            yield
    except BlockingIOError:
        raise RunInProgress(f"{run_dir} is being trained by another process; wait for it to finish "
                            "(a rerun then reuses it) or train another config") from None


def load_exported(path: str | Path | None = None, *, strict: bool = True) -> list[Run]:
    """The current-version runs of the record as Run objects (their folders may not exist here).

    A record of this HASH_VERSION whose config no longer hashes to its key was written by other
    code: refused (strict) with the line named. Older versions are skipped, not used. A line
    that is not a JSON record is refused (strict) or skipped with a warning, naming file and line."""
    path = Path(path) if path is not None else record_path()
    lines = [_expanded(r) for r in _read_lines(path, strict=strict)]
    recs = {(r.get("key"), r.get("v")): r for r in lines}
    out = []
    for i, rec in enumerate(lines, 1):
        if rec.get("v") != HASH_VERSION:
            continue
        rec = _resolve(rec, recs, f"{path}:{i}")
        cfg = config_from_dict(rec["config"])
        if cfg.key() != rec["key"]:
            if strict:
                raise ValueError(f"{path}:{i} ({rec['folder']}): config hashes to {cfg.key()}, "
                                 f"record says {rec['key']}")
            continue
        out.append(Run(dir=runs_dir() / rec["folder"], config=cfg, scores=rec["scores"], history=rec["history"]))
    return out


def record_summary(path: str | Path | None = None) -> dict[str, int]:
    """How many records the file holds per hash version (older ones are kept, not used)."""
    path = Path(path) if path is not None else record_path()
    counts: dict[str, int] = {}
    for rec in _read_lines(path):
        v = str(rec.get("v", 1))
        counts[v] = counts.get(v, 0) + 1
    return counts


def by_key(records: Iterable[Run]) -> dict[str, Run]:
    """Recorded runs indexed by config key, so looking up a profile's configs hashes each once."""
    return {r.config.key(): r for r in records}


def recorded(cfg: TrainConfig, index: dict[str, Run]) -> Run | None:
    run = index.get(cfg.key())
    return run.labelled(cfg.label) if run is not None else None


# --------------------------------------------------------------------------- every run known here
def gather_runs(root: str | Path | None = None, record: str | Path | None = None) -> list[Run]:
    """Every run known here: the runs.jsonl records of this hash version (a fresh clone rebuilds
    the tables from them), then the complete local folders of configs not recorded. Where both
    exist the record wins: it is the run the committed results were judged on, and a local
    folder of the same config is the same run or a reproduction trained for its weights."""
    path = Path(record) if record is not None else record_path()
    rec = load_exported(path, strict=False) if path.exists() else []
    keys = {r.config.key() for r in rec}
    return rec + [r for r in list_runs(root) if r.config.key() not in keys]


def as_runs(runs: Iterable) -> list[Run]:
    """Run objects from Runs or flat rows that name a run folder ({"dir": ...})."""
    out = []
    for r in runs:
        if isinstance(r, Run):
            out.append(r)
        elif isinstance(r, Mapping) and r.get("dir"):
            out.append(Run.load(r["dir"]))
    return out

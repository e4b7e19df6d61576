"""Small shared helpers: devices and precision, seeding, hashing, atomic files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- paths
def cache_dir() -> Path:
    """Where derived artefacts (features, layer caches) go: $PEMSCL_CACHE or <repo>/.cache."""
    return Path(os.environ.get("PEMSCL_CACHE", REPO / ".cache"))


def runs_dir() -> Path:
    """Where run folders go: $PEMSCL_RUNS or <repo>/runs."""
    return Path(os.environ.get("PEMSCL_RUNS", REPO / "runs"))


def results_dir() -> Path:
    """Where results.{json,md} and the run record runs.jsonl go: $PEMSCL_RESULTS or <repo>/results."""
    return Path(os.environ.get("PEMSCL_RESULTS", REPO / "results"))


def figures_dir() -> Path:
    """Where figures go: $PEMSCL_FIGURES or <repo>/figures."""
    return Path(os.environ.get("PEMSCL_FIGURES", REPO / "figures"))


def readme_path() -> Path:
    """The README whose marked sections are regenerated: $PEMSCL_README or <repo>/README.md."""
    return Path(os.environ.get("PEMSCL_README", REPO / "README.md"))


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """Set environment variables for a block (subprocesses such as notebook kernels inherit
    them) and restore the previous values, unset ones included, afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------- device / precision
def resolve_device(device: str = "auto") -> torch.device:
    """"auto" picks CUDA when present, else Apple MPS, else CPU."""
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 matmul (AVX512-BF16 / AMX), where autocast pays off.

    On CPUs without it, bf16 autocast still runs but is emulated and slower than fp32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Map a precision setting to an autocast dtype (None = plain fp32).

    "auto": bf16 on CUDA when supported (fp16 otherwise); on a CPU, whichever of fp32 and bf16
    autocast is faster *here*, measured once (measured_cpu_precision): CPU flags do not tell
    (one machine reporting avx512_bf16 ran a step 25% slower in bf16). $PEMSCL_PRECISION
    overrides the measurement. Explicit "bf16" / "fp16" / "fp32" are honoured as asked.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if precision != "auto":
        raise ValueError(f"precision must be auto|bf16|fp16|fp32, got {precision!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        forced = os.environ.get("PEMSCL_PRECISION")
        if forced:
            return resolve_precision(forced, device) if forced != "auto" else None
        return torch.bfloat16 if measured_cpu_precision() == "bf16" else None
    return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


_MEASURED: dict[str, str] = {}


def machine_cache_dir() -> Path:
    """Facts about this machine, shared by every process and project folder ($PEMSCL_MACHINE_CACHE
    or ~/.cache/pemscl): unlike the project cache, a test or a dry run never redirects it."""
    return Path(os.environ.get("PEMSCL_MACHINE_CACHE", Path.home() / ".cache" / "pemscl"))


def measured_cpu_precision(reps: int = 5) -> str:
    """"bf16" or "fp32": which runs a transformer-sized forward and backward faster on this CPU.

    Timed once per machine (about a second) on a MiniLM-shaped block (384 hidden, 1536 MLP,
    512 tokens) and kept in the machine cache keyed by CPU model and torch version, so every
    process on the machine (notebook kernels, torchrun ranks, workers with other thread counts)
    resolves "auto" alike, and a run's key never depends on a timing taken twice. bf16 must be
    clearly faster (10%) to be chosen. Without native bf16 support the answer is fp32 unmeasured.
    """
    import time

    key = f"{_cpu_name()}|{torch.__version__}"
    if key in _MEASURED:
        return _MEASURED[key]
    path = machine_cache_dir() / "precision.json"
    known = {}
    with contextlib.suppress(OSError, ValueError):
        known = json.loads(path.read_text())
    if key in known:
        _MEASURED[key] = known[key]["choice"]
        return _MEASURED[key]
    if not cpu_supports_bf16():
        choice, times = "fp32", {}
    else:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(512, 384, generator=gen)
        w1 = torch.randn(384, 1536, generator=gen, requires_grad=True)
        w2 = torch.randn(1536, 384, generator=gen, requires_grad=True)

        def step(dtype):
            with autocast(torch.device("cpu"), dtype):
                y = (torch.relu(x @ w1) @ w2).float().square().mean()
            y.backward()

        times = {}
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            step(dtype)  # warm-up
            t0 = time.perf_counter()
            for _ in range(reps):
                step(dtype)
            times[name] = (time.perf_counter() - t0) / reps
        choice = "bf16" if times["bf16"] < 0.9 * times["fp32"] else "fp32"
    known[key] = {"choice": choice, "seconds": times}
    with contextlib.suppress(OSError):
        atomic_write_text(path, json.dumps(known, indent=1))
    _MEASURED[key] = choice
    return choice


def autocast(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast for the device, or a null context for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# --------------------------------------------------------------------------- seeding
def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch.Generator for explicit sampling."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


# --------------------------------------------------------------------------- hashing / json
def to_jsonable(obj: Any) -> Any:
    """Plain JSON values for dataclasses, paths, numpy scalars, tuples; NaN and inf become None
    (JSON has neither) and anything else its str()."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return None if (x != x or x in (float("inf"), float("-inf"))) else x
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return str(obj)


def stable_hash(obj: Any, n: int = 12) -> str:
    """Short sha256 of an object's canonical JSON (dataclasses included)."""
    blob = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


# --------------------------------------------------------------------------- atomic files
@contextlib.contextmanager
def atomic_path(path: str | Path):
    """A temp path in the target's folder, moved onto `path` with os.replace when the block
    succeeds and removed when it fails: readers never see half a file (a truncated prediction
    file would be scored, a truncated cache loaded)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=indent, sort_keys=False) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_pickle(obj: Any, path: str | Path) -> None:
    import pickle

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)

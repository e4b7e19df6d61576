"""Small shared helpers: paths, hashing, atomic files; devices, precision and seeding.

torch is optional here: the scorer, the statistics, the tables and the report (and so
`python -m pemscl.evaluate`) run where only numpy is installed, and read configs, whose keys
name the device kind and precision they resolve to (`device_type`, `precision_name`). What
trains needs torch and says so (`require_torch`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import tempfile
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:
    import torch

    from .bf16cpu import cpu_supports_bf16, emulate, gemms  # needs torch, as the block's first line
except ImportError:  # optional: see the module docstring
    torch = None

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
def require_torch(what: str) -> None:
    if torch is None:
        raise ImportError(f"{what} needs torch (pip install torch); the scorer, statistics and report do not")


def device_type(device: str = "auto") -> str:
    """The kind of device ("cpu", "cuda", "mps") a device setting resolves to here; without
    torch nothing but the CPU could run, so "auto" is the CPU."""
    if torch is None:
        return "cpu" if device == "auto" else str(device).split(":")[0]
    return resolve_device(device).type


def precision_name(precision: str, device: str = "auto") -> str:
    """What a run of this precision setting computes in here: "fp32", "bfloat16" or "float16".
    "auto" asks the machine (CUDA's bf16 support, a CPU's measured speed), which needs torch."""
    named = {"fp32": "fp32", "bf16": "bfloat16", "fp16": "float16"}
    if precision in named:
        return named[precision]
    if precision != "auto":
        raise ValueError(f"precision must be auto|bf16|fp16|fp32, got {precision!r}")
    require_torch('resolving precision="auto" (it measures this machine)')
    amp = resolve_precision(precision, resolve_device(device))
    return str(amp).replace("torch.", "") if amp is not None else "fp32"


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" picks CUDA when present, else Apple MPS, else CPU."""
    require_torch("choosing a device")
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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


_MEASURED: dict[str, dict] = {}


def machine_cache_dir() -> Path:
    """Facts about this machine, shared by every process and project folder ($PEMSCL_MACHINE_CACHE
    or ~/.cache/pemscl): unlike the project cache, a test or a dry run never redirects it."""
    return Path(os.environ.get("PEMSCL_MACHINE_CACHE", Path.home() / ".cache" / "pemscl"))


def cpu_capability() -> str:
    """ATen's CPU kernel level here (DEFAULT / AVX2 / AVX512 ...; ATEN_CPU_CAPABILITY lowers it)."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # pragma: no cover - older torch
        return "unknown"


def precision_cache_key() -> str:
    """What the measured precision depends on: the CPU, the kernels torch picks for it (an
    oneDNN / ATen ISA cap changes them) and the torch version. A new CPU is a new measurement."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    return f"{_cpu_name()}|{cpu_capability()}{'|onednn<=' + isa if isa else ''}|{torch.__version__}"


def _time_block(reps: int) -> dict[str, float]:
    """Seconds per forward + backward of a MiniLM-shaped block (512 tokens, 384 hidden, 1536 MLP),
    fp32 and under bf16 autocast, alternating so that both see the same machine load."""
    import time

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 384, generator=gen)
    w1 = torch.randn(384, 1536, generator=gen, requires_grad=True)
    w2 = torch.randn(1536, 384, generator=gen, requires_grad=True)

    def step(dtype):
        with autocast(torch.device("cpu"), dtype):
            y = (torch.nn.functional.gelu(x @ w1) @ w2).float().square().mean()
        y.backward()

    runs: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        step(dtype)  # warm-up: oneDNN builds its kernels on first use
    for _ in range(reps):
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            t0 = time.perf_counter()
            step(dtype)
            runs[name].append(time.perf_counter() - t0)
    return {k: sorted(v)[len(v) // 2] for k, v in runs.items()}  # medians


def measured_cpu_precision(reps: int = 5) -> str:
    """"bf16" or "fp32": which runs a transformer-sized forward and backward faster on this CPU.

    Timed once per machine (about a second; on a CPU that emulates bf16 the bf16 steps take
    longer, a few seconds) on a MiniLM-shaped block and kept in the machine cache keyed by
    `precision_cache_key` (CPU model, ATen capability, torch version), so every process on the
    machine (notebook kernels, torchrun ranks, workers with other thread counts) resolves "auto"
    alike, a run's key never depends on a timing taken twice, and another CPU measures again.
    bf16 must be clearly faster (10%) to be chosen: on an AVX2-only EPYC bf16 autocast ran such a
    block 20x slower than fp32, and CPU flags alone do not tell (one machine reporting
    avx512_bf16 ran a step 25% slower in bf16). Without bf16 in the CPU flags the answer is fp32,
    unmeasured."""
    return _measurement(reps)["choice"]


def _measurement(reps: int = 5) -> dict:
    key = precision_cache_key()
    if key in _MEASURED:
        return _MEASURED[key]
    path = machine_cache_dir() / "precision.json"
    known = {}
    with contextlib.suppress(OSError, ValueError):
        known = json.loads(path.read_text())
    if isinstance(known.get(key), dict) and known[key].get("choice") in ("bf16", "fp32"):
        _MEASURED[key] = {**known[key], "cached": str(path)}
        return _MEASURED[key]
    if not cpu_supports_bf16():
        entry = {"choice": "fp32", "seconds": {}, "why": "no bf16 instructions in the CPU flags"}
    else:
        times = _time_block(reps)
        choice = "bf16" if times["bf16"] < 0.9 * times["fp32"] else "fp32"
        entry = {"choice": choice, "seconds": times,
                 "why": f"bf16 autocast {times['fp32'] / times['bf16']:.2f}x the speed of fp32 on a MiniLM-shaped "
                        f"block ({1000 * times['bf16']:.0f} vs {1000 * times['fp32']:.0f} ms)"}
    entry["measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
    known[key] = entry
    with contextlib.suppress(OSError):
        atomic_write_text(path, json.dumps(known, indent=1))
    _MEASURED[key] = {**entry, "cached": None}
    return _MEASURED[key]


def precision_line(precision: str, device: torch.device) -> str:
    """One line: the precision a run uses here and why (printed when a run starts)."""
    amp = resolve_precision(precision, device)
    name = str(amp).replace("torch.", "").replace("bfloat16", "bf16").replace("float16", "fp16") if amp else "fp32"
    if precision != "auto":
        why = "as the config pins it"
        if device.type == "cpu" and precision == "bf16" and emulate(device, amp):
            why += ("; no bf16 instructions in this CPU, so its products run in fp32 kernels, rounded to "
                    "bf16 (bf16cpu: the same arithmetic, about 1.1x fp32's time; precision='auto' picks fp32)")
        elif device.type == "cpu" and precision == "bf16" and measured_cpu_precision() == "fp32":
            why += f" (slow here: {_measurement()['why']}; precision='auto' would pick fp32)"
    elif device.type != "cpu":
        why = f"auto on {device.type}: " + ("bf16 supported" if name == "bf16" else "fp16 (no bf16 support)")
    elif os.environ.get("PEMSCL_PRECISION"):
        why = f"$PEMSCL_PRECISION={os.environ['PEMSCL_PRECISION']}"
    else:
        m = _measurement()
        where = f"cached in {m['cached']}" if m.get("cached") else "measured now"
        why = f"auto, measured on {_cpu_name()} ({cpu_capability()}): {m['why']}; {where}"
    return f"precision {name}: {why}"


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast for the device, or nothing for fp32. bf16 on a CPU without bf16
    instructions also runs its products through fp32 kernels (`bf16cpu`): the same arithmetic,
    12x faster there; a backward outside this context needs `bf16cpu.gemms` around it as well."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype), gemms(device, dtype):
        yield


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


def atomic_write_text(path: str | Path, text: str, durable: bool = False) -> None:
    """durable: on disk (fsync_file) before it replaces the old file, for files that are a record."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
        if durable:
            fsync_file(tmp)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=indent, sort_keys=False) + "\n")


def fsync_file(path: str | Path) -> None:
    """Flush a file's data to disk: renamed over a good file without it, a power cut can leave
    an empty file under the good one's name (a killed process cannot: its writes are in the
    page cache)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
        fsync_file(tmp)  # checkpoints cost training time to rebuild: on disk before they replace the last


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)

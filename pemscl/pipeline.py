"""Run the notebooks in order, headless, under one profile.

    python -m pemscl.pipeline --profile cpu                # all of notebooks/NN_*.ipynb
    python -m pemscl.pipeline --profile smoke --only 00,02
    python -m pemscl.pipeline --profile paper --out executed/gpu
    python -m pemscl.pipeline --profile paper --dry-run    # every config for two steps, tiny models, on a CPU

Each notebook is executed with papermill (parameter `profile`) in a kernel running this very
interpreter, with the notebooks/ folder as working directory, as when opened in Jupyter.
Executed copies, outputs kept, go to executed/<profile>/ (git-ignored) with timings.json.
The first failing notebook stops the sequence, naming the notebook and the failing cell.

The smoke profile writes its figures, results and README copy under its output folder
unless PEMSCL_FIGURES / PEMSCL_RESULTS / PEMSCL_README say otherwise, so a smoke run never
overwrites the repository's figures/, results/ or README.md with toy numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from . import dryrun
from .figures import figures_dir
from .notebooks import NotebooksOutOfSync, require_in_sync
from .utils import REPO, environment, readme_path, results_dir

NOTEBOOKS = REPO / "notebooks"
KERNEL = "pemscl"
SMOKE_CELL_TIMEOUT = 600  # seconds; a smoke cell trains a few tiny models at most


class NotebookFailed(RuntimeError):
    """A notebook of the sequence raised; carries which one and the failing cell."""

    def __init__(self, notebook: str, cell_index: int | None, source: str, error: str, output: Path):
        self.notebook, self.cell_index, self.source, self.error, self.output = notebook, cell_index, source, error, output
        src = "\n    ".join(source.strip().splitlines()[:12])
        super().__init__(f"{notebook} failed in cell {cell_index} of the executed copy (from 0, the injected "
                         f"parameters cell included):\n    {src}\n{error}\n"
                         f"executed copy with the traceback: {output}")


def _running_cell(path: Path) -> tuple[int | None, str]:
    """(index, source) of the cell papermill marked as running in a partly executed copy."""
    try:
        import nbformat

        nb = nbformat.read(path, as_version=4)
        for i, c in enumerate(nb.cells):
            if c.get("metadata", {}).get("papermill", {}).get("status") == "running":
                return i, c.source
    except Exception:  # the copy may be missing or half written
        pass
    return None, ""


def notebooks(only: Sequence[str] | None = None, folder: Path = NOTEBOOKS) -> list[Path]:
    """notebooks/NN_*.ipynb in order; `only` keeps those whose number (or name) is listed."""
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        keep = {o.strip() for o in only if o.strip()}
        found = [p for p in found if p.name[:2] in keep or p.stem in keep or p.name in keep]
    return found


def executed_dir(profile: str) -> Path:
    """Where the pipeline writes for `profile`: $PEMSCL_EXECUTED (set by the pipeline) or executed/<profile>."""
    env = os.environ.get("PEMSCL_EXECUTED")
    return Path(env) if env else REPO / "executed" / profile


def write_summary(name: str, data: dict, profile: str) -> Path:
    """What a notebook produced, as executed/<profile>/<name>.json (tests assert on it)."""
    folder = executed_dir(profile)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, default=str))
    return path


def ensure_kernel(name: str = KERNEL) -> str:
    """A Jupyter kernel spec that runs this interpreter (sys.executable), installed into
    sys.prefix when missing or pointing elsewhere; a bare `python3` spec could pick another
    Python from PATH and miss the venv's packages."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    ksm = KernelSpecManager()
    try:
        spec = ksm.get_kernel_spec(name)
        if spec.argv and Path(spec.argv[0]) == Path(sys.executable):
            return name
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    try:
        install(kernel_name=name, display_name=f"Python ({name})", prefix=sys.prefix)
    except PermissionError:
        install(kernel_name=name, display_name=f"Python ({name})", user=True)
    return name


def _smoke_redirects(out: Path) -> dict[str, str]:
    """Default env for the smoke profile: keep its toy outputs out of the repository."""
    env = {}
    if "PEMSCL_FIGURES" not in os.environ:
        env["PEMSCL_FIGURES"] = str(out / "figures")
    if "PEMSCL_RESULTS" not in os.environ:
        env["PEMSCL_RESULTS"] = str(out / "results")
    if "PEMSCL_README" not in os.environ:
        readme = out / "README.md"
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / "README.md", readme)
        env["PEMSCL_README"] = str(readme)
    return env


def run_pipeline(profile: str = "cpu", only: Sequence[str] | None = None, out: str | Path | None = None,
                 parameters: dict[str, Any] | None = None, log_output: bool = False,
                 folder: Path = NOTEBOOKS, cell_timeout: float | None = None) -> dict:
    """Execute the notebooks in order; returns {"timings": {name: seconds}, "out": folder}.

    Raises NotebookFailed at the first notebook that raises. `cell_timeout` (seconds per cell;
    default SMOKE_CELL_TIMEOUT for smoke, none otherwise, as real training cells take hours)
    turns a hung cell into a failure instead of a stalled CI job.
    """
    if cell_timeout is None and profile == "smoke":
        cell_timeout = SMOKE_CELL_TIMEOUT
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out = Path(out) if out else REPO / "executed" / profile
    out.mkdir(parents=True, exist_ok=True)
    nbs = notebooks(only, folder)
    if not nbs:
        raise FileNotFoundError(f"no notebooks matching {only} in {folder}")
    require_in_sync(folder, stems=[p.stem for p in nbs])  # an unsynced .py edit would otherwise run stale code
    kernel = ensure_kernel()
    env = {"PEMSCL_EXECUTED": str(out.resolve()), "PEMSCL_PROFILE": profile, "PEMSCL_HEADLESS": "1",
           # the kernel imports pemscl from this checkout even without `pip install -e .`
           "PYTHONPATH": os.pathsep.join([str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    if profile == "smoke":
        env.update(_smoke_redirects(out))
    timings: dict[str, float] = {}
    tfile = out / "timings.json"
    t_all = time.time()
    with environment(env):  # the kernel subprocess inherits this environment
        for nb in nbs:
            dest = out / nb.name
            print(f"▶ {nb.name} (profile {profile}) ...", flush=True)
            t0 = time.time()
            try:
                pm.execute_notebook(str(nb), str(dest), parameters={"profile": profile, **(parameters or {})},
                                    kernel_name=kernel, cwd=str(folder), progress_bar=False, log_output=log_output,
                                    execution_timeout=cell_timeout)
            except (PapermillExecutionError, TimeoutError) as e:
                timings[nb.stem] = time.time() - t0
                tfile.write_text(json.dumps({"profile": profile, "seconds": timings, "failed": nb.stem}, indent=1))
                if isinstance(e, PapermillExecutionError):
                    raise NotebookFailed(nb.name, e.cell_index, e.source, f"{e.ename}: {e.evalue}", dest) from None
                cell = _running_cell(dest)
                raise NotebookFailed(nb.name, cell[0], cell[1], f"cell timed out after {cell_timeout:g}s ({e})",
                                     dest) from None
            timings[nb.stem] = time.time() - t0
            print(f"  done in {timings[nb.stem]:.1f}s -> {dest}", flush=True)
            tfile.write_text(json.dumps({"profile": profile, "seconds": timings,
                                         "total": sum(timings.values())}, indent=1))
    total = time.time() - t_all
    print(f"\n{len(timings)} notebooks in {total / 60:.1f} min (timings: {tfile})")
    with_env = lambda k, f: Path(env[k]) if k in env else f()  # noqa: E731 (the run's own redirects)
    print(f"executed notebooks: {out}\nfigures: {with_env('PEMSCL_FIGURES', figures_dir)}\n"
          f"results: {with_env('PEMSCL_RESULTS', results_dir)}\nREADME (summary; docs/results.md beside it): {with_env('PEMSCL_README', readme_path)}")
    return {"timings": timings, "total": total, "out": out}


def dry_run(profile: str = "paper", root: str | Path | None = None, only: Sequence[str] | None = None,
            out: str | Path | None = None, log_output: bool = False, cell_timeout: float | None = None) -> dict:
    """A dry run (pemscl.dryrun) with the notebooks: prepare, train every config, then execute
    the notebooks on those runs (executed copies in <root>/executed unless `out`; cell_timeout
    defaults to the smoke profile's, as every cell handles tiny runs). Returns
    {"dry_run": DryRun, "runs": [...], "pipeline": run_pipeline's result}."""
    trained = dryrun.train_only(profile, root)
    dr = trained["dry_run"]
    with dryrun.activated(dr):
        res = run_pipeline(profile, only=only, out=out or dr.executed, log_output=log_output,
                           cell_timeout=cell_timeout or SMOKE_CELL_TIMEOUT)
    print(dr.where(out), flush=True)
    return {**trained, "pipeline": res}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pemscl.pipeline", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default=None, choices=["smoke", "quick", "cpu", "paper"],
                    help="default: quick (paper with --dry-run)")
    ap.add_argument("--retrain", action="store_true",
                    help="train every run again instead of reusing those recorded in results/runs.jsonl")
    ap.add_argument("--only", default="", help="comma-separated notebook numbers, e.g. 00,02")
    ap.add_argument("--out", default=None, help="folder for executed notebooks (default executed/<profile>)")
    ap.add_argument("--log-output", action="store_true", help="stream the notebooks' output here")
    ap.add_argument("--cell-timeout", type=float, default=None,
                    help=f"seconds per cell before failing (default: {SMOKE_CELL_TIMEOUT} for smoke, none otherwise)")
    ap.add_argument("--dry-run", action="store_true",
                    help="every config for two steps with tiny models on stand-in data, then the notebooks; "
                         "everything goes to a temporary folder (pemscl.dryrun)")
    ap.add_argument("--dry-run-root", default=None, help="the dry run's folder (default: a new temporary folder)")
    a = ap.parse_args(argv)
    a.profile = a.profile or ("paper" if a.dry_run else "quick")
    if a.retrain:
        os.environ["PEMSCL_RETRAIN"] = "1"  # read by runner.run_all in the notebooks' kernels
    if a.dry_run:
        try:
            dryrun.check_profile(a.profile)
        except ValueError as e:
            print(f"\n✗ {e}", file=sys.stderr)
            return 2
    try:
        if a.dry_run:
            dry_run(a.profile, root=a.dry_run_root, only=[s for s in a.only.split(",") if s] or None,
                       out=a.out, log_output=a.log_output, cell_timeout=a.cell_timeout)
            return 0
        run_pipeline(a.profile, only=[s for s in a.only.split(",") if s] or None, out=a.out, log_output=a.log_output,
                     cell_timeout=a.cell_timeout)
    except (NotebookFailed, NotebooksOutOfSync) as e:
        print(f"\n✗ {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

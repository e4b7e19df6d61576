"""The notebooks come in jupytext pairs: NN_name.py and NN_name.ipynb.

    python -m pemscl.notebooks check     # list pairs that disagree (exit 1 if any)
    python -m pemscl.notebooks sync      # rewrite each .ipynb from its .py

The .py (jupytext "percent" format) is the reviewed source: plain Python, readable diffs. The
.ipynb, committed without outputs, is what papermill executes and what JupyterLab opens.
notebooks/jupytext.toml declares the pairing, so JupyterLab with jupytext installed saves
both files together; an edit made to the .py alone must be synced before the pipeline runs,
or the pipeline would execute stale code. `check_pairs` finds such drift, `sync` repairs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
FORMAT = "py:percent"
SYNC_COMMAND = "python -m pemscl.notebooks sync"  # or: jupytext --sync notebooks/*.py
PATTERN = "[0-9][0-9]_*"  # the numbered notebooks; helpers such as a conftest.py stay unpaired


class NotebooksOutOfSync(RuntimeError):
    """Some .py/.ipynb pair disagrees; the message names each and the command that repairs it."""


def _pairs(folder: Path) -> dict[str, tuple[Path | None, Path | None]]:
    """stem -> (.py, .ipynb), either None when that side is missing."""
    stems = sorted({p.stem for ext in ("py", "ipynb") for p in folder.glob(f"{PATTERN}.{ext}")})
    return {s: (_existing(folder / f"{s}.py"), _existing(folder / f"{s}.ipynb")) for s in stems}


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None


def read_source(py: Path):
    """The notebook a percent-format .py describes (no outputs, no ids worth keeping)."""
    import jupytext

    return jupytext.read(py, fmt=FORMAT)


def _read_ipynb(path: Path):
    import nbformat

    return nbformat.read(path, as_version=4)


def cell_inputs(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    """What the two sides of a pair must agree on, per cell: type, source and tags.

    Outputs, execution counts, cell ids and other metadata (papermill's, JupyterLab's
    collapsed/scrolled) are noise here; tags are kept because papermill finds the
    parameters cell by its tag. Trailing whitespace is ignored: the text format cannot
    keep it faithfully."""
    return [(c.cell_type, c.source.rstrip(), tuple(c.get("metadata", {}).get("tags", []))) for c in nb.cells]


def _first_difference(py_cells: list, nb_cells: list) -> str | None:
    for i, (a, b) in enumerate(zip(py_cells, nb_cells)):
        if a != b:
            what = "type" if a[0] != b[0] else "tags" if a[2] != b[2] else "source"
            first = (a[1].splitlines() or [""])[0][:60]
            return f"cell {i} differs ({what}); in the .py it starts {first!r}"
    if len(py_cells) != len(nb_cells):
        return f"the .py has {len(py_cells)} cells, the .ipynb {len(nb_cells)}"
    return None


def check_pairs(folder: str | Path = NOTEBOOKS, stems: Sequence[str] | None = None) -> list[str]:
    """One line per problem: an unpaired .py or .ipynb, or a pair whose cells differ. [] = all in sync.

    `stems` (e.g. ["00_data"]) checks only those notebooks: running 00 need not wait on a 03 in progress."""
    folder = Path(folder)
    problems = []
    for stem, (py, ipynb) in _pairs(folder).items():
        if stems is not None and stem not in stems:
            continue
        if py is None:
            problems.append(f"{stem}.ipynb has no {stem}.py twin")
        elif ipynb is None:
            problems.append(f"{stem}.py has no {stem}.ipynb twin")
        else:
            diff = _first_difference(cell_inputs(read_source(py)), cell_inputs(_read_ipynb(ipynb)))
            if diff:
                problems.append(f"{stem}.ipynb is out of sync with {stem}.py: {diff}")
    return problems


def require_in_sync(folder: str | Path = NOTEBOOKS, stems: Sequence[str] | None = None) -> None:
    """Raise NotebooksOutOfSync, naming each notebook and the fix, unless every pair (of `stems`) agrees."""
    problems = check_pairs(folder, stems)
    if problems:
        raise NotebooksOutOfSync(
            f"notebooks in {folder} are out of sync with their .py sources:\n  " + "\n  ".join(problems)
            + f"\nthe .py is the source: run `{SYNC_COMMAND}` (or `jupytext --sync notebooks/*.py`) and commit both")


def _config(folder: Path):
    """notebooks/jupytext.toml as jupytext reads it (headerless .py if there is none)."""
    from jupytext.config import JupytextConfiguration, load_jupytext_config

    return load_jupytext_config(str(folder)) or JupytextConfiguration(notebook_metadata_filter="-all")


def _ipynb_from(py: Path, ipynb: Path | None):
    """The .ipynb for `py`: its cells, the old .ipynb's notebook metadata and the ids of unchanged
    cells (so a sync touches only what changed), no outputs (they are never committed)."""
    import nbformat
    from jupytext.combine import combine_inputs_with_outputs

    nb = read_source(py)
    if ipynb is not None:
        nb = combine_inputs_with_outputs(nb, _read_ipynb(ipynb), fmt=FORMAT)
    else:
        nb.metadata = nbformat.from_dict({"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                         "language": "python"}, "language_info": {"name": "python"}})
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    return nb


def _has_outputs(nb) -> bool:
    return any(c.get("outputs") or c.get("execution_count") is not None for c in nb.cells if c.cell_type == "code")


def sync(folder: str | Path = NOTEBOOKS) -> list[Path]:
    """Make every pair agree; returns the files written.

    The .py wins: each .ipynb whose cells differ from its .py (or that is missing) is rewritten
    from it, and one that merely carries outputs (saved from JupyterLab) is cleared, as the
    committed .ipynb never has any. An .ipynb without a .py (a notebook just created in
    JupyterLab) gets its .py."""
    import jupytext
    import nbformat

    folder = Path(folder)
    written = []
    for stem, (py, ipynb) in _pairs(folder).items():
        if py is None:
            py = folder / f"{stem}.py"
            jupytext.write(_read_ipynb(ipynb), py, fmt=FORMAT, config=_config(folder))
            written.append(py)
            continue
        if ipynb is not None:
            old = _read_ipynb(ipynb)
            if cell_inputs(read_source(py)) == cell_inputs(old) and not _has_outputs(old):
                continue
        nb = _ipynb_from(py, ipynb)
        ipynb = folder / f"{stem}.ipynb"
        nbformat.validate(nb)
        nbformat.write(nb, ipynb)
        written.append(ipynb)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pemscl.notebooks", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["check", "sync"])
    ap.add_argument("--folder", default=str(NOTEBOOKS), help="folder holding the pairs (default: notebooks/)")
    a = ap.parse_args(argv)
    if a.command == "sync":
        for p in sync(a.folder):
            print("wrote", p)
        return 0
    problems = check_pairs(a.folder)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"fix: {SYNC_COMMAND}", file=sys.stderr)
        return 1
    print("all notebook pairs in sync")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

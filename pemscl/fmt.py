"""How numbers are written: F1 and other fractions as percentages, differences as signed points,
intervals and Markdown tables. One place, so that the console, the notebooks, the results files,
the model card and the docs write a score the same way.

    pct(0.5234, 0.0123)              '52.3 ± 1.2'
    pct(0.5234, digits=2)            '52.34'
    pts(0.0123)                      '+1.23'
    interval(0.0123, -0.004, 0.028)  '+1.23 [-0.40, +2.80]'
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

MISSING = "–"  # what a missing number reads as


def pct(x: float | None, sd: float | None = None, *, digits: int = 1, missing: str | None = MISSING) -> str | None:
    """A fraction in % ('55.3'), with its sd when there is one ('55.3 ± 0.4'); `missing` for None."""
    if x is None:
        return missing
    return f"{100 * x:.{digits}f}" + ("" if sd is None else f" ± {100 * sd:.{digits}f}")


def pts(x: float | None, *, digits: int = 2, sign: bool = True, missing: str | None = None) -> str | None:
    """A difference of fractions in points: 0.0123 -> '+1.23'; `missing` for None."""
    if x is None:
        return missing
    return f"{100 * x:{'+' if sign else ''}.{digits}f}"


def interval(diff: float | None, low: float | None, high: float | None, *, digits: int = 2) -> str | None:
    """'+1.23 [-0.40, +2.80]' in points; the bare difference when there is no interval."""
    if diff is None:
        return None
    bounds = "" if low is None or high is None else f" [{pts(low, digits=digits)}, {pts(high, digits=digits)}]"
    return pts(diff, digits=digits) + bounds


def row_md(cells: Sequence[Any]) -> str:
    """One Markdown table row; a `|` inside a cell (as in 1/|P|) is escaped, or it would split the
    cell and shift the row."""
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def table_md(rows: Sequence[Mapping], columns: Sequence[tuple[str, Any]]) -> str:
    """A Markdown table; columns are (header, key or function of the row). No rows: a line saying
    so (a bare header row reads like a rendering fault)."""
    if not rows:
        return "_No runs of this table are recorded yet._"
    head = row_md([h for h, _ in columns])
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = []
    for r in rows:
        cells = []
        for _, get in columns:
            v = get(r) if callable(get) else r.get(get)
            cells.append(MISSING if v is None else v)
        body.append(row_md(cells))
    return "\n".join([head, sep, *body])

"""Name -> thing tables that users extend: the losses and their presets (pemscl.lossspec) and
the data regimes (pemscl.data). One way to claim a name, look one up and give one back, so
every registry refuses and explains the same way."""

from __future__ import annotations

from typing import Any, Iterable, MutableMapping


def claim(table: MutableMapping[str, Any], name: Any, *, what: str, replace: bool = False,
          flag: str = "replace") -> str:
    """`name`, checked to be a free name of `table` (or `replace`, whose keyword is `flag`):
    a ValueError otherwise. Storing is the caller's, once its other checks have passed."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a {what} name must be a non-empty string, got {name!r}")
    if name in table and not replace:
        raise ValueError(f"{what} {name!r} is already registered; pass {flag}=True to overwrite it")
    return name


def lookup(table: MutableMapping[str, Any], name: Any, *, what: str, known: Iterable[str] | None = None) -> Any:
    """table[name], or a ValueError naming the unknown `what` and the known names (default:
    the table's, sorted)."""
    if name not in table:
        names = sorted(table) if known is None else list(known)
        raise ValueError(f"unknown {what} {name!r}; known: {names}")
    return table[name]

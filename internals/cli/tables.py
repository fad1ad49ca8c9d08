"""Tables for people that fit the terminal without cutting a number short.

rich squeezes every column of a table that is wider than the terminal and ends cells with "…": at 80 columns
the statistics table showed `-4.86…` for -4.867e-08, which reads as -4.86. Here a value is never cut: a name
wraps onto more lines, and when the row still does not fit, the least needed columns are left out and a
line under the table says which (the JSON output always has everything). Written to a pipe or a file
(no terminal, no COLUMNS), nothing is left out: the table takes the width it needs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

#: A name column is never narrower than this (longer names wrap onto more lines).
NAME_MIN_WIDTH = 24


@dataclass(frozen=True)
class Column:
    """One column: its header, alignment, and how long it stays when the terminal is narrow."""

    header: str
    justify: str = "right"
    #: Columns with the lowest `keep` are left out first; the name column (`wraps`) always stays.
    keep: int = 0
    #: The column's values wrap onto more lines instead of widening the table (tensor names).
    wraps: bool = False


def output_console() -> Console:
    """The console for a command's table: the terminal's width, or (written to a pipe or a file without
    COLUMNS) as wide as the table needs, so that `stats FILE > table.txt` keeps every column."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console()
    return Console(width=100_000)


def cell(value: Any, fmt: str = ".4g") -> str:
    """A table cell: "-" for a missing value, a float in `fmt`, anything else as it prints."""
    if value is None:
        return "-"
    return format(value, fmt) if isinstance(value, float) else str(value)


def _widths(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[int]:
    """Each column's width: its widest cell or header (a wrapping column at most NAME_MIN_WIDTH)."""
    widths = [max([len(c.header), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    return [min(w, NAME_MIN_WIDTH) if c.wraps else w for c, w in zip(columns, widths)]


def _shown(columns: Sequence[Column], widths: list[int], width: int) -> list[int]:
    shown = list(range(len(columns)))
    by_need = sorted((i for i, c in enumerate(columns) if not c.wraps), key=lambda i: (columns[i].keep, -i))
    while sum(widths[i] + 3 for i in shown) + 1 > width and by_need:
        shown.remove(by_need.pop(0))
    return shown


def fitted(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> list[int]:
    """The indices of the columns shown at `width` characters: all of them when they fit (with the heavy-head
    box: 3 characters per column and 1), else without the columns of lowest `keep` (the later of two equal
    ones first) until the rest fits, or only the wrapping columns are left."""
    return _shown(columns, _widths(columns, rows), width)


def print_table(console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> None:
    """`rows` as a table that fits `console` (see the module docstring), and a line naming any column left out."""
    widths = _widths(columns, rows)
    shown = _shown(columns, widths, console.width)
    table = Table(title=title, title_justify="left")
    for i in shown:
        c = columns[i]
        table.add_column(c.header, justify=c.justify,  # type: ignore[arg-type]
                         overflow="fold" if c.wraps else "ellipsis", no_wrap=not c.wraps, min_width=widths[i])
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    console.print(table)
    hidden = [columns[i].header for i in range(len(columns)) if i not in shown]
    if hidden:
        console.print(f"[dim]not shown at this width: {', '.join(hidden)} (--json has every field)[/dim]",
                      highlight=False)


__all__ = ["Column", "NAME_MIN_WIDTH", "cell", "fitted", "output_console", "print_table"]

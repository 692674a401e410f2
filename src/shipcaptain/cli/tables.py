"""The CLI's tables, rendered with rich to fit the terminal.

A table is as wide as its content needs and never wider than the terminal: long cells
(summaries, labels, lists of releases) wrap inside their column, so the columns stay
aligned at any width. On a terminal the width is the terminal's (``COLUMNS`` when set);
when the output is not a terminal (a pipe, a file) and ``COLUMNS`` is not set, nothing
wraps, as before. ``--json`` is the format for programs; these tables are for people.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import click

if TYPE_CHECKING:
    from rich.text import Text

#: the width of a table that goes to no terminal (nothing wraps)
UNBOUNDED = 10_000


@dataclass(frozen=True)
class Column:
    """A column: its header, alignment, and whether its cells may wrap (ids and times
    do not: they are copied and compared whole)."""

    header: str
    justify: Literal["left", "right"] = "left"
    wrap: bool = False


def width() -> int:
    """The width tables fit: ``COLUMNS`` if set, else the terminal's, else unbounded."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return UNBOUNDED


def cell(text: str, color: str | None = None, *, bold: bool = False) -> Text:
    """A cell's text, in ``color`` (a click/rich color name) when the output shows color."""
    from rich.text import Text

    return Text(text, style=" ".join(x for x in ("bold" if bold else "", color or "") if x))


#: a wrapping column keeps this many cells of its width, if it needs them, before the
#: others give up theirs (a date, a short name, stays whole)
FLOOR = 10


def fit(natural: Sequence[int], wraps: Sequence[bool], available: int) -> list[int] | None:
    """The widths of columns of ``natural`` widths in ``available`` cells (gaps excluded):
    None when they fit as they are; else the columns that may wrap give up width, each
    keeping up to :data:`FLOOR`, then the rest shared in proportion to what they need."""
    if sum(natural) <= available:
        return None
    widths = list(natural)
    flexible = [i for i, wrap in enumerate(wraps) if wrap]
    budget = available - sum(w for i, w in enumerate(natural) if not wraps[i])
    floors = {i: min(natural[i], FLOOR) for i in flexible}
    if budget <= sum(floors.values()):
        for i in flexible:  # not even the floors fit: share what there is
            widths[i] = max(1, budget * floors[i] // max(1, sum(floors.values())))
        return widths
    spare = budget - sum(floors.values())
    wanted = {i: natural[i] - floors[i] for i in flexible}
    total = max(1, sum(wanted.values()))
    for i in flexible:
        widths[i] = floors[i] + spare * wanted[i] // total
    return widths


def print_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Any]],
    *,
    header: bool = True,
) -> None:
    """Print ``rows`` (of ``str`` or :func:`cell` texts) under ``columns`` to standard
    output, fitted to :func:`width`."""
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table

    def length(value: Any) -> int:
        return max((cell_len(line) for line in str(value).splitlines()), default=0)

    natural = [
        max([length(c.header) if header else 0, *(length(row[i]) for row in rows)])
        for i, c in enumerate(columns)
    ]
    wraps = [c.wrap for c in columns]
    # two spaces between columns when everything fits so; one when cells must wrap
    gap = 2 if fit(natural, wraps, width() - 2 * (len(columns) - 1)) is None else 1
    widths = fit(natural, wraps, width() - gap * (len(columns) - 1))
    table = Table(
        box=None,
        show_header=header,
        header_style="bold",
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=gap == 1,
        show_edge=False,
    )
    for i, c in enumerate(columns):
        table.add_column(
            c.header,
            justify=c.justify,
            no_wrap=not c.wrap,
            overflow="fold",
            width=None if widths is None else widths[i],
        )
    for row in rows:
        table.add_row(*row)
    terminal = sys.stdout.isatty()
    console = Console(
        file=io.StringIO(), width=width(), force_terminal=terminal, highlight=False, emoji=False
    )
    console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for line in text.splitlines():
        click.echo(line.rstrip())  # a cell's padding, not content

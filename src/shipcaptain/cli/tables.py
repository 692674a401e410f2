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
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import click

if TYPE_CHECKING:
    from rich.console import RenderableType
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
    #: cells the column takes even when its content is narrower (aligns what is printed
    #: in parts, such as a followed release's timeline)
    min_width: int = 0


def width() -> int:
    """The width tables fit: ``COLUMNS`` if set, else the terminal's, else unbounded."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        # what shutil.get_terminal_size does after COLUMNS, without importing shutil (it
        # imports the compression modules: a few ms of every table, issue 27)
        try:
            terminal = os.get_terminal_size(sys.stdout.fileno()).columns
        except (OSError, ValueError):
            terminal = 0
        return terminal or 80
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


def table_of(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Any]],
    *,
    header: bool = True,
    indent: int = 0,
    gap: int | None = None,
    fit_to: int | None = None,
) -> RenderableType:
    """A table of ``rows`` (of ``str`` or :func:`cell` texts) under ``columns``, fitted to
    ``fit_to`` cells (:func:`width` unless given) after ``indent`` blank cells on the left.
    ``gap``: cells between two columns; unless given, two when everything fits so, one
    when cells must wrap."""
    from rich.cells import cell_len
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    def length(value: Any) -> int:
        return max((cell_len(line) for line in str(value).splitlines()), default=0)

    available = (fit_to or width()) - indent
    natural = [
        max([length(c.header) if header else 0, c.min_width, *(length(row[i]) for row in rows)])
        for i, c in enumerate(columns)
    ]
    wraps = [c.wrap for c in columns]
    if gap is None:
        gap = 2 if fit(natural, wraps, available - 2 * (len(columns) - 1)) is None else 1
    widths = fit(natural, wraps, available - gap * (len(columns) - 1))
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
            min_width=c.min_width or None,
            width=None if widths is None else widths[i],
        )
    for row in rows:  # text as it is: a "[step]" is no console markup
        table.add_row(*(Text(v) if isinstance(v, str) else v for v in row))
    return Padding(table, (0, 0, 0, indent)) if indent else table


def lines_of(renderable: RenderableType, *, fit_to: int | None = None) -> list[str]:
    """The lines ``renderable`` prints as on standard output (in color on a terminal),
    without the padding after the last cell."""
    from rich.console import Console

    console = Console(
        file=io.StringIO(),
        width=fit_to or width(),
        force_terminal=sys.stdout.isatty(),
        highlight=False,
        emoji=False,
    )
    console.print(renderable)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return [line.rstrip() for line in text.splitlines()]  # a cell's padding, not content


def print_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Any]],
    *,
    header: bool = True,
    indent: int = 0,
    gap: int | None = None,
) -> None:
    """Print ``rows`` (of ``str`` or :func:`cell` texts) under ``columns`` to standard
    output, fitted to :func:`width` (see :func:`table_of`)."""
    for line in lines_of(table_of(columns, rows, header=header, indent=indent, gap=gap)):
        click.echo(line)

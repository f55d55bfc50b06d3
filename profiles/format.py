"""How numbers and tables read, everywhere llamaduel prints them (command line, app, exports).

One formatter per quantity, so the app and the command line show the same ``x120`` and
the same ``801 t/s``; tables go through rich's ``Table`` (Markdown for files and pipes).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table

from backends.text import printable


def format_rate(value: float | None) -> str:
    """Tokens per second the way people read them: 10,314, 801, 95.2, 3.41; '-' if unknown."""
    if value is None or not math.isfinite(value):
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_depth(depth: int) -> str:
    """``4K`` for 4096; plain numbers otherwise."""
    if depth and depth % 1024 == 0:
        return f"{depth // 1024}K"
    return str(depth)


def format_ratio(ratio: float) -> str:
    """A lead in words a reader compares at a glance: ``+12%`` below 2x, ``x3.1`` above."""
    if not math.isfinite(ratio) or ratio <= 0:
        return "-"
    if ratio >= 2:
        return f"x{ratio:.1f}" if ratio < 100 else f"x{ratio:,.0f}"
    return f"{(ratio - 1) * 100:+.0f}%" if abs(ratio - 1) >= 0.01 else f"{(ratio - 1) * 100:+.1f}%"


def format_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


def _cell(text: object) -> str:
    return "\n".join(printable(line) for line in str(text).split("\n"))


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, markdown: bool = False,
                 right: Sequence[int] = (), width: int = 10_000) -> str:
    """A table as text at its natural width: Markdown (files, pipes, exports) or a plain
    terminal table whose cells may hold several lines. Cells are data: control characters
    escaped, rich markup never interpreted."""
    table = Table(box=box.MARKDOWN if markdown else box.SIMPLE_HEAD, show_edge=markdown,
                  pad_edge=markdown, highlight=False)
    for index, header in enumerate(headers):
        table.add_column(printable(header), justify="right" if index in right else "left",
                         no_wrap=True)
    for row in rows:
        # Markdown has no multi-line cells: their lines are joined there.
        table.add_row(*(_cell(c).replace("\n", "; ") if markdown else _cell(c) for c in row))
    buffer = io.StringIO()
    Console(file=buffer, width=width, no_color=True, color_system=None, markup=False,
            emoji=False, highlight=False, legacy_windows=False).print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()).strip("\n")

"""Controls whose state shows in the text itself, so it reads without colour (NO_COLOR):
a check box drawn ``[x]``/``[ ]``, a selection list with the same boxes, and a table with
a ``>`` in front of the cursor row."""

from __future__ import annotations

from rich.segment import Segment
from rich.text import Text
from textual.content import Content
from textual.coordinate import Coordinate
from textual.strip import Strip
from textual.widgets import Checkbox, DataTable, OptionList, SelectionList
from textual.widgets.option_list import OptionDoesNotExist

CURSOR = ">"
CHECKED, UNCHECKED = "[x]", "[ ]"


class TickBox(Checkbox):
    """A check box that says ``[x]`` or ``[ ]``."""

    @property
    def _button(self) -> Content:
        return Content((CHECKED if self.value else UNCHECKED) + " ")


class TickList(SelectionList[str]):
    """A selection list whose options start with ``[x]`` or ``[ ]``."""

    def render_line(self, y: int) -> Strip:
        line = OptionList.render_line(self, y)
        index = self.scroll_offset.y + y
        try:
            option = self.get_option_at_index(index)
        except OptionDoesNotExist:
            return line
        mark = CHECKED if option.value in self.selected else UNCHECKED
        style = next(iter(line)).style if line.cell_length else None
        return Strip([Segment(mark + " ", style), *line])


class MarkedTable(DataTable[str | Text]):
    """A row-cursor table whose first column shows ``>`` on the cursor row."""

    MARK_COLUMN = "cursor"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", **kwargs)  # type: ignore[arg-type]
        self._marked: object = None

    def add_marked_columns(self, *labels: str) -> None:
        self.add_column("", width=1, key=self.MARK_COLUMN)
        self.add_columns(*labels)

    def add_marked_row(self, *cells: str, key: str) -> None:
        """Cells are plain text (never markup: names and paths come from files)."""
        self.add_row(" ", *(Text(cell) for cell in cells), key=key)

    def watch_cursor_coordinate(self, old: Coordinate, new: Coordinate) -> None:
        super().watch_cursor_coordinate(old, new)
        self.refresh_marker()

    def refresh_marker(self) -> None:
        """Put the marker on the cursor row (call after rows were replaced)."""
        if not self.row_count or self.MARK_COLUMN not in self.columns:
            self._marked = None
            return
        row = min(self.cursor_row, self.row_count - 1)
        key = self.coordinate_to_cell_key(Coordinate(row, 0)).row_key
        if key == self._marked:
            return
        if self._marked is not None and self._marked in self.rows:
            self.update_cell(self._marked, self.MARK_COLUMN, " ")  # type: ignore[arg-type]
        self.update_cell(key, self.MARK_COLUMN, CURSOR)
        self._marked = key

    def clear(self, columns: bool = False) -> MarkedTable:
        self._marked = None
        super().clear(columns)
        return self

    def selected_key(self) -> str | None:
        """The cursor row's key, or None when the table is empty."""
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

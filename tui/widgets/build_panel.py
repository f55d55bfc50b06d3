"""One build's side of the race: what it runs now, its results and its failures."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import DataTable, Static

from tui.screens.run_state import BuildProgress, RunState, format_rate
from tui.widgets._css import css_beside


class BuildPanel(Vertical):
    """Watches the run state and shows the part of it that belongs to one build."""

    DEFAULT_CSS = css_beside(__file__)

    run_state: reactive[RunState] = reactive(RunState, always_update=True)

    def __init__(self, build_name: str, description: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.build_name = build_name
        self.description = description
        self.border_title = build_name
        self._rows_shown = 0

    def compose(self) -> ComposeResult:
        yield Static(self.description, classes="build-description")
        yield Static("waiting", classes="build-activity")
        table = DataTable(cursor_type="row", zebra_stripes=False, show_cursor=False)
        table.add_columns("test", "tok/s", "±")
        yield table

    def watch_run_state(self, state: RunState) -> None:
        progress = state.build(self.build_name)
        if progress is None or not self.is_mounted:
            return
        self.query_one(".build-activity", Static).update(_activity_line(progress, state))
        self._show_rows(progress)
        self.set_class(bool(progress.failures), "-has-failures")

    def _show_rows(self, progress: BuildProgress) -> None:
        table = self.query_one(DataTable)
        rows = _rows(progress)
        if len(rows) < self._rows_shown:
            table.clear()
            self._rows_shown = 0
        for row in rows[self._rows_shown:]:
            table.add_row(*row)
        self._rows_shown = len(rows)
        if rows:
            table.move_cursor(row=len(rows) - 1, animate=False)


def _activity_line(progress: BuildProgress, state: RunState) -> str:
    finished = len(progress.results) + len(progress.failures)
    count = f"{finished}/{len(state.points)} points"
    if progress.current is not None:
        detail = f" ({progress.activity})" if progress.activity else ""
        return f"▶ {progress.current.name}{detail}  ·  {count}"
    if state.status == "paused":
        return f"paused  ·  {count}"
    if progress.failures:
        return f"{count}, {len(progress.failures)} failed"
    return count if finished else "waiting"


def _rows(progress: BuildProgress) -> list[tuple[str, ...]]:
    """Results and failures in the order they happened (results first within a point)."""
    rows = []
    for result in progress.results:
        rows.append((result.point.name, format_rate(result.avg_ts), format_rate(result.stddev_ts)))
    for failure in progress.failures:
        rows.append((failure.point.name, "FAILED", _short(failure.reason, 40)))
    return rows


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"

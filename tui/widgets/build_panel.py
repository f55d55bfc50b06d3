"""One build's side of the race: what it runs now, its results and its failures."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import DataTable, Static

from tui.state.format import format_rate, short
from tui.state.run import BuildProgress, RunState
from tui.widgets._css import css_beside


class BuildPanel(Vertical):
    """Watches the run state and shows the part of it that belongs to one build."""

    DEFAULT_CSS = css_beside(__file__)

    run_state: reactive[RunState] = reactive(RunState, always_update=True, repaint=False)

    def __init__(self, build_name: str, description: str = "", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.build_name = build_name
        self.description = description
        self.border_title = build_name
        self.border_subtitle = description  # backend, device, version: on the bottom edge
        self._shown: tuple = ()
        self._points: tuple = ()
        self._cells: dict[str, tuple[str, str]] = {}

    def compose(self) -> ComposeResult:
        yield Static("waiting", classes="build-activity")
        yield Static("", classes="build-check")
        yield DataTable(cursor_type="row", zebra_stripes=False, show_cursor=False)

    def on_mount(self) -> None:
        # Fixed column widths and a row per test point from the start: a result then
        # changes cells, never the table's size, so the screen needs no new layout.
        table = self.query_one(DataTable)
        table.add_column("test", width=14, key="test")
        table.add_column("tok/s", width=7, key="rate")
        table.add_column("±", width=8, key="spread")

    def watch_run_state(self, state: RunState) -> None:
        progress = state.build(self.build_name)
        if progress is None or not self.is_mounted:
            return
        # Another build's event leaves this build's frozen progress as it was: skip it.
        key = (progress, state.points, state.status)
        if key == self._shown:
            return
        self._shown = key
        activity = self.query_one(".build-activity", Static)
        activity.update(_activity_line(progress, state), layout=False)
        self._show_check(progress.check)
        self._show_cells(progress, state)
        self.set_class(bool(progress.failures), "-has-failures")

    def _show_check(self, line: str) -> None:
        check = self.query_one(".build-check", Static)
        if str(check.content) != line:
            check.update(line)
            check.display = bool(line)  # no line, no room taken: runs without a check
            check.set_class(line.startswith(("check: SUSPECT", "check: failed")), "-problem")

    def _show_cells(self, progress: BuildProgress, state: RunState) -> None:
        table = self.query_one(DataTable)
        if self._points != state.points:
            table.clear()
            self._points = state.points
            self._cells = {}
            for point in state.points:
                table.add_row(point.name, "·", "", key=point.key)
        cells = _cells(progress)
        for point_key, (rate, spread) in cells.items():
            if self._cells.get(point_key) != (rate, spread) and point_key in table.rows:
                table.update_cell(point_key, "rate", rate)
                table.update_cell(point_key, "spread", spread)
        self._cells = cells
        focus = progress.current or (progress.results[-1].point if progress.results else None)
        if focus is not None and focus.key in table.rows:
            table.move_cursor(row=table.get_row_index(focus.key), animate=False)


def _cells(progress: BuildProgress) -> dict[str, tuple[str, str]]:
    """tok/s and spread (or the failure) for each finished or running test point."""
    cells = {}
    if progress.current is not None:
        cells[progress.current.key] = ("▶", "running")
    for result in progress.results:
        cells[result.point.key] = (format_rate(result.avg_ts), format_rate(result.stddev_ts))
    for failure in progress.failures:
        cells[failure.point.key] = ("FAILED", short(failure.reason, 8))
    return cells


def _activity_line(progress: BuildProgress, state: RunState) -> str:
    finished = len(progress.results) + len(progress.failures)
    count = f"{finished}/{len(state.points)} points"
    if progress.current is not None:
        detail = f" ({progress.activity})" if progress.activity else ""
        return f"▶ {progress.current.name}{detail}  ·  {count}"
    if state.status == "paused":
        return f"paused  ·  {count}"
    if progress.failures:
        last = progress.failures[-1]
        return f"{count}, {len(progress.failures)} failed ({last.point.name}: {short(last.reason, 40)})"
    return count if finished else "waiting"

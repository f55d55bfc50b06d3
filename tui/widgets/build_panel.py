"""One build's side of the race: what it runs now, its results and its failures."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static

from profiles.format import format_rate
from tui.state.format import short
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
        self._shown: tuple[object, ...] = ()
        self._activity = ""
        self._table_text = ""

    def compose(self) -> ComposeResult:
        yield Static("waiting", classes="build-activity")
        yield Static("", classes="build-check")
        yield Static("", classes="build-table")

    def watch_run_state(self, state: RunState) -> None:
        progress = state.build(self.build_name)
        if progress is None or not self.is_mounted:
            return
        # Another build's event leaves this build's frozen progress as it was: skip it.
        key = (progress, state.points, state.status)
        if key == self._shown:
            return
        self._shown = key
        activity = _activity_line(progress, state)
        if activity != self._activity:
            self._activity = activity
            self.query_one(".build-activity", Static).update(activity, layout=False)
        self._show_check(progress.check)
        self._show_rows(progress, state)
        self.set_class(bool(progress.failures), "-has-failures")

    def _show_check(self, line: str) -> None:
        check = self.query_one(".build-check", Static)
        if str(check.content) != line:
            check.update(line)
            check.display = bool(line)  # no line, no room taken: runs without a check
            check.set_class(line.startswith(("check: SUSPECT", "check: failed")), "-problem")

    def _show_rows(self, progress: BuildProgress, state: RunState) -> None:
        """A row per test point, the one under way marked ``>``; plain text, redrawn only
        when a cell changed (a table widget costs far more per update)."""
        table = self.query_one(".build-table", Static)
        cells = _cells(progress)
        focus = progress.current or (progress.results[-1].point if progress.results else None)
        room = max(1, table.size.height - 1) if table.size.height else len(state.points)
        rows = list(state.points)
        at = next((i for i, p in enumerate(rows) if focus and p.key == focus.key), 0)
        first = max(0, min(at - room // 2, len(rows) - room))
        lines = [f"  {'test':14} {'tok/s':>8} {'±':>8}"]
        for point in rows[first:first + room]:
            rate, spread = cells.get(point.key, ("·", ""))
            mark = ">" if focus is not None and point.key == focus.key else " "
            lines.append(f"{mark} {point.name:14} {rate:>8} {spread:>8}")
        text = "\n".join(lines)
        if text != self._table_text:
            self._table_text = text
            table.update(Text(text), layout=False)

    def on_resize(self) -> None:
        self._shown = ()  # a new height shows another window of rows
        self.watch_run_state(self.run_state)


def _cells(progress: BuildProgress) -> dict[str, tuple[str, str]]:
    """tok/s and spread (or the failure) for each finished or running test point."""
    cells = {}
    if progress.current is not None:
        cells[progress.current.key] = ("…", "running")
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
        return f"> {progress.current.name}{detail}  ·  {count}"
    if state.status == "paused":
        return f"paused  ·  {count}"
    if progress.failures:
        last = progress.failures[-1]
        return f"{count}, {len(progress.failures)} failed ({last.point.name}: {short(last.reason, 40)})"
    return count if finished else "waiting"

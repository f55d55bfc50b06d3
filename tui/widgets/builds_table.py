"""The Setup screen's builds: a table of the builds found, the story of the one under the
cursor, and a field to add one. Space chooses a build for the run, Delete removes it."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from tui.state.format import short
from tui.widgets.marks import CHECKED, UNCHECKED, MarkedTable

if TYPE_CHECKING:
    from backends.builds import BuildInfo


class BuildsTable(MarkedTable):
    BINDINGS = [Binding("space", "toggle_build", "use/skip"), Binding("delete", "remove", "remove")]

    class Toggled(Message):
        """Space (or Enter) on a build: choose it for the run, or leave it out."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    class Removed(Message):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def action_toggle_build(self) -> None:
        if (name := self.selected_key()) is not None:
            self.post_message(self.Toggled(name))

    def action_remove(self) -> None:
        if (name := self.selected_key()) is not None:
            self.post_message(self.Removed(name))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("toggle_build", "remove"):
            return self.row_count > 0
        return True


class BuildsSection(Vertical):
    """The builds table, a detail line and the add-a-build field."""

    class AddRequested(Message):
        """Enter in the add field: ``NAME=FOLDER`` or ``FOLDER``."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, **kwargs: object) -> None:
        super().__init__(classes="section", **kwargs)  # type: ignore[arg-type]
        self.border_title = "Builds · Space use/skip · Delete remove"
        self._builds: dict[str, BuildInfo] = {}
        self._chosen: frozenset[str] = frozenset()
        self._width = 0

    def compose(self) -> ComposeResult:
        yield BuildsTable(id="builds-table")
        yield Static("", id="build-detail", classes="hint")
        yield Input(placeholder="add a build: NAME=FOLDER or FOLDER, then Enter",
                    id="build-path", compact=True)

    def on_mount(self) -> None:
        self.query_one(BuildsTable).add_marked_columns(
            "use", "name", "backend", "devices", "VRAM", "version", "status")

    def show(self, builds: Sequence[BuildInfo], chosen: Collection[str]) -> None:
        """List ``builds``, ticking those in ``chosen``; the cursor stays where it was."""
        table = self.query_one(BuildsTable)
        self._builds = {b.name: b for b in builds}
        self._chosen = frozenset(chosen)
        self._width = self.size.width
        row = table.cursor_row
        table.clear()
        rows = [(CHECKED if b.name in chosen else UNCHECKED, b.name, b.backend,
                 ", ".join(d.name for d in b.devices) or "CPU", _vram(b), b.version)
                for b in builds]
        # The status takes the room the other columns leave (the detail line has it all).
        headers = ("use", "name", "backend", "devices", "VRAM", "version")
        used = sum(max([len(h), *(len(r[i]) for r in rows)]) + 2
                   for i, h in enumerate(headers)) + 3 + 4
        room = max(16, (self.size.width or 120) - used)
        for build, cells in zip(builds, rows, strict=False):
            status = short(_status(build), room)
            table.add_marked_row(*cells, status, key=build.name)
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        table.refresh_marker()
        self._show_detail(table.selected_key())

    def on_resize(self) -> None:
        if self._builds and self.size.width != self._width:
            self.show(list(self._builds.values()), self._chosen)

    @on(DataTable.RowSelected, "#builds-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(BuildsTable.Toggled(str(event.row_key.value)))

    @on(DataTable.RowHighlighted, "#builds-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(str(event.row_key.value))

    def _show_detail(self, name: str | None) -> None:
        """The whole story of the build under the cursor: folder, problem or note."""
        build = self._builds.get(name or "")
        detail = self.query_one("#build-detail", Static)
        if build is None:
            detail.update("")
            return
        what = _status(build) if build.problem or build.fallback or build.note else (
            build.version_text.splitlines() or [""])[0]
        detail.update(f"{build.name}: {build.folder}" + (f" — {what}" if what else ""))
        detail.set_class(bool(build.problem or build.fallback), "problem")

    @on(Input.Submitted, "#build-path")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.post_message(self.AddRequested(event.value.strip()))

    def clear_field(self) -> None:
        self.query_one("#build-path", Input).value = ""


def _status(build: BuildInfo) -> str:
    """The problem, the flag of a GPU build that found no device, the note, or ok."""
    if build.problem:
        return build.problem
    if build.fallback:
        return f"FLAGGED: {build.fallback}"
    return build.note or "ok"


def _vram(build: BuildInfo) -> str:
    vram = sum(d.total_mib for d in build.devices if not d.is_software)
    return f"{vram / 1024:.0f} GiB" if vram else "-"

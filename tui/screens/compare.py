"""Two profiles side by side: their verdicts and tables. Escape goes back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui.screens import profile_actions as actions
from tui.screens.results import table_rows

if TYPE_CHECKING:
    from profiles.model import Profile


class CompareScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "back")]

    def __init__(self, first: Profile, second: Profile) -> None:
        super().__init__()
        self.profiles = (first, second)

    def compose(self) -> ComposeResult:
        with Horizontal(id="compare"):
            for index, profile in enumerate(self.profiles):
                with VerticalScroll(classes="compare-side", id=f"compare-{index}"):
                    host = profile.host.gpu_name or profile.host.cpu or ""
                    yield Static(f"{profile.name}\n{profile.model.file_name} · "
                                 f"{profile.created[:10]} · {host}", classes="compare-title")
                    rec = profile.recommendation
                    yield Static("\n".join(rec.summary) if rec else "no recommendation",
                                 classes="compare-summary")
                    yield DataTable(cursor_type="row", classes="compare-table")
        yield Footer()

    def on_mount(self) -> None:
        for index, profile in enumerate(self.profiles):
            columns, rows = table_rows(actions.state_from_profile(profile))
            table = self.query_one(f"#compare-{index} DataTable", DataTable)
            table.add_columns(*columns)
            table.add_rows(rows)

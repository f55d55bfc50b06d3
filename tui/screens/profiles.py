"""Saved profiles: list, open, compare two side by side, rename, delete, export, import."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui.screens import commands as cmd


class ProfilesScreen(cmd.CommandsMixin, Screen):
    CSS_PATH = "profiles.tcss"
    COMMAND_MESSAGES = (cmd.OpenProfile, cmd.CompareProfiles, cmd.RenameProfile,
                        cmd.DeleteProfile, cmd.ExportProfile, cmd.ImportBenchFile)
    BINDINGS = cmd.bindings(COMMAND_MESSAGES)

    def compose(self) -> ComposeResult:
        yield Static("Profiles", classes="section-title")
        yield DataTable(cursor_type="row", id="profiles-table")
        yield Footer()

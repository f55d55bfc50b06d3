"""Every key and command, generated from the command messages themselves."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from tui.screens import commands as cmd

SECTIONS = (
    ("Everywhere", cmd.APP_COMMANDS),
    ("Setup", (cmd.AddBuild, cmd.AddModelFolder, cmd.StartSweep)),
    ("Results", (cmd.SaveProfile, cmd.ExportResults, cmd.CopyLaunchCommand)),
    ("Profiles", (cmd.OpenProfile, cmd.CompareProfiles, cmd.RenameProfile, cmd.DeleteProfile,
                  cmd.ExportProfile, cmd.ImportBenchFile)),
)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-body"):
            yield Static("llamaduel keys. Ctrl-P opens the command palette: every action "
                         "is there too. Escape closes this.", id="help-title")
            table = DataTable(cursor_type="row", id="help-table")
            table.add_columns("where", "key", "command", "what it does")
            for section, commands in SECTIONS:
                for index, command in enumerate(commands):
                    table.add_row(section if index == 0 else "", cmd.key_label(command.key),
                                  command.title, command.help)
            table.add_row("", "Tab / Shift-Tab", "Focus", "Move between widgets")
            table.add_row("", "Ctrl-P", "Palette", "Search every command by name")
            yield table

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    def action_dismiss(self) -> None:
        self.dismiss()

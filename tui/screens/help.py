"""Every key and command, generated from the command classes themselves."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from tui import actions as cmd

# Keys that belong to a widget rather than a command: (where, key, what, help).
WIDGET_KEYS = (
    ("Setup", "Space / Enter", "Use build", "Choose the build under the cursor, or leave it out"),
    ("Setup", "Delete", "Remove build", "Take the build under the cursor off the list"),
    ("Setup", "Enter", "Start", "In a grid field: start the run (it is checked first)"),
    ("Race", "Space", "Tick build", "In the builds list: race this build, or not"),
    ("Race", "Enter", "Race", "In the prompt: start the race"),
    ("Any field", "Escape", "Leave field", "Back to the screen's keys (q, 1-5, ?)"),
    ("", "Tab / Shift-Tab", "Focus", "Move between widgets"),
    ("", "Ctrl-P", "Palette", "Search every command by name"),
)
DEMO = ("d (or llamaduel --demo): builds llama.cpp's CPU and Vulkan tools once, checks "
        "that both give the same answers, then runs a short sweep of the two on Gemma 3 "
        "270M (or a small generated model) and shows the verdict.")


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-body"):
            yield Static("llamaduel keys. Ctrl-P opens the command palette: every action "
                         "is there too. Escape closes this.", id="help-title")
            table: DataTable[str] = DataTable(cursor_type="row", id="help-table")
            table.add_columns("where", "key", "command", "what it does")
            for section, commands in cmd.SECTIONS:
                for index, command in enumerate(commands):
                    table.add_row(section if index == 0 else "", cmd.key_label(command.key),
                                  command.title, command.help)
            for row in WIDGET_KEYS:
                table.add_row(*row)
            yield table
            yield Static(DEMO, id="help-demo", classes="hint")

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss()

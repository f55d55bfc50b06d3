"""A yes/no question in a small modal dialog; y, n and Escape answer it from the keyboard."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

if TYPE_CHECKING:
    from textual.app import App

    from backends.builds import BuildInfo


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n,escape", "answer(False)", "no")]
    AUTO_FOCUS = "#no"  # the safe answer; Textual focuses it once it is there

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            # Questions carry names from files (builds, profiles): plain text, never markup.
            yield Label(self.question, classes="dialog-question", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", variant="warning", id="yes")
                yield Button(f"{self.no} (n)", id="no")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


def ask_before_cpu_fallback(app: App[object], builds: Sequence[BuildInfo],
                            go: Callable[[], object]) -> None:
    """``go`` at once, or after a yes when a build's GPU backend found no device (it would
    run on the CPU under a GPU backend's name)."""
    flagged = [f"{b.name} was {b.fallback}" for b in builds if b.fallback]
    if not flagged:
        go()
        return
    question = ("; ".join(flagged) + ". Its results would be CPU results. Run anyway?")
    def answered(yes: bool | None) -> None:
        if yes:
            go()

    app.push_screen(ConfirmScreen(question, yes="Run anyway", no="Cancel"), answered)


class AskTextScreen(ModalScreen[str | None]):
    """One line of text (a new name, a file path); Escape gives None."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question, self.value, self.placeholder = question, value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-question")
            yield Input(self.value, placeholder=self.placeholder, id="dialog-input")
            yield Label("Enter to accept, Escape to cancel", classes="dialog-hint")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)

"""Server mode's workload on the Setup screen: concurrency levels, prompt and answer sizes,
how many requests (or seconds) per level, and whether llama-bench runs for the gap.
An empty field stands for its placeholder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.message import Message
from textual.widgets import Input, Label

from tui.state.serve import SERVE_FIELDS, spec_from_fields
from tui.widgets._css import css_beside
from tui.widgets.marks import TickBox

if TYPE_CHECKING:
    from backends.server import DuelSpec


class ServeForm(Vertical):
    """Posts Changed on every edit and Submitted on Enter in one of its fields."""

    DEFAULT_CSS = css_beside(__file__)

    class Changed(Message):
        """A field or the gap box changed."""

    class Submitted(Message):
        """Enter in a field: start the duel if it is good."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(classes="section", **kwargs)  # type: ignore[arg-type]
        self.border_title = "Server duel (llama-server under concurrent load)"

    def compose(self) -> ComposeResult:
        with Grid(id="serve-fields"):
            for key, (label, placeholder) in SERVE_FIELDS.items():
                yield Label(label, classes="field-label")
                yield Input(placeholder=placeholder, id=f"serve-{key}", compact=True)
            yield Label("gap", classes="field-label")
            yield TickBox("llama-bench too", value=True, compact=True, id="serve-gap")

    def values(self) -> dict[str, str]:
        return {key: self.query_one(f"#serve-{key}", Input).value for key in SERVE_FIELDS}

    def spec(self) -> DuelSpec:
        """The duel the form describes; raises ValueError (one line) when it is not one."""
        return spec_from_fields(self.values(), gap=self.query_one("#serve-gap", TickBox).value)

    def problem(self) -> str | None:
        try:
            self.spec()
        except ValueError as error:
            return str(error)
        return None

    @on(Input.Changed)
    @on(TickBox.Changed)
    def _edited(self, event: Message) -> None:
        event.stop()
        self.post_message(self.Changed())

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Submitted())

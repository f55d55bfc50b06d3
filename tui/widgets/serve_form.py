"""Server mode's workload on the Setup screen: concurrency levels, prompt and answer sizes,
how many requests (or seconds) per level, and whether llama-bench runs for the gap.
An empty field stands for its placeholder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.widgets import Label

from tui.state.serve import SERVE_FIELDS, spec_from_fields
from tui.widgets._css import css_beside
from tui.widgets.fields_form import FieldsForm
from tui.widgets.marks import TickBox

if TYPE_CHECKING:
    from backends.server import DuelSpec


class ServeForm(FieldsForm):
    """Posts Changed on every edit and Submitted on Enter in one of its fields."""

    DEFAULT_CSS = css_beside(__file__)
    FIELDS = SERVE_FIELDS
    PREFIX = "serve"
    TITLE = "Server duel (llama-server under concurrent load)"

    def boxes(self) -> ComposeResult:
        yield Label("gap", classes="field-label")
        yield TickBox("llama-bench too", value=True, compact=True, id="serve-gap")

    def spec(self) -> DuelSpec:
        """The duel the form describes; raises ValueError (one line) when it is not one."""
        return spec_from_fields(self.values(), gap=self.query_one("#serve-gap", TickBox).value)

    def problem(self) -> str | None:
        try:
            self.spec()
        except ValueError as error:
            return str(error)
        return None

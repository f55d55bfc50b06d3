"""Soak mode's part of the Setup screen: how long, which build's answers are right, the
threads per server, the profile the figures join, and whether a build with trouble loses
that profile's recommendation. An empty field stands for its placeholder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.message import Message
from textual.widgets import Input, Label

from tui.state.soak import SOAK_FIELDS, SoakRequest, plan_line, reference_problem, spec_from_fields
from tui.widgets._css import css_beside
from tui.widgets.marks import TickBox

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.models import ModelInfo
    from backends.soak import SoakSpec


class SoakForm(Vertical):
    """Posts Changed on every edit and Submitted on Enter in one of its fields."""

    DEFAULT_CSS = css_beside(__file__)

    class Changed(Message):
        """A field or the box changed."""

    class Submitted(Message):
        """Enter in a field: start the soak if it is good."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(classes="section", **kwargs)  # type: ignore[arg-type]
        self.border_title = "Soak (llama-server for hours, answers checked)"

    def compose(self) -> ComposeResult:
        with Grid(id="soak-fields"):
            for key, (label, placeholder) in SOAK_FIELDS.items():
                yield Label(label, classes="field-label")
                yield Input(placeholder=placeholder, id=f"soak-{key}", compact=True)
            yield Label("stability", classes="field-label")
            yield TickBox("require stable", value=False, compact=True, id="soak-require-stable",
                          tooltip="A build that crashed, hung or answered wrong loses the "
                          "saved profile's recommendation to the fastest stable one")

    def values(self) -> dict[str, str]:
        return {key: self.query_one(f"#soak-{key}", Input).value.strip() for key in SOAK_FIELDS}

    @property
    def require_stable(self) -> bool:
        return self.query_one("#soak-require-stable", TickBox).value

    def spec(self) -> SoakSpec:
        """The soak the form describes; raises ValueError (one line) when it is not one."""
        return spec_from_fields(self.values())

    def problem(self, chosen: frozenset[str]) -> str | None:
        """Why the soak cannot start with these builds (one line), or None."""
        return reference_problem(self.values()["reference"], chosen)

    def plan(self, builds: int) -> str:
        return plan_line(self.spec(), builds, self.values()["reference"] or None)

    def request(self, builds: tuple[BuildInfo, ...], model: ModelInfo) -> SoakRequest:
        values = self.values()
        return SoakRequest(builds, model, self.spec(), reference=values["reference"] or None,
                           profile=values["profile"] or None, require_stable=self.require_stable)

    @on(Input.Changed)
    @on(TickBox.Changed)
    def _edited(self, event: Message) -> None:
        event.stop()
        self.post_message(self.Changed())

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Submitted())

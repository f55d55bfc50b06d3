"""Soak mode's part of the Setup screen: how long, which build's answers are right, the
threads per server, the profile the figures join, and whether a build with trouble loses
that profile's recommendation. An empty field stands for its placeholder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.widgets import Label

from tui.state.soak import SOAK_FIELDS, SoakRequest, plan_line, reference_problem, spec_from_fields
from tui.widgets._css import css_beside
from tui.widgets.fields_form import FieldsForm
from tui.widgets.marks import TickBox

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.models import ModelInfo
    from backends.soak import SoakSpec


class SoakForm(FieldsForm):
    """Posts Changed on every edit and Submitted on Enter in one of its fields."""

    DEFAULT_CSS = css_beside(__file__)
    FIELDS = SOAK_FIELDS
    PREFIX = "soak"
    TITLE = "Soak (llama-server for hours, answers checked)"

    def boxes(self) -> ComposeResult:
        yield Label("stability", classes="field-label")
        yield TickBox("require stable", value=False, compact=True, id="soak-require-stable",
                      tooltip="A build that crashed, hung or answered wrong loses the "
                      "saved profile's recommendation to the fastest stable one")

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

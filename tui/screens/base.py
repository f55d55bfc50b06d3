"""What every screen of the app shares: the app's sources, the command action, and
Escape, which leaves a text field for the screen's first action."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol, cast

from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Input, Select

from tui.actions import CommandsMixin

if TYPE_CHECKING:
    from tui.sources import Sources
    from tui.state.run import RunState
    from tui.state.run_text import SweepStart
    from tui.state.serve import ServeRequest
    from tui.state.soak import SoakRequest

FIELDS = (Input, Select)


class DuelApp(Protocol):
    """What screens ask of the app (``tui.app.LlamaduelApp``), typed without importing it:
    the app sits above its screens."""

    sources: Sources
    last_run: RunState
    auto_probe: bool

    def start_sweep(self, request: SweepStart) -> None: ...
    def start_serve(self, request: ServeRequest) -> None: ...

    def start_soak(self, request: SoakRequest) -> None: ...
    def sweep_finished(self, state: RunState) -> None: ...


class AppScreen(CommandsMixin, Screen[None]):
    """A screen of the app. ``AUTO_FOCUS`` names the widget of its first action: the
    screen opens there, and Escape in a field goes back there."""

    # Screens' own BINDINGS add to these (Textual merges them along the class tree).
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "leave_field", "leave field")]

    @property
    def sources(self) -> Sources:
        return self.duel_app.sources

    @property
    def duel_app(self) -> DuelApp:
        """The app, typed: screens only ever run inside llamaduel's."""
        return cast("DuelApp", self.app)

    def action_leave_field(self) -> None:
        home = self.query(self.AUTO_FOCUS).first() if self.AUTO_FOCUS else None
        if home is not None and home.focusable:
            home.focus()
        else:
            self.set_focus(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_field":
            return isinstance(self.focused, FIELDS)
        return super().check_action(action, parameters)

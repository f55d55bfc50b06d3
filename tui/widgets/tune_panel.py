"""One contender's tune: candidates tried, the current best, the time left, the choice."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.state.tune import TuneLane
from tui.widgets._css import css_beside


class TunePanel(Static):
    """Plain text (names and labels are never markup); redrawn only when its text changes."""

    DEFAULT_CSS = css_beside(__file__)

    def __init__(self, build_name: str, **kwargs: object) -> None:
        super().__init__("waiting for its turn", **kwargs)  # type: ignore[arg-type]
        self.build_name = build_name
        self.border_title = f"tune {build_name}"
        self._text = ""

    def show(self, lane: TuneLane) -> None:
        text = lane.text()
        if text != self._text:
            self._text = text
            self.update(Text(text))

"""One contender of a server duel: its server, live TTFT, inter-token latency and tok/s
per stream and in total, each stream's progress, and the levels it has finished."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from backends.server import DuelState
from tui.state.serve import panel_lines
from tui.widgets._css import css_beside


class ServePanel(Static):
    """Watches the duel's snapshot and shows the part that belongs to one contender."""

    DEFAULT_CSS = css_beside(__file__)

    duel_state: reactive[DuelState] = reactive(DuelState, always_update=True, repaint=False)

    def __init__(self, contender: str, description: str = "", **kwargs: object) -> None:
        super().__init__("waiting", **kwargs)  # type: ignore[arg-type]
        self.contender = contender
        self.border_title = contender
        self.border_subtitle = description
        self._text = ""

    def watch_duel_state(self, state: DuelState) -> None:
        mine = state.contender(self.contender)
        if mine is None or not self.is_mounted:
            return
        # Inside the border: four lines of figures, the levels done, the streams in between.
        room = self.size.height - 2 - 4 - len(mine.summaries) if self.size.height else 4
        text = "\n".join(panel_lines(mine, streams=max(1, room), turns=state.turns))
        if text != self._text:  # another contender's event leaves this one as it was
            self._text = text
            self.update(Text(text))
        self.set_class(mine.status in ("failed", "out") or mine.errors > 0, "-has-failures")

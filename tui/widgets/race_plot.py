"""Tokens per second over time, one line per build, on the common race clock."""

from __future__ import annotations

from textual.reactive import reactive
from textual_plotext import PlotextPlot

from tui.widgets._css import css_beside
from tui.widgets.race_state import RaceBoard, rate_series

# Markers tell builds apart when NO_COLOR leaves every line the same colour.
MARKERS = ("braille", "dot", "x", "+", "o", "*")
COLOURS = ("cyan", "orange", "green", "magenta", "yellow", "blue")
REDRAW_SECONDS = 0.25


class RaceRatePlot(PlotextPlot):
    """Owns its own plotext figure; redraws a few times a second however fast tokens come."""

    DEFAULT_CSS = css_beside(__file__)

    board: reactive[RaceBoard] = reactive(RaceBoard, always_update=True)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._dirty = True

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(REDRAW_SECONDS, self._redraw_if_dirty)
        self._draw()

    def watch_board(self, board: RaceBoard) -> None:
        self._dirty = True

    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self._draw()

    def _draw(self) -> None:
        self._dirty = False
        plt = self.plt
        plt.clear_figure()
        plt.title("tokens/s over time (s since each build's start)")
        drawn = 0
        top = 0.0
        for slot, lane in enumerate(self.board.lanes):
            xs, ys = rate_series(lane)
            if not xs:
                continue
            plt.plot(xs, ys, label=lane.build, marker=MARKERS[slot % len(MARKERS)],
                     color=COLOURS[slot % len(COLOURS)])
            top = max(top, *ys)
            drawn += 1
        if drawn:
            plt.ylim(0, top * 1.1 if top > 0 else 1)
        else:
            plt.xlabel("waiting for tokens")
        self.refresh()

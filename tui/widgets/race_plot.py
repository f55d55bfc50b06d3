"""Tokens per second over time, one line per build, on the common race clock."""

from __future__ import annotations

import math

from textual.reactive import reactive
from textual_plotext import PlotextPlot

from tui.widgets._css import css_beside
from tui.widgets.race_state import RaceBoard, rate_series

# Markers tell builds apart when NO_COLOR leaves every line the same colour.
MARKERS = ("braille", "dot", "x", "+", "o", "*")
COLOURS = ("cyan", "orange", "green", "magenta", "yellow", "blue")
REDRAW_SECONDS = 0.25


def _power_label(power: int) -> str:
    value = 10.0 ** power
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


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
        lines = [(slot, lane, *rate_series(lane)) for slot, lane in enumerate(self.board.lanes)]
        lines = [line for line in lines if line[2]]
        peaks = [max(ys) for *_, ys in lines if max(ys) > 0]
        # Builds can differ a hundredfold (a GPU against lavapipe): then the rates are drawn
        # as powers of ten, which keeps the slow build off the floor.
        logarithmic = len(peaks) > 1 and max(peaks) / min(peaks) > 20
        for slot, lane, xs, ys in lines:
            if logarithmic:
                points = [(x, math.log10(y)) for x, y in zip(xs, ys) if y > 0]
                xs, ys = [x for x, _ in points], [y for _, y in points]
            if xs:
                plt.plot(xs, ys, label=lane.build, marker=MARKERS[slot % len(MARKERS)],
                         color=COLOURS[slot % len(COLOURS)])
        if logarithmic:
            low = math.floor(math.log10(min(min(y for y in ys if y > 0) for *_, ys in lines)))
            high = math.ceil(math.log10(max(peaks)))
            ticks = list(range(low, high + 1))
            plt.yticks(ticks, [_power_label(t) for t in ticks])
            plt.ylim(low, high)
        elif peaks:
            plt.ylim(0, max(peaks) * 1.1)
        if not lines:
            plt.xlabel("waiting for tokens")
        self.refresh()

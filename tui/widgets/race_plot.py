"""Tokens per second over time, one line per build, on the common race clock.

The scale is set once per race by the screen (``logarithmic``, from what the builds are
expected to do), so it never flips while tokens arrive; the legend is in the title line.
"""

from __future__ import annotations

import math

from textual.reactive import reactive
from textual_plotext import PlotextPlot

from tui.state.race import RaceBoard, rate_series
from tui.widgets._css import css_beside
from tui.widgets.axes import (
    COLOURS,
    MARKERS,
    fit_ticks,
    legend,
    log_ticks,
    nice_ticks,
    tick_label,
    time_label,
    time_ticks,
)

REDRAW_SECONDS = 0.25


class RaceRatePlot(PlotextPlot):
    """Owns its own plotext figure; redraws a few times a second however fast tokens come."""

    DEFAULT_CSS = css_beside(__file__)

    board: reactive[RaceBoard] = reactive(RaceBoard, always_update=True)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._dirty = True
        self.logarithmic = False

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(REDRAW_SECONDS, self._redraw_if_dirty)
        self._draw()

    def set_scale(self, logarithmic: bool) -> None:
        """Chosen once when a race starts."""
        self.logarithmic = logarithmic
        self._dirty = True

    def watch_board(self, board: RaceBoard) -> None:
        self._dirty = True

    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self._draw()

    def _draw(self) -> None:
        self._dirty = False
        plt = self.plt
        plt.clear_figure()
        lines = [(slot, lane, *rate_series(lane)) for slot, lane in enumerate(self.board.lanes)]
        lines = [line for line in lines if line[2]]
        log = self.logarithmic
        entries, rates, span = [], [], 0.0
        for slot, lane, xs, ys in lines:
            points = [(x, y) for x, y in zip(xs, ys, strict=False) if y > 0 or not log]
            if not points:
                continue
            marker = MARKERS[slot % len(MARKERS)]
            plt.plot([x for x, _ in points], [math.log10(y) if log else y for _, y in points],
                     marker=marker, color=COLOURS[slot % len(COLOURS)])
            entries.append((marker, lane.build))
            rates += [y for _, y in points]
            span = max(span, points[-1][0])
        title = "tokens/s over time since each build's start"
        plt.title(f"{title}   {legend(entries)}" if entries else title)
        if rates and max(rates) > 0:
            ticks = time_ticks(span, 4)
            plt.xticks(ticks, [time_label(t) for t in ticks])
            plt.xlim(0, ticks[-1])
            if log:
                positive = [r for r in rates if r > 0]
                low, high = min(positive) * 0.8, max(positive) * 1.2
                yticks = fit_ticks(log_ticks(low, high), max(4, self.size.height - 4))
                plt.yticks([math.log10(t) for t in yticks], [tick_label(t) for t in yticks])
                plt.ylim(math.log10(low), math.log10(high))
            else:
                yticks = nice_ticks(0, max(rates) * 1.05, 3)
                plt.yticks(yticks, [tick_label(t) for t in yticks])
                plt.ylim(0, yticks[-1])
        else:
            plt.xlabel("waiting for tokens")
        self.refresh()

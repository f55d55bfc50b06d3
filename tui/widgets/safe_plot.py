"""A PlotextPlot that never takes the app down: plotext can fail on very small sizes."""

from __future__ import annotations

from textual.app import RenderResult
from textual_plotext import PlotextPlot


class SafePlot(PlotextPlot):
    def render(self) -> RenderResult:
        if self.size.width < 12 or self.size.height < 5:
            return "(too small to plot)"
        try:
            return super().render()
        except (IndexError, ValueError, ZeroDivisionError, OverflowError):
            # plotext cannot fit the labels or legend into this size; the next
            # resize or redraw tries again.
            return "(too small to plot)"

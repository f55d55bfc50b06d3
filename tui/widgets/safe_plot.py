"""PlotextPlot that draws only when its data or size changed, and never takes the app down.

Textual renders a widget again whenever the layout around it changes; building a plotext
figure costs milliseconds, so the last picture is kept until ``redraw()`` is called or the
size changes. plotext can also fail on very small sizes: then a short note shows instead.
"""

from __future__ import annotations

from typing import Any

from textual.app import RenderResult
from textual_plotext import PlotextPlot


class SafePlot(PlotextPlot):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._generation = 0
        self._cached: tuple[tuple[Any, ...], RenderResult] | None = None

    def redraw(self) -> None:
        """Call after changing the figure through ``plt``."""
        self._generation += 1
        self.refresh()

    def render(self) -> RenderResult:
        key = (self.size, self._generation, self.app.theme)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        if self.size.width < 12 or self.size.height < 5:
            picture: RenderResult = "(too small to plot)"
        else:
            try:
                picture = super().render()
            except (IndexError, ValueError, ZeroDivisionError, OverflowError):
                # plotext cannot fit labels or legend into this size; a resize retries.
                picture = "(too small to plot)"
        self._cached = (key, picture)
        return picture

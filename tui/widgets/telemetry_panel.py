"""GPU and host telemetry over the last minutes: VRAM, temperatures, power, throttling."""

from __future__ import annotations

import math
from time import monotonic

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Static

from tui.state.telemetry import GIB, TelemetryHistory, summary_line, throttle_line
from tui.widgets._css import css_beside
from tui.widgets.axes import COLOURS, MARKERS, legend, nice_ticks, tick_label, time_label, time_ticks
from tui.widgets.safe_plot import SafePlot

# Telemetry plots move slowly (minutes on the x axis): redrawing them every few seconds,
# and the values line once a second, keeps the app's own CPU use small during a sweep.
REDRAW_SECONDS = 10.0
VALUES_SECONDS = 1.0


class TelemetryPlot(SafePlot):
    """One quantity over time; several lines share the axes (e.g. three temperatures)."""

    DEFAULT_CSS = """
    TelemetryPlot { height: 1fr; min-height: 8; width: 1fr; }
    """

    def __init__(self, title: str, lines: tuple[tuple[str, str, float], ...],
                 y_range: tuple[float, float] | None = None, **kwargs: object) -> None:
        # lines: (label, Reading field, scale)
        super().__init__(**kwargs)
        self.title = title
        self.lines = lines
        self.y_range = y_range

    def draw(self, history: TelemetryHistory) -> None:
        plt = self.plt
        plt.clear_figure()
        readings = history.readings
        entries = []
        start = readings[0].at if readings and not math.isnan(readings[0].at) else 0.0
        highest = 0.0
        span = 0.0
        for slot, (label, name, scale) in enumerate(self.lines):
            points = [((r.at - start) if not math.isnan(r.at) else i / 2,
                       getattr(r, name) / scale) for i, r in enumerate(readings)
                      if not math.isnan(getattr(r, name))]
            if points:
                xs, ys = zip(*points, strict=False)
                marker = MARKERS[slot % len(MARKERS)]
                plt.plot(list(xs), list(ys), marker=marker, color=COLOURS[slot % len(COLOURS)])
                entries.append((marker, label))
                highest, span = max(highest, max(ys)), max(span, xs[-1])
        key = legend(entries) if len(entries) > 1 else ""
        plt.title(f"{self.title}  {key}" if key else self.title)
        if entries:
            ticks = time_ticks(span, 3 if self.size.width < 40 else 5)
            plt.xticks(ticks, [time_label(t) for t in ticks])
            plt.xlim(0, ticks[-1])
            low, high = self.y_range or (0.0, highest * 1.1 or 1.0)
            yticks = nice_ticks(low, high, 3)
            plt.yticks(yticks, [tick_label(t) for t in yticks])
            plt.ylim(yticks[0], yticks[-1])
        self.redraw()


class TelemetryPanel(Vertical):
    """Watches a telemetry history; values once a second, plots every REDRAW_SECONDS."""

    DEFAULT_CSS = css_beside(__file__)

    history: reactive[TelemetryHistory] = reactive(TelemetryHistory, always_update=True, repaint=False)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.border_title = "telemetry"
        self._dirty = True
        self._drawn_at = 0.0
        self._layout: tuple[object, ...] = ()
        self._values_at = 0.0
        self._values = ""
        self.waiting_text = "no telemetry yet"  # shown until the first tick

    def compose(self) -> ComposeResult:
        yield Static("no telemetry yet", id="telemetry-now")
        yield Static("", id="telemetry-throttle")
        with Horizontal(id="telemetry-plots"):
            yield TelemetryPlot("VRAM used GiB", (("used", "vram_used", GIB),
                                                  ("total", "vram_total", GIB)), id="plot-vram")
            yield TelemetryPlot("temperature °C", (("edge", "edge_c", 1), ("junction", "junction_c", 1),
                                                   ("mem", "mem_c", 1)), id="plot-temps")
            yield TelemetryPlot("power W", (("power", "power_w", 1),), id="plot-power")
            yield TelemetryPlot("host CPU %", (("CPU", "host_cpu_percent", 1),), (0, 100),
                                id="plot-host")
            yield TelemetryPlot("host RAM GiB", (("used", "host_ram_used", GIB),
                                                 ("total", "host_ram_total", GIB)), id="plot-ram")

    def on_mount(self) -> None:
        self.set_interval(REDRAW_SECONDS, self._redraw_if_dirty)

    def watch_history(self, history: TelemetryHistory) -> None:
        self._dirty = True
        if not self.is_mounted:
            return
        if monotonic() - self._drawn_at >= REDRAW_SECONDS:
            self.call_after_refresh(self._redraw_if_dirty)  # after display changes below
        latest = history.readings[-1] if history.readings else None
        now = monotonic()
        if now - self._values_at >= VALUES_SECONDS or latest is None:
            self._values_at = now
            self.show_values(summary_line(latest, history.show_host) if latest is not None
                             else self.waiting_text)
        warning = throttle_line(latest)
        gpu = latest is not None and not math.isnan(latest.vram_total)
        layout = (warning, gpu, history.show_host, latest is None)
        if layout == self._layout:
            return  # same plots shown, same warning: no layout work this tick
        self._layout = layout
        throttle = self.query_one("#telemetry-throttle", Static)
        throttle.update(warning)
        throttle.display = bool(warning)
        for plot_id in ("#plot-host", "#plot-ram"):
            self.query_one(plot_id).display = history.show_host or not gpu
        for plot_id in ("#plot-vram", "#plot-temps", "#plot-power"):
            self.query_one(plot_id).display = gpu or latest is None

    def show_values(self, line: str) -> None:
        """The current values line; left alone when its text has not changed."""
        if line != self._values:
            self._values = line
            self.query_one("#telemetry-now", Static).update(line, layout=False)

    def _redraw_if_dirty(self) -> None:
        # Hidden plots (another screen, or a short terminal) are drawn when shown again.
        plots = self.query_one("#telemetry-plots")
        if not self._dirty or not plots.display or not self.screen.is_current:
            return
        self._dirty = False
        self._drawn_at = monotonic()
        for plot in self.query(TelemetryPlot):
            if plot.display:
                plot.draw(self.history)

    def on_show(self) -> None:
        self.call_after_refresh(self._redraw_if_dirty)

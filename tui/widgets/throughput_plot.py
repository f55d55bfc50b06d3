"""Tokens per second against context depth: one line, marker and label per series.

The legend sits in the title line, outside the data; ticks are round (``20K``); the scale
(linear or log) is chosen once per run, when every build has a first result.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from time import monotonic

from textual.reactive import reactive

from profiles.format import format_depth
from tui.state.run import RunState
from tui.widgets._css import css_beside
from tui.widgets.axes import COLOURS, MARKERS, choose_log, fit_ticks, legend, log_ticks, nice_ticks, tick_label
from tui.widgets.safe_plot import SafePlot

REDRAW_SECONDS = 1.0
# Above this ratio between the fastest and slowest build the y axis is logarithmic.
LOG_SCALE_RATIO = 8


@dataclass(frozen=True)
class Series:
    build: str
    label: str
    depths: tuple[int, ...]
    rates: tuple[float, ...]


def series_for(state: RunState, kind: str) -> list[Series]:
    """Mean tok/s by depth per build and test size (``pp512``), for one test kind."""
    lines: list[Series] = []
    sizes = {r.point.name.split(" @ ")[0] for b in state.builds for r in b.results
             if r.point.kind == kind}
    for progress in state.builds:
        by_size: dict[str, dict[int, float]] = defaultdict(dict)
        for result in progress.results:
            if result.point.kind != kind or math.isnan(result.avg_ts):
                continue
            size = result.point.name.split(" @ ")[0]
            by_size[size][result.point.depth] = result.avg_ts
        for size, by_depth in sorted(by_size.items()):
            depths = tuple(sorted(by_depth))
            label = progress.name if len(sizes) == 1 else f"{progress.name} {size}"
            lines.append(Series(progress.name, label, depths, tuple(by_depth[d] for d in depths)))
    return lines


def crossovers(lines: list[Series]) -> list[int]:
    """Depths where the leading build changes, between the first two builds' lines."""
    builds = list(dict.fromkeys(s.build for s in lines))
    if len(builds) < 2:
        return []
    first = next(s for s in lines if s.build == builds[0])
    second = next((s for s in lines if s.build == builds[1] and s.label.split(" ", 1)[1:]
                   == first.label.split(" ", 1)[1:]), None)
    if second is None:
        return []
    shared = sorted(set(first.depths) & set(second.depths))
    a = dict(zip(first.depths, first.rates, strict=False))
    b = dict(zip(second.depths, second.rates, strict=False))
    marks, previous = [], None
    for depth in shared:
        leader = a[depth] >= b[depth]
        if previous is not None and leader != previous:
            marks.append(depth)
        previous = leader
    return marks


def first_peaks(state: RunState, kind: str) -> list[float] | None:
    """Each build's first rate of this kind, once every build has one (for the scale)."""
    peaks = []
    for progress in state.builds:
        rates = [r.avg_ts for r in progress.results
                 if r.point.kind == kind and not math.isnan(r.avg_ts)]
        if not rates:
            return None
        peaks.append(max(rates))
    return peaks


class ThroughputPlot(SafePlot):
    """Redraws at most twice a second however fast results arrive."""

    DEFAULT_CSS = css_beside(__file__)

    run_state: reactive[RunState] = reactive(RunState, always_update=True, repaint=False)

    def __init__(self, kind: str, *, mark_crossovers: bool = False, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self.mark_crossovers = mark_crossovers
        # Crossover depths worked out by the recommendation (profiles.recommend).
        self.crossover_depths: tuple[float, ...] = ()
        self._dirty = True
        self._drawn_at = 0.0
        self._lines: list[Series] = []
        self._scale: tuple[str, bool] | None = None  # (run id, log) once chosen

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(REDRAW_SECONDS, self._redraw_if_dirty)
        self._draw()

    def watch_run_state(self, state: RunState) -> None:
        # Only new results change the plot (progress lines do not). Draw now unless the
        # last frame is under half a second old; the timer catches up.
        lines = series_for(state, self.kind)
        if lines == self._lines and self._drawn_at:
            return
        self._lines = lines
        self._dirty = True
        if self.is_mounted and monotonic() - self._drawn_at >= REDRAW_SECONDS:
            self._draw()

    def on_resize(self) -> None:
        self._dirty = True  # the legend's place depends on the width
        self._draw()

    def show_crossovers(self, depths: tuple[float, ...]) -> None:
        self.crossover_depths = depths
        self._dirty = True

    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self._draw()

    def logarithmic(self) -> bool:
        """The scale of this run: chosen once, when every build has a first rate."""
        state = self.run_state
        if self._scale is not None and self._scale[0] == state.run_id:
            return self._scale[1]
        peaks = first_peaks(state, self.kind)
        if peaks is None:
            return False
        self._scale = (state.run_id, choose_log(peaks, LOG_SCALE_RATIO))
        return self._scale[1]

    def _draw(self) -> None:
        self._dirty = False
        self._drawn_at = monotonic()
        plt = self.plt
        plt.clear_figure()
        lines = self._lines = series_for(self.run_state, self.kind)
        log = self.logarithmic()
        title = ("prompt" if self.kind == "pp" else "generation") + (
            " tok/s (log) vs depth" if log else " tok/s vs depth")
        entries = []
        for slot, line in enumerate(lines):
            marker, colour = MARKERS[slot % len(MARKERS)], COLOURS[slot % len(COLOURS)]
            ys = [math.log10(r) if log else r for r in line.rates if r > 0 or not log]
            plt.plot(list(line.depths)[: len(ys)], ys, marker=marker, color=colour)
            entries.append((marker, line.label))
        self._axes(lines, log)
        key = legend(entries)
        room = max(0, self.size.width - len(title) - 10)
        plt.title(f"{title}   {key}" if key and len(key) <= room else title)
        if key and len(key) > room:
            plt.xlabel(key)  # under the plot, still outside the data
        if self.mark_crossovers:
            for depth in self.crossover_depths or crossovers(lines):
                plt.vline(depth, "red")
        elif not lines:
            plt.xlabel("waiting for results")
        self.redraw()

    def _axes(self, lines: list[Series], log: bool) -> None:
        plt = self.plt
        depths = sorted({d for s in lines for d in s.depths})
        rates = [r for s in lines for r in s.rates if r > 0]
        if not depths or not rates:
            return
        plt.xticks([float(d) for d in depths], [format_depth(d) for d in depths])
        if len(depths) == 1:
            plt.xlim(depths[0] - 1, depths[0] + 1)
        rows = max(4, self.size.height - 5)  # less the title, the x axis and the legend
        if log:
            ticks = fit_ticks(log_ticks(min(rates) * 0.9, max(rates) * 1.1), rows)
            plt.yticks([math.log10(t) for t in ticks], [tick_label(t) for t in ticks])
            plt.ylim(math.log10(min(rates) * 0.9), math.log10(max(rates) * 1.1))
        else:
            ticks = nice_ticks(0, max(rates) * 1.05, min(4, rows // 2))
            plt.yticks(ticks, [tick_label(t) for t in ticks])
            plt.ylim(0, ticks[-1])

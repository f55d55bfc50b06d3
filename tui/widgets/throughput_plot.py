"""Tokens per second against context depth: one line per build and test size."""

from __future__ import annotations

import math
from time import monotonic
from collections import defaultdict
from dataclasses import dataclass

from textual.reactive import reactive
from tui.widgets.safe_plot import SafePlot

from backends.events import BenchResult
from tui.screens.run_state import RunState, format_depth
from tui.widgets._css import css_beside

# Markers tell builds apart when NO_COLOR leaves every line the same colour.
MARKERS = ("braille", "dot", "x", "+", "o", "*")
COLOURS = ("cyan", "orange", "green", "magenta", "yellow", "blue")
REDRAW_SECONDS = 0.5
# Above this ratio between the fastest and slowest rate the y axis turns logarithmic.
LOG_SCALE_RATIO = 30


@dataclass(frozen=True)
class Series:
    build: str
    label: str
    depths: tuple[int, ...]
    rates: tuple[float, ...]


def series_for(state: RunState, kind: str) -> list[Series]:
    """Mean tok/s by depth per build and test size (``pp512``), for one test kind."""
    lines: list[Series] = []
    for progress in state.builds:
        by_size: dict[str, dict[int, float]] = defaultdict(dict)
        for result in progress.results:
            if result.point.kind != kind or math.isnan(result.avg_ts):
                continue
            size = result.point.name.split(" @ ")[0]
            by_size[size][result.point.depth] = result.avg_ts
        for size, by_depth in by_size.items():
            depths = tuple(sorted(by_depth))
            label = progress.name if len(by_size) == 1 else f"{progress.name} {size}"
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
    a = dict(zip(first.depths, first.rates))
    b = dict(zip(second.depths, second.rates))
    marks, previous = [], None
    for depth in shared:
        leader = a[depth] >= b[depth]
        if previous is not None and leader != previous:
            marks.append(depth)
        previous = leader
    return marks


class ThroughputPlot(SafePlot):
    """Redraws at most twice a second however fast results arrive."""

    DEFAULT_CSS = css_beside(__file__)

    run_state: reactive[RunState] = reactive(RunState, always_update=True, repaint=False)

    def __init__(self, kind: str, *, mark_crossovers: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self.mark_crossovers = mark_crossovers
        # Crossover depths worked out by the recommendation (profiles.recommend).
        self.crossover_depths: tuple[float, ...] = ()
        self._dirty = True
        self._drawn_at = 0.0
        self._lines: list[Series] = []

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

    def show_crossovers(self, depths: tuple[float, ...]) -> None:
        self.crossover_depths = depths
        self._dirty = True

    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self._draw()

    def _draw(self) -> None:
        self._dirty = False
        self._drawn_at = monotonic()
        plt = self.plt
        plt.clear_figure()
        title = "prompt processing" if self.kind == "pp" else "generation"
        plt.title(f"{title} tok/s vs depth")
        lines = self._lines = series_for(self.run_state, self.kind)
        builds = list(dict.fromkeys(s.build for s in lines))
        depths = sorted({d for s in lines for d in s.depths})
        for index, line in enumerate(lines):
            if not line.depths:
                continue  # plotext's legend breaks on a labelled series without points
            slot = builds.index(line.build) % len(MARKERS)
            plt.plot(list(line.depths), list(line.rates), label=line.label,
                     marker=MARKERS[slot], color=COLOURS[slot])
        if depths:
            plt.xticks(depths, [format_depth(d) for d in depths])
            if len(depths) == 1:
                plt.xlim(depths[0] - 1, depths[0] + 1)
            rates = [r for s in lines for r in s.rates if r > 0]
            if rates and max(rates) / min(rates) > LOG_SCALE_RATIO:
                plt.yscale("log")  # one build many times faster: keep the slow one visible
                plt.ylabel("tok/s (log)")
            elif rates:
                plt.ylim(0, max(rates) * 1.1)
        if self.mark_crossovers:
            for depth in self.crossover_depths or crossovers(lines):
                plt.vline(depth, "red")
                plt.text("×", depth, 0)
        else:
            if not lines:
                plt.xlabel("waiting for results")
        self.redraw()

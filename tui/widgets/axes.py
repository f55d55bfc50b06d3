"""Round axis ticks and short labels for the plots: 1-2-5 steps, ``10K``, ``1:30``.

Pure functions, no widgets: each plot asks for its ticks, then hands them to its own
plotext figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# Marker characters, one per series: they tell the lines apart without colour, and the
# legend shows the same character.
MARKERS = ("o", "x", "+", "*", "#", "%", "@", "=")
COLOURS = ("cyan", "orange", "green", "magenta", "yellow", "blue", "red", "white")
# Steps for a time axis, in seconds.
TIME_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def nice_step(span: float, target: int = 5) -> float:
    """The 1-2-5 step that cuts ``span`` into about ``target`` parts."""
    if span <= 0 or math.isnan(span) or math.isinf(span):
        return 1.0
    raw = span / max(1, target)
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if span / (factor * power) <= target * 1.25:
            return factor * power
    return 10 * power


def nice_ticks(low: float, high: float, target: int = 5) -> list[float]:
    """Round tick values covering [low, high]: 0, 20K, 40K ... or 0.5, 1, 1.5."""
    if high < low:
        low, high = high, low
    if high == low:
        high = low + (abs(low) or 1.0)
    step = nice_step(high - low, target)
    first = math.floor(low / step + 1e-9) * step
    ticks: list[float] = []
    value = first
    while value <= high + step * 1e-6 and len(ticks) < 50:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def fit_ticks(ticks: list[float], rows: int) -> list[float]:
    """At most one tick every other row: the plot then never has to drop labels itself
    (which it does differently from one drawing to the next)."""
    room = max(2, rows // 2)
    if len(ticks) > room:
        powers = [t for t in ticks if t > 0 and math.isclose(math.log10(t) % 1, 0, abs_tol=1e-9)]
        ticks = powers if 2 <= len(powers) <= room else ticks
    while len(ticks) > room:
        ticks = ticks[::2]
    return ticks


def log_ticks(low: float, high: float) -> list[float]:
    """Ticks at 1, 2, 5 times powers of ten inside [low, high] (positive values)."""
    low, high = max(low, 1e-12), max(high, 1e-12)
    ticks = []
    for power in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for factor in (1, 2, 5):
            value = factor * 10.0 ** power
            if low * 0.999 <= value <= high * 1.001:
                ticks.append(value)
    if len(ticks) > 7:  # many decades: powers of ten only
        ticks = [t for t in ticks if math.isclose(math.log10(t) % 1, 0, abs_tol=1e-9)]
    return ticks or [low, high]


def tick_label(value: float) -> str:
    """A short label: 81K, 1.5K, 950, 2.5, 0.05, 1.2M."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if magnitude >= limit:
            return _trim(value / limit) + suffix
    return _trim(value)


def _trim(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    text = f"{value:.2f}" if abs(value) < 1 else f"{value:.1f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def time_ticks(span_s: float, target: int = 5) -> list[float]:
    """Seconds for a time axis from 0 to ``span_s``, at steps people count in."""
    step = next((s for s in TIME_STEPS if span_s / s <= target), TIME_STEPS[-1])
    count = math.ceil(max(span_s, step) / step - 1e-9)
    return [round(i * step, 3) for i in range(count + 1)]


def time_label(seconds: float) -> str:
    """``45s`` under a minute, else ``m:ss``."""
    if seconds < 10 and not float(seconds).is_integer():
        return f"{seconds:g}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    return f"{whole // 60}:{whole % 60:02d}"


def choose_log(peaks: Sequence[float], ratio: float) -> bool:
    """Log scale when the fastest series is more than ``ratio`` times the slowest."""
    positive = [p for p in peaks if p > 0]
    return len(positive) > 1 and max(positive) / min(positive) > ratio


def legend(entries: Sequence[tuple[str, str]]) -> str:
    """``o cpu  x vulkan``: each series' marker and label, for a line outside the data."""
    return "  ".join(f"{marker} {label}" for marker, label in entries)

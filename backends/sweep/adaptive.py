"""When to stop measuring a test point: the gap between two contenders on the log scale.

Speeds are compared as ratios (log tok/s), from the counted repetitions of each. A point
is *decided* when the interval of the log-ratio lies outside the tie band (one leads), a
*tie* when it lies inside, and *open* otherwise; an open point gets more repetitions
until the cap. Two rules keep a busy machine from hiding a clear answer:

* a repetition far from its siblings (a starved or stalled run: beyond OUTLIER_FACTOR of
  the median and beyond several median absolute deviations) is set aside and named;
* when every repetition of one contender beats every repetition of the other by at least
  SEPARATION_FACTOR, the gap is decided however few the repetitions.

The same statistics judge the whole run afterwards (``profiles``), so what stopped the
measuring is what the verdict says.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from collections.abc import Mapping, Sequence

TIE_BAND = 0.025  # gaps within ±2.5 % are ties
CONFIDENCE = 0.95
OUTLIER_FACTOR = 3.0  # a repetition a third (or three times) of its median...
OUTLIER_MADS = 5.0  # ...and this many median absolute deviations away
SEPARATION_FACTOR = 1.25  # every repetition beats every other by 25 %: decided
MIN_SEPARATED = 3  # ...with at least this many repetitions each

# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom; beyond, the normal.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t95(df: float) -> float:
    """Student's t quantile for a two-sided 95 % interval (linear between table entries)."""
    if df >= len(_T95):
        return 1.96 + (_T95[-1] - 1.96) * len(_T95) / df
    if df <= 1:
        return _T95[0]
    low = int(df)
    frac = df - low
    return _T95[low - 1] + frac * (_T95[low] - _T95[low - 1])


@dataclass(frozen=True)
class Samples:
    """One contender's counted repetitions at a point, with the outliers set aside."""

    kept: tuple[float, ...]
    outliers: tuple[float, ...]

    @property
    def count(self) -> int:
        return len(self.kept) + len(self.outliers)


def set_aside_outliers(values: Sequence[float]) -> Samples:
    """Split off repetitions far from the median (starved or stalled runs)."""
    good = [v for v in values if v > 0 and math.isfinite(v)]
    if len(good) < 3:
        return Samples(tuple(good), ())
    logs = [math.log(v) for v in good]
    center = statistics.median(logs)
    mad = statistics.median(abs(x - center) for x in logs) or 1e-9
    far = math.log(OUTLIER_FACTOR)
    kept: list[float] = []
    outliers: list[float] = []
    for value, x in zip(good, logs):
        distance = abs(x - center)
        (outliers if distance > far and distance > OUTLIER_MADS * mad else kept).append(value)
    return Samples(tuple(kept), tuple(outliers))


@dataclass(frozen=True)
class Gap:
    """``a`` against ``b``: the log-ratio (positive: a faster), its interval and how sure."""

    log_ratio: float
    low: float | None  # None: no interval (one repetition on a side)
    high: float | None
    separated: bool  # every kept repetition of the leader beats every one of the other widely
    a: Samples
    b: Samples

    @property
    def ratio(self) -> float:
        return math.exp(self.log_ratio)


def compare(a_values: Sequence[float], b_values: Sequence[float]) -> Gap | None:
    """The gap between two contenders' repetitions; None when a side has none."""
    a, b = set_aside_outliers(a_values), set_aside_outliers(b_values)
    if not a.kept or not b.kept:
        return None
    la = [math.log(v) for v in a.kept]
    lb = [math.log(v) for v in b.kept]
    center = statistics.median(la) - statistics.median(lb)
    low = high = None
    if len(la) >= 2 and len(lb) >= 2:
        va, vb = statistics.variance(la) / len(la), statistics.variance(lb) / len(lb)
        spread = math.sqrt(va + vb)
        df = (va + vb) ** 2 / ((va ** 2 / (len(la) - 1)) + (vb ** 2 / (len(lb) - 1))) if spread else 1e9
        mean_gap = statistics.fmean(la) - statistics.fmean(lb)
        low, high = mean_gap - t95(df) * spread, mean_gap + t95(df) * spread
    enough = len(la) >= MIN_SEPARATED and len(lb) >= MIN_SEPARATED
    wide = math.log(SEPARATION_FACTOR)
    separated = enough and (min(la) - max(lb) >= wide or min(lb) - max(la) >= wide)
    return Gap(center, low, high, separated, a, b)


def judge(gap: Gap | None, tie_band: float = TIE_BAND) -> str:
    """``a``, ``b`` (who leads), ``tie`` or ``open`` for one gap."""
    if gap is None:
        return "open"
    band = math.log1p(tie_band)
    if gap.separated:
        return "a" if gap.log_ratio > 0 else "b"
    if gap.low is None or gap.high is None:
        return "open"
    if gap.low > band:
        return "a"
    if gap.high < -band:
        return "b"
    if -band <= gap.low and gap.high <= band:
        return "tie"
    return "open"


@dataclass(frozen=True)
class PointOutcome:
    outcome: str  # decided | tie | open
    leader: str | None
    reason: str


def decide(samples: Mapping[str, Sequence[float]], cap: int,
           tie_band: float = TIE_BAND) -> PointOutcome:
    """Whether the point needs more repetitions: the fastest against every other contender."""
    counts = {name: len(values) for name, values in samples.items()}
    least = min(counts.values(), default=0)
    ranked = sorted(samples, key=lambda n: _median(samples[n]), reverse=True)
    if len(ranked) < 2:
        return PointOutcome("decided", ranked[0] if ranked else None, f"one contender, {least} runs")
    leader = ranked[0]
    verdicts = [judge(compare(samples[leader], samples[other]), tie_band) for other in ranked[1:]]
    outliers = sum(len(set_aside_outliers(v).outliers) for v in samples.values())
    note = f" ({outliers} outlier{'s' if outliers != 1 else ''} set aside)" if outliers else ""
    if all(v == "a" for v in verdicts):
        return PointOutcome("decided", leader, f"decided after {least}{note}")
    if all(v in ("a", "tie") for v in verdicts) and "tie" in verdicts:
        return PointOutcome("tie", None, f"tie after {least}{note}")
    if least >= cap:
        return PointOutcome("open", None, f"cap {cap}: still open{note}")
    return PointOutcome("open", None, f"open after {least}{note}")


def _median(values: Sequence[float]) -> float:
    kept = set_aside_outliers(values).kept
    return statistics.median(kept) if kept else 0.0

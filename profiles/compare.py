"""Two contenders at one test point, on the log scale (speed ratios).

With repetitions on both sides: a starved repetition (far below its siblings) is set aside
and named, the ratio is the ratio of geometric means, and Welch's t-test on the logs gives a
p-value. Where every kept repetition of one side beats every kept repetition of the other by
more than the tie band and by more than either side's own spread (the two groups lie further
apart than either is wide), the gap is *separated*: decisive however few repetitions there
are. A busy machine can push one side's five repetitions above the other's by chance; it
rarely pushes them further apart than they are wide.
With a printed mean and spread but no repetitions, the spread is used with the repetition
count the data states, or the fewest it allows (two, where a spread is printed); a spread
printed as 0.00 is taken at half its last digit. One repetition is a point estimate: no
p-value. A printed ``mean ± sd`` still bounds its repetitions: none lies further than
sd·(n−1)/√n from the mean (``backends.stats.max_deviation``; at most 2.85 sd for any count up
to ten). Two such ranges that cannot overlap, with means beyond the tie band, are separated
whatever the count was (``bounded``); between that and the tie band the test above stays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from backends import stats
from profiles.contenders import Measure
from profiles.outcome import Outlier


@dataclass(frozen=True)
class PointTest:
    a: Measure
    b: Measure
    log_ratio: float  # ln(a / b): > 0 when a is faster
    p_value: float | None
    separated: bool  # every kept repetition of the faster side above every one of the slower, by the tie band
    every_repetition: bool  # separated without setting any repetition aside
    reps: tuple[int, int]
    outliers: tuple[Outlier, ...]
    bounded: bool = False  # separated by the ranges printed means and spreads allow (no samples)

    @property
    def ratio(self) -> float:
        return math.exp(self.log_ratio)

    @property
    def one_run(self) -> bool:
        return self.p_value is None and not self.separated


@dataclass(frozen=True)
class _Side:
    log_mean: float
    log_sd: float
    n: int
    kept: tuple[float, ...]
    outliers: tuple[Outlier, ...]
    all_values: tuple[float, ...]
    bounds: tuple[float, float] | None = None  # where every repetition lies (linear t/s)


def _side(m: Measure) -> _Side:
    """A measure's statistics, worked out once per measure: every pair, rank and score that
    meets it asks again (a frozen dataclass, so the instance's own dict holds the answer)."""
    cached = m.__dict__.get("_side")
    if cached is None:
        cached = m.__dict__["_side"] = _work_out(m)
    return cached


def _work_out(m: Measure) -> _Side:
    if len(m.values) >= 2:
        dropped = set(stats.starved(m.values))
        kept = tuple(v for i, v in enumerate(m.values) if i not in dropped)
        outliers = tuple(Outlier(m.contender, m.model, m.point.name, m.values[i],
                                 tuple(v for j, v in enumerate(m.values) if j != i)) for i in sorted(dropped))
        mean, sd = stats.log_moments(kept)
        return _Side(mean, sd, len(kept), kept, outliers, m.values,
                     (min(kept), max(kept)) if len(kept) >= 2 else None)
    if len(m.values) == 1:
        return _Side(math.log(m.values[0]), 0.0, 1, m.values, (), m.values)
    n = m.n if m.n is not None else m.n_min
    sd = m.sd if m.sd > 0 else (m.resolution / 2.0 if n >= 2 and m.resolution > 0 else 0.0)
    count = n if sd > 0 else min(n, 1) or 1
    return _Side(math.log(m.mean), sd / m.mean if m.mean > 0 else 0.0, count, (), (), (),
                 _summary_bounds(m) if count >= 2 else None)


def _summary_bounds(m: Measure) -> tuple[float, float]:
    """Where every repetition behind a printed mean ± sd lies, the printing's rounding included."""
    half = m.resolution / 2.0
    reach = stats.max_deviation(m.n) * (m.sd + half) + half
    return m.mean - reach, m.mean + reach


def log_mean(m: Measure) -> float:
    """The log of a measure's speed as every comparison sees it (starved repetitions set aside)."""
    return _side(m).log_mean


def run_test(sa: _Side, sb: _Side, log_ratio: float) -> float | None:
    """The point's p-value: ``backends.stats.run_p_value`` (one run's wobble, not sqrt(n))."""
    return stats.run_p_value(log_ratio, sa.log_sd, sa.n, sb.log_sd, sb.n)


def compare(a: Measure, b: Measure, tie_fraction: float) -> PointTest:
    sa, sb = _side(a), _side(b)
    log_ratio = sa.log_mean - sb.log_mean
    p = run_test(sa, sb, log_ratio) if sa.n >= 2 and sb.n >= 2 else None
    fast, slow = (sa, sb) if log_ratio > 0 else (sb, sa)
    separated = stats.separated(fast.kept, slow.kept, tie_fraction)
    bounded = (not separated and not (fast.kept and slow.kept) and fast.bounds is not None
               and slow.bounds is not None and fast.bounds[0] > slow.bounds[1]
               and abs(log_ratio) >= math.log1p(tie_fraction))
    every = separated and not fast.outliers and not slow.outliers
    return PointTest(a=a, b=b, log_ratio=log_ratio, p_value=p, separated=separated or bounded,
                     every_repetition=every, reps=(sa.n, sb.n), outliers=sa.outliers + sb.outliers,
                     bounded=bounded)

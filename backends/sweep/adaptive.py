"""When to stop measuring a test point: the gap between contenders on the log scale.

The statistics are the verdict's own (``backends.stats``), applied while measuring:
speeds are compared as ratios of geometric means of the counted repetitions; a
repetition far below its siblings (a starved run on a busy machine) is set aside and
named; the uncertainty of a point is one run's wobble (repetitions run back to back share
the machine's state, so it is not shrunk by sqrt(n)). A point is

* *decided* when the leader's lead is either wide and separated (every repetition of
  the leader at least ``WIDE_RATIO`` times every repetition of the other, and beyond
  either group's width), or, with three or more repetitions a side, beyond the tie band
  and significant at this look's share of the error rate;
* a *tie* when the whole interval of the log-ratio (at this look's share) lies inside the
  tie band, with three or more repetitions a side;
* *open* otherwise: it gets another block of repetitions, until the cap.

The looks are planned (``looks``: after the first block of ``FIRST_BLOCK``, then every
``STEP`` more to the cap), and the error rate is controlled across all of them: the looks
that test split ``alpha`` evenly (Bonferroni alpha spending), so looking again after every
block cannot add up to more than ``alpha``. With two repetitions a side no t-test is
trusted, and separation alone is not enough on a busy machine, where a whole block shifts:
one build under two names on two busy cores came out separated after two repetitions in
20 of 240 recorded points, by up to 2.9x. Hence the wide margin, which those points never
reach; a 100x gap between a CPU and a software-rendered GPU stops after two.

A point still open is also decided by its neighbours (``by_neighbours``): when the points
beside it on its series (the same test at the depths before and after it) are decided by
the wide margin for one leader, and its own repetitions put that leader ahead, separated
and at least ``NEIGHBOUR_RATIO`` apart. That separation alone never happened in the
recorded A/A points (the widest was 2.9x), and neighbours decided by the wide margin
never happen there either: both must hold, so the rule adds no chance of a false lead
where the builds are alike, and saves a block where one starved repetition pulled a
clear lead inside the wide margin.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from backends import stats
from backends.journal.sweep import TestPoint

FIRST_BLOCK = 2  # counted repetitions per contender in -r auto's first block
STEP = 2  # repetitions added per look to a point that is still open
WIDE_RATIO = 4.0  # a separated lead this wide is trusted from two repetitions a side
NEIGHBOUR_RATIO = 3.0  # a separated lead this wide is trusted beside neighbours decided wide
AUTO = "auto"  # -r auto, and Setup's reps field


def repetition_changes(text: str) -> dict[str, object]:
    """A repetition count as written (``-r``, Setup's reps field) as the sweep's changes:
    ``auto`` adapts from a first block of ``FIRST_BLOCK``, a whole number is fixed.
    ValueError for anything else."""
    if text.strip().lower() == AUTO:
        return {"adaptive": True, "repetitions": FIRST_BLOCK}
    return {"adaptive": False, "repetitions": int(text)}


def looks(cap: int, first: int = FIRST_BLOCK, step: int = STEP) -> int:
    """How many looks the plan holds: after the first block, then every ``step`` to the cap."""
    return 1 + max(0, -(-(cap - first) // step))


def look_alpha(cap: int, first: int = FIRST_BLOCK, alpha: float = stats.ALPHA) -> float:
    """Each look's share of ``alpha``: the looks with a t-test (three or more repetitions
    a side) split it evenly, so the run's chance of a false lead stays under ``alpha``."""
    testing = looks(cap, first) - (1 if first < 3 else 0)
    return alpha / max(1, testing)


@dataclass(frozen=True)
class Gap:
    """``a`` against ``b`` at one point: log-ratio (> 0: a faster), p-value, interval."""

    log_ratio: float
    p_value: float | None  # None: one repetition on a side
    low: float | None
    high: float | None
    separated: bool
    outliers: int  # repetitions set aside on either side
    few: bool = False  # fewer than three repetitions on a side: no t-test is trusted
    spacing: float = 0.0  # log of the leader's slowest over the other's fastest repetition

    @property
    def ratio(self) -> float:
        return math.exp(self.log_ratio)


def kept(values: Sequence[float]) -> tuple[list[float], int]:
    """The repetitions that count and how many were set aside as starved."""
    good = [v for v in values if v > 0 and math.isfinite(v)]
    dropped = set(stats.starved(good))
    return [v for i, v in enumerate(good) if i not in dropped], len(dropped)


def compare(a_values: Sequence[float], b_values: Sequence[float],
            tie_fraction: float = stats.TIE_FRACTION, alpha: float = stats.ALPHA) -> Gap | None:
    """The gap between two contenders' repetitions (interval at ``alpha``); None when a
    side has none."""
    (a, a_out), (b, b_out) = kept(a_values), kept(b_values)
    if not a or not b:
        return None
    (ma, sa), (mb, sb) = stats.log_moments(a), stats.log_moments(b)
    log_ratio = ma - mb
    fast, slow = (a, b) if log_ratio > 0 else (b, a)
    gap_separated = stats.separated(fast, slow, tie_fraction)
    few = min(len(a), len(b)) < 3
    spacing = math.log(min(fast)) - math.log(max(slow))
    if len(a) < 2 or len(b) < 2:
        return Gap(log_ratio, None, None, None, gap_separated, a_out + b_out, few, spacing)
    p = stats.run_p_value(log_ratio, sa, len(a), sb, len(b))
    half = stats.t_quantile(stats.run_df(sa, len(a), sb, len(b)), alpha) * math.hypot(sa, sb)
    return Gap(log_ratio, p, log_ratio - half, log_ratio + half, gap_separated, a_out + b_out,
               few, spacing)


def judge(gap: Gap | None, tie_fraction: float = stats.TIE_FRACTION,
          alpha: float = stats.ALPHA) -> str:
    """``a``, ``b`` (who leads), ``tie`` or ``open`` for one gap, at one look's ``alpha``."""
    if gap is None:
        return "open"
    band = math.log1p(tie_fraction)
    leader = "a" if gap.log_ratio > 0 else "b"
    if gap.separated and gap.spacing > math.log(WIDE_RATIO):
        return leader
    if gap.few:
        return "open"  # two repetitions a side: neither a t-test nor a narrow separation
    if abs(gap.log_ratio) > band and gap.p_value is not None and gap.p_value < alpha:
        return leader
    if gap.low is not None and gap.high is not None and -band <= gap.low and gap.high <= band:
        return "tie"
    return "open"


@dataclass(frozen=True)
class PointOutcome:
    outcome: str  # decided | tie | open | fixed | failed
    leader: str | None
    reason: str


def decide(samples: Mapping[str, Sequence[float]], cap: int,
           tie_fraction: float = stats.TIE_FRACTION, first: int = FIRST_BLOCK) -> PointOutcome:
    """Whether the point needs more repetitions: the fastest against every other contender,
    at this look's share of the error rate (``first``: the first block's repetitions)."""
    least = min((len(v) for v in samples.values()), default=0)
    ranked = sorted(samples, key=lambda n: _log_mean(samples[n]), reverse=True)
    if len(ranked) < 2:
        return PointOutcome("decided", ranked[0] if ranked else None, f"one contender, {least} runs")
    leader = ranked[0]
    alpha = look_alpha(cap, first)
    gaps = [compare(samples[leader], samples[other], tie_fraction, alpha) for other in ranked[1:]]
    verdicts = [judge(g, tie_fraction, alpha) for g in gaps]
    outliers = sum(g.outliers for g in gaps if g is not None)
    note = f" ({outliers} starved repetition{'s' if outliers != 1 else ''} set aside)" if outliers else ""
    if all(v == "a" for v in verdicts):
        return PointOutcome("decided", leader, f"decided after {least}{note}")
    if all(v in ("a", "tie") for v in verdicts):
        return PointOutcome("tie", None, f"tie after {least}{note}")
    if least >= cap:
        return PointOutcome("open", None, f"cap {cap}: still open{note}")
    return PointOutcome("open", None, f"open after {least}{note}")


class MeasuredHow(Protocol):
    """How a sweep measures its points (``backends.sweep.spec.SweepSpec`` is one)."""

    @property
    def adaptive(self) -> bool: ...
    @property
    def repetitions(self) -> int: ...
    @property
    def max_repetitions(self) -> int: ...


def settle(spec: MeasuredHow, samples: Mapping[str, Sequence[float]], failed: Sequence[str],
           neighbours: Callable[[], Sequence[Mapping[str, Sequence[float]]]]) -> PointOutcome:
    """Where a point stands after a round: failed, fixed, decided, a tie, or open (it may
    get another block unless at the cap). ``neighbours``: its series neighbours' samples."""
    if failed and (not spec.adaptive or len(samples) < 2):
        return PointOutcome("failed", None, "; ".join(f"{n} failed" for n in failed))
    if not spec.adaptive:
        return PointOutcome("fixed", None, f"{spec.repetitions} repetitions (fixed)")
    if len(samples) < 2:
        return PointOutcome("decided", None, "one contender measured")
    outcome = decide(samples, spec.max_repetitions, first=spec.repetitions)
    if outcome.outcome == "open":
        return by_neighbours(samples, neighbours()) or outcome
    return outcome


def wide_leader(samples: Mapping[str, Sequence[float]], ratio: float = WIDE_RATIO) -> str | None:
    """The contender ahead of every other, separated and every repetition at least
    ``ratio`` times every one of the other's; None when there is none."""
    ranked = sorted(samples, key=lambda n: _log_mean(samples[n]), reverse=True)
    if len(ranked) < 2:
        return None
    leader = ranked[0]
    for other in ranked[1:]:
        gap = compare(samples[leader], samples[other])
        if gap is None or gap.log_ratio <= 0 or not gap.separated or gap.spacing <= math.log(ratio):
            return None
    return leader


def by_neighbours(samples: Mapping[str, Sequence[float]],
                  neighbours: Sequence[Mapping[str, Sequence[float]]]) -> PointOutcome | None:
    """A point decided by its neighbours on the same series (see the module's words);
    None when the rule does not hold."""
    leader = wide_leader(samples, NEIGHBOUR_RATIO)
    if leader is None or not neighbours or any(wide_leader(n) != leader for n in neighbours):
        return None
    least = min(len(v) for v in samples.values())
    return PointOutcome("decided", leader, f"decided after {least}, beside neighbours decided by "
                                           f"{WIDE_RATIO:g}x")


def series_neighbours(point: TestPoint, points: Sequence[TestPoint]) -> list[TestPoint]:
    """The points beside ``point`` on its series: the same test at the nearest depth below
    and the nearest above."""
    same = sorted((p for p in points if (p.n_prompt, p.n_gen) == (point.n_prompt, point.n_gen)),
                  key=lambda p: p.depth)
    if point not in same:
        return []
    at = same.index(point)
    return [same[i] for i in (at - 1, at + 1) if 0 <= i < len(same)]


def _log_mean(values: Sequence[float]) -> float:
    good, _ = kept(values)
    return stats.log_moments(good)[0] if good else -math.inf

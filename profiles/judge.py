"""One workload class and phase: the leader, the best of every other backend, and the verdict.

The leader is the contender with the best geometric-mean speed ratio over the points it
shares with the others. It is compared with the best contender of every other backend (the
question is ROCm against Vulkan); with one backend only, with the runner-up. A point counts
for a side when its lead is beyond the tie band and either significant after the
Benjamini-Hochberg correction or separated on every kept repetition. The class verdict:

* decisive: every tested point separated in the leader's favour;
* high/moderate: the class-level test (Stouffer over the points' tests, corrected across
  classes) below 1%/5%, no point against, and the margin beyond the tie band;
* tie: the margin inside the tie band and no point for either side;
* no clear winner: significant points on both sides (the lead changes), or a lead that
  is not significant (low);
* one run: single repetitions everywhere, so a point estimate (``lead``) or a tie.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from backends import stats
from backends.journal.sweep import TestPoint
from profiles.compare import PointTest, compare, log_mean
from profiles.contenders import Measure
from profiles.outcome import CellComparison, Contender, PairComparison
from profiles.wording import margin_text

TestKey = tuple[str, str, str, TestPoint]


@dataclass
class TestBook:
    """Every point test the recommendation makes, so one correction covers them all."""

    tie_fraction: float
    alpha: float
    tests: dict[TestKey, PointTest] = field(default_factory=dict)
    q: dict[TestKey, float] = field(default_factory=dict)

    def get(self, a: Measure, b: Measure) -> PointTest:
        key = (a.contender, b.contender, a.model, a.point)
        if key not in self.tests:
            self.tests[key] = compare(a, b, self.tie_fraction)
        return self.tests[key]

    def correct(self) -> None:
        keys = [k for k, t in self.tests.items() if t.p_value is not None]
        qs = stats.benjamini_hochberg([p if (p := self.tests[k].p_value) is not None else 1.0 for k in keys])
        self.q = dict(zip(keys, qs))

    def side(self, test: PointTest) -> int:
        """+1 the first contender's lead counts, -1 the second's, 0 neither."""
        if abs(test.log_ratio) < math.log1p(self.tie_fraction):
            return 0
        q = self.q.get((test.a.contender, test.b.contender, test.a.model, test.a.point))
        if test.separated or (q is not None and q < self.alpha):
            return 1 if test.log_ratio > 0 else -1
        return 0


def score(measures: Mapping[str, Mapping[tuple[str, TestPoint], Measure]], name: str,
          logs: Mapping[tuple[str, tuple[str, TestPoint]], float] | None = None) -> float:
    """Mean log speed ratio of a contender against every other, over shared points.

    The same log-ratio the point tests use (starved repetitions set aside), so the leader is
    never the side its own comparison puts behind; ``logs`` holds each measure's log mean
    when the caller has them (each is then worked out once, not once per opponent).
    """
    def log_of(who: str, key: tuple[str, TestPoint]) -> float:
        return logs[(who, key)] if logs is not None else log_mean(measures[who][key])

    mine = measures[name]
    ratios = []
    for other, theirs in measures.items():
        if other == name:
            continue
        shared = [k for k in mine if k in theirs]
        if shared:
            ratios.append(math.fsum(log_of(name, k) - log_of(other, k) for k in shared) / len(shared))
    return math.fsum(ratios) / len(ratios) if ratios else -math.inf


def opponents(leader: str, ranked: Sequence[str], backend: Mapping[str, str]) -> list[str]:
    """The best contender of every other backend; with one backend, the others (up to four)."""
    seen = {backend.get(leader, leader)}
    out = []
    for name in ranked:
        family = backend.get(name, name)
        if name != leader and family not in seen:
            seen.add(family)
            out.append(name)
    if not out:  # one backend: every other contender, the closest first in the verdict
        out = [n for n in ranked if n != leader][:4]
    return out


@dataclass(frozen=True)
class PairResult:
    comparison: PairComparison
    tests: tuple[PointTest, ...]
    class_p: float | None
    sides: tuple[int, ...]


def pair(book: TestBook, leader: Mapping[tuple[str, TestPoint], Measure],
         other: Mapping[tuple[str, TestPoint], Measure]) -> PairResult:
    keys = sorted((k for k in leader if k in other), key=lambda k: (k[0], k[1].depth + k[1].n_prompt + k[1].n_gen))
    tests = tuple(book.get(leader[k], other[k]) for k in keys)
    sides = tuple(book.side(t) for t in tests)
    signed = [(1.0 if t.log_ratio >= 0 else -1.0, t.p_value) for t in tests if t.p_value is not None]
    class_p = stats.stouffer([(d, p) for d, p in signed if p is not None]) if signed else None
    mean_log = math.fsum(t.log_ratio for t in tests) / len(tests) if tests else 0.0
    above = total = 0
    for t in tests:
        fast = t.a.values
        slow_max = max(t.b.values) if t.b.values else math.inf
        above += sum(1 for v in fast if v > slow_max)
        total += len(fast)
    cells = tuple(_cell(book, t, s) for t, s in zip(tests, sides))
    comparison = PairComparison(
        leader=next(iter(leader.values())).contender, other=next(iter(other.values())).contender,
        ratio=math.exp(mean_log), margin_pct=(math.exp(mean_log) - 1.0) * 100.0, p_value=class_p,
        cells=cells, significant_for=sides.count(1), significant_against=sides.count(-1),
        separated_for=sum(1 for t in tests if t.separated and t.log_ratio > 0),
        one_run=all(t.one_run for t in tests), reps_above=above, reps_total=total,
        bounded_for=sum(1 for t in tests if t.bounded and t.log_ratio > 0))
    return PairResult(comparison, tests, class_p, sides)


def _cell(book: TestBook, t: PointTest, side: int) -> CellComparison:
    key = (t.a.contender, t.b.contender, t.a.model, t.a.point)
    return CellComparison(model=t.a.model, test=t.a.point.name, context=t.a.context,
                          baseline_ts=t.b.mean, challenger_ts=t.a.mean, ratio=t.ratio,
                          p_value=t.p_value, q_value=book.q.get(key), separated=t.separated,
                          significant=side, reps=f"{t.reps[0]}:{t.reps[1]}")


@dataclass(frozen=True)
class Call:
    status: str
    confidence: str


def call(result: PairResult, class_q: float | None, tie_fraction: float, alpha: float) -> Call:
    c = result.comparison
    tested = [t for t in result.tests if not t.one_run]
    beyond_tie = c.ratio >= 1.0 + tie_fraction
    if not tested:
        return Call("lead" if beyond_tie else "tie", "one run")
    # Starved repetitions show other work on the machine. Its load stays with one process
    # or one block for a while, so repetitions stop being independent; moderate evidence
    # from such a run is not a winner (an A/A run on a busy machine reached "moderate").
    busy = any(t.outliers for t in result.tests)
    if c.significant_for and c.significant_against:
        mostly = c.significant_for >= 2 * c.significant_against and beyond_tie
        if mostly and class_q is not None and class_q < alpha and not busy:
            return Call("winner", "moderate")  # with a caveat naming where the other side leads
        return Call("no clear winner", "none")
    if beyond_tie and all(t.separated and t.log_ratio > 0 for t in tested):
        return Call("winner", "decisive")
    if not beyond_tie and not c.significant_for:
        return Call("tie", "none") if not c.significant_against else Call("no clear winner", "none")
    if class_q is not None and class_q < alpha and not c.significant_against:
        if class_q >= alpha / 5 and busy:
            return Call("no clear winner", "low")
        return Call("winner", "high" if class_q < alpha / 5 else "moderate")
    return Call("no clear winner", "low" if beyond_tie else "none")


def repetitions_text(c: PairComparison) -> str:
    if c.bounded_for and not c.reps_total:
        return "on every repetition the printed means ± sd allow"
    if not c.reps_total:
        return ""
    if c.reps_above == c.reps_total:
        return "on every repetition"
    return f"on {c.reps_above} of {c.reps_total} repetitions"


def headline(status: str, confidence: str, winner: str | None, c: PairComparison | None,
             tied: Sequence[str]) -> str:
    if status in ("winner", "lead") and winner and c is not None:
        return f"{winner} {margin_text(c.ratio)} ({confidence})"
    if status == "tie":
        return f"tie: {', '.join(tied)}"
    return status


def group_measures(measures: Sequence[Measure]) -> dict[str, dict[tuple[str, TestPoint], Measure]]:
    out: dict[str, dict[tuple[str, TestPoint], Measure]] = defaultdict(dict)
    for m in measures:
        out[m.contender][(m.model, m.point)] = m
    return out


def rank(measures: Mapping[str, Mapping[tuple[str, TestPoint], Measure]]) -> list[str]:
    logs = {(n, k): log_mean(m) for n, ms in measures.items() for k, m in ms.items()}
    scores = {n: score(measures, n, logs) for n in measures}
    return sorted(measures, key=lambda n: scores[n], reverse=True)


def backend_map(contenders: Sequence[Contender]) -> dict[str, str]:
    return {c.label: c.backend for c in contenders}


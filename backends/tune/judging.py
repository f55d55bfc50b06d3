"""A candidate against a baseline (the defaults, llama.cpp's own fit), with the verdict's
own statistics (``backends.sweep.adaptive``): starved repetitions set aside, speeds as
ratios of geometric means, the tie band, a significance or separation test per probe point.

A candidate beats its baseline only when it is decided better at some point and worse at
none; its gain is then the ratio of the geometric means with its 95 % interval, never one
repetition's figure. Repetitions of one setting spread wider than the gap between the two
are said aloud: on a loaded machine one process can run a thousand times slower than the
next with the same settings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from backends import stats
from backends.journal.sweep import TestPoint
from backends.sweep.adaptive import Gap, compare, judge, kept

TIE_FRACTION = stats.TIE_FRACTION


@dataclass(frozen=True)
class Against:
    """``candidate`` against ``baseline`` over the probe points."""

    better: bool  # decided better at some point, worse at none
    tie: bool  # within the tie band at every point
    wide: bool  # at some point one side's repetitions spread wider than the gap
    gain: str  # ``+5% (+2% to +8%)`` per point; the robust figure, said only when ``better``
    spread: str  # each side's kept repetitions per point: ``ub=32 33.8-67,840 t/s, ...``
    reason: str  # why not decided (when not ``better`` nor ``tie``)
    basis: str = "geometric means, 95% interval"  # how the gain was figured
    worse: bool = False  # decided slower at some point

    @property
    def decided(self) -> bool:
        """Whether more repetitions could change the outcome: not when it is decided either
        way or a tie."""
        return self.better or self.tie or self.worse


def rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def pct(log_gap: float) -> str:
    """A log ratio as a signed percentage: ``+38%``."""
    return f"{(math.exp(log_gap) - 1) * 100:+.0f}%"


def _width(values: Sequence[float]) -> float:
    return math.log(max(values) / min(values)) if values else 0.0


def _gain(gap: Gap) -> str:
    if gap.low is not None and gap.high is not None:
        return f"{pct(gap.log_ratio)} ({pct(gap.low)} to {pct(gap.high)})"
    return f"{pct(gap.log_ratio)} (every repetition beyond every other)" if gap.separated else pct(gap.log_ratio)


def _range(label: str, values: Sequence[float], dropped: int) -> str:
    good, _ = kept(values)
    shown = f"{rate(min(good))}-{rate(max(good))}" if len(good) > 1 else rate(good[0])
    aside = f", {dropped} starved set aside" if dropped else ""
    return f"{label} {shown} t/s ({len(good)} run{'s' if len(good) != 1 else ''}{aside})"


def against(candidate: Mapping[str, Sequence[float]], baseline: Mapping[str, Sequence[float]],
            points: Sequence[TestPoint], labels: tuple[str, str]) -> Against | None:
    """The comparison over the points both sides measured; None when they share none."""
    shared = [p for p in points if candidate.get(p.key) and baseline.get(p.key)]
    if not shared:
        return None
    band = math.log1p(TIE_FRACTION)
    verdicts, gains, spreads, wide, weak = [], [], [], False, []
    several = len(shared) > 1
    for point in shared:
        a, b = candidate[point.key], baseline[point.key]
        gap = compare(a, b)
        if gap is None:
            continue
        verdict = judge(gap)
        verdicts.append(verdict)
        (kept_a, out_a), (kept_b, out_b) = kept(a), kept(b)
        width = max(_width(kept_a), _width(kept_b))
        wide = wide or width > max(abs(gap.log_ratio), band)
        name = f"{point.name} " if several else ""
        gains.append(name + _gain(gap))
        spreads.append(f"{name}{_range(labels[0], a, out_a)}, {_range(labels[1], b, out_b)}")
        if verdict == "open":
            weak.append(f"{name}p={gap.p_value:.2f}" if gap.p_value is not None else f"{name}one run a side")
    if not verdicts:
        return None
    better = "b" not in verdicts and "open" not in verdicts and "a" in verdicts
    tie = all(v == "tie" for v in verdicts) or (
        not better and not wide and not weak and "a" not in verdicts)
    why = "spread too wide" if wide else "not significant"
    reason = f"{why}: {'; '.join(spreads)}" + (f"; {', '.join(weak)}" if weak and not wide else "")
    return Against(better=better, tie=tie, wide=wide, worse="b" in verdicts, gain=", ".join(gains),
                   spread="; ".join(spreads), reason=reason)


def against_text(result: Against | None, baseline: str) -> str:
    """The gain over ``baseline`` in words, honest about what the repetitions allow."""
    if result is None:
        return f"not compared with {baseline}: no probe point measured on both"
    if result.better:
        wobble = f"; wobble wider than the gain: {result.spread}" if result.wide else ""
        return f"{result.gain} over {baseline} on the probe ({result.basis}){wobble}"
    if result.tie:
        return f"within {TIE_FRACTION:.0%} of {baseline} on the probe"
    return f"not clearly better than {baseline} ({result.reason})"


PAIRED_MINIMUM = 3  # processes that ran both sides, for a paired test


def _paired_logs(candidate: Mapping[int, Sequence[float]], baseline: Mapping[int, Sequence[float]]) -> list[float]:
    """Per process that ran both sides: the log ratio of their geometric means there."""
    logs = []
    for process in sorted(set(candidate) & set(baseline)):
        a, b = kept(candidate[process])[0], kept(baseline[process])[0]
        if a and b:
            logs.append(stats.log_moments(a)[0] - stats.log_moments(b)[0])
    return logs


def paired(candidate: Mapping[str, Mapping[int, Sequence[float]]],
           baseline: Mapping[str, Mapping[int, Sequence[float]]], points: Sequence[TestPoint],
           pooled: Against | None) -> Against | None:
    """``candidate`` against ``baseline`` paired by process: where both ran one after the other
    in the same llama-bench process, whatever slowed that process slowed both, so the ratio
    within each process is what counts, and the processes are the independent repetitions
    (the interval shrinks with their number, which one run's wobble across processes would
    not allow). None when some point has fewer than ``PAIRED_MINIMUM`` such processes; the
    spreads said are ``pooled``'s (all repetitions)."""
    if pooled is None:
        return None
    band = math.log1p(TIE_FRACTION)
    gains, verdicts, weak = [], [], []
    several = len(points) > 1
    for point in points:
        logs = _paired_logs(candidate.get(point.key, {}), baseline.get(point.key, {}))
        if len(logs) < PAIRED_MINIMUM:
            return None
        n = len(logs)
        mean = math.fsum(logs) / n
        error = math.sqrt(math.fsum((x - mean) ** 2 for x in logs) / (n - 1) / n)
        half = stats.t_quantile(n - 1) * error
        p_value = stats.student_t_two_sided_p(mean / error, n - 1) if error else float(not mean)
        name = f"{point.name} " if several else ""
        gains.append(f"{name}{pct(mean)} ({pct(mean - half)} to {pct(mean + half)})")
        if abs(mean) > band and p_value < stats.ALPHA:
            verdicts.append("a" if mean > 0 else "b")
        elif -band <= mean - half and mean + half <= band:
            verdicts.append("tie")
        else:
            verdicts.append("open")
            weak.append(f"{name}p={p_value:.2f}")
    better = "a" in verdicts and "b" not in verdicts and "open" not in verdicts
    tie = all(v == "tie" for v in verdicts)
    count = min(len(_paired_logs(candidate.get(p.key, {}), baseline.get(p.key, {}))) for p in points)
    basis = f"paired within {count} processes, geometric means, 95% interval"
    reason = f"not significant, {', '.join(gains)} ({basis}); {pooled.spread}"
    if weak:
        reason += f"; {', '.join(weak)}"
    # Processes far apart are what the pairing takes out: no wobble to say aloud.
    return Against(better=better, tie=tie, wide=False, worse="b" in verdicts, gain=", ".join(gains),
                   spread=pooled.spread,
                   reason=reason, basis=basis)

"""What tuning was worth, from a run's events: each contender's choice, best against the
defaults at the sweep's middle depth, and the duel called both ways.

    pp512 @ d8192: at each build's best (rocm ub=2048, vulkan ub=512) rocm +4.1% (+2.0% to
    +6.3%); at the defaults (ub=512) vulkan +70% (+61% to +79%)

Each lead is the verdict's: the ratio of geometric means with its 95 % interval, and ``not
decided`` where the verdict's test does not decide it.

The best side is the sweep's own results at the middle depth (every contender ran at its
chosen settings); the defaults side is the tune's defaults block for contenders whose
choice differs and the sweep's results for those whose choice is their defaults.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backends import stats
from backends.journal.sweep import ResultReceived, TestPoint
from backends.journal.tune import Candidate, ProbeMeasured, TuneChosen, TuneFinished, TuneStarted
from backends.sweep.adaptive import compare, judge, kept
from profiles.wording import margin_text

if TYPE_CHECKING:
    from profiles.model import Profile

BENCH_BATCH = 2048
TIE_FRACTION = stats.TIE_FRACTION


@dataclass(frozen=True)
class TunedContender:
    build: str
    chosen: str  # ``ub=2048``
    defaults: str  # ``ub=512``
    settings: tuple[str, ...]  # the llama-bench arguments the duel ran with
    reason: str
    probes: int = 0
    seconds: float = 0.0
    # best / default at the middle depth, per test (``pp512 @ d8192``): what tuning was worth,
    # as the ratio of geometric means (starved repetitions set aside), as the verdict compares
    worth: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Tuning:
    budget_s: float
    seconds: float
    free: tuple[str, ...]
    depth: int
    contenders: tuple[TunedContender, ...]
    lines: tuple[str, ...] = ()  # best against best and at the defaults, per test

    def contender(self, name: str) -> TunedContender | None:
        return next((c for c in self.contenders if c.build == name), None)


def brief(candidate: Candidate) -> str:
    """The label without ``-b`` where it only follows ``-ub`` (b = max(2048, ub))."""
    if candidate.ubatch is not None and candidate.batch == max(BENCH_BATCH, candidate.ubatch):
        parts = [p for p in candidate.label.split() if not p.startswith("b=")]
        return " ".join(parts) or "defaults"
    return candidate.label


def _log_mean(values: Sequence[float]) -> float:
    good, _ = kept(values)
    return stats.log_moments(good)[0] if good else -math.inf


def _lead(samples: Mapping[str, Sequence[float]]) -> str:
    """The leader over the runner-up in the verdict's own terms: the ratio of geometric means
    (starved repetitions set aside) with its 95 % interval, and whether the verdict's test
    decides it: ``rocm +4.1% (+2.0% to +6.3%)``, ``level (within 3%)``, or ``vulkan +2.0%
    (-9.0% to +14%), not decided``."""
    ranked = sorted(samples, key=lambda name: _log_mean(samples[name]), reverse=True)
    top, runner_up = ranked[0], ranked[1]
    gap = compare(samples[top], samples[runner_up])
    if gap is None:
        return f"{top} ahead"
    verdict = judge(gap)
    if verdict == "tie":
        return f"level (within {TIE_FRACTION:.0%})"
    interval = f" ({_pct(gap.low)} to {_pct(gap.high)})" if gap.low is not None and gap.high is not None else ""
    lead = f"{top} {margin_text(gap.ratio)}{interval}"
    return lead if verdict == "a" else f"{lead}, not decided"


def _pct(log_gap: float) -> str:
    percent = (math.exp(log_gap) - 1) * 100
    if abs(percent) >= 10:
        return f"{percent:+.0f}%"
    return f"{round(percent, 1) + 0.0:+.1f}%"  # + 0.0: no "-0.0%"


def _samples(events: Sequence[Any], depth: int) -> tuple[dict[tuple[str, str], list[float]],
                                                          dict[tuple[str, str], list[float]],
                                                          dict[str, TestPoint]]:
    best: dict[tuple[str, str], list[float]] = {}
    defaults: dict[tuple[str, str], list[float]] = {}
    points: dict[str, TestPoint] = {}
    for event in events:
        if isinstance(event, ResultReceived) and event.result.point.depth == depth:
            best.setdefault((event.build, event.result.point.key), []).extend(event.result.samples_ts)
            points[event.result.point.key] = event.result.point
        elif isinstance(event, ProbeMeasured) and event.phase == "defaults":
            defaults.setdefault((event.build, event.result.point.key), []).extend(event.result.samples_ts)
    return best, defaults, points


def tuning_from_events(events: Iterable[Any]) -> Tuning | None:
    """The run's tuning, or None for a run that was not tuned."""
    events = list(events)
    started = next((e for e in events if isinstance(e, TuneStarted)), None)
    if started is None:
        return None
    chosen = {e.build: e for e in events if isinstance(e, TuneChosen)}
    finished = [e for e in events if isinstance(e, TuneFinished)]
    depth = started.points[0].depth if started.points else 0
    best, defaults, points = _samples(events, depth)
    for (name, key), values in list(best.items()):
        pick = chosen.get(name)
        if pick is not None and not pick.changed:
            defaults.setdefault((name, key), values)
    contenders = []
    for name in started.builds:
        pick = chosen.get(name)
        if pick is None:
            continue
        worth = {points[key].name: math.exp(_log_mean(values) - _log_mean(defaults[(name, key)]))
                 for (build, key), values in best.items()
                 if build == name and defaults.get((name, key)) and kept(defaults[(name, key)])[0]}
        contenders.append(TunedContender(
            build=name, chosen=brief(pick.chosen), defaults=brief(pick.default),
            settings=pick.chosen.args(), reason=pick.reason, probes=pick.probes,
            seconds=pick.seconds, worth=worth))
    lines = _duel_lines([c for c in contenders], best, defaults, points)
    return Tuning(budget_s=started.budget_s, seconds=sum(f.seconds for f in finished),
                  free=started.free, depth=depth, contenders=tuple(contenders), lines=tuple(lines))


def _duel_lines(contenders: Sequence[TunedContender], best: Mapping[tuple[str, str], list[float]],
                defaults: Mapping[tuple[str, str], list[float]], points: Mapping[str, TestPoint]) -> list[str]:
    """Per test at the middle depth: the lead at each build's best and at the defaults."""
    if len(contenders) < 2 or all(c.chosen == c.defaults for c in contenders):
        return []
    lines = []
    names = [c.build for c in contenders]
    best_labels = ", ".join(f"{c.build} {c.chosen}" for c in contenders)
    own = {c.defaults for c in contenders}
    default_labels = own.pop() if len(own) == 1 else ", ".join(f"{c.build} {c.defaults}" for c in contenders)
    for key, point in sorted(points.items(), key=lambda kv: (kv[1].kind != "pp", kv[1].n_prompt, kv[1].n_gen)):
        at_best = {n: best[(n, key)] for n in names if best.get((n, key))}
        at_defaults = {n: defaults[(n, key)] for n in names if defaults.get((n, key))}
        if len(at_best) < 2 or len(at_defaults) < 2:
            continue
        lead_best, lead_default = _lead(at_best), _lead(at_defaults)
        lines.append(f"{point.name}: at each build's best ({best_labels}) {lead_best}; "
                     f"at the defaults ({default_labels}) {lead_default}")
    return lines


def worth_text(contender: TunedContender) -> str:
    """``rocm ub=2048 (defaults ub=512): pp512 @ d8192 x1.38, tg256 @ d8192 x1.00``."""
    if contender.chosen == contender.defaults:
        return f"{contender.build}: kept its defaults ({contender.defaults})"
    worth = ", ".join(f"{name} x{ratio:.2f}" for name, ratio in contender.worth.items())
    return f"{contender.build} {contender.chosen} (defaults {contender.defaults})" + (f": {worth}" if worth else "")


def tuning_lines(profile: Profile) -> list[str]:
    """The tuned settings per contender, what they were worth, the duel both ways, and every
    other difference between the contenders."""
    from profiles.confounds import confound_line

    lines: list[str] = []
    tuning = profile.tuning
    if tuning is not None:
        lines += ["", f"Tuned ({', '.join(tuning.free)} free, {tuning.seconds:.0f} s of a "
                      f"{tuning.budget_s:.0f} s budget):"]
        for contender in tuning.contenders:
            lines.append(f"- {worth_text(contender)}; runs with {' '.join(contender.settings) or 'its defaults'}")
            lines.append(f"  why: {contender.reason}")
        lines += [f"- {line}" for line in tuning.lines]
    if profile.confounds:
        lines += ["", confound_line(profile.confounds)]
    return lines

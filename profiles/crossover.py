"""Where the lead changes sides, on the axis that changes: tokens of context.

Context is depth plus the test's own tokens, so ``pp512`` and ``pp2048 @ d32768`` lie at 512
and 34,816. A crossover is reported only between a point where one side's lead counts
(significant after the correction, or separated, and beyond the tie band) and the next point
where the other side's does; it is placed between those two points, never finer than they
allow ("between 8K and 16K tokens of context"). Points in between that count for neither
side widen the interval. Where one side of the change rests on single runs (a point
estimate beyond the tie band, nothing to test), the crossover is still reported, marked
"one run: not tested".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from profiles.compare import PointTest
from profiles.outcome import PHASE_LABELS, Crossover
from profiles.wording import between_text


def _interpolate(tests: Sequence[PointTest], i: int, j: int) -> tuple[float, float | None]:
    """Where the log ratio passes zero between points i and j (linear in context)."""
    for k in range(i, j):
        r1, r2 = tests[k].log_ratio, tests[k + 1].log_ratio
        if r1 == r2 or (r1 > 0) == (r2 > 0):
            continue
        x1, x2 = tests[k].a.context, tests[k + 1].a.context
        f = r1 / (r1 - r2)
        d1, d2 = tests[k].a.point.depth, tests[k + 1].a.point.depth
        same_test = (tests[k].a.point.n_prompt, tests[k].a.point.n_gen) == (
            tests[k + 1].a.point.n_prompt, tests[k + 1].a.point.n_gen)
        return x1 + (x2 - x1) * f, (d1 + (d2 - d1) * f) if same_test else None
    lo, hi = tests[i].a.context, tests[j].a.context
    return (lo + hi) / 2.0, None


def point_sides(tests: Sequence[PointTest], sides: Sequence[int], tie_fraction: float) -> tuple[list[int], list[bool]]:
    """Each point's side with single runs' point estimates beyond the tie band added, and
    whether the side was tested."""
    out, tested = [], []
    for t, side in zip(tests, sides):
        if side == 0 and t.one_run and abs(t.log_ratio) >= math.log1p(tie_fraction):
            out.append(1 if t.log_ratio > 0 else -1)
            tested.append(False)
        else:
            out.append(side)
            tested.append(True)
    return out, tested


def find(tests: Sequence[PointTest], sides: Sequence[int], phase: str, workload: str,
         several_settings: bool, tested: Sequence[bool] | None = None) -> list[Crossover]:
    """Crossovers along one series (one model, phase and pair), tests sorted by context."""
    out: list[Crossover] = []
    last: int | None = None
    checked = list(tested) if tested is not None else [True] * len(sides)
    for j, side in enumerate(sides):
        if side == 0:
            continue
        if last is not None and sides[last] != side:
            at, at_depth = _interpolate(tests, last, j)
            before_test, after_test = tests[last], tests[j]
            before = before_test.a.contender if sides[last] > 0 else before_test.b.contender
            after = after_test.a.contender if side > 0 else after_test.b.contender
            low, high = before_test.a.context, after_test.a.context
            model = before_test.a.model
            who = "" if not several_settings else " (with the settings in their names)"
            sure = checked[last] and checked[j]
            sentence = (f"{PHASE_LABELS[phase].capitalize()} on {model}: the lead passes from {before} "
                        f"to {after}{who} {between_text(low, high)}{'' if sure else ' (one run: not tested)'}.")
            out.append(Crossover(model=model, phase=phase, workload=workload, low=low, high=high,
                                 at=at, at_depth=at_depth, leader_before=before, leader_after=after,
                                 sentence=sentence, significant=sure, tested=sure))
        last = j
    return out


def in_range(crossover: Crossover, low: int, high: int) -> bool:
    """The crossover's interval touches the context range [low, high)."""
    return crossover.low < high and crossover.high >= low and not math.isnan(crossover.at)

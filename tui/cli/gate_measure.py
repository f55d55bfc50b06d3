"""What ``llamaduel gate`` measures: the new build's grid, and the old build only as much as
the decision needs.

With the old build's folder still there and its figures saved in the profile:

1. *calibration*: the old build at the grid's cheapest point, to see whether this machine
   runs it as fast as when its figures were saved (``profiles.gate.drift_factor``);
2. *new*: the new build alone over the whole grid, in one llama-bench (a depth's context
   is filled once, not once per point);
3. the gate's own rule (slower beyond the threshold, and significantly) against the saved
   figures scaled by that drift, the calibration point against its fresh figures;
4. *beside*: every point that rule finds slower is measured again, the new build
   interleaved with the old one, and only those fresh figures decide it; a point still
   slower is measured once more with the old build first (*reversed*), and is slower only
   where both orders say so.

A build is called slower only by figures of both builds taken side by side, as before; a
point the saved figures clear costs no run of the old build. Without the old build's
figures, both builds run the whole grid interleaved (and again, reversed, where it came out
slower); without its folder, the new build is judged against the saved figures alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tui.cli import CommandError
from tui.cli.common import cancellable, say

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.journal.journal import RunEvent
    from backends.journal.sweep import TestPoint
    from backends.models import ModelInfo
    from backends.sweep import SweepSpec

Samples = dict[str, list[float]]


class Cancelled(Exception):
    """The user stopped the gate."""


@dataclass
class Measured:
    new: Samples
    old: Samples
    failures: list[str]  # the new build's failed points
    against: str  # what the new build was judged against, in words


def measure(new: BuildInfo, old: BuildInfo | None, old_label: str, model: ModelInfo, spec: SweepSpec,
            saved: Samples,
            run_dir: Path | None, threshold: float) -> Measured:
    """The figures the gate judges; Cancelled when the user stops it."""
    if old is None:
        events = _sweep([new], model, spec, _part(run_dir, "new"), "build")
        mine, _, failures = _samples(events, new.name, "")
        return Measured(mine, saved, failures, f"{old_label} (saved figures)")
    if not saved:
        mine, theirs, failures = beside(new, old, model, spec, spec.points(), run_dir, threshold)
        return Measured(mine, theirs, failures, f"{old_label} (run beside it)")
    return _staged(new, old, old_label, model, spec, saved, run_dir, threshold)


def beside(new: BuildInfo, old: BuildInfo, model: ModelInfo, spec: SweepSpec, points: Sequence[TestPoint],
           run_dir: Path | None, threshold: float) -> tuple[Samples, Samples, list[str]]:
    """Both builds at ``points``, the new one first; the points that come out slower are
    measured once more with the old build first. Which of two processes runs first, and the
    moment a block meets on a shared machine, can move one block by more than a threshold
    (the same build came out 17 % slower at tg16 that way); a point is slower only where
    both orders say so, judged on both runs' figures."""
    from profiles.gate import slower_points

    events = _sweep([new, old], model, only(spec, points), _part(run_dir, "beside"), "auto")
    mine, theirs, failures = _samples(events, new.name, old.name)
    again_at = [p for p in points if p.name in {s.point for s in slower_points(theirs, mine, threshold)}]
    if again_at and not failures:
        names = [p.name for p in again_at]
        say(f"gate: {', '.join(names)} slower beside {old.name}; measuring again, {old.name} first")
        events = _sweep([old, new], model, only(spec, again_at), _part(run_dir, "reversed"), "auto")
        again, their_again, failures = _samples(events, new.name, old.name)
        still = {s.point for s in slower_points(their_again, again, threshold)}
        for name in names:
            if name in still:  # slower in both orders: judged on all of it
                mine[name] = mine[name] + again.get(name, [])
                theirs[name] = theirs[name] + their_again.get(name, [])
            else:
                mine[name], theirs[name] = again.get(name, []), their_again.get(name, [])
    return mine, theirs, failures


def _staged(new: BuildInfo, old: BuildInfo, old_label: str, model: ModelInfo, spec: SweepSpec,
            saved: Samples,
            run_dir: Path | None, threshold: float) -> Measured:
    from profiles.gate import baseline, drift_factor, slower_points

    point = cheapest_point(spec.points(), saved, spec.repetitions)
    events = _sweep([old], model, only(spec, [point]), _part(run_dir, "calibration"), "auto")
    _, fresh, _ = _samples(events, "", old.name)
    factor = drift_factor(fresh.get(point.name, []), saved[point.name])
    events = _sweep([new], model, spec, _part(run_dir, "new"), "build")
    mine, _, failures = _samples(events, new.name, "")
    theirs = baseline(saved, factor, fresh)
    drift = f" x{factor:.2f}" if factor != 1.0 else ""
    against = f"{old_label} (saved figures{drift}, checked beside it at {point.name}"
    flagged = [p for p in spec.points()
               if p.name in {s.point for s in slower_points(theirs, mine, threshold)}]
    if flagged and not failures:
        names = [p.name for p in flagged]
        say(f"gate: {', '.join(names)} slower than the saved figures; measuring beside {old.name}")
        again, their_now, failures = beside(new, old, model, spec, flagged, run_dir, threshold)
        for name in names:
            mine[name], theirs[name] = again.get(name, []), their_now.get(name, [])
        against += f"; {', '.join(names)} run beside it"
    return Measured(mine, theirs, failures, against + ")")


def cheapest_point(points: Sequence[TestPoint], saved: Mapping[str, Sequence[float]],
                   repetitions: int) -> TestPoint:
    """The point the old build measures again soonest, an empty context first: its tokens
    over its saved speed, for each repetition and llama-bench's warm-up run (a whole
    prompt before a prompt test, one token before a generation test)."""
    def cost(point: TestPoint) -> tuple[bool, float]:
        values = saved.get(point.name) or ()
        speed = sum(values) / len(values) if values else 0.0
        tokens = (point.n_prompt + point.n_gen) * repetitions + (point.n_prompt or 1)
        return point.depth > 0, tokens / speed if speed > 0 else float("inf")

    return min(points, key=cost)


def only(spec: SweepSpec, points: Sequence[TestPoint]) -> SweepSpec:
    """The smallest grid holding ``points`` (the spec's settings kept)."""
    return dataclasses.replace(
        spec, prompts=tuple(sorted({p.n_prompt for p in points if p.n_gen == 0})),
        gens=tuple(sorted({p.n_gen for p in points if p.n_prompt == 0})),
        depths=tuple(sorted({p.depth for p in points})))


def _part(run_dir: Path | None, part: str) -> Path | None:
    return run_dir / part if run_dir is not None else None


def _sweep(contenders: Sequence[BuildInfo], model: ModelInfo, spec: SweepSpec, run_dir: Path | None,
           granularity: str) -> list[RunEvent]:
    """The sweep's events as they passed (its journal holds the same; no need to read it back)."""
    from backends.journal.sweep import PointFailed, ResultReceived, SweepStarted
    from backends.sweep import RunRequest, SweepError, run_sweep

    seen: list[RunEvent] = []

    def show(event: RunEvent) -> None:
        seen.append(event)
        if isinstance(event, SweepStarted):
            say(f"gate sweep: {', '.join(event.builds)}; journal: {event.run_dir}/journal.jsonl")
        elif isinstance(event, ResultReceived):
            say(f"{event.build} {event.point.name}: {event.result.avg_ts:,.1f} t/s", transient=True)
        elif isinstance(event, PointFailed):
            say(f"{event.build} {event.point.name}: FAILED: {event.reason}")

    try:
        request = RunRequest(contenders, model, spec, run_dir=run_dir, granularity=granularity)
        finished = asyncio.run(cancellable(run_sweep(request), show))
    except SweepError as error:
        raise CommandError(str(error)) from None
    say("", transient=False)
    if not finished or not any(isinstance(event, SweepStarted) for event in seen):
        raise Cancelled
    return seen


def _samples(events: Sequence[RunEvent], new: str, old: str) -> tuple[Samples, Samples, list[str]]:
    """Each build's samples per point from a sweep's events, and the new build's failures."""
    from backends.journal.sweep import PointFailed, ResultReceived

    by_build: dict[str, Samples] = {new: {}, old: {}}
    failures = []
    for event in events:
        if isinstance(event, ResultReceived) and event.build in by_build:
            by_build[event.build].setdefault(event.point.name, []).extend(event.result.samples_ts)
        elif isinstance(event, PointFailed) and event.build == new:
            failures.append(f"{event.point.name}: {event.reason}")
    return by_build[new], by_build[old], failures

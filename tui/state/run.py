"""Display state of one sweep, folded from the runner's events by a pure function.

The run screen keeps one ``RunState`` in a reactive; every event makes a new frozen value
(``fold``), so a live run and a replayed journal show exactly the same thing. The
correctness check that may come before the sweep folds in the same way (``fold_check``),
and says which build it reads now and how long that should take (``CheckProgress``).
``eta_seconds`` gives the time still to wait from the plan's estimate and what the run
has taken so far.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from backends.correctness import (
    BuildChecked,
    CheckFinished,
    CheckStarted,
    CorrectnessResult,
    results_by_build,
)
from backends.journal.sweep import (
    BenchEvent,
    BenchResult,
    PointFailed,
    PointProgress,
    PointStarted,
    ResultReceived,
    SweepFinished,
    SweepStarted,
    TelemetryRecorded,
    TestPoint,
)
from backends.journal.tune import TuneEvent
from tui.state.format import format_duration, format_eta

if TYPE_CHECKING:
    from backends.journal.journal import RunEvent

IDLE, RUNNING, PAUSED, FINISHED, CANCELLED = "idle", "running", "paused", "finished", "cancelled"
# What a record of the run leaves out: ticks for the eye only (the journal has them).
NOT_RECORDS = (PointProgress, TelemetryRecorded)


@dataclass(frozen=True)
class BuildProgress:
    """What one build has done so far in the sweep."""

    name: str
    current: TestPoint | None = None
    activity: str = ""
    results: tuple[BenchResult, ...] = ()
    failures: tuple[PointFailed, ...] = ()
    check: str = ""  # one short line about the correctness check; "" when none ran


@dataclass(frozen=True)
class CheckPlanned:
    """The check is about to start: every build of the run, and a line for those it skips
    (no llama-perplexity). Display-side; the check itself starts with CheckStarted."""

    model: str
    builds: tuple[str, ...]
    not_checked: Mapping[str, str] = field(default_factory=dict)
    chunks: int | None = None  # how many chunks the reference reads; None: the whole text
    estimates: Mapping[str, float] = field(default_factory=dict)  # seconds per build
    sweep_estimate: float | None = None  # seconds the sweep after the check should take
    at: float = 0.0  # wall clock when the check was planned


@dataclass(frozen=True)
class CheckProgress:
    """What the check is doing now: the build it reads, since when, and the plan."""

    reference: str = ""
    order: tuple[str, ...] = ()  # the reference first, then the others
    current: str = ""
    context: int = 0
    chunks: int | None = None
    since: float = 0.0  # wall clock when ``current`` started
    estimates: Mapping[str, float] = field(default_factory=dict)
    done: tuple[str, ...] = ()

    def line(self, now: float) -> str:
        """``checking vulkan against cpu (2/2) · 2 chunks of 64 tokens · 0:12 of ~40 s``."""
        if not self.current:
            return "checking correctness first"
        step = f"{self.order.index(self.current) + 1}/{len(self.order)}"
        what = (f"reading the text with {self.current} (reference)"
                if self.current == self.reference
                else f"comparing {self.current} with {self.reference}")
        size = (f"{self.chunks} chunks of {self.context} tokens" if self.chunks
                else f"chunks of {self.context} tokens")
        elapsed = format_duration(max(0.0, now - self.since)) if self.since else ""
        estimate = self.estimates.get(self.current)
        timing = f"{elapsed} of {format_eta(estimate)}" if elapsed and estimate else elapsed
        return " · ".join(p for p in (f"check {step}: {what}", size, timing) if p)

    def remaining(self, now: float) -> float | None:
        """Seconds the check still needs, from the estimates; None when unknown."""
        left = [b for b in (self.order or tuple(self.estimates)) if b not in self.done]
        if any(b not in self.estimates for b in left):
            return None
        total = sum(self.estimates[b] for b in left)
        if self.current in left and self.since:
            total -= min(now - self.since, self.estimates[self.current] * 0.9)
        return max(0.0, total)


CHECK_WAITING = "check: waiting"
CHECK_RUNNING = "check: running…"


@dataclass(frozen=True)
class RunState:
    run_id: str = ""
    run_dir: str = ""
    model: str = ""
    builds: tuple[BuildProgress, ...] = ()
    points: tuple[TestPoint, ...] = ()
    spec: Mapping[str, object] = field(default_factory=dict, compare=False, hash=False)
    status: str = IDLE
    started_at: float = 0.0
    notes: tuple[str, ...] = ()
    correctness: tuple[CorrectnessResult, ...] = ()
    check: CheckProgress | None = None  # set while the correctness check runs
    estimate: float | None = None  # the plan's estimate of the sweep, in seconds
    done_at_start: int = 0  # points a resumed run had already finished when it went on
    # The run's events in journal order but for progress and telemetry ticks, kept as they
    # pass: what its verdict and profile are made from, so nothing reads the journal back.
    records: tuple[RunEvent, ...] = field(default=(), compare=False, hash=False, repr=False)

    @property
    def total(self) -> int:
        return len(self.builds) * len(self.points)

    @property
    def done(self) -> int:
        return sum(len(b.results) + len(b.failures) for b in self.builds)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def active(self) -> bool:
        return self.status in (RUNNING, PAUSED)

    def build(self, name: str) -> BuildProgress | None:
        return next((b for b in self.builds if b.name == name), None)

    def results_by_build(self) -> dict[str, list[BenchResult]]:
        return {b.name: list(b.results) for b in self.builds}

    def failures_by_build(self) -> dict[str, list[PointFailed]]:
        return {b.name: list(b.failures) for b in self.builds}

    def correctness_by_build(self) -> dict[str, dict[str, object]] | None:
        """The check's results the way profiles and verdicts take them; None when none ran."""
        return results_by_build(self.correctness) if self.correctness else None


def check_line(result: CorrectnessResult) -> str:
    """The check's verdict on one build in a few words: what its Run panel shows."""
    if result.status == "reference":
        ppl = f"PPL {result.ppl:.4g}" if result.ppl is not None else "PPL ?"
        return f"check: reference ({ppl})"
    if result.status == "failed":
        return f"check: failed ({result.reason})"
    numbers = []
    if result.mean_kld is not None:
        numbers.append(f"KLD {result.mean_kld:.1g}")
    if result.top1_agreement is not None:
        numbers.append(f"top-1 {result.top1_agreement * 100:.1f}%")
    shown = f" ({', '.join(numbers)})" if numbers else ""
    if result.status == "pass":
        return f"check: pass{shown}"
    return f"check: SUSPECT{shown}: {result.reason}"


CheckEvent = CheckPlanned | CheckStarted | BuildChecked | CheckFinished


def fold_check(state: RunState, event: CheckEvent, now: float = 0.0) -> RunState:
    """The state after one of the check's events (CheckPlanned, then run_check's own, which
    are kept among its records).

    ``now`` (wall clock) stamps when the build under check started, for the elapsed time."""
    shown = _shown_check(state, event, now)
    return shown if isinstance(event, CheckPlanned) else keep_record(shown, event)


def _shown_check(state: RunState, event: CheckEvent, now: float) -> RunState:
    if isinstance(event, CheckPlanned):
        return RunState(model=event.model, status=RUNNING, builds=tuple(
            BuildProgress(name, check=event.not_checked.get(name, CHECK_WAITING))
            for name in event.builds), estimate=event.sweep_estimate,
            check=CheckProgress(chunks=event.chunks, estimates=dict(event.estimates),
                                since=event.at or now))
    if isinstance(event, CheckStarted):
        progress = state.check or CheckProgress()
        order = (event.reference, *(b for b in event.builds if b != event.reference))
        state = dataclasses.replace(state, check=dataclasses.replace(
            progress, reference=event.reference, order=order, current=event.reference,
            context=event.context, since=now or progress.since))
        return _with_checks(state, {name: CHECK_RUNNING for name in event.builds})
    if isinstance(event, BuildChecked):
        result = event.result
        kept = tuple(r for r in state.correctness if r.build != result.build)
        state = dataclasses.replace(state, correctness=(*kept, result))
        if state.check is not None:
            done = (*state.check.done, result.build)
            following = [b for b in state.check.order if b not in done]
            state = dataclasses.replace(state, check=dataclasses.replace(
                state.check, done=done, current=following[0] if following else "",
                since=now or state.check.since))
        return _with_checks(state, {result.build: check_line(result)})
    if isinstance(event, CheckFinished):
        # Builds the check never reached: the reference failed, or the check could not start.
        reason = event.problem or "not checked"
        state = dataclasses.replace(state, check=None)
        return _with_checks(state, {b.name: f"check: not run ({reason})" for b in state.builds
                                    if b.check in (CHECK_WAITING, CHECK_RUNNING)})
    return state


def _with_checks(state: RunState, lines: Mapping[str, str]) -> RunState:
    return dataclasses.replace(state, builds=tuple(
        dataclasses.replace(b, check=lines[b.name]) if b.name in lines else b
        for b in state.builds))


def fold(state: RunState, event: BenchEvent) -> RunState:
    """The state after ``event``; unknown or out-of-order events leave it unchanged but for
    its records (``keep_record``)."""
    return keep_record(_shown(state, event), event)


def keep_record(state: RunState, event: RunEvent) -> RunState:
    """The state with ``event`` among its records, unless it is a tick for the eye only."""
    if isinstance(event, NOT_RECORDS):
        return state
    return dataclasses.replace(state, records=(*state.records, event))


def _shown(state: RunState, event: BenchEvent) -> RunState:
    if isinstance(event, SweepStarted):
        if event.resumed and event.run_id == state.run_id:
            # A resumed run goes on in the same journal: keep what it already has.
            return dataclasses.replace(state, status=RUNNING, notes=tuple(event.notes),
                                       started_at=event.at, done_at_start=state.done)
        # A check that ran just before this sweep (no run yet) keeps its lines and results.
        checked = {} if state.run_id else {b.name: b.check for b in state.builds}
        return RunState(
            run_id=event.run_id, run_dir=event.run_dir, model=event.model,
            builds=tuple(BuildProgress(name, check=checked.get(name, ""))
                         for name in event.builds),
            points=tuple(event.points), spec=dict(event.spec), status=RUNNING,
            started_at=event.at, notes=tuple(event.notes),
            correctness=() if state.run_id else state.correctness,
            estimate=state.estimate,
            # The check runs inside the sweep (its events follow this one) or just before it.
            check=None if state.run_id else state.check,
        )
    if isinstance(event, SweepFinished):
        return dataclasses.replace(
            state, status=CANCELLED if event.cancelled else FINISHED,
            builds=tuple(dataclasses.replace(b, current=None, activity="") for b in state.builds),
        )
    build_name = getattr(event, "build", None)
    progress = state.build(build_name) if build_name else None
    if progress is None:
        return state
    if isinstance(event, PointStarted):
        updated = dataclasses.replace(progress, current=event.point, activity="starting")
    elif isinstance(event, PointProgress):
        updated = dataclasses.replace(progress, current=event.point, activity=event.message)
    elif isinstance(event, ResultReceived):
        # One result per test point: a repeated point replaces the earlier one.
        kept = tuple(r for r in progress.results if r.point != event.result.point)
        updated = dataclasses.replace(
            progress, current=None, activity="", results=(*kept, event.result),
        )
    elif isinstance(event, PointFailed):
        updated = dataclasses.replace(
            progress, current=None, activity="", failures=(*progress.failures, event),
        )
    else:
        return state
    builds = tuple(updated if b.name == build_name else b for b in state.builds)
    return dataclasses.replace(state, builds=builds)


def fold_all(events: Iterable[object], state: RunState | None = None) -> RunState:
    """A journal's events folded as the live run folded them (its check's and its tune's
    too); others are skipped."""
    state = state or RunState()
    for event in events:
        if isinstance(event, CheckEvent):
            state = fold_check(state, event, now=getattr(event, "at", 0.0) or 0.0)
        elif isinstance(event, BenchEvent):
            state = fold(state, event)
        elif isinstance(event, TuneEvent):
            state = keep_record(state, event)
    return state


def with_status(state: RunState, status: str) -> RunState:
    return dataclasses.replace(state, status=status)


def eta_seconds(state: RunState, now: float) -> float | None:
    """Seconds still to wait for the run (the check, then the sweep); None when unknown.

    Before the first result it is the plan's estimate; after it, the time the finished
    points took, scaled to the points left (the plan's own figures weigh them when known).
    """
    if not state.active:
        return None
    if state.check is not None and not state.run_id:
        check_left = state.check.remaining(now)
        if check_left is None or state.estimate is None:
            return None
        return check_left + state.estimate
    if not state.total:
        return state.estimate
    done, left = state.done - state.done_at_start, state.total - state.done
    elapsed = now - state.started_at if state.started_at else 0.0
    if done <= 0 or elapsed <= 0:
        if state.estimate is None:
            return None
        return max(0.0, state.estimate - max(0.0, elapsed))
    measured = elapsed / done * left
    if state.estimate is None:
        return measured
    planned = state.estimate * left / state.total
    # The further the run, the more its own pace counts.
    weight = done / (state.total - state.done_at_start)
    return max(0.0, weight * measured + (1 - weight) * planned)

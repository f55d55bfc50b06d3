"""Display state of one sweep, folded from the runner's events by a pure function.

The run screen keeps one ``RunState`` in a reactive; every event makes a new frozen value
(``fold``), so a live run and a replayed journal show exactly the same thing. The
correctness check that may come before the sweep folds in the same way (``fold_check``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backends.correctness import (
    BuildChecked, CheckFinished, CheckStarted, CorrectnessResult, results_by_build,
)

from backends.events import (
    BenchEvent,
    BenchResult,
    PointFailed,
    PointProgress,
    PointStarted,
    ResultReceived,
    SweepFinished,
    SweepStarted,
    TestPoint,
)

IDLE, RUNNING, PAUSED, FINISHED, CANCELLED = "idle", "running", "paused", "finished", "cancelled"


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


CHECK_WAITING = "check: waiting"
CHECK_RUNNING = "check: running…"


@dataclass(frozen=True)
class RunState:
    run_id: str = ""
    run_dir: str = ""
    model: str = ""
    builds: tuple[BuildProgress, ...] = ()
    points: tuple[TestPoint, ...] = ()
    spec: Mapping = field(default_factory=dict, compare=False, hash=False)
    status: str = IDLE
    started_at: float = 0.0
    notes: tuple[str, ...] = ()
    correctness: tuple[CorrectnessResult, ...] = ()

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

    def correctness_by_build(self) -> dict[str, dict[str, Any]] | None:
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


def fold_check(state: RunState, event: Any) -> RunState:
    """The state after one of the check's events (CheckPlanned, then run_check's own)."""
    if isinstance(event, CheckPlanned):
        return RunState(model=event.model, status=RUNNING, builds=tuple(
            BuildProgress(name, check=event.not_checked.get(name, CHECK_WAITING))
            for name in event.builds))
    if isinstance(event, CheckStarted):
        return _with_checks(state, {name: CHECK_RUNNING for name in event.builds})
    if isinstance(event, BuildChecked):
        result = event.result
        kept = tuple(r for r in state.correctness if r.build != result.build)
        state = dataclasses.replace(state, correctness=(*kept, result))
        return _with_checks(state, {result.build: check_line(result)})
    if isinstance(event, CheckFinished):
        # Builds the check never reached: the reference failed, or the check could not start.
        reason = event.problem or "not checked"
        return _with_checks(state, {b.name: f"check: not run ({reason})" for b in state.builds
                                    if b.check in (CHECK_WAITING, CHECK_RUNNING)})
    return state


def _with_checks(state: RunState, lines: Mapping[str, str]) -> RunState:
    return dataclasses.replace(state, builds=tuple(
        dataclasses.replace(b, check=lines[b.name]) if b.name in lines else b
        for b in state.builds))


def fold(state: RunState, event: BenchEvent) -> RunState:
    """The state after ``event``; unknown or out-of-order events leave it unchanged."""
    if isinstance(event, SweepStarted):
        if getattr(event, "resumed", False) and event.run_id == state.run_id:
            # A resumed run goes on in the same journal: keep what it already has.
            return dataclasses.replace(state, status=RUNNING, notes=tuple(event.notes))
        # A check that ran just before this sweep (no run yet) keeps its lines and results.
        checked = {} if state.run_id else {b.name: b.check for b in state.builds}
        return RunState(
            run_id=event.run_id, run_dir=event.run_dir, model=event.model,
            builds=tuple(BuildProgress(name, check=checked.get(name, ""))
                         for name in event.builds),
            points=tuple(event.points), spec=dict(event.spec), status=RUNNING,
            started_at=event.at, notes=tuple(getattr(event, "notes", ())),
            correctness=() if state.run_id else state.correctness,
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


def fold_all(events: Iterable[BenchEvent], state: RunState | None = None) -> RunState:
    state = state or RunState()
    for event in events:
        state = fold(state, event)
    return state


def with_status(state: RunState, status: str) -> RunState:
    return dataclasses.replace(state, status=status)


def format_rate(value: float) -> str:
    """Tokens per second the way people read them: 10314, 801, 95.2, 3.41."""
    if value is None or math.isnan(value):
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_depth(depth: int) -> str:
    if depth and depth % 1024 == 0:
        return f"{depth // 1024}K"
    return str(depth)

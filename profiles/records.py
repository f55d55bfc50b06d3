"""What a verdict is computed from: one run's records, in one small frozen type.

``RunRecords`` holds every result (with the telemetry summary taken while it ran), every
failure, the correctness check's results and the model's facts. A live run, a replayed
journal, a saved profile and imported files all become a ``RunRecords`` and go through the
same ``profiles.verdict.recommend_run``: the screen, the command line and the profile say
the same thing for the same run.

Build one from a journal with ``records_from_events(read_journal(path))``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends.correctness import BuildChecked, results_by_build
from backends.journal.damage import missing_results, without_points
from backends.journal.sweep import BenchResult, PointFailed, SweepStarted, TestPoint
from backends.sweep.outcomes import PointResult, point_failures, point_results

if TYPE_CHECKING:
    from backends.journal.journal import RunEvent


@dataclass(frozen=True)
class ModelFacts:
    file_name: str = ""
    architecture: str | None = None
    parameters: int | None = None
    quant: str | None = None
    size_bytes: int | None = None
    is_moe: bool | None = None
    layers: int | None = None
    expert_count: int | None = None
    identity: str | None = None
    model_type: str | None = None
    path: str | None = None


# A correctness check's result per build (``backends.correctness.results_by_build``): its
# status, mean KLD, reason...; each reader checks the values it uses.
Correctness = Mapping[str, Mapping[str, object]]


@dataclass(frozen=True)
class ProfileResult:
    """One result of one build, with the telemetry summary of its test point (if any)."""

    build: str
    result: BenchResult
    telemetry: Mapping[str, Any] | None = field(default=None, compare=True, hash=False)


@dataclass(frozen=True)
class FailureRecord:
    """A test that ended without a result: the build, the test when known, and why.

    ``point`` is None when the file does not say which test failed; ``phase`` and ``depth``
    then carry what is known (a log named ``...longctx32768`` failed somewhere at depth
    32768). ``settings`` are llama-bench parameters known for the failed test.
    """

    build: str
    reason: str
    point: TestPoint | None = None
    phase: str | None = None
    depth: int | None = None
    model: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict, hash=False)
    exit_code: int | None = None
    signal: str | None = None
    timed_out: bool = False
    source: str = ""

    @property
    def test(self) -> str:
        if self.point is not None:
            return self.point.name
        parts = [{"pp": "prompt", "tg": "generation", "pg": "prompt+generation"}.get(self.phase or "", "")]
        if self.depth:
            parts.append(f"at depth {self.depth:,}")
        return " ".join(p for p in parts if p) or "an unnamed test"


@dataclass(frozen=True)
class RunRecords:
    """Everything one run measured on one machine."""

    results: tuple[ProfileResult, ...] = ()
    failures: tuple[FailureRecord, ...] = ()
    correctness: Correctness = field(default_factory=dict, hash=False)
    model: ModelFacts | None = None
    machine: str = ""
    builds: tuple[str, ...] = ()  # every build of the run, in order, also those without results
    # Builds whose GPU backends found no device when probed: name -> "Vulkan" (they ran on
    # the CPU; ``profiles.fallback`` also reads it from the results themselves).
    fallbacks: Mapping[str, str] = field(default_factory=dict, hash=False)

    def build_names(self) -> tuple[str, ...]:
        names = list(self.builds)
        for build in (*(r.build for r in self.results), *(f.build for f in self.failures)):
            if build not in names:
                names.append(build)
        return tuple(names)


def failure_record(failure: PointFailed, model: str | None = None) -> FailureRecord:
    """A journal's PointFailed as a failure record (the stderr tail's last line as detail)."""
    reason = failure.reason
    tail = [line.strip() for line in failure.stderr_tail.splitlines() if line.strip()]
    if tail and tail[-1] not in reason:
        reason = f"{reason}: {tail[-1][:200]}"
    return FailureRecord(build=failure.build, reason=reason, point=failure.point, model=model,
                         exit_code=failure.exit_code, signal=failure.signal,
                         timed_out=failure.timed_out)


def records_from_events(events: Iterable[RunEvent], *,
                        correctness: Correctness | None = None,
                        model: ModelFacts | None = None, machine: str = "") -> RunRecords:
    """A run's records from its journal events.

    A point measured in several blocks (adaptive repetitions, a throttled block measured
    again) is one result: its blocks' counted samples together (``backends.sweep.outcomes``).
    A failure followed by a result for the same point (``resume --retry-failed``) is not a
    failure any more. The correctness check's results come from the journal unless given.
    """
    lost = {m.point.key for m in missing_results(events)}
    events = without_points(events, lost)  # a point missing a counted result is not counted
    started = next((e for e in events if isinstance(e, SweepStarted)), None)
    results = tuple(ProfileResult(build=r.build, result=r.result, telemetry=_telemetry_of(r))
                    for r in point_results(events))
    model_name = Path(started.model).name if started and started.model else None
    if correctness is None:
        checked = [e for e in events if isinstance(e, BuildChecked)]
        correctness = results_by_build([e.result for e in checked]) if checked else {}
    return RunRecords(results=results,
                      failures=tuple(failure_record(f, model_name) for f in point_failures(events)),
                      correctness={k: dict(v) for k, v in correctness.items()},
                      model=model, machine=machine,
                      builds=tuple(started.builds) if started else (),
                      fallbacks=started_fallbacks(started))


def started_fallbacks(started: SweepStarted | None) -> dict[str, str]:
    """The contenders a sweep's start recorded as built for a GPU backend without a device."""
    if started is None:
        return {}
    return {name: str(data["cpu_fallback"]) for name, data in started.contenders.items()
            if isinstance(data, Mapping) and data.get("cpu_fallback")}


def _telemetry_of(result: PointResult) -> dict[str, object] | None:
    if result.telemetry is None:
        return None
    return {**result.telemetry, "throttled": result.throttled or bool(result.telemetry.get("throttled"))}


def records_from_builds(results_by_build: Mapping[str, Iterable[BenchResult]],
                        failures_by_build: Mapping[str, Iterable[PointFailed | FailureRecord]] | None = None,
                        *, correctness: Correctness | None = None,
                        model: ModelFacts | None = None, machine: str = "") -> RunRecords:
    """Records from per-build results and failures (no telemetry)."""
    results = tuple(ProfileResult(build=b, result=r) for b, rs in results_by_build.items() for r in rs)
    failures = tuple(f if isinstance(f, FailureRecord) else failure_record(f)
                     for fs in (failures_by_build or {}).values() for f in fs)
    return RunRecords(results=results, failures=failures,
                      correctness={k: dict(v) for k, v in (correctness or {}).items()},
                      model=model, machine=machine,
                      builds=tuple(dict.fromkeys([*results_by_build, *(failures_by_build or {})])))

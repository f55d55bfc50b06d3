"""Run a sweep: builds take turns on llama-bench, every event journalled before it is seen.

``run_sweep`` yields the events of ``backends.events`` as they happen. Builds that share
a GPU take turns, interleaved per test point (A B A B) by default so drift and heat hit
them alike; ``parallel=True`` runs builds at once when they use different devices.

Each group of test points runs in a llama-bench process of its own (``granularity``:
``point``, ``depth`` or ``build``). A crash, OOM kill or hang ends only its own group:
its points are recorded as failures and the sweep goes on. Cancelling the iterator (or
the task consuming it) kills every child process group; none is ever left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Sequence

from backends import procs
from backends.events import (
    BenchEvent, BenchResult, PointFailed, PointProgress, PointStarted, ResultReceived,
    SweepFinished, SweepNote, SweepStarted, TelemetryRecorded, TestPoint, event_from_json,
    event_to_json,
)
from backends.paths import runs_root
from backends.sweep import SweepError, SweepSpec, TimeoutPolicy, bench_argv, resolve_auto_ncmoe

GRANULARITIES = ("auto", "point", "depth", "build")
# "auto" runs each build's first test point alone, measures how long loading the model
# takes against running the point, and keeps one process per point while loading costs
# at most this share of a point; otherwise one process per depth (pp and tg at a depth
# share the load). benchmarks/fidelity.py measures the trade; see the README.
DEFAULT_GRANULARITY = "auto"
AUTO_MAX_LOAD_SHARE = 0.05
JOURNAL_NAME = "journal.jsonl"
_PROGRESS = re.compile(r"^llama-bench: benchmark (\d+)/(\d+): (.*)$")
_DONE = object()


class Journal:
    """Append-only JSONL: each event is written and flushed before anyone else sees it.

    Results and failures are also fsynced, so a power cut keeps every finished test point.
    """

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")

    def append(self, event: BenchEvent) -> None:
        self._file.write(json.dumps(event_to_json(event), separators=(",", ":")) + "\n")
        self._file.flush()
        if not isinstance(event, (PointProgress, TelemetryRecorded)):
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_journal(path: Path | str) -> list[BenchEvent]:
    """Events of a journal; a torn last line (a crash mid-write) and unknown lines are skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / JOURNAL_NAME
    events: list[BenchEvent] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                events.append(event_from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue
    return events


class SweepControl:
    """Pause between test points and resume; cancel by cancelling the consuming task."""

    def __init__(self) -> None:
        self._running = asyncio.Event()
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    async def wait_running(self) -> None:
        await self._running.wait()


@dataclass
class _Telemetry:
    """Telemetry snapshots of the run so far, for per-point summaries."""

    source: Any
    snapshots: deque = field(default_factory=lambda: deque(maxlen=20000))

    def between(self, start: float, end: float) -> list[Any]:
        return [s for s in self.snapshots if start <= s.at <= end]

    def summary(self, start: float, end: float) -> dict[str, Any] | None:
        from backends.telemetry import summarize

        window = self.between(start, end)
        if not window:
            return None
        return summarize(window).to_json()


def new_run_id(model: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", model.stem)[:40]
    return time.strftime("%Y%m%d-%H%M%S") + f"-{stem}"


@dataclass(frozen=True)
class ChunkTiming:
    """Where one llama-bench process spent its time: loading, then running its points."""

    load_s: float
    work_s: float
    points: int


def choose_granularity(timings: Sequence[ChunkTiming]) -> tuple[str, str]:
    """The grouping for the rest of a run from its first processes, and why, in words."""
    shares = [t.load_s / (t.work_s / t.points) for t in timings if t.work_s > 0 and t.points]
    if not shares:
        return "point", "one llama-bench per test point (load time not measurable)"
    share = max(shares)
    load = max(t.load_s for t in timings)
    if share <= AUTO_MAX_LOAD_SHARE:
        return "point", (f"one llama-bench per test point: loading takes {load:.2f} s, "
                         f"{share:.0%} of a point")
    return "depth", (f"one llama-bench per depth: loading takes {load:.2f} s, {share:.0%} of a "
                     f"point, so pp and tg at each depth share one load")


def chunk_points(points: Sequence[TestPoint], granularity: str) -> list[tuple[TestPoint, ...]]:
    """Group test points into llama-bench processes."""
    if granularity == "point":
        return [(p,) for p in points]
    if granularity == "build":
        return [tuple(points)]
    if granularity == "depth":
        by_depth: dict[int, list[TestPoint]] = {}
        for p in points:
            by_depth.setdefault(p.depth, []).append(p)
        return [tuple(group) for group in by_depth.values()]
    raise SweepError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")


def schedule(builds: Sequence[Any], chunks: Sequence[tuple[TestPoint, ...]], interleave: bool,
             skip: Iterable[tuple[str, str]] = ()) -> list[tuple[Any, tuple[TestPoint, ...]]]:
    """Turn order: A B A B per group when interleaving, else all of A then all of B.

    Points in ``skip`` (build name, point key) are dropped: they finished in an earlier run.
    """
    done = set(skip)
    order = ([(b, c) for c in chunks for b in builds] if interleave
             else [(b, c) for b in builds for c in chunks])
    kept = []
    for build, chunk in order:
        todo = tuple(p for p in chunk if (build.name, p.key) not in done)
        if todo:
            kept.append((build, todo))
    return kept


async def run_sweep(
    builds: Sequence[Any],
    model: Any,
    spec: SweepSpec,
    *,
    run_dir: Path | None = None,
    telemetry: Any = None,
    telemetry_interval: float = 0.5,
    interleave: bool = True,
    parallel: bool = False,
    granularity: str = DEFAULT_GRANULARITY,
    control: SweepControl | None = None,
    skip: Iterable[tuple[str, str]] = (),
    run_id: str | None = None,
    timeouts: TimeoutPolicy | None = None,
) -> AsyncIterator[BenchEvent]:
    """Run ``spec`` for every build on ``model`` (a path or a ``ModelInfo``); yield events.

    ``telemetry`` is an object with ``stream(interval)`` and ``watch_pids(pids)`` (a
    ``backends.telemetry.Telemetry``): its snapshots are journalled and summarised per
    test point. Raises SweepError (one line) before anything starts for bad input.
    """
    spec.validate()
    if not builds:
        raise SweepError("no builds to run: add at least one llama.cpp build")
    names = [b.name for b in builds]
    if len(set(names)) != len(names):
        raise SweepError(f"build names must differ: {', '.join(names)}")
    for build in builds:
        if getattr(build, "problem", None):
            raise SweepError(f"build {build.name!r} cannot run: {build.problem}")
        if build.bench is None:
            raise SweepError(f"build {build.name!r} has no llama-bench")
    model_path = Path(getattr(model, "path", model))
    if getattr(model, "problem", None):
        raise SweepError(f"model {model_path.name} cannot run: {model.problem}")
    if not model_path.is_file():
        raise SweepError(f"model file not found: {model_path}")

    notes: list[str] = []
    if spec.auto_ncmoe and spec.n_cpu_moe is None:
        spec, note = resolve_auto_ncmoe(spec, _model_info(model), _free_vram_bytes(builds))
        notes.append(note)
    if granularity not in GRANULARITIES:
        raise SweepError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    points = spec.points()
    # Check every argv before starting: a build that cannot run the spec fails now, not midway.
    for build in builds:
        for chunk in chunk_points(points, "depth"):
            bench_argv(build, model_path, spec, chunk)
    done = set(skip)

    run_id = run_id or new_run_id(model_path)
    run_dir = Path(run_dir) if run_dir else runs_root() / run_id
    journal = Journal(run_dir / JOURNAL_NAME)
    queue: asyncio.Queue = asyncio.Queue()
    recorder = _Telemetry(telemetry) if telemetry is not None else None
    counts = {"results": 0, "failures": 0}
    control = control or SweepControl()
    timeouts = timeouts or TimeoutPolicy()

    def emit(event: BenchEvent) -> None:
        journal.append(event)
        if isinstance(event, ResultReceived):
            counts["results"] += 1
        elif isinstance(event, PointFailed):
            counts["failures"] += 1
        queue.put_nowait(event)

    emit(SweepStarted(
        run_id=run_id, run_dir=str(run_dir), model=str(model_path), builds=tuple(names),
        points=spec.points(), spec=spec.to_json(),
        build_paths={b.name: str(getattr(b, "folder", Path(b.bench).parent)) for b in builds},
        notes=tuple(n for n in notes if n), resumed=bool(set(skip)), at=time.time(),
    ))

    async def take_turns(group: Sequence[Any]) -> None:
        chosen = granularity
        if granularity == "auto":
            timings = []
            for build in group:  # each build's first point alone, to measure its load time
                first = next((p for p in points if (build.name, p.key) not in done), None)
                if first is None:
                    continue
                await control.wait_running()
                timing = await _run_chunk(build, model_path, spec, (first,), emit, recorder, timeouts)
                done.add((build.name, first.key))
                if timing is not None:
                    timings.append(timing)
            chosen, why = choose_granularity(timings)
            emit(SweepNote(message=why, at=time.time()))
        for build, chunk in schedule(group, chunk_points(points, chosen), interleave, done):
            await control.wait_running()
            await _run_chunk(build, model_path, spec, chunk, emit, recorder, timeouts)

    async def record_telemetry() -> None:
        async for snapshot in telemetry.stream(telemetry_interval):
            from backends.telemetry import snapshot_to_json

            recorder.snapshots.append(snapshot)
            emit(TelemetryRecorded(sample=snapshot_to_json(snapshot), at=snapshot.at))

    groups = [[build] for build in builds] if parallel else [list(builds)]
    producers = [asyncio.create_task(take_turns(group)) for group in groups]
    helpers = [asyncio.create_task(record_telemetry())] if telemetry is not None else []

    async def finish() -> None:
        try:
            await asyncio.gather(*producers)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer below
            queue.put_nowait(error)
        else:
            queue.put_nowait(_DONE)

    closer = asyncio.create_task(finish())
    finished = False
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        while not queue.empty():  # telemetry that arrived while stopping
            item = queue.get_nowait()
            if isinstance(item, TelemetryRecorded):
                yield item
        final = SweepFinished(run_id=run_id, results=counts["results"],
                              failures=counts["failures"], at=time.time())
        journal.append(final)
        finished = True
        yield final
    finally:
        for task in (*producers, *helpers, closer):
            task.cancel()
        # Each producer's own finally kills its llama-bench group; wait until they have.
        await asyncio.gather(*producers, *helpers, closer, return_exceptions=True)
        if not finished:
            journal.append(SweepFinished(run_id=run_id, results=counts["results"],
                                         failures=counts["failures"], cancelled=True,
                                         at=time.time()))
        journal.close()


async def _run_chunk(build: Any, model_path: Path, spec: SweepSpec, chunk: tuple[TestPoint, ...],
                     emit: Callable[[BenchEvent], None], recorder: _Telemetry | None,
                     timeouts: TimeoutPolicy) -> ChunkTiming | None:
    """Run one llama-bench process for ``chunk``; return its load/work split when it succeeded."""
    argv = bench_argv(build, model_path, spec, chunk)
    limit = timeouts.seconds(build.name, chunk, spec.repetitions, spec.timeout)
    pending = {p.key: p for p in chunk}
    point_started = {chunk[0].key: time.time()}
    stderr_tail: deque[str] = deque(maxlen=40)
    started = time.monotonic()
    try:
        process = await procs.spawn(argv, env=getattr(build, "env", None))
    except OSError as error:
        for point in chunk:
            emit(PointFailed(build=build.name, point=point, at=time.time(),
                             reason=f"cannot start llama-bench: {error.strerror or error}"))
        return None
    first_work: list[float] = []  # when the first point began work: the model is loaded
    emit(PointStarted(build=build.name, point=chunk[0], argv=tuple(argv), at=time.time(),
                      pid=process.pid))
    if recorder is not None:
        with contextlib.suppress(Exception):
            recorder.source.watch_pids([process.pid])

    def current_point() -> TestPoint:
        return next(iter(pending.values()), chunk[-1])

    async def read_results() -> None:
        async for line in process.stdout:
            text = line.decode("utf-8", "replace").strip()
            try:
                record = json.loads(text)
            except ValueError:
                if text:
                    stderr_tail.append(text)  # stray stdout noise: keep it for the failure tail
                continue
            if not isinstance(record, dict):
                continue
            result = BenchResult.from_llama_bench(record)
            point = pending.pop(result.point.key, None) or result.point
            now = time.time()
            summary = None
            if recorder is not None:
                summary = recorder.summary(point_started.get(point.key, now), now)
            emit(ResultReceived(build=build.name, result=result, at=now, telemetry=summary))

    async def read_progress() -> None:
        async for line in process.stderr:
            text = line.decode("utf-8", "replace").rstrip()
            match = _PROGRESS.match(text)
            if not match:
                if text:
                    stderr_tail.append(text)
                continue
            index, message = int(match.group(1)) - 1, match.group(3)
            if message != "starting" and not first_work:
                first_work.append(time.monotonic())
            point = chunk[index] if index < len(chunk) else current_point()
            if message == "starting" and point.key not in point_started:
                point_started[point.key] = time.time()
                emit(PointStarted(build=build.name, point=point, argv=tuple(argv), at=time.time(),
                                  pid=process.pid))
            emit(PointProgress(build=build.name, point=point, message=message, at=time.time()))

    readers = [asyncio.create_task(read_results()), asyncio.create_task(read_progress())]
    timed_out = False
    try:
        try:
            await asyncio.wait_for(process.wait(), limit)
        except TimeoutError:
            timed_out = True
        else:
            # The pipes close when the process exits; a child it left behind could hold them.
            await asyncio.wait(readers, timeout=10)
    finally:
        # Also on cancel: the group dies, whatever it started dies with it, nothing is left.
        procs.kill_group(process)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        if process.returncode is None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(process.wait()), 10)
    ended = time.monotonic()
    timing = None
    if not pending and not timed_out and process.returncode == 0:
        timeouts.observe(build.name, chunk, spec.repetitions, ended - started)
        if first_work:
            timing = ChunkTiming(load_s=first_work[0] - started, work_s=ended - first_work[0],
                                 points=len(chunk))
    reason, signal_name = procs.describe_exit(process.returncode)
    if timed_out:
        reason = f"hung: no result within {limit:.0f} s, killed"
    elif process.returncode == 0:
        reason = "llama-bench finished without a result for this point"
    detail = _last_error(stderr_tail)
    for point in pending.values():
        emit(PointFailed(
            build=build.name, point=point, at=time.time(),
            reason=f"{reason}: {detail}" if detail and not timed_out else reason,
            exit_code=None if timed_out else process.returncode,
            signal=None if timed_out else signal_name, timed_out=timed_out,
            stderr_tail="\n".join(stderr_tail),
        ))
    return timing


def _last_error(lines: Iterable[str]) -> str:
    """The most telling stderr line: the last one that says error/failed, else the last."""
    lines = [line for line in lines if line.strip()]
    for line in reversed(lines):
        if re.search(r"error|failed|unable|cannot|invalid|abort", line, re.IGNORECASE):
            return line.strip()[:200]
    return lines[-1].strip()[:200] if lines else ""


def _model_info(model: Any) -> Any:
    if hasattr(model, "layers"):
        return model
    from backends.models import read_model

    return read_model(Path(model))


def _free_vram_bytes(builds: Sequence[Any]) -> int | None:
    free = [d.free_mib for b in builds for d in getattr(b, "devices", ()) if d.free_mib]
    return min(free) * 1024 * 1024 if free else None


def finished_points(events: Iterable[BenchEvent], *, retry_failed: bool = False) -> set[tuple[str, str]]:
    """(build, point key) pairs a journal already has an outcome for."""
    done = set()
    for event in events:
        if isinstance(event, ResultReceived):
            done.add((event.build, event.result.point.key))
        elif isinstance(event, PointFailed) and not retry_failed:
            done.add((event.build, event.point.key))
    return done


@dataclass(frozen=True)
class RunSummary:
    """What a run folder holds, for listing runs and offering to resume."""

    run_dir: Path
    run_id: str
    model: str
    builds: tuple[str, ...]
    total: int
    done: int
    finished: bool

    @property
    def resumable(self) -> bool:
        return not self.finished and self.done < self.total


def summarize_run(run_dir: Path) -> RunSummary | None:
    try:
        events = read_journal(run_dir)
    except OSError:
        return None
    starts = [e for e in events if isinstance(e, SweepStarted)]
    if not starts:
        return None
    first = starts[0]
    ends = [e for e in events if isinstance(e, SweepFinished)]
    done = len(finished_points(events))
    total = len(first.points) * len(first.builds)
    finished = bool(ends) and not ends[-1].cancelled and done >= total
    return RunSummary(run_dir=run_dir, run_id=first.run_id, model=first.model, builds=first.builds,
                      total=total, done=done, finished=finished or done >= total)


def list_runs(root: Path | None = None) -> list[RunSummary]:
    """Runs under ``root`` (default: the data folder's runs), newest first."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    summaries = [summarize_run(d) for d in sorted(root.iterdir(), reverse=True) if d.is_dir()]
    return [s for s in summaries if s is not None]


def resume(run_dir: Path | str, *, builds: Sequence[Any] | None = None, retry_failed: bool = False,
           **options: Any) -> AsyncIterator[BenchEvent]:
    """Continue an interrupted sweep from its journal without redoing finished points.

    Builds are probed again from the paths the journal recorded unless given.
    """
    run_dir = Path(run_dir)
    journal_path = run_dir / JOURNAL_NAME
    if not journal_path.is_file():
        raise SweepError(f"no journal in {run_dir}")
    events = read_journal(journal_path)
    starts = [e for e in events if isinstance(e, SweepStarted)]
    if not starts:
        raise SweepError(f"{journal_path} has no sweep start: not a llamaduel run journal")
    first = starts[0]
    spec = SweepSpec.from_json(starts[-1].spec)
    if builds is None:
        from backends.builds import probe_build

        builds = [probe_build(Path(first.build_paths[name]), name) for name in first.builds]
    return run_sweep(builds, Path(first.model), spec, run_dir=run_dir, run_id=first.run_id,
                     skip=finished_points(events, retry_failed=retry_failed), **options)

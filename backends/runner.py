"""Run a sweep: builds take turns on llama-bench, every event journalled before it is seen.

``run_sweep`` yields the events of ``backends.events`` as they happen. Builds that share
a GPU take turns, interleaved per test point (A B A B) by default so drift and heat hit
them alike; ``parallel=True`` runs builds at once when they use different devices.

How test points map onto llama-bench processes is the ``granularity``: a process per
point, per depth or per build, or ``resident``: one loaded process per build, paused
(SIGSTOP) between its points while the others take their turn. ``auto`` measures the
model's load time and picks (see DEFAULT_GRANULARITY). A crash, OOM kill or hang ends
only the point that was running: it is recorded as a failure and the sweep goes on.
Cancelling the iterator (or the task consuming it) kills every child process group;
none is ever left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
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
from backends.sweep import (SweepError, SweepSpec, TimeoutPolicy, bench_argv, grid_prefix,
                            resolve_auto_ncmoe)

GRANULARITIES = ("auto", "point", "resident", "depth", "build")
# "auto" runs each build's first test point alone and measures how long loading the model
# takes against running the point. While loading costs at most AUTO_MAX_LOAD_SHARE of a
# point, every point gets a process of its own. Otherwise each build keeps one loaded
# llama-bench for the rest of the grid, paused (SIGSTOP) between its points while the
# other builds take their turn ("resident"), when the builds' models fit in memory
# together; if they do not, one process per depth. On an H100 a process per depth cost
# 23-67 % more wall time than bare llama-bench (scripts/gpu_proof.py; README "Measured").
DEFAULT_GRANULARITY = "auto"
AUTO_MAX_LOAD_SHARE = 0.05
JOURNAL_NAME = "journal.jsonl"
_PROGRESS = re.compile(r"^llama-bench: benchmark (\d+)/(\d+): (.*)$")
_TIMED_RUN = re.compile(r"^(prompt|generation) run ")
_DONE = object()
_DURABLE = (SweepStarted, ResultReceived, PointFailed, SweepFinished)


class Journal:
    """Append-only JSONL: each event is written and flushed before anyone else sees it.

    Starts, results, failures and the finish are also fsynced, so a power cut keeps every
    finished test point; progress, notes and telemetry only reach the page cache.
    """

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")

    def append(self, event: BenchEvent) -> None:
        self._file.write(json.dumps(event_to_json(event), separators=(",", ":")) + "\n")
        self._file.flush()
        if isinstance(event, _DURABLE):
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


def choose_granularity(timings: Sequence[ChunkTiming], resident_fits: bool = True,
                       why_not_resident: str = "") -> tuple[str, str]:
    """The grouping for the rest of a run from its first processes, and why, in words."""
    shares = [t.load_s / (t.work_s / t.points) for t in timings if t.work_s > 0 and t.points]
    if not shares:
        return "point", "one llama-bench per test point (load time not measurable)"
    share = max(shares)
    load = max(t.load_s for t in timings)
    if share <= AUTO_MAX_LOAD_SHARE:
        return "point", (f"one llama-bench per test point: loading takes {load:.2f} s, "
                         f"{share:.0%} of a point")
    if resident_fits:
        return "resident", (f"one loaded llama-bench per build, paused between its points: "
                            f"loading takes {load:.2f} s, {share:.0%} of a point")
    return "depth", (f"one llama-bench per depth: loading takes {load:.2f} s, {share:.0%} of a "
                     f"point, and {why_not_resident}")


def resident_fits(builds: Sequence[Any], model: Any, spec: SweepSpec) -> tuple[bool, str]:
    """Whether every build can keep the model loaded at once on the GPU they share.

    Paused builds hold their weights but no KV cache (llama-bench frees each test's context
    before starting the next), so the need is one model per build plus one test's cache.
    """
    gpu_builds = [b for b in builds if any(d.free_mib for d in getattr(b, "devices", ()))]
    if len(gpu_builds) < 2:
        return True, ""
    free = _free_vram_bytes(gpu_builds)
    try:
        from backends.models import estimate_fit

        info = _model_info(model)
        context = max(spec.depths) + max(spec.prompts + spec.gens)
        one = estimate_fit(info, free, context, type_k=spec.type_k, type_v=spec.type_v)
        need = one.needed_bytes + info.tensor_bytes * (len(gpu_builds) - 1)
    except Exception:  # an unreadable model: stay on the safe side
        return False, "the model's size is unknown"
    if need <= free:
        return True, ""
    return False, (f"{len(gpu_builds)} loaded copies need {need / 2**30:.1f} GiB of "
                   f"{free / 2**30:.1f} GiB free")


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
        todo = [p for p in chunk if (build.name, p.key) not in done]
        while todo:  # what is left may not be one grid any more: split it into grids
            piece = grid_prefix(todo)
            kept.append((build, tuple(piece)))
            todo = todo[len(piece):]
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
    # Builds running at once never wait paused for each other.
    fits, why_not = (resident_fits(builds, model, spec) if not parallel and len(builds) > 1
                     else (True, ""))
    if granularity == "resident" and not fits:
        raise SweepError(f"the builds cannot stay loaded together: {why_not}")
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

    measured: set[tuple[str, str]] = set()

    def emit(event: BenchEvent) -> None:
        if isinstance(event, ResultReceived):
            key = (event.build, event.result.point.key)
            if key in measured:
                return  # one result per build and point: the first measurement stands
            measured.add(key)
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

    def resident_benches(group: Sequence[Any]) -> dict[str, _ResidentBench]:
        return {b.name: _ResidentBench(b, model_path, spec, emit, recorder, timeouts) for b in group}

    async def take_turns(group: Sequence[Any]) -> None:
        benches: dict[str, _ResidentBench] = {}
        try:
            await _take_turns(group, benches)
        finally:
            # Also when cancelled while measuring: no loaded llama-bench is left behind.
            for bench in benches.values():
                await bench.stop()

    async def _take_turns(group: Sequence[Any], benches: dict[str, _ResidentBench]) -> None:
        chosen = granularity
        if granularity == "auto":
            # Each build's first point measures loading against running; with room for all
            # builds at once it runs in the process that may stay for the rest.
            timings = []
            if fits:
                benches.update(resident_benches(group))
            for build in group:
                todo = [p for p in points if (build.name, p.key) not in done]
                if not todo:
                    continue
                await control.wait_running()
                if benches:
                    timing = await benches[build.name].run_point(todo[0], todo)
                else:
                    timing = await _run_chunk(build, model_path, spec, (todo[0],), emit, recorder,
                                              timeouts)
                done.add((build.name, todo[0].key))
                if timing is not None:
                    timings.append(timing)
            chosen, why = choose_granularity(timings, fits, why_not)
            emit(SweepNote(message=why, at=time.time()))
            if chosen != "resident":
                for bench in benches.values():
                    await bench.stop()
        if chosen == "resident":
            if not benches:
                benches.update(resident_benches(group))
            await _take_turns_resident(group, points, done, interleave, control, benches)
            return
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
            result = _parse_result_line(line, stderr_tail)
            if result is None:
                continue
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
    for point in pending.values():
        emit(_point_failed(build.name, point, process.returncode, timed_out, limit, stderr_tail))
    return timing


class _ResidentBench:
    """One llama-bench over all of a build's remaining points, paused between them.

    When a test's result line arrives (or, failing that, ``benchmark k/N: starting`` for the
    next test) the process is stopped with SIGSTOP at once: what follows before the next
    timed repetition (freeing and creating a context, the warm-up run) is untimed, so the
    pause lands outside the measurement. The process waits there, model loaded, until its
    next turn (SIGCONT). Should a timed repetition's progress line show up while it is
    paused, the pause may have landed inside the measurement: that point runs again in a
    fresh process. A crash or hang fails the point that was running; the next turn starts
    a fresh process for the points still to do.
    """

    def __init__(self, build: Any, model_path: Path, spec: SweepSpec,
                 emit: Callable[[BenchEvent], None], recorder: _Telemetry | None,
                 timeouts: TimeoutPolicy):
        self.build, self.model_path, self.spec = build, model_path, spec
        self.emit, self.recorder, self.timeouts = emit, recorder, timeouts
        self.process: asyncio.subprocess.Process | None = None
        self.queue: list[TestPoint] = []  # the points this process runs, in its order
        self.index = -1  # which of them is running or next to run
        self.readers: list[asyncio.Task] = []
        self.results: dict[str, BenchResult] = {}
        self.boundary = asyncio.Event()
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self.started_at: dict[str, float] = {}
        self.argv: list[str] = []
        self.spawned_at = 0.0
        self.first_work_at: float | None = None  # the model is loaded: the first test begins
        self.paused = False
        self.pause_leaked = False  # a timed repetition started before the pause took hold

    async def _spawn(self, todo: list[TestPoint]) -> bool:
        todo = grid_prefix(todo)  # a later turn starts another process for the rest
        self.argv = bench_argv(self.build, self.model_path, self.spec, tuple(todo))
        self.queue, self.index = todo, 0
        self.boundary = asyncio.Event()
        self.stderr_tail.clear()
        self.spawned_at, self.first_work_at = time.monotonic(), None
        self.paused = self.pause_leaked = False
        try:
            self.process = await procs.spawn(self.argv, env=getattr(self.build, "env", None))
        except OSError as error:
            self.process = None
            self.emit(PointFailed(build=self.build.name, point=todo[0], at=time.time(),
                                  reason=f"cannot start llama-bench: {error.strerror or error}"))
            return False
        if self.recorder is not None:
            with contextlib.suppress(Exception):
                self.recorder.source.watch_pids([self.process.pid])
        self.readers = [asyncio.create_task(self._read_results(self.process)),
                        asyncio.create_task(self._read_progress(self.process))]
        return True

    async def _read_results(self, process: asyncio.subprocess.Process) -> None:
        async for line in process.stdout:
            result = _parse_result_line(line, self.stderr_tail)
            if result is not None:
                self.results[result.point.key] = result
                if (0 <= self.index < len(self.queue) - 1
                        and result.point.key == self.queue[self.index].key):
                    self._pause(process)
                now = time.time()
                summary = None
                if self.recorder is not None:
                    summary = self.recorder.summary(self.started_at.get(result.point.key, now), now)
                self.emit(ResultReceived(build=self.build.name, result=result, at=now,
                                         telemetry=summary))

    async def _read_progress(self, process: asyncio.subprocess.Process) -> None:
        async for line in process.stderr:
            text = line.decode("utf-8", "replace").rstrip()
            match = _PROGRESS.match(text)
            if not match:
                if text:
                    self.stderr_tail.append(text)
                continue
            index, message = int(match.group(1)) - 1, match.group(3)
            if message != "starting" and self.first_work_at is None:
                self.first_work_at = time.monotonic()
            if index > self.index:
                if message == "starting":
                    self._pause(process)
                elif _TIMED_RUN.match(message):
                    self.pause_leaked = True
                continue
            if 0 <= self.index < len(self.queue):
                self.emit(PointProgress(build=self.build.name, point=self.queue[self.index],
                                        message=message, at=time.time()))

    def _pause(self, process: asyncio.subprocess.Process) -> None:
        if not self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGSTOP)
            self.paused = True
        self.boundary.set()

    async def run_point(self, point: TestPoint, todo: list[TestPoint]) -> ChunkTiming | None:
        """Run ``point`` (the first of ``todo``, the build's remaining points) to its end.

        For the first point of a fresh process, returns where its time went (load, work)."""
        fresh = self.process is None or self.process.returncode is not None \
            or self.index + 1 >= len(self.queue) or self.queue[self.index + 1] != point \
            or self.pause_leaked
        if fresh:
            if self.pause_leaked and self.process is not None:
                self.emit(SweepNote(at=time.time(), message=(
                    f"{self.build.name}: the pause before {point.name} took hold only after a "
                    "timed repetition began; measuring it again in a fresh process")))
            await self.stop()
            if not await self._spawn(todo):
                return None
        else:
            self.index += 1
            self.boundary.clear()
            self.paused = False
            os.kill(self.process.pid, signal.SIGCONT)
        process = self.process
        self.started_at[point.key] = time.time()
        self.emit(PointStarted(build=self.build.name, point=point, argv=tuple(self.argv),
                               at=self.started_at[point.key], pid=process.pid))
        limit = self.timeouts.seconds(self.build.name, (point,), self.spec.repetitions,
                                      self.spec.timeout)
        began = time.monotonic()
        ended = asyncio.ensure_future(process.wait())
        boundary = asyncio.ensure_future(self.boundary.wait())
        try:
            await asyncio.wait({ended, boundary}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            boundary.cancel()
            if not ended.done():
                ended.cancel()
        timed_out = not self.boundary.is_set() and process.returncode is None
        if process.returncode is not None or timed_out:
            await self.stop()  # the group dies with it; readers drain what was written
        elif point.key not in self.results:
            # Paused at the next test: its result line is already in the pipe.
            for _ in range(100):
                if point.key in self.results:
                    break
                await asyncio.sleep(0.05)
        if point.key in self.results:
            finished = time.monotonic()
            self.timeouts.observe(self.build.name, (point,), self.spec.repetitions, finished - began)
            if fresh and self.first_work_at is not None:
                return ChunkTiming(load_s=self.first_work_at - self.spawned_at,
                                   work_s=finished - self.first_work_at, points=1)
            return None
        self.emit(_point_failed(self.build.name, point, process.returncode, timed_out, limit,
                                self.stderr_tail))
        await self.stop()
        return None

    async def stop(self) -> None:
        """Kill the process group (a stopped process dies of SIGKILL too) and reap it."""
        process, self.process = self.process, None
        if process is None:
            return
        procs.kill_group(process)
        if self.readers:
            await asyncio.wait(self.readers, timeout=5)
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        self.readers = []
        if process.returncode is None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(process.wait()), 10)


async def _take_turns_resident(group: Sequence[Any], points: Sequence[TestPoint], done: set,
                               interleave: bool, control: SweepControl,
                               benches: dict[str, _ResidentBench]) -> None:
    order = ([(b, p) for p in points for b in group] if interleave
             else [(b, p) for b in group for p in points])
    for build, point in order:
        if (build.name, point.key) in done:
            continue
        await control.wait_running()
        todo = [p for p in points if (build.name, p.key) not in done]
        await benches[build.name].run_point(point, todo)
        done.add((build.name, point.key))


def _parse_result_line(line: bytes, tail: deque[str]) -> BenchResult | None:
    """A ``-o jsonl`` result line; anything else on stdout is kept in ``tail`` for failures."""
    text = line.decode("utf-8", "replace").strip()
    try:
        record = json.loads(text)
    except ValueError:
        if text:
            tail.append(text)
        return None
    return BenchResult.from_llama_bench(record) if isinstance(record, dict) else None


def _point_failed(build: str, point: TestPoint, returncode: int | None, timed_out: bool,
                  limit: float, tail: Iterable[str]) -> PointFailed:
    """The failure of a point that ended without a result, in one line plus the stderr tail."""
    reason, signal_name = procs.describe_exit(returncode)
    if timed_out:
        reason = f"hung: no result within {limit:.0f} s, killed"
    elif returncode == 0:
        reason = "llama-bench finished without a result for this point"
    tail = list(tail)
    detail = _last_error(tail)
    return PointFailed(
        build=build, point=point, at=time.time(),
        reason=f"{reason}: {detail}" if detail and not timed_out else reason,
        exit_code=None if timed_out else returncode,
        signal=None if timed_out else signal_name, timed_out=timed_out,
        stderr_tail="\n".join(tail))


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

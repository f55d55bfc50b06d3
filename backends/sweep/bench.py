"""llama-bench processes: a group of points in one process, or one loaded process paused
between its points (resident). Both read results from ``-o jsonl`` (one line per finished
test, flushed) and progress from ``--progress`` on stderr, through ``backends.tool``.

A crash, OOM kill, hang or invalid result ends only the point it hit: it becomes a
PointFailed and the sweep goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from backends.journal.sweep import (
    BenchResult,
    PointFailed,
    PointProgress,
    PointStarted,
    ResultReceived,
    SweepNote,
    TestPoint,
)
from backends.sweep.argv import BenchBuild, bench_argv
from backends.sweep.energy import EnergyFigures, RepetitionTracker
from backends.sweep.plan import ChunkTiming, TimeoutPolicy, grid_prefix
from backends.sweep.records import (
    PROGRESS,
    TIMED_RUN,
    InvalidResult,
    invalid_result_failure,
    parse_result_line,
    point_failed,
)
from backends.sweep.spec import SweepSpec
from backends.tool import LOCAL, Finished, Launcher, ToolProcess

if TYPE_CHECKING:
    from backends.journal.journal import RunEvent

# Timed repetitions set aside as warm-up at the start of every block (journalled in the
# result's warmup_ts, not counted): none. llama-bench runs an untimed warm-up of its own
# right before each test's timed repetitions (a full prompt run, or one generated token
# after which the depth prefill follows), so a block never starts cold; a set-aside
# repetition on top of it cost a whole repetition per block. On an H100 the first timed
# repetition after llama-bench's warm-up ran a median 0.4 % below the block's others
# (2.5 % below to 0.8 % above, 21 blocks in benchmarks/results/h100-vulkan-aa-2026-12-07), well inside the 3 % tie
# band, and both builds pay it alike. Journals of older runs keep their set-aside ones.
WARMUP_REPETITIONS = 0


@dataclass(frozen=True)
class Block:
    """Repetitions of some points for one contender: what one turn measures."""

    points: tuple[TestPoint, ...]
    repetitions: int  # counted; llama-bench is asked WARMUP_REPETITIONS more
    index: int = 0  # 0 for a point's first block, then 1, 2...

    @property
    def asked(self) -> int:
        return self.repetitions + WARMUP_REPETITIONS


class Machine(Protocol):
    """What the machine a block runs on tells about it: energy per repetition, temperatures."""

    def tracker(self) -> RepetitionTracker: ...
    def start_temps(self) -> dict[str, float]: ...


class BenchContext:
    """What every llama-bench process of a sweep shares: model, spec, where events go."""

    def __init__(self, model_path: Path, spec: SweepSpec, emit: Callable[[RunEvent], None],
                 summary: Callable[[float, float, BenchResult, str], dict[str, object] | None],
                 timeouts: TimeoutPolicy, watch: Callable[[BenchBuild, int], None],
                 launcher_for: Callable[[BenchBuild], Launcher] = lambda _: LOCAL,
                 model_for: Callable[[BenchBuild], str] | None = None,
                 machine: Callable[[BenchBuild], Machine] | None = None) -> None:
        self.model_path, self.spec, self.emit = model_path, spec, emit
        self.summary, self.timeouts, self.watch = summary, timeouts, watch
        # Where a contender's tools run (a fresh launcher per process) and its model there.
        self.launcher_for = launcher_for
        self.model_for = model_for or (lambda _: str(model_path))
        self.machine = machine  # where a contender runs: its energy meter and temperatures
        self.start_temps: dict[tuple[str, str], dict[str, float]] = {}
        self.loaded: Callable[[float], None] = lambda _seconds: None  # a process's load time

    def tracker(self, contender: BenchBuild) -> RepetitionTracker:
        """Energy per counted repetition, where the contender's machine has a meter."""
        if self.machine is None:
            return RepetitionTracker(None, WARMUP_REPETITIONS)
        return self.machine(contender).tracker()

    def argv(self, contender: BenchBuild, points: Sequence[TestPoint], repetitions: int) -> list[str]:
        return bench_argv(contender, self.model_for(contender), self.spec, points, repetitions)

    def result(self, contender: BenchBuild, result: BenchResult, started: float, block: Block,
               energy: EnergyFigures | None = None) -> None:
        now = time.time()
        summary = self.summary(started, now, result, contender.name)
        if energy is not None:  # over the counted repetitions: replaces the block's estimate
            summary = {**(summary or {}), **energy}
        if temps := self.start_temps.pop((contender.name, result.point.key), None):
            summary = {**(summary or {}), "start_temps": temps}
        self.emit(ResultReceived(build=contender.name, result=result, at=now, telemetry=summary,
                                 block=block.index, throttled=bool(summary and summary.get("throttled"))))

    def started(self, contender: BenchBuild, point: TestPoint, argv: Sequence[str], pid: int,
                block: Block) -> float:
        at = time.time()
        if self.machine is not None:  # said with the block's result, in its telemetry
            self.start_temps[(contender.name, point.key)] = self.machine(contender).start_temps()
        self.emit(PointStarted(build=contender.name, point=point, argv=tuple(argv), at=at, pid=pid,
                               block=block.index, repetitions=block.repetitions))
        return at


async def run_chunk(ctx: BenchContext, contender: BenchBuild, block: Block) -> ChunkTiming | None:
    """One llama-bench process for ``block``; its load/work split when it succeeded."""
    chunk = block.points
    argv = ctx.argv(contender, chunk, block.asked)
    limit = ctx.timeouts.seconds(contender.name, chunk, block.asked, ctx.spec.timeout)
    tool = ToolProcess(argv, env=contender.env, launcher=ctx.launcher_for(contender))
    if not await _start(ctx, contender, tool, chunk):
        return None
    pending = {p.key: p for p in chunk}
    pid = tool.tool_pid or tool.pid  # where it runs
    started = {chunk[0].key: ctx.started(contender, chunk[0], argv, pid, block)}
    first_work: list[float] = []  # when the first point began work: the model is loaded
    ctx.watch(contender, tool.pid)
    tracker = ctx.tracker(contender)  # energy over each counted repetition
    async def read_results() -> None:
        async for line in tool.stdout_lines():
            parsed = parse_result_line(line, warmup=WARMUP_REPETITIONS)
            if parsed is None:
                tool.note_stdout(line)
                continue
            key = parsed.point.key if parsed.point else ""
            point = pending.pop(key, None) or parsed.point or next(iter(pending.values()), chunk[-1])
            pending.pop(point.key, None)
            energy = tracker.finish(point)
            if isinstance(parsed, InvalidResult):
                ctx.emit(invalid_result_failure(contender.name, point, parsed))
            else:
                ctx.result(contender, parsed, started.get(point.key, time.time()), block, energy)

    async def read_progress() -> None:
        async for index, message in progress_lines(tool):
            tracker.progress(message)
            if message != "starting" and not first_work:
                first_work.append(time.monotonic())
            point = chunk[index] if index < len(chunk) else chunk[-1]
            if message == "starting" and point.key not in started:
                started[point.key] = ctx.started(contender, point, argv, pid, block)
            ctx.emit(PointProgress(build=contender.name, point=point, message=message, at=time.time()))

    readers = [asyncio.create_task(read_results()), asyncio.create_task(read_progress())]
    try:
        finished = await tool.wait(limit)
        if not finished.timed_out:
            # The pipes close when the process exits; a child it left behind could hold them.
            await asyncio.wait(readers, timeout=10)
    finally:
        await tool.kill()  # also on cancel: the group and whatever it started die
        tracker.abandon()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    for point in pending.values():
        ctx.emit(point_failed(contender.name, point, tool.returncode, finished.timed_out, limit,
                              tool.stderr_tail, tool.stdout_head))
    return None if pending else _timing(ctx, contender, block, tool, finished, first_work)


def _timing(ctx: BenchContext, contender: BenchBuild, block: Block, tool: ToolProcess,
            finished: Finished, first_work: list[float]) -> ChunkTiming | None:
    """Where a process's time went (load, work), when it ran every point of its block."""
    if finished.timed_out or tool.returncode != 0:
        return None
    ctx.timeouts.observe(contender.name, block.points, block.asked, finished.seconds)
    if not first_work:
        return None
    load = first_work[0] - tool.started_at
    ctx.loaded(load)
    return ChunkTiming(load_s=load, work_s=finished.seconds - load, points=len(block.points))


async def _start(ctx: BenchContext, contender: BenchBuild, tool: ToolProcess,
                 points: Sequence[TestPoint]) -> bool:
    """Start a llama-bench; when it cannot start, each of ``points`` fails saying why."""
    try:
        await tool.start()
    except OSError as error:
        for point in points:
            ctx.emit(PointFailed(build=contender.name, point=point, at=time.time(),
                                 reason=f"cannot start llama-bench: {error.strerror or error}"))
        return False
    return True


class ResidentBench:
    """One llama-bench over a round's points for one contender, paused between them.

    When a test's result line arrives (or, failing that, ``benchmark k/N: starting`` for the
    next test) the process is stopped with SIGSTOP at once: what follows before the next
    timed repetition (freeing and creating a context, the warm-up run) is untimed, so the
    pause lands outside the measurement. The process waits there, model loaded, until its
    next turn (SIGCONT). Should a timed repetition's progress line show up while it is
    paused, the pause may have landed inside the measurement: that point runs again in a
    fresh process. A crash or hang fails the point that was running; the next turn starts
    a fresh process for the points still to do.
    """

    def __init__(self, ctx: BenchContext, contender: BenchBuild, repetitions: int) -> None:
        self.ctx, self.contender = ctx, contender
        self.block = Block((), repetitions)
        self.tool: ToolProcess | None = None
        self.queue: list[TestPoint] = []  # the points this process runs, in its order
        self.position = -1  # which of them is running or next to run
        self.readers: list[asyncio.Task[None]] = []
        self.results: dict[str, BenchResult | InvalidResult] = {}
        self.boundary = asyncio.Event()
        self.started_at: dict[str, float] = {}
        self.argv: list[str] = []
        self.first_work_at: float | None = None  # the model is loaded: the first test begins
        self.pause_leaked = False  # a timed repetition started before the pause took hold
        self.tracker = ctx.tracker(contender)

    async def _spawn(self, todo: list[TestPoint]) -> bool:
        todo = grid_prefix(todo)  # a later turn starts another process for the rest
        self.argv = self.ctx.argv(self.contender, tuple(todo), self.block.asked)
        self.queue, self.position = todo, 0
        self.boundary = asyncio.Event()
        self.first_work_at, self.pause_leaked = None, False
        tool = ToolProcess(self.argv, env=self.contender.env,
                           launcher=self.ctx.launcher_for(self.contender))
        if not await _start(self.ctx, self.contender, tool, todo[:1]):
            return False
        self.tool = tool
        self.ctx.watch(self.contender, tool.pid)
        self.readers = [asyncio.create_task(self._read_results(tool)),
                        asyncio.create_task(self._read_progress(tool))]
        return True

    async def _read_results(self, tool: ToolProcess) -> None:
        async for line in tool.stdout_lines():
            parsed = parse_result_line(line, warmup=WARMUP_REPETITIONS)
            if parsed is None:
                tool.note_stdout(line)
                continue
            point = parsed.point or self._current()
            if point.key != self._current().key:
                # The process ran ahead before its pause took hold (a busy machine): that
                # point was measured out of turn, so it is measured again in its turn.
                self.pause_leaked = True
                self._pause(tool)
                continue
            self.results[point.key] = parsed
            if 0 <= self.position < len(self.queue) - 1:
                self._pause(tool)
            energy = self.tracker.finish(point)
            if isinstance(parsed, InvalidResult):
                self.ctx.emit(invalid_result_failure(self.contender.name, point, parsed))
            else:
                self.ctx.result(self.contender, parsed, self.started_at.get(point.key, time.time()),
                                self.block, energy)

    async def _read_progress(self, tool: ToolProcess) -> None:
        async for index, message in progress_lines(tool):
            self.tracker.progress(message)
            if message != "starting" and self.first_work_at is None:
                self.first_work_at = time.monotonic()
            if index > self.position:
                if message == "starting":
                    self._pause(tool)
                elif TIMED_RUN.match(message):
                    self.pause_leaked = True
                continue
            if 0 <= self.position < len(self.queue):
                self.ctx.emit(PointProgress(build=self.contender.name, point=self.queue[self.position],
                                            message=message, at=time.time()))

    def _current(self) -> TestPoint:
        return self.queue[min(max(self.position, 0), len(self.queue) - 1)]

    def _pause(self, tool: ToolProcess) -> None:
        tool.pause()
        self.boundary.set()

    def _continues(self, point: TestPoint) -> bool:
        tool = self.tool
        return (tool is not None and tool.running and not self.pause_leaked
                and self.position + 1 < len(self.queue) and self.queue[self.position + 1] == point)

    async def run_point(self, point: TestPoint, todo: list[TestPoint], index: int) -> ChunkTiming | None:
        """Run ``point`` (the first of ``todo``, the round's remaining points) to its end, as
        block ``index`` of that point.

        For the first point of a fresh process, returns where its time went (load, work)."""
        fresh = not self._continues(point)
        if fresh:
            if self.pause_leaked and self.tool is not None:
                self.ctx.emit(SweepNote(at=time.time(), message=(
                    f"{self.contender.name}: the pause before {point.name} took hold only after a "
                    "timed repetition began; measuring it again in a fresh process")))
            await self.stop()
            if not await self._spawn(todo):
                return None
        else:
            self.position += 1
            self.boundary.clear()
        assert self.tool is not None
        tool = self.tool
        self.block = Block((point,), self.block.repetitions, index)
        self.started_at[point.key] = self.ctx.started(self.contender, point, self.argv, tool.pid,
                                                      self.block)
        tool.resume()
        return await self._await_point(tool, point, fresh)

    async def _await_point(self, tool: ToolProcess, point: TestPoint, fresh: bool) -> ChunkTiming | None:
        limit = self.ctx.timeouts.seconds(self.contender.name, (point,), self.block.asked,
                                          self.ctx.spec.timeout)
        began = time.monotonic()
        assert tool.process is not None
        ended = asyncio.ensure_future(tool.process.wait())
        boundary = asyncio.ensure_future(self.boundary.wait())
        try:
            await asyncio.wait({ended, boundary}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            boundary.cancel()
            if not ended.done():
                ended.cancel()
        timed_out = not self.boundary.is_set() and tool.returncode is None
        if tool.returncode is not None or timed_out:
            await self.stop()  # the group dies with it; readers drain what was written
        elif point.key not in self.results:
            # Paused at the next test: its result line is already in the pipe.
            await _wait_for(lambda: point.key in self.results, seconds=5.0)
        if isinstance(self.results.get(point.key), BenchResult):
            finished = time.monotonic()
            self.ctx.timeouts.observe(self.contender.name, (point,), self.block.asked, finished - began)
            if fresh and self.first_work_at is not None:
                self.ctx.loaded(self.first_work_at - tool.started_at)
                return ChunkTiming(load_s=self.first_work_at - tool.started_at,
                                   work_s=finished - self.first_work_at, points=1)
            return None
        if point.key not in self.results:
            self.ctx.emit(point_failed(self.contender.name, point, tool.returncode, timed_out, limit,
                                       tool.stderr_tail, tool.stdout_head))
        await self.stop()
        return None

    async def stop(self) -> None:
        """Kill the process group (a stopped process dies of SIGKILL too) and reap it."""
        tool, self.tool = self.tool, None
        self.tracker.abandon()
        if tool is None:
            return
        await tool.kill()
        if self.readers:
            await asyncio.wait(self.readers, timeout=5)
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        self.readers = []


async def progress_lines(tool: ToolProcess) -> AsyncIterator[tuple[int, str]]:
    """llama-bench's ``--progress`` lines on stderr as (test index from 0, message); every
    other line is kept for the failure report."""
    async for text in tool.stderr_lines():
        match = PROGRESS.match(text)
        if match:
            yield int(match.group(1)) - 1, match.group(3)
        else:
            tool.remember(text)


async def _wait_for(condition: Callable[[], bool], seconds: float) -> None:
    """Yield to the readers until ``condition`` holds (a line already in a pipe), at most
    ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def stop_all(benches: Iterable[ResidentBench]) -> None:
    for bench in benches:
        await bench.stop()

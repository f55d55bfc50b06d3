"""llama-bench processes: a group of points in one process (here), or one loaded process
paused between its points (``backends.sweep.resident``). Both read results from ``-o jsonl`` (one line per finished
test, flushed) and progress from ``--progress`` on stderr, through ``backends.tool``.

A crash, OOM kill, hang or invalid result ends only the point it hit: it becomes a
PointFailed and the sweep goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from backends.journal.sweep import (
    BenchResult,
    PointFailed,
    PointProgress,
    PointStarted,
    ResultReceived,
    TestPoint,
)
from backends.sweep.argv import BenchBuild, bench_argv
from backends.sweep.energy import EnergyFigures, RepetitionTracker
from backends.sweep.plan import ChunkTiming, TimeoutPolicy
from backends.sweep.records import (
    PROGRESS,
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
        # Whether a resident process may run on into its next point unpaused (the sweep is not paused).
        self.may_run_on: Callable[[], bool] = lambda: True

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
    if not await start_tool(ctx, contender, tool, chunk):
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
            energy = tracker.finish(point, chunk.index(point) if point in chunk else -1)
            if isinstance(parsed, InvalidResult):
                ctx.emit(invalid_result_failure(contender.name, point, parsed))
            else:
                ctx.result(contender, parsed, started.get(point.key, time.time()), block, energy)

    async def read_progress() -> None:
        async for index, message in progress_lines(tool):
            tracker.progress(message, index)
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


async def start_tool(ctx: BenchContext, contender: BenchBuild, tool: ToolProcess,
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


async def progress_lines(tool: ToolProcess) -> AsyncIterator[tuple[int, str]]:
    """llama-bench's ``--progress`` lines on stderr as (test index from 0, message); every
    other line is kept for the failure report."""
    async for text in tool.stderr_lines():
        match = PROGRESS.match(text)
        if match:
            yield int(match.group(1)) - 1, match.group(3)
        else:
            tool.remember(text)

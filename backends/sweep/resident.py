"""One loaded llama-bench per contender over a round's points, paused between them.

See ``ResidentBench``; ``backends.sweep.runner`` decides whose turn it is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from backends.journal.sweep import BenchResult, PointProgress, SweepNote, TestPoint
from backends.sweep.argv import BenchBuild
from backends.sweep.bench import WARMUP_REPETITIONS, BenchContext, Block, progress_lines, start_tool
from backends.sweep.plan import ChunkTiming, grid_prefix
from backends.sweep.records import (
    TIMED_RUN,
    InvalidResult,
    invalid_result_failure,
    parse_result_line,
    point_failed,
)
from backends.tool import ToolProcess

# After a contender's turn at a point: its next turn (point, block index) when that comes
# straight after, to run on into; None when another contender or a wait comes first.
NextTurn = Callable[[TestPoint], tuple[TestPoint, int] | None]


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

    When the same contender's next turn is the process's next point (ABBA gives every
    build two turns in a row; a build alone has every turn) and nothing asks to wait (the
    thermal guard, a pause of the sweep), there is no pause: the process runs on into that
    point as bare llama-bench would, which also spares that boundary a pause that a busy
    machine can land late.
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
        self.timed_early: set[int] = set()  # tests whose timed run began before the last result was read
        self.tracker = ctx.tracker(contender)
        self.follow: tuple[TestPoint, int] | None = None  # the next turn, run on without a pause
        self.next_turn: NextTurn | None = None  # the runner's answer to "what comes after"
        self.ahead: list[TestPoint] = []  # run on into, in order, not yet awaited by the runner

    async def _spawn(self, todo: list[TestPoint]) -> bool:
        todo = grid_prefix(todo)  # a later turn starts another process for the rest
        self.argv = self.ctx.argv(self.contender, tuple(todo), self.block.asked)
        self.queue, self.position = todo, 0
        self.boundary = asyncio.Event()
        self.first_work_at, self.pause_leaked = None, False
        self.timed_early = set()
        tool = ToolProcess(self.argv, env=self.contender.env,
                           launcher=self.ctx.launcher_for(self.contender))
        if not await start_tool(self.ctx, self.contender, tool, todo[:1]):
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
            follow = self._following()
            if follow is None and 0 <= self.position < len(self.queue) - 1:
                self._pause(tool)
                # Its next test's timed run was seen before this result was read: too late.
                self.pause_leaked = self.pause_leaked or self.position + 1 in self.timed_early
            energy = self.tracker.finish(point, self.position)
            if isinstance(parsed, InvalidResult):
                self.ctx.emit(invalid_result_failure(self.contender.name, point, parsed))
            else:
                self.ctx.result(self.contender, parsed, self.started_at.get(point.key, time.time()),
                                self.block, energy)
            if follow is not None:
                self._run_on(tool, *follow)

    async def _read_progress(self, tool: ToolProcess) -> None:
        async for index, message in progress_lines(tool):
            self.tracker.progress(message, index)
            if message != "starting" and self.first_work_at is None:
                self.first_work_at = time.monotonic()
            if index > self.position:
                if self._runs_on(index):
                    continue  # its own PointStarted comes with the last point's result
                if message == "starting":
                    self._pause(tool)  # a run-on resumes it
                elif TIMED_RUN.match(message):
                    if index == self.position + 1:
                        self.pause_leaked = True
                    else:  # the results are not read that far yet: judged when they are
                        self.timed_early.add(index)
                continue
            if index == self.position < len(self.queue):  # not a late line of a point now done
                self.ctx.emit(PointProgress(build=self.contender.name, point=self.queue[self.position],
                                            message=message, at=time.time()))

    def _runs_on(self, index: int) -> bool:
        """Whether test ``index`` is the next turn, to run on without a pause."""
        follow = self.follow
        return (follow is not None and index == self.position + 1 and index < len(self.queue)
                and self.queue[index] == follow[0] and not self.pause_leaked and self.ctx.may_run_on())

    def _following(self) -> tuple[TestPoint, int] | None:
        """At a result: the next turn to run on into (and its block index), taken once."""
        follow = self.follow if self._runs_on(self.position + 1) else None
        self.follow = None
        return follow

    def _run_on(self, tool: ToolProcess, point: TestPoint, index: int) -> None:
        """The process goes on into ``point`` at once: it starts now, its turn awaits it."""
        self.position += 1
        self.block = Block((point,), self.block.repetitions, index)
        self.started_at[point.key] = self.ctx.started(self.contender, point, self.argv, tool.pid,
                                                      self.block)
        self.ahead.append(point)
        # Asked now, not when the runner gets to this turn: a busy machine may let the
        # process finish it first, and without a next turn it would pause (maybe late).
        self.follow = self.next_turn(point) if self.next_turn is not None else None
        tool.resume()  # a "starting" line may have paused it first
        self.boundary.set()

    def _current(self) -> TestPoint:
        return self.queue[min(max(self.position, 0), len(self.queue) - 1)]

    def _pause(self, tool: ToolProcess) -> None:
        tool.pause()
        self.boundary.set()

    def _continues(self, point: TestPoint) -> bool:
        tool = self.tool
        return (tool is not None and tool.running and not self.pause_leaked
                and self.position + 1 < len(self.queue) and self.queue[self.position + 1] == point)

    async def run_point(self, point: TestPoint, todo: list[TestPoint], index: int,
                        next_turn: NextTurn | None = None) -> ChunkTiming | None:
        """Run ``point`` (the first of ``todo``, the round's remaining points) to its end, as
        block ``index`` of that point; ``next_turn``: the same contender's next turn after a
        point, to run on into without a pause.

        For the first point of a fresh process, returns where its time went (load, work)."""
        self.next_turn = next_turn
        follow = next_turn(point) if next_turn is not None else None
        if point in self.ahead:  # the process ran on into it
            del self.ahead[:self.ahead.index(point) + 1]
            if (done := self.results.get(point.key)) is not None:  # ended before its turn came
                if not isinstance(done, BenchResult):
                    await self.stop()  # as after an invalid result in its turn
                return None
            if self.tool is not None:  # running, or ended with its result maybe still unread
                self.follow = follow
                self.boundary.clear()
                return await self._await_point(self.tool, point, fresh=False)
        self.ahead = []
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
        self.follow = follow
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
        if tool.returncode is not None and self.readers:
            # It ended on its own: first read what it wrote (points it ran on into, unread).
            await asyncio.wait(self.readers, timeout=5)
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
        self.follow, self.ahead = None, []
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


async def _wait_for(condition: Callable[[], bool], seconds: float) -> None:
    """Yield to the readers until ``condition`` holds (a line already in a pipe), at most
    ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def stop_all(benches: Iterable[ResidentBench]) -> None:
    for bench in benches:
        await bench.stop()

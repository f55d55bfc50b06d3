"""Run a sweep: contenders take turns on llama-bench, every event journalled before it is seen.

``run_sweep`` yields the events of ``backends.journal.sweep`` as they happen. A ``Sweep`` measures
in rounds: the first round gives every point its first block of repetitions; with adaptive
repetitions (``-r auto``) each later round adds a block to the points whose comparison is still
open, until it is decided or the cap is reached. Within a round the granularity
(``backends.sweep.plan``) maps points onto processes, contenders alternate ABBA, the thermal
guard waits before every block, and a block measured while the GPU throttled is measured once
more after cooling. Contenders that share a GPU take turns; ``parallel=True`` runs contenders
on different devices at once.

Cancelling the iterator (or the task consuming it) kills every child process group (none is
left running) and leaves what was journalled but not yet yielded in the control's
``undelivered``. A journal that cannot be written stops the sweep with one line saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from pathlib import Path
from typing import Any

from backends.builds import BuildInfo
from backends.journal.journal import Journal, JournalError, RunEvent
from backends.journal.sweep import (
    BenchResult,
    CoolingWaited,
    PointDecided,
    PointFailed,
    ResultReceived,
    SweepFinished,
    SweepNote,
    SweepStarted,
    TestPoint,
)
from backends.models import ModelInfo
from backends.sweep import adaptive
from backends.sweep.argv import BenchBuild
from backends.sweep.bench import BenchContext, Block, run_chunk
from backends.sweep.check_first import check_before_sweep
from backends.sweep.control import Blocks, SweepControl
from backends.sweep.guard import ThermalGuard, reading_pairs
from backends.sweep.hosts import (
    by_machine,
    cancel_all,
    explain_failure,
    launcher_for,
    machines_note,
    resident_group_fits,
    together,
)
from backends.sweep.monitors import make_monitors, record_ticks, take_baselines
from backends.sweep.overhead import Overhead
from backends.sweep.plan import (
    ChunkTiming,
    TimeoutPolicy,
    choose_granularity,
    chunk_points,
    schedule,
    split_into_grids,
    turn_order,
)
from backends.sweep.request import RunRequest
from backends.sweep.resident import NextTurn, ResidentBench, stop_all
from backends.sweep.spec import SweepSpec
from backends.telemetry.model import TelemetrySource

EXTRA_BLOCK = adaptive.STEP  # repetitions added per round to a point that is still open
Turn = tuple[BuildInfo, TestPoint]  # a contender's turn at a point
_DONE = object()


class Sweep:
    """One sweep's state and its steps; ``events()`` runs it."""

    def __init__(self, request: RunRequest, model: ModelInfo, spec: SweepSpec, *,
                 run_dir: Path, run_id: str, journal: Journal, telemetry: TelemetrySource | None,
                 host_telemetry: Mapping[str, TelemetrySource], control: SweepControl,
                 notes: Sequence[str] = ()) -> None:
        self.request = request
        self.contenders, self.model, self.spec = list(request.builds), model, spec
        self.by_name = {c.name: c for c in self.contenders}
        self.run_dir, self.run_id, self.journal = run_dir, run_id, journal
        self.telemetry, self.control, self.notes, self.started = telemetry, control, list(notes), False
        self.points = spec.points()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.blocks: dict[tuple[str, str], Blocks] = {}
        self.failed: dict[tuple[str, str], str] = {}
        self.settled: set[str] = set()  # point keys with a PointDecided
        self.retried: set[tuple[str, str]] = set()
        self.counts = {"results": 0, "failures": 0}
        # One monitor per machine: its telemetry ticks and its thermal guard.
        self.monitors = make_monitors(self.contenders, spec, telemetry, host_telemetry, not request.parallel)
        self.guard: ThermalGuard = self.monitors[None].guard
        self.model_paths = dict(request.model_paths)  # host -> the model's path there
        self.chosen = request.granularity
        self._handover: dict[str, ResidentBench] = {}  # resident processes auto kept loaded
        self.this_round: set[tuple[str, str]] = set()  # measured (or failed) in this round
        self.ctx = BenchContext(model.path, spec, self.emit, self.summary, request.timeouts or TimeoutPolicy(),
                                self.watch, launcher_for=launcher_for, model_for=self.model_for,
                                machine=lambda c: self.monitors.get(c.host, self.monitors[None]))
        self.overhead = Overhead()  # where the seconds go besides llama-bench's work
        self.ctx.loaded = lambda seconds: self.overhead.add("load", seconds)
        self.ctx.may_run_on = lambda: not self.control.paused
        self.history = tuple(request.history)
        self._replay(request.history)

    # --- events in, events out ------------------------------------------------------------
    def _replay(self, history: Sequence[RunEvent]) -> None:
        """Take over what an interrupted run of this journal had measured."""
        for event in history:
            self._record(event)

    def _record(self, event: RunEvent) -> None:
        if isinstance(event, ResultReceived):
            blocks = self.blocks.setdefault((event.build, event.result.point.key), Blocks())
            blocks.samples.append(event.result.samples_ts)
            blocks.throttled.append(event.throttled)
            self.this_round.add((event.build, event.result.point.key))
            self.counts["results"] += 1
        elif isinstance(event, PointFailed):
            self.failed[(event.build, event.point.key)] = event.reason
            self.this_round.add((event.build, event.point.key))
            self.counts["failures"] += 1
        elif isinstance(event, PointDecided):
            self.settled.add(event.point.key)

    def emit(self, event: RunEvent) -> None:
        """Journal first, then count and hand on; JournalError stops the sweep."""
        if isinstance(event, PointFailed) and (contender := self.by_name.get(event.build)):
            event = explain_failure(contender, event)
        with self.overhead.timed("journal"):
            self.journal.append(event)
        self.overhead.note(event)
        self._record(event)
        self.queue.put_nowait(event)

    def summary(self, start: float, end: float, result: BenchResult, build: str) -> dict[str, object] | None:
        """Telemetry of a block, from the machine it ran on."""
        contender = self.by_name.get(build)
        monitor = self.monitors.get(contender.host if contender else None) or self.monitors[None]
        return monitor.summary(start, end, result, self.request.telemetry_interval)

    def watch(self, contender: BenchBuild, pid: int) -> None:
        """Follow a local llama-bench in the telemetry (a remote one is not followed)."""
        if self.telemetry is not None and not getattr(contender, "host", None):
            with contextlib.suppress(Exception):
                self.telemetry.watch_pids([pid])

    def model_for(self, contender: BenchBuild) -> str:
        """The model's path where the contender runs."""
        host = getattr(contender, "host", None)
        return self.model_paths.get(host, str(self.model.path)) if host else str(self.model.path)

    # --- the run ----------------------------------------------------------------------------

    async def events(self) -> AsyncGenerator[RunEvent, None]:
        helpers = [asyncio.create_task(record_ticks(m, self.request.telemetry_interval,
                                                    lambda: self.started, self.emit, self.overhead))
                   for m in self.monitors.values() if m.source is not None]
        producer = asyncio.create_task(self._produce())
        finished = False
        try:
            while (item := await self.queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
            await cancel_all(helpers)
            while not self.queue.empty():  # telemetry that arrived while stopping
                yield self.queue.get_nowait()
            final = SweepFinished(run_id=self.run_id, results=self.counts["results"], at=time.time(),
                                  failures=self.counts["failures"], overhead=self.overhead.figures())
            self.journal.append(final)
            finished = True
            yield final
        except JournalError as error:
            finished = True
            yield SweepFinished(run_id=self.run_id, results=self.counts["results"],
                                failures=self.counts["failures"], cancelled=True, at=time.time(),
                                problem=f"{error}; the sweep stopped, results so far are in {self.run_dir}")
        finally:
            # Each step's own finally kills its llama-bench group; wait until they have.
            await cancel_all([producer, *helpers])
            if not finished:
                left = [self.queue.get_nowait() for _ in range(self.queue.qsize())]
                self.control.undelivered += [e for e in left if isinstance(e, RunEvent)]
                with contextlib.suppress(JournalError):
                    self.journal.append(SweepFinished(
                        run_id=self.run_id, results=self.counts["results"],
                        failures=self.counts["failures"], cancelled=True, at=time.time()))
            self.journal.close()

    async def _produce(self) -> None:
        try:
            await self._start()
            if self.request.tune is not None:  # each contender at its own best settings
                from backends.tune.phase import run_tune_phase
                with self.overhead.tune_phase():  # a phase of its own, not the sweep's overhead
                    self.contenders = await run_tune_phase(self, self.request.tune)
                self.by_name = {c.name: c for c in self.contenders}
            groups = [[c] for c in self.contenders] if self.request.parallel else [self.contenders]
            await together(self._measure_group(group) for group in groups)
        except BaseException as error:
            self.queue.put_nowait(error)
            raise
        self.queue.put_nowait(_DONE)

    async def _start(self) -> None:
        self.notes += await take_baselines(self.monitors.values(), self.contenders, self.spec.cooldown)
        contenders = {c.name: self._contender_json(c) for c in self.contenders}
        if note := machines_note(contenders):
            self.notes.append(note)
        self.started = True
        self.overhead.start()
        self.emit(SweepStarted(
            run_id=self.run_id, run_dir=str(self.run_dir), model=str(self.model.path),
            builds=tuple(c.name for c in self.contenders), points=self.points,
            spec=self.spec.to_json(), build_paths={c.name: str(c.folder) for c in self.contenders},
            notes=tuple(self.notes), resumed=bool(self.blocks or self.failed or self.settled),
            at=time.time(), contenders=contenders))
        if self.request.check is not None:
            async for event in check_before_sweep(self.contenders, self.model.path, self.request.check):
                self.emit(event)

    def _contender_json(self, contender: BuildInfo) -> dict[str, object]:
        data = contender.contender_json()
        if contender.host and self.model_for(contender) != str(self.model.path):
            data["model"] = self.model_for(contender)
        return data

    # --- rounds -------------------------------------------------------------------------------

    async def _measure_group(self, group: Sequence[BuildInfo]) -> None:
        todo = [p for p in self.points if p.key not in self.settled]
        round_number = 0
        while todo:
            first = round_number == 0
            repetitions = self.spec.repetitions if first else EXTRA_BLOCK
            self.this_round.clear()
            await self._round(group, todo, round_number, repetitions)
            await self._remeasure_throttled(group, todo, repetitions)
            todo = [p for p in todo if not self._settle(group, p)]
            round_number += 1

    def _needs(self, contender: BuildInfo, point: TestPoint) -> bool:
        """Whether ``contender`` measures ``point`` in this round."""
        return (contender.name, point.key) not in self.this_round and self._can_add(contender, point)

    def _can_add(self, contender: BuildInfo, point: TestPoint) -> bool:
        """Whether ``point`` may get more repetitions from ``contender`` (not failed, under the cap)."""
        key = (contender.name, point.key)
        if key in self.failed:
            return False
        have = len(self.blocks[key].counted()) if key in self.blocks else 0
        limit = self.spec.max_repetitions if self.spec.adaptive else self.spec.repetitions
        return have < limit

    def _block(self, contender: BuildInfo, points: tuple[TestPoint, ...], repetitions: int) -> Block:
        blocks = [self.blocks.get((contender.name, p.key)) for p in points]
        index = max((len(b.samples) for b in blocks if b), default=0)
        have = max((len(b.counted()) for b in blocks if b), default=0)
        if self.spec.adaptive and index:
            repetitions = max(1, min(repetitions, self.spec.max_repetitions - have))
        return Block(points, repetitions, index)

    async def _round(self, group: Sequence[BuildInfo], todo: list[TestPoint], round_number: int,
                     repetitions: int) -> None:
        if self.chosen == "auto":
            await self._choose_granularity(group, todo, repetitions)
        if self.chosen == "resident":
            await self._resident_round(group, todo, round_number, repetitions)
            return
        turns = schedule(group, chunk_points(todo, self.chosen), self.request.interleave, round_number)
        await together(self._run_lane(lane, repetitions) for lane in by_machine(turns))

    async def _run_lane(self, lane: Sequence[tuple[BuildInfo, tuple[TestPoint, ...]]],
                        repetitions: int) -> None:
        for contender, chunk in lane:
            wanted = tuple(p for p in chunk if self._needs(contender, p))
            for piece in split_into_grids(wanted):
                await self.before_block(contender, piece[0])
                await run_chunk(self.ctx, contender, self._block(contender, piece, repetitions))

    async def before_block(self, contender: BuildInfo, point: TestPoint) -> None:
        with self.overhead.timed("paused"):
            await self.control.wait_running()
        guard = self.monitors.get(contender.host, self.monitors[None]).guard
        waited = await guard.wait_until_cool(lambda hot: self.emit(SweepNote(
            f"{contender.name}: cooling before {point.name}: "
            + ", ".join(f"{r.label} {r.value:.0f} -> {r.target:.0f}" for r in hot), time.time())))
        if waited is not None:
            seconds, reached, first, last = waited
            self.overhead.add("cooldown", seconds)
            self.emit(CoolingWaited(build=contender.name, point=point, seconds=round(seconds, 1),
                                    reached=reached, readings=reading_pairs(first, last),
                                    at=time.time()))

    async def _choose_granularity(self, group: Sequence[BuildInfo], todo: list[TestPoint],
                                  repetitions: int) -> None:
        """Each contender's first point measures loading against running; with room for all
        contenders at once it runs in the process that may stay for the rest (the next turn:
        the next contender's first point; after the last one's, the round's next)."""
        fits, why_not = resident_group_fits(group, self.request.parallel, self.model, self.spec)
        timings: list[ChunkTiming] = []
        benches = {c.name: ResidentBench(self.ctx, c, repetitions) for c in group} if fits else {}
        order = self._round_order(group, todo, 0)
        try:
            for contender in group:
                mine = [p for p in todo if self._needs(contender, p)]
                if not mine:
                    continue
                await self.before_block(contender, mine[0])
                if benches:  # the last one's next turn is the round's; the others' are not theirs
                    timing = await benches[contender.name].run_point(mine[0], mine, 0, self._next_turn(
                        order, contender, repetitions) if contender == group[-1] else None)
                else:
                    timing = await run_chunk(self.ctx, contender, self._block(contender, (mine[0],), repetitions))
                if timing is not None:
                    timings.append(timing)
            self.chosen, why = choose_granularity(timings, fits, why_not)
            self.emit(SweepNote(why, time.time()))
        finally:
            if self.chosen == "resident":
                self._handover = benches
            else:
                await stop_all(benches.values())

    async def _resident_round(self, group: Sequence[BuildInfo], todo: list[TestPoint],
                              round_number: int, repetitions: int) -> None:
        benches, self._handover = self._handover, {}
        for contender in group:
            benches.setdefault(contender.name, ResidentBench(self.ctx, contender, repetitions))
        try:
            order = self._round_order(group, todo, round_number)
            for contender, point in order:
                if not self._needs(contender, point):
                    continue
                bench = benches[contender.name]
                if point not in bench.ahead:  # else it runs already, right after its last point
                    await self.before_block(contender, point)
                mine = [p for p in todo if self._needs(contender, p)]
                block = self._block(contender, (point,), repetitions)
                await bench.run_point(point, mine[mine.index(point):], block.index,
                                      self._next_turn(order, contender, repetitions))
        finally:
            # Also when cancelled while measuring: no loaded llama-bench is left behind.
            await stop_all(benches.values())

    def _round_order(self, group: Sequence[BuildInfo], todo: list[TestPoint], round_number: int) -> list[Turn]:
        return ([(c, p) for i, p in enumerate(todo) for c in turn_order(group, i, round_number)]
                if self.request.interleave else [(c, p) for c in group for p in todo])

    def _next_turn(self, order: Sequence[Turn], contender: BuildInfo, repetitions: int) -> NextTurn:
        """The contender's next turn after its turn at a point, to run on into when nothing comes
        between: the first still needed in ``order`` (the turns before are done by then)."""
        def after(point: TestPoint) -> tuple[TestPoint, int] | None:
            following = next(((c, p) for c, p in order if self._needs(c, p)
                              and (c.name, p.key) != (contender.name, point.key)), None)
            if (following is None or following[0].name != contender.name
                    or self.monitors.get(contender.host, self.monitors[None]).guard.watching):
                return None
            return following[1], self._block(contender, (following[1],), repetitions).index
        return after

    async def _remeasure_throttled(self, group: Sequence[BuildInfo], todo: list[TestPoint],
                                   repetitions: int) -> None:
        """A block measured while throttling is measured once more after cooling; if that
        throttles too, both are kept with the flag."""
        for point in todo:
            for contender in group:
                key = (contender.name, point.key)
                blocks = self.blocks.get(key)
                if not blocks or not blocks.throttled[-1] or key in self.retried:
                    continue
                self.retried.add(key)
                self.emit(SweepNote(f"{contender.name}: {point.name} was measured while the GPU "
                                    "throttled; measuring it again after cooling", time.time()))
                await self.before_block(contender, point)
                await run_chunk(self.ctx, contender, Block((point,), repetitions, len(blocks.samples)))

    def _settle(self, group: Sequence[BuildInfo], point: TestPoint) -> bool:
        """Journal why measuring ``point`` stops, when it does; False: it needs more."""
        samples = {c.name: self.blocks[(c.name, point.key)].counted() for c in group
                   if (c.name, point.key) in self.blocks and (c.name, point.key) not in self.failed}
        failed = [c.name for c in group if (c.name, point.key) in self.failed]
        outcome = adaptive.settle(self.spec, samples, failed, lambda: self._neighbours(group, point))
        if outcome.outcome == "open" and not outcome.reason.startswith("cap") and any(
                self._can_add(c, point) for c in group if c.name in samples):
            return False
        self.emit(PointDecided(point=point, outcome=outcome.outcome, reason=outcome.reason, leader=outcome.leader,
                               repetitions={n: len(v) for n, v in samples.items()}, at=time.time()))
        return True

    def _neighbours(self, group: Sequence[BuildInfo], point: TestPoint) -> list[dict[str, list[float]]]:
        """The counted repetitions of every contender at the points beside ``point`` on its series."""
        return [{c.name: self.blocks[(c.name, p.key)].counted() for c in group if (c.name, p.key) in self.blocks}
                for p in adaptive.series_neighbours(point, self.points)]

"""The server duel: each contender's own llama-server under the same load, taking turns.

For every load level (depth, prompt length, concurrency) the contenders take ``turns``
turns in A B, B A, A B ... order, each turn a share of the level's requests. At each turn
a contender starts its server (``--parallel`` = the highest concurrency, context for the
largest shape in every slot), warms it up, runs its share, and stops it, so contenders
sharing one GPU never run at once, nothing is left listening between turns, and drift or
heat hit all alike. A level's summary, with each turn's figures, follows its last turn.
``resident=True`` keeps every server up instead, for contenders on different devices.
Then, per shape, llama-bench runs the same shape for the bench-vs-server gap. Every
event is appended to the journal before it is yielded.

    async with contextlib.aclosing(run_serve_duel(contenders, model, spec)) as events:
        async for event in events:
            state = fold(state, event)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backends import paths, procs
from backends.journal.journal import Journal, JournalError, open_run_journal
from backends.journal.serve import (
    BenchGap,
    ContenderFailed,
    DuelFinished,
    DuelStarted,
    Level,
    LevelFinished,
    LevelSummary,
    ServeEvent,
    ServerFailed,
    ServerReady,
    ServerStarting,
    ServerStopped,
    WarmupFailed,
)
from backends.server.gap import measure_gap
from backends.server.journal import EventSink
from backends.server.launch import (
    ServedBuild,
    ServerProcess,
    StartFailure,
    port_free,
    start_server,
)
from backends.server.load import DIED, Put, TurnResult, run_turn, summarize_turns
from backends.server.spec import DuelError, DuelSpec

BIND_ATTEMPTS = 3


@dataclass
class _Duel:
    contenders: Sequence[ServedBuild]
    model: str
    spec: DuelSpec
    put: Put
    log_dir: Path | None
    servers: dict[str, ServerProcess] = field(default_factory=dict)
    turns: dict[tuple[str, str], list[TurnResult]] = field(default_factory=dict)
    starts: int = 0

    async def stop(self, name: str) -> None:
        server = self.servers.pop(name, None)
        if server is None:
            return
        exit_text = await server.stop()
        await self.put(ServerStopped(name, server.port, server.pid, exit_text, port_free(server.port)))

    async def stop_all(self) -> None:
        for name in list(self.servers):
            await self.stop(name)

    def log_path(self, name: str) -> Path | None:
        if self.log_dir is None:
            return None
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self.log_dir / f"{self.starts:03d}-{name}.log"

    async def start(self, contender: ServedBuild, level: Level, turn: int) -> ServerProcess | str:
        """The contender's server, healthy; else why it did not start (a ServerFailed said it)."""
        failure = StartFailure("llama-server did not start")
        for _attempt in range(BIND_ATTEMPTS):
            server = await start_server(contender, self.model, self.spec.settings_for(level),
                                        slots=self.spec.slots_for(level), ctx_size=self.spec.ctx_for(level),
                                        port=contender.port, log_path=self.log_path(contender.name))
            if isinstance(server, StartFailure):
                failure = server
                break
            self.servers[contender.name] = server
            await self.put(ServerStarting(contender.name, server.argv, server.port, server.pid,
                                          level.key, turn))
            ready = await server.wait_healthy(self.spec.start_timeout_s)
            if not isinstance(ready, StartFailure):
                await self.put(ServerReady(contender.name, server.port, server.pid, ready))
                return server
            await self.stop(contender.name)
            failure = ready
            if contender.port is not None or "couldn't bind" not in ready.reason:
                break  # a free port taken by someone else in between is tried again
        await self.put(ServerFailed(contender.name, "start", failure.reason, level.key,
                                    failure.exit_code, failure.signal, failure.log_tail))
        return failure.reason

    async def turn(self, contender: ServedBuild, level: Level, index: int, turn: int) -> None:
        """One turn of ``level``; after the level's last turn (or a failed one) its summary.

        A failed warm-up is said (``WarmupFailed``) and the turn tried once more on a fresh
        server before the level is abandoned."""
        done = self.turns.setdefault((contender.name, level.key), [])
        if done and not done[-1].ok:
            return  # the level failed at an earlier turn
        result = await self.attempt(contender, level, index, turn)
        if result.warmup and result.reason:
            await self.put(WarmupFailed(contender.name, level.key, turn, result.reason, retry=True))
            await self.stop(contender.name)
            result = await self.attempt(contender, level, index, turn)
            if result.warmup and result.reason:
                await self.put(WarmupFailed(contender.name, level.key, turn, result.reason, retry=False))
        done.append(result)
        if not result.ok or turn == self.spec.turns_for(level):
            summary = summarize_turns(contender.name, level, done)
            await self.put(LevelFinished(contender.name, summary, failed=not result.ok))

    async def attempt(self, contender: ServedBuild, level: Level, index: int, turn: int) -> TurnResult:
        server = self.servers.get(contender.name)
        if server is not None and not server.alive:
            await self.stop(contender.name)
            server = None
        started = server if server is not None else await self.start(contender, level, turn)
        if isinstance(started, str):
            return TurnResult(turn, reason=started)
        result = await run_turn(contender.name, started, level, index, turn, self.spec, self.put)
        if result.trouble is not None:
            await self.put(self.load_failure(contender.name, started, level, result.trouble))
            await self.stop(contender.name)
        elif not self.spec.resident or result.warmup:
            await self.stop(contender.name)
        return result

    def load_failure(self, name: str, server: ServerProcess, level: Level, trouble: str) -> ServerFailed:
        if trouble == DIED:
            failure = server.failure("llama-server died under load")
            reason = f"died under load: {failure.reason}"
        else:
            failure = server.failure("stalled")
            reason = f"stalled: no answer for {self.spec.stall_s:g}s, so the server was killed"
        return ServerFailed(name, "load", reason, level.key, failure.exit_code, failure.signal,
                            failure.log_tail)

    async def gaps(self, summaries: Sequence[LevelSummary]) -> None:
        """llama-bench per shape and cache type, beside the server at concurrency 1 with
        the least context and slots that shape ran with (llama-bench has neither)."""
        measured: set[tuple[str, str]] = set()
        for level in sorted(self.spec.levels(), key=lambda lv: (lv.ctx_size, lv.slots)):
            if level.concurrency != 1 or (level.shape, level.cache_type) in measured:
                continue
            measured.add((level.shape, level.cache_type))
            for contender in self.contenders:
                summary = next((s for s in summaries if s.contender == contender.name
                                and s.level == level), None)
                await self.put(await measure_gap(contender, self.model, level,
                                                 self.spec.settings_for(level), summary,
                                                 repetitions=self.spec.gap_repetitions))


def _check(contenders: Sequence[ServedBuild], model: str, spec: DuelSpec) -> None:
    if not contenders:
        raise DuelError("no contenders: give at least one build")
    names = [c.name for c in contenders]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DuelError(f"contender names must differ: {', '.join(twice)} given twice")
    if problem := spec.problem():
        raise DuelError(problem)
    if not Path(model).is_file():
        raise DuelError(f"model file not found: {model}")


def _open_journal(model: str, journal_path: str | Path | None) -> Journal:
    try:
        return open_run_journal(paths.runs_root(), "serve", model, journal_path)
    except JournalError as error:
        raise DuelError(str(error)) from None


async def run_serve_duel(contenders: Sequence[ServedBuild], model: str | Path, spec: DuelSpec, *,
                         journal: EventSink | None = None, journal_path: str | Path | None = None,
                         log_dir: str | Path | None = None) -> AsyncGenerator[ServeEvent, None]:
    """The duel's events as they happen; each is appended to ``journal`` before it is yielded.

    Without ``journal``, a JSONL journal is written at ``journal_path`` (default: a new run
    folder), with the servers' logs beside it unless ``log_dir`` says where. Raises
    DuelError before starting when the input cannot run. Closing the iterator stops every
    server it started.
    """
    model = str(model)
    _check(contenders, model, spec)
    if spec.seed == 0:
        spec = dataclasses.replace(spec, seed=random.randrange(1, 2**31))
    own: Journal | None = None
    if journal is None:
        own = _open_journal(model, journal_path)
        journal = own
        log_dir = log_dir or own.path.parent / "logs"
    recorder = _Recorder(journal)
    duel = _Duel(contenders, model, spec, recorder.put, Path(log_dir) if log_dir else None)
    producer = asyncio.create_task(_produce(duel, recorder.summaries, recorder.queue, own))
    cancelled = True
    try:
        while (event := await recorder.queue.get()) is not None:
            yield event
        await producer
        cancelled = False
    finally:
        if not producer.done():
            producer.cancel()
        for server in list(duel.servers.values()):
            procs.kill_group(server.process)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await producer
        await duel.stop_all()
        finished = recorder.finished(cancelled)
        journal.append(finished)
        if own is not None:
            own.close()
    yield finished


class _Recorder:
    """Journals each event, queues it for the reader, and keeps what the finish reports."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.queue: asyncio.Queue[ServeEvent | None] = asyncio.Queue()
        self.summaries: list[LevelSummary] = []
        self.failures: list[str] = []
        self.gaps: list[BenchGap] = []
        self.failed_levels: list[LevelFinished] = []
        self.server_failures: dict[tuple[str, str | None], str] = {}

    async def put(self, event: ServeEvent) -> None:
        self.sink.append(event)
        if isinstance(event, LevelFinished):
            self.summaries.append(event.summary)
            if event.failed:
                self.failed_levels.append(event)
        elif isinstance(event, ServerFailed):
            self.server_failures.setdefault((event.contender, event.level), event.reason)
        elif isinstance(event, ContenderFailed):
            self.failures.append(f"{event.contender}: {event.reason}")
        elif isinstance(event, BenchGap):
            self.gaps.append(event)
        self.queue.put_nowait(event)

    def finished(self, cancelled: bool) -> DuelFinished:
        failures = self.failures + [self.level_failure(e) for e in self.failed_levels]
        return DuelFinished(tuple(self.summaries), tuple(failures), tuple(self.gaps), cancelled)

    def level_failure(self, event: LevelFinished) -> str:
        """A failed level in one line: the server's own reason where it failed, else the requests'."""
        level = event.summary.level.key
        reason = self.server_failures.get((event.contender, level))
        if reason is None:
            reasons = event.summary.error_reasons
            reason = reasons[0] if reasons else "no request finished"
        return f"{event.contender} at {level}: {reason}"


async def _produce(duel: _Duel, summaries: list[LevelSummary],
                   queue: asyncio.Queue[ServeEvent | None], own: Journal | None) -> None:
    spec = duel.spec
    try:
        await duel.put(DuelStarted(tuple(c.name for c in duel.contenders), duel.model,
                                   spec.levels(), spec.to_settings(),
                                   str(own.path) if own is not None else None))
        ready = []
        for contender in duel.contenders:
            if contender.server_path() is None:
                await duel.put(ContenderFailed(contender.name, f"no llama-server in {contender.folder}"))
            else:
                ready.append(contender)
        try:
            for index, level in enumerate(spec.levels()):
                for turn in range(1, spec.turns_for(level) + 1):
                    for contender in spec.turn_order(turn, ready):
                        await duel.turn(contender, level, index, turn)
        finally:
            await duel.stop_all()
        if spec.gap:
            duel.contenders = ready
            await duel.gaps(summaries)
    finally:
        queue.put_nowait(None)

"""One turn of a load level against one live server: ``concurrency`` streams, each sending
its next request when the last one is answered, until the turn's share of the level's
requests or time is used up. The duel puts a level's turns together (``summarize_turns``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from backends import procs
from backends.journal.serve import (
    FirstContentToken,
    Level,
    LevelStarted,
    LevelSummary,
    MetricsRecorded,
    RequestFailed,
    RequestFinished,
    ServeEvent,
    StreamTick,
    TurnFigures,
)
from backends.server.client import Answer, Failure, stream_request
from backends.server.launch import ServerProcess
from backends.server.metrics import metric_deltas, scrape, summarize
from backends.server.prompts import Prompt, PromptBuilder, PromptError
from backends.server.spec import DuelSpec

Put = Callable[[ServeEvent], Awaitable[None]]
DIED = "died"
STALLED = "stalled"
_EXIT_WAIT_S = 2.0  # how long a lost connection waits for the server's exit to show


def prompt_seed(spec: DuelSpec, level_index: int, request: int, turn: int = 1) -> int:
    """The same seed on every contender; one per request of a turn unless the cache study is on."""
    if spec.cache_study:
        return spec.seed
    return spec.seed + 1_000_003 * (level_index + 1) + 10_007 * (turn - 1) + request


@dataclass
class TurnResult:
    """What one turn of a level gave: its requests, its wall time, and why it failed if it did.

    ``trouble`` is ``died`` or ``stalled`` when the server failed under load."""

    turn: int
    finished: list[RequestFinished] = field(default_factory=list)
    failed: list[RequestFailed] = field(default_factory=list)
    wall_s: float = 0.0
    reason: str | None = None
    trouble: str | None = None
    warmup: bool = False  # ``reason`` is a failed warm-up

    @property
    def ok(self) -> bool:
        return self.reason is None and self.trouble is None and bool(self.finished)


def summarize_turns(contender: str, level: Level, results: list[TurnResult]) -> LevelSummary:
    """The level over all its turns so far, with each turn's own figures beside it."""
    finished = [f for r in results for f in r.finished]
    failed = [f for r in results for f in r.failed]
    summary = summarize(contender, level, finished, failed, sum(r.wall_s for r in results))
    turns = []
    for r in results:
        tokens = sum(f.n_gen for f in r.finished)
        turns.append(TurnFigures(r.turn, len(r.finished), len(r.failed), tokens, r.wall_s,
                                 tokens / r.wall_s if r.wall_s > 0 and r.finished else None))
    reasons = tuple(r.reason for r in results if r.reason)
    return dataclasses.replace(summary, turns=tuple(turns), e2e_turns=tuple(f.turn for f in finished),
                               error_reasons=tuple(dict.fromkeys((*reasons, *summary.error_reasons)))[:5])


def _cache_prompt(run: _Run) -> bool:
    """Only the depth prefix (or, in the cache study, the whole prompt) may come from cache."""
    return run.level.depth > 0 or run.spec.cache_study


@dataclass
class _Run:
    contender: str
    server: ServerProcess
    level: Level
    spec: DuelSpec
    put: Put
    prompts: Callable[[int], Awaitable[Prompt]]
    result: TurnResult
    total: int | None = None  # this turn's requests (None: as many as start in ``duration``)
    duration: float | None = None
    started: float = 0.0
    counter: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def trouble(self) -> str | None:
        return self.result.trouble

    @property
    def turn(self) -> int:
        return self.result.turn


async def run_turn(contender: str, server: ServerProcess, level: Level, level_index: int,
                   turn: int, spec: DuelSpec, put: Put) -> TurnResult:
    """Run turn ``turn`` (1, 2, ...) of ``level``; every request goes through ``put``.

    Each turn warms the server up again. ``trouble`` in the result is ``died`` or
    ``stalled`` when the server failed under load (a stalled server is killed at once so
    the other streams end too).
    """
    result = TurnResult(turn)
    total, duration = spec.turn_share(level, turn)
    # Idle connections are dropped after a second, well before llama-server's own 5 s.
    limits = httpx.Limits(max_connections=level.concurrency + 4,
                          max_keepalive_connections=level.concurrency + 4, keepalive_expiry=1.0)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=30.0) as client:
        try:
            prompts = await _prepare(client, spec, level, (level_index, turn), total)
        except (PromptError, httpx.HTTPError) as error:
            result.reason = (f"cannot prepare the prompts: {error}" if isinstance(error, httpx.HTTPError)
                             else str(error))
            result.trouble = None if server.alive else DIED
            return result
        run = _Run(contender, server, level, spec, put, prompts, result, total, duration)
        if spec.warmup and (why := await _warm(client, run)) is not None:
            result.warmup = True
            return await _finish(client, run, None, f"the warm-up failed: {why}")
        before = await scrape(client)
        first = await prompts(0)
        await put(LevelStarted(contender, level, first.tokens, first.prefix_tokens, turn))
        run.started = time.monotonic()
        await asyncio.gather(*(_stream(client, run, s) for s in range(level.concurrency)))
        return await _finish(client, run, before, None)


async def _prepare(client: httpx.AsyncClient, spec: DuelSpec, level: Level, where: tuple[int, int],
                   total: int | None) -> Callable[[int], Awaitable[Prompt]]:
    """Build the turn's prompts before it starts (a first pool when it runs for a time)."""
    builder = PromptBuilder(client, spec.endpoint)
    prefix = await builder.prefix(level.depth)
    level_index, turn = where
    ready: dict[int, Prompt] = {}

    async def build(index: int) -> Prompt:
        return await builder.prompt(prefix, level.n_prompt, level.depth,
                                    prompt_seed(spec, level_index, index, turn))

    for index in range(total if total is not None else 4 * level.concurrency):
        ready[index] = await build(index)

    async def prompt(index: int) -> Prompt:
        if index not in ready:  # a timed turn outran the pool: built while it runs
            ready[index] = await build(index)
        return ready[index]

    return prompt


async def _warm(client: httpx.AsyncClient, run: _Run) -> str | None:
    """One request of the level's full shape per slot it will use, so each holds the depth prefix
    and the whole answer path has run once; not recorded. None, or why it failed.

    Each names its slot: sent together but served one after another (a loaded machine,
    a tiny model), they would otherwise all land in the first slot. Each must bring its
    ``-n`` tokens, as a measured request must."""
    builder = PromptBuilder(client, run.spec.endpoint)
    level = run.level
    try:
        prefix = await builder.prefix(level.depth)
        texts = [(await builder.prompt(prefix, level.n_prompt, level.depth, -1 - s)).text
                 for s in range(min(level.concurrency, run.spec.slots_for(level)))]
    except (PromptError, httpx.HTTPError) as error:
        return f"cannot build its prompts: {error}"
    results = await asyncio.gather(*(
        stream_request(client, run.spec.endpoint, text, level.n_gen, stall_s=run.spec.stall_s, slot=slot)
        for slot, text in enumerate(texts)))
    for slot, result in enumerate(results):
        why = result.reason if isinstance(result, Failure) else result.short_reason
        if why is not None:
            return f"slot {slot}: {why}"
    return None


async def _stream(client: httpx.AsyncClient, run: _Run, stream: int) -> None:
    total = run.total
    deadline = run.started + run.duration if run.duration is not None else None
    while run.trouble is None:
        index = next(run.counter)
        if (total is not None and index >= total) or (deadline and time.monotonic() >= deadline):
            return
        try:
            prompt = await run.prompts(index)
        except (PromptError, httpx.HTTPError) as error:
            await _failed(run, stream, index, Failure(f"cannot build the prompt: {error}", 0.0))
            return
        sent_at = time.monotonic() - run.started
        result = await stream_request(client, run.spec.endpoint, prompt.text, run.level.n_gen,
                                      stall_s=run.spec.stall_s, progress=_progress(run, stream, index),
                                      cache_prompt=_cache_prompt(run))
        if isinstance(result, Answer) and result.short_reason is not None:
            await _failed(run, stream, index, Failure(result.short_reason, result.e2e_s, short=True),
                          result.n_gen)
            continue
        if isinstance(result, Answer):
            event = _finished(run, stream, index, sent_at, result)
            run.result.finished.append(event)
            await run.put(event)
            continue
        await _failed(run, stream, index, result)



def _progress(run: _Run, stream: int, index: int) -> Callable[[int, float, float | None], Awaitable[None]]:
    key = run.level.key
    first = [True]

    async def report(tokens: int, elapsed: float, rate: float | None) -> None:
        at = time.monotonic() - run.started
        if first[0]:
            first[0] = False
            await run.put(FirstContentToken(run.contender, key, stream, index, elapsed, at, run.turn))
        await run.put(StreamTick(run.contender, key, stream, index, tokens, elapsed, rate, at, run.turn))

    return report


def _finished(run: _Run, stream: int, index: int, sent_at: float, answer: Answer) -> RequestFinished:
    return RequestFinished(
        contender=run.contender, level=run.level.key, stream=stream, request=index,
        sent_at=sent_at, ttft_s=answer.ttft_s, e2e_s=answer.e2e_s, n_prompt=answer.n_prompt,
        n_cached=answer.n_cached, n_gen=answer.n_gen, gen_tps=answer.gen_tps,
        prompt_tps=answer.prompt_tps, chunk_times=answer.chunk_times,
        chunk_tokens=answer.chunk_tokens, timings=answer.timings, turn=run.turn)


async def _failed(run: _Run, stream: int, index: int, failure: Failure, n_gen: int = 0) -> None:
    event = RequestFailed(run.contender, run.level.key, stream, index, failure.reason,
                          failure.elapsed_s, failure.stalled, run.turn, failure.short,
                          failure.status, n_gen)
    run.result.failed.append(event)
    await run.put(event)
    if failure.short:
        return  # the server answered; it is alive
    if failure.stalled:
        run.result.trouble = run.trouble or STALLED
        procs.kill_group(run.server.process)  # wedged: end it, so every other stream ends too
        return
    if not failure.reason.startswith("HTTP "):
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(run.server.process.wait()), _EXIT_WAIT_S)
    if not run.server.alive:
        run.result.trouble = run.trouble or DIED


async def _finish(client: httpx.AsyncClient, run: _Run, before: dict[str, float] | str | None,
                  reason: str | None) -> TurnResult:
    result = run.result
    result.wall_s = time.monotonic() - run.started if run.started else 0.0
    if before is not None:
        key, turn = run.level.key, run.turn
        after = await scrape(client) if run.server.alive else "the server was gone"
        if isinstance(before, str) or isinstance(after, str):
            problem = before if isinstance(before, str) else str(after)
            await run.put(MetricsRecorded(run.contender, key, {}, {}, problem, turn))
        else:
            deltas, gauges = metric_deltas(before, after)
            await run.put(MetricsRecorded(run.contender, key, deltas, gauges, None, turn))
    result.reason = reason
    if result.trouble is None and not run.server.alive:
        result.trouble = DIED
    return result

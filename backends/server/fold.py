"""A pure fold of duel events into a frozen snapshot, for screens and scripts.

    state = DuelState()
    async for event in run_serve_duel(...):
        state = fold(state, event)   # a new snapshot; the old one is untouched

Per contender the snapshot holds its server's status and, for the level and turn it is
running, the live figures: the latest and median time to first token, the mean inter-token
latency, each stream's tokens and decode rate, and the total tokens/s so far.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from backends.journal.serve import (
    BenchGap,
    ContenderFailed,
    DuelFinished,
    DuelStarted,
    FirstContentToken,
    Level,
    LevelFinished,
    LevelStarted,
    LevelSummary,
    RequestFailed,
    RequestFinished,
    ServeEvent,
    ServerFailed,
    ServerReady,
    ServerStarting,
    ServerStopped,
    StreamTick,
    WarmupFailed,
)
from backends.server.metrics import percentile


@dataclass(frozen=True)
class StreamState:
    stream: int
    request: int
    tokens: int
    elapsed_s: float
    ttft_s: float | None
    decode_tps: float | None
    done: bool = False


@dataclass(frozen=True)
class ContenderState:
    name: str
    status: str = "waiting"  # waiting, starting, ready, running, retrying, failed, stopped, out
    port: int | None = None
    pid: int | None = None
    level: str | None = None
    turn: int = 0  # the turn of the level it is serving (0: not known)
    message: str | None = None  # the last failure, one line
    streams: tuple[StreamState, ...] = ()
    ttfts: tuple[float, ...] = ()  # this level's requests so far
    last_ttft_s: float | None = None
    decode_span_s: float = 0.0  # summed first-to-last-token time of finished requests
    decode_tokens: int = 0
    done_tokens: int = 0  # tokens of finished requests in this level
    clock_s: float = 0.0  # latest time seen since the level started
    requests: int = 0
    errors: int = 0
    summaries: tuple[LevelSummary, ...] = ()
    gaps: tuple[BenchGap, ...] = ()

    @property
    def ttft_p50_s(self) -> float | None:
        return percentile(sorted(self.ttfts), 50) if self.ttfts else None

    @property
    def itl_s(self) -> float | None:
        """Mean inter-token latency of this level's finished requests."""
        return self.decode_span_s / self.decode_tokens if self.decode_tokens else None

    @property
    def stream_tps(self) -> float | None:
        """Mean decode rate per stream (finished requests, else the live streams)."""
        if self.decode_span_s > 0:
            return self.decode_tokens / self.decode_span_s
        live = [s.decode_tps for s in self.streams if s.decode_tps]
        return sum(live) / len(live) if live else None

    @property
    def total_tps(self) -> float | None:
        """Every token of this level so far over the time since it started."""
        in_flight = sum(s.tokens for s in self.streams if not s.done)
        tokens = self.done_tokens + in_flight
        return tokens / self.clock_s if self.clock_s > 0 and tokens else None


@dataclass(frozen=True)
class DuelState:
    contenders: tuple[ContenderState, ...] = ()
    levels: tuple[Level, ...] = ()
    turns: int = 1  # turns per level
    model: str = ""
    finished: bool = False
    failures: tuple[str, ...] = ()

    def contender(self, name: str) -> ContenderState | None:
        return next((c for c in self.contenders if c.name == name), None)


def _with(state: DuelState, name: str, **changes: object) -> DuelState:
    contenders = tuple(dataclasses.replace(c, **changes) if c.name == name else c  # type: ignore[arg-type]
                       for c in state.contenders)
    return dataclasses.replace(state, contenders=contenders)


def _stream(current: ContenderState, new: StreamState) -> tuple[StreamState, ...]:
    others = tuple(s for s in current.streams if s.stream != new.stream)
    return tuple(sorted((*others, new), key=lambda s: s.stream))


def _live(state: DuelState, c: ContenderState, event: ServeEvent) -> DuelState:
    if isinstance(event, FirstContentToken):
        new = StreamState(event.stream, event.request, 0, event.ttft_s, event.ttft_s, None)
        return _with(state, c.name, streams=_stream(c, new), ttfts=(*c.ttfts, event.ttft_s),
                     last_ttft_s=event.ttft_s, clock_s=max(c.clock_s, event.at_s))
    if isinstance(event, StreamTick):
        old = next((s for s in c.streams if s.stream == event.stream), None)
        ttft = old.ttft_s if old is not None and old.request == event.request else None
        new = StreamState(event.stream, event.request, event.tokens, event.elapsed_s, ttft,
                          event.decode_tps)
        return _with(state, c.name, streams=_stream(c, new), clock_s=max(c.clock_s, event.at_s))
    if isinstance(event, RequestFinished):
        span = event.chunk_times[-1] - event.chunk_times[0] if len(event.chunk_times) > 1 else 0.0
        new = StreamState(event.stream, event.request, event.n_gen, event.e2e_s, event.ttft_s,
                          event.gen_tps, done=True)
        return _with(state, c.name, streams=_stream(c, new), requests=c.requests + 1,
                     done_tokens=c.done_tokens + event.n_gen,
                     decode_span_s=c.decode_span_s + span,
                     decode_tokens=c.decode_tokens + sum(event.chunk_tokens[1:]),
                     clock_s=max(c.clock_s, event.sent_at + event.e2e_s))
    if isinstance(event, RequestFailed):
        return _with(state, c.name, errors=c.errors + 1, message=event.reason)
    return state


def _server(state: DuelState, c: ContenderState, event: ServeEvent) -> DuelState:
    if isinstance(event, ServerStarting):
        return _with(state, c.name, status="starting", port=event.port, pid=event.pid,
                     level=event.level, turn=event.turn)
    if isinstance(event, ServerReady):
        return _with(state, c.name, status="ready")
    if isinstance(event, ServerFailed):
        return _with(state, c.name, status="failed", message=event.reason)
    if isinstance(event, ServerStopped):
        status = c.status if c.status == "failed" else "stopped"
        return _with(state, c.name, status=status, pid=None)
    if isinstance(event, ContenderFailed):
        return _with(state, c.name, status="out", message=event.reason)
    if isinstance(event, WarmupFailed):
        return _with(state, c.name, status="retrying" if event.retry else "failed", message=event.reason)
    if isinstance(event, LevelStarted):
        return _with(state, c.name, status="running", level=event.level.key, turn=event.turn, streams=(),
                     ttfts=(), last_ttft_s=None, decode_span_s=0.0, decode_tokens=0,
                     done_tokens=0, clock_s=0.0, requests=0, errors=0)
    if isinstance(event, LevelFinished):
        status = "failed" if event.failed else c.status
        return _with(state, c.name, summaries=(*c.summaries, event.summary), status=status,
                     clock_s=max(c.clock_s, event.summary.wall_s))
    if isinstance(event, BenchGap):
        return _with(state, c.name, gaps=(*c.gaps, event))
    return _live(state, c, event)


def fold(state: DuelState, event: ServeEvent) -> DuelState:
    """The snapshot after ``event``; ``state`` is not changed."""
    if isinstance(event, DuelStarted):
        turns = event.settings.get("turns")
        return DuelState(contenders=tuple(ContenderState(name) for name in event.contenders),
                         levels=event.levels, model=event.model,
                         turns=turns if isinstance(turns, int) and not isinstance(turns, bool) else 1)
    if isinstance(event, DuelFinished):
        return dataclasses.replace(state, finished=True, failures=event.failures)
    name = getattr(event, "contender", None)
    current = state.contender(name) if isinstance(name, str) else None
    if current is None:
        return state
    if isinstance(event, ServerFailed):
        state = dataclasses.replace(state, failures=(*state.failures, f"{name}: {event.reason}"))
    return _server(state, current, event)

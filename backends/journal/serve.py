"""What a server duel yields: frozen dataclasses with JSON-friendly fields only.

Fields are str, int, float, bool, None, tuples and string-keyed dicts of those, or nested
frozen dataclasses of the same kind, so a journal can encode every event as it is and
decode it back by its class name (``type`` in a JSONL line).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Level:
    """One load level of a duel: ``concurrency`` streams of ``n_prompt``+``n_gen`` at ``depth``,
    against a server with ``ctx_size`` tokens of context, ``slots`` slots and a ``cache_type``
    KV cache (0 and "": what the duel sizes and sets for every level)."""

    concurrency: int
    n_prompt: int
    n_gen: int
    depth: int = 0
    ctx_size: int = 0
    slots: int = 0
    cache_type: str = ""

    @property
    def key(self) -> str:
        key = f"c{self.concurrency}:p{self.n_prompt}:n{self.n_gen}:d{self.depth}"
        if self.ctx_size:
            key += f":ctx{self.ctx_size}"
        if self.cache_type:
            key += f":kv{self.cache_type}"
        return key + (f":s{self.slots}" if self.slots else "")

    @property
    def shape(self) -> str:
        """llama-bench style name of the shape, without the concurrency."""
        base = f"pp{self.n_prompt}+tg{self.n_gen}"
        return f"{base} @ d{self.depth}" if self.depth else base

    @property
    def setting(self) -> str:
        """The server's own conditions in words (``32K q4_0 cache, 4 slots``), "" when the duel's."""
        return setting_text(self.ctx_size, self.cache_type, self.slots)


def setting_text(ctx_size: int, cache_type: str, slots: int) -> str:
    parts = []
    if ctx_size:
        size = f"{ctx_size // 1024}K" if ctx_size % 1024 == 0 else str(ctx_size)
        parts.append(f"{size} context")
    if cache_type:
        parts.append(f"{cache_type} cache")
    if slots:
        parts.append(f"{slots} slot{'s' if slots != 1 else ''}")
    return ", ".join(parts)


@dataclass(frozen=True)
class Dist:
    """Distribution of one measure over the samples of a level (seconds or tokens/s)."""

    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class TurnFigures:
    """One turn of a level (a contender serves each level in several turns, A B then B A)."""

    turn: int  # 1, 2, ...
    requests: int
    errors: int
    total_tokens: int
    wall_s: float
    total_tps: float | None


@dataclass(frozen=True)
class LevelSummary:
    """A contender at one load level, ready for a verdict: distributions and raw samples.

    ``gen_tps_samples`` are per-request decode rates (tokens after the first, over the time
    from first to last token); ``total_tps`` counts every generated token over the level's
    wall time (first request sent to last answer, summed over its turns), so it is what a
    shared server delivers. ``turns`` has each turn's own figures and ``e2e_turns`` the turn
    of each of ``e2e_samples`` (both empty in journals from before turns).
    """

    contender: str
    level: Level
    requests: int
    errors: int
    ttft_s: Dist
    itl_s: Dist
    e2e_s: Dist
    gen_tps: Dist
    prompt_tps: Dist
    total_tps: float | None
    total_tokens: int
    wall_s: float
    gen_tps_samples: tuple[float, ...] = ()
    ttft_samples: tuple[float, ...] = ()
    e2e_samples: tuple[float, ...] = ()
    server_prompt_tps: float | None = None  # the server's own timings, mean over requests
    server_gen_tps: float | None = None
    error_reasons: tuple[str, ...] = ()  # first first: the server's, the warm-up's, the requests'
    turns: tuple[TurnFigures, ...] = ()
    e2e_turns: tuple[int, ...] = ()
    short: int = 0  # requests that ended before ``n_gen`` tokens (not in ``requests`` or ``errors``)

    @property
    def reason(self) -> str | None:
        """The first reason of this contender at this level, or None when all went well."""
        return self.error_reasons[0] if self.error_reasons else None


@dataclass(frozen=True)
class DuelStarted:
    contenders: tuple[str, ...]
    model: str
    levels: tuple[Level, ...]
    settings: dict[str, str | int | float | bool | None]
    journal: str | None = None


@dataclass(frozen=True)
class ContenderFailed:
    """A contender that cannot take part at all (no llama-server): it sits out the duel."""

    contender: str
    reason: str


@dataclass(frozen=True)
class ServerStarting:
    contender: str
    argv: tuple[str, ...]
    port: int
    pid: int  # leader of the server's own process group
    level: str | None = None
    turn: int = 0  # 1, 2, ... (0: a journal from before turns)


@dataclass(frozen=True)
class ServerReady:
    contender: str
    port: int
    pid: int
    load_s: float  # from process start to the first healthy /health


@dataclass(frozen=True)
class ServerFailed:
    """A server that did not start, died under load or stalled: a failure of that point.

    ``phase`` is ``start`` or ``load``; ``reason`` is one line (the server's own log line
    where it wrote one).
    """

    contender: str
    phase: str
    reason: str
    level: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    log_tail: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerStopped:
    contender: str
    port: int
    pid: int
    exit: str
    port_free: bool


@dataclass(frozen=True)
class LevelStarted:
    contender: str
    level: Level
    prompt_tokens: int  # the exact length of every prompt, from the server's /tokenize
    shared_prefix_tokens: int
    turn: int = 0


@dataclass(frozen=True)
class FirstContentToken:
    """The first content token of one request arrived (live TTFT)."""

    contender: str
    level: str
    stream: int
    request: int
    ttft_s: float
    at_s: float = 0.0  # seconds since the turn started
    turn: int = 0


@dataclass(frozen=True)
class StreamTick:
    """A stream's progress within a request, at most a few times a second per stream."""

    contender: str
    level: str
    stream: int
    request: int
    tokens: int
    elapsed_s: float  # since the request was sent
    decode_tps: float | None  # tokens after the first over the time since the first
    at_s: float = 0.0  # seconds since the turn started
    turn: int = 0


@dataclass(frozen=True)
class RequestFinished:
    """One request as the client saw it, with the server's own ``timings`` beside it.

    ``chunk_times`` are seconds since the request was sent, one per streamed piece that
    carried text; ``chunk_tokens`` how many tokens each piece brought.
    """

    contender: str
    level: str
    stream: int
    request: int
    sent_at: float  # seconds since the level started
    ttft_s: float
    e2e_s: float
    n_prompt: int
    n_cached: int | None
    n_gen: int
    gen_tps: float | None
    prompt_tps: float | None  # client side: prompt tokens processed over the TTFT
    chunk_times: tuple[float, ...] = ()
    chunk_tokens: tuple[int, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    turn: int = 0


@dataclass(frozen=True)
class RequestFailed:
    """A request without a full answer; ``reason`` is one line (the HTTP status and the
    server's error body, ``no answer for 60s``, ``ended after 4 of 128 tokens (end of
    stream)``). ``short``: it ended early with ``n_gen`` tokens, counted apart from errors."""

    contender: str
    level: str
    stream: int
    request: int
    reason: str
    elapsed_s: float
    stalled: bool = False
    turn: int = 0
    short: bool = False
    status: int | None = None  # the HTTP status of an error answer
    n_gen: int = 0  # tokens a short answer brought


@dataclass(frozen=True)
class WarmupFailed:
    """The warm-up before a turn did not give every slot its ``-n`` tokens: why, and
    whether the turn is tried once more on a fresh server (``retry``) or abandoned."""

    contender: str
    level: str
    turn: int
    reason: str
    retry: bool


@dataclass(frozen=True)
class MetricsRecorded:
    """The server's /metrics over one level: counter deltas and the gauges at the end."""

    contender: str
    level: str
    deltas: dict[str, float]
    gauges: dict[str, float]
    problem: str | None = None  # why the server's metrics could not be read
    turn: int = 0


@dataclass(frozen=True)
class LevelFinished:
    contender: str
    summary: LevelSummary
    failed: bool = False


@dataclass(frozen=True)
class BenchGap:
    """llama-bench against llama-server for one build, model and shape (concurrency 1).

    Ratios are server over bench: 0.8 means the server gave 80 % of llama-bench's rate.
    ``server_*`` rates are the client's view (prompt tokens processed over the time to the
    first token; tokens after the first over the first-to-last-token time).
    """

    contender: str
    shape: str
    n_prompt: int
    n_gen: int
    depth: int
    bench_pp_tps: float | None
    bench_tg_tps: float | None
    server_pp_tps: float | None
    server_tg_tps: float | None
    pp_ratio: float | None
    tg_ratio: float | None
    problem: str | None = None
    bench_argv: tuple[str, ...] = ()
    cache_type: str = ""  # the KV cache type both ran with ("": the duel's own)
    # The server's own per-request timings (no HTTP, template or streaming): the engine gap.
    timings_pp_tps: float | None = None
    timings_tg_tps: float | None = None


@dataclass(frozen=True)
class DuelFinished:
    summaries: tuple[LevelSummary, ...]
    failures: tuple[str, ...]
    gaps: tuple[BenchGap, ...] = ()
    cancelled: bool = False


ServeEvent = (DuelStarted | ContenderFailed | ServerStarting | ServerReady | ServerFailed
              | ServerStopped | LevelStarted | FirstContentToken | StreamTick | RequestFinished
              | RequestFailed | WarmupFailed | MetricsRecorded | LevelFinished | BenchGap
              | DuelFinished)

EVENT_TYPES: dict[str, type] = {cls.__name__: cls for cls in (
    DuelStarted, ContenderFailed, ServerStarting, ServerReady, ServerFailed, ServerStopped,
    LevelStarted, FirstContentToken, StreamTick, RequestFinished, RequestFailed, WarmupFailed,
    MetricsRecorded, LevelFinished, BenchGap, DuelFinished)}

"""What a sweep yields: frozen dataclasses that travel one way, from the runner to its readers.

Every event is written to the run's journal (``backends.journal.journal``) before anyone sees
it, through ``backends.journal.codec``, so a journal replays exactly what a live run showed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backends.json_types import JsonValue, items_of


@dataclass(frozen=True)
class TestPoint:
    """One cell of a sweep grid: a prompt (pp), generation (tg) or combined (pg) test at a depth."""

    __test__ = False  # not a pytest test class

    n_prompt: int
    n_gen: int
    depth: int = 0

    @property
    def kind(self) -> str:
        if self.n_prompt and self.n_gen:
            return "pg"
        return "pp" if self.n_prompt else "tg"

    @property
    def name(self) -> str:
        """llama-bench's own test name: ``pp512``, ``tg128``, ``pp512+tg128``, with ``@ d4096``."""
        if self.kind == "pg":
            base = f"pp{self.n_prompt}+tg{self.n_gen}"
        elif self.kind == "pp":
            base = f"pp{self.n_prompt}"
        else:
            base = f"tg{self.n_gen}"
        return f"{base} @ d{self.depth}" if self.depth else base

    @property
    def key(self) -> str:
        """A compact, stable identifier for journals and dictionaries."""
        return f"{self.n_prompt}:{self.n_gen}:{self.depth}"

    @property
    def tokens(self) -> int:
        return self.n_prompt + self.n_gen

    @property
    def context(self) -> int:
        """Tokens in the context when the test ends: depth plus the test's own tokens."""
        return self.depth + self.tokens


@dataclass(frozen=True)
class BenchResult:
    """One finished llama-bench test: every field llama-bench wrote is kept in ``raw``.

    ``samples_ts`` are the counted repetitions; ``warmup_ts`` the ones measured but set
    aside as warm-up (``backends.sweep.bench.WARMUP_REPETITIONS``: none now; older journals
    set the first timed repetition of every block aside).
    """

    point: TestPoint
    avg_ts: float
    stddev_ts: float
    samples_ts: tuple[float, ...]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    warmup_ts: tuple[float, ...] = ()

    @classmethod
    def from_llama_bench(cls, record: Mapping[str, JsonValue]) -> BenchResult:
        """From one llama-bench JSON record (``-o jsonl`` line or ``-o json`` item), as
        written: a number llama-bench could not give is NaN (``backends.sweep.records``
        checks a live result before the runner accepts it)."""
        point = TestPoint(n_prompt=_whole(record.get("n_prompt")), n_gen=_whole(record.get("n_gen")),
                          depth=_whole(record.get("n_depth")))
        samples = tuple(s for s in (_finite(v) for v in items_of(record.get("samples_ts")))
                        if not math.isnan(s))
        return cls(point=point, avg_ts=_finite(record.get("avg_ts")),
                   stddev_ts=_finite(record.get("stddev_ts")), samples_ts=samples,
                   raw=dict(record))

    @property
    def backends(self) -> str:
        return str(self.raw.get("backends", ""))

    @property
    def build_label(self) -> str:
        """``b8467 (a1b2c3d)`` style label from the record's own build fields."""
        number = self.raw.get("build_number")
        commit = self.raw.get("build_commit")
        return f"b{number} ({commit})" if number is not None else str(commit or "unknown")


@dataclass(frozen=True)
class SweepStarted:
    run_id: str
    run_dir: str
    model: str
    builds: tuple[str, ...]
    points: tuple[TestPoint, ...]
    spec: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    build_paths: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    notes: tuple[str, ...] = ()  # what the runner decided for the user, e.g. the -ncmoe chosen
    resumed: bool = False  # a continuation of an interrupted run in the same journal
    at: float = 0.0
    # What each contender is beyond its build: devices, settings, host ({name: {...}}).
    contenders: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class PointStarted:
    build: str
    point: TestPoint
    argv: tuple[str, ...]
    at: float = 0.0
    pid: int | None = None  # the llama-bench process running this point
    block: int = 0  # 0: the point's first block of repetitions, 1, 2...: repetitions added
    repetitions: int = 0  # timed repetitions asked of llama-bench in this block


@dataclass(frozen=True)
class PointProgress:
    """One ``--progress`` line from llama-bench's stderr, e.g. ``prompt run 2/5``."""

    build: str
    point: TestPoint
    message: str
    at: float = 0.0


@dataclass(frozen=True)
class ResultReceived:
    """One block's result. A point measured in several blocks has several; the samples of
    all of them together are the point's result (``backends.sweep.outcomes``)."""

    build: str
    result: BenchResult
    at: float = 0.0
    # Summary of the telemetry during this block (peak VRAM, temperatures, power,
    # throttling, tokens per joule), when a telemetry source was attached to the run.
    telemetry: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    block: int = 0
    throttled: bool = False  # the telemetry saw throttling during the block

    @property
    def point(self) -> TestPoint:
        return self.result.point


@dataclass(frozen=True)
class PointFailed:
    """A test point that ended without a result: crash, signal, OOM kill or time-out."""

    build: str
    point: TestPoint
    reason: str
    exit_code: int | None = None
    signal: str | None = None
    timed_out: bool = False
    stderr_tail: str = ""
    at: float = 0.0


@dataclass(frozen=True)
class PointDecided:
    """Why the measuring of one test point stopped, for every contender at once.

    ``outcome`` is ``decided`` (one contender leads beyond the tie band), ``tie`` (the
    gap's interval lies inside the band), ``open`` (the cap was reached first) or
    ``fixed`` (a fixed repetition count, nothing judged while measuring).
    """

    point: TestPoint
    outcome: str
    reason: str  # "decided after 2", "tie after 6", "cap 10: still open"
    repetitions: dict[str, int] = field(default_factory=dict)
    leader: str | None = None
    at: float = 0.0


@dataclass(frozen=True)
class CoolingWaited:
    """The thermal guard waited before a block until the GPU was back near idle.

    ``readings`` holds the sensors it watched: ``{"junction": [78.0, 62.0]}`` (start, end).
    """

    build: str
    point: TestPoint
    seconds: float
    reached: bool  # False: the maximum wait ran out first
    readings: dict[str, tuple[float, float]] = field(default_factory=dict)
    at: float = 0.0

    @property
    def message(self) -> str:
        parts = [_reading_words(name, start, end) for name, (start, end) in self.readings.items()]
        ending = "" if self.reached else " (gave up waiting)"
        return f"cooling: {', '.join(parts) or 'waiting'}, {self.seconds:.0f} s{ending}"


def _reading_words(name: str, start: float, end: float) -> str:
    if name.endswith("throttling"):
        return f"{name} {'ended' if not end else 'went on'}"
    if name.endswith("power"):
        return f"{name} {start:.0f} W -> {end:.0f} W"
    return f"{name} {start:.0f} °C -> {end:.0f} °C"


@dataclass(frozen=True)
class SweepNote:
    """Something the runner decided or noticed during a run, in words for the user."""

    message: str
    at: float = 0.0


@dataclass(frozen=True)
class SweepFinished:
    run_id: str
    results: int
    failures: int
    cancelled: bool = False
    at: float = 0.0
    problem: str | None = None  # why the run stopped early (the journal cannot be written)
    # Where the seconds went: wall, work (llama-bench testing) and each overhead part.
    overhead: dict[str, float] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class TelemetryRecorded:
    """A telemetry tick journalled beside the results (payload is the sample as a dict)."""

    sample: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    at: float = 0.0


def _finite(value: object) -> float:
    """llama-bench writes failed numbers as null or NaN; keep them as NaN, never crash."""
    if not isinstance(value, (int, float, str)):
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _whole(value: object) -> int:
    if not isinstance(value, (int, float, str)):
        return 0
    try:
        return int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0


BenchEvent = (
    SweepStarted | PointStarted | PointProgress | ResultReceived | PointFailed | PointDecided
    | CoolingWaited | SweepNote | SweepFinished | TelemetryRecorded
)

SWEEP_EVENT_TYPES: tuple[type, ...] = (
    SweepStarted, PointStarted, PointProgress, ResultReceived, PointFailed, PointDecided,
    CoolingWaited, SweepNote, SweepFinished, TelemetryRecorded,
)


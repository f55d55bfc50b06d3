"""What a sweep yields: frozen dataclasses that travel one way, from the runner to its readers.

Every event can be written to a JSONL journal and read back (`event_to_json`,
`event_from_json`), so a journal replays exactly what a live run showed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

# llama-bench result fields that identify a build and a test point.
IDENTITY_FIELDS = ("build_commit", "build_number", "backends")


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


@dataclass(frozen=True)
class BenchResult:
    """One finished llama-bench test: every field llama-bench wrote is kept in ``raw``."""

    point: TestPoint
    avg_ts: float
    stddev_ts: float
    samples_ts: tuple[float, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_llama_bench(cls, record: Mapping[str, Any]) -> "BenchResult":
        """Build from one llama-bench JSON record (``-o jsonl`` line or ``-o json`` item)."""
        point = TestPoint(
            n_prompt=int(record.get("n_prompt") or 0),
            n_gen=int(record.get("n_gen") or 0),
            depth=int(record.get("n_depth") or 0),
        )
        samples = tuple(_finite(s) for s in record.get("samples_ts") or ())
        return cls(
            point=point,
            avg_ts=_finite(record.get("avg_ts")),
            stddev_ts=_finite(record.get("stddev_ts")),
            samples_ts=tuple(s for s in samples if not math.isnan(s)),
            raw=dict(record),
        )

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
    spec: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    build_paths: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    notes: tuple[str, ...] = ()  # what the runner decided for the user, e.g. the -ncmoe chosen
    resumed: bool = False  # a continuation of an interrupted run in the same journal
    at: float = 0.0


@dataclass(frozen=True)
class PointStarted:
    build: str
    point: TestPoint
    argv: tuple[str, ...]
    at: float = 0.0
    pid: int | None = None  # the llama-bench process running this point


@dataclass(frozen=True)
class PointProgress:
    """One ``--progress`` line from llama-bench's stderr, e.g. ``prompt run 2/5``."""

    build: str
    point: TestPoint
    message: str
    at: float = 0.0


@dataclass(frozen=True)
class ResultReceived:
    build: str
    result: BenchResult
    at: float = 0.0
    # Summary of the telemetry during this test point (peak VRAM, temperatures, power,
    # throttling), when a telemetry source was attached to the run.
    telemetry: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

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


@dataclass(frozen=True)
class TelemetryRecorded:
    """A telemetry tick journalled beside the results (payload is the sample as a dict)."""

    sample: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    at: float = 0.0


BenchEvent = (
    SweepStarted | PointStarted | PointProgress | ResultReceived | PointFailed
    | SweepNote | SweepFinished | TelemetryRecorded
)

_EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (SweepStarted, PointStarted, PointProgress, ResultReceived, PointFailed,
                SweepNote, SweepFinished, TelemetryRecorded)
}


def _finite(value: Any) -> float:
    """llama-bench writes failed numbers as null or NaN; keep them as NaN, never crash."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def event_to_json(event: BenchEvent) -> dict[str, Any]:
    """A JSON-ready dict with a ``type`` tag; ``event_from_json`` inverts it."""
    payload: dict[str, Any] = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        payload[f.name] = _encode(getattr(event, f.name))
    return payload


def _encode(value: Any) -> Any:
    if isinstance(value, TestPoint):
        return {"n_prompt": value.n_prompt, "n_gen": value.n_gen, "depth": value.depth}
    if isinstance(value, BenchResult):
        return {"point": _encode(value.point), "avg_ts": _json_float(value.avg_ts),
                "stddev_ts": _json_float(value.stddev_ts), "samples_ts": list(value.samples_ts),
                "raw": dict(value.raw)}
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, float):
        return _json_float(value)
    return value


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value


def event_from_json(payload: Mapping[str, Any]) -> BenchEvent:
    """Rebuild an event from ``event_to_json`` output; raises ValueError on unknown types."""
    kind = payload.get("type")
    cls = _EVENT_TYPES.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown journal event type {kind!r}")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in payload:
            continue
        raw = payload[f.name]
        if f.name == "point":
            raw = TestPoint(**raw)
        elif f.name == "points":
            raw = tuple(TestPoint(**p) for p in raw)
        elif f.name == "result":
            raw = BenchResult(
                point=TestPoint(**raw["point"]), avg_ts=_finite(raw["avg_ts"]),
                stddev_ts=_finite(raw["stddev_ts"]),
                samples_ts=tuple(float(s) for s in raw["samples_ts"]), raw=raw.get("raw", {}),
            )
        elif f.name in ("builds", "argv", "notes"):
            raw = tuple(raw)
        values[f.name] = raw
    return cls(**values)

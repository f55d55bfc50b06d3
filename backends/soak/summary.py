"""A soak's figures from its journal: per build and per hour, with the reasons kept.

Memory growth is measured within each server's life (a restart starts afresh) and the
largest is kept; throughput drift compares the first hour's decode rate with the last
hour's (the first and last quarter when the soak was shorter than two hours).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from backends.journal import codec
from backends.journal.soak import (
    SoakCrashed,
    SoakFinished,
    SoakHang,
    SoakHttpError,
    SoakProbe,
    SoakServerUp,
    SoakStarted,
    SoakStartFailed,
    SoakWindow,
    SoakWrongAnswer,
)
from backends.soak.spec import HOUR_S, SoakSpec, duration_words

if TYPE_CHECKING:
    from backends.journal.journal import RunEvent

T = TypeVar("T")

KEPT = 5  # reasons and wrong answers kept per build


@dataclass(frozen=True)
class HourCounts:
    hour: int  # 0: the soak's first hour
    requests: int = 0
    crashes: int = 0
    hangs: int = 0
    http_errors: int = 0
    probes: int = 0
    wrong: int = 0
    restarts: int = 0


@dataclass(frozen=True)
class WrongExample:
    probe: int
    depth: int
    prompt: str
    answer: str
    reference_answer: str
    reference_build: str
    reason: str


@dataclass(frozen=True)
class BuildSoakSummary:
    build: str
    requests: int = 0
    tokens: int = 0
    crashes: int = 0
    hangs: int = 0
    http_errors: int = 0
    probes: int = 0
    wrong: int = 0
    restarts: int = 0
    start_failures: int = 0
    crash_reasons: tuple[str, ...] = ()
    hang_reasons: tuple[str, ...] = ()
    wrong_examples: tuple[WrongExample, ...] = ()
    rss_growth_bytes: int | None = None
    vram_growth_bytes: int | None = None
    first_tps: float | None = None
    last_tps: float | None = None
    hours: tuple[HourCounts, ...] = ()

    @property
    def drift_pct(self) -> float | None:
        if not self.first_tps or self.last_tps is None:
            return None
        return (self.last_tps / self.first_tps - 1.0) * 100.0

    @property
    def stable(self) -> bool:
        return not (self.crashes or self.hangs or self.wrong)


@dataclass(frozen=True)
class SoakSummary:
    model: str
    reference: str
    planned_s: float
    soaked_s: float
    builds: tuple[BuildSoakSummary, ...]
    parts: int = 1  # 2 or more: resumed
    finished: bool = False  # the soak ran its whole duration
    problem: str | None = None

    def build(self, name: str) -> BuildSoakSummary | None:
        return next((b for b in self.builds if b.build == name), None)

    def to_json(self) -> dict[str, Any]:
        return dict(codec.to_builtins(self))

    @classmethod
    def from_json(cls, data: object) -> SoakSummary:
        return codec.from_builtins(data, cls)


@dataclass
class _Fold:
    """A build's running figures while the events are read."""

    counts: dict[str, int] = field(default_factory=dict)
    hours: dict[int, dict[str, int]] = field(default_factory=dict)
    crash: list[str] = field(default_factory=list)
    hang: list[str] = field(default_factory=list)
    wrong: list[WrongExample] = field(default_factory=list)
    life: dict[str, int | None] = field(default_factory=dict)  # first rss / vram of this server
    growth: dict[str, int] = field(default_factory=dict)
    windows: list[tuple[float, int, float]] = field(default_factory=list)  # at, tokens, gen_s

    def count(self, what: str, at_s: float, amount: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + amount
        hour = self.hours.setdefault(int(at_s // HOUR_S), {})
        hour[what] = hour.get(what, 0) + amount

    def window(self, event: SoakWindow) -> None:
        self.count("requests", event.at_s, event.requests)
        self.counts["tokens"] = self.counts.get("tokens", 0) + event.tokens
        self.windows.append((event.at_s, event.tokens, event.gen_s))
        for key, value in (("rss", event.rss_bytes), ("vram", event.vram_bytes)):
            if value is None:
                continue
            first = self.life.setdefault(key, value)
            if first is not None:
                self.growth[key] = max(self.growth.get(key, value - first), value - first)


def _keep(items: list[T], item: T) -> None:
    if len(items) < KEPT and item not in items:
        items.append(item)


def _take(fold: _Fold, event: RunEvent) -> None:
    if isinstance(event, SoakWindow):
        fold.window(event)
    elif isinstance(event, SoakServerUp):
        fold.life.clear()
        if event.restart:
            fold.count("restarts", event.at_s)
    elif isinstance(event, SoakCrashed):
        fold.count("crashes", event.at_s)
        _keep(fold.crash, event.reason)
    elif isinstance(event, SoakHang):
        fold.count("hangs", event.at_s)
        _keep(fold.hang, event.reason)
    elif isinstance(event, SoakHttpError):
        fold.count("http_errors", event.at_s)
    elif isinstance(event, SoakStartFailed):
        fold.count("start_failures", event.at_s)
        _keep(fold.crash, f"did not start: {event.reason}")
    elif isinstance(event, SoakProbe):
        fold.count("probes", event.at_s)
        if not event.ok:
            fold.count("wrong", event.at_s)
    elif isinstance(event, SoakWrongAnswer):
        _keep(fold.wrong, WrongExample(event.probe, event.depth, event.prompt, event.answer,
                                       event.reference_answer, event.reference_build, event.reason))


def _rate(windows: Iterable[tuple[float, int, float]]) -> float | None:
    tokens = gen_s = 0.0
    for _, n, seconds in windows:
        tokens += n
        gen_s += seconds
    return tokens / gen_s if gen_s > 0 and tokens else None


def _build_summary(name: str, fold: _Fold, soaked_s: float) -> BuildSoakSummary:
    period = HOUR_S if soaked_s >= 2 * HOUR_S else soaked_s / 4
    first = _rate(w for w in fold.windows if w[0] <= period)
    last = _rate(w for w in fold.windows if w[0] > soaked_s - period)
    hours = tuple(HourCounts(hour, **counts) for hour, counts in sorted(fold.hours.items())
                  if set(counts) <= set(HourCounts.__dataclass_fields__))
    c = fold.counts
    return BuildSoakSummary(
        name, requests=c.get("requests", 0), tokens=c.get("tokens", 0), crashes=c.get("crashes", 0),
        hangs=c.get("hangs", 0), http_errors=c.get("http_errors", 0), probes=c.get("probes", 0),
        wrong=c.get("wrong", 0), restarts=c.get("restarts", 0),
        start_failures=c.get("start_failures", 0), crash_reasons=tuple(fold.crash),
        hang_reasons=tuple(fold.hang), wrong_examples=tuple(fold.wrong),
        rss_growth_bytes=fold.growth.get("rss"), vram_growth_bytes=fold.growth.get("vram"),
        first_tps=first, last_tps=last, hours=hours)


def summarize(events: Iterable[RunEvent]) -> SoakSummary | None:
    """The soak's figures from its events (a journal read back); None if it holds no soak."""
    started: SoakStarted | None = None
    folds: dict[str, _Fold] = {}
    parts, soaked, finished, problem = 0, 0.0, False, None
    for event in events:
        if isinstance(event, SoakStarted):
            started = started or event
            parts += 1
            for soaked_build in event.builds:
                folds.setdefault(soaked_build.name, _Fold())
        soaked = max(soaked, float(getattr(event, "at_s", 0.0) or 0.0))
        if isinstance(event, SoakFinished):
            problem = event.problem or problem
        build = getattr(event, "build", None)
        if isinstance(build, str) and build in folds:
            _take(folds[build], event)
    if started is None:
        return None
    spec = SoakSpec.from_settings(started.settings)
    finished = soaked >= spec.duration_s - spec.window_s and problem is None
    summaries = tuple(_build_summary(name, fold, soaked) for name, fold in folds.items())
    return SoakSummary(started.model, started.reference, spec.duration_s, soaked, summaries,
                       parts, finished, problem)


def build_line(summary: BuildSoakSummary, soaked_s: float) -> str:
    """``vulkan: 8 h, 9,120 requests, 960 probes: 2 crashes, ...`` in one line."""
    counts = [f"{summary.crashes} crash{'es' if summary.crashes != 1 else ''}",
              f"{summary.hangs} hang{'s' if summary.hangs != 1 else ''}",
              f"{summary.http_errors} HTTP error{'s' if summary.http_errors != 1 else ''}",
              f"{summary.wrong} wrong answer{'s' if summary.wrong != 1 else ''}",
              f"{summary.restarts} restart{'s' if summary.restarts != 1 else ''}"]
    extra = []
    if summary.rss_growth_bytes is not None:
        extra.append(f"host memory {summary.rss_growth_bytes / 2**20:+.1f} MiB")
    if summary.vram_growth_bytes is not None:
        extra.append(f"VRAM {summary.vram_growth_bytes / 2**20:+.1f} MiB")
    if summary.drift_pct is not None:
        extra.append(f"decode {summary.drift_pct:+.1f}% from first to last "
                     f"{'hour' if soaked_s >= 2 * HOUR_S else 'quarter'}")
    head = (f"{summary.build}: {duration_words(soaked_s)}, {summary.requests:,} requests, "
            f"{summary.probes:,} probes: {', '.join(counts)}")
    return head + (f"; {', '.join(extra)}" if extra else "")


def summary_lines(summary: SoakSummary) -> list[str]:
    """The whole soak in a few lines: each build, then why it crashed and what it got wrong."""
    lines = [build_line(b, summary.soaked_s) for b in summary.builds]
    for b in summary.builds:
        lines += [f"  {b.build} crashed: {reason}" for reason in b.crash_reasons]
        lines += [f"  {b.build} hung: {reason}" for reason in b.hang_reasons]
        for w in b.wrong_examples[:2]:
            lines.append(f"  {b.build} wrong at probe {w.probe} (depth {w.depth}): {w.reason}; "
                         f"answered {w.answer[:60]!r}, {w.reference_build} answered "
                         f"{w.reference_answer[:60]!r}")
    if summary.problem:
        lines.append(f"soak stopped: {summary.problem}")
    elif not summary.finished:
        lines.append(f"soak not finished: {duration_words(summary.soaked_s)} of "
                     f"{duration_words(summary.planned_s)} (resume it with --resume)")
    return lines



"""Where each second of a sweep went: llama-bench's work, and what is not measurement.

Work is the timed repetitions llama-bench reports (each sample's tokens over its rate,
warm-up samples included). A block's span (its start to its result) less its work is
llama-bench's untimed time: the model's load (as the runner measured it, at most that
span), the depth prefill (from a ``depth run`` progress line that is not ``(cached)`` to
the next line: llama-bench fills the context once per depth in a process) and the rest,
its untimed warm-up run and setting up each test (``warm-up``). The runner adds the
seconds it spends cooling, paused, journalling and keeping telemetry. At the end one
line says it all: ``overhead 4.2 %: load 1.6 s, depth fill 1.1 s, warm-up 0.4 s, cooldown
0.0 s, paused 0.0 s, journal 0.1 s, telemetry 0.2 s, other 0.3 s (work 40.1 s of 41.9 s)``;
``other`` is what no part names: choosing the next block, starting processes, a busy machine.
A tune before the sweep is its own phase: its seconds are said apart, not counted here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backends.journal.sweep import BenchResult

__all__ = ["PARTS", "Overhead", "overhead_line"]

PARTS = ("load", "depth fill", "warm-up", "cooldown", "paused", "journal", "telemetry")


class Overhead:
    """Seconds per part, added up while a sweep runs (one per sweep)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(PARTS, 0.0)  # load: as measured
        self.work_s = 0.0  # timed repetitions
        self.untimed_s = 0.0  # block spans less their timed repetitions
        self.fill_s = 0.0  # depth prefills, within the untimed
        self.began: float | None = None
        self.tune_s = 0.0  # the tune phase, apart from the sweep
        self._spans: dict[tuple[str, str], float] = {}
        self._fills: dict[tuple[str, str], float] = {}  # a depth prefill under way: since when

    def start(self) -> None:
        self.began = time.monotonic()

    def add(self, part: str, seconds: float) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + max(0.0, seconds)

    @contextlib.contextmanager
    def tune_phase(self) -> Iterator[None]:
        """The tune before the sweep: its seconds, cooling and journalling included, are
        the tune's, said apart and left out of the sweep's wall and overhead."""
        before, began = dict(self.seconds), time.perf_counter()
        try:
            yield
        finally:
            self.seconds = before
            self.tune_s += time.perf_counter() - began

    @contextlib.contextmanager
    def timed(self, part: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.add(part, time.perf_counter() - began)

    def note(self, event: object) -> None:
        """A block starts (PointStarted) or ends (ResultReceived, PointFailed): its span;
        a depth prefill begins or ends (PointProgress)."""
        from backends.journal.sweep import PointFailed, PointProgress, PointStarted, ResultReceived

        if isinstance(event, PointProgress):
            key = (event.build, event.point.name)
            if (began := self._fills.pop(key, None)) is not None:
                self.fill_s += time.monotonic() - began
            if event.message.startswith("depth run") and not event.message.endswith("(cached)"):
                self._fills[key] = time.monotonic()
        elif isinstance(event, PointStarted):
            self._spans[(event.build, event.point.name)] = time.monotonic()
        elif isinstance(event, (ResultReceived, PointFailed)):
            self._fills.pop((event.build, event.point.name), None)
            began = self._spans.pop((event.build, event.point.name), None)
            work = timed_seconds(event.result) if isinstance(event, ResultReceived) else 0.0
            self.work_s += work
            if began is not None:
                self.untimed_s += max(0.0, time.monotonic() - began - work)

    def figures(self) -> dict[str, float]:
        """``wall``, ``work`` (llama-bench testing, loads taken out), ``overhead`` and each
        part, in seconds, rounded for the journal."""
        wall = time.monotonic() - self.began - self.tune_s if self.began is not None else 0.0
        work = min(self.work_s, wall)
        fill = min(self.fill_s, self.untimed_s)  # timed inside the spans, by progress lines
        load = min(self.seconds["load"], self.untimed_s - fill)  # from process start: may precede a span
        parts = {**self.seconds, "load": load, "depth fill": fill, "warm-up": self.untimed_s - load - fill}
        parts["other"] = max(0.0, wall - work - sum(parts.values()))
        tune = {"tune": round(self.tune_s, 3)} if self.tune_s else {}
        return {"wall": round(wall, 3), "work": round(work, 3),
                "overhead": round(max(0.0, wall - work), 3),
                **{k: round(v, 3) for k, v in parts.items()}, **tune}


def overhead_line(figures: dict[str, float]) -> str:
    """``overhead 4.2 %: load 1.6 s, depth fill 1.1 s, ... (work 40.1 s of 41.9 s)``."""
    wall = figures.get("wall", 0.0)
    share = 100.0 * figures.get("overhead", 0.0) / wall if wall > 0 else 0.0
    digits = 2 if wall < 10 else 1  # a short run's parts are tenths of a second
    parts = ", ".join(f"{p} {figures.get(p, 0.0):.{digits}f} s" for p in (*PARTS, "other"))
    tune = f"; the tune before it took {figures['tune']:.1f} s" if figures.get("tune") else ""
    return (f"overhead {share:.1f} %: {parts} "
            f"(work {figures.get('work', 0.0):.{digits}f} s of {wall:.{digits}f} s{tune})")


def timed_seconds(result: BenchResult) -> float:
    """Seconds of a result's timed repetitions (warm-up samples too): tokens over rate."""
    tokens = result.point.n_prompt + result.point.n_gen
    return sum(tokens / rate for rate in (*result.samples_ts, *result.warmup_ts) if rate > 0)

"""Timing probes for Setup's estimate, one at a time and once per build and model.

Setup (when the chosen builds change) and the working default (before its sweep) both want
each build's rates; on a two-core machine two probes at once each take twice as long and
measure each other. Every caller goes through the one ``ProbeQueue`` the app's sources
hold: a probe runs only while no other does, and a build already timed on the model is
answered from the rates book without starting anything. ``spans`` records each probe
that ran (build, start, end) for whoever wants to check the rule.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.estimate import Rates
    from backends.models import ModelInfo
    from tui.sources import RateBook

__all__ = ["ProbeQueue", "ProbeSpan"]


@dataclass(frozen=True)
class ProbeSpan:
    """One probe that ran: which build on which model, from when to when (monotonic s)."""

    build: str
    model: str
    started: float
    ended: float


class ProbeQueue:
    """Runs timing probes one after another; the rates book remembers what they found."""

    def __init__(self, rates: RateBook) -> None:
        self._rates = rates
        self._lock = asyncio.Lock()
        self.spans: list[ProbeSpan] = []
        self.running: str | None = None  # the build being timed now

    async def measure(self, builds: Sequence[BuildInfo], model: ModelInfo, *,
                      again: bool = False) -> AsyncIterator[tuple[str, Rates | str]]:
        """Each build's rates on ``model`` (or why it could not be timed, a str), timing
        only those not known yet (``again``: every one, the user asked)."""
        for build in builds:
            asked_at = time.monotonic()
            async with self._lock:
                known = self._rates.get(build, model)
                # Timed meanwhile by another caller (the lock was held): that answer will do.
                fresh = any(s.build == build.name and s.model == str(model.path)
                            and s.ended >= asked_at for s in self.spans)
                if known is not None and (not again or fresh):
                    result: Rates | str = known
                else:
                    result = await self._probe(build, model)
            yield build.name, result

    async def _probe(self, build: BuildInfo, model: ModelInfo) -> Rates | str:
        from tui.engine import probe_rates

        started = time.monotonic()
        self.running = build.name
        events = probe_rates([build], model)
        result: Rates | str = f"{build.name} gave no figures"
        try:
            async for _name, measured in events:
                result = measured
                break
        finally:
            await events.aclose()  # its llama-bench is gone before the next probe starts
            self.running = None
            self.spans.append(ProbeSpan(build.name, str(model.path), started, time.monotonic()))
        if not isinstance(result, str):
            self._rates.put(build, model, result)
        return result


def overlapping(spans: Sequence[ProbeSpan]) -> list[tuple[ProbeSpan, ProbeSpan]]:
    """Pairs of probes that ran at the same time (none, by the queue's rule)."""
    ordered = sorted(spans, key=lambda s: s.started)
    return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:] if b.started < a.ended]

"""What a sweep's caller holds: the pause switch and the run's options; a point's blocks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping

from backends.journal.tune import TuneSpec
from backends.sweep.monitors import TelemetrySource
from backends.sweep.plan import (DEFAULT_GRANULARITY)


class SweepControl:
    """Pause between test points and resume; cancel by cancelling the consuming task."""

    def __init__(self) -> None:
        self._running = asyncio.Event()
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    async def wait_running(self) -> None:
        await self._running.wait()


@dataclass(frozen=True)
class SweepOptions:
    interleave: bool = True
    parallel: bool = False
    granularity: str = DEFAULT_GRANULARITY
    telemetry_interval: float = 0.5
    check: dict[str, Any] | None = None  # run the correctness check first, with these options
    host_telemetry: Mapping[str, TelemetrySource] = field(default_factory=dict)  # per ssh host
    model_paths: Mapping[str, str] = field(default_factory=dict)  # host -> model path there
    tune: TuneSpec | None = None  # calibrate each contender before the first point


@dataclass
class Blocks:
    """The blocks measured so far for one contender at one point."""

    samples: list[tuple[float, ...]] = field(default_factory=list)
    throttled: list[bool] = field(default_factory=list)

    def counted(self) -> list[float]:
        """Samples of the blocks that did not throttle, or of all when every one did."""
        clean = [s for s, hot in zip(self.samples, self.throttled) if not hot]
        chosen = clean if clean else self.samples
        return [v for block in chosen for v in block]



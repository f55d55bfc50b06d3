"""What a sweep's caller holds: the pause switch; and a point's blocks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backends.journal.journal import RunEvent


class SweepControl:
    """Pause between test points and resume; cancel by cancelling the consuming task. Events
    journalled but not yet handed on when that task was cancelled wait in ``undelivered``, so
    the caller can show what the journal holds."""

    def __init__(self) -> None:
        self._running = asyncio.Event()
        self._running.set()
        self.undelivered: list[RunEvent] = []

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    async def wait_running(self) -> None:
        await self._running.wait()


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



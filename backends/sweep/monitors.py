"""Telemetry for a sweep, one monitor per machine: its stream, its recent ticks and its
thermal guard.

Contenders on this machine are watched by the local ``Telemetry``; contenders on another
host by that host's ``RemoteTelemetry`` (``backends.remote.telemetry``). A block's
telemetry summary and the wait for cooling before it both use the machine the block ran
on; every tick is journalled with the host it came from (``from_host``; none for this
machine).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backends.builds import BuildInfo
from backends.journal.sweep import BenchResult, TelemetryRecorded
from backends.sweep.bench import WARMUP_REPETITIONS
from backends.sweep.energy import RepetitionTracker
from backends.sweep.guard import ThermalGuard
from backends.sweep.spec import SweepSpec
from backends.telemetry import TelemetrySnapshot, snapshot_to_json, summarize, tokens_per_joule
from backends.telemetry.energy import EnergyMeter
from backends.telemetry.model import TelemetrySource

if TYPE_CHECKING:
    from backends.journal.journal import RunEvent
    from backends.sweep.overhead import Overhead

HOST_KEY = "from_host"


@dataclass
class Monitor:
    host: str | None  # None: this machine
    source: TelemetrySource | None
    guard: ThermalGuard
    snapshots: deque[TelemetrySnapshot] = field(default_factory=lambda: deque(maxlen=20000))
    meter: EnergyMeter | None = None  # this machine's cards, over each counted repetition

    def tracker(self) -> RepetitionTracker:
        return RepetitionTracker(self.meter, WARMUP_REPETITIONS)

    def start_temps(self) -> dict[str, float]:
        return self.guard.temperatures()

    def summary(self, start: float, end: float, result: BenchResult,
                interval: float) -> dict[str, Any] | None:
        """Telemetry of a block: the ticks during it, or for a block shorter than a tick,
        the tick just before it ended."""
        window = [s for s in self.snapshots if start <= s.at <= end]
        if not window:
            recent = [s for s in self.snapshots if s.at <= end and end - s.at <= 2 * interval]
            window = recent[-1:]
        if not window:
            return None
        data: dict[str, Any] = summarize(window).to_json()
        data["tokens_per_joule"] = tokens_per_joule(result.avg_ts, data.get("mean_power_w"))
        if self.host is not None:
            data[HOST_KEY] = self.host
        return data

    def offer(self, snapshot: TelemetrySnapshot) -> None:
        self.snapshots.append(snapshot)
        self.guard.offer(snapshot)

    def record(self, snapshot: TelemetrySnapshot) -> TelemetryRecorded:
        sample = snapshot_to_json(snapshot)
        if self.host is not None:
            sample[HOST_KEY] = self.host
        return TelemetryRecorded(sample=sample, at=snapshot.at)


def make_monitors(contenders: Sequence[BuildInfo], spec: SweepSpec, local: TelemetrySource | None,
                  remote: Mapping[str, TelemetrySource], energy: bool = True) -> dict[str | None, Monitor]:
    """A monitor for every machine the contenders run on (this one always has one); this
    machine's meters its cards' energy unless ``energy`` is off (contenders measuring at
    the same time would share the cards' joules)."""
    hosts: list[str | None] = [None, *dict.fromkeys(c.host for c in contenders if c.host)]
    monitors = {}
    for host in hosts:
        devices = {d.name for c in contenders if c.host == host for d in c.devices}
        source = local if host is None else remote.get(host)
        monitors[host] = Monitor(host, source, ThermalGuard(spec.cooldown, spec.max_temp, devices))
    finder = getattr(local, "energy_sources", None)
    if energy and callable(finder) and (cards := finder()):
        monitors[None].meter = EnergyMeter(cards)
    return monitors


async def take_baselines(monitors: Iterable[Monitor], contenders: Sequence[BuildInfo],
                         cooldown: str) -> list[str]:
    """Each machine's idle baseline for its guard; the notes to tell the user."""
    notes = []
    used = {c.host for c in contenders}
    for monitor in monitors:
        where = "" if monitor.host is None else f" on {monitor.host}"
        if monitor.source is None:
            if cooldown != "off" and monitor.host in used:
                notes.append(f"thermal guard off{where}: no telemetry attached")
            monitor.guard.enabled = False
        elif note := await monitor.guard.take_baseline():
            notes.append(note if monitor.host is None else f"{monitor.host}: {note}")
        if monitor.meter is not None:
            idle = await asyncio.to_thread(monitor.meter.measure_idle)
            notes.append(f"energy: {monitor.meter.method}, over each counted repetition only; idle power "
                         + ("unknown" if idle is None else f"{idle:.0f} W"))
    return notes


async def record_ticks(monitor: Monitor, interval: float, started: Callable[[], bool],
                       emit: Callable[[RunEvent], None], overhead: Overhead | None = None) -> None:
    """Keep, guard and (once the sweep has started) journal every tick of one machine;
    ``overhead`` counts the seconds spent keeping them (writing them: the journal's)."""
    assert monitor.source is not None
    stream = monitor.source.stream(interval)
    try:
        async for snapshot in stream:
            with overhead.timed("telemetry") if overhead else contextlib.nullcontext():
                monitor.offer(snapshot)
                record = monitor.record(snapshot) if started() else None
            if record is not None:  # the journal begins with the start, the baseline before it
                emit(record)
    finally:
        closing = getattr(stream, "aclose", None)
        if closing is not None:
            await closing()  # a remote stream's process is stopped now, not when collected

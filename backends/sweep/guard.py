"""The thermal guard: before a block, wait for the GPU to cool, but only when heat matters.

A passively cooled card (an MI50 in a home server) heats up during a sweep, throttles and
slows down, and whichever contender runs second looks slower. Before the sweep the guard
takes a baseline (temperatures and power at idle). Before each block it waits only when
the heat has a measurable effect: the card throttles, or a temperature has risen beyond
TEMP_MARGIN_C above its baseline *and* the card shows it (its clock under load has dropped
below CLOCK_DROP of the highest seen, or a temperature is within NEAR_LIMIT_C of the
card's critical limit); ``--max-temp`` given, a temperature over it is reason enough. A
warm card far from its limit starts the next block at once: the builds alternate anyway,
and waiting cost seconds before almost every point. Once waiting, it waits until every
temperature is within TEMP_MARGIN_C of its baseline (or under ``--max-temp``; never closer
than CRIT_MARGIN_C to the limit) and the throttling ended, at most ``max_wait_s``, on
telemetry samples as they arrive, never on a fixed delay.

Power is not waited on: heat shows in the temperatures, and a card with a model loaded
draws more at idle than the baseline taken before one was (seen on an H200: 79 W before,
120 W with an 8B model resident in a paused llama-bench, against a target of 117 W, so
the guard waited its full 120 s before every point while the card sat at 37 C).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from backends.telemetry import DeviceSample, TelemetrySnapshot

TEMP_MARGIN_C = 5.0
CRIT_MARGIN_C = 15.0
NEAR_LIMIT_C = 20.0  # this close to the critical limit, the card is about to throttle
CLOCK_DROP = 0.9  # a busy clock under this share of the highest busy clock seen: slowed
BUSY_PERCENT = 50.0  # a clock counts only while the card works
AUTO_MAX_WAIT_S = 120.0
BASELINE_SAMPLES = 3
SENSORS = ("edge_c", "junction_c", "mem_c")
SENSOR_NAMES = {"edge_c": "edge", "junction_c": "junction", "mem_c": "memory"}


@dataclass(frozen=True)
class Reading:
    device: str
    sensor: str  # edge | junction | memory | throttling
    value: float
    target: float

    @property
    def label(self) -> str:
        return self.sensor if self.device == "" else f"{self.device} {self.sensor}"


def _crit(device: DeviceSample, sensor: str) -> float | None:
    value = getattr(device, sensor.replace("_c", "_crit_c"), None)
    return value if isinstance(value, (int, float)) else None


class ThermalGuard:
    """Waits for the cards in use to cool down; ``latest`` gives the newest snapshot and
    ``arrived`` is set by whoever receives one."""

    def __init__(self, cooldown: str, max_temp: float | None, devices: Iterable[str] = ()) -> None:
        self.enabled = cooldown != "off"
        self.max_wait_s = AUTO_MAX_WAIT_S if cooldown in ("auto", "off") else float(cooldown)
        self.max_temp = max_temp
        self.devices = set(devices)  # llama.cpp names of the devices in use; empty: all
        self.baseline: dict[tuple[str, str], float] = {}
        self.latest: TelemetrySnapshot | None = None
        self.arrived = asyncio.Event()
        self._seen: list[TelemetrySnapshot] = []
        self.idle_throttling: set[str] = set()
        self._peak_clock: dict[str, float] = {}  # device -> highest clock while busy
        self._busy_clock: dict[str, float] = {}  # device -> its latest clock while busy

    def offer(self, snapshot: TelemetrySnapshot) -> None:
        """A new telemetry snapshot (called for every tick of the run's telemetry)."""
        self.latest = snapshot
        for device in snapshot.devices:
            if device.sclk_mhz and (device.gpu_busy_percent or 0.0) >= BUSY_PERCENT:
                self._busy_clock[device.label] = device.sclk_mhz
                self._peak_clock[device.label] = max(self._peak_clock.get(device.label, 0.0),
                                                     device.sclk_mhz)
        if len(self._seen) < BASELINE_SAMPLES:
            self._seen.append(snapshot)
        self.arrived.set()

    def temperatures(self) -> dict[str, float]:
        """The watched cards' temperatures now (``{"junction": 48.0}``; a device's label
        before each sensor when there are several): what a block starts at."""
        if self.latest is None:
            return {}
        devices = self._in_use(self.latest)
        return {(f"{d.label} " if len(devices) > 1 else "") + SENSOR_NAMES[s]: float(value)
                for d in devices for s in SENSORS if (value := getattr(d, s)) is not None}

    def _in_use(self, snapshot: TelemetrySnapshot) -> list[DeviceSample]:
        chosen = [d for d in snapshot.devices
                  if not self.devices or self.devices & set(d.backend_names)]
        return chosen or list(snapshot.devices)

    async def take_baseline(self, timeout: float = 10.0) -> str | None:
        """Idle readings from the first snapshots; a line saying why the guard cannot run."""
        if not self.enabled:
            return None
        deadline = time.monotonic() + timeout
        while len(self._seen) < BASELINE_SAMPLES and time.monotonic() < deadline:
            if self._seen and not any(self._in_use(s) for s in self._seen):
                break  # no GPU in the telemetry: nothing to wait for
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
        values: dict[tuple[str, str], list[float]] = {}
        for snapshot in self._seen:
            for device in self._in_use(snapshot):
                for sensor in SENSORS:
                    value = getattr(device, sensor)
                    if value is not None:
                        values.setdefault((device.label, sensor), []).append(float(value))
        self.baseline = {key: statistics.median(v) for key, v in values.items()}
        if not any(sensor in SENSORS for _, sensor in self.baseline):
            self.enabled = False
            return "thermal guard off: no GPU temperature telemetry on this machine"
        idle = {d.label: d.throttle_reasons for s in self._seen for d in self._in_use(s)
                if d.throttle_reasons}
        self.idle_throttling = set(idle)
        if idle:
            words = "; ".join(f"{name}: {', '.join(reasons or ())}" for name, reasons in idle.items())
            return f"the card throttles at idle ({words}): the guard does not wait for that"
        return None

    def readings(self) -> list[Reading]:
        """Each watched sensor's value now and the value it must come down to."""
        if self.latest is None:
            return []
        found = []
        for device in self._in_use(self.latest):
            for sensor in SENSORS:
                value, base = getattr(device, sensor), self.baseline.get((device.label, sensor))
                if value is None or base is None:
                    continue
                found.append(Reading(device.label, SENSOR_NAMES[sensor], float(value),
                                     self._target(device, sensor, base)))
            # A card that still throttles is not cool, whatever its sensors read (unless it
            # throttled at idle already: then waiting would not help).
            if device.label not in self.idle_throttling:
                found.append(Reading(device.label, "throttling", float(bool(device.throttle_reasons)), 0.0))
        return found

    def _target(self, device: DeviceSample, sensor: str, base: float) -> float:
        """Near the idle baseline, or under ``max_temp`` when the user gave one; never
        closer than CRIT_MARGIN_C to the card's critical limit."""
        target = self.max_temp if self.max_temp is not None else base + TEMP_MARGIN_C
        crit = _crit(device, sensor)
        return min(target, crit - CRIT_MARGIN_C) if crit is not None else target

    def above(self) -> list[Reading]:
        """Readings still above where a wait ends (near the baseline, not throttling)."""
        return [r for r in self.readings() if r.value > r.target]

    def hot(self) -> list[Reading]:
        """What makes a wait worth it now: throttling, or a rise with a measurable effect."""
        if self.latest is None:
            return []
        effect = {d.label for d in self._in_use(self.latest) if self._shows_heat(d)}
        return [r for r in self.above() if r.sensor == "throttling" or r.device in effect
                or (self.max_temp is not None and r.value > self.max_temp)]

    def _shows_heat(self, device: DeviceSample) -> bool:
        """The card slowed (its busy clock dropped) or is near its critical limit."""
        peak, now = self._peak_clock.get(device.label), self._busy_clock.get(device.label)
        if peak and now is not None and now < CLOCK_DROP * peak:
            return True
        for sensor in SENSORS:
            value, crit = getattr(device, sensor), _crit(device, sensor)
            if value is not None and crit is not None and value >= crit - NEAR_LIMIT_C:
                return True
        return False

    @property
    def watching(self) -> bool:
        """Whether it may ever wait before a block (on, with a baseline to come back to)."""
        return self.enabled and bool(self.baseline)

    async def wait_until_cool(self, on_start: Callable[[list[Reading]], None]
                              ) -> tuple[float, bool, list[Reading], list[Reading]] | None:
        """When heat matters (``hot``), wait until every sensor is back near its baseline;
        None when nothing mattered. Returns
        (seconds waited, whether it cooled, readings at the start, readings at the end)."""
        if not self.watching:
            return None
        first = self.hot()
        if not first:
            return None
        on_start(first)
        began = time.monotonic()
        while self.above():
            left = self.max_wait_s - (time.monotonic() - began)
            if left <= 0:
                break
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                break
        last = {(r.device, r.sensor): r for r in self.readings()}
        ends = [last.get((r.device, r.sensor), r) for r in first]
        return time.monotonic() - began, not self.above(), first, ends


def reading_pairs(first: list[Reading], last: list[Reading]) -> dict[str, tuple[float, float]]:
    """``{"junction": (78.0, 62.0)}`` for the journal (device named when there are several)."""
    several = len({r.device for r in first}) > 1
    return {(r.label if several else r.sensor): (r.value, e.value) for r, e in zip(first, last)}

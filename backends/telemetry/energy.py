"""Energy over the measured work only: a hardware energy counter read at the edges of each
timed repetition, or, where a card has none, its power sampled fast while one runs.

Counters, in order of preference: hwmon ``energy*_input`` (microjoules), the amdgpu
``gpu_metrics`` ``energy_accumulator`` (15.259 microjoules a count; 32 bits on v1.0, so it
wraps), NVML's total energy consumption (millijoules). Without one, power is sampled at
``SAMPLE_HZ`` on a thread of its own, only while a window is open, and integrated (trapezoid).
A window a counter did not move in, or with fewer than ``MIN_SAMPLES`` samples, is too short
to measure: it gives no joules rather than a guess.
"""

from __future__ import annotations

import glob
import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from backends.telemetry.gpu_metrics import UnsupportedMetrics, decode_gpu_metrics

SAMPLE_HZ = 25.0
MIN_SAMPLES = 3
ACCUMULATOR_J = 15.259e-6
_WRAP_32 = 1 << 32


class EnergySource(Protocol):
    """One card's energy: a counter in joules (None: it has none) and its power now."""

    counter_name: str | None  # how the counter is read, or None

    def counter_j(self) -> float | None: ...
    def power_w(self) -> float | None: ...


def _read_number(path: str) -> float | None:
    try:
        with open(path, "rb") as handle:
            return float(handle.read().strip() or b"nan")
    except (OSError, ValueError):
        return None


class SysfsEnergy:
    """An amdgpu card from its device folder: hwmon energy, else the gpu_metrics accumulator."""

    def __init__(self, device_dir: str) -> None:
        hwmon = sorted(glob.glob(os.path.join(device_dir, "hwmon", "hwmon*")))
        self.hwmon = hwmon[0] if hwmon else None
        self.energy_files = sorted(glob.glob(os.path.join(self.hwmon, "energy*_input"))) if self.hwmon else []
        self.metrics = os.path.join(device_dir, "gpu_metrics")
        self.power_files = [os.path.join(self.hwmon, name) for name in ("power1_average", "power1_input")
                            ] if self.hwmon else []
        self._last_count: int | None = None
        self._wraps = 0
        self.counter_name: str | None = None
        if self.energy_files:
            self.counter_name = "hwmon " + os.path.basename(self.energy_files[0])
        elif self._accumulator() is not None:
            self.counter_name = "gpu_metrics energy_accumulator"

    def _accumulator(self) -> int | None:
        try:
            with open(self.metrics, "rb") as handle:
                value = decode_gpu_metrics(handle.read()).value("energy_accumulator")
        except (OSError, UnsupportedMetrics):
            return None
        if value is None or value == 0:
            return None  # a card that leaves it unfilled (or at 0) has no counter
        return value

    def counter_j(self) -> float | None:
        if self.energy_files:
            values = [_read_number(p) for p in self.energy_files]
            return None if any(v is None for v in values) else sum(v or 0.0 for v in values) / 1e6
        count = self._accumulator()
        if count is None:
            return None
        if self._last_count is not None and count < self._last_count and self._last_count < _WRAP_32:
            self._wraps += 1  # the 32-bit accumulator of gpu_metrics v1.0 went round
        self._last_count = count
        return (count + self._wraps * _WRAP_32) * ACCUMULATOR_J

    def power_w(self) -> float | None:
        for path in self.power_files:
            value = _read_number(path)
            if value is not None:
                return value / 1e6
        return None


class NvmlEnergy:
    """An NVIDIA card through NVML: its total energy counter (Volta and later) and power."""

    def __init__(self, nvml: object, handle: object) -> None:
        self.nvml, self.handle = nvml, handle
        self.counter_name = "NVML total energy" if self.counter_j() is not None else None

    def counter_j(self) -> float | None:
        try:
            return float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)) / 1e3  # type: ignore[attr-defined]
        except Exception:
            return None

    def power_w(self) -> float | None:
        try:
            return float(self.nvml.nvmlDeviceGetPowerUsage(self.handle)) / 1e3  # type: ignore[attr-defined]
        except Exception:
            return None


def sources_of(device_sources: Sequence[object]) -> list[EnergySource]:
    """The cards of telemetry's device sources: amdgpu sysfs cards and NVML devices."""
    found: list[EnergySource] = []
    for source in device_sources:
        for card in getattr(source, "cards", ()):
            found.append(SysfsEnergy(card.device_dir))
        nvml = getattr(source, "_nvml", None)
        if nvml is not None:
            found.extend(NvmlEnergy(nvml, device.handle) for device in getattr(source, "devices", ()))
    return found


@dataclass(frozen=True)
class Window:
    """The energy of one timed repetition; ``joules`` None: too short to measure."""

    joules: float | None
    seconds: float
    samples: int  # counter reads (2) or power samples in the window


class EnergyMeter:
    """Opens and closes measured windows over some cards (their energy summed)."""

    def __init__(self, sources: Sequence[EnergySource], hz: float = SAMPLE_HZ,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sources, self.hz, self.clock = list(sources), hz, clock
        self.counting = bool(self.sources) and all(s.counter_name for s in self.sources)
        self._start: tuple[float, float | None] | None = None
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.idle_w: float | None = None  # measured once per run, before it starts

    def measure_idle(self, seconds: float = 0.5) -> float | None:
        """The cards' mean power over ``seconds`` (blocking: call it off the event loop)."""
        readings = []
        deadline = self.clock() + seconds
        while self.clock() < deadline:
            power = self.power_w()
            if power is not None:
                readings.append(power)
            time.sleep(1.0 / self.hz)
        self.idle_w = sum(readings) / len(readings) if readings else None
        return self.idle_w

    @property
    def method(self) -> str:
        if self.counting:
            names = sorted({s.counter_name or "" for s in self.sources})
            return "energy counter (" + ", ".join(names) + ")"
        return f"power sampled at {self.hz:g} Hz"

    def power_w(self) -> float | None:
        values = [s.power_w() for s in self.sources]
        return None if not values or any(v is None for v in values) else sum(v or 0.0 for v in values)

    def _counter(self) -> float | None:
        values = [s.counter_j() for s in self.sources]
        return None if any(v is None for v in values) else sum(v or 0.0 for v in values)

    def open(self) -> None:
        self.close()
        self._start = (self.clock(), self._counter() if self.counting else None)
        if not self.counting:
            self._samples = []
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True, name="energy-sampler")
            self._thread.start()

    def _sample(self) -> None:
        period = 1.0 / self.hz
        while not self._stop.is_set():
            power = self.power_w()
            if power is not None:
                self._samples.append((self.clock(), power))
            self._stop.wait(period)

    def close(self) -> Window | None:
        """End the open window (None when none was open)."""
        if self._start is None:
            return None
        began, first = self._start
        self._start = None
        ended = self.clock()
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            return _integrate(self._samples, ended - began)
        last = self._counter()
        if first is None or last is None or last <= first:
            return Window(None, ended - began, 2)  # the counter did not move: too short
        return Window(last - first, ended - began, 2)


def _integrate(samples: Sequence[tuple[float, float]], seconds: float) -> Window:
    if len(samples) < MIN_SAMPLES:
        return Window(None, seconds, len(samples))
    joules = sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in itertools.pairwise(samples))
    covered = samples[-1][0] - samples[0][0]
    # The window is a little longer than the samples span: scale to the whole window.
    joules = joules * seconds / covered if covered > 0 else samples[0][1] * seconds
    return Window(joules, seconds, len(samples))

"""Telemetry values: frozen samples per tick, their JSON form, and a summary over a test point.

A value a source cannot give is ``None`` and its field name appears in ``missing`` with a
reason a person can act on. Zero always means a measured zero.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from backends.journal import codec

N = TypeVar("N", int, float)

# Fields of DeviceSample that hold measurements (everything but identity and bookkeeping).
DEVICE_MEASUREMENTS = (
    "vram_used_bytes", "vram_total_bytes", "gtt_used_bytes", "gtt_total_bytes",
    "edge_c", "junction_c", "mem_c",
    "edge_crit_c", "junction_crit_c", "mem_crit_c",
    "edge_emergency_c", "junction_emergency_c", "mem_emergency_c",
    "power_w", "power_cap_w",
    "gpu_busy_percent", "mem_busy_percent",
    "sclk_mhz", "mclk_mhz", "fan_rpm",
    "throttle_reasons",
    "process_vram_bytes",
)


@dataclass(frozen=True)
class DeviceSample:
    """One GPU at one tick. Devices are identified by PCI address across all sources."""

    at: float
    pci_address: str
    name: str
    source: str
    # llama.cpp's names for this device (ROCm0, Vulkan0, CUDA0), from the caller's mapping.
    backend_names: tuple[str, ...] = ()
    vram_used_bytes: int | None = None
    vram_total_bytes: int | None = None
    gtt_used_bytes: int | None = None
    gtt_total_bytes: int | None = None
    # Temperatures in degrees Celsius: edge, junction (hotspot) and memory (HBM on an MI50).
    edge_c: float | None = None
    junction_c: float | None = None
    mem_c: float | None = None
    # Their limits: critical (the firmware throttles hard here; hwmon temp*_crit, amd-smi
    # "slowdown") and emergency (the ASIC shuts down; temp*_emergency, amd-smi "shutdown").
    edge_crit_c: float | None = None
    junction_crit_c: float | None = None
    mem_crit_c: float | None = None
    edge_emergency_c: float | None = None
    junction_emergency_c: float | None = None
    mem_emergency_c: float | None = None
    power_w: float | None = None
    power_cap_w: float | None = None
    gpu_busy_percent: float | None = None
    mem_busy_percent: float | None = None
    sclk_mhz: float | None = None
    mclk_mhz: float | None = None
    # None (with a reason) for a board without a fan of its own, such as a passive MI50.
    fan_rpm: float | None = None
    # Words such as "HBM temperature"; () = not throttling; None = unknown (see missing).
    throttle_reasons: tuple[str, ...] | None = None
    # VRAM held by the watched benchmark processes on this device.
    process_vram_bytes: int | None = None
    missing: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def throttled(self) -> bool:
        return bool(self.throttle_reasons)

    @property
    def label(self) -> str:
        """Short name for one column: the first backend name, else the PCI address."""
        return self.backend_names[0] if self.backend_names else self.pci_address


def device_sample(*, at: float, pci_address: str, name: str, source: str,
                  values: Mapping[str, float | int | tuple[str, ...] | None],
                  missing: Mapping[str, str]) -> DeviceSample:
    """A DeviceSample from measurement name -> value (names from DEVICE_MEASUREMENTS)."""
    unknown = sorted(set(values) - set(DEVICE_MEASUREMENTS))
    if unknown:
        raise ValueError(f"not device measurements: {', '.join(unknown)}")
    measured: dict[str, Any] = dict(values)
    return DeviceSample(at=at, pci_address=pci_address, name=name, source=source,
                        missing=dict(missing), **measured)


@dataclass(frozen=True)
class HostSample:
    """The machine and the watched benchmark process tree at one tick."""

    at: float
    cpu_count: int
    # Whole machine, 0..100 (mean over cores).
    cpu_percent: float | None = None
    # Benchmark tree, percent of one core summed over cores (200 = two busy cores).
    process_cpu_percent: float | None = None
    process_rss_bytes: int | None = None
    ram_used_bytes: int | None = None
    ram_total_bytes: int | None = None
    watched_pids: tuple[int, ...] = ()
    missing: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class TelemetrySnapshot:
    """Everything sampled at one tick."""

    at: float
    devices: tuple[DeviceSample, ...] = ()
    host: HostSample | None = None


def snapshot_to_json(snapshot: TelemetrySnapshot) -> dict[str, Any]:
    """A JSON-ready dict; ``snapshot_from_json`` gives back an equal snapshot."""
    return dict(codec.to_builtins(snapshot))


def snapshot_from_json(data: Mapping[str, object]) -> TelemetrySnapshot:
    """Inverse of ``snapshot_to_json`` (unknown keys are ignored, for newer journals)."""
    return codec.from_builtins(data, TelemetrySnapshot)


@dataclass(frozen=True)
class TelemetrySummary:
    """What the telemetry said during one test point (or a whole run).

    ``peak_vram_bytes`` is the highest VRAM use seen on any single device (how close a run
    came to running out); ``mean_power_w`` is the mean over ticks of the summed power of all
    devices that reported power. Values no tick could give are None.
    """

    sample_count: int
    duration_s: float
    peak_vram_bytes: int | None
    peak_process_vram_bytes: int | None
    max_edge_c: float | None
    max_junction_c: float | None
    max_mem_c: float | None
    mean_power_w: float | None
    throttled: bool
    throttle_reasons: tuple[str, ...]
    peak_process_rss_bytes: int | None
    mean_process_cpu_percent: float | None
    # Fewest degrees any sensor of any device was below its critical limit (negative: above).
    least_headroom_c: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(codec.to_builtins(self))

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> TelemetrySummary:
        return codec.from_builtins(data, cls)


def _max(values: Iterable[N | None]) -> N | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def summarize(snapshots: Iterable[TelemetrySnapshot]) -> TelemetrySummary:
    """Peak, maximum and mean values over snapshots (e.g. those taken during one test point)."""
    snapshots = list(snapshots)
    devices = [d for s in snapshots for d in s.devices]
    hosts = [s.host for s in snapshots if s.host is not None]

    def tick_power(snapshot: TelemetrySnapshot) -> float | None:
        powers = [d.power_w for d in snapshot.devices if d.power_w is not None]
        return sum(powers) if powers else None

    def tick_process_vram(snapshot: TelemetrySnapshot) -> int | None:
        held = [d.process_vram_bytes for d in snapshot.devices if d.process_vram_bytes is not None]
        return sum(held) if held else None

    reasons = sorted({r for d in devices for r in (d.throttle_reasons or ())})
    times = [s.at for s in snapshots]
    return TelemetrySummary(
        sample_count=len(snapshots),
        duration_s=(max(times) - min(times)) if times else 0.0,
        peak_vram_bytes=_max(d.vram_used_bytes for d in devices),
        peak_process_vram_bytes=_max(tick_process_vram(s) for s in snapshots),
        max_edge_c=_max(d.edge_c for d in devices),
        max_junction_c=_max(d.junction_c for d in devices),
        max_mem_c=_max(d.mem_c for d in devices),
        mean_power_w=_mean(tick_power(s) for s in snapshots),
        throttled=bool(reasons),
        throttle_reasons=tuple(reasons),
        peak_process_rss_bytes=_max(h.process_rss_bytes for h in hosts),
        mean_process_cpu_percent=_mean(h.process_cpu_percent for h in hosts),
        least_headroom_c=_min_headroom(devices),
    )


def _min_headroom(devices: Iterable[DeviceSample]) -> float | None:
    margins = [crit - value for d in devices for value, crit in (
        (d.edge_c, d.edge_crit_c), (d.junction_c, d.junction_crit_c), (d.mem_c, d.mem_crit_c))
        if value is not None and crit is not None]
    return min(margins) if margins else None


def tokens_per_joule(avg_ts: float, mean_power_w: float | None) -> float | None:
    """Tokens per second divided by watts; None when either is unknown, zero or not finite."""
    if mean_power_w is None or not avg_ts or not math.isfinite(avg_ts):
        return None
    if not math.isfinite(mean_power_w) or mean_power_w <= 0:
        return None
    return avg_ts / mean_power_w


class TelemetrySource(Protocol):
    """A stream of telemetry snapshots: this machine's (``Telemetry``) or another host's
    (``backends.remote.telemetry.RemoteTelemetry``). Sweeps, the app and the command line
    all take this one kind of source."""

    def stream(self, interval: float) -> AsyncGenerator[TelemetrySnapshot, None]: ...
    def watch_pids(self, pids: Iterable[int]) -> None: ...  # follow these processes' use too
    def unwatch_all(self) -> None: ...  # and stop following them
    def close(self) -> None: ...


class DeviceSource(Protocol):
    """A source of per-device samples (sysfs, libdrm, AMD SMI, rocm-smi, NVML) that
    ``Telemetry`` merges. Members a source may leave out have their defaults here; every
    source subclasses this, so nothing is probed for."""

    name: str
    unavailable_reason: str | None = None  # why it cannot work here; None: it can
    fills_gaps: bool = False  # asked only for what the sources before it left missing

    @property
    def available(self) -> bool: ...

    @property
    def pci_addresses(self) -> tuple[str, ...]:
        """The devices it reads (known before the first sample); () when it cannot say."""
        return ()

    def sample(self, pids: Sequence[int] = (), at: float = 0.0,
               wanted: Mapping[str, Collection[str]] | None = None) -> list[DeviceSample]: ...

    def close(self) -> None: ...

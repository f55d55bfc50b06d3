"""Telemetry ticks flattened for display: one Reading per tick, the history of the last
minutes, and the one line of current values (throttling in words)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class Reading:
    """One telemetry tick flattened for display (first GPU; host figures alongside)."""

    at: float = 0.0
    device: str = ""
    vram_used: float = math.nan
    vram_total: float = math.nan
    edge_c: float = math.nan
    junction_c: float = math.nan
    mem_c: float = math.nan
    power_w: float = math.nan
    power_cap_w: float = math.nan
    busy_percent: float = math.nan
    throttle_reasons: tuple[str, ...] = ()
    fan_rpm: float = math.nan
    has_fan_reading: bool = False  # the device says something about its fan (a value or why not)
    limit_note: str = ""  # the temperature closest to its critical limit, in words
    host_cpu_percent: float = math.nan
    host_ram_used: float = math.nan
    host_ram_total: float = math.nan


@dataclass(frozen=True)
class TelemetryHistory:
    readings: tuple[Reading, ...] = ()
    show_host: bool = False

    def add(self, reading: Reading, keep: int = 1200) -> TelemetryHistory:
        return dataclasses.replace(self, readings=(*self.readings, reading)[-keep:])


def _get(source: object, *names: str) -> object:
    """The first of ``names`` a snapshot (an object or its JSON dict) holds."""
    for name in names:
        value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
        if value is not None:
            return value
    return None


def _num(value: object) -> float:
    if not isinstance(value, (int, float, str)):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _limit_note(device: object) -> str:
    """``junction 32° below crit`` for the sensor with the least room, "" without limits."""
    margins = []
    for sensor, word in (("edge", "edge"), ("junction", "junction"), ("mem", "mem")):
        value, crit = _num(_get(device, f"{sensor}_c")), _num(_get(device, f"{sensor}_crit_c"))
        if not (math.isnan(value) or math.isnan(crit)):
            margins.append((crit - value, word))
    if not margins:
        return ""
    margin, word = min(margins)
    return f"{word} {margin:.0f}° below crit" if margin > 0 else f"{word} AT CRIT"


def reading_from(sample: object) -> Reading:
    """Flatten a telemetry snapshot (object or its JSON dict); missing sensors stay NaN."""
    devices = _get(sample, "devices", "gpus") or ()
    device = devices[0] if isinstance(devices, Sequence) and devices else {}
    host = _get(sample, "host") or {}
    found = _get(device, "throttle_reasons") or ()
    reasons = (found,) if isinstance(found, str) else found if isinstance(found, Iterable) else ()
    missing = _get(device, "missing") or {}
    return Reading(
        at=_num(_get(sample, "at", "time", "timestamp")),
        device=str(_get(device, "name", "description") or ""),
        vram_used=_num(_get(device, "vram_used_bytes", "vram_used")),
        vram_total=_num(_get(device, "vram_total_bytes", "vram_total")),
        edge_c=_num(_get(device, "edge_c", "temp_edge_c", "temperature_c")),
        junction_c=_num(_get(device, "junction_c", "temp_junction_c", "hotspot_c")),
        mem_c=_num(_get(device, "mem_c", "temp_mem_c", "memory_c")),
        power_w=_num(_get(device, "power_w")),
        power_cap_w=_num(_get(device, "power_cap_w", "power_limit_w")),
        busy_percent=_num(_get(device, "gpu_busy_percent", "busy_percent", "load_percent")),
        throttle_reasons=tuple(str(r) for r in reasons),
        fan_rpm=_num(_get(device, "fan_rpm")),
        has_fan_reading=_get(device, "fan_rpm") is not None
        or (isinstance(missing, Container) and "fan_rpm" in missing),
        limit_note=_limit_note(device) if devices else "",
        host_cpu_percent=_num(_get(host, "cpu_percent")),
        host_ram_used=_num(_get(host, "ram_used_bytes", "memory_used_bytes", "ram_used")),
        host_ram_total=_num(_get(host, "ram_total_bytes", "memory_total_bytes", "ram_total")),
    )


def _fmt(value: float, unit: str, digits: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}{unit}"


def summary_line(reading: Reading | None, show_host: bool) -> str:
    """Current values in one line, throttling spelled out in words."""
    if reading is None:
        return "no telemetry yet"
    parts = []
    if reading.device:
        parts.append(reading.device)
    if not math.isnan(reading.vram_total):
        used, total = _fmt(reading.vram_used / GIB, '', 1), _fmt(reading.vram_total / GIB, ' GiB', 1)
        parts.append(f"VRAM {used}/{total}")
    temps = [f"{label} {_fmt(v, '°C')}" for label, v in
             (("edge", reading.edge_c), ("junction", reading.junction_c), ("mem", reading.mem_c))
             if not math.isnan(v)]
    parts += temps
    if not math.isnan(reading.power_w):
        cap = "" if math.isnan(reading.power_cap_w) else f"/{reading.power_cap_w:.0f}"
        parts.append(f"power {reading.power_w:.0f}{cap} W")
    if reading.limit_note:
        parts.append(reading.limit_note)
    if not math.isnan(reading.busy_percent):
        parts.append(f"busy {reading.busy_percent:.0f}%")
    if reading.has_fan_reading:  # '-' for a board without a fan of its own (a passive MI50)
        parts.append(f"fan {_fmt(reading.fan_rpm, ' rpm')}")
    if show_host or math.isnan(reading.vram_total):
        if not math.isnan(reading.host_cpu_percent):
            parts.append(f"host CPU {reading.host_cpu_percent:.0f}%")
        if not math.isnan(reading.host_ram_total):
            used = _fmt(reading.host_ram_used / GIB, '', 1)
            parts.append(f"RAM {used}/{_fmt(reading.host_ram_total / GIB, ' GiB', 1)}")
    return "  ·  ".join(parts) if parts else "no sensors report on this machine"


def throttle_line(reading: Reading | None) -> str:
    if reading is None or not reading.throttle_reasons:
        return ""
    return "THROTTLING: " + ", ".join(reading.throttle_reasons) + " (results may be slower)"

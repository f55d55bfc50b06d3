"""Pure functions over device samples: how close each temperature is to its limit, and the
totals across the GPUs a run uses (for the panels and the thermal guard)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from backends.telemetry.model import DeviceSample

SENSORS = ("edge", "junction", "mem")
SENSOR_WORDS = {"edge": "edge", "junction": "junction", "mem": "memory"}


@dataclass(frozen=True)
class TemperatureHeadroom:
    """One temperature and its limits (°C); the limits are None where the card gives none."""

    sensor: str  # "edge", "junction" or "mem"
    value_c: float
    crit_c: float | None
    emergency_c: float | None

    @property
    def below_crit_c(self) -> float | None:
        """Degrees left before the critical limit (negative: above it)."""
        return None if self.crit_c is None else self.crit_c - self.value_c

    @property
    def crit_fraction(self) -> float | None:
        """The temperature as a share of the critical limit (1.0 = at the limit)."""
        if self.crit_c is None or self.crit_c <= 0:
            return None
        return self.value_c / self.crit_c

    @property
    def over_crit(self) -> bool:
        return self.crit_c is not None and self.value_c >= self.crit_c

    def describe(self) -> str:
        """``junction 78 °C, 32 °C below critical 110 °C`` (or just the reading)."""
        word = SENSOR_WORDS[self.sensor]
        text = f"{word} {self.value_c:.0f} °C"
        if self.crit_c is None:
            return text + " (no critical limit reported)"
        margin = self.crit_c - self.value_c
        if margin <= 0:
            return f"{text}, AT OR ABOVE critical {self.crit_c:.0f} °C"
        return f"{text}, {margin:.0f} °C below critical {self.crit_c:.0f} °C"


def temperature_headroom(device: DeviceSample) -> tuple[TemperatureHeadroom, ...]:
    """Every temperature the device reports, with its critical and emergency limits."""
    found = []
    for sensor in SENSORS:
        value = getattr(device, f"{sensor}_c")
        if value is None:
            continue
        found.append(TemperatureHeadroom(sensor, float(value), getattr(device, f"{sensor}_crit_c"),
                                         getattr(device, f"{sensor}_emergency_c")))
    return tuple(found)


def closest_to_limit(device: DeviceSample) -> TemperatureHeadroom | None:
    """The temperature with the least room left before its critical limit, None if no limit."""
    limited = [h for h in temperature_headroom(device) if h.below_crit_c is not None]
    return min(limited, key=lambda h: h.below_crit_c or 0.0) if limited else None


@dataclass(frozen=True)
class DeviceTotals:
    """Several GPUs as one: sums where a sum means something, the worst case otherwise.

    A sum over only some of the devices says so in ``missing`` ("1 of 2 GPUs does not
    report it"); a value no device reports is None.
    """

    device_count: int
    labels: tuple[str, ...]
    vram_used_bytes: int | None
    vram_total_bytes: int | None
    gtt_used_bytes: int | None
    power_w: float | None
    power_cap_w: float | None
    max_temperature_c: float | None
    hottest: str | None  # "ROCm1 junction"
    least_headroom_c: float | None  # fewest degrees below a critical limit, any GPU, any sensor
    closest: str | None  # "ROCm0 junction 78 °C, 32 °C below critical 110 °C"
    throttled: bool
    throttle_reasons: tuple[str, ...]
    missing: Mapping[str, str] = field(default_factory=dict, hash=False)


def _in_use(device: DeviceSample, wanted: Collection[str]) -> bool:
    return device.pci_address in wanted or any(name in wanted for name in device.backend_names)


def _sum(devices: list[DeviceSample], name: str,
         missing: dict[str, str]) -> float | None:
    present = [getattr(d, name) for d in devices if getattr(d, name) is not None]
    if len(present) < len(devices) and present:
        missing[name] = (f"{len(devices) - len(present)} of {len(devices)} GPUs do not "
                         "report it: the total covers the others")
    elif not present and devices:
        missing[name] = "no GPU reports it"
    return float(sum(present)) if present else None


def _whole(value: float | None) -> int | None:
    return None if value is None else int(value)


def aggregate_devices(devices: Iterable[DeviceSample],
                      in_use: Collection[str] | None = None) -> DeviceTotals:
    """Totals over ``devices`` (or only those whose PCI address or llama.cpp name is in
    ``in_use``): VRAM and power summed, the highest temperature, the least headroom."""
    chosen = [d for d in devices if in_use is None or _in_use(d, in_use)]
    missing: dict[str, str] = {}
    readings = [(d, h) for d in chosen for h in temperature_headroom(d)]
    hottest = max(readings, key=lambda item: item[1].value_c, default=None)
    limited = [(d, h) for d, h in readings if h.below_crit_c is not None]
    closest = min(limited, key=lambda item: item[1].below_crit_c or 0.0, default=None)
    reasons = sorted({r for d in chosen for r in (d.throttle_reasons or ())})
    return DeviceTotals(
        device_count=len(chosen),
        labels=tuple(d.label for d in chosen),
        vram_used_bytes=_whole(_sum(chosen, "vram_used_bytes", missing)),
        vram_total_bytes=_whole(_sum(chosen, "vram_total_bytes", missing)),
        gtt_used_bytes=_whole(_sum(chosen, "gtt_used_bytes", missing)),
        power_w=_sum(chosen, "power_w", missing),
        power_cap_w=_sum(chosen, "power_cap_w", missing),
        max_temperature_c=hottest[1].value_c if hottest else None,
        hottest=f"{hottest[0].label} {SENSOR_WORDS[hottest[1].sensor]}" if hottest else None,
        least_headroom_c=closest[1].below_crit_c if closest else None,
        closest=f"{closest[0].label} {closest[1].describe()}" if closest else None,
        throttled=bool(reasons),
        throttle_reasons=tuple(reasons),
        missing=missing,
    )

"""Decoding ``gpu_metrics`` blobs of every revision, and throttle bits in words.

The header's (format, content) revision picks the layout (tables in
``gpu_metrics_layouts``, from the kernel's ``kgd_pp_interface.h``); fields the firmware does
not fill hold all-ones (0xFFFF, 0xFFFFFFFF...) and decode to None. Units differ by family,
as the kernel fills them: v1 dGPU tables carry degrees Celsius and watts; the APU tables
(v2, v3) carry centi-degrees, milliwatts and (v2) centi-percent activity.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from backends.telemetry.gpu_metrics_layouts import LAYOUTS, Layout

RawValue = int | tuple[int | None, ...] | None
_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}

# Vega 20 ThrottlerStatus bits (smu11_driver_if_vega20.h), in gpu_metrics v1_0 on Vega 20.
VEGA20_THROTTLE_BITS = {
    1: "edge temperature", 2: "hotspot temperature", 3: "HBM temperature",
    4: "VR GFX temperature", 5: "VR SOC temperature", 6: "VR MEM0 temperature",
    7: "VR MEM1 temperature", 8: "liquid temperature", 9: "PLX temperature",
    10: "skin temperature", 11: "GFX current (TDC)", 12: "SOC current (TDC)",
    13: "power limit (PPT)", 14: "reliability limit (FIT)", 15: "power limit (PPM)",
}
# ASIC-independent throttler bits (SMU_THROTTLER_*_BIT in amdgpu_smu.h), the
# ``indep_throttle_status`` word of v1_3 and v2_2 and later.
INDEPENDENT_THROTTLE_BITS = {
    0: "power limit (PPT0)", 1: "power limit (PPT1)", 2: "power limit (PPT2)",
    3: "power limit (PPT3)", 4: "sustained power limit (SPL)", 5: "fast power limit (FPPT)",
    6: "slow power limit (SPPT)", 7: "APU slow power limit (SPPT)",
    16: "GFX current (TDC)", 17: "SOC current (TDC)", 18: "memory current (TDC)",
    19: "VDD current (TDC)", 20: "CVIP current (TDC)", 21: "CPU current (EDC)",
    22: "GFX current (EDC)", 23: "APCC", 32: "GPU temperature", 33: "CPU core temperature",
    34: "memory temperature", 35: "edge temperature", 36: "hotspot temperature",
    37: "SOC temperature", 38: "VR GFX temperature", 39: "VR SOC temperature",
    40: "VR MEM0 temperature", 41: "VR MEM1 temperature", 42: "liquid 0 temperature",
    43: "liquid 1 temperature", 44: "VR hot 0", 45: "VR hot 1", 46: "CPU PROCHOT",
    47: "GFX PROCHOT", 56: "power limit (PPM)", 57: "reliability limit (FIT)",
}

# Normalised value -> (raw field names tried in order, divisor), per revision family.
Normalisation = dict[str, tuple[tuple[str, ...], int]]
_V1: Normalisation = {"edge_c": (("temperature_edge",), 1), "hotspot_c": (("temperature_hotspot",), 1),
       "mem_c": (("temperature_mem",), 1), "gfx_activity_pct": (("average_gfx_activity",), 1),
       "umc_activity_pct": (("average_umc_activity",), 1),
       "socket_power_w": (("average_socket_power", "curr_socket_power"), 1),
       "gfxclk_mhz": (("current_gfxclk",), 1), "uclk_mhz": (("current_uclk",), 1),
       "fan_rpm": (("current_fan_speed",), 1)}
_V2: Normalisation = {"edge_c": (("temperature_gfx",), 100), "gfx_activity_pct": (("average_gfx_activity",), 100),
       "socket_power_w": (("average_socket_power",), 1000),
       "gfxclk_mhz": (("current_gfxclk",), 1), "uclk_mhz": (("current_uclk",), 1)}
_V3: Normalisation = {"edge_c": (("temperature_gfx",), 100), "gfx_activity_pct": (("average_gfx_activity",), 1),
       "socket_power_w": (("average_socket_power",), 1000),
       "gfxclk_mhz": (("average_gfxclk_frequency",), 1),
       "uclk_mhz": (("average_uclk_frequency",), 1)}
_FAMILY: dict[int, Normalisation] = {1: _V1, 2: _V2, 3: _V3}


class UnsupportedMetrics(ValueError):
    """A blob this decoder cannot read; the message is one line for the user."""


@dataclass(frozen=True)
class GpuMetrics:
    """A decoded blob: the revision, every raw field, and the values llamaduel uses."""

    structure_size: int
    format_revision: int
    content_revision: int
    raw: Mapping[str, RawValue] = field(hash=False)
    edge_c: float | None = None
    hotspot_c: float | None = None
    mem_c: float | None = None
    gfx_activity_pct: float | None = None
    umc_activity_pct: float | None = None
    socket_power_w: float | None = None
    gfxclk_mhz: float | None = None
    uclk_mhz: float | None = None
    fan_rpm: float | None = None

    @property
    def revision(self) -> str:
        return f"v{self.format_revision}.{self.content_revision}"

    def value(self, name: str) -> int | None:
        """A scalar raw field, None when absent from this revision or not filled."""
        value = self.raw.get(name)
        return value if isinstance(value, int) else None


_Compiled = tuple[tuple[str, struct.Struct, int, int], ...]
_COMPILED: dict[int, _Compiled] = {}


def _compiled(layout: Layout) -> _Compiled:
    """(name, unpacker, count, unfilled value) per field, built once per layout."""
    key = id(layout)
    if key not in _COMPILED:
        _COMPILED[key] = tuple(
            (spec.name, struct.Struct("<" + _FORMATS[spec.size] * spec.count), spec.count,
             (1 << (8 * spec.size)) - 1) for spec in layout.fields)
    return _COMPILED[key]


def _read_fields(blob: bytes, layout: Layout) -> dict[str, RawValue]:
    raw: dict[str, RawValue] = {}
    for (name, unpacker, count, unfilled), spec in zip(_compiled(layout), layout.fields):
        values = unpacker.unpack_from(blob, spec.offset)
        if count == 1:
            raw[name] = None if values[0] == unfilled else values[0]
        else:
            raw[name] = tuple(None if v == unfilled else v for v in values)
    return raw


def _pick_layout(size: int, major: int, minor: int, length: int) -> Layout:
    layouts = LAYOUTS.get((major, minor))
    name = f"gpu_metrics format v{major}.{minor}"
    if layouts is None:
        raise UnsupportedMetrics(f"{name} is not decoded (no fixed layout known)")
    if length < size:
        raise UnsupportedMetrics(f"{name} is cut short: {length} of {size} bytes")
    for layout in layouts:
        if layout.size == size:
            return layout
    sizes = ", ".join(str(layout.size) for layout in layouts)
    raise UnsupportedMetrics(f"{name} says {size} bytes; the known layouts have {sizes}")


def _normalised(major: int, raw: Mapping[str, RawValue]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, (names, divisor) in _FAMILY[major].items():
        for name in names:
            value = raw.get(name)
            if isinstance(value, tuple):  # per-instance clocks: the fastest instance
                present = [v for v in value if v is not None]
                value = max(present) if present else None
            if value is not None:
                out[key] = value / divisor
                break
        else:
            out[key] = None
    return out


def decode_gpu_metrics(blob: bytes) -> GpuMetrics:
    """Decode any fixed-layout revision; raise UnsupportedMetrics (one line) otherwise."""
    if len(blob) < 4:
        raise UnsupportedMetrics(f"gpu_metrics is {len(blob)} bytes, too short for a header")
    size, major, minor = struct.unpack_from("<HBB", blob)
    layout = _pick_layout(size, major, minor, len(blob))
    raw = _read_fields(blob, layout)
    return GpuMetrics(structure_size=size, format_revision=major, content_revision=minor,
                      raw=raw, **_normalised(major, raw))


def decode_bits(status: int, words: Mapping[int, str], unknown: str) -> tuple[str, ...]:
    """Set bits as words, lowest first; bits without a word are named by number."""
    return tuple(words.get(bit, f"{unknown} {bit}") for bit in range(64) if status >> bit & 1)


def decode_vega20_throttle(status: int) -> tuple[str, ...]:
    return decode_bits(status, VEGA20_THROTTLE_BITS, "throttle bit")


def throttle_reasons(metrics: GpuMetrics, vega20: bool) -> tuple[tuple[str, ...] | None, str]:
    """(words, why None): () means not throttling; None comes with the reason."""
    indep = metrics.value("indep_throttle_status")
    if indep is not None:
        return decode_bits(indep, INDEPENDENT_THROTTLE_BITS, "throttle bit"), ""
    status = metrics.value("throttle_status")
    if "throttle_status" not in metrics.raw:
        return None, (f"gpu_metrics {metrics.revision} reports throttle residency counters, "
                      "not a throttle status")
    if status is None:
        return None, "firmware does not fill throttle_status"
    if vega20 and metrics.format_revision == 1 and metrics.content_revision <= 2:
        return decode_vega20_throttle(status), ""
    if status == 0:
        return (), ""
    return None, (f"throttle_status 0x{status:08x} ({metrics.revision}) uses this chip's own "
                  "bit layout, which llamaduel does not decode")

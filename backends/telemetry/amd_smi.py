"""AMD GPUs through AMD SMI: the ``amdsmi`` Python library, else the ``amd-smi`` command.

Used for what sysfs lacks, merged under it by PCI address: temperature limits where hwmon
has none (amd-smi's "slowdown" limit is the critical one, "shutdown" the emergency one),
and the readings of cards whose sysfs cannot be read here. The command takes hundreds of
milliseconds, so ``amd-smi metric --json`` runs at most every ``refresh_s`` seconds and only
while something is still missing; ``amd-smi static --json`` (names, limits, PCI addresses)
runs once. JSON shapes differ by version: a bare list or ``{"gpu_data": [...]}``, values as
``{"value": 45, "unit": "C"}`` or plain numbers, ``"N/A"`` for what a card does not report.
The library calls follow the amdsmi Python API (``amdsmi_get_temp_metric``,
``amdsmi_get_power_info`` ...); values it marks unsupported (UINT32_MAX, "N/A") are None.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType

from backends.json_types import JsonValue
from backends.telemetry.model import DeviceSample, DeviceSource, device_sample
from backends.telemetry.smi_common import (
    ToolFailure,
    can_help,
    find_tool,
    first_present,
    load_json,
    mib_to_bytes,
    number,
    path,
    run_tool,
)
from backends.telemetry.sysfs_read import PCI_ADDRESS, normalize_pci

SOURCE_NAME = "amd-smi"
UNSUPPORTED = 0xFFFFFFFF
Values = dict[str, float | int | tuple[str, ...] | None]

_TEMPERATURES = {"edge_c": ("edge",), "junction_c": ("hotspot", "junction"),
                 "mem_c": ("mem", "vram")}
_LIMITS = {"edge_crit_c": "slowdown_edge_temperature",
           "junction_crit_c": "slowdown_hotspot_temperature",
           "mem_crit_c": "slowdown_vram_temperature",
           "edge_emergency_c": "shutdown_edge_temperature",
           "junction_emergency_c": "shutdown_hotspot_temperature",
           "mem_emergency_c": "shutdown_vram_temperature"}


@dataclass(frozen=True)
class StaticInfo:
    """What ``amd-smi static`` says of one GPU: its PCI address, name and limits."""

    pci_address: str | None = None
    name: str | None = None
    limits: Mapping[str, float] = field(default_factory=dict)


def _gpu_list(data: JsonValue) -> list[dict[str, JsonValue]]:
    items = data.get("gpu_data") if isinstance(data, dict) else data
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _bdf(item: Mapping[str, JsonValue]) -> str | None:
    value = item.get("bdf") or path(item, "bus", "bdf")
    return normalize_pci(value) if isinstance(value, str) and PCI_ADDRESS.match(value) else None


def parse_amd_smi_static(text: str) -> dict[int, StaticInfo]:
    """GPU index -> StaticInfo, from ``amd-smi static --json`` (or ``amd-smi list --json``)."""
    found: dict[int, StaticInfo] = {}
    for item in _gpu_list(load_json(text, "amd-smi")):
        index = number(item.get("gpu"))
        if index is None:
            continue
        limit = item.get("limit") if isinstance(item.get("limit"), dict) else {}
        assert isinstance(limit, dict)
        limits = {key: value for key, name in _LIMITS.items()
                  if (value := number(limit.get(name))) is not None}
        cap = number(first_present(limit, "socket_power", "power")) or number(
            path(limit, "ppt0", "socket_power_limit"))
        if cap is not None:
            limits["power_cap_w"] = cap
        name = path(item, "asic", "market_name")
        found[int(index)] = StaticInfo(_bdf(item), name if isinstance(name, str) else None,
                                       limits)
    return found


def _throttle(value: JsonValue) -> tuple[str, ...] | None:
    if not isinstance(value, str):
        return None
    word = value.strip().upper()
    if word == "UNTHROTTLED":
        return ()
    return ("throttled (amd-smi names no reason)",) if word == "THROTTLED" else None


def _metric_values(item: Mapping[str, JsonValue]) -> Values:
    temperature = item.get("temperature") if isinstance(item.get("temperature"), dict) else {}
    assert isinstance(temperature, dict)
    values: Values = {key: number(first_present(temperature, *names))
                      for key, names in _TEMPERATURES.items()}
    power = item.get("power") if isinstance(item.get("power"), dict) else {}
    assert isinstance(power, dict)
    values["power_w"] = number(first_present(power, "socket_power", "average_socket_power",
                                             "current_socket_power"))
    values["throttle_reasons"] = _throttle(power.get("throttle_status"))
    values["gpu_busy_percent"] = number(path(item, "usage", "gfx_activity"))
    values["mem_busy_percent"] = number(path(item, "usage", "umc_activity"))
    values["vram_total_bytes"] = mib_to_bytes(path(item, "mem_usage", "total_vram"))
    values["vram_used_bytes"] = mib_to_bytes(path(item, "mem_usage", "used_vram"))
    values["gtt_total_bytes"] = mib_to_bytes(path(item, "mem_usage", "total_gtt"))
    values["gtt_used_bytes"] = mib_to_bytes(path(item, "mem_usage", "used_gtt"))
    values["sclk_mhz"] = number(path(item, "clock", "gfx_0", "clk"))
    values["mclk_mhz"] = number(path(item, "clock", "mem_0", "clk"))
    return values


def _sample(at: float, index: int, info: StaticInfo | None, values: Values) -> DeviceSample:
    info = info or StaticInfo()
    merged: Values = dict(values)
    for key, limit in info.limits.items():  # static limits fill what the reading lacks
        if merged.get(key) is None:
            merged[key] = limit
    missing = {key: "amd-smi did not report it" for key, value in merged.items()
               if value is None}
    present = {key: value for key, value in merged.items() if value is not None}
    pci = info.pci_address or f"amd-smi:gpu{index}"
    if info.pci_address is None:
        missing["pci_address"] = "amd-smi gave no PCI address: cannot join it to other sources"
    return device_sample(at=at, pci_address=pci, name=info.name or f"AMD GPU {index}",
                         source=SOURCE_NAME, values=present, missing=missing)


def parse_amd_smi_metric(text: str, static: Mapping[int, StaticInfo] | None = None,
                         at: float = 0.0) -> list[DeviceSample]:
    """One DeviceSample per GPU of ``amd-smi metric --json``; ToolFailure if unreadable."""
    samples = []
    for item in _gpu_list(load_json(text, "amd-smi")):
        index = number(item.get("gpu"))
        if index is None:
            continue
        info = (static or {}).get(int(index))
        bdf = _bdf(item)
        if bdf and (info is None or info.pci_address is None):
            info = StaticInfo(bdf, info.name if info else None, info.limits if info else {})
        samples.append(_sample(at, int(index), info, _metric_values(item)))
    return samples


class _Cli:
    def __init__(self, executable: str, timeout_s: float) -> None:
        self.executable = executable
        self.timeout_s = timeout_s
        self.static: dict[int, StaticInfo] | None = None

    def sample(self, at: float) -> list[DeviceSample]:
        if self.static is None:
            self.static = parse_amd_smi_static(
                run_tool([self.executable, "static", "--json"], self.timeout_s))
        text = run_tool([self.executable, "metric", "--json"], self.timeout_s)
        return parse_amd_smi_metric(text, self.static, at)


def _library_value(call: object, *args: object) -> float | None:
    try:
        value = call(*args)  # type: ignore[operator]
    except Exception:
        return None
    amount = number(value) if not isinstance(value, dict) else None
    return None if amount is None or amount >= UNSUPPORTED else amount


class _Library:
    """The ``amdsmi`` module, initialised once; every call wrapped (unsupported -> None)."""

    def __init__(self, module: ModuleType) -> None:
        self.amdsmi = module
        module.amdsmi_init()
        self.handles = list(module.amdsmi_get_processor_handles())

    def _one(self, handle: object, at: float, index: int) -> DeviceSample:
        lib = self.amdsmi
        kinds, metric = lib.AmdSmiTemperatureType, lib.AmdSmiTemperatureMetric
        values: Values = {}
        for prefix, kind in (("edge", "EDGE"), ("junction", "HOTSPOT"), ("mem", "VRAM")):
            for suffix, which in (("c", "CURRENT"), ("crit_c", "CRITICAL"),
                                  ("emergency_c", "EMERGENCY")):
                values[f"{prefix}_{suffix}"] = _library_value(
                    lib.amdsmi_get_temp_metric, handle, getattr(kinds, kind),
                    getattr(metric, which))
        try:
            power = lib.amdsmi_get_power_info(handle)
            activity = lib.amdsmi_get_gpu_activity(handle)
        except Exception:
            power, activity = {}, {}
        values["power_w"] = next((p for k in ("socket_power", "current_socket_power",
                                              "average_socket_power")
                                  if (p := number(power.get(k))) is not None
                                  and p < UNSUPPORTED), None)
        values["gpu_busy_percent"] = number(activity.get("gfx_activity"))
        values["mem_busy_percent"] = number(activity.get("umc_activity"))
        bdf = None
        with contextlib.suppress(Exception):  # no address: it stays unjoinable
            bdf = normalize_pci(str(lib.amdsmi_get_gpu_device_bdf(handle)))
        return _sample(at, index, StaticInfo(bdf, None, {}), values)

    def sample(self, at: float) -> list[DeviceSample]:
        return [self._one(handle, at, i) for i, handle in enumerate(self.handles)]

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing must never fail the caller
            self.amdsmi.amdsmi_shut_down()


class AmdSmiSource(DeviceSource):
    """The amdsmi library where it imports and starts, else the amd-smi command on PATH."""

    name = SOURCE_NAME
    fills_gaps = True

    def __init__(self, executable: str | None = None, refresh_s: float = 5.0,
                 timeout_s: float = 10.0, use_library: bool = True) -> None:
        self.refresh_s = refresh_s
        self.unavailable_reason: str | None = None
        self.backend: _Library | _Cli | None = None
        library_reason = "the amdsmi Python library is not installed"
        if use_library:
            try:
                self.backend = _Library(importlib.import_module("amdsmi"))
            except ImportError:
                pass
            except Exception as error:
                library_reason = f"the amdsmi library could not start: {error}"
        executable = executable or find_tool("amd-smi")
        if self.backend is None and executable:
            self.backend = _Cli(executable, timeout_s)
        if self.backend is None:
            self.unavailable_reason = f"{library_reason}, and amd-smi is not on PATH"
        self._last: list[DeviceSample] = []
        self._answered = False
        self._read_at = float("-inf")

    @property
    def available(self) -> bool:
        return self.backend is not None

    @property
    def pci_addresses(self) -> tuple[str, ...]:
        return tuple(d.pci_address for d in self._last)

    def sample(self, pids: Sequence[int] = (), at: float = 0.0,
               wanted: Mapping[str, Collection[str]] | None = None) -> list[DeviceSample]:
        if self.backend is None:
            return []
        now = time.monotonic()
        due = isinstance(self.backend, _Library) or now - self._read_at >= self.refresh_s
        if due and can_help(self._last if self._answered else None, wanted):
            self._read_at = now
            try:
                self._last = self.backend.sample(at)
                self._answered = True
            except ToolFailure:
                self._last = []
                raise
        return self._last

    def close(self) -> None:
        if isinstance(self.backend, _Library):
            self.backend.close()
        self._last = []

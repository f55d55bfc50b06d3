"""NVIDIA GPUs through NVML (the nvidia-ml-py package, imported as ``pynvml``).

Most NVML calls take a few microseconds; the slow or constant ones (name, PCI id, power
limit, memory temperature support) are read once and cached.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from types import ModuleType
from typing import Any, TypeVar

from backends.telemetry.model import DeviceSample, DeviceSource, device_sample
from backends.telemetry.sysfs_read import normalize_pci

SOURCE_NAME = "nvml"
POWER_LIMIT_REFRESH_S = 30.0  # the enforced limit changes only when an admin sets it

# nvmlClocksEventReasons bits; 0x1 (GPU idle) is not throttling and is left out.
CLOCK_EVENT_WORDS = {
    0x2: "application clocks",
    0x4: "power cap",
    0x8: "hardware slowdown",
    0x10: "sync boost",
    0x20: "thermal (software)",
    0x40: "thermal (hardware)",
    0x80: "power brake",
    0x100: "display clocks",
}
GPU_IDLE = 0x1


def decode_clock_event_reasons(mask: int) -> tuple[str, ...]:
    """Words for the reasons clocks are held down; idle alone gives ()."""
    words = [word for bit, word in CLOCK_EVENT_WORDS.items() if mask & bit]
    known = GPU_IDLE | sum(CLOCK_EVENT_WORDS)
    unknown = mask & ~known
    for bit in range(64):
        if unknown & (1 << bit):
            words.append(f"clock event bit {bit}")
    return tuple(words)


R = TypeVar("R")


def _init_failure_reason(pynvml: ModuleType, error: Exception) -> str:
    def is_(name: str) -> bool:
        cls = getattr(pynvml, name, None)
        return isinstance(cls, type) and isinstance(error, cls)

    if is_("NVMLError_LibraryNotFound"):
        return "NVML library not found: no NVIDIA driver installed"
    if is_("NVMLError_DriverNotLoaded"):
        return "the NVIDIA driver is not loaded"
    if is_("NVMLError_NoPermission"):
        return "no permission to use NVML"
    return f"NVML could not start: {error}"


class _Device:
    def __init__(self, pynvml: ModuleType, index: int) -> None:
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(self.handle)
        self.name = name.decode() if isinstance(name, bytes) else str(name)
        pci = pynvml.nvmlDeviceGetPciInfo(self.handle)
        bus_id = pci.busId.decode() if isinstance(pci.busId, bytes) else str(pci.busId)
        self.pci_address = normalize_pci(bus_id)
        self.power_limit_w: float | None = None
        self.power_limit_reason: str | None = None
        self.power_limit_read_at = -POWER_LIMIT_REFRESH_S
        self.mem_temp_supported = True


class NvmlSource(DeviceSource):
    name = SOURCE_NAME

    def __init__(self) -> None:
        self.unavailable_reason: str | None = None
        self.devices: list[_Device] = []
        self._nvml: Any = None
        try:
            pynvml = importlib.import_module("pynvml")
        except ImportError:
            self.unavailable_reason = "nvidia-ml-py is not installed"
            return
        try:
            pynvml.nvmlInit()
        except Exception as error:
            self.unavailable_reason = _init_failure_reason(pynvml, error)
            return
        self._nvml = pynvml
        try:
            count = pynvml.nvmlDeviceGetCount()
            self.devices = [_Device(pynvml, i) for i in range(count)]
        except Exception as error:
            self.unavailable_reason = f"NVML could not list GPUs: {error}"
            self.close()
            return
        if not self.devices:
            self.unavailable_reason = "NVML sees no NVIDIA GPU"
            self.close()

    @property
    def available(self) -> bool:
        return bool(self.devices)

    def sample(self, pids: Sequence[int] = (), at: float = 0.0,
               wanted: Mapping[str, Collection[str]] | None = None) -> list[DeviceSample]:
        return [self._sample_device(device, pids, at) for device in self.devices]

    def _call(self, missing: dict[str, str], fields: tuple[str, ...], fn: Callable[..., R], *args: object) -> R | None:
        try:
            return fn(*args)
        except Exception as error:
            for field_name in fields:
                missing[field_name] = f"NVML {fn.__name__} failed: {error}"
            return None

    def _sample_device(self, device: _Device, pids: Sequence[int], at: float) -> DeviceSample:
        nv = self._nvml
        handle = device.handle
        missing: dict[str, str] = {
            "gtt_used_bytes": "GTT is an AMD notion",
            "junction_c": "NVML does not report a hotspot temperature",
        }
        values: dict[str, float | int | tuple[str, ...] | None] = {}

        memory = self._call(missing, ("vram_used_bytes", "vram_total_bytes"),
                            nv.nvmlDeviceGetMemoryInfo, handle)
        if memory is not None:
            values["vram_used_bytes"] = int(memory.used)
            values["vram_total_bytes"] = int(memory.total)
        temp = self._call(missing, ("edge_c",), nv.nvmlDeviceGetTemperature, handle,
                          nv.NVML_TEMPERATURE_GPU)
        if temp is not None:
            values["edge_c"] = float(temp)
        values["mem_c"] = self._memory_temperature(device, missing)
        power = self._call(missing, ("power_w",), nv.nvmlDeviceGetPowerUsage, handle)
        if power is not None:
            values["power_w"] = power / 1000.0
        values["power_cap_w"] = self._power_limit(device, missing)
        utilisation = self._call(missing, ("gpu_busy_percent", "mem_busy_percent"),
                                 nv.nvmlDeviceGetUtilizationRates, handle)
        if utilisation is not None:
            values["gpu_busy_percent"] = float(utilisation.gpu)
            values["mem_busy_percent"] = float(utilisation.memory)
        sclk = self._call(missing, ("sclk_mhz",), nv.nvmlDeviceGetClockInfo, handle,
                          nv.NVML_CLOCK_SM)
        if sclk is not None:
            values["sclk_mhz"] = float(sclk)
        mclk = self._call(missing, ("mclk_mhz",), nv.nvmlDeviceGetClockInfo, handle,
                          nv.NVML_CLOCK_MEM)
        if mclk is not None:
            values["mclk_mhz"] = float(mclk)
        reasons_fn = (getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)
                      or nv.nvmlDeviceGetCurrentClocksThrottleReasons)
        mask = self._call(missing, ("throttle_reasons",), reasons_fn, handle)
        if mask is not None:
            values["throttle_reasons"] = decode_clock_event_reasons(int(mask))
        if pids:
            values["process_vram_bytes"] = self._process_memory(handle, pids, missing)
        else:
            missing["process_vram_bytes"] = "no benchmark process watched"
        for key, value in values.items():
            if value is not None:
                missing.pop(key, None)
        return device_sample(at=at, pci_address=device.pci_address, name=device.name,
                             source=SOURCE_NAME, values=values, missing=missing)

    def _memory_temperature(self, device: _Device, missing: dict[str, str]) -> float | None:
        nv = self._nvml
        field_id = getattr(nv, "NVML_FI_DEV_MEMORY_TEMP", None)
        if not device.mem_temp_supported or field_id is None:
            missing["mem_c"] = "this GPU does not report a memory temperature"
            return None
        try:
            (value,) = nv.nvmlDeviceGetFieldValues(device.handle, [field_id])
            if value.nvmlReturn != 0:
                raise RuntimeError(f"return code {value.nvmlReturn}")
            number = value.value.uiVal if value.valueType != 0 else value.value.dVal
            number = float(number)
            if not 0 < number < 200:  # 0 means "not measured" on GPUs without the sensor
                raise RuntimeError(f"out of range ({number})")
            return number
        except Exception:
            device.mem_temp_supported = False  # do not pay for a failing call every tick
            missing["mem_c"] = "this GPU does not report a memory temperature"
            return None

    def _power_limit(self, device: _Device, missing: dict[str, str]) -> float | None:
        now = time.monotonic()
        if now - device.power_limit_read_at >= POWER_LIMIT_REFRESH_S:
            device.power_limit_read_at = now
            try:
                device.power_limit_w = self._nvml.nvmlDeviceGetEnforcedPowerLimit(device.handle) / 1000.0
                device.power_limit_reason = None
            except Exception as error:
                device.power_limit_w = None
                device.power_limit_reason = f"NVML nvmlDeviceGetEnforcedPowerLimit failed: {error}"
        if device.power_limit_w is None:
            missing["power_cap_w"] = device.power_limit_reason or "power limit unknown"
        return device.power_limit_w

    def _process_memory(self, handle: object, pids: Sequence[int], missing: dict[str, str]) -> int | None:
        nv = self._nvml
        wanted = set(pids)
        found: dict[int, int | None] = {}
        listed = 0
        for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            fn = getattr(nv, name, None)
            if fn is None:
                continue
            try:
                processes = fn(handle)
            except Exception as error:
                missing["process_vram_bytes"] = f"NVML {name} failed: {error}"
                return None
            listed += len(processes)
            for process in processes:
                if process.pid in wanted:
                    used = process.usedGpuMemory
                    found[process.pid] = None if used is None else int(used)
        if not found:
            missing["process_vram_bytes"] = (
                "no watched process in NVML's process list"
                + (" (another PID namespace?)" if listed else ""))
            return None
        if any(v is None for v in found.values()):
            missing["process_vram_bytes"] = "NVML does not report per-process memory here"
            return None
        return sum(v for v in found.values() if v is not None)

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):  # closing must never fail the caller
                self._nvml.nvmlShutdown()
            self._nvml = None
        self.devices = []

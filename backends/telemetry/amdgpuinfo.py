"""AMD GPUs through pyamdgpuinfo (libdrm ioctls): a thin adapter.

It gives VRAM/GTT use, clocks, edge temperature, load and whole-watt power, but not the
junction and memory temperatures, so ``Telemetry`` merges it under the sysfs source by
PCI address and asks it only for what sysfs could not give. pyamdgpuinfo has no locks:
each GPUInfo is used by one thread at a time (``Telemetry`` serialises every sample).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Collection, Mapping, Sequence

from backends.telemetry.model import DeviceSample, DeviceSource, device_sample
from backends.telemetry.sysfs_read import normalize_pci

SOURCE_NAME = "pyamdgpuinfo"

# DeviceSample field -> (GPUInfo method, conversion).
_QUERIES: dict[str, tuple[str, Callable[[float], float]]] = {
    "vram_used_bytes": ("query_vram_usage", int),
    "gtt_used_bytes": ("query_gtt_usage", int),
    "sclk_mhz": ("query_sclk", lambda hz: hz / 1_000_000.0),
    "mclk_mhz": ("query_mclk", lambda hz: hz / 1_000_000.0),
    "edge_c": ("query_temperature", float),
    "gpu_busy_percent": ("query_load", lambda load: round(load * 100.0, 1)),
    "power_w": ("query_power", float),  # whole watts
}
# Fields pyamdgpuinfo cannot give at all.
_NOT_PROVIDED = {
    "junction_c": "pyamdgpuinfo reads the edge sensor only",
    "mem_c": "pyamdgpuinfo reads the edge sensor only",
    "power_cap_w": "pyamdgpuinfo does not report the power cap",
    "mem_busy_percent": "pyamdgpuinfo does not report memory busy",
    "throttle_reasons": "pyamdgpuinfo does not report throttling",
    "process_vram_bytes": "pyamdgpuinfo does not report per-process VRAM",
}


def _unavailable_reason_for_detect_error(error: BaseException, dev_root: str) -> str:
    if isinstance(error, FileNotFoundError):
        return f"no {os.path.join(dev_root, 'dev/dri')}: no AMD GPU driver loaded"
    if isinstance(error, PermissionError):
        return f"no access to {error.filename or '/dev/dri'}: add the user to the render group"
    if isinstance(error, OSError):
        return f"libdrm could not start: {error}"
    return f"pyamdgpuinfo failed: {error}"


def _reason_for_no_gpus(dev_root: str) -> str:
    """detect_gpus() found none: say whether the render nodes exist but cannot be opened."""
    dri = os.path.join(dev_root, "dev/dri")
    try:
        nodes = sorted(n for n in os.listdir(dri) if n.startswith("renderD"))
    except FileNotFoundError:
        return f"no {dri}: no AMD GPU driver loaded"
    except OSError as error:
        return f"cannot list {dri}: {error.strerror or error}"
    if not nodes:
        return f"no render nodes in {dri}: no GPU driver with render support loaded"
    for node in nodes:
        path = os.path.join(dri, node)
        if not os.access(path, os.R_OK | os.W_OK):
            return f"no access to {path}: add the user to the render group"
    return f"no AMD GPU among the render nodes in {dri}"


class PyAmdgpuinfoSource(DeviceSource):
    """One GPUInfo per AMD GPU libdrm can open, created once and kept for the whole run."""

    name = SOURCE_NAME
    fills_gaps = True

    def __init__(self) -> None:
        dev_root = "/"  # libdrm always opens the real /dev/dri
        self.unavailable_reason: str | None = None
        self.gpus: list[object] = []  # pyamdgpuinfo's GPUInfo objects, queried by method name
        self._pci: list[str] = []
        self._names: list[str] = []
        try:
            module = importlib.import_module("pyamdgpuinfo")
        except ImportError:
            self.unavailable_reason = "pyamdgpuinfo is not installed"
            return
        try:
            count = module.detect_gpus()
        except Exception as error:
            self.unavailable_reason = _unavailable_reason_for_detect_error(error, dev_root)
            return
        if not count:
            self.unavailable_reason = _reason_for_no_gpus(dev_root)
            return
        for index in range(count):
            try:
                gpu = module.get_gpu(index)
            except Exception as error:
                self.unavailable_reason = f"pyamdgpuinfo could not open GPU {index}: {error}"
                continue
            self.gpus.append(gpu)
            slot = getattr(gpu, "pci_slot", None)
            self._pci.append(normalize_pci(slot) if slot else f"pyamdgpuinfo:{index}")
            self._names.append(getattr(gpu, "name", None) or f"AMD GPU {index}")
        if self.gpus:
            self.unavailable_reason = None

    @property
    def available(self) -> bool:
        return bool(self.gpus)

    @property
    def pci_addresses(self) -> tuple[str, ...]:
        return tuple(self._pci)

    def sample(self, pids: Sequence[int] = (), at: float = 0.0,
               wanted: Mapping[str, Collection[str]] | None = None) -> list[DeviceSample]:
        """Query each GPU; with ``wanted`` (PCI -> field names), query only those fields."""
        samples = []
        for gpu, pci, name in zip(self.gpus, self._pci, self._names):
            fields = _QUERIES.keys() if wanted is None else wanted.get(pci, _QUERIES.keys())
            values: dict[str, float | int | tuple[str, ...] | None] = {}
            missing = dict(_NOT_PROVIDED)
            for field_name in fields:
                if field_name not in _QUERIES:
                    continue
                method, convert = _QUERIES[field_name]
                try:
                    values[field_name] = convert(getattr(gpu, method)())
                except Exception as error:
                    missing[field_name] = f"pyamdgpuinfo {method}() failed: {error}"
            memory = getattr(gpu, "memory_info", None) or {}
            if memory.get("vram_size"):
                values["vram_total_bytes"] = int(memory["vram_size"])
            samples.append(device_sample(at=at, pci_address=pci, name=name, source=SOURCE_NAME,
                                         values=values, missing=missing))
        return samples

    def close(self) -> None:
        self.gpus.clear()

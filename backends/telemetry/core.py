"""``Telemetry``: picks the sources that work here, merges them by PCI address, streams ticks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import math
import re
import threading
import time
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

from backends.telemetry.host import HostSampler
from backends.telemetry.model import (
    DEVICE_MEASUREMENTS,
    DeviceSample,
    DeviceSource,
    TelemetrySnapshot,
)
from backends.telemetry.sysfs_read import PCI_ADDRESS, normalize_pci

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.telemetry.energy import EnergySource

# On an AMD machine: the driver's sysfs files first (cheap, complete on an MI50), then
# libdrm, then AMD SMI and rocm-smi, which are asked only for what is still missing.
SOURCE_ORDER = ("amdgpu-sysfs", "pyamdgpuinfo", "amd-smi", "rocm-smi", "nvml", "host")
HARDWARE_LIBRARY_SOURCES = ("pyamdgpuinfo", "amd-smi", "rocm-smi", "nvml")
MIN_INTERVAL_S = 0.05
MAX_INTERVAL_S = 10.0
DEFAULT_INTERVAL_S = 0.5


class TelemetryError(ValueError):
    """Bad telemetry input (interval, source name); the message is one line for the user."""


def _make_source(name: str, sysfs_root: str, proc_root: str) -> DeviceSource | HostSampler:
    if name == "amdgpu-sysfs":
        from backends.telemetry.sysfs import AmdSysfsSource

        return AmdSysfsSource(sysfs_root, proc_root)
    if name == "pyamdgpuinfo":
        from backends.telemetry.amdgpuinfo import PyAmdgpuinfoSource

        return PyAmdgpuinfoSource()
    if name == "amd-smi":
        from backends.telemetry.amd_smi import AmdSmiSource

        return AmdSmiSource()
    if name == "rocm-smi":
        from backends.telemetry.rocm_smi import RocmSmiSource

        return RocmSmiSource()
    if name == "nvml":
        from backends.telemetry.nvml import NvmlSource

        return NvmlSource()
    if name == "host":
        from backends.telemetry.host import HostSampler

        return HostSampler(proc_root)
    raise TelemetryError(f"unknown telemetry source {name!r}; choose from {', '.join(SOURCE_ORDER)}")


def merge_device_samples(first: DeviceSample, second: DeviceSample) -> DeviceSample:
    """``first`` with its None values filled from ``second`` (same PCI address)."""
    updates: dict[str, Any] = {}
    missing = dict(first.missing)
    for name in DEVICE_MEASUREMENTS:
        if getattr(first, name) is None and getattr(second, name) is not None:
            updates[name] = getattr(second, name)
            missing.pop(name, None)
    if not updates:
        return first
    source = first.source if second.source in first.source else f"{first.source}+{second.source}"
    return dataclasses.replace(first, missing=missing, source=source, **updates)


_BACKEND_NAME = re.compile(r"^(?P<kind>[A-Za-z_]+?)(?P<index>\d+)$")


def match_backend_names(devices: Sequence[DeviceSample],
                        device_names: Mapping[str, str] | None) -> dict[str, tuple[str, ...]]:
    """PCI address -> llama.cpp device names (``ROCm0``, ``Vulkan0``...) for these devices.

    ``device_names`` maps a llama.cpp device name to either a PCI address (exact) or its
    ``--list-devices`` description, which is matched when it contains the GPU's name (or the
    other way round), ignoring case. Several identical GPUs are paired in order: the k-th
    ``Vulkan`` device with that description goes to the k-th such GPU by PCI address.
    """
    result: dict[str, list[str]] = {}
    if not device_names:
        return {}
    by_pci = {d.pci_address: d for d in devices}
    ordered = sorted(devices, key=lambda d: d.pci_address)

    def index_key(item: tuple[str, str]) -> tuple[str, int, str]:
        match = _BACKEND_NAME.match(item[0])
        return (match.group("kind"), int(match.group("index")), item[0]) if match else (item[0], 0, "")

    taken: dict[tuple[str, str], int] = {}
    for backend_name, value in sorted(device_names.items(), key=index_key):
        value = (value or "").strip()
        if PCI_ADDRESS.match(value):
            pci = normalize_pci(value)
            if pci in by_pci:
                result.setdefault(pci, []).append(backend_name)
            continue
        text = value.casefold()
        candidates = [d for d in ordered
                      if d.name and (d.name.casefold() in text or (text and text in d.name.casefold()))]
        if not candidates:
            continue
        kind = index_key((backend_name, value))[0]
        slot = taken.get((kind, candidates[0].name), 0)
        taken[(kind, candidates[0].name)] = slot + 1
        chosen = candidates[min(slot, len(candidates) - 1)]
        result.setdefault(chosen.pci_address, []).append(backend_name)
    return {pci: tuple(names) for pci, names in result.items()}


def device_names_from_builds(builds: Iterable[BuildInfo]) -> dict[str, str]:
    """llama.cpp device name -> description, from probed builds (objects with ``.devices``
    whose items have ``.name`` and ``.description``)."""
    names: dict[str, str] = {}
    for build in builds:
        for device in getattr(build, "devices", ()) or ():
            name, description = getattr(device, "name", None), getattr(device, "description", None)
            if name and description:
                names.setdefault(name, description)
    return names


class Telemetry:
    """All the telemetry this machine offers, one snapshot per tick.

    ``sources`` is None (every source that works here), or names from ``SOURCE_ORDER``, or
    source objects (anything with ``name``, ``unavailable_reason`` and
    ``sample(pids, at) -> list[DeviceSample]``).
    """

    def __init__(self, sources: Iterable[str | DeviceSource | HostSampler] | None = None, *, sysfs_root: str = "/",
                 proc_root: str = "/proc", device_names: Mapping[str, str] | None = None) -> None:
        self.sysfs_root = str(sysfs_root)
        self.proc_root = str(proc_root)
        self.device_names = dict(device_names or {})
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._unavailable: list[tuple[str, str]] = []
        self._device_sources: list[DeviceSource] = []
        self.host: HostSampler | None = None
        self._closed = False
        self._names_cache: tuple[frozenset[str], dict[str, tuple[str, ...]]] | None = None
        self._bare_pids: tuple[int, ...] = ()  # watched pids when the host source is off
        self._pending: list[tuple[str, tuple[int, ...]]] = []  # list.append is thread-safe
        wanted = list(SOURCE_ORDER) if sources is None else list(sources)
        if sources is None and self.sysfs_root.rstrip("/") != "":
            # libdrm and NVML always see the real machine, not the tree under this root.
            for name in HARDWARE_LIBRARY_SOURCES:
                wanted.remove(name)
                self._unavailable.append(
                    (name, (f"not used with sysfs root {self.sysfs_root}: it reads the real "
                           "hardware")))
        for item in wanted:
            source = _make_source(item, self.sysfs_root, self.proc_root) if isinstance(item, str) else item
            if source.unavailable_reason and not source.available:
                self._unavailable.append((source.name, source.unavailable_reason))
                source.close()
                continue
            if isinstance(source, HostSampler):
                self.host = source
            else:
                self._device_sources.append(source)

    @property
    def unavailable(self) -> list[tuple[str, str]]:
        """(source name, why) for every source asked for that cannot work here."""
        return list(self._unavailable)

    def energy_sources(self) -> list[EnergySource]:
        """Each card's energy counter and power (``backends.telemetry.energy``)."""
        from backends.telemetry.energy import sources_of

        return sources_of(self._device_sources)

    @property
    def sources(self) -> list[str]:
        names = [s.name for s in self._device_sources]
        return names + (["host"] if self.host is not None else [])

    def watch_pids(self, pids: Iterable[int]) -> None:
        """Follow these benchmark processes (and their children) from the next tick.

        Never waits for a sample in progress: the pids are queued and taken up by the next
        tick, so the runner can call this from the event loop.
        """
        self._pending.append(("watch", tuple(int(pid) for pid in pids)))

    def unwatch_all(self) -> None:
        """Stop following processes (from the next tick)."""
        self._pending.append(("unwatch", ()))

    def _apply_pending(self) -> None:
        while self._pending:
            action, pids = self._pending.pop(0)
            if action == "unwatch":
                self._bare_pids = ()
                if self.host is not None:
                    self.host.unwatch_all()
            elif self.host is not None:
                self.host.watch(pids)
            else:
                self._bare_pids = tuple(dict.fromkeys(self._bare_pids + pids))

    def sample(self) -> TelemetrySnapshot:
        """One snapshot now. Blocking but cheap; safe to call from any one thread at a time."""
        with self._lock:
            if self._closed:
                raise TelemetryError("telemetry is closed")
            self._apply_pending()
            at = time.time()
            pids = self.host.tree_pids() if self.host is not None else self._bare_pids
            merged: dict[str, DeviceSample] = {}
            for source in self._device_sources:
                self._sample_source(source, pids, at, merged)
            devices = tuple(sorted(merged.values(), key=lambda d: d.pci_address))
            devices = self._with_backend_names(devices)
            host = self.host.sample(at) if self.host is not None else None
            return TelemetrySnapshot(at=at, devices=devices, host=host)

    def _sample_source(self, source: DeviceSource, pids: Sequence[int], at: float,
                       merged: dict[str, DeviceSample]) -> None:
        """Merge one source's devices in; a gap-filler is asked only for what is missing."""
        wanted = None
        if source.fills_gaps and merged:
            wanted = {pci: [f for f in DEVICE_MEASUREMENTS if getattr(d, f) is None]
                      for pci, d in merged.items()}
            known = set(source.pci_addresses)
            if all(not fields for fields in wanted.values()) and known and set(wanted) >= known:
                return
        try:
            samples = source.sample(pids, at) if wanted is None else source.sample(
                pids, at, wanted=wanted)
        except Exception as error:
            self._note_failure(source.name, error)
            return
        for device in samples:
            known_device = merged.get(device.pci_address)
            merged[device.pci_address] = device if known_device is None else (
                merge_device_samples(known_device, device))

    def _note_failure(self, name: str, error: Exception) -> None:
        entry = (name, f"sampling failed: {type(error).__name__}: {error}")
        if entry not in self._unavailable:
            self._unavailable.append(entry)

    def _with_backend_names(self, devices: tuple[DeviceSample, ...]) -> tuple[DeviceSample, ...]:
        if not self.device_names or not devices:
            return devices
        key = frozenset(d.pci_address + "\0" + d.name for d in devices)
        if self._names_cache is None or self._names_cache[0] != key:
            self._names_cache = (key, match_backend_names(devices, self.device_names))
        names = self._names_cache[1]
        return tuple(dataclasses.replace(d, backend_names=names[d.pci_address])
                     if d.pci_address in names else d for d in devices)

    async def stream(self, interval: float = DEFAULT_INTERVAL_S) -> AsyncGenerator[TelemetrySnapshot, None]:
        """Yield a snapshot every ``interval`` seconds (0.05 to 10) until the consumer stops.

        Sampling runs on one dedicated worker thread, so the event loop never blocks and
        pyamdgpuinfo stays on one thread. Ticks are scheduled on the loop's monotonic clock
        (no drift); a late tick skips the slots it missed instead of bursting.
        """
        interval = validate_interval(interval)
        loop = asyncio.get_running_loop()
        executor = self._worker()
        next_tick = loop.time()
        while True:
            snapshot = await loop.run_in_executor(executor, self.sample)
            yield snapshot
            next_tick += interval
            now = loop.time()
            if now > next_tick:
                next_tick += math.ceil((now - next_tick) / interval) * interval
            await asyncio.sleep(next_tick - now)

    def _worker(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="llamaduel-telemetry")
        return self._executor

    def close(self) -> None:
        """Stop the worker thread and release NVML and libdrm. Safe to call twice."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for source in self._device_sources:
                with contextlib.suppress(Exception):  # closing must never fail the caller
                    source.close()
            if self.host is not None:
                self.host.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def validate_interval(interval: float) -> float:
    try:
        value = float(interval)
    except (TypeError, ValueError):
        raise TelemetryError(f"telemetry interval must be a number of seconds, not {interval!r}") from None
    if not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:
        raise TelemetryError(
            f"telemetry interval must be between {MIN_INTERVAL_S} and {MAX_INTERVAL_S} seconds, not {interval}")
    return value

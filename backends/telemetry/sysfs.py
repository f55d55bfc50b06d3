"""AMD GPUs through the amdgpu driver's sysfs files: no library needed, any backend.

Every path hangs off a configurable root (default ``/``) so tests point it at a tree shaped
like an MI50's. Which files exist is worked out once per card (they depend on the kernel
and the card, not on time); reads that fail at sample time (empty file, EIO during a GPU
reset) give None with a reason for that tick only and are tried again the next tick.
"""

from __future__ import annotations

import errno
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from backends.telemetry.model import DeviceSample

SOURCE_NAME = "amdgpu-sysfs"
AMD_VENDOR = "0x1002"
CARD_NAME = re.compile(r"^card\d+$")
PCI_ADDRESS = re.compile(r"^[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")

# gpu_metrics format v1_0 (Vega20), little-endian, 80 bytes.
GPU_METRICS_V1_0 = struct.Struct("<HBB4xQ10HI14HIHBB4x")
UNFILLED_16 = 0xFFFF
UNFILLED_32 = 0xFFFFFFFF

# Vega20 SMU ThrottlerStatus bits (smu11 driver interface, PPTable v3).
VEGA20_THROTTLE_BITS = {
    1: "edge temperature",
    2: "hotspot temperature",
    3: "HBM temperature",
    4: "VR GFX temperature",
    5: "VR SOC temperature",
    6: "VR MEM0 temperature",
    7: "VR MEM1 temperature",
    8: "liquid temperature",
    9: "PLX temperature",
    10: "skin temperature",
    11: "GFX current (TDC)",
    12: "SOC current (TDC)",
    13: "power limit (PPT)",
    14: "reliability limit (FIT)",
    15: "power limit (PPM)",
}


class ReadFailure(Exception):
    """A sysfs read that gave no value; the message is the reason shown to the user."""


def read_bytes(path: str) -> bytes:
    """Read a small sysfs file in one call; every failure becomes a ReadFailure with a reason."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ReadFailure(f"{path} is missing") from None
    except PermissionError:
        raise ReadFailure(f"no permission to read {path}") from None
    except OSError as error:
        raise ReadFailure(_os_error_reason(path, error)) from None
    try:
        data = os.read(fd, 65536)
    except OSError as error:
        raise ReadFailure(_os_error_reason(path, error)) from None
    finally:
        os.close(fd)
    if not data.strip():
        raise ReadFailure(f"{path} is empty")
    return data


def _os_error_reason(path: str, error: OSError) -> str:
    if error.errno == errno.EIO:
        return f"I/O error reading {path} (GPU busy or resetting)"
    if error.errno == errno.EISDIR:
        return f"{path} is a directory, not a value"
    return f"cannot read {path}: {error.strerror or error}"


def read_text(path: str) -> str:
    return read_bytes(path).decode("ascii", "replace").strip()


def read_int(path: str) -> int:
    text = read_text(path)
    try:
        return int(text, 0)
    except ValueError:
        raise ReadFailure(f"{path} holds {text[:40]!r}, not a number") from None


def current_dpm_mhz(path: str) -> float:
    """The level marked ``*`` in pp_dpm_sclk / pp_dpm_mclk (``"1: 1725Mhz *"``)."""
    for line in read_text(path).splitlines():
        if line.rstrip().endswith("*"):
            match = re.search(r"(\d+)\s*mhz", line, re.IGNORECASE)
            if match:
                return float(match.group(1))
    raise ReadFailure(f"{path} marks no current level")


# ---------------------------------------------------------------- gpu_metrics


@dataclass(frozen=True)
class GpuMetrics:
    """Decoded ``gpu_metrics`` v1_0; fields the firmware did not fill are None."""

    structure_size: int
    format_revision: int
    content_revision: int
    system_clock_counter: int
    temperature_edge_c: int | None
    temperature_hotspot_c: int | None
    temperature_mem_c: int | None
    temperature_vrgfx_c: int | None
    temperature_vrsoc_c: int | None
    temperature_vrmem_c: int | None
    average_gfx_activity: int | None
    average_umc_activity: int | None
    average_mm_activity: int | None
    average_socket_power_w: int | None
    energy_accumulator: int | None
    average_gfxclk_mhz: int | None
    average_socclk_mhz: int | None
    average_uclk_mhz: int | None
    average_vclk0_mhz: int | None
    average_dclk0_mhz: int | None
    average_vclk1_mhz: int | None
    average_dclk1_mhz: int | None
    current_gfxclk_mhz: int | None
    current_socclk_mhz: int | None
    current_uclk_mhz: int | None
    current_vclk0_mhz: int | None
    current_dclk0_mhz: int | None
    current_vclk1_mhz: int | None
    current_dclk1_mhz: int | None
    throttle_status: int | None
    current_fan_speed: int | None
    pcie_link_width: int
    pcie_link_speed: int

    @property
    def throttle_reasons(self) -> tuple[str, ...] | None:
        if self.throttle_status is None:
            return None
        return decode_vega20_throttle(self.throttle_status)


def decode_vega20_throttle(status: int) -> tuple[str, ...]:
    """ThrottlerStatus bits to words, lowest bit first; unknown bits are named by number."""
    words = []
    for bit in range(32):
        if status & (1 << bit):
            words.append(VEGA20_THROTTLE_BITS.get(bit, f"throttle bit {bit}"))
    return tuple(words)


class UnsupportedMetrics(ValueError):
    """A gpu_metrics blob in a format other than v1_0."""


def decode_gpu_metrics(blob: bytes) -> GpuMetrics:
    """Decode a gpu_metrics v1_0 blob; raise UnsupportedMetrics for any other format."""
    if len(blob) < 4:
        raise UnsupportedMetrics(f"gpu_metrics is {len(blob)} bytes, too short for a header")
    size, major, minor = struct.unpack_from("<HBB", blob)
    if (major, minor) != (1, 0) or len(blob) < GPU_METRICS_V1_0.size:
        raise UnsupportedMetrics(f"gpu_metrics format v{major}.{minor} is not decoded")
    values = GPU_METRICS_V1_0.unpack_from(blob)
    header, rest = values[:4], values[4:]

    def filled16(v: int) -> int | None:
        return None if v == UNFILLED_16 else v

    def filled32(v: int) -> int | None:
        return None if v == UNFILLED_32 else v

    temps_activity_power = [filled16(v) for v in rest[0:10]]
    energy = filled32(rest[10])
    clocks = [filled16(v) for v in rest[11:25]]
    throttle = filled32(rest[25])
    fan = filled16(rest[26])
    width, speed = rest[27], rest[28]
    return GpuMetrics(*header, *temps_activity_power, energy, *clocks, throttle, fan, width, speed)


# ---------------------------------------------------------------- cards

# A metric is read from the first candidate that gives a value: (path, parse to value).
Candidate = tuple[str, Callable[[str], float | int]]


def _milli(path: str) -> float:
    return read_int(path) / 1000.0


def _micro(path: str) -> float:
    return read_int(path) / 1_000_000.0


def _hz_to_mhz(path: str) -> float:
    return read_int(path) / 1_000_000.0


def _number(path: str) -> int:
    return read_int(path)


@dataclass
class AmdCard:
    """One amdgpu card and the files found for it at discovery."""

    card: str
    device_dir: str
    pci_address: str
    name: str
    hwmon_dir: str | None
    metrics_path: str | None
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)
    vram_total: int | None = None


def normalize_pci(address: str) -> str:
    """``00000000:18:00.0`` (NVML) and ``0000:18:00.0`` (sysfs) become ``0000:18:00.0``."""
    address = address.strip().lower()
    domain, _, rest = address.partition(":")
    if not rest:
        return address
    return f"{int(domain, 16):04x}:{rest}"


def _uevent(device_dir: str) -> dict[str, str]:
    try:
        text = read_text(os.path.join(device_dir, "uevent"))
    except ReadFailure:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _product_name(root: str, device_dir: str) -> str:
    """The marketing name: device/product_name, else libdrm's amdgpu.ids, else the PCI ids."""
    try:
        return read_text(os.path.join(device_dir, "product_name"))
    except ReadFailure:
        pass
    try:
        device_id = read_int(os.path.join(device_dir, "device"))
    except ReadFailure:
        return "AMD GPU"
    try:
        revision = read_int(os.path.join(device_dir, "revision"))
    except ReadFailure:
        revision = None
    name = amdgpu_ids_name(Path(root) / "usr/share/libdrm/amdgpu.ids", device_id, revision)
    return name or f"AMD GPU [1002:{device_id:04x}]"


def amdgpu_ids_name(ids_file: Path, device_id: int, revision: int | None) -> str | None:
    """Look a device up in libdrm's amdgpu.ids (``66A1,\\t02,\\tAMD Instinct MI60 / MI50``)."""
    try:
        lines = ids_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    fallback = None
    for line in lines:
        parts = [p.strip() for p in line.split(",", 2)]
        if len(parts) != 3 or line.startswith("#"):
            continue
        try:
            did, rev = int(parts[0], 16), int(parts[1], 16)
        except ValueError:
            continue
        if did != device_id:
            continue
        if revision is None or rev == revision:
            return parts[2]
        fallback = fallback or parts[2]
    return fallback


def _find_hwmon(device_dir: str) -> str | None:
    base = os.path.join(device_dir, "hwmon")
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return None
    for entry in entries:
        folder = os.path.join(base, entry)
        try:
            if read_text(os.path.join(folder, "name")) == "amdgpu":
                return folder
        except ReadFailure:
            continue
    return None


def discover_cards(root: str = "/") -> list[AmdCard]:
    """AMD cards under ``<root>/sys/class/drm`` (connectors like card1-DP-1 are skipped)."""
    drm = os.path.join(root, "sys/class/drm")
    try:
        entries = sorted(os.listdir(drm), key=lambda n: (len(n), n))
    except OSError:
        return []
    cards = []
    seen = set()
    for entry in entries:
        if not CARD_NAME.match(entry):
            continue
        device_dir = os.path.join(drm, entry, "device")
        try:
            if read_text(os.path.join(device_dir, "vendor")).lower() != AMD_VENDOR:
                continue
        except ReadFailure:
            continue
        uevent = _uevent(device_dir)
        if uevent.get("DRIVER") != "amdgpu":
            continue
        slot = uevent.get("PCI_SLOT_NAME") or os.path.basename(os.path.realpath(device_dir))
        if not PCI_ADDRESS.match(slot):
            continue
        pci = normalize_pci(slot)
        if pci in seen:
            continue
        seen.add(pci)
        cards.append(_describe_card(root, entry, device_dir, pci))
    return cards


def _describe_card(root: str, card: str, device_dir: str, pci: str) -> AmdCard:
    hwmon = _find_hwmon(device_dir)
    info = AmdCard(card=card, device_dir=device_dir, pci_address=pci,
                   name=_product_name(root, device_dir), hwmon_dir=hwmon, metrics_path=None)
    metrics = os.path.join(device_dir, "gpu_metrics")
    info.metrics_path = metrics if os.path.exists(metrics) else None

    def dev(name: str) -> str:
        return os.path.join(device_dir, name)

    def hw(name: str) -> str | None:
        return os.path.join(hwmon, name) if hwmon else None

    wanted: dict[str, list[tuple[str | None, Callable[[str], float | int]]]] = {
        "vram_used_bytes": [(dev("mem_info_vram_used"), _number)],
        "vram_total_bytes": [(dev("mem_info_vram_total"), _number)],
        "gtt_used_bytes": [(dev("mem_info_gtt_used"), _number)],
        "edge_c": [(hw("temp1_input"), _milli)],
        "junction_c": [(hw("temp2_input"), _milli)],
        "mem_c": [(hw("temp3_input"), _milli)],
        # Kernels up to ~6.5 have power1_average, newer ones power1_input.
        "power_w": [(hw("power1_average"), _micro), (hw("power1_input"), _micro)],
        "power_cap_w": [(hw("power1_cap"), _micro)],
        "gpu_busy_percent": [(dev("gpu_busy_percent"), _number)],
        "mem_busy_percent": [(dev("mem_busy_percent"), _number)],
        "sclk_mhz": [(hw("freq1_input"), _hz_to_mhz), (dev("pp_dpm_sclk"), current_dpm_mhz)],
        "mclk_mhz": [(hw("freq2_input"), _hz_to_mhz), (dev("pp_dpm_mclk"), current_dpm_mhz)],
    }
    for metric, options in wanted.items():
        found = [(p, parse) for p, parse in options if p is not None and os.path.exists(p)]
        if found:
            info.candidates[metric] = found
        else:
            names = ", ".join(os.path.basename(p) for p, _ in options if p) or "hwmon"
            where = "no amdgpu hwmon folder" if hwmon is None and all(
                p is None for p, _ in options) else f"driver does not provide {names}"
            info.absent[metric] = where
    return info


# Where a gpu_metrics field can stand in for a missing or failing sysfs file.
_METRICS_FALLBACK = {
    "edge_c": "temperature_edge_c",
    "junction_c": "temperature_hotspot_c",
    "mem_c": "temperature_mem_c",
    "power_w": "average_socket_power_w",
    "gpu_busy_percent": "average_gfx_activity",
    "mem_busy_percent": "average_umc_activity",
    "sclk_mhz": "current_gfxclk_mhz",
    "mclk_mhz": "current_uclk_mhz",
}


# ---------------------------------------------------------------- per-process VRAM


class ProcessVram:
    """VRAM held by given processes, per PCI address: ROCm's KFD files, then DRM fdinfo.

    fdinfo is scanned in full only when a process's set of open files changes; otherwise
    only the DRM file descriptors found last time are read again.
    """

    def __init__(self, root: str = "/", proc_root: str = "/proc") -> None:
        self.root = root
        self.proc_root = proc_root
        self._kfd_proc = os.path.join(root, "sys/class/kfd/kfd/proc")
        self._kfd_gpu_ids: dict[int, str] | None = None
        # pid -> (fd names seen, fd names that are DRM clients)
        self._fd_cache: dict[int, tuple[frozenset[str], tuple[str, ...]]] = {}

    def kfd_gpu_ids(self) -> dict[int, str]:
        """KFD gpu_id -> PCI address, from the KFD topology (location_id = bus<<8 | devfn)."""
        if self._kfd_gpu_ids is None:
            self._kfd_gpu_ids = {}
            nodes = os.path.join(self.root, "sys/class/kfd/kfd/topology/nodes")
            try:
                entries = os.listdir(nodes)
            except OSError:
                entries = []
            for node in entries:
                try:
                    gpu_id = read_int(os.path.join(nodes, node, "gpu_id"))
                    props = read_text(os.path.join(nodes, node, "properties"))
                except ReadFailure:
                    continue
                if not gpu_id:
                    continue  # CPU node
                fields = dict(line.split(None, 1) for line in props.splitlines() if " " in line)
                try:
                    location = int(fields["location_id"])
                    domain = int(fields.get("domain", "0"))
                except (KeyError, ValueError):
                    continue
                bus, devfn = location >> 8, location & 0xFF
                self._kfd_gpu_ids[gpu_id] = f"{domain:04x}:{bus:02x}:{devfn >> 3:02x}.{devfn & 7}"
        return self._kfd_gpu_ids

    def sample(self, pids: Sequence[int]) -> tuple[dict[str, int], dict[str, str], str | None]:
        """(bytes per PCI address, reason per address where unknown, reason for all devices).

        A device with neither a total nor a reason holds none of these processes' VRAM:
        their open files show no client on it (a measured zero).
        """
        totals: dict[str, int] = {}
        reasons: dict[str, str] = {}
        general: str | None = None
        kfd_seen: set[str] = set()
        gpu_ids = self.kfd_gpu_ids()
        for pid in pids:
            folder = os.path.join(self._kfd_proc, str(pid))
            if not gpu_ids or not os.path.isdir(folder):
                continue
            for gpu_id, pci in gpu_ids.items():
                path = os.path.join(folder, f"vram_{gpu_id}")
                if not os.path.exists(path):
                    continue
                try:
                    totals[pci] = totals.get(pci, 0) + read_int(path)
                    kfd_seen.add(pci)
                except ReadFailure as failure:
                    reasons[pci] = str(failure)

        fd_totals: dict[str, int] = {}
        for pid in pids:
            result = self._fdinfo(pid)
            if result is None:
                continue  # exited: holds nothing any more
            if isinstance(result, str):
                general = general or result
                continue
            for pci, (amount, has_memory_keys) in result.items():
                if not has_memory_keys:
                    reasons.setdefault(pci, "this kernel's DRM fdinfo has no drm-memory-vram "
                                            "(needs Linux 6.x)")
                    continue
                fd_totals[pci] = fd_totals.get(pci, 0) + amount
        for pci, amount in fd_totals.items():
            if pci not in kfd_seen:  # ROCm: KFD counts its own allocations; prefer it
                totals[pci] = totals.get(pci, 0) + amount
        return totals, reasons, general

    def _fdinfo(self, pid: int) -> dict[str, tuple[int, bool]] | str | None:
        """VRAM per device of one process's DRM clients; a reason string; None if it exited."""
        folder = os.path.join(self.proc_root, str(pid), "fdinfo")
        try:
            names = frozenset(os.listdir(folder))
        except FileNotFoundError:
            self._fd_cache.pop(pid, None)
            return None
        except PermissionError:
            return f"no permission to read {folder}"
        except OSError as error:
            return f"cannot list {folder}: {error.strerror or error}"
        cached = self._fd_cache.get(pid)
        scan = cached[1] if cached and cached[0] == names else tuple(sorted(names))
        clients: dict[tuple[str, str], tuple[int, bool]] = {}
        drm_fds = []
        for name in scan:
            try:
                text = read_bytes(os.path.join(folder, name)).decode("ascii", "replace")
            except ReadFailure:
                continue
            if "drm-" not in text:
                continue
            parsed = _parse_drm_fdinfo(text)
            if parsed is None:
                continue
            drm_fds.append(name)
            pdev, client, amount, has_keys = parsed
            # Duplicated descriptors share one DRM client: count each client once.
            clients[(pdev, client or name)] = (amount, has_keys)
        self._fd_cache[pid] = (names, tuple(drm_fds))
        per_device: dict[str, tuple[int, bool]] = {}
        for (pdev, _), (amount, has_keys) in clients.items():
            total, keys = per_device.get(pdev, (0, True))
            per_device[pdev] = (total + amount, keys and has_keys)
        return per_device


_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3}


def _parse_drm_fdinfo(text: str) -> tuple[str, str, int, bool] | None:
    """(pdev, client id, vram bytes, whether vram keys were present) or None if not DRM."""
    pdev = client = None
    amount = 0
    has_keys = False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "drm-pdev":
            pdev = normalize_pci(value)
        elif key == "drm-client-id":
            client = value
        elif key in ("drm-memory-vram", "drm-total-vram"):
            if has_keys and key == "drm-total-vram":
                continue  # same memory, newer name: count once
            number, _, unit = value.partition(" ")
            try:
                amount = int(number) * _UNITS.get(unit.strip().lower(), 1)
                has_keys = True
            except ValueError:
                continue
    if pdev is None:
        return None
    return pdev, client or "", amount, has_keys


# ---------------------------------------------------------------- the source


class AmdSysfsSource:
    """Samples every amdgpu card under a root; cheap enough to run at several hertz."""

    name = SOURCE_NAME

    def __init__(self, root: str = "/", proc_root: str = "/proc") -> None:
        self.root = root
        self.proc_root = proc_root
        self.cards = discover_cards(root)
        self.process_vram = ProcessVram(root, proc_root)
        self._rediscover = False
        self.unavailable_reason: str | None = None
        if not self.cards:
            drm = os.path.join(root, "sys/class/drm")
            self.unavailable_reason = (
                f"no AMD GPU with the amdgpu driver under {drm}" if os.path.isdir(drm)
                else f"no {drm}: no GPU driver loaded"
            )

    @property
    def available(self) -> bool:
        return bool(self.cards)

    def sample(self, pids: Sequence[int] = (), at: float = 0.0) -> list[DeviceSample]:
        if self._rediscover:
            self.cards = discover_cards(self.root) or self.cards
            self._rediscover = False
        process = None
        if pids:
            process = self.process_vram.sample(pids)
        return [self._sample_card(card, pids, process, at) for card in self.cards]

    def _sample_card(self, card: AmdCard, pids: Sequence[int], process, at: float) -> DeviceSample:
        values: dict[str, float | int | None] = {}
        missing: dict[str, str] = dict(card.absent)
        for metric, options in card.candidates.items():
            if metric == "vram_total_bytes" and card.vram_total is not None:
                values[metric] = card.vram_total
                continue
            first_reason = None
            for path, parse in options:
                try:
                    values[metric] = parse(path)
                    break
                except ReadFailure as failure:
                    first_reason = first_reason or str(failure)
                    if not os.path.lexists(path):
                        self._rediscover = True
            else:
                missing[metric] = first_reason or "no value"
        if values.get("vram_total_bytes") is not None:
            card.vram_total = int(values["vram_total_bytes"])  # never changes

        throttle = None
        if card.metrics_path is None:
            missing["throttle_reasons"] = "driver does not provide gpu_metrics"
        else:
            try:
                metrics = decode_gpu_metrics(read_bytes(card.metrics_path))
            except ReadFailure as failure:
                missing["throttle_reasons"] = str(failure)
            except UnsupportedMetrics as error:
                missing["throttle_reasons"] = str(error)
            else:
                throttle = metrics.throttle_reasons
                if throttle is None:
                    missing["throttle_reasons"] = "firmware does not fill throttle_status"
                for metric, attribute in _METRICS_FALLBACK.items():
                    value = getattr(metrics, attribute)
                    if values.get(metric) is None and value is not None:
                        values[metric] = float(value)
                        missing.pop(metric, None)

        process_vram = None
        if not pids:
            missing["process_vram_bytes"] = "no benchmark process watched"
        else:
            totals, reasons, general = process
            if card.pci_address in totals:
                process_vram = totals[card.pci_address]
            elif card.pci_address in reasons:
                missing["process_vram_bytes"] = reasons[card.pci_address]
            elif general:
                missing["process_vram_bytes"] = general
            else:
                process_vram = 0  # the processes' open files show no client on this GPU

        for metric, value in values.items():
            if value is not None:
                missing.pop(metric, None)
        return DeviceSample(
            at=at,
            pci_address=card.pci_address,
            name=card.name,
            source=SOURCE_NAME,
            vram_used_bytes=_as_int(values.get("vram_used_bytes")),
            vram_total_bytes=_as_int(values.get("vram_total_bytes")),
            gtt_used_bytes=_as_int(values.get("gtt_used_bytes")),
            edge_c=values.get("edge_c"),
            junction_c=values.get("junction_c"),
            mem_c=values.get("mem_c"),
            power_w=values.get("power_w"),
            power_cap_w=values.get("power_cap_w"),
            gpu_busy_percent=_as_float(values.get("gpu_busy_percent")),
            mem_busy_percent=_as_float(values.get("mem_busy_percent")),
            sclk_mhz=values.get("sclk_mhz"),
            mclk_mhz=values.get("mclk_mhz"),
            throttle_reasons=throttle,
            process_vram_bytes=process_vram,
            missing=missing,
        )

    def close(self) -> None:
        pass


def _as_int(value: float | int | None) -> int | None:
    return None if value is None else int(value)


def _as_float(value: float | int | None) -> float | None:
    return None if value is None else float(value)


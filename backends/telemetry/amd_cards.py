"""Finding amdgpu cards under a sysfs root and the files each one offers.

Which files exist is worked out once per card (it depends on the kernel and the card, not
on time). Temperatures are matched by their hwmon label (``edge``, ``junction``, ``mem``),
not by number: MI300-class cards have no edge sensor, so their ``temp2`` is the junction
and there is no ``temp1`` at all; without labels the classic numbering is assumed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backends.telemetry.sysfs_read import (
    PCI_ADDRESS,
    ReadFailure,
    current_dpm_mhz,
    normalize_pci,
    read_int,
    read_text,
)

AMD_VENDOR = "0x1002"
CARD_NAME = re.compile(r"^card\d+$")
VEGA20_DEVICE_IDS = range(0x66A0, 0x66B0)
TEMPERATURES = ("edge", "junction", "mem")
_LABELS = {"edge": "edge", "junction": "junction", "hotspot": "junction", "mem": "mem",
           "memory": "mem", "vram": "mem"}
_DEFAULT_BY_INDEX = {1: "edge", 2: "junction", 3: "mem"}
_WORDS = {"edge": "edge", "junction": "junction", "mem": "memory"}

# A metric is read from the first candidate that gives a value: (path, parse to value).
Parser = Callable[[str], float]
Candidate = tuple[str, Parser]
# Read once and kept: they only change when the card does.
STATIC_METRICS = frozenset({"vram_total_bytes", "gtt_total_bytes"} | {
    f"{sensor}_{limit}_c" for sensor in TEMPERATURES for limit in ("crit", "emergency")})


def _milli(path: str) -> float:
    return read_int(path) / 1000.0


def _micro(path: str) -> float:
    return read_int(path) / 1_000_000.0


def _number(path: str) -> float:
    return float(read_int(path))


@dataclass
class AmdCard:
    """One amdgpu card and the files found for it at discovery."""

    card: str
    device_dir: str
    pci_address: str
    name: str
    device_id: int | None
    hwmon_dir: str | None
    metrics_path: str | None
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)
    fan_path: str | None = None
    pwm_path: str | None = None
    static: dict[str, float] = field(default_factory=dict)

    @property
    def vega20(self) -> bool:
        return self.device_id in VEGA20_DEVICE_IDS

    @property
    def instinct(self) -> bool:
        """A datacenter board (passively cooled: any fan reading is not a fan of its own)."""
        return "instinct" in self.name.casefold()


def _uevent(device_dir: str) -> dict[str, str]:
    try:
        text = read_text(os.path.join(device_dir, "uevent"))
    except ReadFailure:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


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


def _optional_int(path: str) -> int | None:
    try:
        return read_int(path)
    except ReadFailure:
        return None


def _product_name(root: str, device_dir: str, device_id: int | None) -> str:
    """The marketing name: device/product_name, else libdrm's amdgpu.ids, else the PCI ids."""
    try:
        return read_text(os.path.join(device_dir, "product_name"))
    except ReadFailure:
        pass
    if device_id is None:
        return "AMD GPU"
    revision = _optional_int(os.path.join(device_dir, "revision"))
    name = amdgpu_ids_name(Path(root) / "usr/share/libdrm/amdgpu.ids", device_id, revision)
    return name or f"AMD GPU [1002:{device_id:04x}]"


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


def temperature_channels(hwmon: str) -> dict[str, int]:
    """Sensor (edge/junction/mem) -> hwmon channel number, by label where there is one."""
    found: dict[str, int] = {}
    for index in range(1, 10):
        if not os.path.exists(os.path.join(hwmon, f"temp{index}_input")):
            continue
        try:
            label = read_text(os.path.join(hwmon, f"temp{index}_label")).casefold()
            sensor = _LABELS.get(label)
        except ReadFailure:
            sensor = _DEFAULT_BY_INDEX.get(index)
        if sensor and sensor not in found:
            found[sensor] = index
    return found


def _hwmon_candidates(hwmon: str | None) -> dict[str, list[str | None]]:
    def hw(name: str) -> str | None:
        return os.path.join(hwmon, name) if hwmon else None

    paths: dict[str, list[str | None]] = {
        # Kernels up to ~6.5 have power1_average, newer ones power1_input (APUs may have both).
        "power_w": [hw("power1_average"), hw("power1_input")],
        "power_cap_w": [hw("power1_cap")],
        "sclk_mhz": [hw("freq1_input")],
        "mclk_mhz": [hw("freq2_input")],
    }
    channels = temperature_channels(hwmon) if hwmon else {}
    for sensor in TEMPERATURES:
        index = channels.get(sensor)
        for metric, suffix in ((f"{sensor}_c", "input"), (f"{sensor}_crit_c", "crit"),
                               (f"{sensor}_emergency_c", "emergency")):
            paths[metric] = [hw(f"temp{index}_{suffix}") if index else None]
    return paths


_PARSERS: dict[str, Parser] = {"power_w": _micro, "power_cap_w": _micro,
                               "sclk_mhz": _micro, "mclk_mhz": _micro}


def _describe_card(root: str, card: str, device_dir: str, pci: str) -> AmdCard:
    hwmon = _find_hwmon(device_dir)
    device_id = _optional_int(os.path.join(device_dir, "device"))
    metrics = os.path.join(device_dir, "gpu_metrics")
    info = AmdCard(card=card, device_dir=device_dir, pci_address=pci, device_id=device_id,
                   name=_product_name(root, device_dir, device_id), hwmon_dir=hwmon,
                   metrics_path=metrics if os.path.exists(metrics) else None)
    wanted: dict[str, list[tuple[str | None, Parser]]] = {
        metric: [(path, _PARSERS.get(metric, _milli)) for path in paths]
        for metric, paths in _hwmon_candidates(hwmon).items()}
    for metric, name in (("vram_used_bytes", "mem_info_vram_used"),
                         ("vram_total_bytes", "mem_info_vram_total"),
                         ("gtt_used_bytes", "mem_info_gtt_used"),
                         ("gtt_total_bytes", "mem_info_gtt_total"),
                         ("gpu_busy_percent", "gpu_busy_percent"),
                         ("mem_busy_percent", "mem_busy_percent")):
        wanted[metric] = [(os.path.join(device_dir, name), _number)]
    wanted["sclk_mhz"].append((os.path.join(device_dir, "pp_dpm_sclk"), current_dpm_mhz))
    wanted["mclk_mhz"].append((os.path.join(device_dir, "pp_dpm_mclk"), current_dpm_mhz))
    for metric, options in wanted.items():
        found = [(p, parse) for p, parse in options if p is not None and os.path.exists(p)]
        if found:
            info.candidates[metric] = found
            continue
        names = ", ".join(os.path.basename(p) for p, _ in options if p)
        if names:
            info.absent[metric] = f"driver does not provide {names}"
        elif hwmon is None:
            info.absent[metric] = "no amdgpu hwmon folder"
        else:
            sensor = metric.split("_")[0]
            info.absent[metric] = (f"this card reports no {_WORDS[sensor]} temperature "
                                   f"(no hwmon temp*_input labelled {sensor})")
    if hwmon:
        fan, pwm = os.path.join(hwmon, "fan1_input"), os.path.join(hwmon, "pwm1")
        info.fan_path = fan if os.path.exists(fan) else None
        info.pwm_path = pwm if os.path.exists(pwm) else None
    return info


def _card_pci(device_dir: str) -> str | None:
    try:
        if read_text(os.path.join(device_dir, "vendor")).lower() != AMD_VENDOR:
            return None
    except ReadFailure:
        return None
    uevent = _uevent(device_dir)
    if uevent.get("DRIVER") != "amdgpu":
        return None
    slot = uevent.get("PCI_SLOT_NAME") or os.path.basename(os.path.realpath(device_dir))
    return normalize_pci(slot) if PCI_ADDRESS.match(slot) else None


def discover_cards(root: str = "/") -> list[AmdCard]:
    """AMD cards under ``<root>/sys/class/drm`` (connectors like card1-DP-1 are skipped)."""
    drm = os.path.join(root, "sys/class/drm")
    try:
        entries = sorted(os.listdir(drm), key=lambda n: (len(n), n))
    except OSError:
        return []
    cards: list[AmdCard] = []
    seen: set[str] = set()
    for entry in entries:
        if not CARD_NAME.match(entry):
            continue
        device_dir = os.path.join(drm, entry, "device")
        pci = _card_pci(device_dir)
        if pci is None or pci in seen:
            continue
        seen.add(pci)
        cards.append(_describe_card(root, entry, device_dir, pci))
    return cards

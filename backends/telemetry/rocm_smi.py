"""AMD GPUs through ``rocm-smi --json`` (ROCm's older SMI tool), used for what sysfs lacks.

rocm-smi reads the same driver files as the sysfs source, so on a machine where those can
be read it adds little; it is asked only for values still missing after sysfs and libdrm,
at most every ``refresh_s`` seconds (one call takes hundreds of milliseconds). Its JSON
keys are its text labels (``"Temperature (Sensor junction) (C)": "21.0"``); older versions
spell the unit ``(c)``, newer ones renamed "mem" to "memory" and report "Current Socket
Graphics Package Power (W)" instead of "Average ...". Devices are joined to the others by
``"PCI Bus"`` (``--showbus``); one without it cannot be joined and keeps its own name.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence

from backends.json_types import JsonValue
from backends.telemetry.model import DeviceSample, DeviceSource, device_sample
from backends.telemetry.smi_common import (
    ToolFailure,
    can_help,
    find_tool,
    load_json,
    number,
    run_tool,
    whole,
)
from backends.telemetry.sysfs_read import PCI_ADDRESS, normalize_pci

SOURCE_NAME = "rocm-smi"
ARGS = ("--showtemp", "--showpower", "--showmaxpower", "--showuse", "--showmemuse",
        "--showclocks", "--showfan", "--showbus", "--showproductname",
        "--showmeminfo", "vram", "gtt", "--json")
# DeviceSample field -> rocm-smi keys, lower-cased, tried in order.
_KEYS: dict[str, tuple[str, ...]] = {
    "edge_c": ("temperature (sensor edge) (c)",),
    "junction_c": ("temperature (sensor junction) (c)",),
    "mem_c": ("temperature (sensor memory) (c)", "temperature (sensor mem) (c)"),
    "power_w": ("average graphics package power (w)",
                "current socket graphics package power (w)"),
    "power_cap_w": ("max graphics package power (w)",),
    "gpu_busy_percent": ("gpu use (%)",),
    "mem_busy_percent": ("gpu memory use (%)",),
    "sclk_mhz": ("sclk clock speed:",),
    "mclk_mhz": ("mclk clock speed:",),
    "fan_rpm": ("fan rpm",),
    "vram_total_bytes": ("vram total memory (b)",),
    "vram_used_bytes": ("vram total used memory (b)",),
    "gtt_total_bytes": ("gtt total memory (b)",),
    "gtt_used_bytes": ("gtt total used memory (b)",),
}
_WHOLE = {"vram_total_bytes", "vram_used_bytes", "gtt_total_bytes", "gtt_used_bytes"}
_NAME_KEYS = ("card series", "device name", "card model")


def _card_values(card: Mapping[str, JsonValue]) -> tuple[dict[str, float | int], dict[str, str]]:
    lowered = {key.strip().casefold(): value for key, value in card.items()}
    values: dict[str, float | int] = {}
    missing: dict[str, str] = {}
    for field, keys in _KEYS.items():
        raw = next((lowered[k] for k in keys if k in lowered), None)
        value = whole(raw) if field in _WHOLE else number(raw)
        if value is None:
            missing[field] = "rocm-smi did not report it" if raw is None else (
                f"rocm-smi reported {str(raw)[:40]!r}")
        else:
            values[field] = value
    if values.get("fan_rpm") == 0 and (number(lowered.get("fan speed (%)")) or 0) > 0:
        del values["fan_rpm"]
        missing["fan_rpm"] = ("rocm-smi reads 0 rpm while the fan level is above 0: "
                              "no fan turning (a passively cooled board, or a stalled fan)")
    return values, missing


def _card_identity(key: str, card: Mapping[str, JsonValue]) -> tuple[str, str]:
    lowered = {k.strip().casefold(): v for k, v in card.items()}
    bus = lowered.get("pci bus")
    pci = normalize_pci(bus) if isinstance(bus, str) and PCI_ADDRESS.match(bus.strip()) else (
        f"rocm-smi:{key}")
    name = next((str(lowered[k]) for k in _NAME_KEYS if isinstance(lowered.get(k), str)), key)
    return pci, name


def parse_rocm_smi_json(text: str, at: float = 0.0) -> list[DeviceSample]:
    """One DeviceSample per ``cardN`` of ``rocm-smi ... --json``; ToolFailure if unreadable."""
    data = load_json(text, "rocm-smi")
    if not isinstance(data, dict):
        raise ToolFailure("rocm-smi printed JSON that is not an object of cards")
    samples = []
    for key, card in data.items():
        if not key.startswith("card") or not isinstance(card, dict):
            continue  # "system" and other sections
        values, missing = _card_values(card)
        pci, name = _card_identity(key, card)
        if pci.startswith("rocm-smi:"):
            missing["pci_address"] = "rocm-smi gave no PCI bus: cannot join it to other sources"
        samples.append(device_sample(at=at, pci_address=pci, name=name, source=SOURCE_NAME,
                                     values=values, missing=missing))
    return samples


class RocmSmiSource(DeviceSource):
    """Runs ``rocm-smi`` when something is still missing; reuses its answer for a while."""

    name = SOURCE_NAME
    fills_gaps = True

    def __init__(self, executable: str | None = None, refresh_s: float = 5.0,
                 timeout_s: float = 10.0) -> None:
        self.executable = executable or find_tool("rocm-smi")
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self.unavailable_reason: str | None = (
            None if self.executable else "rocm-smi is not installed (not on PATH)")
        self._last: list[DeviceSample] = []
        self._answered = False
        self._read_at = float("-inf")
        self.last_error: str | None = None

    @property
    def available(self) -> bool:
        return self.executable is not None

    @property
    def pci_addresses(self) -> tuple[str, ...]:
        return tuple(d.pci_address for d in self._last)

    def sample(self, pids: Sequence[int] = (), at: float = 0.0,
               wanted: Mapping[str, Collection[str]] | None = None) -> list[DeviceSample]:
        if self.executable is None:
            return []
        now = time.monotonic()
        due = now - self._read_at >= self.refresh_s
        if due and can_help(self._last if self._answered else None, wanted):
            self._read_at = now
            try:
                self._last = parse_rocm_smi_json(
                    run_tool([self.executable, *ARGS], self.timeout_s), at)
                self._answered = True
                self.last_error = None
            except ToolFailure as failure:
                self.last_error = str(failure)
                raise
        return self._last

    def close(self) -> None:
        self._last = []

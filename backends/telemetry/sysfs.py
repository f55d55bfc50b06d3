"""AMD GPUs through the amdgpu driver's sysfs files: no library needed, any backend.

Every path hangs off a configurable root (default ``/``) so tests point it at a tree shaped
like a real card's. Reads that fail at sample time (empty file, EIO during a GPU reset)
give None with a reason for that tick only and are tried again the next tick; values that
belong to the card rather than the moment (VRAM and GTT totals, temperature limits) are
read once and kept.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence

from backends.telemetry.amd_cards import STATIC_METRICS, AmdCard, discover_cards
from backends.telemetry.gpu_metrics import (
    GpuMetrics,
    UnsupportedMetrics,
    decode_gpu_metrics,
    throttle_reasons,
)
from backends.telemetry.model import DeviceSample, DeviceSource
from backends.telemetry.process_vram import ProcessVram, ProcessVramReading
from backends.telemetry.sysfs_read import ReadFailure, read_bytes, read_int

SOURCE_NAME = "amdgpu-sysfs"

# Where a decoded gpu_metrics value can stand in for a missing or failing sysfs file. The
# fan is left out on purpose: passive boards (MI50, MI100) report 0 there.
_METRICS_FALLBACK = {
    "edge_c": "edge_c", "junction_c": "hotspot_c", "mem_c": "mem_c",
    "power_w": "socket_power_w", "gpu_busy_percent": "gfx_activity_pct",
    "mem_busy_percent": "umc_activity_pct", "sclk_mhz": "gfxclk_mhz", "mclk_mhz": "uclk_mhz",
}
Values = dict[str, float | None]


def _whole(values: Values, key: str) -> int | None:
    value = values.get(key)
    return None if value is None else int(value)


def read_fan(card: AmdCard) -> tuple[float | None, str | None]:
    """(rpm, why None). A fan that reads 0 rpm is no fan when the board has none."""
    if card.hwmon_dir is None:
        return None, "no amdgpu hwmon folder"
    if card.fan_path is None:
        return None, "no fan: the driver reports none (fan1_input absent)"
    try:
        rpm = read_int(card.fan_path)
    except ReadFailure as failure:
        return None, str(failure)
    if rpm:
        return float(rpm), None
    if card.instinct:
        return None, ("passively cooled (AMD Instinct board): fan1_input reads 0 rpm, "
                      "the card has no fan of its own")
    try:
        pwm = read_int(card.pwm_path) if card.pwm_path else 0
    except ReadFailure:
        pwm = 0
    if pwm > 0:
        return None, (f"fan1_input reads 0 rpm while pwm1 asks for {round(pwm * 100 / 255)}%: "
                      "no fan turning (a passively cooled board, or a stalled fan)")
    return 0.0, None  # a consumer card's zero-rpm mode at idle: a measured zero


def _read_files(card: AmdCard, missing: dict[str, str]) -> tuple[Values, bool]:
    """Every metric's value from its first working file; (values, a file vanished)."""
    values: Values = {}
    vanished = False
    for metric, options in card.candidates.items():
        if metric in card.static:
            values[metric] = card.static[metric]
            continue
        first_reason = None
        for path, parse in options:
            try:
                values[metric] = parse(path)
                break
            except ReadFailure as failure:
                first_reason = first_reason or str(failure)
                vanished = vanished or not os.path.lexists(path)
        else:
            missing[metric] = first_reason or "no value"
            continue
        value = values[metric]
        if metric in STATIC_METRICS and value is not None:
            card.static[metric] = value
    return values, vanished


def _decoded_metrics(card: AmdCard, missing: dict[str, str]) -> GpuMetrics | None:
    if card.metrics_path is None:
        missing["throttle_reasons"] = "driver does not provide gpu_metrics"
        return None
    try:
        return decode_gpu_metrics(read_bytes(card.metrics_path))
    except (ReadFailure, UnsupportedMetrics) as error:
        missing["throttle_reasons"] = str(error)
        return None


def _fill_from_metrics(card: AmdCard, metrics: GpuMetrics, values: Values,
                       missing: dict[str, str]) -> tuple[str, ...] | None:
    """Throttle words from the blob, and blob values where a file gave none."""
    reasons, why = throttle_reasons(metrics, card.vega20)
    if reasons is None:
        missing["throttle_reasons"] = why
    for metric, attribute in _METRICS_FALLBACK.items():
        value = getattr(metrics, attribute)
        if values.get(metric) is not None or value is None:
            continue
        if metric == "power_w" and card.vega20 and metrics.format_revision == 1 and not value:
            continue  # Vega 20 leaves average_socket_power at 0 (not a measured zero)
        values[metric] = float(value)
    return reasons


def _process_vram(card: AmdCard, pids: Sequence[int], process: ProcessVramReading | None,
                  missing: dict[str, str]) -> int | None:
    if not pids or process is None:
        missing["process_vram_bytes"] = "no benchmark process watched"
        return None
    totals, reasons, general = process
    if card.pci_address in totals:
        return totals[card.pci_address]
    if card.pci_address in reasons:
        missing["process_vram_bytes"] = reasons[card.pci_address]
    elif general:
        missing["process_vram_bytes"] = general
    else:
        return 0  # the processes' open files show no client on this GPU
    return None


class AmdSysfsSource(DeviceSource):
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
                else f"no {drm}: no GPU driver loaded")

    @property
    def available(self) -> bool:
        return bool(self.cards)

    @property
    def pci_addresses(self) -> tuple[str, ...]:
        return tuple(card.pci_address for card in self.cards)

    def sample(self, pids: Sequence[int] = (), at: float = 0.0,
               wanted: Mapping[str, Collection[str]] | None = None) -> list[DeviceSample]:
        if self._rediscover:
            self.cards = discover_cards(self.root) or self.cards
            self._rediscover = False
        process = self.process_vram.sample(pids) if pids else None
        return [self._sample_card(card, pids, process, at) for card in self.cards]

    def _sample_card(self, card: AmdCard, pids: Sequence[int],
                     process: ProcessVramReading | None, at: float) -> DeviceSample:
        missing: dict[str, str] = dict(card.absent)
        values, vanished = _read_files(card, missing)
        self._rediscover = self._rediscover or vanished
        metrics = _decoded_metrics(card, missing)
        throttle = None if metrics is None else _fill_from_metrics(card, metrics, values, missing)
        fan, fan_reason = read_fan(card)
        if fan_reason:
            missing["fan_rpm"] = fan_reason
        process_vram = _process_vram(card, pids, process, missing)
        for metric, value in values.items():
            if value is not None:
                missing.pop(metric, None)
        return DeviceSample(
            at=at, pci_address=card.pci_address, name=card.name, source=SOURCE_NAME,
            vram_used_bytes=_whole(values, "vram_used_bytes"),
            vram_total_bytes=_whole(values, "vram_total_bytes"),
            gtt_used_bytes=_whole(values, "gtt_used_bytes"),
            gtt_total_bytes=_whole(values, "gtt_total_bytes"),
            edge_c=values.get("edge_c"), junction_c=values.get("junction_c"),
            mem_c=values.get("mem_c"), edge_crit_c=values.get("edge_crit_c"),
            junction_crit_c=values.get("junction_crit_c"), mem_crit_c=values.get("mem_crit_c"),
            edge_emergency_c=values.get("edge_emergency_c"),
            junction_emergency_c=values.get("junction_emergency_c"),
            mem_emergency_c=values.get("mem_emergency_c"),
            power_w=values.get("power_w"), power_cap_w=values.get("power_cap_w"),
            gpu_busy_percent=values.get("gpu_busy_percent"),
            mem_busy_percent=values.get("mem_busy_percent"),
            sclk_mhz=values.get("sclk_mhz"), mclk_mhz=values.get("mclk_mhz"), fan_rpm=fan,
            throttle_reasons=throttle, process_vram_bytes=process_vram, missing=missing)

    def close(self) -> None:
        pass

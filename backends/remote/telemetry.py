"""Telemetry of another machine, through the same ssh connection its contenders use.

When the host has llamaduel, ``llamaduel telemetry --jsonl`` runs there and its ticks stream
back (every source it has: amdgpu sysfs, libdrm, AMD SMI, rocm-smi, NVML, the host).
Otherwise each tick is one short shell command over the shared connection that reads
the amdgpu cards' sysfs files (written into a private folder here and read by the same
``AmdSysfsSource`` as local cards), ``nvidia-smi``'s CSV query, ``/proc/stat`` and
``/proc/meminfo``. What cannot be read is None with a reason, never 0.

Ticks are stamped with this machine's clock when they arrive (two machines' clocks need
not agree), and the sweep journals them with the host they came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shlex
import shutil
import tempfile
import time
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from backends.remote.ssh import SshHost, SshLauncher, shell_words, ssh_host
from backends.telemetry import DeviceSample, HostSample, TelemetrySnapshot, snapshot_from_json
from backends.telemetry.host import cpu_busy_percent, parse_cpu_ticks, parse_meminfo
from backends.telemetry.model import DEVICE_MEASUREMENTS, device_sample
from backends.telemetry.nvml import GPU_IDLE, decode_clock_event_reasons
from backends.telemetry.sysfs_read import normalize_pci
from backends.tool import ToolProcess

SMI_FIELDS = ("pci.bus_id", "name", "memory.used", "memory.total", "temperature.gpu",
              "temperature.memory", "power.draw", "power.limit", "utilization.gpu",
              "utilization.memory", "clocks.sm", "clocks.mem", "fan.speed",
              "clocks_throttle_reasons.active")
_SMI_VALUES = {  # CSV column -> (measurement, factor)
    2: ("vram_used_bytes", 1 << 20), 3: ("vram_total_bytes", 1 << 20), 4: ("edge_c", 1),
    5: ("mem_c", 1), 6: ("power_w", 1), 7: ("power_cap_w", 1), 8: ("gpu_busy_percent", 1),
    9: ("mem_busy_percent", 1), 10: ("sclk_mhz", 1), 11: ("mclk_mhz", 1),
}
_DEVICE_FILES = ("vendor device revision uevent product_name mem_info_vram_used mem_info_vram_total "
                 "mem_info_gtt_used mem_info_gtt_total gpu_busy_percent mem_busy_percent "
                 "pp_dpm_sclk pp_dpm_mclk")
# $0: the sysfs root (ends with /), $1: nvidia-smi, $2: its query, $3: first (the first tick).
_TICK = f"""r=$0
dump() {{
  printf '@@f %s\\n' "$1"
  {{ while IFS= read -r l || [ -n "$l" ]; do printf '%s\\n' "$l"; done < "$1"; }} 2>&1
  printf '@@e\\n'
}}
printf '@@nproc %s\\n' "$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 0)"
read -r l < /proc/stat && printf '@@stat %s\\n' "$l"
while IFS= read -r l; do case $l in Mem*) printf '@@mem %s\\n' "$l";; esac; done < /proc/meminfo
for c in "$r"sys/class/drm/card[0-9]*; do
  d=$c/device; [ -f "$d/vendor" ] || continue
  read -r v < "$d/vendor"; [ "$v" = 0x1002 ] || continue
  for f in {_DEVICE_FILES}; do if [ -e "$d/$f" ]; then dump "$d/$f"; fi; done
  i=${{r}}usr/share/libdrm/amdgpu.ids
  if [ "$3" = first ] && [ ! -e "$d/product_name" ] && [ -f "$i" ] && read -r id < "$d/device"; then
    printf '@@f %s\\n' "$i"; grep -i "^${{id#0x}}," "$i"; printf '@@e\\n'
  fi
  if [ -e "$d/gpu_metrics" ]; then
    printf '@@x %s\\n' "$d/gpu_metrics"; od -An -v -tx1 "$d/gpu_metrics" 2>&1; printf '@@e\\n'
  fi
  for f in "$d"/hwmon/hwmon*/name "$d"/hwmon/hwmon*/temp*_* "$d"/hwmon/hwmon*/power1_* \\
           "$d"/hwmon/hwmon*/freq*_input "$d"/hwmon/hwmon*/fan1_input "$d"/hwmon/hwmon*/pwm1; do
    if [ -f "$f" ]; then dump "$f"; fi
  done
done
if command -v "$1" >/dev/null 2>&1; then
  printf '@@smi\\n'; "$1" --query-gpu="$2" --format=csv,noheader,nounits 2>&1; printf '@@e\\n'
fi
"""
_FIND_LLAMADUEL = ('if command -v llamaduel >/dev/null 2>&1; then command -v llamaduel; '
                   'elif [ -x "$HOME/.local/bin/llamaduel" ]; then echo "$HOME/.local/bin/llamaduel"; fi')


@dataclass
class TickDump:
    """What one tick's command printed: files by path, and the host's counters."""

    files: dict[str, bytes] = field(default_factory=dict)
    cpu_count: int = 0
    stat: bytes = b""
    meminfo: bytes = b""
    smi: str | None = None  # None: no nvidia-smi there


def parse_tick(text: str) -> TickDump:
    dump = TickDump()
    block: list[str] | None = None
    name, kind = "", ""
    for line in text.split("\n"):
        if block is not None:
            if line != "@@e":
                block.append(line)
                continue
            body = "\n".join(block)
            if kind == "smi":
                dump.smi = body
            elif kind == "x":
                with contextlib.suppress(ValueError):
                    dump.files[name] = bytes.fromhex("".join(body.split()))
            else:
                dump.files[name] = body.encode()
            block = None
        elif line.startswith("@@f ") or line.startswith("@@x "):
            kind, name, block = line[2], line[4:], []
        elif line == "@@smi":
            kind, block = "smi", []
        elif line.startswith("@@nproc "):
            dump.cpu_count = int(line[8:].strip() or 0) if line[8:].strip().isdigit() else 0
        elif line.startswith("@@stat "):
            dump.stat = line[7:].encode()
        elif line.startswith("@@mem "):
            dump.meminfo += line[6:].encode() + b"\n"
    return dump


def parse_nvidia_smi(text: str, at: float, where: str) -> list[DeviceSample]:
    """Devices from ``nvidia-smi --query-gpu=SMI_FIELDS --format=csv,noheader,nounits``."""
    devices = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(SMI_FIELDS):
            continue
        values: dict[str, float | int | tuple[str, ...] | None] = {}
        missing = {"gtt_used_bytes": "GTT is an AMD notion",
                   "junction_c": "nvidia-smi does not report a hotspot temperature",
                   "fan_rpm": f"nvidia-smi gives the fan in percent, not rpm ({cells[12]})",
                   "process_vram_bytes": f"processes on {where} are not watched"}
        for index, (measure, factor) in _SMI_VALUES.items():
            number = _number(cells[index])
            if number is None:
                missing[measure] = f"nvidia-smi on {where} gives {cells[index] or 'nothing'}"
            else:
                values[measure] = int(number * factor) if factor > 1 else number
        try:
            values["throttle_reasons"] = decode_clock_event_reasons(int(cells[13], 16) & ~GPU_IDLE)
        except ValueError:
            missing["throttle_reasons"] = f"nvidia-smi on {where} gives {cells[13] or 'nothing'}"
        for measure in DEVICE_MEASUREMENTS:
            if values.get(measure) is None:
                missing.setdefault(measure, "nvidia-smi's query gives no such value")
        devices.append(device_sample(at=at, pci_address=normalize_pci(cells[0]), name=cells[1],
                                     source="nvidia-smi", values=values, missing=missing))
    return devices


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None  # [N/A], [Not Supported], [Unknown Error]
    return value if math.isfinite(value) else None


class _Mirror:
    """The host's amdgpu files in a private folder here, read by ``AmdSysfsSource``."""

    def __init__(self, where: str, sysfs_root: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="llamaduel-remote-sysfs-"))
        self.where, self.sysfs_root = where, sysfs_root
        self.source: object | None = None

    def sample(self, files: Mapping[str, bytes], at: float) -> list[DeviceSample]:
        from backends.telemetry.sysfs import AmdSysfsSource

        for remote, data in files.items():
            relative = remote[len(self.sysfs_root):] if remote.startswith(self.sysfs_root) else remote
            local = self.root / relative.lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
        if not isinstance(self.source, AmdSysfsSource):
            self.source = AmdSysfsSource(str(self.root))
        prefix = f"{self.root}/"
        there = f"{self.where}:{self.sysfs_root}"
        return [replace(d, missing={k: v.replace(prefix, there) for k, v in d.missing.items()})
                for d in self.source.sample((), at)]

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class RemoteTelemetry:
    """Another machine's telemetry for a sweep: ``stream``, ``watch_pids`` and ``close`` as
    ``backends.telemetry.Telemetry`` has them."""

    def __init__(self, host: SshHost | str, *, sysfs_root: str = "/", nvidia_smi: str = "nvidia-smi",
                 use_llamaduel: bool = True) -> None:
        self.ssh = host if isinstance(host, SshHost) else ssh_host(host)
        self.host = self.ssh.destination
        self.sysfs_root = sysfs_root.rstrip("/") + "/"
        self.nvidia_smi = nvidia_smi
        self.use_llamaduel = use_llamaduel
        self.command: tuple[str, ...] | None = None  # llamaduel there, once found
        self.mode: str | None = None  # "llamaduel" or "files"
        self._unavailable: list[tuple[str, str]] = []
        self._mirror: _Mirror | None = None
        self._ticks: tuple[int, ...] | None = None

    @property
    def unavailable(self) -> list[tuple[str, str]]:
        return list(self._unavailable)

    def _note(self, source: str, reason: str) -> None:
        if (source, reason) not in self._unavailable:
            self._unavailable.append((source, reason))

    def watch_pids(self, pids: Iterable[int]) -> None:
        """Processes on another host are not followed (their pids are not this machine's)."""

    def unwatch_all(self) -> None:
        """Nothing is followed there (see ``watch_pids``)."""

    async def detect(self) -> str:
        """How this host is read: ``llamaduel`` (it has llamaduel) or ``files``."""
        if self.mode is None:
            command = self.ssh.llamaduel
            if command is None and self.use_llamaduel:
                found = await self.ssh.run(f"exec sh -c {shlex.quote(_FIND_LLAMADUEL)}", timeout=15)
                path = found.text.strip()
                command = (path,) if found.returncode == 0 and path else None
            self.command = command if self.use_llamaduel else None
            self.mode = "llamaduel" if self.command else "files"
            if self.mode == "files":
                self._note("llamaduel", f"not installed on {self.host}: reading its sysfs files "
                           "and nvidia-smi over ssh")
        return self.mode

    async def stream(self, interval: float = 0.5) -> AsyncGenerator[TelemetrySnapshot, None]:
        """A snapshot per tick until the consumer stops (or cancels)."""
        # Each inner stream is closed with this one (its process killed then, not later).
        if await self.detect() == "llamaduel":
            async with contextlib.aclosing(self._stream_llamaduel(interval)) as ticks:
                async for snapshot in ticks:
                    yield snapshot
            self.mode = "files"  # it ended by itself: read the files from now on
        async with contextlib.aclosing(self._stream_files(interval)) as ticks:
            async for snapshot in ticks:
                yield snapshot

    async def _stream_llamaduel(self, interval: float) -> AsyncGenerator[TelemetrySnapshot, None]:
        assert self.command is not None
        argv = [*self.command, "telemetry", "--jsonl", "--interval", f"{interval:g}"]
        tool = ToolProcess(argv, launcher=SshLauncher(self.ssh))
        try:
            await tool.start()
        except OSError as error:
            self._note("llamaduel", f"llamaduel telemetry on {self.host} did not start: {error}")
            return
        notes = asyncio.ensure_future(self._read_notes(tool))
        try:
            async for line in tool.stdout_lines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    yield _restamp(snapshot_from_json(json.loads(line)), time.time())
            self._note("llamaduel", f"llamaduel telemetry on {self.host} ended "
                       f"({tool.stderr_tail[-1] if tool.stderr_tail else 'no message'})")
        finally:
            await tool.kill()
            notes.cancel()
            await asyncio.gather(notes, return_exceptions=True)

    async def _read_notes(self, tool: ToolProcess) -> None:
        async for line in tool.stderr_lines():
            tool.remember(line)
            prefix = "llamaduel telemetry: "
            if line.startswith(prefix) and " unavailable: " in line:
                source, _, reason = line[len(prefix):].partition(" unavailable: ")
                self._note(source, f"on {self.host}: {reason}")

    async def _stream_files(self, interval: float) -> AsyncGenerator[TelemetrySnapshot, None]:
        loop = asyncio.get_running_loop()
        words = [self.sysfs_root, self.nvidia_smi, ",".join(SMI_FIELDS)]
        next_tick = loop.time()
        while True:
            first = ["first"] if self._mirror is None else []
            command = f"exec sh -c {shlex.quote(_TICK)} {shell_words([*words, *first])}"
            result = await self.ssh.run(command, timeout=max(10.0, 4 * interval))
            if result.returncode == 0:
                yield self._snapshot(parse_tick(result.text), time.time())
            else:
                self._note("ssh", self.ssh.failure(result))
            next_tick += interval
            now = loop.time()
            if now > next_tick:
                next_tick += math.ceil((now - next_tick) / interval) * interval
            await asyncio.sleep(next_tick - now)

    def _snapshot(self, dump: TickDump, at: float) -> TelemetrySnapshot:
        devices: list[DeviceSample] = []
        if dump.files:
            if self._mirror is None:
                self._mirror = _Mirror(self.host, self.sysfs_root)
            devices += self._mirror.sample(dump.files, at)
        else:
            self._note("amdgpu-sysfs", f"no AMD GPU with the amdgpu driver under "
                       f"{self.host}:{self.sysfs_root}sys/class/drm")
        if dump.smi is not None:
            devices += parse_nvidia_smi(dump.smi, at, self.host)
            if not devices and dump.smi.strip():
                self._note("nvidia-smi", f"on {self.host}: {dump.smi.strip().splitlines()[-1][:160]}")
        else:
            self._note("nvidia-smi", f"not found on {self.host}")
        return TelemetrySnapshot(at=at, devices=tuple(devices), host=self._host_sample(dump, at))

    def _host_sample(self, dump: TickDump, at: float) -> HostSample:
        why = f"processes on {self.host} are not watched"
        missing = {"process_cpu_percent": why, "process_rss_bytes": why}
        cpu: float | None = None
        try:
            ticks = parse_cpu_ticks(dump.stat)
        except ValueError:
            missing["cpu_percent"] = f"no /proc/stat on {self.host}"
        else:
            if self._ticks is not None and len(self._ticks) == len(ticks):
                cpu = cpu_busy_percent(self._ticks, ticks)
            else:
                missing["cpu_percent"] = "CPU use needs a second tick"
            self._ticks = ticks
        memory = parse_meminfo(dump.meminfo)
        if memory is None:
            missing["ram_used_bytes"] = missing["ram_total_bytes"] = f"no MemAvailable on {self.host}"
        used, total = memory if memory is not None else (None, None)
        return HostSample(at=at, cpu_count=dump.cpu_count, cpu_percent=cpu, ram_used_bytes=used,
                          ram_total_bytes=total, missing=missing)

    def close(self) -> None:
        if self._mirror is not None:
            self._mirror.close()
            self._mirror = None


def _restamp(snapshot: TelemetrySnapshot, at: float) -> TelemetrySnapshot:
    """A snapshot from another machine on this machine's clock."""
    return replace(snapshot, at=at, devices=tuple(replace(d, at=at) for d in snapshot.devices),
                   host=replace(snapshot.host, at=at) if snapshot.host else None)

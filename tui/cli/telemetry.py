"""``llamaduel telemetry``: print GPU and host telemetry once per tick, like ``nvidia-smi dmon``.

One fixed-width line per device and one for the host each tick; ``--json`` prints one
document when it stops (``{"ticks": [...]}``, each ``snapshot_to_json`` of one tick) and
``--jsonl`` one JSON line per tick as it comes. Sources that cannot work
here are named once on stderr, with the reason. Ctrl-C, SIGTERM and a hang-up stop it
cleanly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TextIO

from tui.cli.common import Subparsers, cancellable

if TYPE_CHECKING:
    from backends.telemetry import DeviceSample, HostSample, Telemetry


GIB = 1024 ** 3
COLUMNS = (
    ("time", 8), ("device", 14), ("vram GiB", 11), ("edge", 4), ("junc", 4), ("mem", 4),
    ("power/cap W", 11), ("busy", 4), ("mbusy", 5), ("sclk/mclk", 9), ("throttle", 0),
)


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "telemetry",
        help="print GPU and host telemetry once per tick",
        description="Print VRAM, temperatures (°C edge/junction/memory), power, busy, clocks "
                    "and throttling per GPU, and host CPU/RAM, once per tick.",
    )
    parser.add_argument("--interval", type=float, default=1.0, metavar="S",
                        help="seconds between ticks, 0.05 to 10 (default 1)")
    parser.add_argument("--count", type=int, default=None, metavar="N",
                        help="stop after N ticks (default: until Ctrl-C)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true",
                        help="one JSON document when it stops: {\"ticks\": [...]}")
    output.add_argument("--jsonl", action="store_true", help="one JSON line per tick, as it comes")
    parser.add_argument("--sysfs-root", default="/", metavar="PATH",
                        help="read amdgpu sysfs under this root instead of / (for a copied tree)")
    parser.add_argument("--pid", type=int, action="append", default=[], metavar="PID",
                        help="also report CPU, RSS and VRAM of this process and its children "
                             "(repeatable)")
    parser.set_defaults(func=run_telemetry)


def _fmt(value: float | int | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def _pair(a: float | int | None, b: float | int | None, spec: str = ".0f") -> str:
    if a is None and b is None:
        return "-"
    return f"{_fmt(a, spec)}/{_fmt(b, spec)}"


def _row(cells: list[str]) -> str:
    """Text columns left-aligned, number columns right-aligned, the last one free."""
    out = []
    for (name, width), cell in zip(COLUMNS, cells):
        if not width:
            out.append(cell)
        elif name in ("time", "device"):
            out.append(cell.ljust(width))
        else:
            out.append(cell.rjust(width))
    return " ".join(out).rstrip()


def header_line() -> str:
    return "# " + _row([name for name, _ in COLUMNS])


def _cells(cells: list[str]) -> str:
    return "  " + _row(cells)


def device_line(clock: str, device: DeviceSample) -> str:
    throttle = "?" if device.throttle_reasons is None else ",".join(device.throttle_reasons) or "none"
    label = device.label if len(device.label) <= 14 else device.label[-14:]
    vram = _pair(None if device.vram_used_bytes is None else device.vram_used_bytes / GIB,
                 None if device.vram_total_bytes is None else device.vram_total_bytes / GIB, ".1f")
    return _cells([
        clock, label, vram, _fmt(device.edge_c), _fmt(device.junction_c), _fmt(device.mem_c),
        _pair(device.power_w, device.power_cap_w), _fmt(device.gpu_busy_percent),
        _fmt(device.mem_busy_percent), _pair(device.sclk_mhz, device.mclk_mhz), throttle,
    ])


def host_line(clock: str, host: HostSample) -> str:
    parts = [f"cpu {_fmt(host.cpu_percent)}% of {host.cpu_count}",
             f"ram {_pair(_gib(host.ram_used_bytes), _gib(host.ram_total_bytes), '.1f')} GiB"]
    if host.watched_pids or host.process_cpu_percent is not None:
        rss = None if host.process_rss_bytes is None else host.process_rss_bytes / GIB
        parts.append(f"procs {len(host.watched_pids)} cpu {_fmt(host.process_cpu_percent)}% "
                     f"rss {_fmt(rss, '.2f')} GiB")
    return "  " + f"{clock:<8} {'host':<14} " + "  ".join(parts)


def run_telemetry(options: argparse.Namespace) -> int:
    from backends.telemetry import Telemetry, TelemetryError, validate_interval
    from tui.cli import CommandError

    try:
        interval = validate_interval(options.interval)
    except TelemetryError as error:
        raise CommandError(str(error)) from None
    if options.count is not None and options.count < 1:
        raise CommandError(f"--count must be at least 1, not {options.count}")
    telemetry = Telemetry(sysfs_root=options.sysfs_root)
    try:
        for source, reason in telemetry.unavailable:
            print(f"llamaduel telemetry: {source} unavailable: {reason}", file=sys.stderr)
        if options.pid:
            telemetry.watch_pids(options.pid)
        mode = "json" if options.json else "jsonl" if options.jsonl else "text"
        return _print_ticks(telemetry, interval, options.count, mode, sys.stdout)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, without a second error at exit.
        sys.stdout = None
        return 0
    finally:
        telemetry.close()


def _print_ticks(telemetry: Telemetry, interval: float, count: int | None, mode: str,
                 out: TextIO) -> int:
    """Ticks as text lines, JSON lines (``jsonl``), or one document at the end (``json``,
    also after Ctrl-C, SIGTERM or a hang-up: what was sampled is never lost)."""
    import asyncio

    from backends.telemetry import TelemetrySnapshot, snapshot_to_json

    collected: list[dict[str, object]] = []

    def show(snapshot: TelemetrySnapshot) -> None:
        if mode == "json":
            collected.append(snapshot_to_json(snapshot))
        elif mode == "jsonl":
            print(json.dumps(snapshot_to_json(snapshot)), file=out, flush=True)
        else:
            clock = time.strftime("%H:%M:%S", time.localtime(snapshot.at))
            for device in snapshot.devices:
                print(device_line(clock, device), file=out)
            if snapshot.host is not None:
                print(host_line(clock, snapshot.host), file=out)
            out.flush()

    async def ticks() -> AsyncIterator[TelemetrySnapshot]:
        stream = telemetry.stream(interval)
        try:
            taken = 0
            async for snapshot in stream:
                yield snapshot
                taken += 1
                if count is not None and taken >= count:
                    return
        finally:
            await stream.aclose()

    if mode == "text":
        print(header_line(), file=out, flush=True)
    # The signals are the loop's own (as for a sweep): they stop the stream where it waits,
    # also where the shell that started llamaduel ignores SIGINT.
    asyncio.run(cancellable(ticks(), show))
    if mode == "json":
        json.dump({"ticks": collected}, out, indent=2)
        out.write("\n")
    return 0


def _gib(value: int | None) -> float | None:
    return None if value is None else value / GIB

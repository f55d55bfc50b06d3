"""What telemetry costs: time per full sample, and the sampler's own CPU at 2 Hz.

Goals: one full sample (amdgpu sysfs + psutil host with a watched child) in at most
0.3 ms (median), and at most 0.2 % of one core while streaming at 2 Hz. Also timed: a tree
with the two published MI50s (tests/data/amd), decoding gpu_metrics blobs of the smallest
and largest layouts, and one run of a stand-in rocm-smi (a Python script printing the
published 780M answer: the floor of what calling the real tool costs).

By default the sysfs side reads an MI50-shaped tree built in a temporary folder (the
same builder the tests use); ``--sysfs-root /`` measures the real driver files instead.
NVML is timed too when a driver is present.

    python3 benchmarks/telemetry_cost.py [--samples 2000] [--seconds 20] [--sysfs-root PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from backends.telemetry import Telemetry  # noqa: E402 (after the path set-up)


def time_calls(fn, count: int) -> list[float]:
    """Microseconds per call, each call timed on its own."""
    for _ in range(min(50, count)):
        fn()  # warm caches and psutil's first readings
    times = []
    for _ in range(count):
        start = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - start) / 1000.0)
    return times


def report(label: str, times: list[float]) -> None:
    times = sorted(times)
    p90 = times[int(len(times) * 0.9)]
    print(f"{label:<44} median {statistics.median(times):8.1f} µs   p90 {p90:8.1f} µs   "
          f"n={len(times)}")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def stream_for(telemetry: Telemetry, seconds: float, interval: float) -> list[float]:
    """Arrival time of each tick, in seconds after the stream started."""
    arrivals: list[float] = []
    start = time.monotonic()
    deadline = start + seconds
    async for _ in telemetry.stream(interval):
        now = time.monotonic()
        arrivals.append(now - start)
        if now >= deadline:
            break
    return arrivals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sysfs-root", default=None,
                        help="measure this root instead of a built MI50 tree")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        if options.sysfs_root is None:
            from sysfs_fixtures import build_mi50_tree

            root = build_mi50_tree(Path(folder) / "root").root
            print(f"sysfs: MI50-shaped tree in {root}")
        else:
            root = Path(options.sysfs_root)
            print(f"sysfs: {root}")
        child = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.01)"],
                                 start_new_session=True)
        try:
            return measure(str(root), child.pid, options)
        finally:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def measure(root: str, child_pid: int, options: argparse.Namespace) -> int:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, watched child pid {child_pid}")
    with Telemetry(sysfs_root=root) as full:
        full.watch_pids([child_pid])
        print(f"sources: {', '.join(full.sources)}")
        report("full sample (sysfs + host, watched child)", time_calls(full.sample, options.samples))
    with Telemetry(["amdgpu-sysfs"], sysfs_root=root) as sysfs_only:
        report("sysfs only, no process", time_calls(sysfs_only.sample, options.samples))
        sysfs_only.watch_pids([child_pid])
        report("sysfs only, per-process VRAM of the child",
               time_calls(sysfs_only.sample, options.samples))
    measure_published(options)
    with Telemetry(["host"]) as host_only:
        host_only.watch_pids([child_pid])
        report("host only (psutil, watched child)", time_calls(host_only.sample, options.samples))

    with Telemetry(["nvml"]) as nvml:
        if nvml.sources:
            nvml.watch_pids([child_pid])
            count = len(nvml.sample().devices)
            report(f"NVML only ({count} GPU, process list)", time_calls(nvml.sample, options.samples))
        else:
            print(f"NVML: not measured ({dict(nvml.unavailable)['nvml']})")

    # The sampler's own CPU while streaming at 2 Hz (event loop + sampling thread together).
    with Telemetry(sysfs_root=root) as streaming:
        streaming.watch_pids([child_pid])
        before_cpu, before_wall = cpu_seconds(), time.monotonic()
        arrivals = asyncio.run(stream_for(streaming, options.seconds, 0.5))
        used, wall = cpu_seconds() - before_cpu, time.monotonic() - before_wall
    ticks = len(arrivals)
    print(f"streaming at 2 Hz for {wall:.1f} s: {ticks} ticks, {used * 1000:.1f} ms CPU "
          f"= {100 * used / wall:.3f} % of one core ({used / ticks * 1e6:.0f} µs CPU per tick)")
    # No drift: tick k arrives k * 0.5 s after the start plus one sample's time, however long
    # the run; lateness does not grow with k.
    lateness = [t - k * 0.5 for k, t in enumerate(arrivals)]
    print(f"tick lateness (sample time + wake-up): first {lateness[0] * 1000:.2f} ms, "
          f"last {lateness[-1] * 1000:.2f} ms, median {statistics.median(lateness) * 1000:.2f} ms")
    return 0


def measure_published(options: argparse.Namespace) -> None:
    """Two published MI50s as one tree; gpu_metrics decoding; a stand-in rocm-smi."""
    from sysfs_fixtures import DATA, build_card, mi50_16gb_spec, nixos_workstation_specs
    from test_telemetry_gpu_metrics import blob_for

    from backends.telemetry.gpu_metrics import decode_gpu_metrics
    from backends.telemetry.rocm_smi import RocmSmiSource

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "mi50s"
        build_card(root, "card0", mi50_16gb_spec())
        build_card(root, "card1", nixos_workstation_specs()[0])
        with Telemetry(["amdgpu-sysfs"], sysfs_root=str(root)) as two:
            report("sysfs only, two published MI50s", time_calls(two.sample, options.samples))
        for revision in ((1, 0), (1, 8)):
            blob = blob_for(revision, {})
            report(f"decode gpu_metrics v{revision[0]}.{revision[1]} ({len(blob)} bytes)",
                   time_calls(lambda b=blob: decode_gpu_metrics(b), options.samples))
        script = Path(folder) / "rocm-smi"
        answer = DATA / "radeon-780m-rocm-smi-json" / "rocm-smi.json"
        script.write_text(f"#!{sys.executable}\nprint(open({str(answer)!r}).read())\n")
        script.chmod(0o755)
        tool = RocmSmiSource(str(script), refresh_s=0.0)
        report("rocm-smi stand-in: run and parse", time_calls(tool.sample, 20))


if __name__ == "__main__":
    sys.exit(main())

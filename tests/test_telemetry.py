"""Telemetry: merging, names, JSON, summaries, the host sampler on real processes, the stream,
and the library sources (pyamdgpuinfo, NVML) called for real on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sysfs_fixtures import MI50_PCI, MI50_VRAM_USED, build_mi50_tree

from backends.telemetry import (
    DeviceSample,
    Telemetry,
    TelemetryError,
    TelemetrySummary,
    match_backend_names,
    merge_device_samples,
    snapshot_from_json,
    snapshot_to_json,
    summarize,
    tokens_per_joule,
)
from backends.telemetry.amdgpuinfo import PyAmdgpuinfoSource
from backends.telemetry.host import (
    HostSampler,
    cpu_busy_percent,
    parse_cpu_ticks,
    parse_meminfo,
)
from backends.telemetry.nvml import NvmlSource, decode_clock_event_reasons

MI50_ROCM = "AMD Instinct MI60 / MI50, gfx906:sramecc+:xnack-"
MI50_VULKAN = "AMD Instinct MI60 / MI50 (RADV VEGA20)"


@pytest.fixture
def mi50(tmp_path: Path):
    return build_mi50_tree(tmp_path / "root")


@pytest.fixture
def child():
    """A real busy child process in its own process group, killed afterwards."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    yield process
    _kill_group(process)


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _wait_until_dead(pid: int) -> None:
    """SIGKILL takes effect asynchronously: wait until the process is a zombie or gone."""
    import psutil

    for _ in range(1000):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} survived SIGKILL")


def device(**values) -> DeviceSample:
    base = {"at": 1.0, "pci_address": MI50_PCI, "name": "AMD Instinct MI60 / MI50", "source": "amdgpu-sysfs"}
    base.update(values)
    return DeviceSample(**base)


# ------------------------------------------------------------ sources chosen here


def test_fixture_root_uses_sysfs_and_host_only(mi50):
    with Telemetry(sysfs_root=str(mi50.root)) as telemetry:
        assert telemetry.sources == ["amdgpu-sysfs", "host"]
        assert telemetry.unavailable == [
            (name, f"not used with sysfs root {mi50.root}: it reads the real hardware")
            for name in ("pyamdgpuinfo", "amd-smi", "rocm-smi", "nvml")
        ]


def test_unknown_source_name_is_one_line():
    with pytest.raises(TelemetryError, match=r"^unknown telemetry source 'nvidia-smi'; choose from "
                                             "amdgpu-sysfs, pyamdgpuinfo, amd-smi, rocm-smi, nvml, "
                                             "host$"):
        Telemetry(["nvidia-smi"])


def test_pyamdgpuinfo_absent_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyamdgpuinfo", None)  # import now raises ImportError
    source = PyAmdgpuinfoSource()
    assert not source.available
    assert source.unavailable_reason == "pyamdgpuinfo is not installed"


def test_pyamdgpuinfo_for_real_on_this_machine():
    import pyamdgpuinfo

    source = PyAmdgpuinfoSource()
    if not os.path.exists("/dev/dri"):
        # The real library raises FileNotFoundError here; it becomes a readable reason.
        with pytest.raises(FileNotFoundError):
            pyamdgpuinfo.detect_gpus()
        assert source.unavailable_reason == "no /dev/dri: no AMD GPU driver loaded"
        assert source.sample() == []
    else:
        count = pyamdgpuinfo.detect_gpus()
        assert len(source.gpus) == count
        if count == 0:
            assert source.unavailable_reason.startswith(("no access to /dev/dri/renderD",
                                                         "no AMD GPU among", "no render nodes"))


def test_nvml_absent_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert NvmlSource().unavailable_reason == "nvidia-ml-py is not installed"


def test_nvml_for_real_on_this_machine():
    import pynvml

    source = NvmlSource()
    try:
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError_LibraryNotFound:
            assert not source.available
            assert source.unavailable_reason == "NVML library not found: no NVIDIA driver installed"
            return
        pynvml.nvmlShutdown()
        # A machine with a driver: every GPU is there, named and joined by PCI address.
        assert source.available
        samples = source.sample()
        assert len(samples) == pynvml.nvmlDeviceGetCount()
        for sample in samples:
            assert sample.pci_address.count(":") == 2 and len(sample.pci_address) == 12
            assert sample.vram_total_bytes > 0 and sample.power_cap_w > 0
            assert sample.junction_c is None and "junction_c" in sample.missing
    finally:
        source.close()


def test_default_telemetry_names_each_unavailable_source():
    with Telemetry() as telemetry:
        reasons = dict(telemetry.unavailable)
        for name in ("amdgpu-sysfs", "pyamdgpuinfo", "amd-smi", "rocm-smi", "nvml"):
            assert (name in telemetry.sources) != (name in reasons)
        assert "host" in telemetry.sources
        snapshot = telemetry.sample()
        assert snapshot.host is not None and snapshot.host.ram_total_bytes > 0


def test_clock_event_reasons_to_words():
    assert decode_clock_event_reasons(0x1) == ()  # idle is not throttling
    assert decode_clock_event_reasons(0x0) == ()
    assert decode_clock_event_reasons(0x4 | 0x40) == ("power cap", "thermal (hardware)")
    assert decode_clock_event_reasons(0x20 | 0x1) == ("thermal (software)",)
    assert decode_clock_event_reasons(0x400) == ("clock event bit 10",)


# ------------------------------------------------------------ merging and names


def test_merge_fills_only_what_the_first_source_lacks():
    sysfs = device(edge_c=62.0, junction_c=78.0, power_w=None,
                   missing={"power_w": "I/O error reading power1_average"})
    libdrm = device(source="pyamdgpuinfo", edge_c=61.0, power_w=186.0, junction_c=None,
                    missing={"junction_c": "pyamdgpuinfo reads the edge sensor only"})
    merged = merge_device_samples(sysfs, libdrm)
    assert (merged.edge_c, merged.junction_c, merged.power_w) == (62.0, 78.0, 186.0)
    assert merged.source == "amdgpu-sysfs+pyamdgpuinfo"
    assert dict(merged.missing) == {}
    assert merge_device_samples(sysfs, device()) is sysfs


def test_backend_names_from_list_devices_descriptions():
    mi50 = device()
    names = match_backend_names([mi50], {"ROCm0": MI50_ROCM, "Vulkan0": MI50_VULKAN,
                                         "Vulkan1": "llvmpipe (LLVM 15.0.6, 256 bits)"})
    assert names == {MI50_PCI: ("ROCm0", "Vulkan0")}


def test_identical_gpus_pair_in_order_and_pci_values_are_exact():
    first, second = device(), device(pci_address="0000:43:00.0")
    names = match_backend_names([second, first], {
        "ROCm0": MI50_ROCM, "ROCm1": MI50_ROCM, "Vulkan1": MI50_VULKAN, "Vulkan0": MI50_VULKAN})
    assert names == {MI50_PCI: ("ROCm0", "Vulkan0"), "0000:43:00.0": ("ROCm1", "Vulkan1")}
    assert match_backend_names([first, second], {"CUDA0": "0000:43:00.0"}) == {
        "0000:43:00.0": ("CUDA0",)}
    h100 = device(pci_address="0000:18:00.0", name="NVIDIA H100 80GB HBM3", source="nvml")
    assert match_backend_names([h100], {"CUDA0": "NVIDIA H100 80GB HBM3",
                                        "Vulkan0": "NVIDIA H100 80GB HBM3"}) == {
        "0000:18:00.0": ("CUDA0", "Vulkan0")}


def test_snapshot_carries_backend_names(mi50):
    with Telemetry(sysfs_root=str(mi50.root),
                   device_names={"ROCm0": MI50_ROCM, "Vulkan0": MI50_VULKAN}) as telemetry:
        (sample,) = telemetry.sample().devices
    assert sample.backend_names == ("ROCm0", "Vulkan0")
    assert sample.label == "ROCm0"


# ------------------------------------------------------------ JSON and summaries


def test_snapshot_json_round_trip(mi50, child):
    with Telemetry(sysfs_root=str(mi50.root), device_names={"ROCm0": MI50_ROCM}) as telemetry:
        telemetry.watch_pids([child.pid])
        snapshot = telemetry.sample()
    text = json.dumps(snapshot_to_json(snapshot))
    assert snapshot_from_json(json.loads(text)) == snapshot
    assert snapshot.devices[0].vram_used_bytes == MI50_VRAM_USED
    assert snapshot.host.watched_pids == (child.pid,)


def test_summary_over_ticks(mi50):
    snapshots = []
    with Telemetry(["amdgpu-sysfs"], sysfs_root=str(mi50.root)) as telemetry:
        snapshots.append(telemetry.sample())
        (mi50.device / "mem_info_vram_used").write_text("20000000000\n")
        (mi50.hwmon / "temp2_input").write_text("91000\n")
        (mi50.hwmon / "power1_average").write_text("150000000\n")
        mi50.set_throttle(0x08)
        snapshots.append(telemetry.sample())
        (mi50.device / "mem_info_vram_used").write_text("18000000000\n")
        mi50.set_throttle(0x2000)
        snapshots.append(telemetry.sample())
    summary = summarize(snapshots)
    assert summary == TelemetrySummary(
        sample_count=3,
        duration_s=snapshots[-1].at - snapshots[0].at,
        peak_vram_bytes=20_000_000_000,
        peak_process_vram_bytes=None,
        max_edge_c=62.0,
        max_junction_c=91.0,
        max_mem_c=70.0,
        mean_power_w=(187.0 + 150.0 + 150.0) / 3,
        throttled=True,
        throttle_reasons=("HBM temperature", "power limit (PPT)"),
        peak_process_rss_bytes=None,
        mean_process_cpu_percent=None,
        least_headroom_c=110.0 - 91.0,  # the junction at 91 °C of its 110 °C limit
    )
    assert TelemetrySummary.from_json(json.loads(json.dumps(summary.to_json()))) == summary


def test_summary_of_nothing():
    summary = summarize([])
    assert summary.sample_count == 0 and summary.duration_s == 0.0
    assert summary.peak_vram_bytes is None and summary.mean_power_w is None
    assert summary.throttled is False and summary.throttle_reasons == ()


def test_tokens_per_joule():
    assert tokens_per_joule(100.0, 200.0) == 0.5
    assert tokens_per_joule(100.0, None) is None
    assert tokens_per_joule(100.0, 0.0) is None
    assert tokens_per_joule(float("nan"), 200.0) is None


# ------------------------------------------------------------ the host, on real processes


def test_host_sampler_on_a_real_busy_child(child):
    host = HostSampler()
    host.watch([child.pid])
    first = host.sample()
    time.sleep(0.3)  # let the child burn some CPU between two readings
    second = host.sample()
    assert second.watched_pids == (child.pid,)
    assert second.process_rss_bytes > 0
    assert second.process_cpu_percent >= 0.0
    assert first.process_cpu_percent >= 0.0
    assert 0.0 <= second.cpu_percent <= 100.0
    assert 0 < second.ram_used_bytes < second.ram_total_bytes
    assert dict(second.missing) == {}


def test_host_follows_children_and_notices_exit():
    code = ("import subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        grandchild = int(parent.stdout.readline())
        host = HostSampler()
        host.watch([parent.pid])
        sample = host.sample()
        assert set(sample.watched_pids) == {parent.pid, grandchild}
        assert sample.process_rss_bytes > 0
    finally:
        _kill_group(parent)
    _wait_until_dead(grandchild)
    gone = host.sample()
    assert gone.process_cpu_percent is None and gone.process_rss_bytes is None
    assert gone.missing["process_rss_bytes"] == "the watched processes have exited"


def test_host_without_watched_processes_says_so():
    sample = HostSampler().sample()
    assert sample.process_rss_bytes is None
    assert sample.missing["process_rss_bytes"] == "no benchmark process watched"
    assert sample.missing["cpu_percent"] == "CPU use needs a second tick"


def test_host_system_cpu_matches_psutils_definition():
    # user nice system idle iowait irq softirq steal guest guest_nice
    before = (100, 0, 50, 800, 40, 0, 10, 0, 30, 0)
    after = (160, 0, 70, 860, 60, 0, 10, 0, 50, 0)
    # deltas sum to 180; guest (20) is already inside user, so the total is 160;
    # busy = 160 - idle 60 - iowait 20 = 80 -> 50.0 %
    assert cpu_busy_percent(before, after) == 50.0
    assert cpu_busy_percent(after, after) == 0.0
    backwards = (90, 0, 50, 900, 40, 0, 10, 0, 30, 0)  # user went backwards: counts as 0
    assert cpu_busy_percent(before, backwards) == 0.0
    assert parse_cpu_ticks(b"cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 1 1 1 1 1 1 1 1 1\n") == tuple(range(1, 11))
    with pytest.raises(ValueError):
        parse_cpu_ticks(b"intr 1 2 3\n")


def test_host_ram_matches_psutil_on_this_machine():
    import psutil

    with open("/proc/meminfo", "rb") as handle:
        used, total = parse_meminfo(handle.read())
    memory = psutil.virtual_memory()
    assert total == memory.total
    assert abs(used - (memory.total - memory.available)) < 64 * 1024 * 1024  # read moments apart
    meminfo = b"MemTotal:  1000 kB\nMemFree:  300 kB\nMemAvailable:  400 kB\nBuffers: 1 kB\n"
    assert parse_meminfo(meminfo) == (600 * 1024, 1000 * 1024)
    # A container showing the host's MemAvailable: psutil takes MemFree instead.
    assert parse_meminfo(meminfo.replace(b"400 kB", b"5000 kB")) == (700 * 1024, 1000 * 1024)
    # No MemAvailable (old kernels) or 0: psutil's own estimate is used.
    assert parse_meminfo(meminfo.replace(b"MemAvailable:  400 kB\n", b"")) is None
    assert parse_meminfo(meminfo.replace(b"400 kB", b"0 kB")) is None


def test_host_without_proc_files_falls_back_to_psutil(tmp_path):
    host = HostSampler(proc_root=str(tmp_path))  # no stat, no meminfo there
    time.sleep(0.1)
    first = host.sample()
    second = host.sample()
    assert first.ram_total_bytes > first.ram_used_bytes > 0
    assert 0.0 <= second.cpu_percent <= 100.0
    assert "cpu_percent" not in second.missing
    host.close()


def test_host_reads_stat_and_meminfo_under_its_proc_root(tmp_path):
    (tmp_path / "stat").write_bytes(b"cpu  100 0 50 800 40 0 10 0 30 0\ncpu0 1 1 1 1 1 1 1 1 1 1\n")
    (tmp_path / "meminfo").write_bytes(b"MemTotal:  1000 kB\nMemFree:  300 kB\nMemAvailable:  400 kB\n")
    host = HostSampler(proc_root=str(tmp_path))
    first = host.sample()
    assert first.cpu_percent is None and first.missing["cpu_percent"] == "CPU use needs a second tick"
    assert (first.ram_used_bytes, first.ram_total_bytes) == (600 * 1024, 1000 * 1024)
    (tmp_path / "stat").write_bytes(b"cpu  160 0 70 860 60 0 10 0 50 0\n")  # same file, rewritten
    (tmp_path / "meminfo").write_bytes(b"MemTotal:  1000 kB\nMemFree:  100 kB\nMemAvailable:  200 kB\n")
    second = host.sample()
    assert second.cpu_percent == 50.0
    assert second.ram_used_bytes == 800 * 1024
    host.close()
    host.close()  # twice is fine


# ------------------------------------------------------------ the stream


async def test_stream_yields_snapshots_and_stops_cleanly(mi50, child):
    telemetry = Telemetry(sysfs_root=str(mi50.root))
    telemetry.watch_pids([child.pid])
    seen = []
    threads = set()
    async for snapshot in telemetry.stream(interval=0.05):
        seen.append(snapshot)
        threads.update(t.name for t in threading.enumerate() if t.name.startswith("llamaduel-telemetry"))
        if len(seen) == 5:
            break
    telemetry.close()
    assert len(seen) == 5
    assert [s.at for s in seen] == sorted(s.at for s in seen)
    assert all(s.devices[0].edge_c == 62.0 for s in seen)
    assert all(s.host.process_rss_bytes > 0 for s in seen)
    assert len(threads) == 1  # one dedicated sampling thread
    assert not [t for t in threading.enumerate() if t.name.startswith("llamaduel-telemetry")]


async def test_stream_degrades_on_eio_and_recovers(mi50):
    telemetry = Telemetry(["amdgpu-sysfs"], sysfs_root=str(mi50.root))
    caps = []
    reasons = []
    async for snapshot in telemetry.stream(interval=0.05):
        sample = snapshot.devices[0]
        caps.append(sample.power_cap_w)
        reasons.append(sample.missing.get("power_cap_w"))
        if len(caps) == 1:
            mi50.break_with_eio("hwmon/power1_cap")  # a GPU reset begins
        elif len(caps) == 3:
            mi50.restore("hwmon/power1_cap")  # and ends
        elif len(caps) == 4:
            break
    telemetry.close()
    assert caps == [300.0, None, None, 300.0]
    eio = f"I/O error reading {mi50.hwmon}/power1_cap (GPU busy or resetting)"
    assert reasons == [None, eio, eio, None]


async def test_stream_stops_when_its_task_is_cancelled(mi50):
    telemetry = Telemetry(["amdgpu-sysfs"], sysfs_root=str(mi50.root))
    ticks = []

    async def consume():
        async for snapshot in telemetry.stream(interval=0.05):
            ticks.append(snapshot)

    task = asyncio.create_task(consume())
    while len(ticks) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    telemetry.close()
    assert len(ticks) >= 2


@pytest.mark.parametrize("interval", [0.01, 11, "fast"])
async def test_stream_refuses_bad_intervals(interval):
    telemetry = Telemetry(["host"])
    with pytest.raises(TelemetryError, match=r"^telemetry interval must be"):
        async for _ in telemetry.stream(interval):
            pass
    telemetry.close()


def test_closed_telemetry_refuses_to_sample():
    telemetry = Telemetry(["host"])
    telemetry.close()
    telemetry.close()
    with pytest.raises(TelemetryError, match=r"^telemetry is closed$"):
        telemetry.sample()


def test_backends_telemetry_does_not_import_textual():
    code = ("import sys, backends.telemetry, backends.telemetry.sysfs, backends.telemetry.nvml, "
            "backends.telemetry.amdgpuinfo, backends.telemetry.host\n"
            "assert 'textual' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_device_sample_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        device().edge_c = 1.0  # type: ignore[misc]


def test_watched_pids_reach_sysfs_without_the_host_source(mi50, tmp_path):
    from sysfs_fixtures import add_fdinfo_process

    proc = tmp_path / "proc"
    add_fdinfo_process(proc, 4242, [{"drm-pdev": MI50_PCI, "drm-client-id": "5",
                                     "drm-memory-vram": "65536 KiB"}])
    with Telemetry(["amdgpu-sysfs"], sysfs_root=str(mi50.root), proc_root=str(proc)) as telemetry:
        assert telemetry.sample().devices[0].process_vram_bytes is None
        telemetry.watch_pids([4242])
        assert telemetry.sample().devices[0].process_vram_bytes == 65536 * 1024
        telemetry.unwatch_all()
        after = telemetry.sample().devices[0]
    assert after.process_vram_bytes is None
    assert after.missing["process_vram_bytes"] == "no benchmark process watched"

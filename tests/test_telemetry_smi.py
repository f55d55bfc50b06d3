"""rocm-smi and amd-smi: their parsers on published outputs (tests/data/amd), cross-checked
against each other and against sysfs's gpu_metrics, and the sources running the tools.

The AMD tools cannot run on this machine (no AMD GPU, no ROCm), so where a test needs the
tool itself, a small executable script placed first on PATH stands in for it and prints the
published output; everything from running the command to parsing its answer is real.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import time
from pathlib import Path

import pytest
from sysfs_fixtures import DATA, CardSpec, build_card, hexdump_bytes, published

from backends.telemetry import Telemetry
from backends.telemetry.amd_smi import (
    AmdSmiSource,
    parse_amd_smi_metric,
    parse_amd_smi_static,
)
from backends.telemetry.gpu_metrics import decode_gpu_metrics
from backends.telemetry.rocm_smi import RocmSmiSource, parse_rocm_smi_json
from backends.telemetry.smi_common import ToolFailure, run_tool


def fake_tool(folder: Path, name: str, outputs: dict[str, Path], status: int = 0,
              stderr: str = "") -> Path:
    """An executable ``name`` that prints the file for the first argument it knows."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    table = {key: str(path) for key, path in outputs.items()}
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"table = {table!r}\n"
        "path = next((table[a] for a in sys.argv[1:] if a in table), table.get('*'))\n"
        f"sys.stderr.write({stderr!r})\n"
        "sys.stdout.write(open(path, encoding='utf-8').read() if path else '')\n"
        f"sys.exit({status})\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


# ------------------------------------------------------------ rocm-smi --json


def test_rocm_smi_json_of_a_radeon_vii_old_spelling():
    (card,) = parse_rocm_smi_json(published("radeon-vii-rocm-smi-json", "rocm-smi.json"))
    # rocm-smi of 2019: "(c)" and "mem"; newer ones write "(C)" and "memory".
    assert (card.edge_c, card.junction_c, card.mem_c, card.power_w) == (77.0, 103.0, 79.0, 222.0)
    assert card.pci_address == "rocm-smi:card0"
    assert card.missing["pci_address"] == (
        "rocm-smi gave no PCI bus: cannot join it to other sources")
    assert card.missing["fan_rpm"] == "rocm-smi did not report it"


def test_rocm_smi_json_of_an_mi300x_and_an_rx9060xt():
    (mi300x,) = parse_rocm_smi_json(published("mi300x-amd-smi-and-rocm-smi", "rocm-smi.json"))
    assert (mi300x.edge_c, mi300x.junction_c, mi300x.mem_c) == (None, 45.0, 38.0)
    assert (mi300x.power_w, mi300x.power_cap_w) == (159.0, 750.0)  # "Current Socket ..."
    assert (mi300x.vram_total_bytes, mi300x.vram_used_bytes) == (205822885888, 299687936)
    (rx,) = parse_rocm_smi_json(published("rx9060xt-rocm-smi-json", "rocm-smi.json"))
    assert (rx.edge_c, rx.junction_c, rx.mem_c, rx.power_w, rx.power_cap_w) == (
        39.0, 41.0, 61.0, 17.0, 175.0)
    assert rx.gpu_busy_percent == 100.0  # what the card says, even at idle


def test_rocm_smi_json_of_a_780m_apu_carries_its_pci_bus():
    (apu,) = parse_rocm_smi_json(published("radeon-780m-rocm-smi-json", "rocm-smi.json"))
    assert (apu.pci_address, apu.name) == ("0000:c4:00.0", "Phoenix3")
    assert (apu.edge_c, apu.power_w, apu.gpu_busy_percent) == (31.0, 7.222, 19.0)
    assert (apu.sclk_mhz, apu.mclk_mhz) == (800.0, 400.0)  # "(800Mhz)"
    assert apu.junction_c is None and "junction_c" in apu.missing


def test_rocm_smi_output_that_is_not_json_is_one_line():
    with pytest.raises(ToolFailure, match=r"^rocm-smi printed no JSON$"):
        parse_rocm_smi_json("ERROR: GPU[0] : Unable to get temperature\n")
    with pytest.raises(ToolFailure, match=r"^rocm-smi printed JSON that is not an object of cards$"):
        parse_rocm_smi_json("[1, 2]")


# ------------------------------------------------------------ amd-smi


def test_amd_smi_metric_of_an_mi300x():
    (gpu,) = parse_amd_smi_metric(published("mi300x-amd-smi-and-rocm-smi", "amd-smi-metric.json"))
    assert (gpu.edge_c, gpu.junction_c, gpu.mem_c, gpu.power_w) == (None, 45.0, 38.0, 158.0)
    assert gpu.missing["edge_c"] == "amd-smi did not report it"  # "edge": "N/A"
    assert gpu.gpu_busy_percent == 0.0 and gpu.mem_busy_percent == 0.0


def test_amd_smi_static_limits_of_an_mi210():
    static = parse_amd_smi_static(published("mi210-amd-smi-static", "amd-smi-static.json"))
    info = static[0]
    assert info.name == "AMD Instinct MI210"
    assert dict(info.limits) == {
        "edge_crit_c": 99.0, "junction_crit_c": 100.0, "mem_crit_c": 94.0,
        "edge_emergency_c": 99.0, "junction_emergency_c": 105.0, "mem_emergency_c": 99.0,
        "power_cap_w": 300.0}
    assert info.pci_address is None  # this static output has no bus.bdf


def test_amd_smi_and_rocm_smi_agree_on_the_same_mi300x():
    (amd,) = parse_amd_smi_metric(published("mi300x-amd-smi-and-rocm-smi", "amd-smi-metric.json"))
    (rocm,) = parse_rocm_smi_json(published("mi300x-amd-smi-and-rocm-smi", "rocm-smi.json"))
    assert (amd.junction_c, amd.mem_c) == (rocm.junction_c, rocm.mem_c) == (45.0, 38.0)
    assert amd.edge_c is None and rocm.edge_c is None  # no edge sensor on an MI300X
    assert abs(amd.power_w - rocm.power_w) <= 2.0  # 158 and 159 W, read a moment apart


def _energy(text: str, gpu: int) -> tuple[int, float]:
    counter = re.search(rf"GPU\[{gpu}\]\s*: Energy counter: (\d+)", text)
    micro = re.search(rf"GPU\[{gpu}\]\s*: Accumulated Energy \(uJ\): ([\d.]+)", text)
    assert counter and micro
    return int(counter.group(1)), float(micro.group(1))


@pytest.mark.parametrize("run", [1, 2])
def test_mi100_energy_gpu_metrics_rocm_smi_and_amd_smi_agree(run):
    blob = decode_gpu_metrics(hexdump_bytes(published("mi100-gpu-metrics-v1.3",
                                                      f"gpu-metrics-{run}.hexdump")))
    counter, micro = _energy(published("mi100-gpu-metrics-v1.3", f"rocm-smi-energy-{run}.txt"), 1)
    joules = float(re.findall(r"TOTAL_ENERGY_CONSUMPTION: ([\d.]+) J", published(
        "mi100-gpu-metrics-v1.3", f"amd-smi-energy-{run}.txt"))[1])
    # sysfs (the blob read just after) and rocm-smi: the same counter; the first pair was
    # read a moment apart (59230 then 59231).
    assert 0 <= blob.value("energy_accumulator") - counter <= 1
    # amd-smi's joules are that counter times rocm-smi's resolution (about 15.3 uJ a count).
    assert joules == pytest.approx(counter * (micro / counter) / 1e6, abs=0.001)
    assert 15.2 < micro / counter < 15.4


# ------------------------------------------------------------ the tools, run for real


@pytest.fixture
def tool_path(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def test_rocm_smi_on_path_fills_what_sysfs_lacks(tmp_path, tool_path):
    fake_tool(tool_path, "rocm-smi", {"*": DATA / "radeon-780m-rocm-smi-json/rocm-smi.json"})
    # The 780M's sysfs as its published rocm-smi output describes it, but without a power
    # file (as on kernels whose APU power1_input needs root): rocm-smi gives the power.
    root = tmp_path / "root"
    build_card(root, "card0", CardSpec(pci="0000:c4:00.0", device_id=0x1900,
                                       temps={"edge": (31000, None, None)}, busy_percent=19,
                                       sclk_hz=800_000_000, mclk_hz=400_000_000))
    with Telemetry(["amdgpu-sysfs", "rocm-smi"], sysfs_root=str(root)) as telemetry:
        assert telemetry.sources == ["amdgpu-sysfs", "rocm-smi"]
        (device,) = telemetry.sample().devices
    assert device.source == "amdgpu-sysfs+rocm-smi"
    assert (device.power_w, device.edge_c, device.gpu_busy_percent) == (7.222, 31.0, 19.0)
    assert "power_w" not in device.missing


def test_rocm_smi_is_not_asked_when_sysfs_has_everything(tmp_path, tool_path):
    # A tool that fails loudly: if it were run, the failure would be noted.
    fake_tool(tool_path, "rocm-smi", {"*": DATA / "radeon-780m-rocm-smi-json/rocm-smi.json"},
              status=3, stderr="rocm-smi must not run\n")
    source = RocmSmiSource()
    source._last = parse_rocm_smi_json(published("radeon-780m-rocm-smi-json", "rocm-smi.json"))
    source._read_at = float("inf")
    root = tmp_path / "root"
    build_card(root, "card0", CardSpec(pci="0000:c4:00.0", device_id=0x1900))
    with Telemetry(["amdgpu-sysfs", source], sysfs_root=str(root)) as telemetry:
        (device,) = telemetry.sample().devices
        assert device.power_w == 7.222  # the cached answer filled the gap; no new run
        assert telemetry.unavailable == []


def test_a_failing_tool_is_one_line_and_leaves_nothing_running(tmp_path, tool_path):
    fake_tool(tool_path, "rocm-smi", {}, status=2,
              stderr="ERROR:root:Driver not initialized (amdgpu not found in modules)\n")
    root = tmp_path / "root"
    build_card(root, "card0", CardSpec(pci="0000:c4:00.0", device_id=0x1900))
    with Telemetry(["amdgpu-sysfs", "rocm-smi"], sysfs_root=str(root)) as telemetry:
        telemetry.sample()
        assert telemetry.unavailable == [(
            "rocm-smi", ("sampling failed: ToolFailure: rocm-smi exited with status 2: "
                        "ERROR:root:Driver not initialized (amdgpu not found in modules)"))]


def test_a_tool_that_hangs_is_killed_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "hang"
    script.write_text(f"#!{sys.executable}\nimport os, subprocess, time\n"
                      "child = subprocess.Popen(['sleep', '600'])\n"
                      f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
                      "time.sleep(600)\n")
    script.chmod(0o755)
    with pytest.raises(ToolFailure, match=r"^hang gave no answer within 0\.5 s$"):
        run_tool([str(script)], timeout_s=0.5)
    grandchild = int(pid_file.read_text())
    for _ in range(2000):  # SIGKILL of the group lands asynchronously: wait for the state
        if _gone(grandchild):
            break
        time.sleep(0.005)
    else:
        pytest.fail(f"the tool's child {grandchild} survived the timeout")


def _gone(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (ProcessLookupError, FileNotFoundError):
        return True


def test_amd_smi_cli_runs_static_once_and_metric_for_readings(tmp_path, tool_path):
    # The two published outputs come from different machines (an MI210's static, an
    # MI300X's metric): this checks the plumbing - which command gives which value.
    fake_tool(tool_path, "amd-smi", {
        "static": DATA / "mi210-amd-smi-static/amd-smi-static.json",
        "metric": DATA / "mi300x-amd-smi-and-rocm-smi/amd-smi-metric.json"})
    source = AmdSmiSource(use_library=False)
    assert source.available and source.unavailable_reason is None
    (gpu,) = source.sample()
    assert gpu.name == "AMD Instinct MI210" and gpu.source == "amd-smi"  # from static
    assert (gpu.junction_c, gpu.power_w) == (45.0, 158.0)  # from metric
    assert (gpu.junction_crit_c, gpu.junction_emergency_c, gpu.power_cap_w) == (
        100.0, 105.0, 300.0)  # static's slowdown / shutdown limits and cap
    assert gpu.pci_address == "amd-smi:gpu0"


def test_amd_smi_absent_says_why(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # the library does not import
    monkeypatch.setenv("PATH", str(tmp_path))  # and no amd-smi on PATH
    source = AmdSmiSource()
    assert not source.available
    assert source.unavailable_reason == (
        "the amdsmi Python library is not installed, and amd-smi is not on PATH")
    assert source.sample() == []


def test_rocm_smi_runs_again_only_for_gaps_it_filled_before(tmp_path, tool_path):
    runs = tmp_path / "runs"
    script = fake_tool(tool_path, "rocm-smi",
                       {"*": DATA / "radeon-780m-rocm-smi-json/rocm-smi.json"})
    script.write_text(script.read_text().replace(
        "import sys\n", f"import sys\nopen({str(runs)!r}, 'a').write('run\\n')\n", 1))
    root = tmp_path / "root"
    spec = CardSpec(pci="0000:c4:00.0", device_id=0x1900, temps={"edge": (31000, None, None)},
                    power_uw=7_000_000, power_file="power1_input", busy_percent=19,
                    sclk_hz=800_000_000, mclk_hz=400_000_000)
    build_card(root, "card0", spec)
    with Telemetry(["amdgpu-sysfs", RocmSmiSource(refresh_s=0.0)], sysfs_root=str(root)) as t:
        t.sample()  # the first time it is asked, to learn what it can tell
        assert runs.read_text() == "run\n"
        # Still missing now: a junction and memory sensor this APU does not have, its fan...
        # nothing rocm-smi gave a value for, so it is not run again.
        (device,) = t.sample().devices
        assert device.junction_c is None and runs.read_text() == "run\n"
        (root / "sys/class/drm/card0/device/hwmon/hwmon0/power1_input").unlink()
        (device,) = t.sample().devices  # power is missing now, and rocm-smi had it
        assert device.power_w == 7.222 and runs.read_text() == "run\nrun\n"

"""``llamaduel telemetry``, run as a real process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sysfs_fixtures import MI50_PCI, build_mi50_tree

from backends.telemetry import Telemetry, snapshot_from_json

REPO = Path(__file__).resolve().parent.parent
# What the ``llamaduel`` console script runs (``python -m tui.cli`` would load tui.cli twice).
LLAMADUEL = [sys.executable, "-c", "import sys; from tui.cli import main; sys.exit(main())"]


def llamaduel(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*LLAMADUEL, *args], cwd=REPO, capture_output=True, text=True, check=False,
                          timeout=timeout)


@pytest.fixture
def mi50(tmp_path: Path):
    return build_mi50_tree(tmp_path / "root", throttle_status=0x08)


def test_lines_per_tick_on_an_mi50_tree(mi50):
    result = llamaduel("telemetry", "--count", "2", "--interval", "0.05", "--sysfs-root", str(mi50.root))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("# time     device            vram GiB edge junc  mem power/cap W busy "
                        "mbusy sclk/mclk throttle")
    device_line = re.compile(
        r"^  \d\d:\d\d:\d\d 0000:03:00\.0     16\.0/32\.0   62   78   70     187/300   97    35 "
        r"1725/1000 HBM temperature$")
    host_line = re.compile(r"^  \d\d:\d\d:\d\d host           cpu (-|\d+)% of \d+  ram [\d.]+/[\d.]+ GiB$")
    assert len(lines) == 5
    for device, host in (lines[1:3], lines[3:5]):
        assert device_line.match(device), device
        assert host_line.match(host), host
    assert result.stderr.splitlines() == [
        f"llamaduel telemetry: {name} unavailable: not used with sysfs root {mi50.root}: "
        "it reads the real hardware"
        for name in ("pyamdgpuinfo", "amd-smi", "rocm-smi", "nvml")
    ]


def test_json_lines_are_snapshots(mi50):
    result = llamaduel("telemetry", "--count", "3", "--interval", "0.05", "--jsonl",
                       "--sysfs-root", str(mi50.root), "--pid", str(os.getpid()))
    assert result.returncode == 0, result.stderr
    snapshots = [snapshot_from_json(json.loads(line)) for line in result.stdout.splitlines()]
    assert len(snapshots) == 3
    for snapshot in snapshots:
        (device,) = snapshot.devices
        assert device.pci_address == MI50_PCI
        assert device.throttle_reasons == ("HBM temperature",)
        assert device.process_vram_bytes == 0  # this test process holds no GPU memory
        assert os.getpid() in snapshot.host.watched_pids
        assert snapshot.host.process_rss_bytes > 0


def test_this_machine_says_once_which_sources_are_off_and_still_prints_the_host():
    expected = [f"llamaduel telemetry: {name} unavailable: {reason}"
                for name, reason in Telemetry().unavailable]
    result = llamaduel("telemetry", "--count", "2", "--interval", "0.05")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == expected
    assert sum(" host " in line for line in result.stdout.splitlines()) == 2


def _ignore_sigint() -> None:  # runs in the child: as under a shell's `cmd &`, which ignores SIGINT
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _signalled(mi50, *args: str, signum: int, lines: int, preexec=None) -> tuple[list[str], str, str, int]:
    """``llamaduel telemetry ARGS`` until its first ``lines`` lines are out, then ``signum``:
    those lines, the rest of stdout, stderr and the exit code (killed after 30 s)."""
    process = subprocess.Popen(
        [*LLAMADUEL, "telemetry", "--interval", "0.05", *args, "--sysfs-root", str(mi50.root)], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=preexec)
    try:
        first = [process.stdout.readline() for _ in range(lines)]
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return first, out, err, process.returncode


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_ctrl_c_exits_cleanly(mi50, inherited):
    """Also where the shell that started it ignores SIGINT (a job started with `&`): the
    signal is the event loop's own, not Python's default handler."""
    first, _out, err, code = _signalled(mi50, signum=signal.SIGINT, lines=2,
                                        preexec=_ignore_sigint if inherited == "ignored" else None)
    assert first[0].startswith("# time") and "0000:03:00.0" in first[1]
    assert code == 0
    assert "Traceback" not in err


def test_sigterm_ends_the_stream_on_a_whole_line(mi50):
    first, out, err, code = _signalled(mi50, "--jsonl", signum=signal.SIGTERM, lines=1)
    assert code == 0 and "Traceback" not in err
    assert all(json.loads(line)["devices"] for line in [*first, *out.splitlines()])


@pytest.mark.parametrize(("args", "message"), [
    (["--interval", "20"], "llamaduel: telemetry interval must be between 0.05 and 10.0 seconds, not 20.0"),
    (["--interval", "0"], "llamaduel: telemetry interval must be between 0.05 and 10.0 seconds, not 0.0"),
    (["--count", "0"], "llamaduel: --count must be at least 1, not 0"),
])
def test_bad_input_is_one_line(args, message):
    result = llamaduel("telemetry", *args)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [message]
    assert result.stdout == ""

"""Contenders on other hosts, for real: an OpenSSH sshd on 127.0.0.1 (throwaway keys and
config, tests/sshd.py), the real CPU and Vulkan builds run through it as "remote"
contenders, connections that drop mid-point, a host that refuses the key and one that
never answers, and telemetry read from the host. Nothing is left running on either side.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from sshd import SilentPort, SshServer
from sysfs_fixtures import MI50_VRAM_USED, build_mi50_tree

from backends.builds import probe_build
from backends.journal.sweep import (
    PointFailed,
    PointStarted,
    ResultReceived,
    SweepFinished,
    SweepStarted,
    TelemetryRecorded,
)
from backends.models import read_model
from backends.remote import probe as remote_probe
from backends.remote import ssh as remote
from backends.remote.probe import parse_build_target, probe_remote_build, read_remote_model, split_remote
from backends.remote.ssh import SshError, SshHost
from backends.remote.telemetry import SMI_FIELDS, RemoteTelemetry
from backends.sweep import RunRequest, SweepSpec, read_journal, resume, run_sweep
from backends.telemetry.model import DEVICE_MEASUREMENTS

pytestmark = pytest.mark.toolchain

REPO = Path(__file__).resolve().parent.parent
# An H200's real answer to this query (captured with clocks_event_reasons.active, the newer
# name of the same field); the stand-in nvidia-smi gives it only when asked exactly that.
SMI_CSV = REPO / "tests/data/nvidia-smi/h200-query.csv"
FIELDS = ",".join(SMI_FIELDS)
SPEC = SweepSpec(name="tiny", prompts=(32,), gens=(8,), depths=(0, 128), repetitions=2,
                 flash_attn=True, threads=1)
# Long enough on lavapipe (about 350 t/s) to be cut in the middle: 4 x 256 tokens.
SLOW = SweepSpec(name="slow", prompts=(256,), gens=(8,), depths=(0,), repetitions=3,
                 flash_attn=True, threads=1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sshd")
    silent = SilentPort()
    sshd = SshServer(folder).start()
    before = os.environ.get("LLAMADUEL_SSH_CONFIG")
    os.environ["LLAMADUEL_SSH_CONFIG"] = str(sshd.client_config(silent.port))
    try:
        yield sshd
    finally:
        remote.close_hosts()
        remote._hosts.clear()
        sshd.stop()
        silent.close()
        if before is None:
            os.environ.pop("LLAMADUEL_SSH_CONFIG", None)
        else:
            os.environ["LLAMADUEL_SSH_CONFIG"] = before


def ours(marker: str) -> list[psutil.Process]:
    """Live processes whose command line holds ``marker`` (a test's own model path)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(process.info["cmdline"] or ()) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue
    return found


def masters() -> list[psutil.Process]:
    """This process's ssh master connections (their sockets are named with its pid)."""
    return ours(f"-{os.getpid()} [mux]")


def wait_until(condition, what: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still {what} after {within:g} s")
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def nothing_left(server, tiny_llama):
    yield
    remote.close_hosts()
    wait_until(lambda: not ours(str(tiny_llama)), "a llama-bench of this test running")
    wait_until(lambda: not masters(), "an ssh master connection open")
    # The wrapper's files on the "host" (its TMPDIR is the server's folder) are gone too.
    assert not list(server.tmpdir.iterdir())


@pytest.fixture(scope="module")
def cpu(cpu_bin):
    return probe_build(cpu_bin, "cpu")


@pytest.fixture(scope="module")
def remote_vk(server, vulkan_bin):
    build = probe_remote_build("box", str(vulkan_bin), "vk")
    assert build.problem is None, build.problem
    return build


def test_build_targets_name_a_host_like_scp(tmp_path):
    folder = tmp_path / "odd:name"
    folder.mkdir()
    assert parse_build_target("rocm=gpu2:~/llama.cpp/build") == ("rocm", "gpu2", "~/llama.cpp/build")
    assert parse_build_target("me@10.0.0.2:/opt/b/build-vk")[1:] == ("me@10.0.0.2", "/opt/b/build-vk")
    assert parse_build_target(f"x={folder}") == ("x", None, str(folder))  # a local folder wins
    assert parse_build_target("x=./a:b")[1] is None  # a '/' before the ':' is a local path
    assert parse_build_target("x=/srv/b", {"x": "gpu2"}) == ("x", "gpu2", "/srv/b")
    assert split_remote("[::1]:/srv/b") == ("::1", "/srv/b")
    with pytest.raises(ValueError, match="not an ssh destination"):
        parse_build_target("x=-oProxyCommand=evil:/b")


def test_a_remote_probe_learns_what_a_local_one_does(remote_vk, vulkan_bin):
    local = probe_build(vulkan_bin, "vk", use_cache=False)
    assert (remote_vk.host, remote_vk.machine) == ("box", os.uname().nodename)
    for field in ("backend", "devices", "flags", "env", "version", "split_modes", "note"):
        assert getattr(remote_vk, field) == getattr(local, field), field
    assert remote_vk.perplexity == local.perplexity and remote_vk.completion == local.completion
    assert remote_vk.contender_json()["host"] == "box"
    missing = probe_remote_build("box", "/no/such/build", "x")
    assert missing.problem == "folder not found on box: /no/such/build"


def test_only_the_header_of_a_remote_model_travels(server, tiny_llama, tmp_path, monkeypatch):
    assert read_remote_model("box", str(tiny_llama)) == read_model(tiny_llama)
    fetched: list[int] = []
    real = SshHost.run_sync

    def counting(self, command, timeout, **kwargs):
        result = real(self, command, timeout, **kwargs)
        if "tail -c" in command:
            fetched.append(len(result.stdout))
        return result

    monkeypatch.setattr(SshHost, "run_sync", counting)
    monkeypatch.setattr(remote_probe, "FIRST_FETCH_BYTES", 64)
    assert read_remote_model("box", str(tiny_llama)) == read_model(tiny_llama)
    header = read_model(tiny_llama).size_bytes - read_model(tiny_llama).tensor_bytes
    assert len(fetched) > 3 and sum(fetched) < 2 * header + 64  # grown by doubling, no weights
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_llama.read_bytes()[:5000])
    assert "truncated" in (read_remote_model("box", str(cut)).problem or "")
    assert read_remote_model("box", "/no/model.gguf").problem == "no such file on box"


async def test_a_sweep_across_a_local_and_a_remote_contender(server, cpu_bin, vulkan_bin, tiny_llama,
                                                             tmp_path):
    # The slow one (Vulkan on lavapipe) here, the fast one on the "host": the host's points
    # must run while this machine's first one still does.
    local = probe_build(vulkan_bin, "vk")
    there = probe_remote_build("box", str(cpu_bin), "cpu")
    telemetry = RemoteTelemetry("box", use_llamaduel=False)
    events = [e async for e in run_sweep(RunRequest([local, there], tiny_llama, SPEC, run_dir=tmp_path, granularity="point"), host_telemetry={"box": telemetry})]
    telemetry.close()
    start = events[0]
    assert isinstance(start, SweepStarted)
    assert start.contenders["cpu"]["host"] == "box" and "host" not in start.contenders["vk"]
    assert start.contenders["vk"]["machine"] == start.contenders["cpu"]["machine"]  # one box here
    results = [e for e in events if isinstance(e, ResultReceived)]
    assert {(e.build, e.result.point) for e in results} == {
        (b, p) for b in ("cpu", "vk") for p in SPEC.points()}
    assert {e.build: e.result.backends for e in results} == {"cpu": "CPU", "vk": "Vulkan"}
    assert isinstance(events[-1], SweepFinished) and events[-1].failures == 0
    # Different hosts share no GPU: their points ran at the same time.
    began = {(e.build, e.point.key): e.at for e in events if isinstance(e, PointStarted)}
    spans: dict[str, list[tuple[float, float]]] = {}
    for e in results:
        spans.setdefault(e.build, []).append((began[(e.build, e.result.point.key)], e.at))
    assert any(a < d and c < b for a, b in spans["cpu"] for c, d in spans["vk"])
    # The host's telemetry is journalled as the host's, and so are its blocks' summaries.
    ticks = [e for e in read_journal(tmp_path) if isinstance(e, TelemetryRecorded)]
    assert ticks and {t.sample.get("from_host") for t in ticks} == {"box"}
    assert all(r.telemetry is None or r.telemetry.get("from_host") == "box"
               for r in results if r.build == "cpu")


def _kill_connection(how: str, server: SshServer) -> None:
    if how == "sshd session":
        for pid in server.sessions():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    else:
        for process in masters():
            process.kill()


@pytest.mark.parametrize("how", ["sshd session", "ssh master"])
async def test_a_connection_killed_mid_point_fails_that_point_and_resume_completes(
        how, server, cpu, remote_vk, tiny_llama, tmp_path):
    killed: list[int] = []
    events = []
    async for event in run_sweep(RunRequest([cpu, remote_vk], tiny_llama, SLOW, run_dir=tmp_path, granularity="point")):
        events.append(event)
        if isinstance(event, PointStarted) and event.build == "vk" and not killed:
            # The host's llama-bench (its wrapper forks, then execs it), running the point.
            pid = event.pid
            wait_until(lambda pid=pid: psutil.Process(pid).name() == "llama-bench", "not yet llama-bench")
            assert [f.suffix for f in server.tmpdir.iterdir()] == [".pid"]  # the wrapper's, there
            killed.append(event.pid)
            _kill_connection(how, server)
    failures = [e for e in events if isinstance(e, PointFailed)]
    assert [(f.build, f.reason) for f in failures] == [("vk", "ssh: connection to box closed")]
    wait_until(lambda: not psutil.pid_exists(killed[0])
               or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE, "the cut llama-bench running")
    assert events[-1].failures == 1 and events[-1].results >= 1
    rest = [e async for e in resume(tmp_path, retry_failed=True)]
    assert [e.build for e in rest if isinstance(e, ResultReceived)] == ["vk"]
    journal = read_journal(tmp_path)
    done = {(e.build, e.result.point.key) for e in journal if isinstance(e, ResultReceived)}
    assert done == {(b, p.key) for b in ("cpu", "vk") for p in SLOW.points()}


async def test_a_remote_point_that_hangs_or_a_cancelled_sweep_leaves_nothing_on_the_host(
        server, remote_vk, tiny_llama, tmp_path):
    # A time-out shorter than the point: killed, there too.
    events = [e async for e in run_sweep(RunRequest([remote_vk], tiny_llama, SLOW.with_changes(timeout=1.0), run_dir=tmp_path / "hung", granularity="point"))]
    failure = next(e for e in events if isinstance(e, PointFailed))
    assert failure.timed_out and failure.reason.startswith("hung: no result within 1 s")
    pids = [e.pid for e in events if isinstance(e, PointStarted)]
    wait_until(lambda: not any(psutil.pid_exists(p) for p in pids), "a hung llama-bench on the host")
    # A sweep closed while a remote point runs: its llama-bench is killed there.
    async with contextlib.aclosing(run_sweep(RunRequest([remote_vk], tiny_llama, SLOW, run_dir=tmp_path / "cut", granularity="point"))) as sweep:
        async for event in sweep:
            if isinstance(event, PointStarted):
                running = event.pid
                wait_until(lambda pid=running: psutil.Process(pid).name() == "llama-bench",
                           "not yet llama-bench")
                break
    # Killed on the host by the time the sweep has closed; gone once the kernel is done with it.
    wait_until(lambda: not psutil.pid_exists(running)
               or psutil.Process(running).status() == psutil.STATUS_ZOMBIE, "the cut llama-bench running")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300, stdin=subprocess.DEVNULL)


def test_the_command_line_compares_a_local_and_a_remote_build(server, cpu_bin, vulkan_bin, tiny_llama,
                                                              tmp_path):
    done = _cli("bench", "--build", f"cpu={cpu_bin}", "--build", f"vk=box:{vulkan_bin}",
                "--model", str(tiny_llama), "-p", "32", "-n", "8", "-d", "0", "-r", "2", "-t", "1",
                "--run-dir", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    assert "2 builds (cpu, vk on box)" in done.stderr
    assert "| pp32 |" in done.stdout and "vk t/s" in done.stdout


def test_a_host_that_refuses_the_key_is_one_line(server, vulkan_bin, tiny_llama):
    with pytest.raises(SshError) as caught:
        SshHost("badkey").connect()
    assert "Permission denied (publickey" in str(caught.value) and "\n" not in str(caught.value)
    done = _cli("bench", "--build", f"vk=badkey:{vulkan_bin}", "--model", str(tiny_llama))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Permission denied" in done.stderr, done.stderr


@pytest.mark.parametrize("alias, words", [
    ("silent", ("timed out",)),  # accepts TCP, never speaks: the banner exchange times out
    ("blackhole", ("timed out", "unreachable", "No route")),  # where the network drops it
    ("closed", ("refused",)),  # nothing listens
])
def test_a_host_that_does_not_answer_is_one_line_in_bounded_time(server, vulkan_bin, alias, words):
    began = time.monotonic()
    build = probe_remote_build(alias, str(vulkan_bin), "vk")
    assert time.monotonic() - began < 20  # ConnectTimeout 2 s
    assert build.problem is not None and "\n" not in build.problem
    problem = build.problem
    assert problem.startswith(f"ssh {alias}: ") and any(w in problem for w in words), problem


async def test_remote_telemetry_from_llamaduel_on_the_host(server):
    host = SshHost("box", llamaduel=("env", f"PYTHONPATH={REPO}", sys.executable, "-m", "tui.cli"))
    telemetry = RemoteTelemetry(host)
    ticks = []
    async with contextlib.aclosing(telemetry.stream(0.2)) as stream:
        async for snapshot in stream:
            ticks.append(snapshot)
            if len(ticks) == 3:
                break
    host.close()
    assert telemetry.mode == "llamaduel"
    assert all(t.host is not None and t.host.ram_total_bytes for t in ticks)
    assert ticks[-1].host.cpu_percent is not None
    assert [t.at for t in ticks] == sorted(t.at for t in ticks) and ticks[-1].at <= time.time()
    assert any(reason.startswith("on box: ") for _, reason in telemetry.unavailable)
    wait_until(lambda: not ours(f"PYTHONPATH={REPO} {sys.executable} -m tui.cli telemetry"),
               "the host's llamaduel telemetry running")


async def test_remote_telemetry_without_llamaduel_reads_files_and_marks_unknowns(server, tmp_path):
    tree = build_mi50_tree(tmp_path / "sysfs", with_optional=False)
    tree.break_with_eio("gpu_busy_percent")
    smi = tmp_path / "bin/nvidia-smi"  # stands in for the real one: prints an H200's answer
    smi.parent.mkdir()
    smi.write_text(f"#!/bin/sh\ncase \"$*\" in *{FIELDS}*) cat {SMI_CSV};; *) exit 2;; esac\n")
    smi.chmod(0o755)
    telemetry = RemoteTelemetry("box", sysfs_root=str(tree.root), nvidia_smi=str(smi),
                                use_llamaduel=False)
    ticks = []
    async with contextlib.aclosing(telemetry.stream(0.2)) as stream:
        async for snapshot in stream:
            ticks.append(snapshot)
            if len(ticks) == 2:
                break
    telemetry.close()
    amd, nvidia = ticks[-1].devices
    assert (amd.source, amd.name, amd.vram_used_bytes) == ("amdgpu-sysfs", "AMD Instinct MI60 / MI50",
                                                           MI50_VRAM_USED)
    assert (amd.edge_c, amd.junction_c, amd.power_w) == (62.0, 78.0, 187.0)
    for name in ("gpu_busy_percent", "mem_c", "power_cap_w", "throttle_reasons"):
        assert getattr(amd, name) is None and amd.missing[name], name
    assert f"box:{tree.root}/" in amd.missing["gpu_busy_percent"]  # the host's path, not a copy's
    assert (nvidia.name, nvidia.pci_address, nvidia.mem_c, nvidia.power_w) == (
        "NVIDIA H200", "0000:00:06.0", 41.0, 96.5)
    assert nvidia.vram_total_bytes == 143771 << 20 and nvidia.throttle_reasons == ()
    assert nvidia.fan_rpm is None and "percent" in nvidia.missing["fan_rpm"]
    for device in (amd, nvidia):  # unknown is None with a reason, never a silent gap or 0
        assert all(getattr(device, m) is not None or m in device.missing for m in DEVICE_MEASUREMENTS)
    assert ticks[0].host.cpu_percent is None and ticks[-1].host.cpu_percent is not None
    assert ticks[-1].host.missing["process_cpu_percent"] == "processes on box are not watched"
    assert telemetry.unavailable[0][0] == "llamaduel"

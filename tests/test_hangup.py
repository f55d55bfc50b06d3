"""The terminal goes away (an SSH connection drops, a tmux session is killed): the app
stops its children, finishes its journal and exits within seconds, on a real
pseudo-terminal whose master side is closed while a sweep runs."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import psutil
import pytest

from backends.journal.sweep import SweepFinished
from backends.sweep import list_runs, read_journal

pytestmark = pytest.mark.toolchain

REPO = Path(__file__).resolve().parent.parent


def _controlling_terminal(slave: int) -> None:  # in the child, before exec
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)


def start_app(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    app = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=REPO, env=env,
                           preexec_fn=lambda: _controlling_terminal(slave), close_fds=True)
    os.close(slave)
    return app, master


def read_until(master: int, wanted: bytes, app: subprocess.Popen, limit: int = 20_000_000) -> bytes:
    """Read the terminal until ``wanted`` shows (nothing timed: the app's own output)."""
    seen = b""
    while wanted not in seen:
        assert app.poll() is None, seen[-2000:]
        seen = (seen + os.read(master, 65536))[-limit:]
    return seen


def tools_of(pid: int) -> list[psutil.Process]:
    alive = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and child.name().startswith(("llama-", "ggml-")):
                alive.append(child)
        except psutil.Error:
            continue
    return alive


@pytest.mark.parametrize("busy_tool", ["llama-perplexity", "llama-bench"])  # the check, then the sweep
def test_a_closed_terminal_mid_sweep_stops_everything_and_exits(cpu_bin, tiny_llama, tmp_path, busy_tool):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(LLAMADUEL_DATA_DIR=str(tmp_path / "data"), TERM="xterm-256color", NO_COLOR="1",
               PYTHONPATH=str(REPO))
    argv = [sys.executable, "-m", "tui.cli", "--no-telemetry", "--build", f"cpu={cpu_bin}",
            "--models", str(tiny_llama.parent)]
    app, master = start_app(argv, env)
    try:
        read_until(master, b"Ready:", app)
        os.write(master, b"r")  # the seed-sweep preset on the tiny model: minutes of work
        runs = tmp_path / "data" / "runs"
        tools: list[psutil.Process] = []
        # Wait until the run (not the short rate probe before it) has busy_tool alive.
        while not (tools and list_runs(runs) and any(t.name() == busy_tool for t in tools)):
            os.read(master, 65536)
            tools = tools_of(app.pid)
        os.close(master)  # the terminal goes away: the kernel sends SIGHUP
        master = -1
        code = app.wait(timeout=30)
        assert code == 128 + signal.SIGHUP, code
        for tool in tools:
            assert not tool.is_running() or tool.status() == psutil.STATUS_ZOMBIE
        [run] = list_runs(runs)
        journal = read_journal(run.run_dir)
        assert isinstance(journal[-1], SweepFinished) and journal[-1].cancelled
    finally:
        if master >= 0:
            os.close(master)
        if app.poll() is None:
            app.kill()
            app.wait()

"""The installed ``llamaduel`` in a real terminal (tmux): keys in, screen text out."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from backends import toolchain

pytestmark = pytest.mark.toolchain


class Terminal:
    """A detached tmux session of a given size running one command."""

    def __init__(self, argv: list[str], env: dict[str, str], size: tuple[int, int], name: str):
        self.name = name
        self.tmux = shutil.which("tmux")
        if self.tmux is None:
            pytest.fail("tmux is not installed (apt-get install tmux)")
        environment = [item for key, value in env.items() for item in ("-e", f"{key}={value}")]
        subprocess.run([self.tmux, "new-session", "-d", "-s", name, "-x", str(size[0]),
                        "-y", str(size[1]), *environment, *argv], check=True)

    def screen(self) -> str:
        return subprocess.run([self.tmux, "capture-pane", "-p", "-t", self.name],
                              capture_output=True, text=True).stdout

    def press(self, *keys: str) -> None:
        subprocess.run([self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def alive(self) -> bool:
        return subprocess.run([self.tmux, "has-session", "-t", self.name],
                              capture_output=True).returncode == 0

    def wait_for(self, text: str, steps: int = 600) -> str:
        """Poll the screen until ``text`` shows (a step is 0.2 s; nothing timed is asserted)."""
        for _ in range(steps):
            shown = self.screen()
            if text in shown:
                return shown
            if not self.alive():
                break
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never showed; the screen was:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([self.tmux, "kill-session", "-t", self.name], capture_output=True)


@pytest.fixture
def environment(tmp_path, cpu_bin, vulkan_bin):
    env = {"LLAMADUEL_DATA_DIR": str(tmp_path / "data"),
           "LLAMADUEL_TOOLCHAIN": str(toolchain.toolchain_root()),
           "TERM": "xterm-256color", "NO_COLOR": "1"}
    return env


def test_demo_in_a_real_terminal_at_80x24(environment, tmp_path):
    llamaduel = shutil.which("llamaduel")
    assert llamaduel, "the llamaduel command is not installed (pip install -e .)"
    term = Terminal([llamaduel, "--demo", "--no-telemetry"], environment, (80, 24),
                    f"llamaduel-test-{os.getpid()}")
    try:
        # The demo prepares the cached builds and a generated model, races them, and the
        # verdict appears on the Results screen.
        results = term.wait_for("if you run:")
        assert "cpu vs vulkan" in results
        assert "dense, short context" in results
        for line in results.splitlines():
            assert len(line.rstrip()) <= 80
        term.press("2")
        run = term.wait_for("done")
        assert "cpu" in run and "vulkan" in run and "finished" in run
        term.press("?")
        help_text = term.wait_for("Ctrl-P")
        assert "Start sweep" in help_text and "Cancel sweep" in help_text
        term.press("Escape")
        time.sleep(0.5)  # a lone Escape, not the start of an Alt- sequence
        term.press("3")
        term.wait_for("if you run:")
        term.press("w")
        term.wait_for("Save these results")
        term.press("C-u")
        term.press("-l", "tmux demo")
        term.press("Enter")
        term.wait_for("Saved profile")
        term.press("4")
        term.wait_for("tmux demo")
        term.press("q")
        for _ in range(100):
            if not term.alive():
                break
            time.sleep(0.2)
        assert not term.alive(), "llamaduel did not quit on q"
    finally:
        term.close()
    from profiles.store import ProfileStore

    # Saved under a safe file name, listed under the name as typed.
    assert [e.name for e in ProfileStore(tmp_path / "data" / "profiles").list()] == ["tmux demo"]

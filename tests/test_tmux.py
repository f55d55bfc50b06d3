"""``llamaduel`` in a real terminal (tmux): keys in, screen text out, no colour (NO_COLOR)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backends import demo
from backends.sweep import SweepSpec
from backends.tooling import toolchain
from profiles.store import ProfileStore
from tests.probe_watch import ProbeWatch
from tui.state.grid import GRID_FIELDS

pytestmark = pytest.mark.toolchain


class Terminal:
    """A detached tmux session of a given size running one command."""

    def __init__(self, argv: list[str], env: dict[str, str], size: tuple[int, int], name: str):
        self.name = name
        found = shutil.which("tmux")
        if found is None:
            pytest.fail("tmux is not installed (apt-get install tmux)")
        # A tmux server of its own: sessions of other tests (other sizes) on a shared server
        # can resize this one's window.
        self.tmux_argv = [found, "-L", f"llamaduel-test-{name}", "-f", "/dev/null"]
        environment = [item for key, value in env.items() for item in ("-e", f"{key}={value}")]
        # The window gets its size first, then the command starts in it: a program started
        # with the session can see tmux's default 80x24 before the window is resized.
        subprocess.run([*self.tmux_argv, "new-session", "-d", "-s", name, "-x", str(size[0]),
                        "-y", str(size[1]), "cat"], check=True)
        # Keys go through as pressed: no wait to tell a lone Escape from an Alt- sequence.
        subprocess.run([*self.tmux_argv, "set-option", "-s", "escape-time", "0"], check=True)
        # COLUMNS and LINES, which an in-process app test leaves in pytest's environment,
        # would override the real size of the terminal.
        subprocess.run([*self.tmux_argv, "respawn-pane", "-k", "-t", name, *environment,
                        "env", "-u", "COLUMNS", "-u", "LINES", *argv], check=True)

    def screen(self) -> str:
        return subprocess.run([*self.tmux_argv, "capture-pane", "-p", "-t", self.name],
                              capture_output=True, text=True).stdout

    def press(self, *keys: str) -> None:
        subprocess.run([*self.tmux_argv, "send-keys", "-t", self.name, *keys], check=True)

    def pane_pid(self) -> int:
        """The program's process id (``env`` runs it in its own place)."""
        out = subprocess.run([*self.tmux_argv, "display-message", "-p", "-t", self.name,
                              "#{pane_pid}"], capture_output=True, text=True, check=True).stdout
        return int(out)

    def alive(self) -> bool:
        return subprocess.run([*self.tmux_argv, "has-session", "-t", self.name],
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

    def wait_gone(self, text: str, steps: int = 600) -> str:
        """Poll the screen until ``text`` no longer shows."""
        for _ in range(steps):
            shown = self.screen()
            if text not in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never went away; the screen was:\n{self.screen()}")

    def page_down_until(self, text: str, pages: int = 15) -> str:
        """Page down, one page at a time, each once the screen has moved, until ``text`` shows."""
        shown = self.screen()
        for _ in range(pages):
            if text in shown:
                return shown
            before = shown
            self.press("PageDown")
            for _ in range(50):
                shown = self.screen()
                if shown != before:
                    break
                time.sleep(0.2)
            else:
                break  # the screen no longer moves: the end of the page
        raise AssertionError(f"{text!r} never showed while paging down; the screen was:\n{shown}")

    def close(self) -> None:
        subprocess.run([*self.tmux_argv, "kill-server"], capture_output=True)


REPO = Path(__file__).resolve().parent.parent
# This checkout's llamaduel (the same as the installed command after `pip install -e .`).
LLAMADUEL = [sys.executable, "-m", "tui.cli"]


@pytest.fixture
def environment(tmp_path, cpu_bin, vulkan_bin):
    env = {"LLAMADUEL_DATA_DIR": str(tmp_path / "data"),
           "LLAMADUEL_TOOLCHAIN": str(toolchain.toolchain_root()),
           "TERM": "xterm-256color", "NO_COLOR": "1", "PYTHONPATH": str(REPO)}
    return env


def assert_setup_read_whole(setup: str) -> None:
    """At 80x24 the whole Setup is in view: the workload's every field, the status to its
    last sentence, and the footer's keys."""
    lines = setup.rstrip("\n").splitlines()
    for word in (*GRID_FIELDS.values(), "flash attn", "correctness check first",
                 "tune each build first (up to 5 min)"):
        assert word in setup, (word, setup)
    ready = next(i for i, line in enumerate(lines) if line.lstrip().startswith("Ready:"))
    said = " ".join(line.strip() for line in lines[ready:-1])
    assert "Press r to start." in said, setup
    assert "q quit" in lines[-1] and "^p palette" in lines[-1], setup
    for line in lines:
        assert len(line.rstrip()) <= 80


def demo_spec() -> SweepSpec:
    """The demo's grid: Gemma's where its package is installed, else the generated model's."""
    return demo.GEMMA_SPEC if importlib.util.find_spec(demo.GEMMA_MODULE) else demo.GENERATED_SPEC


def test_demo_in_a_real_terminal_at_80x24(environment, tmp_path):
    term = Terminal([*LLAMADUEL, "--demo", "--no-telemetry"], environment, (80, 24),
                    f"llamaduel-test-{os.getpid()}")
    try:
        with ProbeWatch(term.pane_pid()) as watch:
            # Setup times both builds on the demo's model for the estimate of the demo's own
            # grid, then the demo checks them against each other on Gemma 3 270M, runs a
            # short sweep with an ETA, and the verdict appears on the Results screen.
            spec = demo_spec()
            setup = term.wait_for("Ready:", steps=3000)
            assert (f"Ready: 2 builds × {len(spec.points())} points × {spec.repetitions} reps"
                    in setup), setup
            assert "the demo's own grid" in setup
            assert_setup_read_whole(setup)
            term.wait_for("check 1/2: reading the text with cpu", steps=3000)
            term.wait_for("ETA", steps=3000)
        # One probe per build, never two at once (the processes themselves, looked at
        # every few milliseconds).
        for backend in ("cpu", "vulkan"):
            assert len(watch.probes_of(toolchain.bin_dirs()[backend])) == 1, watch.seen
        assert watch.most_at_once == 1, (watch.most_at_once, watch.looks)
        results = term.wait_for("if you run:", steps=6000)
        assert "cpu vs vulkan" in results
        assert "dense, short context" in results
        for line in results.splitlines():
            assert len(line.rstrip()) <= 80
        term.press("2")
        run = term.wait_for("done")
        assert "cpu" in run and "vulkan" in run and "finished" in run
        assert "check: reference" in run and ("check: pass" in run or "check: SUSPECT" in run)
        term.press("?")
        help_text = term.wait_for("Ctrl-P")
        assert "Start sweep" in help_text and "Cancel sweep" in help_text
        term.press("Escape")
        term.wait_gone("Cancel sweep")  # the help is closed
        term.press("3")
        term.wait_for("if you run:")
        term.press("w")
        term.wait_for("Save these results")
        term.press("C-u")
        term.press("-l", "tmux demo")
        term.wait_for("tmux demo")  # the name is in the field before Enter goes
        term.press("Enter")
        # The toast is brief; what must hold is the profile in the store (a state, waited for).
        store = ProfileStore(tmp_path / "data" / "profiles")
        for _ in range(600):
            if [e.name for e in store.list()] == ["tmux demo"] or not term.alive():
                break
            time.sleep(0.2)
        assert [e.name for e in store.list()] == ["tmux demo"], term.screen()
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
    # Saved under a safe file name, listed under the name as typed.
    assert [e.name for e in ProfileStore(tmp_path / "data" / "profiles").list()] == ["tmux demo"]


def test_keys_and_marks_in_a_real_terminal_at_80x24_without_colour(environment, tmp_path,
                                                                   cpu_bin, vulkan_bin,
                                                                   tiny_llama):
    argv = [*LLAMADUEL, "--no-telemetry", "--build", f"cpu={cpu_bin}",
            "--build", f"vulkan={vulkan_bin}", "--models", str(tiny_llama.parent)]
    term = Terminal(argv, environment, (80, 24), f"llamaduel-keys-{os.getpid()}")
    try:
        setup = term.wait_for("Ready:")
        # The state is in the text: ticked boxes and the cursor row's marker.
        assert ">  [x]  cpu" in setup and "   [x]  vulkan" in setup
        assert "tiny llama" in setup and "seed-sweep" in setup
        assert_setup_read_whole(term.wait_for("say little"))  # its warning too
        term.press("Down", "Space")  # the first visit: no Tab needed
        setup = term.wait_for("[ ]  vulkan")
        assert ">  [ ]  vulkan" in setup
        term.press("5")
        race = term.wait_for("Ctrl-R races")
        assert "[x] cpu" in race
        term.press("?")
        term.wait_for("Everywhere")
        help_text = term.page_down_until("Race settings")  # the Race keys, further down the help
        assert "Stop race" in help_text and "Ctrl-S" in help_text
        term.press("Escape")
        term.wait_gone("Race settings")  # the help (scrolled to its Race rows) is closed
        term.press("e")  # only now do letters go into the prompt
        term.wait_for("esc leave field")  # the prompt has the focus
        term.press("-l", "q1?")
        assert "q1?" in term.wait_for("q1?")
        term.press("Escape")
        # Leaving the field shows the race keys again in the footer.
        term.wait_for("q quit")
        term.press("1")
        term.wait_for("Builds")
        term.press("q")
        for _ in range(100):
            if not term.alive():
                break
            time.sleep(0.2)
        assert not term.alive(), "llamaduel did not quit on q"
    finally:
        term.close()


def test_setup_at_200x50_shows_the_whole_status_of_each_build(environment, cpu_bin,
                                                              vulkan_bin, tiny_llama):
    argv = [*LLAMADUEL, "--no-telemetry", "--build", f"cpu={cpu_bin}",
            "--build", f"vulkan={vulkan_bin}", "--models", str(tiny_llama.parent)]
    term = Terminal(argv, environment, (200, 50), f"llamaduel-wide-{os.getpid()}")
    try:
        # The first frame can be laid out before the terminal's size is known: wait for the
        # whole status, which only fits at the full width.
        setup = term.wait_for("runs on the CPU, slow")
        assert "software renderer (Vulkan0 llvmpipe" in setup and "Ready:" in setup
        assert "…" not in setup.split("Ready:")[0]
    finally:
        term.close()

#!/usr/bin/env python3
"""The app's own cost: cold start to first frame, memory, and CPU while a sweep runs.

Goals: first frame within 0.5 s of starting Python (measured on a real pseudo-terminal,
beside a bare Textual app started the same way), and at most 2 % of one core for the app
itself (llama-bench children excluded) while a real CPU vs Vulkan (lavapipe) sweep runs
with telemetry at 2 Hz and live plots (benchmarks/app_terminal.py measures that on a real
terminal too, with the bytes written). Prints figures; asserts nothing.

    python benchmarks/app_startup.py [--starts 5] [--skip-sweep]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# A bare Textual app (a Static and a Footer): the floor on this machine.
BARE_APP = r"""
from textual.app import App
from textual.widgets import Footer, Static

class Bare(App):
    def compose(self):
        yield Static("hello from a bare app")
        yield Footer()

Bare().run()
"""


def _first_frame_on_a_terminal(argv: list[str], marker: bytes, env: dict[str, str],
                               size: tuple[int, int] = (160, 48), then: bytes = b"") -> float:
    """Seconds from starting ``argv`` in a real pseudo-terminal until ``marker`` shows
    (with ``then``: until that shows too, e.g. the builds listed)."""
    import fcntl
    import os
    import pty
    import select
    import signal
    import struct
    import termios

    started = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    seen = b""
    shown = float("nan")
    try:
        while time.monotonic() - started < 30:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
            if marker in seen and then in seen:
                shown = time.monotonic() - started
                break
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        os.close(fd)
    return shown


# Runs a real sweep in the app (headless, 160x48) with 2 Hz telemetry and live plots.
DURING_SWEEP = r"""
import asyncio, json, sys, time
from pathlib import Path
import psutil
sys.path.insert(0, sys.argv[2])
from scripts.screenshots import real_sources, SPEC
from backends.telemetry import Telemetry
from profiles.store import ProfileStore
from tui.app import LlamaduelApp
from backends.sweep import RunRequest
from tui.state.run_text import SweepStart

async def main(folder):
    builds, model = real_sources(folder)
    app = LlamaduelApp(builds, [model], telemetry=Telemetry(), store=ProfileStore(folder / "p"),
                       runs_root=folder / "runs", offer_resume=False)
    me = psutil.Process()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.5)
        app.start_sweep(SweepStart(RunRequest(builds, model, SPEC, runs_root=app.sources.runs_root)))
        run = app.get_screen("run")
        # Steady state: from the first result (the run screen is built) to the last one
        # (before the results screen is built). Plain sleeps: polling costs nothing here.
        while run.run_state.done < 1:
            await asyncio.sleep(0.1)
        before, wall = me.cpu_times(), time.monotonic()
        while run.run_state.done < run.run_state.total:
            await asyncio.sleep(0.1)
        after, wall = me.cpu_times(), time.monotonic() - wall
        while run.run_state.status != "finished":
            await asyncio.sleep(0.1)
        own = (after.user - before.user) + (after.system - before.system)
        children = (after.children_user - before.children_user) + (
            after.children_system - before.children_system)
        print(json.dumps({"wall_s": wall, "own_cpu_s": own, "children_cpu_s": children,
                          "telemetry_ticks": len(run.history.readings),
                          "rss": me.memory_info().rss}), flush=True)

asyncio.run(main(Path(sys.argv[1])))
"""


def first_frames(starts: int) -> tuple[list[float], list[float], list[float]]:
    """Cold starts to the first frame on a real terminal: the app (``llamaduel`` with real
    discovery of the cached builds and a models folder) and a bare Textual app, taken
    alternately in the same run."""
    import os

    from backends.tooling import toolchain
    from backends.tooling.synth import write_tiny_llama

    app, bare, ready = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        models = Path(folder) / "models"
        write_tiny_llama(models / "tiny.gguf")
        argv = [sys.executable, "-m", "tui.cli", "--no-telemetry", "--models", str(models)]
        for backend in ("cpu", "vulkan"):
            if toolchain.is_built(backend):
                argv += ["--build", f"{backend}={toolchain.bin_dirs()[backend]}"]
        env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color",
               "LLAMADUEL_DATA_DIR": str(Path(folder) / "data")}
        for _ in range(starts):
            # The Setup screen's footer is on the first frame ("? help").
            app.append(_first_frame_on_a_terminal(argv, b"help", env))
            # Setup complete: builds probed (cache) and listed, the plan line written.
            ready.append(_first_frame_on_a_terminal(argv, b"help", env, then=b"Ready:"))
            bare.append(_first_frame_on_a_terminal([sys.executable, "-c", BARE_APP],
                                                   b"hello from a bare app", env))
    return app, bare, ready


def during_sweep() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run([sys.executable, "-c", DURING_SWEEP, folder, str(REPO)], cwd=REPO,
                             capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--skip-sweep", action="store_true")
    options = parser.parse_args()
    mib = 1024 * 1024

    times, bare, ready = first_frames(options.starts)
    floor = statistics.median(bare)
    print(f"cold start to the first frame on a real terminal, real discovery of the cached "
          f"builds and a models folder: median {statistics.median(times):.3f} s, "
          f"min {min(times):.3f} s, max {max(times):.3f} s over {len(times)} starts "
          f"(goal <= 0.5 s)")
    print(f"a bare Textual app, same run: median {floor:.3f} s; "
          f"ratio {statistics.median(times) / floor:.2f}")
    print(f"until Setup lists the builds and the model and says Ready: median "
          f"{statistics.median(ready):.3f} s")
    if options.skip_sweep:
        return 0
    sweep = during_sweep()
    share = 100 * sweep["own_cpu_s"] / sweep["wall_s"]
    print(f"during {sweep['wall_s']:.1f} s of a CPU vs Vulkan sweep (first to last result) "
          f"with 2 Hz telemetry "
          f"({sweep['telemetry_ticks']} ticks) and live plots:")
    print(f"  app's own CPU: {sweep['own_cpu_s']:.2f} s = {share:.2f} % of one core (goal <= 2 %)")
    print(f"  llama-bench children: {sweep['children_cpu_s']:.1f} s (not counted above)")
    print(f"  RSS after the sweep: {sweep['rss'] / mib:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

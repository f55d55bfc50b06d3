#!/usr/bin/env python3
"""What the app costs on a real terminal while a sweep runs: bytes written to the terminal
per second (what an SSH link carries; goal <= 20 KB/s at 120x40) and the app's own CPU
(goal <= 2 % of one core), with telemetry at 2 Hz and live plots.

The app runs in a real pseudo-terminal of the given size, racing the real CPU and Vulkan
(lavapipe) builds on a small generated model; this script reads everything it writes.
The steady state is measured from the first result to the last (the Run screen is up;
the Results screen is not yet built). llama-bench's own CPU is not counted. Prints
figures; asserts nothing.

    python benchmarks/app_terminal.py [--size 120x40] [--no-color] [--profile FILE]

``--profile FILE`` writes a cProfile of the app's process (sorted by own time) to FILE.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import cProfile, json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
marks = Path(sys.argv[2])
folder = Path(sys.argv[3])
profile_to = sys.argv[4]
from scripts.screenshots import SPEC, real_sources
from backends.telemetry import Telemetry
from profiles.store import ProfileStore
from tui.app import LlamaduelApp
from backends.sweep import RunRequest
from tui.state.run_text import SweepStart

builds, model = real_sources(folder)

class Measured(LlamaduelApp):
    def on_mount(self):
        super().on_mount()
        self.set_timer(1.0, self._start)

    def _start(self):
        self.start_sweep(SweepStart(RunRequest(builds, model, SPEC, runs_root=self.sources.runs_root)))
        self.set_interval(0.2, self._watch)

    stamps = {}

    def _watch(self):  # in memory; the file is written once, at the end
        state = self.run_screen.run_state
        if state.done >= 1 and "first" not in self.stamps:
            self.stamps["first"] = time.time()
            if profiler is not None:
                profiler.enable()
        if state.total and state.done >= state.total and "last" not in self.stamps:
            self.stamps["last"] = time.time()
            if profiler is not None:
                profiler.disable()
            self.stamps["ticks"] = len(self.run_screen.history.readings)
            marks.write_text(json.dumps(self.stamps))
            self.set_timer(0.5, self.exit)

profiler = None
app = Measured(builds, [model], telemetry=Telemetry(), store=ProfileStore(folder / "p"),
               runs_root=folder / "runs", offer_resume=False)
profiler = cProfile.Profile() if profile_to else None
app.run()
if profiler is not None:  # the steady state only, first to last result
    import pstats
    profiler.dump_stats(profile_to + ".pstats")
    with open(profile_to, "w") as out:
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(70)
"""


def run(size: tuple[int, int], no_color: bool, profile_to: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="llamaduel-pty-") as temp:
        folder = Path(temp)
        marks = folder / "marks.json"
        env = {**os.environ, "TERM": "xterm-256color", "LLAMADUEL_DATA_DIR": str(folder)}
        env.pop("NO_COLOR", None)
        if no_color:
            env["NO_COLOR"] = "1"
        pid, fd = pty.fork()
        if pid == 0:
            os.execvpe(sys.executable, [sys.executable, "-c", CHILD, str(REPO), str(marks),
                                        str(folder), profile_to], env)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        child = psutil.Process(pid)
        written: list[tuple[float, int]] = []
        tail = b""
        cpu: list[tuple[float, float]] = []
        while True:
            ready, _, _ = select.select([fd], [], [], 0.2)
            now = time.time()
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                written.append((now, len(data)))
                tail = (tail + data)[-4000:]
            try:
                times = child.cpu_times()
                cpu.append((now, times.user + times.system))
            except psutil.Error:
                pass
        os.waitpid(pid, 0)
        if not marks.exists():
            raise SystemExit("the app ended before the sweep did; its last output:\n"
                             + tail.decode("utf-8", "replace"))
        stamps = json.loads(marks.read_text())
    first, last = stamps["first"], stamps["last"]
    window = last - first
    sent = sum(n for at, n in written if first <= at <= last)
    inside = [c for at, c in cpu if first <= at <= last]
    own = inside[-1] - inside[0] if len(inside) > 1 else float("nan")
    return {"window_s": window, "bytes": sent, "cpu_s": own, "ticks": stamps.get("ticks", 0),
            "total_bytes": sum(n for _, n in written)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="120x40")
    parser.add_argument("--no-color", action="store_true")
    parser.add_argument("--profile", default="", metavar="FILE")
    options = parser.parse_args()
    width, _, height = options.size.partition("x")
    figures = run((int(width), int(height)), options.no_color, options.profile)
    rate = figures["bytes"] / figures["window_s"]
    share = 100 * figures["cpu_s"] / figures["window_s"]
    print(f"{options.size}{' NO_COLOR' if options.no_color else ''}: "
          f"{figures['window_s']:.1f} s of a CPU vs Vulkan sweep (first to last result), "
          f"{figures['ticks']} telemetry ticks")
    print(f"  bytes to the terminal: {figures['bytes']:,} = {rate / 1000:.1f} KB/s "
          f"(goal <= 20 KB/s); {figures['total_bytes']:,} bytes in the whole session")
    print(f"  app's own CPU: {figures['cpu_s']:.2f} s = {share:.2f} % of one core (goal <= 2 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

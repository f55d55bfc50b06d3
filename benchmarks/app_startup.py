#!/usr/bin/env python3
"""The app's own cost: cold start to first frame, memory, and CPU while a sweep runs.

Goals: first frame within 0.5 s of starting Python, RSS at most 80 MiB, and at most 2 % of
one core for the app itself (llama-bench children excluded) while a real CPU vs Vulkan
(lavapipe) sweep runs with telemetry at 2 Hz and live plots. Prints figures; asserts
nothing.

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

# Runs in a fresh interpreter: import, build and paint the app, report, quit.
FIRST_FRAME = r"""
import time, sys, json
started = float(sys.argv[1])
import tui.app
from pathlib import Path
from tui.app import LlamaduelApp

class Timed(LlamaduelApp):
    CSS_PATH = str(Path(tui.app.__file__).with_name("app.tcss"))

    def on_mount(self):
        super().on_mount()
        self.call_after_refresh(self._first_frame)

    def _first_frame(self):
        import psutil
        rss = psutil.Process().memory_info().rss
        print(json.dumps({"first_frame_s": time.monotonic() - started, "rss": rss}), flush=True)
        self.exit()

Timed(builds=None, models=None, offer_resume=True).run(headless=True, size=(160, 48))
"""

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
from tui.screens.run import SweepRequest

async def main(folder):
    builds, model = real_sources(folder)
    app = LlamaduelApp(builds, [model], telemetry=Telemetry(), store=ProfileStore(folder / "p"),
                       runs_root=folder / "runs", offer_resume=False)
    me = psutil.Process()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.5)
        app.start_sweep(SweepRequest(builds=tuple(builds), model=model, spec=SPEC))
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


def first_frames(starts: int) -> list[dict]:
    figures = []
    for _ in range(starts):
        with tempfile.TemporaryDirectory() as data:
            env = {**__import__("os").environ, "LLAMADUEL_DATA_DIR": data}
            started = time.monotonic()
            out = subprocess.run([sys.executable, "-c", FIRST_FRAME, str(started)], cwd=REPO,
                                 capture_output=True, text=True, env=env, check=True)
        figures.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return figures


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

    frames = first_frames(options.starts)
    times = [f["first_frame_s"] for f in frames]
    print(f"cold start to first frame: median {statistics.median(times):.3f} s, "
          f"min {min(times):.3f} s, max {max(times):.3f} s over {len(times)} starts "
          f"(goal <= 0.5 s)")
    print(f"RSS at first frame: {max(f['rss'] for f in frames) / mib:.1f} MiB (goal <= 80 MiB)")
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

#!/usr/bin/env python3
"""How long a screen change takes: key press to the new screen's first frame (goal < 150 ms).

Replays the recorded CPU vs Vulkan journal (no processes start) with two saved profiles,
then presses each screen's key: first visits (the screen is built) and returning visits.
Each change is timed from the key press until a refresh after the screen is shown has run.
Prints figures; asserts nothing.

    python benchmarks/app_screens.py [--size 120x40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

KEYS = {"1": "setup", "2": "run", "3": "results", "4": "profiles", "5": "race"}


async def timed_change(app, pilot, key: str, mode: str) -> float:
    """The key's own command (what the binding posts), then the new screen's first frame."""
    from tui import actions as cmd

    painted = asyncio.Event()
    command = {"1": cmd.ShowSetup, "2": cmd.ShowRun, "3": cmd.ShowResults,
               "4": cmd.ShowProfiles, "5": cmd.ShowRace}[key]
    started = time.perf_counter()
    app.screen.post_message(command())
    while app.current_mode != mode:
        await asyncio.sleep(0)
    app.screen.call_after_refresh(painted.set)
    await painted.wait()
    return time.perf_counter() - started


async def measure(size: tuple[int, int], rounds: int) -> dict[str, list[float]]:
    import os

    os.chdir(tempfile.mkdtemp(prefix="llamaduel-screens-"))
    from tests.test_snapshots import JOURNAL, store_with_profiles
    from tui.app import LlamaduelApp

    figures: dict[str, list[float]] = {}
    app = LlamaduelApp([], [], store=store_with_profiles(), journal=JOURNAL,
                       start_screen="setup", telemetry=None)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(2.0)  # the app warms the other screens up after its first frame
        for round_ in range(rounds):
            for key, mode in [("2", "run"), ("3", "results"), ("4", "profiles"),
                              ("5", "race"), ("1", "setup")]:
                label = f"{mode} ({'first visit' if round_ == 0 else 'again'})"
                figures.setdefault(label, []).append(await timed_change(app, pilot, key, mode))
                await pilot.pause(0.2)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="120x40")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    width, _, height = options.size.partition("x")
    figures = asyncio.run(measure((int(width), int(height)), max(2, options.rounds)))
    print(f"screen changes at {options.size} (key press to the new screen's first frame):")
    for label, times in figures.items():
        print(f"  {label:28s} median {statistics.median(times) * 1000:6.1f} ms, "
              f"max {max(times) * 1000:6.1f} ms")
    worst = max(max(t) for t in figures.values())
    print(f"slowest change: {worst * 1000:.1f} ms (goal < 150 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

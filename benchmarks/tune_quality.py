#!/usr/bin/env python3
"""Does tuning pay for itself? The tune phase against an exhaustive sweep of the same grid.

    python3 benchmarks/tune_quality.py [--budget 60] [--repetitions 5] [--builds cpu,vulkan]

On the real CPU and Vulkan-on-lavapipe builds with a generated llama model (F32, 4 layers,
256 wide), each contender alone: the tune phase (``-ub`` free, its share of ``--budget``)
chooses a ubatch; then llama-bench measures every candidate of the same grid on the same
probe point (``--repetitions`` each, one process). Prints, per contender: the tune's time
against its budget, the exhaustive run's time, the choice and the exhaustive best, and the
ratio of the choice's exhaustive median to the best's (1.00: the tune found the best).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends import toolchain  # noqa: E402
from backends.builds import BuildInfo, probe_build  # noqa: E402
from backends.journal.tune import TuneChosen, TuneFinished, TuneGrid, TuneSpec  # noqa: E402
from backends.sweep import SweepSpec, run_sweep  # noqa: E402
from backends.synth import write_tiny_llama  # noqa: E402
from backends.tune.grid import probe_points  # noqa: E402

SPEC = SweepSpec(name="tune-quality", prompts=(512,), gens=(16,), depths=(0, 256, 512),
                 repetitions=2, flash_attn=True, threads=1)


async def tune(build: BuildInfo, model: Path, budget: float, run_dir: Path) -> tuple[TuneChosen, TuneGrid, float, float]:
    """The tune phase alone (the run is stopped when it ends): choice, grid, wall s, its own s."""
    began = time.monotonic()
    chosen = grid = finished = None
    events = run_sweep([build], model, SPEC, run_dir=run_dir, tune=TuneSpec(budget_s=budget),
                       telemetry=None)
    async with contextlib.aclosing(events) as stream:
        async for event in stream:
            if isinstance(event, TuneGrid):
                grid = event
            elif isinstance(event, TuneChosen):
                chosen = event
            elif isinstance(event, TuneFinished):
                finished = event
                break
    assert chosen is not None and grid is not None and finished is not None
    return chosen, grid, time.monotonic() - began, finished.seconds


def exhaustive(build: BuildInfo, model: Path, ubatches: list[int], repetitions: int) -> tuple[dict[int, float], float]:
    """Every ubatch on the probe point, ``repetitions`` each, by llama-bench in one process."""
    point = probe_points(SPEC)[0]
    argv = [str(build.bench), "-m", str(model), "-p", str(point.n_prompt), "-n", "0",
            "-d", str(point.depth), "-ub", ",".join(map(str, ubatches)), "-r", str(repetitions),
            "-t", "1", "-fa", "1", "-o", "jsonl"]
    began = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, env=build.launch_env(),
                          check=True)
    seconds = time.monotonic() - began
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {int(r["n_ubatch"]): statistics.median(r["samples_ts"]) for r in rows}, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="tune budget per contender, s")
    parser.add_argument("--repetitions", type=int, default=5, help="exhaustive repetitions per candidate")
    parser.add_argument("--builds", default="cpu,vulkan")
    options = parser.parse_args()
    os.environ.setdefault("GGML_VK_VISIBLE_DEVICES", "0")
    folders = toolchain.bin_dirs()
    with tempfile.TemporaryDirectory(prefix="tune-quality-") as folder:
        model = write_tiny_llama(Path(folder) / "llama-4x256.gguf", layers=4, embd=256, heads=8,
                                 heads_kv=4, ff=512, vocab_size=2048)
        print(f"model: {model.name} ({model.stat().st_size / 1e6:.1f} MB), probe "
              f"{probe_points(SPEC)[0].name}, budget {options.budget:.0f} s per contender")
        for name in options.builds.split(","):
            build = probe_build(folders[name], name)
            if build.problem:
                print(f"{name}: cannot run: {build.problem}")
                continue
            chosen, grid, wall, own = asyncio.run(tune(build, model, options.budget, Path(folder) / name))
            ubatches = sorted({c.ubatch for c in grid.candidates if c.ubatch})
            medians, full = exhaustive(build, model, ubatches, options.repetitions)
            best = max(medians, key=lambda u: medians[u])
            pick = chosen.chosen.ubatch or 512
            ratio = medians[pick] / medians[best]
            print(f"{name}: tune {own:.1f} s of {options.budget:.0f} s ({own / options.budget:.0%}; "
                  f"{wall:.1f} s with start-up), {chosen.probes} probes; exhaustive {full:.1f} s "
                  f"({len(ubatches)} candidates x {options.repetitions})")
            print(f"{name}: tune chose ub={pick}, exhaustive best ub={best}; ratio {ratio:.3f} "
                  f"({'within' if ratio >= 0.95 else 'NOT within'} 5 %)")
            print(f"{name}: exhaustive medians t/s: "
                  + ", ".join(f"ub={u} {medians[u]:,.0f}" for u in ubatches))
    return 0


if __name__ == "__main__":
    sys.exit(main())

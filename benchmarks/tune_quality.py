#!/usr/bin/env python3
"""Does tuning pay for itself? The tune phase against an exhaustive sweep of the same grid.

    python3 benchmarks/tune_quality.py [--budget 60] [--repetitions 5] [--passes 3]
                                       [--builds cpu,vulkan] [--free ub|ub,threads] [--prompt 512] [--tiny]

On the real CPU and Vulkan-on-lavapipe builds with a generated llama model (F32, 4 layers,
256 wide), each contender alone: the tune phase (``-ub`` free, its share of ``--budget``)
chooses a ubatch (and, with ``--free ub,threads`` on the CPU build, a thread count); then
llama-bench measures every candidate of the same grid on the same probe point
(``--repetitions`` each per pass, ``--passes`` passes in alternating order, pooled: on a
busy machine one pass's best is noise). Prints, per contender: the tune's time
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

from backends.builds import BuildInfo, probe_build
from backends.journal.tune import Candidate, TuneChosen, TuneFinished, TuneGrid, TuneSpec
from backends.sweep import RunRequest, SweepSpec, run_sweep
from backends.tooling import toolchain
from backends.tooling.synth import write_tiny_llama
from backends.tune.grid import probe_points

SPEC = SweepSpec(name="tune-quality", prompts=(512,), gens=(16,), depths=(0, 256, 512),
                 repetitions=2, flash_attn=True, threads=1)


Key = tuple[int, int]  # (ubatch, threads)


async def tune(build: BuildInfo, model: Path, budget: float, free: tuple[str, ...],
               run_dir: Path) -> tuple[TuneChosen, TuneGrid, float, float]:
    """The tune phase alone (the run is stopped when it ends): choice, grid, wall s, its own s."""
    began = time.monotonic()
    chosen = grid = finished = None
    events = run_sweep(RunRequest([build], model, SPEC, run_dir=run_dir,
                                  tune=TuneSpec(budget_s=budget, free=free)))
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


def key(candidate: Candidate) -> Key:
    return candidate.ubatch or 512, candidate.threads or SPEC.threads or 1


def exhaustive(build: BuildInfo, model: Path, keys: list[Key], repetitions: int,
               passes: int) -> tuple[dict[Key, list[float]], float]:
    """Every candidate on the probe point, ``repetitions`` each per pass, by llama-bench (one
    process per pass running the grid, the order reversed every other pass); the samples of
    all passes together."""
    point = probe_points(SPEC)[0]
    samples: dict[Key, list[float]] = {}
    began = time.monotonic()
    for number in range(passes):
        ubatches = sorted({u for u, _ in keys}, reverse=bool(number % 2))
        threads = sorted({t for _, t in keys}, reverse=bool(number % 2))
        argv = [str(build.bench), "-m", str(model), "-p", str(point.n_prompt), "-n", "0",
                "-d", str(point.depth), "-ub", ",".join(map(str, ubatches)), "-r", str(repetitions),
                "-t", ",".join(map(str, threads)), "-fa", "1", "-o", "jsonl"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1800,
                              env=build.launch_env(), check=True)
        for row in (json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")):
            samples.setdefault((int(row["n_ubatch"]), int(row["n_threads"])), []).extend(row["samples_ts"])
    return samples, time.monotonic() - began


def _quartiles(values: list[float]) -> str:
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"{q1:,.0f}-{q3:,.0f}"


def label(k: Key) -> str:
    return f"ub={k[0]} t={k[1]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="tune budget per contender, s")
    parser.add_argument("--repetitions", type=int, default=5,
                        help="exhaustive repetitions per candidate and pass")
    parser.add_argument("--passes", type=int, default=3, help="exhaustive passes (order reversed each)")
    parser.add_argument("--builds", default="cpu,vulkan")
    parser.add_argument("--free", default="ub", help="ub, or ub,threads (the CPU build)")
    parser.add_argument("--tiny", action="store_true", help="the tests' 2-layer llama instead")
    parser.add_argument("--prompt", type=int, default=512,
                        help="the sweep's prompt size (lavapipe: 128 keeps a probe to seconds)")
    options = parser.parse_args()
    os.environ.setdefault("GGML_VK_VISIBLE_DEVICES", "0")
    global SPEC
    SPEC = SPEC.with_changes(prompts=(options.prompt,))
    folders = toolchain.bin_dirs()
    with tempfile.TemporaryDirectory(prefix="tune-quality-") as folder:
        if options.tiny:  # lavapipe: the 2-layer, 64-wide llama the tests use
            model = write_tiny_llama(Path(folder) / "tiny-llama.gguf")
        else:
            model = write_tiny_llama(Path(folder) / "llama-4x256.gguf", layers=4, embd=256, heads=8,
                                     heads_kv=4, ff=512, vocab_size=2048)
        print(f"model: {model.name} ({model.stat().st_size / 1e6:.1f} MB), probe "
              f"{probe_points(SPEC)[0].name}, budget {options.budget:.0f} s per contender")
        for name in options.builds.split(","):
            build = probe_build(folders[name], name)
            if build.problem:
                print(f"{name}: cannot run: {build.problem}")
                continue
            free = tuple(options.free.split(","))
            chosen, grid, wall, own = asyncio.run(tune(build, model, options.budget, free, Path(folder) / name))
            keys = sorted({key(c) for c in grid.candidates})
            samples, full = exhaustive(build, model, keys, options.repetitions, options.passes)
            medians = {k: statistics.median(v) for k, v in samples.items()}
            best = max(medians, key=lambda k: medians[k])
            pick = key(chosen.chosen)
            ratio = medians[pick] / medians[best]
            print(f"{name}: tune {own:.1f} s of {options.budget:.0f} s ({own / options.budget:.0%}; "
                  f"{wall:.1f} s with start-up), {chosen.probes} probes; exhaustive {full:.1f} s "
                  f"({len(keys)} candidates x {options.repetitions} x {options.passes} passes)")
            print(f"{name}: tune chose {label(pick)}, exhaustive best {label(best)}; ratio {ratio:.3f} "
                  f"({'within' if ratio >= 0.95 else 'NOT within'} 5 %)")
            print(f"{name}: exhaustive medians t/s (quartiles): " + ", ".join(
                f"{label(k)} {medians[k]:,.0f} ({_quartiles(samples[k])})" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Does tuning pay for itself? The tune phase against an exhaustive sweep of the same grid.

    python3 benchmarks/tune_quality.py [--budget 60] [--runs 3] [--repetitions 4] [--passes 3]
                                       [--confirm 6] [--builds cpu,vulkan] [--free ub|ub,threads]
                                       [--prompt 512] [--tiny]

On the real CPU and Vulkan-on-lavapipe builds with a generated llama model (F32, 4 layers,
256 wide; ``--tiny``: the tests' 2-layer, 64-wide one), each contender alone, ``--runs``
times:

1. the tune phase (``-ub`` free, ``--budget`` seconds) chooses a setting; its own time is
   set against the budget;
2. an exhaustive run measures every candidate of the same grid on the same probe point
   (``--repetitions`` each per pass, ``--passes`` processes in alternating order, pooled)
   and names its best by the medians;
3. the tune's pick, the exhaustive best and the defaults are measured again side by side
   (``--confirm`` processes, each running all three in one process, the order reversed
   every other process). Each process gives a paired ratio pick / best (the two ran
   back to back, on the same machine state); the run's ratio is their geometric mean with
   a 95 % interval over the processes.

Every process is built like the tune's probes (``backends.sweep.bench_argv``: the same
flags) and counts its repetitions as they do (``backends.sweep.bench.WARMUP_REPETITIONS``).
A pick that is the exhaustive best scores 1 without measuring:
"the best" of a noisy exhaustive run is itself a noisy maximum, which is why the paired
re-measure, not the exhaustive medians, gives the ratio. Holds no lock itself: run it
under ``flock /tmp/llamaduel-bench.lock``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends import stats
from backends.builds import BuildInfo, probe_build
from backends.journal.tune import Candidate, TuneChosen, TuneFinished, TuneGrid, TuneSpec
from backends.sweep import RunRequest, SweepSpec, bench_argv, run_sweep
from backends.sweep.bench import WARMUP_REPETITIONS
from backends.tooling import toolchain
from backends.tooling.synth import write_tiny_llama
from backends.tune.grid import probe_points
from backends.tune.settings import merged

SPEC = SweepSpec(name="tune-quality", prompts=(512,), gens=(16,), depths=(0, 256, 512),
                 repetitions=2, flash_attn=True, threads=1)

Key = tuple[int, int]  # (ubatch, threads)


async def tune(build: BuildInfo, model: Path, budget: float, free: tuple[str, ...],
               run_dir: Path) -> tuple[TuneChosen, TuneGrid, float]:
    """The tune phase alone (the run is stopped when it ends): choice, grid, its own seconds."""
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
    return chosen, grid, finished.seconds


def key(candidate: Candidate) -> Key:
    return candidate.ubatch or 512, candidate.threads or SPEC.threads or 1


def measure(build: BuildInfo, model: Path, keys: Sequence[Key], repetitions: int) -> dict[Key, list[float]]:
    """One llama-bench process running ``keys`` in this order, built like a tune probe; the
    counted samples per key (as the tune counts them: llama-bench's own warm-up run aside,
    and ``WARMUP_REPETITIONS`` timed ones)."""
    ubatches = list(dict.fromkeys(u for u, _ in keys))
    threads = list(dict.fromkeys(t for _, t in keys))
    own = ("-ub", ",".join(map(str, ubatches)), "-b", str(max(2048, *ubatches)),
           "-t", ",".join(map(str, threads)))
    contender = dataclasses.replace(build, settings=merged(build.settings, own))
    argv = bench_argv(contender, model, SPEC, probe_points(SPEC)[0], repetitions + WARMUP_REPETITIONS)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800,
                          env=build.launch_env(), check=True)
    samples: dict[Key, list[float]] = {}
    for row in (json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")):
        found = (int(row["n_ubatch"]), int(row["n_threads"]))
        if found in keys:
            samples.setdefault(found, []).extend(float(s) for s in row["samples_ts"][WARMUP_REPETITIONS:])
    return samples


def exhaustive(build: BuildInfo, model: Path, keys: list[Key], repetitions: int,
               passes: int) -> tuple[dict[Key, list[float]], float]:
    """Every candidate, ``passes`` processes in alternating order; all samples pooled."""
    pooled: dict[Key, list[float]] = {}
    began = time.monotonic()
    for number in range(passes):
        order = keys[::-1] if number % 2 else keys
        for k, values in measure(build, model, order, repetitions).items():
            pooled.setdefault(k, []).extend(values)
    return pooled, time.monotonic() - began


def paired(build: BuildInfo, model: Path, keys: list[Key], repetitions: int,
           processes: int) -> list[dict[Key, list[float]]]:
    """``keys`` side by side, ``processes`` times, the order reversed every other process."""
    return [measure(build, model, keys[::-1] if n % 2 else keys, repetitions) for n in range(processes)]


def log_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    return math.log(statistics.median(a)) - math.log(statistics.median(b))


def interval(logs: Sequence[float]) -> tuple[float, float, float]:
    """The geometric mean of paired ratios (given as logs) with its 95 % interval."""
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(mean), math.nan, math.nan
    half = stats.t_quantile(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def label(k: Key) -> str:
    return f"ub={k[0]} t={k[1]}"


def _quartiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:,.0f}"
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"{q1:,.0f}-{q3:,.0f}"


def one_run(build: BuildInfo, model: Path, options: argparse.Namespace, folder: Path,
            number: int) -> tuple[float, float]:
    """One tune, its exhaustive run and the paired re-measure; (ratio, tune s / budget)."""
    name = build.name
    free = tuple(options.free.split(","))
    chosen, grid, own = asyncio.run(tune(build, model, options.budget, free, folder / f"{name}-{number}"))
    keys = sorted({key(c) for c in grid.candidates})
    samples, full = exhaustive(build, model, keys, options.repetitions, options.passes)
    medians = {k: statistics.median(v) for k, v in samples.items()}
    best = max(medians, key=lambda k: medians[k])
    pick, default = key(chosen.chosen), key(grid.default)
    print(f"{name} run {number}: tune {own:.1f} s of {options.budget:.0f} s ({own / options.budget:.0%}), "
          f"{chosen.probes} probes, chose {label(pick)} ({chosen.reason})")
    print(f"{name} run {number}: exhaustive {full:.1f} s ({len(keys)} candidates x "
          f"{options.repetitions} x {options.passes} passes), best {label(best)}; medians t/s "
          "(quartiles): " + ", ".join(f"{label(k)} {medians[k]:,.0f} ({_quartiles(samples[k])})"
                                     for k in keys))
    if pick == best:
        print(f"{name} run {number}: the pick is the exhaustive best: ratio 1")
        return 1.0, own / options.budget
    side = list(dict.fromkeys((pick, best, default)))
    began = time.monotonic()
    rounds = paired(build, model, side, options.repetitions, options.confirm)
    took = time.monotonic() - began
    ratio, low, high = interval([log_ratio(r[pick], r[best]) for r in rounds])
    line = (f"{name} run {number}: re-measured side by side ({options.confirm} processes, "
            f"{took:.1f} s): {label(pick)} / {label(best)} = {ratio:.3f} ({low:.3f}-{high:.3f})")
    if default not in (pick, best):
        d, d_low, d_high = interval([log_ratio(r[default], r[best]) for r in rounds])
        line += f"; the defaults {label(default)} / {label(best)} = {d:.3f} ({d_low:.3f}-{d_high:.3f})"
    print(line)
    return ratio, own / options.budget


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="tune budget per contender, s")
    parser.add_argument("--runs", type=int, default=3, help="tunes per build, each checked")
    parser.add_argument("--repetitions", type=int, default=4, help="counted repetitions per candidate and process")
    parser.add_argument("--passes", type=int, default=3, help="exhaustive processes (order reversed each)")
    parser.add_argument("--confirm", type=int, default=6, help="paired re-measure processes")
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
        if options.tiny:
            model = write_tiny_llama(Path(folder) / "tiny-llama.gguf")
        else:
            model = write_tiny_llama(Path(folder) / "llama-4x256.gguf", layers=4, embd=256, heads=8,
                                     heads_kv=4, ff=512, vocab_size=2048)
        print(f"model: {model.name} ({model.stat().st_size / 1e6:.1f} MB), probe "
              f"{probe_points(SPEC)[0].name}, budget {options.budget:.0f} s per contender; "
              f"load {os.getloadavg()[0]:.2f}")
        for name in options.builds.split(","):
            build = probe_build(folders[name], name)
            if build.problem:
                print(f"{name}: cannot run: {build.problem}")
                continue
            results = [one_run(build, model, options, Path(folder), n + 1) for n in range(options.runs)]
            ratios = sorted(r for r, _ in results)
            shares = sorted(s for _, s in results)
            print(f"{name}: ratio over {len(ratios)} runs: median {statistics.median(ratios):.3f}, "
                  f"range {ratios[0]:.3f}-{ratios[-1]:.3f}; tune time {shares[0]:.0%}-{shares[-1]:.0%} "
                  f"of its budget; load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Adaptive repetitions against a fixed count: the same sweep with ``-r 5`` and ``-r auto``.

Runs both, in alternating order (fixed first, then auto, then swapped), on the CPU and
Vulkan-on-lavapipe builds of the toolchain (or the builds given), and prints for each:
wall time, repetitions used per point, and every class's verdict. The goal: -r auto in
at most half the time of -r 5, with the same verdicts.

    python3 benchmarks/adaptive_repetitions.py [--build NAME=DIR ...] [--model FILE]
        [--preset seed-sweep | -p 128,512 -n 64 -d 0,512,1024] [--pairs 2] [--json OUT]

``--preset NAME`` takes the preset's whole grid (its prompts, generations, depths, flash
attention and cache types), as ``llamaduel bench --preset NAME`` runs it; ``-p``, ``-n``
or ``-d`` given beside it replace the preset's own (``--preset seed-sweep -d 0,4096``).

Each ``-r 5`` run also prints its floor: U, the seconds no repetition count changes
(loads, llama-bench's depth prefill and warm-ups, paid once per process), against R, one
repetition of every point; no rule that measures every point at least k times can take
less than (U + kR) / (U + 5R) of ``-r 5``.

Processes start from argument lists; nothing is timed inside the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.builds import parse_build_arg, probe_build
from backends.journal.sweep import PointDecided, SweepFinished
from backends.sweep import PRESETS, RunRequest, SweepSpec, parse_int_list, read_journal, run_sweep
from backends.sweep.adaptive import FIRST_BLOCK
from backends.sweep.overhead import overhead_line
from backends.tooling import toolchain
from profiles.model import profile_from_journal


async def one_run(builds, model: Path, spec: SweepSpec,
                  run_dir: Path) -> tuple[float, list[PointDecided], dict[str, float]]:
    """Wall time, each point's decision, and where the sweep's seconds went."""
    started = time.perf_counter()
    decided, spent = [], {}
    async for event in run_sweep(RunRequest(builds, model, spec, run_dir=run_dir)):
        if isinstance(event, PointDecided):
            decided.append(event)
        elif isinstance(event, SweepFinished) and event.overhead:
            spent = event.overhead
    return time.perf_counter() - started, decided, spent


def floor_line(spent: dict[str, float], repetitions: int) -> str:
    """What no repetition rule changes, from a fixed run: U, its untimed seconds (loads, the
    depth prefill, warm-ups: paid once per process whatever the count), against R, one
    repetition of every point; the least any rule can take against ``-r repetitions``."""
    untimed, one = spent["wall"] - spent["work"], spent["work"] / repetitions
    def bound(reps: int) -> float:
        return (untimed + reps * one) / (untimed + repetitions * one)
    return (f"floor: U {untimed:.1f} s untimed (depth fill {spent.get('depth fill', 0.0):.1f} s), "
            f"R {one:.1f} s a repetition of every point: at best x{bound(2):.3f} of -r {repetitions} "
            f"with 2 repetitions a point, x{bound(1):.3f} with 1")


def verdicts(run_dir: Path, model: Path) -> dict[str, str]:
    """``{"short_dense/pp": "cpu (decisive)", ...}`` from the run's journal."""
    profile = profile_from_journal(read_journal(run_dir), name="bench")
    found = {}
    for verdict in (profile.recommendation.verdicts if profile.recommendation else ()):
        found[f"{verdict.workload}/{verdict.phase}"] = f"{verdict.winner or verdict.status}"
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--preset", choices=sorted(PRESETS), help="the preset's grid; -p, -n or -d beside it replace its own")
    parser.add_argument("-p", "--prompts", help="default 128,512")
    parser.add_argument("-n", "--gens", help="default 64")
    parser.add_argument("-d", "--depths", help="default 0,512,1024")
    parser.add_argument("-t", "--threads", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()

    folders = dict(parse_build_arg(b) for b in options.build) or {
        name: toolchain.bin_dirs()[name] for name in ("cpu", "vulkan")}
    builds = [probe_build(path, name) for name, path in folders.items()]
    for build in builds:
        if build.problem:
            raise SystemExit(f"{build.name}: {build.problem}")
    scratch = Path(tempfile.mkdtemp(prefix="llamaduel-adaptive-"))
    model = options.model
    if model is None:
        from backends.tooling.synth import write_tiny_llama

        model = write_tiny_llama(scratch / "bench-llama.gguf", layers=4, embd=256, heads=8,
                                 heads_kv=4, ff=768)
    grid = (PRESETS[options.preset]() if options.preset else
            SweepSpec(name="grid", prompts=(128, 512), gens=(64,), depths=(0, 512, 1024)))
    given = {field: parse_int_list(text, flag) for field, text, flag in (
        ("prompts", options.prompts, "-p"), ("gens", options.gens, "-n"), ("depths", options.depths, "-d"))
        if text}
    grid = grid.with_changes(name="adaptive-bench", threads=options.threads, **given)
    specs = {"-r 5": grid.with_changes(repetitions=5, adaptive=False),
             "-r auto": grid.with_changes(repetitions=FIRST_BLOCK, adaptive=True, max_repetitions=10)}
    print(f"builds {', '.join(b.name for b in builds)}, model {model.name}, "
          f"{len(grid.points())} points, {options.pairs} pairs", flush=True)
    walls: dict[str, list[float]] = {k: [] for k in specs}
    reps: dict[str, list[int]] = {k: [] for k in specs}
    seen: dict[str, list[dict[str, str]]] = {k: [] for k in specs}
    floors: list[str] = []
    for pair in range(options.pairs):
        order = list(specs) if pair % 2 == 0 else list(reversed(specs))
        for label in order:
            run_dir = scratch / f"{label.replace(' ', '')}-{pair}"
            wall, decided, spent = asyncio.run(one_run(builds, model, specs[label], run_dir))
            walls[label].append(wall)
            reps[label] += [n for d in decided for n in d.repetitions.values()]
            seen[label].append(verdicts(run_dir, model))
            why = ", ".join(sorted({d.reason for d in decided}))
            print(f"  pair {pair + 1} {label:<8} {wall:6.1f} s  [{why}; {overhead_line(spent) if spent else ''}]",
                  flush=True)
            if label == "-r 5" and spent:
                floors.append(floor_line(spent, 5))
                print(f"  pair {pair + 1} {floors[-1]}", flush=True)
        print(f"  pair {pair + 1} ratio -r auto / -r 5: {walls['-r auto'][-1] / walls['-r 5'][-1]:.3f}",
              flush=True)
    fixed, auto = (statistics.median(walls[k]) for k in specs)
    ratios = [a / f for a, f in zip(walls["-r auto"], walls["-r 5"], strict=True)]
    same = all(v == seen["-r 5"][0] for runs in seen.values() for v in runs)
    report = {
        "wall_fixed_s": round(fixed, 2), "wall_auto_s": round(auto, 2),
        "wall_ratio_auto_over_fixed": round(auto / fixed, 3),
        "pair_ratios": [round(r, 3) for r in ratios],
        "mean_repetitions_auto": round(statistics.fmean(reps["-r auto"]), 2),
        "verdicts_fixed": seen["-r 5"][0], "verdicts_auto": seen["-r auto"][0],
        "same_verdicts_in_every_run": same,
        "floors": floors,
    }
    print(f"-r 5:    {fixed:.1f} s (median)   -r auto: {auto:.1f} s   ratio {auto / fixed:.3f} "
          f"(per pair: {', '.join(f'{r:.3f}' for r in ratios)})")
    print(f"repetitions per point with -r auto: mean {report['mean_repetitions_auto']}")
    for key in sorted(seen["-r 5"][0]):
        print(f"  {key:<22} -r 5: {seen['-r 5'][0][key]:<20} -r auto: {seen['-r auto'][0].get(key)}")
    print(f"same verdicts in every run: {same}")
    if options.json:
        options.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

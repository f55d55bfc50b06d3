#!/usr/bin/env python3
"""Does llamaduel measure what bare llama-bench measures, and at what cost in wall time?

For one build and model, alternates (in pairs, bare first then llamaduel, then swapped)
a bare ``llama-bench`` over the whole grid in one process with llamaduel's runner over the
same grid, and prints:

- the median ratio of tok/s per test kind (llamaduel / bare; goal >= 0.99),
- the ratio of wall time for the whole grid (goal <= 1.10),
- for each process granularity asked for, so the cost of a process per test point can be
  set against one process per depth or per build (the model load it repeats);
- with the thermal guard on (``--cooldown auto``, with this machine's telemetry) and off,
  so the tok/s the guard's cool starts are worth shows beside bare llama-bench's; a line
  says whether the guard could act (it needs GPU temperatures).

    python3 benchmarks/fidelity.py --build BIN_DIR [--model FILE] [-p 512] [-n 128]
        [-d 0,4096] [-r 3] [--pairs 3] [--granularity auto,point,resident,depth,build]
        [--guard on,off] [--json OUT]

With no --model, a small generated llama is used. Processes start from argument lists.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.builds import probe_build
from backends.journal.sweep import CoolingWaited, ResultReceived, SweepFinished, SweepNote, SweepStarted
from backends.procs import child_env
from backends.sweep import RunRequest, SweepSpec, bench_argv, parse_int_list, run_sweep
from backends.sweep.overhead import overhead_line


def bare_run(build, model: Path, spec: SweepSpec) -> tuple[float, dict[str, float]]:
    """One llama-bench over the whole grid, as a user would type it."""
    argv = bench_argv(build, model, spec, spec.points())
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=child_env(build.env), check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bare llama-bench failed ({done.returncode}): {done.stderr[-400:]}")
    speeds = {}
    for line in done.stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        key = f"{record['n_prompt']}:{record['n_gen']}:{record['n_depth']}"
        speeds[key] = float(record["avg_ts"])
    return wall, speeds


async def duel_run(build, model: Path, spec: SweepSpec, granularity: str,
                   run_dir: Path, guard: bool) -> tuple[float, dict[str, float], str]:
    """llamaduel's runner over the grid; with ``guard``, this machine's telemetry and the
    thermal guard before every block (``--cooldown auto``), else neither."""
    from backends.telemetry import Telemetry

    started = time.perf_counter()
    speeds, notes = {}, []
    spec = spec.with_changes(cooldown="auto" if guard else "off")
    telemetry = Telemetry() if guard else None
    try:
        async for event in run_sweep(RunRequest([build], model, spec, run_dir=run_dir, granularity=granularity),
                                     telemetry=telemetry):
            if isinstance(event, ResultReceived):
                speeds[event.result.point.key] = event.result.avg_ts
            elif isinstance(event, SweepNote):
                notes.append(event.message)
            elif isinstance(event, SweepStarted):
                notes += [n for n in event.notes if "guard" in n]
            elif isinstance(event, CoolingWaited):
                notes.append(f"cooled {event.seconds:.0f} s before {event.point.name}")
            elif isinstance(event, SweepFinished) and event.overhead:
                notes.append(overhead_line(event.overhead))  # where llamaduel's seconds went
    finally:
        if telemetry is not None:
            telemetry.close()
    return time.perf_counter() - started, speeds, "; ".join(dict.fromkeys(notes))


def kind_of(key: str) -> str:
    n_prompt, n_gen, _ = key.split(":")
    return "pp" if int(n_prompt) and not int(n_gen) else "tg"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", required=True, type=Path, help="llama.cpp bin folder")
    parser.add_argument("--model", type=Path)
    parser.add_argument("-p", "--prompts", default="512")
    parser.add_argument("-n", "--gens", default="128")
    parser.add_argument("-d", "--depths", default="0,1024")
    parser.add_argument("-r", "--repetitions", type=int, default=3)
    parser.add_argument("-t", "--threads", type=int)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--granularity", default="auto,point,resident,depth,build")
    parser.add_argument("--guard", default="off", help="on, off or on,off: the thermal guard")
    parser.add_argument("--extra", action="append", default=[])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()

    build = probe_build(options.build, "build")
    if build.problem:
        raise SystemExit(f"{options.build}: {build.problem}")
    scratch = Path(tempfile.mkdtemp(prefix="llamaduel-fidelity-"))
    model = options.model
    if model is None:
        from backends.tooling.synth import write_tiny_llama

        model = write_tiny_llama(scratch / "bench-llama.gguf", layers=4, embd=256, heads=8,
                                 heads_kv=4, ff=768)
    spec = SweepSpec(name="fidelity", prompts=parse_int_list(options.prompts, "-p"),
                     gens=parse_int_list(options.gens, "-n"),
                     depths=parse_int_list(options.depths, "-d"),
                     repetitions=options.repetitions, threads=options.threads,
                     extra_args=tuple(options.extra))
    print(f"build {build.folder} ({build.backend}), model {model.name}, "
          f"{len(spec.points())} points, -r {spec.repetitions}, {options.pairs} pairs", flush=True)

    report = {}
    for granularity, guard in ((g, w) for g in options.granularity.split(",")
                               for w in options.guard.split(",")):
        walls_bare, walls_duel, ratios, note = [], [], {"pp": [], "tg": []}, ""
        for pair in range(options.pairs):
            order = ("bare", "duel") if pair % 2 == 0 else ("duel", "bare")
            result = {}
            for who in order:
                if who == "bare":
                    result["bare"] = bare_run(build, model, spec)
                else:
                    wall, speeds, note = asyncio.run(duel_run(
                        build, model, spec, granularity, scratch / f"{granularity}-{guard}-{pair}",
                        guard == "on"))
                    result["duel"] = (wall, speeds)
            walls_bare.append(result["bare"][0])
            walls_duel.append(result["duel"][0])
            for key, bare_speed in result["bare"][1].items():
                duel_speed = result["duel"][1].get(key)
                if duel_speed and bare_speed:
                    ratios[kind_of(key)].append(duel_speed / bare_speed)
        wall_ratio = statistics.median(walls_duel) / statistics.median(walls_bare)
        # Each pair's own ratio: bare and llamaduel back to back, under the same load.
        pair_ratios = [round(d / b, 3) for d, b in zip(walls_duel, walls_bare, strict=True)]
        figures = {
            "wall_bare_s": round(statistics.median(walls_bare), 3),
            "wall_llamaduel_s": round(statistics.median(walls_duel), 3),
            "wall_ratio": round(wall_ratio, 3),
            "pair_wall_ratios": pair_ratios,
            **{f"median_tps_ratio_{k}": round(statistics.median(v), 4) for k, v in ratios.items() if v},
            "note": note,
        }
        report[f"{granularity} guard {guard}"] = figures
        tps = "  ".join(f"{k} x{v}" for k, v in figures.items() if k.startswith("median"))
        print(f"{granularity:>6}, guard {guard:>3}: wall {figures['wall_llamaduel_s']:.2f} s vs bare "
              f"{figures['wall_bare_s']:.2f} s (x{wall_ratio:.3f}; pairs "
              f"{', '.join(f'x{r:.3f}' for r in pair_ratios)})  tok/s {tps}"
              + (f"  [{note}]" if note else ""), flush=True)
    if options.json:
        options.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

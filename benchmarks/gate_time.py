#!/usr/bin/env python3
"""The nightly gate's time against the sweep it repeats, on the real builds.

    python3 benchmarks/gate_time.py [--builds cpu,vulkan] [--gate vulkan] [--runs 2]

Makes a profile with ``llamaduel bench --save`` on the demo's grid for the generated model
(``backends.demo.GENERATED_SPEC``: pp64 and tg16 at depths 0 and 512, 3 repetitions) with
the named toolchain builds, one thread, then gates the first build (or ``--gate NAME``) against it ``--runs``
times (the same build: it passes, interleaved with itself as the build it replaces, then the
correctness check against it). Prints the sweep's wall time, each gate's and the ratio gate / sweep,
and beside them the CPU seconds each used (this process's children: llamaduel and its llama.cpp
tools), which a machine shared with other work moves far less than the wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.demo import GENERATED_SPEC
from backends.tooling import toolchain
from backends.tooling.synth import write_tiny_llama

REPO = Path(__file__).resolve().parent.parent
SHAPE = dict(layers=4, embd=512, heads=8, heads_kv=4, ff=1536, vocab_size=1024)  # as tests/test_gate.py


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def llamaduel(env: dict[str, str], *args: str) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall seconds, CPU seconds (the command and every tool it waited for) and the outcome."""
    started, cpu = time.monotonic(), cpu_seconds()
    done = subprocess.run([sys.executable, "-m", "tui.cli", *args], env=env, text=True,
                          capture_output=True, timeout=1800, check=False)
    return time.monotonic() - started, cpu_seconds() - cpu, done


def grid_args() -> list[str]:
    spec = GENERATED_SPEC
    out = ["-r", str(spec.repetitions)]
    for flag, values in (("-p", spec.prompts), ("-n", spec.gens), ("-d", spec.depths)):
        out += [flag, ",".join(str(v) for v in values)]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", default="cpu", help="toolchain builds, comma-separated (cpu)")
    parser.add_argument("--runs", type=int, default=2, help="gates to time (2)")
    parser.add_argument("--gate", help="the build to gate (default: the first)")
    options = parser.parse_args()
    names = options.builds.split(",")
    gated = options.gate or names[0]
    folders = toolchain.bin_dirs()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory(prefix="gate-time-") as tmp:
        root = Path(tmp)
        env["LLAMADUEL_DATA_DIR"] = str(root / "data")
        model = write_tiny_llama(root / "mid.gguf", **SHAPE)
        builds = [a for n in names for a in ("--build", f"{n}={folders[n]}")]
        sweep_s, sweep_cpu, done = llamaduel(env, "bench", *builds, "--model", str(model), *grid_args(), "-t", "1",
                                  "--telemetry", "off", "--save", "nightly", "--store", str(root / "store"),
                                  "--run-dir", str(root / "bench-run"))
        if done.returncode != 0:
            print(f"bench failed: {done.stderr.strip().splitlines()[-1:]}")
            return 1
        print(f"sweep ({', '.join(names)}, demo grid): {sweep_s:.1f} s, {sweep_cpu:.1f} CPU s")
        for run in range(options.runs):
            gate_s, gate_cpu, done = llamaduel(env, "gate", "nightly", "--build", f"{gated}={folders[gated]}",
                                     "--store", str(root / "store"), "--run-dir", str(root / f"gate-{run}"))
            print(f"gate {run + 1} (exit {done.returncode}): {gate_s:.1f} s = {gate_s / sweep_s:.2f}x the sweep, "
                  f"{gate_cpu:.1f} CPU s = {gate_cpu / sweep_cpu:.2f}x; {done.stdout.strip()}")
            if done.returncode != 0:
                print("  " + "\n  ".join(done.stderr.strip().splitlines()[-3:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""What a soak itself costs: the llamaduel process's CPU and memory while it soaks the CPU build.

    python3 benchmarks/soak_cost.py [--duration 1h] [--every 60]

Soaks the CPU build of the toolchain on a generated model (the servers' own work is not
counted: only this process's, which sends the load, probes, reads memory and journals)
with the default load (2 slots, a probe every 30 s, a window every 60 s), one server
thread. Every ``--every`` seconds it prints this process's CPU use since the start (% of
one core) and its resident memory, then the totals: CPU seconds, % of one core, memory at
the first and last sample, and the journal's size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.journal.journal import read_journal
from backends.server import ServerSettings
from backends.soak import SoakBuild, SoakSpec, run_soak, summarize, summary_lines
from backends.soak.spec import parse_duration
from backends.tooling import toolchain
from backends.tooling.synth import write_tiny_llama


async def soak(spec: SoakSpec, model: Path, journal: Path, every: float) -> list[tuple[float, float, int]]:
    me = psutil.Process()
    samples: list[tuple[float, float, int]] = []
    start_cpu = sum(me.cpu_times()[:2])
    start = time.monotonic()
    next_at = start + every
    build = SoakBuild("cpu", str(toolchain.bin_dirs()["cpu"]), {}, "cpu")
    async with contextlib.aclosing(run_soak([build], model, spec, journal_path=journal)) as events:
        async for _event in events:
            now = time.monotonic()
            if now >= next_at:
                next_at += every
                cpu = sum(me.cpu_times()[:2]) - start_cpu
                samples.append((now - start, cpu, me.memory_info().rss))
                print(f"{(now - start) / 60:6.1f} min: {cpu / (now - start) * 100:5.2f}% of a core, "
                      f"{me.memory_info().rss / 2**20:6.1f} MiB", flush=True)
    elapsed = time.monotonic() - start
    samples.append((elapsed, sum(me.cpu_times()[:2]) - start_cpu, me.memory_info().rss))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="1h")
    parser.add_argument("--every", type=float, default=60.0)
    options = parser.parse_args()
    spec = SoakSpec(duration_s=parse_duration(options.duration), settings=ServerSettings(threads=1))
    with tempfile.TemporaryDirectory(prefix="soak-cost-") as folder:
        model = write_tiny_llama(Path(folder) / "tiny.gguf")
        journal = Path(folder) / "run" / "journal.jsonl"
        samples = asyncio.run(soak(spec, model, journal, options.every))
        elapsed, cpu, rss = samples[-1]
        first_rss = samples[0][2]
        summary = summarize(read_journal(journal))
        print(f"soaked {elapsed / 60:.1f} min: this process used {cpu:.1f} CPU s = "
              f"{cpu / elapsed * 100:.2f}% of one core; memory {first_rss / 2**20:.1f} MiB at "
              f"the first sample, {rss / 2**20:.1f} MiB at the end; journal "
              f"{journal.stat().st_size / 1024:.0f} KiB")
        if summary is not None:
            print("\n".join(summary_lines(summary)))


if __name__ == "__main__":
    main()

"""Where a sweep's seconds go: a real sweep of the real CPU build accounts for its wall time
(llama-bench's work, loading, cooling, pauses, journal, telemetry) in its journal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from backends.builds import probe_build
from backends.journal.sweep import SweepFinished
from backends.sweep import RunRequest, SweepSpec, read_journal, run_sweep
from backends.sweep.overhead import PARTS, overhead_line
from backends.telemetry import Telemetry

pytestmark = pytest.mark.toolchain

SPEC = SweepSpec(name="tiny", prompts=(32,), gens=(8,), depths=(0, 512), repetitions=2, threads=1)


async def test_a_sweep_says_where_its_seconds_went(cpu_bin, tiny_llama, tmp_path):
    builds = [probe_build(cpu_bin, "cpu"), probe_build(cpu_bin, "cpu-again")]
    request = RunRequest(builds, tiny_llama, SPEC, run_dir=tmp_path / "run", telemetry_interval=0.1,
                         granularity="point")
    events = [e async for e in run_sweep(request, telemetry=Telemetry(["host"]))]
    final = events[-1]
    assert isinstance(final, SweepFinished) and not final.cancelled
    figures = final.overhead
    assert figures["work"] > 0 and figures["wall"] >= figures["work"]
    assert figures["overhead"] == pytest.approx(figures["wall"] - figures["work"], abs=0.01)
    # A process per point: each loaded the model; journal writes took time too (telemetry
    # handling can round to 0 ms on a quick run: only its presence is checked).
    assert figures["load"] > 0 and figures["journal"] > 0 and figures["telemetry"] >= 0
    assert figures["cooldown"] == 0 and figures["paused"] == 0  # no GPU, never paused
    # A process per point fills the depth of each point at 512 itself.
    assert figures["depth fill"] > 0 and figures["warm-up"] >= 0
    named = sum(figures[p] for p in (*PARTS, "other"))
    assert named == pytest.approx(figures["overhead"], abs=0.01)
    line = overhead_line(figures)
    share = 100 * figures["overhead"] / figures["wall"]
    assert line.startswith(f"overhead {share:.1f} %: load ") and "cooldown 0.00 s" in line
    # The figures are in the journal.
    journal = list(read_journal(tmp_path / "run"))
    assert [e for e in journal if isinstance(e, SweepFinished)][-1].overhead == figures


def test_the_bench_summary_prints_where_the_seconds_went(cpu_bin, tiny_llama, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "LLAMADUEL_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "tui.cli", "bench", "--build", f"cpu={cpu_bin}",
                           "--build", f"again={cpu_bin}", "--model", str(tiny_llama), "-p", "16",
                           "-n", "4", "-r", "2"],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    assert "journal:" in done.stdout, done.stderr[-2000:]
    found = re.search(r"^overhead (\d+\.\d) %: load (\d+\.\d+) s, depth fill \S+ s, warm-up .* \(work .* s of .* s\)$",
                      done.stdout, re.MULTILINE)
    assert found, done.stdout[-2000:]

"""The tune phase on the real llama-bench builds: the choice an exhaustive run confirms, a
candidate that cannot run failing alone, cancel and resume, the tuned settings kept."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from backends.builds import BuildInfo, probe_build
from backends.journal.sweep import ResultReceived, SweepFinished
from backends.journal.tune import (
    Candidate,
    ProbeFailed,
    ProbeFinished,
    ProbeMeasured,
    TuneChosen,
    TuneFinished,
    TuneGrid,
    TuneShareMoved,
    TuneSpec,
    TuneStarted,
)
from backends.models import read_model
from backends.sweep import RunRequest, SweepSpec, read_journal, resume, run_sweep
from backends.sweep.adaptive import compare, judge
from backends.sweep.overhead import PARTS, overhead_line
from backends.tune.candidates import make_grid
from backends.tune.words import describe_tune
from tests.test_runner import bench_children
from tui.state.tune import fold_tune_all

pytestmark = pytest.mark.toolchain

REPO = Path(__file__).resolve().parent.parent
# lavapipe runs a probe in seconds where the CPU build takes a fraction of one (and compiles
# its shaders on a first run): its tune gets more time.
BUDGET = {"cpu": 30.0, "vulkan": 120.0}
# One thread: on a busy two-core machine more threads than free cores slows llama.cpp a lot.
SPEC = SweepSpec(name="tune", prompts=(128,), gens=(8,), depths=(0, 64), repetitions=2,
                 flash_attn=True, threads=1)


@pytest.fixture(scope="module")
def cpu(cpu_bin: Path) -> BuildInfo:
    build = probe_build(cpu_bin, "cpu")
    assert build.problem is None, build.problem
    # The banner's compiler goes into the journal with the contender: a confound to say aloud.
    assert build.compiler and build.compiler.startswith("GNU ")
    assert build.contender_json()["compiler"] == build.compiler
    return build


async def collect(events):  # type: ignore[no-untyped-def]
    return [event async for event in events]


def exhaustive(build: BuildInfo, model: Path, ubatches: list[int], prompt: int, depth: int,
               repetitions: int = 5) -> dict[int, list[float]]:
    """Every ubatch measured by llama-bench itself in one process, ``repetitions`` each."""
    argv = [str(build.bench), "-m", str(model), "-p", str(prompt), "-n", "0", "-d", str(depth),
            "-ub", ",".join(map(str, ubatches)), "-r", str(repetitions), "-t", "1", "-fa", "1",
            "-o", "jsonl", *build.contender_args()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=build.launch_env(),
                          check=True)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {int(r["n_ubatch"]): [float(s) for s in r["samples_ts"]] for r in rows}


def confirmed(measured: dict[int, list[float]]) -> set[int]:
    """The ubatches an exhaustive run cannot tell from its best: a median at least the
    best's slowest repetition (its spread on this machine), or a gap the verdict's own
    statistics leave undecided (a loaded machine spreads some settings' repetitions wide)."""
    best = max(measured, key=lambda u: statistics.median(measured[u]))
    floor = min(min(measured[best]), statistics.median(measured[best]) * 0.95)
    return {u for u, samples in measured.items() if statistics.median(samples) >= floor
            or judge(compare(measured[best], samples)) != "a"}


@pytest.fixture(scope="module")
def vulkan(vulkan_bin: Path) -> BuildInfo:
    build = probe_build(vulkan_bin, "vulkan")
    assert build.problem is None, build.problem
    return build


@pytest.mark.parametrize("which", ["cpu", "vulkan"])
async def test_the_tune_picks_a_ubatch_an_exhaustive_run_confirms(which, request, tiny_llama, tmp_path):
    build = request.getfixturevalue(which)
    budget = BUDGET[which]
    events = await collect(run_sweep(RunRequest([build], tiny_llama, SPEC, run_dir=tmp_path,
                                                tune=TuneSpec(budget_s=budget))))
    chosen = next(e for e in events if isinstance(e, TuneChosen))
    grid = next(e for e in events if isinstance(e, TuneGrid))
    assert chosen.best is not None and chosen.best in grid.candidates
    ubatches = sorted({c.ubatch for c in grid.candidates if c.ubatch})
    assert ubatches == [32, 64, 512]  # 128 and up hold the prompt whole: 512 stands for them
    # The sweep ran at the choice: llama-bench echoes the ubatch it used.
    results = [e for e in events if isinstance(e, ResultReceived)]
    assert results and {r.result.raw["n_ubatch"] for r in results} == {chosen.chosen.ubatch}
    measured = exhaustive(build, tiny_llama, ubatches, 128, 0)
    assert chosen.chosen.ubatch in confirmed(measured), (chosen.reason, measured)
    finished = next(e for e in events if isinstance(e, TuneFinished))
    assert finished.seconds <= budget * 1.1


async def test_a_cancelled_tune_leaves_nothing_running_and_resumes(cpu, tiny_llama, tmp_path):
    tune = TuneSpec(budget_s=60.0)
    run = run_sweep(RunRequest([cpu], tiny_llama, SPEC, run_dir=tmp_path, tune=tune))
    async with contextlib.aclosing(run) as events:
        async for event in events:
            if isinstance(event, ProbeFinished):
                break  # the consumer walks away midway through round 0, after its first pass
    assert not [p for p in bench_children() if str(tiny_llama) in " ".join(p.cmdline())]
    first = read_journal(tmp_path)
    assert isinstance(first[-1], SweepFinished) and first[-1].cancelled
    assert not any(isinstance(e, TuneChosen) for e in first)
    # The first pass ran every candidate in one process: each is journalled as done.
    passed = [e for e in first if isinstance(e, ProbeFinished)]
    assert len(passed) == 3 and {e.shared for e in passed} == {3}

    resumed = await collect(resume(tmp_path, builds=[cpu]))
    assert not any(isinstance(e, TuneStarted) for e in resumed)  # the same tune goes on
    # Round 0 probes each candidate once per pass (in order, then back): the pass measured
    # before the cancel is not measured again.
    whole = read_journal(tmp_path)
    grid = next(e for e in whole if isinstance(e, TuneGrid))
    firsts = Counter(e.candidate for e in whole if isinstance(e, ProbeFinished) and e.round == 0)
    assert firsts == {c: 2 for c in grid.candidates}
    assert any(isinstance(e, TuneChosen) for e in resumed)
    assert any(isinstance(e, ResultReceived) for e in resumed)


@pytest.mark.parametrize("which", ["cpu", "vulkan"])
async def test_candidates_that_cannot_run_fail_alone(which, request, tiny_llama, tmp_path):
    """Two candidates the grid would never offer, fed in as an interrupted tune's grid: a
    batch of 0 (llama.cpp aborts: a crash) and an impossible context (a quantized V cache
    without flash attention: llama-bench cannot create it). Each fails alone; the good
    candidate is measured and chosen, and the duel runs."""
    build = request.getfixturevalue(which)
    good = Candidate(ubatch=512, batch=2048)
    crash = Candidate(ubatch=256, batch=0)
    impossible = Candidate(ubatch=128, batch=2048, flash_attn=False, type_k="q4_0", type_v="q4_0")
    grid = TuneGrid(build=build.name, default=good, candidates=(good, crash, impossible))
    budget = BUDGET[which]
    history = [TuneStarted(builds=(build.name,), budget_s=budget, free=("ub",), points=()), grid]
    events = await collect(run_sweep(RunRequest([build], tiny_llama, SPEC, run_dir=tmp_path,
                                                tune=TuneSpec(budget_s=budget), history=history)))
    failed = {e.candidate: e for e in events if isinstance(e, ProbeFailed)}
    assert set(failed) == {crash, impossible} and not any(e.budget for e in failed.values())
    assert "SIGABRT" in failed[crash].reason or "abort" in failed[crash].reason.lower(), failed[crash].reason
    assert "context" in failed[impossible].reason, failed[impossible].reason
    chosen = next(e for e in events if isinstance(e, TuneChosen))
    assert chosen.chosen == good
    assert any(isinstance(e, ResultReceived) for e in events)  # the duel ran
    assert not [p for p in bench_children() if str(tiny_llama) in " ".join(p.cmdline())]


async def test_a_contender_done_early_passes_its_share_on(cpu, tiny_llama, tmp_path):
    """``a`` has nothing to tune (its grid, fed in as an interrupted tune's, is its defaults
    alone): its whole share goes to ``b``, which may tune for the budget's whole 20 s; the
    tune as a whole stays within its budget. ``b``'s candidates differ only in -ub: each
    pass runs them in one llama-bench process, one after the other."""
    a, b = dataclasses.replace(cpu, name="a"), dataclasses.replace(cpu, name="b")
    default = Candidate(ubatch=512, batch=2048)
    history = [TuneStarted(builds=("a", "b"), budget_s=20.0, free=("ub",), points=(),
                           shares_s={"a": 10.0, "b": 10.0}),
               TuneGrid(build="a", default=default, candidates=(default,))]
    events = await collect(run_sweep(RunRequest([a, b], tiny_llama, SPEC, run_dir=tmp_path,
                                                tune=TuneSpec(budget_s=20.0), history=history)))
    moved = [e for e in events if isinstance(e, TuneShareMoved)]
    assert [(e.build, e.given) for e in moved] == [("a", {"b": 10.0})]
    assert describe_tune(moved[0]) == "           a  tune done early: the rest of its share passed on (b +10 s)"
    board = fold_tune_all([*history, *events])
    assert board.lanes["b"].share_s == 20.0 and board.lanes["a"].share_s == 0.0
    assert not [e for e in events if isinstance(e, ProbeFinished) and e.build == "a"]
    finished = [e for e in events if isinstance(e, ProbeFinished) and e.build == "b" and e.round == 0]
    grid = next(e for e in events if isinstance(e, TuneGrid) and e.build == "b")
    assert {e.shared for e in finished} == {len(grid.candidates)} and len(grid.candidates) == 3
    # llama-bench ran them in the order asked and wrote the ubatch into each result.
    measured = [e for e in events if isinstance(e, ProbeMeasured) and e.build == "b" and e.round == 0]
    assert [e.result.raw["n_ubatch"] for e in measured] == [512, 64, 32, 32, 64, 512]
    assert all(e.candidate.ubatch == e.result.raw["n_ubatch"] for e in measured)
    tuned = next(e for e in events if isinstance(e, TuneFinished))
    assert tuned.seconds <= 20.0 * 1.1
    # The tune is its own phase: said apart, not the sweep's overhead.
    final = events[-1]
    assert isinstance(final, SweepFinished) and final.overhead["tune"] >= tuned.seconds - 0.05  # rounded to 0.1 s
    assert final.overhead["wall"] >= final.overhead["work"] and "the tune before it took" in overhead_line(
        final.overhead)
    assert sum(final.overhead[p] for p in (*PARTS, "other")) == pytest.approx(final.overhead["overhead"], abs=0.01)


def test_an_oversized_ubatch_is_skipped_on_the_vulkan_builds_reported_memory(vulkan, tiny_llama):
    """lavapipe reports its memory like a card: without flash attention, a 4096-token
    ubatch's attention scores at a 64K context cannot fit in it, and are set aside."""
    device = vulkan.devices[0]
    assert device.free_mib and device.free_mib < 64 * 1024, device
    spec = SweepSpec(prompts=(4096,), gens=(16,), depths=(0, 65536), flash_attn=False)
    grid = make_grid(spec, TuneSpec(), vulkan, read_model(tiny_llama))
    skipped = {s.candidate.ubatch: s.reason for s in grid.skipped}
    assert 4096 in skipped and "cannot fit" in skipped[4096] and "GiB free" in skipped[4096]
    assert grid.default in grid.candidates  # the defaults still fit


def test_bench_tune_saves_the_tuned_settings_and_profiles_show_them(cpu, tiny_llama, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), LLAMADUEL_DATA_DIR=str(tmp_path / "data"))
    argv = [sys.executable, "-m", "tui.cli", "bench", "--build", f"a={cpu.folder}",
            "--build", f"b={cpu.folder}", "--model", str(tiny_llama), "-p", "128", "-n", "8",
            "-d", "0", "-r", "2", "-t", "1", "--tune", "--tune-budget", "20s", "--telemetry", "off",
            "--save", "tuned", "--run-dir", str(tmp_path / "run")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tune: ub free, probe pp128" in done.stderr and "tuned:" in done.stderr
    # After the table: what tuning was worth per contender.
    assert "\ntuned:\n- a" in done.stdout and "\n- b" in done.stdout, done.stdout
    journal = read_journal(tmp_path / "run")
    chosen = {e.build: e for e in journal if isinstance(e, TuneChosen)}
    assert set(chosen) == {"a", "b"}
    shown = subprocess.run([sys.executable, "-m", "tui.cli", "profiles", "show", "tuned"],
                           capture_output=True, text=True, timeout=120, env=env)
    assert shown.returncode == 0, shown.stderr
    for name, pick in chosen.items():
        args = " ".join(pick.chosen.args())
        assert f"runs with {args}" in shown.stdout, shown.stdout
        line = next(line for line in shown.stdout.splitlines() if line.startswith(f"- {name}"))
        assert f"ub={pick.chosen.ubatch}" in line
    assert "Tuned (ub free" in shown.stdout
    # The launch command (the app's y) runs a contender at its tuned ubatch.
    for name, pick in chosen.items():
        launch = subprocess.run([sys.executable, "-m", "tui.cli", "profiles", "export", "tuned",
                                 "--format", "launch", "--build", name],
                                capture_output=True, text=True, timeout=120, env=env)
        assert launch.returncode == 0, launch.stderr
        argv = launch.stdout.split()
        assert argv[argv.index("-ub") + 1] == str(pick.chosen.ubatch), launch.stdout

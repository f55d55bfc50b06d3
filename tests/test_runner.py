"""Real sweeps with the real llama-bench (CPU and Vulkan-on-lavapipe) on generated models."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from backends.builds import probe_build
from backends.journal.sweep import (
    PointFailed,
    PointProgress,
    PointStarted,
    ResultReceived,
    SweepFinished,
    SweepNote,
    SweepStarted,
    TestPoint,
)
from backends.sweep import (
    Journal,
    RunRequest,
    SweepControl,
    SweepError,
    SweepSpec,
    chunk_points,
    finished_points,
    list_runs,
    read_journal,
    resume,
    run_sweep,
    schedule,
)
from backends.sweep.plan import ChunkTiming, choose_granularity, turn_order

pytestmark = pytest.mark.toolchain

# One thread: on a busy two-core machine more threads than free cores slows llama.cpp a lot.
SMALL = SweepSpec(name="small", prompts=(32,), gens=(8,), depths=(0, 128), repetitions=2,
                  flash_attn=True, threads=1)


@pytest.fixture(scope="module")
def cpu(cpu_bin):
    build = probe_build(cpu_bin, "cpu")
    assert build.problem is None, build.problem
    return build


@pytest.fixture(scope="module")
def vulkan(vulkan_bin):
    build = probe_build(vulkan_bin, "vulkan")
    assert build.problem is None, build.problem
    return build


async def collect(events):
    return [event async for event in events]


def bench_children() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "llama-bench" and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def assert_gone(pid: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)
    raise AssertionError(f"llama-bench {pid} is still running")


async def test_two_builds_side_by_side_interleaved(cpu, vulkan, tiny_llama, tmp_path):
    events = await collect(run_sweep(RunRequest([cpu, vulkan], tiny_llama, SMALL, run_dir=tmp_path, granularity="point")))
    results = [e for e in events if isinstance(e, ResultReceived)]
    assert {(e.build, e.result.point) for e in results} == {
        (b, p) for b in ("cpu", "vulkan") for p in SMALL.points()}
    for event in results:
        assert event.result.avg_ts > 0
        assert len(event.result.samples_ts) == SMALL.repetitions
        assert "samples_ns" in event.result.raw  # every llama-bench field is kept
    by_build = {e.build: e.result.backends for e in results}
    assert by_build["cpu"] == "CPU" and "Vulkan" in by_build["vulkan"]
    assert isinstance(events[-1], SweepFinished) and events[-1].failures == 0

    # The journal holds the same events, and builds took turns A B, B A per point (ABBA).
    journal = read_journal(tmp_path)
    assert [type(e) for e in journal] == [type(e) for e in events]
    starts = [(e.build, e.point.key) for e in journal if isinstance(e, PointStarted)]
    assert starts == [(b, p.key) for i, p in enumerate(SMALL.points())
                      for b in turn_order(["cpu", "vulkan"], i)]


async def test_not_interleaved_runs_one_build_then_the_other(cpu, tiny_llama, tmp_path):
    other = probe_build(cpu.folder, "cpu-again")
    spec = SMALL.with_changes(depths=(0,))
    events = await collect(run_sweep(RunRequest([cpu, other], tiny_llama, spec, run_dir=tmp_path, interleave=False, granularity="point")))
    starts = [e.build for e in events if isinstance(e, PointStarted)]
    assert starts == ["cpu", "cpu", "cpu-again", "cpu-again"]


async def test_loaded_processes_never_measure_two_points_at_once(cpu, tiny_llama, tmp_path):
    """One loaded llama-bench per build (auto, where they fit) that runs on into its own next turn: interleaved
    or not, every point ends before the next one starts, and the orders hold."""
    other = probe_build(cpu.folder, "cpu-again")
    spec = SMALL.with_changes(gens=(256,), depths=(0, 128))  # generation long enough to overlap
    first, rest = spec.points()[:1], spec.points()[1:]
    builds = ("cpu", "cpu-again")
    for interleave in (False, True):
        events = await collect(run_sweep(RunRequest([cpu, other], tiny_llama, spec, interleave=interleave,
                                                    run_dir=tmp_path / str(interleave))))
        steps = [e for e in events if isinstance(e, (PointStarted, ResultReceived))]
        assert [type(e) for e in steps] == [PointStarted, ResultReceived] * (len(steps) // 2)
        starts = [(e.build, e.point) for e in steps if isinstance(e, PointStarted)]
        redone = any(isinstance(e, SweepNote) and "the pause before" in e.message for e in events)
        if not redone:  # a point measured again in a fresh process repeats its turn
            # Not interleaved: each build's first point (which measures its load), then all of
            # one build, then the next.
            assert starts == ([(b, p) for b in builds for p in first] + [(b, p) for b in builds for p in rest]
                              if not interleave else
                              [(b, p) for i, p in enumerate(spec.points()) for b in turn_order(list(builds), i)])


async def test_one_process_per_build_gives_the_same_grid(cpu, tiny_llama, tmp_path):
    events = await collect(run_sweep(RunRequest([cpu], tiny_llama, SMALL, run_dir=tmp_path, granularity="build")))
    results = [e.result.point for e in events if isinstance(e, ResultReceived)]
    assert sorted(results, key=lambda p: p.key) == sorted(SMALL.points(), key=lambda p: p.key)
    starts = [e for e in events if isinstance(e, PointStarted)]
    assert len({e.pid for e in starts}) == 1  # one llama-bench for the whole grid
    assert [e.point for e in starts] == list(SMALL.points())  # mapped from --progress


async def test_auto_keeps_one_loaded_process_per_build_when_loading_dominates(cpu, tiny_llama,
                                                                               tmp_path):
    other = probe_build(cpu.folder, "cpu-again")
    spec = SMALL.with_changes(depths=(0, 128, 256))
    events = await collect(run_sweep(RunRequest([cpu, other], tiny_llama, spec, run_dir=tmp_path)))
    notes = [e.message for e in events if isinstance(e, SweepNote)]
    # A tiny model loads in far longer than its points run: each build keeps one
    # llama-bench, paused between its points, and the builds still take turns ABBA.
    assert "paused between its points" in notes[0] and "loading takes" in notes[0]
    # On a busy machine a pause can land after a timed repetition began; that point is
    # measured again in a fresh process, and the run says so.
    again = {b: sum(n.startswith(f"{b}: the pause") for n in notes[1:]) for b in ("cpu", "cpu-again")}
    assert len(notes) == 1 + sum(again.values())
    results = {(e.build, e.result.point) for e in events if isinstance(e, ResultReceived)}
    assert results == {(b, p) for b in ("cpu", "cpu-again") for p in spec.points()}
    starts = [e for e in events if isinstance(e, PointStarted)]
    assert [(e.build, e.point) for e in starts] == [
        (b, p) for i, p in enumerate(spec.points()) for b in turn_order(["cpu", "cpu-again"], i)]
    for build in ("cpu", "cpu-again"):
        pids = {e.pid for e in starts if e.build == build}
        # One process for the whole grid; a re-measured point costs a fresh process, plus
        # one more for the rest of the grid when that point split it.
        assert len(pids) == 1 if not again[build] else len(pids) <= 1 + 2 * again[build]
    for pid in {e.pid for e in starts}:
        assert_gone(pid)


async def test_a_build_alone_runs_on_from_point_to_point_as_bare_llama_bench_would(cpu, tiny_llama, tmp_path):
    """Nothing to wait for between its points (no other build's turn, no thermal guard
    watching): the loaded llama-bench runs on into its next point unpaused, so no pause can
    land late, and each point's progress is still its own."""
    spec = SMALL.with_changes(depths=(0, 128, 256))
    events = await collect(run_sweep(RunRequest([cpu], tiny_llama, spec, run_dir=tmp_path, granularity="resident")))
    starts = [e for e in events if isinstance(e, PointStarted)]
    assert [e.point for e in starts] == list(spec.points())
    assert len({e.pid for e in starts}) == 1
    assert not any(isinstance(e, SweepNote) and "the pause before" in e.message for e in events)
    results = [e for e in events if isinstance(e, ResultReceived)]
    assert [e.result.point for e in results] == list(spec.points())
    assert all(len(e.result.samples_ts) == spec.repetitions for e in results)
    for event in (e for e in events if isinstance(e, PointProgress)):
        other = "prompt run" if event.point.n_gen else "generation run"
        assert not event.message.startswith(other), event
    # Every point after the first starts with the last one's result, before its own result.
    order = [(type(e).__name__, e.point if isinstance(e, PointStarted) else e.result.point)
             for e in events if isinstance(e, (PointStarted, ResultReceived))]
    assert order == [(kind, p) for p in spec.points() for kind in ("PointStarted", "ResultReceived")]
    assert_gone(starts[0].pid)


async def measured_in_turn_by_one_process(cpu, tiny_llama, tmp_path) -> None:
    """A build alone over three depths: each point measured once, in its turn, by one process."""
    spec = SMALL.with_changes(depths=(0, 128, 256))
    events = await collect(run_sweep(RunRequest([cpu], tiny_llama, spec, run_dir=tmp_path, granularity="resident")))
    starts = [e for e in events if isinstance(e, PointStarted)]
    assert [e.point for e in starts] == list(spec.points()) and len({e.pid for e in starts}) == 1
    assert [e.result.point for e in events if isinstance(e, ResultReceived)] == list(spec.points())
    assert not any(isinstance(e, SweepNote) and "the pause before" in e.message for e in events)


async def test_a_build_alone_runs_on_even_when_the_runner_gets_to_a_turn_after_it_ended(
        cpu, tiny_llama, tmp_path, monkeypatch):
    """A busy machine may schedule the process's readers before the runner: a point run on
    into can end before the runner awaits it. The process must run on into the next point
    then too, not stop at that result (a stop there can land late, inside a timed run)."""
    from backends.sweep.resident import ResidentBench

    run_point = ResidentBench.run_point

    async def lagging_runner(bench, point, *args):
        while point in bench.ahead and point.key not in bench.results:
            await asyncio.sleep(0.01)  # until the reader has this point's result
        return await run_point(bench, point, *args)

    monkeypatch.setattr(ResidentBench, "run_point", lagging_runner)
    await measured_in_turn_by_one_process(cpu, tiny_llama, tmp_path)


async def test_a_build_alone_read_late_was_still_measured_in_turn_by_one_process(
        cpu, tiny_llama, tmp_path, monkeypatch):
    """The worst a busy machine does: every stop between points lands too late to matter and
    the progress (stderr) is read points ahead of the results (stdout), the last ones only
    after the process has ended. Nothing was measured out of turn (the process ran on), so
    nothing may be measured again."""
    from backends.tool import ToolProcess

    timed_seen: list[int] = []  # test indexes whose timed run the progress reader has read
    stderr_ended = asyncio.Event()
    stderr_lines, stdout_lines = ToolProcess.stderr_lines, ToolProcess.stdout_lines

    async def progress_read_first(tool):
        async for line in stderr_lines(tool):
            if (match := re.search(r"benchmark (\d+)/\d+: (prompt|generation) run", line)):
                timed_seen.append(int(match.group(1)) - 1)
            yield line
        stderr_ended.set()

    async def results_read_two_tests_late(tool):
        results = 0
        async for line in stdout_lines(tool):
            while not stderr_ended.is_set() and max(timed_seen, default=-1) < results + 2:
                await asyncio.sleep(0.01)  # until the progress reader is two tests further
            results += line.startswith(b"{")
            yield line

    monkeypatch.setattr(ToolProcess, "pause", lambda tool: None)  # every stop too late
    monkeypatch.setattr(ToolProcess, "stderr_lines", progress_read_first)
    monkeypatch.setattr(ToolProcess, "stdout_lines", results_read_two_tests_late)
    await measured_in_turn_by_one_process(cpu, tiny_llama, tmp_path)
    assert sorted(set(timed_seen)) == list(range(6))  # every test's timed run was read


async def test_a_crash_in_a_resident_process_fails_one_point_and_the_rest_run(cpu, tiny_llama,
                                                                              tmp_path):
    spec = SMALL.with_changes(depths=(0, 2048), gens=(32,), repetitions=3)
    victim = TestPoint(n_prompt=0, n_gen=32, depth=2048)
    events = []
    async for event in run_sweep(RunRequest([cpu], tiny_llama, spec, run_dir=tmp_path, granularity="resident")):
        events.append(event)
        if isinstance(event, PointStarted) and event.point == victim:
            os.kill(event.pid, signal.SIGSEGV)
    failures = [e for e in events if isinstance(e, PointFailed)]
    assert [f.point for f in failures] == [victim] and failures[0].signal == "SIGSEGV"
    done = {e.result.point for e in events if isinstance(e, ResultReceived)}
    assert done == set(spec.points()) - {victim}


async def test_a_hung_resident_point_times_out_and_the_next_runs_in_a_new_process(cpu, tiny_llama,
                                                                                  tmp_path):
    spec = SMALL.with_changes(depths=(0, 2048, 4096), timeout=20.0)
    victim = TestPoint(n_prompt=32, n_gen=0, depth=2048)
    events, stopped = [], None
    async for event in run_sweep(RunRequest([cpu], tiny_llama, spec, run_dir=tmp_path, granularity="resident")):
        events.append(event)
        if isinstance(event, PointStarted) and event.point == victim:
            stopped = event.pid
            await asyncio.sleep(0.05)
            os.kill(stopped, signal.SIGSTOP)
            os.kill(stopped, signal.SIGSTOP)  # stays stopped even after the runner continues it
    failures = [e for e in events if isinstance(e, PointFailed)]
    assert [f.point for f in failures] == [victim] and failures[0].timed_out
    assert_gone(stopped)
    later = [e for e in events if isinstance(e, PointStarted) and e.point.depth == 4096]
    assert later and all(e.pid != stopped for e in later)
    assert {e.result.point for e in events if isinstance(e, ResultReceived)} == (
        set(spec.points()) - {victim})


async def test_a_crashing_model_fails_each_point_and_the_sweep_goes_on(cpu, tiny_llama, tmp_path):
    broken = tmp_path / "truncated.gguf"
    data = tiny_llama.read_bytes()
    broken.write_bytes(data[: len(data) // 3])  # header intact, tensor data cut off
    events = await collect(run_sweep(RunRequest([cpu], broken, SMALL, run_dir=tmp_path / "run")))
    failures = [e for e in events if isinstance(e, PointFailed)]
    assert [f.point for f in failures] == list(SMALL.points())
    for failure in failures:
        assert failure.exit_code not in (None, 0) or failure.signal
        assert "load" in failure.reason.lower() or "model" in failure.reason.lower(), failure.reason
        assert failure.stderr_tail
    assert events[-1].failures == len(SMALL.points()) and events[-1].results == 0


async def test_a_killed_point_is_isolated(cpu, tiny_llama, tmp_path):
    spec = SMALL.with_changes(depths=(0, 2048), gens=(32,), repetitions=3)
    victim = TestPoint(n_prompt=0, n_gen=32, depth=2048)
    events = []
    async for event in run_sweep(RunRequest([cpu], tiny_llama, spec, run_dir=tmp_path, granularity="point")):
        events.append(event)
        if isinstance(event, PointStarted) and event.point == victim:
            os.kill(event.pid, signal.SIGSEGV)  # a real crash, delivered by the kernel
    failures = [e for e in events if isinstance(e, PointFailed)]
    assert len(failures) == 1 and failures[0].point == victim
    assert failures[0].signal == "SIGSEGV" and "SIGSEGV" in failures[0].reason
    done = {e.result.point for e in events if isinstance(e, ResultReceived)}
    assert done == set(spec.points()) - {victim}


async def test_a_hung_point_times_out_and_the_next_runs(cpu, tiny_llama, tmp_path):
    spec = SMALL.with_changes(depths=(0, 2048), timeout=20.0)
    victim = TestPoint(n_prompt=32, n_gen=0, depth=2048)
    events, stopped = [], None
    async for event in run_sweep(RunRequest([cpu], tiny_llama, spec, run_dir=tmp_path, granularity="point")):
        events.append(event)
        if isinstance(event, PointStarted) and event.point == victim:
            stopped = event.pid
            os.kill(stopped, signal.SIGSTOP)  # alive but making no progress: a real hang
    failures = [e for e in events if isinstance(e, PointFailed)]
    assert len(failures) == 1 and failures[0].timed_out and failures[0].point == victim
    assert "hung" in failures[0].reason
    assert_gone(stopped)
    assert {e.result.point for e in events if isinstance(e, ResultReceived)} == (
        set(spec.points()) - {victim})


async def test_cancel_kills_every_child(cpu, tiny_llama, tmp_path):
    spec = SMALL.with_changes(depths=(16384,), gens=(256,), repetitions=5)
    pids, started, seen, control = [], asyncio.Event(), [], SweepControl()

    async def consume():
        async for event in run_sweep(RunRequest([cpu], tiny_llama, spec, run_dir=tmp_path),
                                     control=control):
            seen.append(event)
            if isinstance(event, PointStarted):
                pids.append(event.pid)
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 60)
    await asyncio.sleep(0.2)
    assert psutil.Process(pids[0]).status() != psutil.STATUS_ZOMBIE  # still working
    task.cancel()  # what Ctrl-C, a lost SSH connection or quitting the app do
    with pytest.raises(asyncio.CancelledError):
        await task
    for pid in pids:
        # Killed, not finished: the point has seconds of work left.
        assert_gone(pid, within=1.0)
    assert not [p for p in bench_children() if p.pid in pids]
    journal = read_journal(tmp_path)
    assert isinstance(journal[-1], SweepFinished) and journal[-1].cancelled
    # What the journal holds was either handed on or is waiting in the control, in order.
    kinds = [type(e).__name__ for e in (*seen, *control.undelivered)]
    assert [type(e).__name__ for e in journal][:-1] == kinds


async def test_resume_skips_finished_points(cpu, tiny_llama, tmp_path):
    spec = SMALL.with_changes(depths=(0, 128, 256))
    seen = []
    async with contextlib.aclosing(run_sweep(RunRequest([cpu], tiny_llama, spec, run_dir=tmp_path))) as events:
        async for event in events:
            if isinstance(event, ResultReceived):
                seen.append((event.build, event.result.point.key))
                if len(seen) == 2:
                    break  # the consumer walks away: the run is interrupted
    first_part = read_journal(tmp_path)
    done_before = finished_points(first_part)
    # A result journalled while the consumer walked away is kept too (on a busy machine the
    # next point can end before the generator is closed).
    assert set(seen) <= done_before and len(done_before) < len(spec.points()) and first_part[-1].cancelled

    resumed = await collect(resume(tmp_path, builds=[cpu]))
    assert isinstance(resumed[0], SweepStarted) and resumed[0].resumed
    rerun = {(e.build, e.point.key) for e in resumed if isinstance(e, PointStarted)}
    assert not rerun & done_before
    journal = read_journal(tmp_path)
    results = [(e.build, e.result.point.key) for e in journal if isinstance(e, ResultReceived)]
    assert len(results) == len(set(results)) == len(spec.points())
    runs = list_runs(tmp_path.parent)
    assert any(r.run_dir == tmp_path and r.finished for r in runs)


def test_sighup_to_the_command_line_kills_llama_bench(cpu, tiny_llama, tmp_path):
    env = dict(os.environ, LLAMADUEL_DATA_DIR=str(tmp_path / "data"))
    command = [sys.executable, "-m", "tui.cli", "bench", "--build", f"cpu={cpu.folder}",
               "--model", str(tiny_llama), "-p", "32", "-n", "64", "-d", "8192", "-r", "5",
               "--telemetry", "off", "--jsonl"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=Path(__file__).resolve().parent.parent, text=True)
    bench_pid = None
    for line in proc.stdout:
        event = json.loads(line)
        if event["type"] == "PointStarted":
            bench_pid = event["pid"]
            break
    assert bench_pid and psutil.pid_exists(bench_pid)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=30) == 130
    assert_gone(bench_pid)
    assert "cancelled" in proc.stderr.read()


async def test_bad_input_is_one_clear_error(cpu, tiny_llama, tmp_path):
    with pytest.raises(SweepError, match="not found"):
        await collect(run_sweep(RunRequest([cpu], tmp_path / "missing.gguf", SMALL, run_dir=tmp_path)))
    with pytest.raises(SweepError, match="names must differ"):
        await collect(run_sweep(RunRequest([cpu, cpu], tiny_llama, SMALL, run_dir=tmp_path)))
    with pytest.raises(SweepError, match="positive"):
        await collect(run_sweep(RunRequest([cpu], tiny_llama, SMALL.with_changes(prompts=(-1,)), run_dir=tmp_path)))


def test_chunks_and_schedule():
    points = SMALL.points()
    assert chunk_points(points, "point") == [(p,) for p in points]
    assert chunk_points(points, "build") == [points]
    assert chunk_points(points, "depth") == [points[:2], points[2:]]

    class B:
        def __init__(self, name):
            self.name = name

    a, b = B("a"), B("b")
    chunks = chunk_points(points, "point")
    # ABBA: the order reverses at every point, and again in the next round.
    turns = schedule([a, b], chunks, interleave=True)
    assert [(t[0].name, t[1][0]) for t in turns][:4] == [("a", points[0]), ("b", points[0]),
                                                           ("b", points[1]), ("a", points[1])]
    again = schedule([a, b], chunks, interleave=True, round_number=1)
    assert [t[0].name for t in again][:4] == ["b", "a", "a", "b"]
    assert [t[0].name for t in schedule([a, b], chunks, interleave=False)] == ["a"] * 4 + ["b"] * 4


def test_auto_keeps_a_loaded_process_wherever_the_models_fit_together():
    """A process per point pays the load and, at depth, the depth prefill once per point;
    one paused process per build pays them once, so it is chosen wherever it can run."""
    cheap = [ChunkTiming(load_s=0.01, work_s=2.0, points=1)]  # loading 0.5 % of a point
    dear = [ChunkTiming(load_s=1.0, work_s=2.0, points=1)]
    assert choose_granularity(cheap, True)[0] == "resident"
    assert choose_granularity(dear, True)[0] == "resident"
    assert choose_granularity([], True) == ("resident", "one loaded llama-bench per build, paused "
                                                        "between its points: load time not measurable")
    # Where it cannot (builds on another host, models that do not fit side by side).
    assert choose_granularity(cheap, False, "no room")[0] == "point"
    assert choose_granularity(dear, False, "no room") == (
        "depth", "one llama-bench per depth: loading takes 1.00 s, 50% of a point, and no room")


def test_journal_survives_a_torn_last_line(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(SweepFinished(run_id="x", results=1, failures=0))
    journal.close()
    with open(tmp_path / "journal.jsonl", "a") as handle:
        handle.write('{"type": "ResultRec')  # power cut mid-write
    read = read_journal(tmp_path)
    assert list(read) == [SweepFinished(run_id="x", results=1, failures=0)]
    assert read.torn_tail and [p.line for p in read.problems] == [2]
    # The next writer sets the torn tail aside before it appends.
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(SweepNote("resumed"))
    journal.close()
    assert (tmp_path / "journal.jsonl.torn-1").read_text() == '{"type": "ResultRec'
    read = read_journal(tmp_path)
    assert [type(e) for e in read] == [SweepFinished, SweepNote] and not read.problems


def test_engine_packages_never_import_textual():
    code = ("import sys, backends.sweep, backends.journal.sweep, backends.builds, "
            "backends.models, backends.tooling.synth, backends.demo, tui.cli, tui.cli.bench; "
            "import pkgutil, importlib, backends, profiles\n"
            "for pkg in (backends, profiles):\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        importlib.import_module(m.name)\n"
            "bad = [m for m in sys.modules if m == 'textual' or m.startswith('textual.')]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(__file__).resolve().parent.parent)

"""A damaged journal from a real CPU against Vulkan run: a result line cut mid-way and binary
garbage over a progress line. Every reader reports each unreadable line once; the point
that lost a counted result is not decided: resume measures it again (in a run that had
finished too), recommend names it and does not count it; the closing table shows each
point once, with what was measured before."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from backends.journal.damage import missing_results
from backends.journal.sweep import PointFailed, PointStarted, ResultReceived, SweepFinished
from backends.sweep import read_journal
from tui.cli import exits

pytestmark = pytest.mark.toolchain

REPO = Path(__file__).resolve().parent.parent
GRID = ("-p", "32", "-n", "8", "-d", "0", "-r", "2", "-t", "1", "--telemetry", "off", "--granularity", "point")


def llamaduel(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLAMADUEL_DATA_DIR": str(tmp / "data"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=REPO, capture_output=True,
                          text=True, env=env, timeout=600)


def builds_args(cpu_bin: Path, vulkan_bin: Path) -> tuple[str, ...]:
    return ("--build", f"cpu={cpu_bin}", "--build", f"vulkan={vulkan_bin}")


def table_rows(stdout: str) -> list[str]:
    """The test names of the closing table's rows, in order."""
    return [line.split("|")[1].strip() for line in stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| test ")]


def damage(journal: Path) -> tuple[int, int]:
    """Cut vulkan's tg8 result line mid-way and write binary garbage over a progress line;
    the two line numbers (1-based)."""
    lines = journal.read_bytes().split(b"\n")
    cut = next(i for i, raw in enumerate(lines) if raw.startswith(b'{"type":"ResultReceived"')
               and json.loads(raw)["build"] == "vulkan" and json.loads(raw)["result"]["point"]["n_gen"])
    garbled = next(i for i, raw in enumerate(lines) if raw.startswith(b'{"type":"PointProgress"'))
    lines[cut] = lines[cut][: len(lines[cut]) // 2]
    lines[garbled] = b"\x00\xff\xfe\x80\x1b[2J garbage \xc3\x28"
    journal.write_bytes(b"\n".join(lines))
    return cut + 1, garbled + 1


async def replayed_notes(journal: Path, tmp: Path) -> list[str]:
    """What the app says about the journal's lines when it replays it."""
    from profiles.store import ProfileStore
    from tui.app import LlamaduelApp

    app = LlamaduelApp([], [], store=ProfileStore(tmp / "store"), journal=journal, telemetry=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        return [n.message for n in app._notifications if "journal line" in n.message]


def test_a_finished_run_with_a_cut_result_is_reported_repaired_and_counted_once(
        cpu_bin, vulkan_bin, tiny_llama, tmp_path):
    run_dir = tmp_path / "run"
    done = llamaduel("bench", *builds_args(cpu_bin, vulkan_bin), "--model", str(tiny_llama), *GRID,
                     "--run-dir", str(run_dir), tmp=tmp_path)
    assert done.returncode == exits.COMPARED, done.stderr
    journal = run_dir / "journal.jsonl"
    cut, garbled = damage(journal)
    said = [f"journal line {n}: unreadable (cut or corrupted), skipped" for n in sorted((cut, garbled))]
    assert [str(m) for m in missing_results(read_journal(run_dir))] == [
        "vulkan's tg8 result is missing from the journal: tg8 is not counted until it is measured "
        "again (`llamaduel resume`)"]

    assert asyncio.run(replayed_notes(journal, tmp_path)) == said  # the app's --replay, once each

    judged = llamaduel("recommend", str(journal), tmp=tmp_path)
    assert judged.returncode == exits.PARTIAL, judged.stderr
    notes = [line for line in judged.stderr.splitlines() if "journal line" in line]
    assert [n.split(": ", 2)[-1] for n in notes] == said
    assert "vulkan's tg8 result is missing" in judged.stderr
    assert "generation" not in judged.stdout and "prompt processing" in judged.stdout

    resumed = llamaduel("resume", str(run_dir), tmp=tmp_path)
    assert resumed.returncode == exits.COMPARED, resumed.stderr
    for line in said:
        assert resumed.stderr.count(line) == 1, resumed.stderr
    after = read_journal(run_dir)
    started = [(e.build, e.point.name) for e in after if isinstance(e, PointStarted)]
    assert started[-1] == ("vulkan", "tg8") and started.count(("vulkan", "tg8")) == 2
    assert len(started) == 5  # four in the first run, one measured again
    assert not missing_results(after) and isinstance(after[-1], SweepFinished)
    assert table_rows(resumed.stdout) == ["pp32", "tg8"]
    assert "| - " not in resumed.stdout  # the points of the first run are in it

    again = llamaduel("recommend", str(journal), tmp=tmp_path)
    assert again.returncode == exits.COMPARED and "generation" in again.stdout
    assert "missing" not in again.stderr


def test_resumes_of_an_interrupted_run_show_each_point_once(cpu_bin, vulkan_bin, tiny_llama, tmp_path):
    env = {**os.environ, "LLAMADUEL_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)}
    run_dir = tmp_path / "run"
    for attempt in range(3):
        args = (["bench", *builds_args(cpu_bin, vulkan_bin), "--model", str(tiny_llama), *GRID,
                 "-d", "0,16,32", "--run-dir", str(run_dir), "--jsonl"] if attempt == 0
                else ["resume", str(run_dir), "--jsonl"])
        run = subprocess.Popen([sys.executable, "-m", "tui.cli", *args], cwd=REPO, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert run.stdout is not None
        seen = 0
        for line in run.stdout:
            seen += json.loads(line)["type"] == "ResultReceived"
            if seen == 2:
                break
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=120)
    measured = {(e.build, e.result.point.key) for e in read_journal(run_dir) if isinstance(e, ResultReceived)}
    final = llamaduel("resume", str(run_dir), tmp=tmp_path)
    journal = read_journal(run_dir)
    results = [(e.build, e.result.point.key) for e in journal if isinstance(e, ResultReceived)]
    failed = {(e.build, e.point.key) for e in journal if isinstance(e, PointFailed)} - set(results)
    # lavapipe's llama-bench now and then crashes at a point: that point fails (exit 3), once.
    assert final.returncode == (exits.PARTIAL if failed else exits.COMPARED), final.stderr
    assert table_rows(final.stdout) == ["pp32", "tg8", "pp32 @ d16", "tg8 @ d16", "pp32 @ d32", "tg8 @ d32"]
    assert len(results) == len(set(results)) == 12 - len(failed) and measured <= set(results)

"""Faults, each reproduced for real: a full disk and a read-only folder (a small tmpfs),
a closed pipe, a second writer on a journal, runs started in the same second, a
llama-bench that writes invalid results or nothing at all, hostile paths. Each must end
in one clear line, leave no process behind and lose no finished result."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from backends.builds import probe_build
from backends.journal.sweep import PointDecided, PointFailed, ResultReceived, SweepFinished
from backends.models import find_models, read_model
from backends.sweep import (
    Journal,
    JournalBusy,
    RunRequest,
    SweepSpec,
    list_runs,
    new_run_dir,
    read_journal,
    resume,
    run_sweep,
)

pytestmark = pytest.mark.toolchain

REPO = Path(__file__).resolve().parent.parent
TINY = SweepSpec(name="tiny", prompts=(32,), gens=(8,), depths=(0,), repetitions=2, threads=1)


@pytest.fixture(scope="module")
def cpu(cpu_bin):
    return probe_build(cpu_bin, "cpu")


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "256k"):
    """A real file system of ``size`` at ``path`` (tmpfs; the test suite runs as root)."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs to fill it: run the test suite as root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def llamaduel(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=600, **kwargs)


@pytest.fixture
def model(tiny_llama, tmp_path) -> Path:
    """This test's own copy of the tiny model: its path tells this test's processes apart."""
    own = tmp_path / "own-model.gguf"
    own.write_bytes(tiny_llama.read_bytes())
    return own


def bench_processes(model: Path) -> list[psutil.Process]:
    """llama-bench processes still alive that run ``model`` (wherever they were re-parented)."""
    found = []
    for process in psutil.process_iter(["name", "status", "cmdline"]):
        if ("llama-bench" in (process.info["name"] or "")
                and process.info["status"] != psutil.STATUS_ZOMBIE
                and str(model) in (process.info["cmdline"] or [])):
            found.append(process)
    return found


def fill(folder: Path, leave: int) -> Path:
    """Fill the file system of ``folder`` until only about ``leave`` bytes are free."""
    filler = folder / "filler"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    filler.write_bytes(b"\0" * max(0, free - leave))
    return filler


def test_a_full_disk_mid_sweep_stops_the_sweep_says_where_and_resume_repairs(cpu, model, tmp_path):
    with small_filesystem(tmp_path / "disk") as disk:
        run_dir = disk / "run"
        run_dir.mkdir()
        filler = fill(disk, leave=24_000)  # room for the start and a few results, not the sweep
        done = llamaduel("bench", "--build", f"cpu={cpu.folder}", "--model", str(model),
                         "-p", "32", "-n", "8", "-d", "0,64,128,256,512,1024", "-r", "2", "-t", "1",
                         "--telemetry", "off", "--run-dir", str(run_dir))
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        stopped = [line for line in lines if line.startswith("stopped: ")]
        assert len(stopped) == 1 and "cannot write the run journal" in stopped[0]
        assert "no space left on the device" in stopped[0] and str(run_dir) in stopped[0]
        assert "Traceback" not in done.stderr
        assert not bench_processes(model)  # it stopped its llama-bench instead of measuring into the void
        finished = [e for e in read_journal(run_dir) if isinstance(e, ResultReceived)]
        filler.unlink()  # space again: resume sets the torn tail aside and carries on
        events = asyncio.run(_collect(resume(run_dir, builds=[cpu])))
        journal = read_journal(run_dir)
        assert not journal.problems
        results = {(e.build, e.result.point.key) for e in journal if isinstance(e, ResultReceived)}
        assert {(e.build, e.result.point.key) for e in finished} <= results  # nothing lost
        assert len(results) == 12 and isinstance(events[-1], SweepFinished)


def test_a_read_only_data_folder_is_one_line_for_every_write(cpu, model, tmp_path):
    with small_filesystem(tmp_path / "ro") as folder:
        store = folder / "profiles"
        run = asyncio.run(_collect(run_sweep(RunRequest([cpu], model, TINY, run_dir=tmp_path / "run"))))
        assert isinstance(run[-1], SweepFinished)
        assert llamaduel("profiles", "--store", str(store), "import", str(tmp_path / "run" / "journal.jsonl"),
                         "--name", "before").returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        for args in (["import", str(tmp_path / "run" / "journal.jsonl"), "--name", "again"],
                     ["rename", "before", "after"], ["delete", "before", "--yes"]):
            done = llamaduel("profiles", "--store", str(store), *args)
            assert done.returncode == 2, (args, done.stderr)
            assert "read-only" in done.stderr and "Traceback" not in done.stderr
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        done = llamaduel("bench", "--build", f"cpu={cpu.folder}", "--model", str(model), "-p", "32",
                         "-n", "8", "-r", "1", "--telemetry", "off", "--run-dir", str(folder / "run2"))
        assert done.returncode == 2 and "read-only" in done.stderr.splitlines()[-1]
        assert not bench_processes(model)


def test_a_closed_pipe_ends_quietly(cpu, model, tmp_path):
    env = {"LLAMADUEL_DATA_DIR": str(tmp_path / "data")}
    reader = subprocess.Popen(["head", "-3"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    writer = subprocess.Popen([sys.executable, "-m", "tui.cli", "bench", "--build", f"cpu={cpu.folder}",
                               "--model", str(model), "-p", "32", "-n", "8", "-d", "0,64,128",
                               "-r", "2", "-t", "1", "--jsonl"],
                              cwd=REPO, stdout=reader.stdin, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **env})
    reader.stdin.close()
    lines = reader.stdout.read().splitlines()
    reader.wait()
    _, stderr = writer.communicate(timeout=300)
    assert len(lines) == 3 and json.loads(lines[0])["type"] == "SweepStarted"
    assert writer.returncode == 128 + signal.SIGPIPE, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert not bench_processes(model)


async def _collect(events):
    return [e async for e in events]


async def test_a_journal_refuses_a_second_writer_and_run_ids_are_unique(cpu, tiny_llama, tmp_path):
    first = new_run_dir(tmp_path, tiny_llama, when=1_800_000_000)
    second = new_run_dir(tmp_path, tiny_llama, when=1_800_000_000)
    assert first[0] != second[0] and first[1].is_dir() and second[1].is_dir()
    journal = Journal(first[1] / "journal.jsonl")
    try:
        with pytest.raises(JournalBusy, match=f"is being written by llamaduel pid {os.getpid()}"):
            Journal(first[1] / "journal.jsonl")
        with pytest.raises(JournalBusy):
            await _collect(run_sweep(RunRequest([cpu], tiny_llama, TINY, run_dir=first[1])))
    finally:
        journal.close()
    # Two sweeps started at once into the same runs folder get a run each.
    runs = await asyncio.gather(*(_collect(run_sweep(RunRequest([cpu], tiny_llama, TINY, runs_root=tmp_path / "r")))
                                  for _ in range(2)))
    assert runs[0][0].run_id != runs[1][0].run_id
    assert [len(list(read_journal(Path(r[0].run_dir)))) > 0 for r in runs] == [True, True]
    assert all(s.finished for s in list_runs(tmp_path / "r"))


def _mangling_build(folder: Path, real: Path, mangle: str) -> Path:
    """A build folder whose llama-bench runs the real one and rewrites its result lines:
    what a broken build or a damaged pipe can really deliver."""
    folder.mkdir()
    script = folder / "llama-bench"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, subprocess, sys
        child = subprocess.Popen([{str(real / 'llama-bench')!r}, *sys.argv[1:]], stdout=subprocess.PIPE, text=True)
        first = True
        for line in child.stdout:
            if first and line.startswith("{{") and json.loads(line).get("n_prompt"):
                record = json.loads(line)
                {mangle}
                line = json.dumps(record) + "\\n"
                first = False
            sys.stdout.write(line)
            sys.stdout.flush()
        sys.exit(child.wait())
        """))
    script.chmod(0o755)
    return folder


@pytest.mark.parametrize("mangle, words", [
    ("record['avg_ts'] = float('nan'); record['samples_ts'] = [float('nan')]", "avg_ts is nan"),
    ("record['avg_ts'] = -5.0", "avg_ts is -5.0"),
    ("record['avg_ts'] = 'fast'", "avg_ts is 'fast'"),
    ("record.pop('avg_ts')", "avg_ts is None"),
    ("record['samples_ts'] = [1e308 * 10]", "samples_ts holds inf"),
])
async def test_an_invalid_result_line_is_a_failure_and_resume_measures_it_again(
        cpu, tiny_llama, tmp_path, mangle, words):
    broken = probe_build(_mangling_build(tmp_path / "broken", cpu.folder, mangle), "broken")
    assert broken.runnable, broken.problem
    events = await _collect(run_sweep(RunRequest([broken], tiny_llama, TINY, run_dir=tmp_path / "run", granularity="point")))
    failures = [e for e in events if isinstance(e, PointFailed)]
    assert len(failures) == 1 and words in failures[0].reason and "invalid result" in failures[0].reason
    assert [e.result.point.name for e in events if isinstance(e, ResultReceived)] == ["tg8"]
    # The same build, repaired: the failed point is measured again, the rest kept.
    repaired = dataclasses.replace(cpu, name="broken")
    resumed = await _collect(resume(tmp_path / "run", builds=[repaired], retry_failed=True))
    assert [e.result.point.name for e in resumed if isinstance(e, ResultReceived)] == ["pp32"]


def test_a_build_whose_llama_bench_prints_nothing_is_not_ok(tmp_path):
    folder = tmp_path / "silent"
    folder.mkdir()
    (folder / "llama-bench").write_text("#!/bin/sh\nexit 0\n")
    (folder / "llama-bench").chmod(0o755)
    build = probe_build(folder, "silent", use_cache=False)
    assert build.problem and "printed nothing" in build.problem


def test_hostile_model_paths_loops_fifos_and_odd_names(tiny_llama, tmp_path):
    models = tmp_path / "models"
    odd = models / "a b 'q' #1 ;$(x) ünï"
    odd.mkdir(parents=True)
    (odd / "tiny model.gguf").write_bytes(tiny_llama.read_bytes())
    (models / "loop").symlink_to(models)  # a folder link back to the top
    (models / "self.gguf").symlink_to(models / "self.gguf")  # a file link to itself
    os.mkfifo(models / "pipe.gguf")
    found = {m.path.name: m for m in find_models([models])}
    assert set(found) == {"tiny model.gguf", "self.gguf", "pipe.gguf"}
    assert found["tiny model.gguf"].runnable
    assert "named pipe" in found["pipe.gguf"].problem
    assert "symbolic links" in found["self.gguf"].problem
    done = llamaduel("models", str(models))
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert "tiny model.gguf" in done.stdout and "named pipe" in done.stdout
    assert read_model(odd / "tiny model.gguf").layers == 2


async def test_a_sweep_on_paths_with_spaces_quotes_and_shell_characters(cpu, tiny_llama, tmp_path):
    odd = tmp_path / "dir with 'quotes' #; $(echo no) ü"
    odd.mkdir()
    model = odd / "tiny model.gguf"
    model.write_bytes(tiny_llama.read_bytes())
    events = await _collect(run_sweep(RunRequest([cpu], model, TINY, run_dir=odd / "run")))
    assert sum(isinstance(e, ResultReceived) for e in events) == 2
    assert {e.outcome for e in events if isinstance(e, PointDecided)} == {"fixed"}

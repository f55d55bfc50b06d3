"""Server duel failures, for real: each is one clear line, and nothing is left listening."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from server_helpers import assert_nothing_left, cpu, group_alive, of, run_duel

from backends import procs
from backends.journal.serve import (
    ContenderFailed,
    FirstContentToken,
    LevelFinished,
    RequestFailed,
    RequestFinished,
    ServerFailed,
    ServerStarting,
    ServerStopped,
)
from backends.server import DuelSpec
from backends.server.launch import (
    HOST,
    ServerProcess,
    ServerSettings,
    port_free,
    server_argv,
)
from backends.server.validate import validate_launch

REPO = Path(__file__).resolve().parent.parent


def truncated(model: Path, folder: Path) -> Path:
    cut = folder / "truncated.gguf"
    cut.write_bytes(model.read_bytes()[:20_000])
    return cut


def test_a_server_killed_mid_load_fails_its_level_and_the_next_level_starts_afresh(
        cpu_bin, tiny_llama, tmp_path):
    spec = DuelSpec(concurrency=(2, 1), prompts=(96,), n_gen=400, requests=6, gap=False,
                    endpoint="completion")
    killed: list[int] = []

    def kill_on_first_token(event: object) -> None:
        if isinstance(event, FirstContentToken) and not killed:
            server = next(e for e in events_so_far if isinstance(e, ServerStarting))
            os.killpg(server.pid, signal.SIGKILL)
            killed.append(server.pid)
        events_so_far.append(event)

    events_so_far: list[object] = []
    events = run_duel([cpu(cpu_bin)], tiny_llama, spec, tmp_path / "journal.jsonl",
                      on_event=kill_on_first_token)

    first, second = of(events, LevelFinished)
    assert first.failed and first.summary.errors >= 1
    (died,) = of(events, ServerFailed)
    assert died.phase == "load" and died.level == "c2:p96:n400:d0"
    assert died.reason.startswith("died under load") and "SIGKILL" in died.reason
    assert "\n" not in died.reason and died.signal == "SIGKILL"
    assert all(not r.stalled for r in of(events, RequestFailed))
    # The failed level's second turn is skipped; the next level gets a fresh server per turn.
    assert not second.failed and second.summary.requests == 6
    assert [(e.level[:2], e.turn) for e in of(events, ServerStarting)] == [("c2", 1), ("c1", 1), ("c1", 2)]
    assert all(e.port_free for e in of(events, ServerStopped))
    assert any("died under load" in line for line in events[-1].failures)
    assert_nothing_left(events)


def test_a_stalled_server_is_killed_at_the_deadline(cpu_bin, tiny_llama, tmp_path):
    spec = DuelSpec(concurrency=(1,), prompts=(96,), n_gen=1900, requests=2, gap=False,
                    stall_s=3.0, endpoint="completion", settings=ServerSettings(threads=1))
    stopped: list[int] = []
    seen: list[object] = []

    def freeze_on_first_token(event: object) -> None:
        seen.append(event)
        if isinstance(event, FirstContentToken) and not stopped:
            server = next(e for e in seen if isinstance(e, ServerStarting))
            os.killpg(server.pid, signal.SIGSTOP)  # alive, listening, silent
            stopped.append(server.pid)

    events = run_duel([cpu(cpu_bin)], tiny_llama, spec, tmp_path / "journal.jsonl",
                      on_event=freeze_on_first_token)
    (failed,) = of(events, RequestFailed)
    assert failed.stalled and "no answer for 3s" in failed.reason
    (stall,) = of(events, ServerFailed)
    assert stall.phase == "load" and stall.reason.startswith("stalled")
    (level,) = of(events, LevelFinished)
    assert level.failed and level.summary.requests == 0
    assert not group_alive(stopped[0])
    assert_nothing_left(events)


def test_a_port_already_taken_is_one_line_and_the_other_contender_runs(cpu_bin, tiny_llama, tmp_path):
    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        taken = holder.getsockname()[1]
        spec = DuelSpec(concurrency=(1,), prompts=(96,), n_gen=4, requests=1, gap=False)
        events = run_duel([cpu(cpu_bin, "fixed", port=taken), cpu(cpu_bin)], tiny_llama, spec,
                          tmp_path / "journal.jsonl")
        (failed,) = of(events, ServerFailed, "fixed")
        assert failed.phase == "start" and failed.reason == f"port {taken} on 127.0.0.1 is already in use"
        assert not of(events, ServerStarting, "fixed")
        assert of(events, RequestFinished, "cpu")
        assert events[-1].failures == (f"fixed at c1:p96:n4:d0: {failed.reason}",)
        assert_nothing_left(events)


def test_llama_servers_own_bind_error_is_its_log_line(cpu_bin, tiny_llama):
    async def start_on(port: int) -> str:
        argv = server_argv(cpu_bin / "llama-server", str(tiny_llama), port, 1, 512, ServerSettings())
        server = ServerProcess(await procs.spawn(argv), argv, port)
        try:
            failure = await server.wait_healthy(60)
        finally:
            await server.stop()
        assert not isinstance(failure, float)
        return failure.reason

    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        port = holder.getsockname()[1]
        reason = asyncio.run(start_on(port))
    assert reason.startswith("start: couldn't bind HTTP server socket") and str(port) in reason
    assert "exited with code 1" in reason and port_free(port)


def test_a_build_without_llama_server_sits_out(cpu_bin, tiny_llama, tmp_path):
    empty = tmp_path / "no-server"
    empty.mkdir()
    (empty / "llama-bench").symlink_to(cpu_bin / "llama-bench")
    spec = DuelSpec(concurrency=(1,), prompts=(96,), n_gen=4, requests=1, gap=False)
    events = run_duel([cpu(empty, "bench-only"), cpu(cpu_bin)], tiny_llama, spec,
                      tmp_path / "journal.jsonl")
    (out,) = of(events, ContenderFailed)
    assert out.contender == "bench-only" and out.reason == f"no llama-server in {empty}"
    assert not of(events, ServerStarting, "bench-only") and of(events, RequestFinished, "cpu")
    assert_nothing_left(events)


def test_a_server_that_never_becomes_healthy_reports_the_model_error(cpu_bin, tiny_llama, tmp_path):
    spec = DuelSpec(concurrency=(1, 2), prompts=(96,), n_gen=4, requests=1, gap=False)
    events = run_duel([cpu(cpu_bin)], truncated(tiny_llama, tmp_path), spec, tmp_path / "journal.jsonl")
    failures = of(events, ServerFailed)
    assert [f.phase for f in failures] == ["start", "start"]  # each level tried, each failed
    for failure in failures:
        assert "error loading model" in failure.reason and "corrupted or incomplete" in failure.reason
        assert "exited with code 1" in failure.reason and failure.exit_code == 1
    assert all(level.failed for level in of(events, LevelFinished))
    assert len(events[-1].failures) == 2
    assert_nothing_left(events)


def test_a_server_that_hangs_before_listening_meets_the_start_deadline(tmp_path, tiny_llama):
    folder = tmp_path / "hang"
    folder.mkdir()
    script = folder / "llama-server"
    script.write_text("#!/bin/sh\nsleep 6011 &\necho 'loading the model'\nexec sleep 6012\n")
    script.chmod(0o755)
    spec = DuelSpec(concurrency=(1,), prompts=(96,), n_gen=4, requests=1, gap=False,
                    start_timeout_s=2.0)
    events = run_duel([cpu(folder, "hang")], tiny_llama, spec, tmp_path / "journal.jsonl")
    (failure,) = of(events, ServerFailed)
    assert failure.reason == ("llama-server was not healthy within 2s; "
                              "its last log line: loading the model")
    assert_nothing_left(events)


def test_validate_launch_runs_the_command_and_one_request(cpu_bin, tiny_llama, tmp_path):
    server = str(cpu_bin / "llama-server")
    works = asyncio.run(validate_launch([server, "-m", str(tiny_llama), "--host", "0.0.0.0",
                                         "--port", "8080", "-ngl", "999", "-c", "1024"]))
    assert works.ok and works.n_gen == 8 and works.endpoint == "chat" and works.port_free_after
    assert "8080" not in works.argv and works.argv[works.argv.index("--host") + 1] == HOST
    broken = asyncio.run(validate_launch([server, "-m", str(truncated(tiny_llama, tmp_path))]))
    assert not broken.ok and "error loading model" in (broken.reason or "") and broken.port_free_after


def test_a_server_that_refuses_its_cache_type_is_quoted_by_the_cause_not_the_callers(
        cpu_bin, tiny_llama):
    # The tiny model's heads are 16 wide; q4_0's blocks are 32. llama.cpp logs the cause
    # first, then each caller giving up ("failed to create llama_context", "exiting due to
    # model loading error"); the reason is the cause.
    server = str(cpu_bin / "llama-server")
    refused = asyncio.run(validate_launch([server, "-m", str(tiny_llama), "-ctk", "q4_0", "-c", "512"]))
    assert not refused.ok and refused.port_free_after
    assert "K cache type q4_0 with block size 32 does not divide" in (refused.reason or ""), refused.reason


def test_the_cli_prints_a_table_and_checks_a_launch_command(cpu_bin, tiny_llama, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "LLAMADUEL_DATA_DIR": str(tmp_path / "data")}
    bench = subprocess.run(
        [sys.executable, "-m", "tui.cli", "serve-bench", "--build", f"cpu={cpu_bin}", "--model",
         str(tiny_llama), "--concurrency", "1,2", "-p", "96", "-n", "8", "--requests", "2",
         "--journal", str(tmp_path / "journal.jsonl")],
        check=False, capture_output=True, text=True, env=env, timeout=300)
    assert bench.returncode == 0, bench.stderr
    assert bench.stdout.splitlines()[0].split()[:3] == ["build", "c", "shape"]
    assert "llama-bench vs llama-server" in bench.stdout and "Traceback" not in bench.stderr
    check = subprocess.run(
        [sys.executable, "-m", "tui.cli", "serve-bench", "--launch-command",
         f"{cpu_bin / 'llama-server'} -m {truncated(tiny_llama, tmp_path)} --port 8080"],
        check=False, capture_output=True, text=True, env=env, timeout=300)
    assert check.returncode == 4 and check.stdout.startswith("launch command FAILED: ")
    assert "error loading model" in check.stdout.splitlines()[0]


def test_closing_the_duel_mid_level_stops_the_server_and_journals_the_end(cpu_bin, tiny_llama,
                                                                          tmp_path):
    from backends.journal.serve import DuelFinished
    from backends.server import read_journal, run_serve_duel

    spec = DuelSpec(concurrency=(2,), prompts=(96,), n_gen=1900, requests=4, gap=False,
                    settings=ServerSettings(threads=1))
    journal = tmp_path / "journal.jsonl"

    async def read_until_first_token() -> list[object]:
        seen: list[object] = []
        duel = run_serve_duel([cpu(cpu_bin)], tiny_llama, spec, journal_path=journal)
        async for event in duel:
            seen.append(event)
            if isinstance(event, FirstContentToken):
                break
        await duel.aclose()
        return seen

    seen = asyncio.run(read_until_first_token())
    assert_nothing_left(seen)
    written = read_journal(journal)
    assert isinstance(written[-1], DuelFinished) and written[-1].cancelled
    assert any(isinstance(e, ServerStopped) and e.port_free for e in written)


def test_bad_input_to_the_cli_is_one_line(cpu_bin, tiny_llama, tmp_path):
    runner = "import sys; from tui.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(REPO), "LLAMADUEL_DATA_DIR": str(tmp_path / "data")}
    for args, line in (
            (["--model", str(tiny_llama)], "llamaduel: give at least one --build NAME=PATH"),
            (["--build", f"cpu={cpu_bin}", "--model", str(tmp_path / "none.gguf")],
             f"llamaduel: model file not found: {tmp_path / 'none.gguf'}"),
            (["--build", f"cpu={cpu_bin}", "--model", str(tiny_llama), "--concurrency", "0"],
             "llamaduel: concurrency levels must be 1 or more")):
        done = subprocess.run([sys.executable, "-c", runner, "serve-bench", *args], check=False,
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 2 and done.stderr.strip() == line

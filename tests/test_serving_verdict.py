"""The serving verdict per concurrency level, and the profile that keeps a server duel.

On constructed samples (known rates and spreads) and on real duels: the real CPU build's
llama-server under two names (an A/A duel: never a winner) and CPU against Vulkan on
lavapipe (a lopsided real pair: the CPU build wins).
"""

from __future__ import annotations

import random

import pytest
from server_helpers import cpu, run_duel, vulkan

from backends.journal.serve import (
    DuelFinished,
    DuelStarted,
    Level,
    LevelFinished,
    LevelSummary,
    RequestFinished,
    ServerStarting,
    TurnFigures,
)
from backends.server import DuelSpec, ServerSettings, duel_summary, read_journal
from backends.server.metrics import dist
from profiles.model import profile_from_serve_duel
from profiles.serving import serving_verdicts
from profiles.store import ProfileStore, profile_from_toml, profile_to_toml
from tui.cli import main

N_GEN = 12


def summary(name: str, concurrency: int, rate: float, *, n: int = 8, spread: float = 0.03,
            seed: int = 1, errors: int = 0, n_prompt: int = 96) -> LevelSummary:
    """A level whose requests each deliver ``rate`` tok/s give or take ``spread`` (log sd)."""
    rnd = random.Random(seed)
    level = Level(concurrency, n_prompt, N_GEN)
    e2e = tuple(N_GEN / (rate * rnd.lognormvariate(0, spread)) for _ in range(n))
    wall = sum(e2e) / concurrency
    return LevelSummary(name, level, n, errors, dist([0.02] * n), dist([0.004] * n), dist(e2e),
                        dist([rate] * n), dist([900.0] * n), N_GEN * n / wall, N_GEN * n, wall,
                        gen_tps_samples=(rate,) * n, ttft_samples=(0.02,) * n, e2e_samples=e2e,
                        error_reasons=("HTTP 503",) if errors else ())


def turned(name: str, concurrency: int, rates: tuple[float, ...], *, n: int = 4, spread: float = 0.03,
           seed: int = 1) -> LevelSummary:
    """A level served in ``len(rates)`` turns of ``n`` requests, each turn at its own rate."""
    rnd = random.Random(seed)
    level = Level(concurrency, 96, N_GEN)
    turns, e2e, of_turn = [], [], []
    for turn, rate in enumerate(rates, 1):
        times = [N_GEN / (rate * rnd.lognormvariate(0, spread)) for _ in range(n)]
        wall = sum(times) / concurrency
        turns.append(TurnFigures(turn, n, 0, N_GEN * n, wall, N_GEN * n / wall))
        e2e += times
        of_turn += [turn] * n
    total, wall = N_GEN * n * len(rates), sum(t.wall_s for t in turns)
    return LevelSummary(name, level, len(e2e), 0, dist([0.02] * len(e2e)), dist([0.004] * len(e2e)),
                        dist(e2e), dist(e2e), dist([900.0] * len(e2e)), total / wall, total, wall,
                        e2e_samples=tuple(e2e), turns=tuple(turns), e2e_turns=tuple(of_turn))


def failed(name: str, concurrency: int) -> LevelSummary:
    level = Level(concurrency, 96, N_GEN)
    empty = dist([])
    return LevelSummary(name, level, 0, 0, empty, empty, empty, empty, empty, None, 0, 0.0,
                        error_reasons=("died under load",))


def duel(*summaries: LevelSummary) -> dict:
    names = tuple(dict.fromkeys(s.contender for s in summaries))
    levels = tuple(dict.fromkeys(s.level for s in summaries))
    return duel_summary([DuelStarted(names, "/models/tiny.gguf", levels, {"requests": 8}),
                         DuelFinished(summaries, ())])


def test_a_clear_lead_wins_with_its_margin_and_latencies_beside_it():
    verdicts = serving_verdicts(duel(summary("rocm", 1, 100), summary("vulkan", 1, 60, seed=2),
                                     summary("rocm", 4, 300, seed=3), summary("vulkan", 4, 200, seed=4)))
    assert [v.workload for v in verdicts] == ["serving c=1", "serving c=4"]
    for v in verdicts:
        assert v.status == "winner" and v.winner == "rocm" and v.runner_up == "vulkan"
        assert v.confidence in ("decisive", "high", "moderate")
        assert v.recommended == "rocm"
        assert "TTFT p50 20.0 ms" in v.sentence and "ITL p50 4.0 ms" in v.sentence
    assert verdicts[0].ratio == pytest.approx(100 / 60, rel=0.05)
    assert verdicts[0].headline.startswith("rocm +6")


def test_one_build_under_two_names_is_no_winner():
    # The same rate and spread on both sides, several seeds: a tie or no clear winner, never a winner.
    for seed in range(20):
        verdicts = serving_verdicts(duel(summary("a", 1, 100, spread=0.1, seed=seed),
                                         summary("b", 1, 100, spread=0.1, seed=seed + 100),
                                         summary("a", 2, 180, spread=0.1, seed=seed + 200),
                                         summary("b", 2, 180, spread=0.1, seed=seed + 300)))
        assert all(v.status in ("tie", "no clear winner") for v in verdicts), verdicts
        assert all(v.recommended is None for v in verdicts)


def test_with_two_turns_one_slow_turn_is_a_machine_hiccup_not_a_winner():
    # A's first turn at half speed (another process woke up), every other turn alike.
    for seed in range(10):
        verdicts = serving_verdicts(duel(turned("a", 1, (50, 100), seed=seed),
                                         turned("b", 1, (100, 100), seed=seed + 100),
                                         turned("a", 2, (180, 90), seed=seed + 200),
                                         turned("b", 2, (180, 180), seed=seed + 300)))
        assert all(v.status in ("tie", "no clear winner") for v in verdicts), [v.sentence for v in verdicts]
        assert all(v.recommended is None for v in verdicts)


def test_with_two_turns_one_build_under_two_names_is_no_winner_and_a_real_lead_wins():
    for seed in range(20):
        verdicts = serving_verdicts(duel(turned("a", 1, (100, 100), spread=0.1, seed=seed),
                                         turned("b", 1, (100, 100), spread=0.1, seed=seed + 100),
                                         turned("a", 2, (180, 170), spread=0.1, seed=seed + 200),
                                         turned("b", 2, (170, 180), spread=0.1, seed=seed + 300)))
        assert all(v.status in ("tie", "no clear winner") for v in verdicts), [v.sentence for v in verdicts]
    # A 20 % lead in both turns, no drift allowance needed: a winner.
    (v,) = serving_verdicts(duel(turned("a", 1, (120, 118)), turned("b", 1, (100, 99), seed=2)))
    assert v.status == "winner" and v.winner == "a" and v.confidence in ("decisive", "high"), v.sentence
    assert v.ratio == pytest.approx(1.2, rel=0.05)
    # The same lead reversed in the second turn is no winner.
    (flip,) = serving_verdicts(duel(turned("a", 1, (120, 100)), turned("b", 1, (100, 120), seed=2)))
    assert flip.status in ("tie", "no clear winner"), flip.sentence


def test_a_lead_inside_the_noise_is_no_clear_winner():
    verdicts = serving_verdicts(duel(summary("a", 1, 108, spread=0.25, n=4),
                                     summary("b", 1, 100, spread=0.25, n=4, seed=9)))
    (v,) = verdicts
    assert v.status in ("no clear winner", "tie"), v
    assert "no clear winner" in v.sentence


def test_single_requests_are_a_point_estimate_and_failures_are_said():
    (one,) = serving_verdicts(duel(summary("a", 1, 100, n=1), summary("b", 1, 50, n=1)))
    assert (one.status, one.confidence) == ("lead", "one run")
    (alone,) = serving_verdicts(duel(summary("a", 2, 100, errors=2), failed("b", 2)))
    assert alone.status == "one contender" and alone.recommended == "a"
    assert any("b at pp96+tg12: failed (died under load)" in f for f in alone.failures)
    assert any("a at pp96+tg12: 2 of 10 requests failed (HTTP 503)" in f for f in alone.failures)


def test_several_shapes_at_one_level_are_one_class():
    verdicts = serving_verdicts(duel(summary("a", 2, 100), summary("b", 2, 50, seed=2),
                                     summary("a", 2, 80, seed=3, n_prompt=512),
                                     summary("b", 2, 40, seed=4, n_prompt=512)))
    (v,) = verdicts
    assert v.shapes == ("pp96+tg12", "pp512+tg12") and v.winner == "a"
    assert v.ratio == pytest.approx(2.0, rel=0.05)


def test_profile_keeps_the_duel_and_verdicts_through_toml(tmp_path, capsys):
    summaries = (summary("rocm", 1, 100), summary("vulkan", 1, 60, seed=2))
    events = [DuelStarted(("rocm", "vulkan"), "/models/tiny.gguf", (Level(1, 96, N_GEN),), {}),
              DuelFinished(summaries, ())]
    profile = profile_from_serve_duel(events, name="serve duel")
    assert profile.serving["kind"] == "server-duel" and profile.serving_verdicts
    assert [b.name for b in profile.builds] == ["rocm", "vulkan"]
    again = profile_from_toml(profile_to_toml(profile))
    assert again == profile
    assert again.serving["contenders"]["rocm"]["levels"][0]["e2e_samples"] == list(
        summaries[0].e2e_samples)
    # The saved samples give the same verdict again.
    assert serving_verdicts(again.serving) == again.serving_verdicts

    store = tmp_path / "profiles"
    ProfileStore(store).save(profile)
    assert main(["profiles", "--store", str(store), "show", "serve duel"]) == 0
    shown = capsys.readouterr().out
    assert "serving c=1: rocm delivers +6" in shown and "TTFT p50" in shown
    assert main(["profiles", "--store", str(store), "export", "serve duel", "--format", "md"]) == 0
    markdown = capsys.readouterr().out
    assert "| serving c=1 " in markdown and "rocm +6" in markdown


@pytest.mark.toolchain
def test_real_a_a_duel_has_no_winner_and_the_saved_profile_shows_it(cpu_bin, tiny_llama, tmp_path,
                                                                     capsys):
    # One thread per server: with tests in parallel on two cores, ggml's spinning threads
    # can slow one whole turn a hundredfold, which no test on one turn tells from a slow build.
    spec = DuelSpec(concurrency=(1, 2), prompts=(64,), n_gen=16, requests=8, gap=False,
                    settings=ServerSettings(threads=1), turns=2)
    journal = tmp_path / "run" / "journal.jsonl"
    events = run_duel([cpu(cpu_bin, "cpu"), cpu(cpu_bin, "cpu-again")], tiny_llama, spec, journal)
    recorded = read_journal(journal)
    # Both turns of each level, A B then B A, each on a server of its own.
    starts = [(e.contender, e.level[:2], e.turn) for e in recorded if isinstance(e, ServerStarting)]
    assert starts == [("cpu", "c1", 1), ("cpu-again", "c1", 1), ("cpu-again", "c1", 2), ("cpu", "c1", 2),
                      ("cpu", "c2", 1), ("cpu-again", "c2", 1), ("cpu-again", "c2", 2), ("cpu", "c2", 2)]
    for s in (e.summary for e in recorded if isinstance(e, LevelFinished)):
        assert [(t.turn, t.requests) for t in s.turns] == [(1, 4), (2, 4)] and not s.errors
        assert s.e2e_turns == (1,) * 4 + (2,) * 4
    # Every request says its turn: A's and B's requests of a level alternate A B B A.
    runs = [(e.contender, e.level[:2], e.turn) for e in recorded if isinstance(e, RequestFinished)]
    assert list(dict.fromkeys(runs)) == starts
    verdicts = serving_verdicts(duel_summary(recorded))
    assert [v.workload for v in verdicts] == ["serving c=1", "serving c=2"]
    for v in verdicts:
        assert v.status in ("tie", "no clear winner"), v.sentence
        assert {f.contender for f in v.figures} == {"cpu", "cpu-again"}
        assert all(f.total_tps and f.ttft_p50_s and f.itl_p50_s for f in v.figures)
    # What the journal gives is what the events gave.
    assert verdicts == serving_verdicts(duel_summary(events))

    store = tmp_path / "profiles"
    argv = ["serve-bench", "--build", f"cpu={cpu_bin}", "--build", f"cpu-again={cpu_bin}",
            "--model", str(tiny_llama), "--concurrency", "1", "-p", "64", "-n", "16",
            "--requests", "6", "--turns", "2", "--no-gap", "-t", "1", "--journal", str(tmp_path / "cli" / "journal.jsonl"),
            "--save", "aa", "--store", str(store)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "serving c=1: no clear winner" in out
    saved = ProfileStore(store).load("aa")
    assert saved.serving_verdicts[0].status in ("tie", "no clear winner")
    assert len(saved.serving["contenders"]["cpu"]["levels"][0]["e2e_samples"]) == 6


@pytest.mark.toolchain
def test_real_cpu_against_vulkan_on_lavapipe_the_cpu_build_wins(cpu_bin, vulkan_bin, tiny_llama,
                                                                 tmp_path):
    # One thread each: ggml's spinning CPU threads share two cores with parallel tests badly.
    spec = DuelSpec(concurrency=(1,), prompts=(64,), n_gen=12, requests=6, gap=False,
                    settings=ServerSettings(threads=1))
    events = run_duel([cpu(cpu_bin), vulkan(vulkan_bin)], tiny_llama, spec,
                      tmp_path / "run" / "journal.jsonl")
    (v,) = serving_verdicts(duel_summary(events))
    assert v.status == "winner" and v.winner == "cpu", v.sentence
    assert v.confidence in ("decisive", "high", "moderate")
    assert v.ratio is not None and v.ratio > 1.5

"""Where the server disagrees with llama-bench: one sentence, on constructed duels whose
rates are known (the real duels' sentence is checked in the server-cliffs test)."""

from __future__ import annotations

import random

from backends.journal.serve import BenchGap, DuelFinished, DuelStarted, Level, LevelSummary
from backends.server import duel_summary
from backends.server.metrics import dist
from profiles.disagreement import disagreement
from profiles.model import profile_from_serve_duel
from profiles.serving import serving_verdicts
from profiles.store import profile_from_toml, profile_to_toml

N_GEN = 64
SMALL = (4096, "f16")
CLIFF = (32768, "q4_0")


def level(name: str, setting: tuple[int, str], rate: float, n: int = 8) -> LevelSummary:
    """One stream at ``rate`` tok/s (give or take 3 %) with the server at ``setting``."""
    rnd = random.Random(f"{name} {setting}")
    e2e = tuple(N_GEN / (rate * rnd.lognormvariate(0, 0.03)) for _ in range(n))
    wall = sum(e2e)
    return LevelSummary(name, Level(1, 128, N_GEN, 0, setting[0], 1, setting[1]), n, 0,
                        dist([0.02] * n), dist([1 / rate] * n), dist(e2e), dist([rate] * n),
                        dist([900.0] * n), N_GEN * n / wall, N_GEN * n, wall,
                        gen_tps_samples=(rate,) * n, e2e_samples=e2e, server_gen_tps=rate)


def gap(name: str, cache: str, bench_tg: float) -> BenchGap:
    return BenchGap(name, "pp128+tg64", 128, N_GEN, 0, 900.0, bench_tg, None, None, None, None,
                    cache_type=cache)


def events(rates: dict[str, tuple[float, float]], bench: dict[str, float]) -> list[object]:
    """``rates``: each build's serving decode at the small setting and at the cliff."""
    summaries = tuple(level(n, s, r) for n, pair in rates.items() for s, r in zip((SMALL, CLIFF), pair))
    gaps = tuple(gap(n, cache, bench[n]) for n in rates for cache in ("f16", "q4_0"))
    started = DuelStarted(tuple(rates), "model.gguf", tuple(s.level for s in summaries), {})
    return [started, DuelFinished(summaries, (), gaps)]


def sentence(rates: dict[str, tuple[float, float]], bench: dict[str, float]) -> str:
    duel = duel_summary(events(rates, bench))  # type: ignore[arg-type]
    return disagreement(duel, serving_verdicts(duel))


def test_a_serving_verdict_that_overturns_llama_bench_is_one_sentence():
    text = sentence({"vulkan": (70.0, 9.0), "rocm": (55.0, 55.0)}, {"vulkan": 80.0, "rocm": 60.0})
    head, tail = text.split(" faster: ")
    assert head.startswith("vulkan wins llama-bench generation by 33%, but serving with a 32K "
                           "context, q4_0 cache, 1 slot rocm is x6.")  # 55 against 9 t/s, 3 % noise
    assert tail == "vulkan's decode collapses there (9 t/s against 80 in llama-bench)."


def test_builds_that_agree_say_nothing():
    assert sentence({"vulkan": (70.0, 66.0), "rocm": (55.0, 52.0)}, {"vulkan": 80.0, "rocm": 60.0}) == ""


def test_a_cliff_without_a_change_of_winner_is_said():
    text = sentence({"vulkan": (70.0, 30.0), "rocm": (20.0, 20.0)}, {"vulkan": 80.0, "rocm": 25.0})
    assert text == ("vulkan's serving decode collapses with a 32K context, q4_0 cache, 1 slot: "
                    "30 t/s against 80 in llama-bench (x0.38) at pp128+tg64.")


def test_a_server_under_half_of_llama_bench_everywhere_is_overhead_not_a_cliff():
    text = sentence({"cpu": (900.0, 850.0), "vulkan": (70.0, 66.0)}, {"cpu": 4800.0, "vulkan": 80.0})
    assert text.startswith("cpu's serving decode is under half its llama-bench figure at every setting")
    assert "the server's own overhead" in text


def test_the_profile_keeps_the_sentence():
    duel = events({"vulkan": (70.0, 9.0), "rocm": (55.0, 55.0)}, {"vulkan": 80.0, "rocm": 60.0})
    profile = profile_from_serve_duel(duel, name="cliffs")
    assert profile.serving_disagreement.startswith("vulkan wins llama-bench generation by 33%")
    again = profile_from_toml(profile_to_toml(profile))
    assert again.serving_disagreement == profile.serving_disagreement
    workloads = [v.workload for v in again.serving_verdicts]
    assert workloads == ["serving c=1 · 4K context, f16 cache, 1 slot",
                         "serving c=1 · 32K context, q4_0 cache, 1 slot"]
    assert [v.winner for v in again.serving_verdicts] == ["vulkan", "rocm"]

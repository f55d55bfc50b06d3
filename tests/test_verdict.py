"""Verdict maths on constructed data whose right answer is known by construction."""

from __future__ import annotations

import math
import random

import pytest

from backends.events import BenchResult, PointFailed, TestPoint
from profiles import stats
from profiles.verdict import VerdictSettings, is_moe_model_type, recommend

DENSE = {"model_filename": "/m/dense-8b-Q8_0.gguf", "model_type": "llama 8B Q8_0", "n_gpu_layers": 99}
MOE = {"model_filename": "/m/moe-30b.gguf", "model_type": "qwen3moe 30B.A3B Q4_0", "n_gpu_layers": 99}


def result(n_prompt: int, n_gen: int, depth: int, mean: float, *, spread: float = 0.005, reps: int = 5,
           seed: int = 0, model: dict | None = None, **raw) -> BenchResult:
    """A result whose samples spread evenly over ``mean`` ± ``spread`` (shuffled by ``seed``)."""
    steps = [(2 * i / (reps - 1) - 1) if reps > 1 else 0.0 for i in range(reps)]
    random.Random(f"{seed}:{n_prompt}:{n_gen}:{depth}").shuffle(steps)
    samples = tuple(mean * (1 + spread * step) for step in steps)
    avg = math.fsum(samples) / len(samples)
    sd = math.sqrt(math.fsum((s - avg) ** 2 for s in samples) / (len(samples) - 1)) if reps > 1 else 0.0
    record = {**(model or DENSE), **raw, "n_prompt": n_prompt, "n_gen": n_gen, "n_depth": depth,
              "avg_ts": avg, "stddev_ts": sd, "samples_ts": list(samples)}
    return BenchResult.from_llama_bench(record)


DEPTHS = (0, 4096, 8192, 16384, 32768)


def sweep(pp_speed, tg_speed, *, model=None, seed=0, spread=0.005, reps=5, **raw):
    """pp512 and tg128 at the seed depths; speeds are functions of depth."""
    out = []
    for d in DEPTHS:
        out.append(result(512, 0, d, pp_speed(d), model=model, seed=seed, spread=spread, reps=reps, **raw))
        out.append(result(0, 128, d, tg_speed(d), model=model, seed=seed + 1, spread=spread, reps=reps, **raw))
    return out


def test_student_t_matches_known_quantiles():
    # Two-sided 5% critical values of Student's t: df=10 -> 2.228, df=2 -> 4.303, df=30 -> 2.042.
    assert stats.student_t_two_sided_p(2.228, 10) == pytest.approx(0.05, abs=5e-4)
    assert stats.student_t_two_sided_p(4.303, 2) == pytest.approx(0.05, abs=5e-4)
    assert stats.student_t_two_sided_p(2.042, 30) == pytest.approx(0.05, abs=5e-4)
    assert stats.student_t_two_sided_p(0.0, 5) == pytest.approx(1.0)


def test_welch_on_textbook_samples():
    a = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    b = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    test = stats.welch_from_samples(a, b)
    # Welch's own worked example: t = 2.46, df = 24.99, p = 0.021 (sign: b is larger).
    assert test.t == pytest.approx(2.46, abs=0.01)
    assert test.df == pytest.approx(24.99, abs=0.05)
    assert test.p_value == pytest.approx(0.021, abs=0.001)
    assert stats.welch_from_samples([1.0], [2.0, 3.0]) is None


def test_clear_win_everywhere():
    vulkan = sweep(lambda d: 1000 - d / 64, lambda d: 50 - d / 4096)
    rocm = sweep(lambda d: 1300 - d / 64, lambda d: 60 - d / 4096, seed=7)
    rec = recommend({"Vulkan": vulkan, "ROCm": rocm})
    assert {(v.workload, v.phase) for v in rec.verdicts} == {
        ("short_dense", "pp"), ("short_dense", "tg"), ("long_dense", "pp"), ("long_dense", "tg")}
    for v in rec.verdicts:
        assert v.status == "winner" and v.winner == "ROCm" and v.recommended == "ROCm"
        assert v.margin_pct > 15 and v.p_value < 0.01 and v.confidence == "high"
        assert not v.crossovers
    assert rec.choose == ("Choose ROCm if you run: dense, short context (pp); dense, short context (tg); "
                          "dense, long context (pp); dense, long context (tg).",)


def test_tie_inside_the_noise():
    # 1.5% apart with 3% jitter per repetition: not significant, under the tie threshold.
    a = sweep(lambda d: 1000.0, lambda d: 50.0, spread=0.03, seed=1)
    b = sweep(lambda d: 1015.0, lambda d: 50.7, spread=0.03, seed=2)
    rec = recommend({"A": a, "B": b})
    for v in rec.verdicts:
        assert v.status == "tie", v.summary
        assert set(v.tied) == {"A", "B"} and v.winner is None
    assert not rec.choose  # nothing to choose between


def test_negligible_gap_is_a_tie_even_when_significant():
    a = sweep(lambda d: 1000.0, lambda d: 50.0, spread=0.0005, seed=1)
    b = sweep(lambda d: 1004.0, lambda d: 50.2, spread=0.0005, seed=2)
    rec = recommend({"A": a, "B": b})
    assert all(v.status == "tie" for v in rec.verdicts)
    assert all(v.p_value < 0.05 for v in rec.verdicts)


def test_single_crossover_is_interpolated_on_the_ratio():
    # Vulkan leads pp at short depth, ROCm at long depth: ratios 1.2, 1.1, 1.05 | 0.95, 0.8.
    ratio = {0: 1.2, 4096: 1.1, 8192: 1.05, 16384: 0.95, 32768: 0.8}
    rocm = sweep(lambda d: 1000.0, lambda d: 50.0)
    vulkan = sweep(lambda d: 1000.0 * ratio[d], lambda d: 40.0, seed=3)
    rec = recommend({"ROCm": rocm, "Vulkan": vulkan})
    pp_cross = [x for x in rec.crossovers if x.phase == "pp"]
    assert len(pp_cross) == 1
    x = pp_cross[0]
    assert (x.leader_before, x.leader_after, x.axis) == ("Vulkan", "ROCm", "depth")
    assert (x.low, x.high) == (8192, 16384)
    assert x.at == pytest.approx(8192 + 8192 * 0.05 / 0.10, rel=0.02)  # halfway: ratio 1.05 -> 0.95
    assert x.significant
    short = rec.verdict("short_dense", "pp")
    long = rec.verdict("long_dense", "pp")
    assert short.winner == "Vulkan" and long.winner == "ROCm"
    assert "12,2" in short.summary or "12,3" in short.summary  # the crossover depth is reported
    assert rec.verdict("short_dense", "tg").winner == "ROCm"


def test_double_crossover_reports_both_changes():
    depths = (0, 8192, 16384, 24576, 32768, 40960)
    ratio = {0: 1.08, 8192: 1.04, 16384: 0.96, 24576: 0.93, 32768: 1.06, 40960: 1.10}
    a = [result(2048, 0, d, 1000.0, model=MOE, seed=1) for d in depths]
    b = [result(2048, 0, d, 1000.0 * ratio[d], model=MOE, seed=2) for d in depths]
    rec = recommend({"ROCm": a, "Vulkan-perf": b})
    v = rec.verdict("moe", "pp")
    assert len(v.crossovers) == 2
    first, second = sorted(v.crossovers, key=lambda x: x.at)
    assert (first.low, first.high, first.leader_after) == (8192, 16384, "ROCm")
    assert (second.low, second.high, second.leader_after) == (24576, 32768, "Vulkan-perf")
    assert first.leader_before == "Vulkan-perf"
    # The lead changes with significant wins on both sides: the verdict says so.
    assert v.status == "winner" and v.winner == "Vulkan-perf"
    assert any("significantly ahead" in c for c in v.caveats)


def test_single_samples_cannot_tell():
    a = sweep(lambda d: 1000.0, lambda d: 50.0, reps=1)
    b = sweep(lambda d: 1300.0, lambda d: 65.0, reps=1, seed=4)  # 30% is still one number each
    rec = recommend({"A": a, "B": b})
    for v in rec.verdicts:
        assert v.status == "no clear winner" and v.recommended is None
        assert "no repetition spread" in v.summary


def test_a_faster_build_that_crashed_is_not_recommended_without_caveat():
    fast = sweep(lambda d: 1200.0, lambda d: 60.0)
    steady = sweep(lambda d: 1000.0, lambda d: 50.0, seed=9)
    crash = PointFailed(build="nightly", point=TestPoint(512, 0, 32768), reason="crashed", exit_code=-11,
                        signal="SIGSEGV")
    rec = recommend({"nightly": fast, "stable": steady}, {"nightly": [crash]})
    stability = {s.build: s for s in rec.stability}
    assert not stability["nightly"].stable and stability["nightly"].crashes == 1
    assert stability["stable"].stable
    for v in rec.verdicts:
        assert v.winner == "nightly"
        assert v.recommended == "stable"
        assert any("nightly is faster" in c and "unstable" in c for c in v.caveats)


def test_suspect_correctness_counts_as_unstable():
    fast = sweep(lambda d: 1200.0, lambda d: 60.0)
    steady = sweep(lambda d: 1000.0, lambda d: 50.0, seed=9)
    correctness = {"nightly": {"status": "suspect", "mean_kld": 0.4, "reason": "top-1 agreement 71%"},
                   "stable": {"status": "reference"}}
    rec = recommend({"nightly": fast, "stable": steady}, correctness=correctness)
    assert all(v.recommended == "stable" for v in rec.verdicts)
    note = next(s.note for s in rec.stability if s.build == "nightly")
    assert "suspect" in note and "0.4" in note


def test_three_builds_pairwise_against_the_best():
    a = sweep(lambda d: 1000.0, lambda d: 50.0, seed=1)
    b = sweep(lambda d: 1100.0, lambda d: 45.0, seed=2)
    c = sweep(lambda d: 1300.0, lambda d: 40.0, seed=3)
    rec = recommend({"cpu": a, "vulkan": b, "rocm": c})
    pp = rec.verdict("short_dense", "pp")
    assert pp.winner == "rocm"
    assert {cmp.other for cmp in pp.comparisons} == {"cpu", "vulkan"}
    closest = min(pp.comparisons, key=lambda c: c.margin_pct)
    assert closest.other == "vulkan" and pp.margin_pct == pytest.approx(closest.margin_pct)
    assert pp.margin_pct == pytest.approx(1300 / 1100 * 100 - 100, rel=0.02)
    tg = rec.verdict("short_dense", "tg")
    assert tg.winner == "cpu" and tg.margin_pct == pytest.approx(50 / 45 * 100 - 100, rel=0.02)


def test_moe_split_and_pg_classes():
    moe = [result(512, 0, 0, 900.0, model=MOE), result(0, 128, 0, 80.0, model=MOE)]
    moe_b = [result(512, 0, 0, 700.0, model=MOE, seed=5), result(0, 128, 0, 90.0, model=MOE, seed=5)]
    split = [result(512, 0, 0, 300.0, model=MOE, n_cpu_moe=28), result(0, 128, 0, 20.0, model=MOE, n_cpu_moe=28)]
    split_b = [result(512, 0, 0, 200.0, model=MOE, n_cpu_moe=28, seed=2),
               result(0, 128, 0, 25.0, model=MOE, n_cpu_moe=28, seed=2)]
    cpu_only = [result(512, 0, 0, 50.0, n_gpu_layers=0)]
    cpu_only_b = [result(512, 0, 0, 40.0, n_gpu_layers=0, seed=4)]
    pg = [result(512, 128, 0, 400.0)]
    pg_b = [result(512, 128, 0, 300.0, seed=6)]
    rec = recommend({"ROCm": moe + split + cpu_only + pg, "Vulkan": moe_b + split_b + cpu_only_b + pg_b})
    assert rec.verdict("moe", "pp").winner == "ROCm"
    assert rec.verdict("moe", "tg").winner == "Vulkan"
    split_pp = rec.verdict("split", "pp")
    assert split_pp.winner == "ROCm" and len(split_pp.comparisons[0].cells) == 2  # -ncmoe 28 and -ngl 0
    assert rec.verdict("split", "tg").winner == "Vulkan"
    assert rec.verdict("short_dense", "pg").winner == "ROCm"  # pg is its own phase
    assert rec.verdict("short_dense", "pp") is None  # the -ngl 0 pp row is split, not dense
    assert "own phase" in rec.pg_policy


def test_partial_offload_uses_the_model_layer_count():
    class Info:
        is_moe = False
        layers = 32

    a = [result(512, 0, 0, 100.0, n_gpu_layers=20)]
    b = [result(512, 0, 0, 120.0, n_gpu_layers=20, seed=3)]
    assert recommend({"A": a, "B": b}, model_info=Info()).verdicts[0].workload == "split"
    full = [result(512, 0, 0, 100.0, n_gpu_layers=32)]
    full_b = [result(512, 0, 0, 120.0, n_gpu_layers=32, seed=3)]
    assert recommend({"A": full, "B": full_b}, model_info=Info()).verdicts[0].workload == "short_dense"


def test_threshold_is_a_parameter():
    a = sweep(lambda d: 1000.0, lambda d: 50.0)
    b = sweep(lambda d: 1200.0, lambda d: 40.0, seed=8)
    default = recommend({"A": a, "B": b})
    low = recommend({"A": a, "B": b}, settings=VerdictSettings(long_context_tokens=4000))
    cells = lambda rec, w: sum(len(v.comparisons[0].cells) for v in rec.verdicts if v.workload == w)  # noqa: E731
    assert cells(default, "long_dense") == 4 and cells(low, "long_dense") == 8


def test_failed_rows_are_not_results():
    nan_row = BenchResult.from_llama_bench({**DENSE, "n_prompt": 512, "n_gen": 0, "avg_ts": None})
    a = [nan_row, result(0, 128, 0, 50.0)]
    b = [result(512, 0, 0, 900.0), result(0, 128, 0, 60.0, seed=2)]
    rec = recommend({"A": a, "B": b})
    pp = rec.verdict("short_dense", "pp")
    assert pp.status == "single build" and pp.winner == "B"


def test_moe_detection_from_model_type():
    assert is_moe_model_type("qwen3moe 30B.A3B Q4_K - Medium")
    assert is_moe_model_type("qwen35moe 35B.A3B Q8_0")
    assert is_moe_model_type("gpt-oss 20B MXFP4 MoE")
    assert is_moe_model_type("llama 8x7B Q4_0")
    assert not is_moe_model_type("llama 8B Q5_K - Medium")
    assert not is_moe_model_type("qwen35 27B Q8_0")

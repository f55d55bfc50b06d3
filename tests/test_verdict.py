"""Verdict maths on constructed data whose right answer is known by construction."""

from __future__ import annotations

import math
import random

import pytest

from backends import stats
from backends.journal.sweep import (
    BenchResult,
    PointFailed,
    ResultReceived,
    SweepStarted,
    TestPoint,
)
from profiles.contenders import is_moe_model_type
from profiles.model import profile_from_journal
from profiles.records import (
    FailureRecord,
    ProfileResult,
    RunRecords,
    records_from_events,
)
from profiles.verdict import VerdictSettings, recommend, recommend_run
from profiles.wording import margin_text, tokens_text

DENSE = {"model_filename": "/m/dense-8b-Q8_0.gguf", "model_type": "llama 8B Q8_0", "n_gpu_layers": 99}
MOE = {"model_filename": "/m/moe-30b.gguf", "model_type": "qwen3moe 30B.A3B Q4_0", "n_gpu_layers": 99}


def bench(n_prompt: int, n_gen: int, depth: int, samples, *, model: dict | None = None, **raw) -> BenchResult:
    samples = [float(s) for s in samples]
    avg = math.fsum(samples) / len(samples)
    sd = math.sqrt(math.fsum((s - avg) ** 2 for s in samples) / (len(samples) - 1)) if len(samples) > 1 else 0.0
    record = {**(model or DENSE), **raw, "n_prompt": n_prompt, "n_gen": n_gen, "n_depth": depth,
              "avg_ts": avg, "stddev_ts": sd, "samples_ts": samples}
    return BenchResult.from_llama_bench(record)


def around(mean: float, spread: float, reps: int, seed: str) -> list[float]:
    """``reps`` samples spread evenly over mean ± spread, in a seeded order."""
    steps = [(2 * i / (reps - 1) - 1) if reps > 1 else 0.0 for i in range(reps)]
    random.Random(seed).shuffle(steps)
    return [mean * (1 + spread * s) for s in steps]


DEPTHS = (0, 4096, 8192, 16384, 32768)


def sweep(pp, tg, *, spread=0.005, reps=5, seed="s", model=None, depths=DEPTHS, **raw):
    out = []
    for d in depths:
        out.append(bench(512, 0, d, around(pp(d), spread, reps, f"{seed}pp{d}"), model=model, **raw))
        out.append(bench(0, 128, d, around(tg(d), spread, reps, f"{seed}tg{d}"), model=model, **raw))
    return out


def test_the_demo_starved_repetition_does_not_erase_a_fifty_fold_gap():
    # The demo: CPU 40-250x faster than Vulkan on 11 of 12 generation repetitions, one
    # starved repetition at 6 t/s beside 784 and 481; Vulkan at 14-19 t/s.
    cpu = [bench(0, 16, 0, [3600, 4700, 3900]), bench(0, 16, 256, [2500, 2900, 2700]),
           bench(0, 16, 512, [1500, 1800, 1700]), bench(0, 16, 1024, [784, 481, 6])]
    vulkan = [bench(0, 16, 0, [18, 19, 17]), bench(0, 16, 256, [17, 16, 18]),
              bench(0, 16, 512, [15, 16, 17]), bench(0, 16, 1024, [14, 15, 19])]
    v = recommend({"cpu": cpu, "vulkan": vulkan}).verdict("short_dense", "tg")
    assert (v.status, v.winner, v.confidence) == ("winner", "cpu", "decisive")
    assert "p=" not in v.summary and "%" not in v.summary.split(":", 1)[1].split("(")[0]
    assert "cpu is x" in v.summary and "on 11 of 12 repetitions" in v.summary
    (outlier,) = v.outliers
    assert (outlier.contender, outlier.test, outlier.value) == ("cpu", "tg16 @ d1024", 6.0)
    assert "starved repetition set aside: cpu 6.0 t/s at tg16 @ d1024 beside 784 and 481" in v.summary


def test_a_decisive_gap_with_three_widely_spread_repetitions_is_a_confident_winner():
    slow = [bench(512, 0, 0, [100, 140, 180]), bench(0, 128, 0, [10, 14, 18])]
    fast = [bench(512, 0, 0, [400, 600, 800]), bench(0, 128, 0, [40, 60, 80])]
    rec = recommend({"A": slow, "B": fast})
    for phase in ("pp", "tg"):
        v = rec.verdict("short_dense", phase)
        assert (v.status, v.winner, v.confidence) == ("winner", "B", "decisive")
        assert "on every repetition" in v.summary and "x4.2" in v.summary
    assert rec.verdict("short_dense", "pp").comparisons[0].cells[0].separated


def test_one_repetition_is_a_point_estimate_with_no_p_value():
    a = sweep(lambda d: 1000.0, lambda d: 50.0, reps=1)
    b = sweep(lambda d: 1300.0, lambda d: 65.0, reps=1, seed="b")
    rec = recommend({"A": a, "B": b})
    for v in rec.verdicts:
        assert (v.status, v.winner, v.confidence) == ("lead", "B", "one run")
        assert all(c.p_value is None for c in v.comparisons[0].cells)
        assert "one run" in v.summary and "+30%" in v.summary
    assert all("(one run)" in line for line in rec.choose)


def test_a_small_gap_is_a_tie_however_significant():
    a = sweep(lambda d: 1000.0, lambda d: 50.0, spread=0.0005)
    b = sweep(lambda d: 1015.0, lambda d: 50.7, spread=0.0005, seed="b")
    rec = recommend({"A": a, "B": b})
    for v in rec.verdicts:
        assert v.status == "tie" and v.winner is None and set(v.tied) == {"A", "B"}, v.summary
        assert any(c.p_value < 1e-6 for c in v.comparisons[0].cells)  # significant, but 1.5% < the 3% band


def test_clear_win_everywhere_with_high_confidence():
    vulkan = sweep(lambda d: 1000 - d / 64, lambda d: 50 - d / 4096, spread=0.04)
    rocm = sweep(lambda d: 1300 - d / 64, lambda d: 60 - d / 4096, spread=0.04, seed="r")
    rec = recommend({"Vulkan": vulkan, "ROCm": rocm})
    assert {(v.workload, v.phase) for v in rec.verdicts} == {
        ("short_dense", "pp"), ("short_dense", "tg"), ("long_dense", "pp"), ("long_dense", "tg")}
    for v in rec.verdicts:
        assert (v.status, v.winner, v.recommended) == ("winner", "ROCm", "ROCm"), v.summary
        assert v.confidence in ("decisive", "high") and not v.crossovers
    assert rec.choose == (("Choose ROCm if you run: dense, short context (pp); dense, short context (tg); "
                           "dense, long context (pp); dense, long context (tg)."),)


def test_crossover_on_the_context_axis_between_two_significant_points():
    ratio = {0: 1.3, 4096: 1.2, 8192: 1.1, 16384: 0.85, 32768: 0.7}
    rocm = sweep(lambda d: 1000.0, lambda d: 50.0, spread=0.01)
    vulkan = sweep(lambda d: 1000.0 * ratio[d], lambda d: 40.0, spread=0.01, seed="v")
    rec = recommend({"ROCm": rocm, "Vulkan": vulkan})
    (cross,) = [x for x in rec.crossovers if x.phase == "pp"]
    assert (cross.leader_before, cross.leader_after) == ("Vulkan", "ROCm")
    assert (cross.low, cross.high) == (8192 + 512, 16384 + 512)  # context = depth + prompt tokens
    assert cross.axis == "context" and 8192 < cross.at_depth < 16384
    assert cross.sentence == ("Prompt processing on dense-8b-Q8_0.gguf: the lead passes from Vulkan to ROCm "
                              "between 8,704 and 16,896 tokens of context.")
    assert rec.verdict("short_dense", "pp").winner == "Vulkan"
    assert rec.verdict("long_dense", "pp").winner == "ROCm"
    assert cross.sentence in rec.summary and rec.summary.count(cross.sentence) == 1


def test_no_crossover_where_one_side_is_inside_the_noise():
    # Vulkan leads clearly at short context; at long context ROCm is ahead by 1%, inside the band.
    ratio = {0: 1.3, 4096: 1.25, 8192: 1.2, 16384: 0.99, 32768: 0.99}
    rocm = sweep(lambda d: 1000.0, lambda d: 50.0, spread=0.01)
    vulkan = sweep(lambda d: 1000.0 * ratio[d], lambda d: 50.0, spread=0.01, seed="v")
    rec = recommend({"ROCm": rocm, "Vulkan": vulkan})
    assert not [x for x in rec.crossovers if x.phase == "pp"]
    assert rec.verdict("long_dense", "pp").status == "tie"


def test_one_build_two_configurations_are_two_contenders_never_pooled():
    ub512 = sweep(lambda d: 1000.0, lambda d: 50.0, n_ubatch=512, backends="ROCm", build_number=6077)
    ub2048 = sweep(lambda d: 1400.0, lambda d: 50.0, n_ubatch=2048, backends="ROCm", build_number=6077, seed="u")
    vulkan = sweep(lambda d: 1100.0, lambda d: 60.0, n_ubatch=512, backends="Vulkan", seed="v")
    rec = recommend({"ROCm b6077": ub512 + ub2048, "Vulkan": vulkan})
    labels = {c.label for c in rec.contenders}
    assert labels == {"ROCm b6077 ub=512", "ROCm b6077 ub=2048", "Vulkan"}  # Vulkan's ub never differs
    pp = rec.verdict("short_dense", "pp")
    assert pp.winner == "ROCm b6077 ub=2048"
    # With more than two contenders the winner is compared with the best of every other backend.
    assert [c.other for c in pp.comparisons] == ["Vulkan"]
    assert pp.ratio == pytest.approx(1400 / 1100, rel=0.01)
    assert set(pp.typical_ts) == labels
    assert pp.best_settings["ROCm b6077 ub=2048"]["n_ubatch"] == 2048


def test_settings_a_file_does_not_state_stay_unknown():
    a = sweep(lambda d: 1000.0, lambda d: 50.0)  # DENSE states only n_gpu_layers
    b = sweep(lambda d: 1200.0, lambda d: 55.0, seed="b")
    rec = recommend({"A": a, "B": b})
    assert rec.verdict("short_dense", "pp").best_settings["B"] == {"n_gpu_layers": 99}


def test_a_contender_that_failed_where_another_ran():
    ran = [bench(512, 0, 32768, around(300, 0.01, 3, "x")), bench(0, 128, 32768, around(20, 0.01, 3, "y"))]
    failed = [FailureRecord(build="Vulkan", reason="exit 134, abort: vk::Queue::submit: ErrorDeviceLost",
                            depth=32768, model="dense-8b-Q8_0.gguf", exit_code=134)]
    rec = recommend({"ROCm": ran}, {"Vulkan": failed})
    v = rec.verdict("long_dense", "pp")
    assert v.status == "only one ran" and v.recommended == "ROCm"
    assert v.summary == ("dense, long context — prompt processing: ROCm ran and Vulkan failed, because "
                         "exit 134, abort: vk::Queue::submit: ErrorDeviceLost.")
    stability = {s.build: s for s in rec.stability}
    assert not stability["Vulkan"].stable and stability["Vulkan"].failures == 1
    assert stability["ROCm"].stable


def test_a_failure_disqualifies_only_where_another_contender_ran_the_test():
    fast = sweep(lambda d: 1300.0, lambda d: 60.0, spread=0.02)
    steady = sweep(lambda d: 1000.0, lambda d: 50.0, spread=0.02, seed="s")
    crash = PointFailed(build="nightly", point=TestPoint(512, 0, 32768), reason="crashed", exit_code=-11,
                        signal="SIGSEGV")
    steady_only = [r for r in steady]
    rec = recommend({"nightly": [r for r in fast if r.point != TestPoint(512, 0, 32768)],
                     "stable": steady_only}, {"nightly": [crash]})
    long_pp = rec.verdict("long_dense", "pp")
    assert long_pp.winner == "nightly" and long_pp.recommended == "stable"
    assert any("nightly is faster" in c and "failed here" in c for c in long_pp.caveats)
    short_pp = rec.verdict("short_dense", "pp")
    assert short_pp.recommended == "nightly"  # a crash at 32K says nothing about short prompts
    assert "nightly failed 1 test (pp512 @ d32768): crashed" in long_pp.summary


def test_suspect_output_disqualifies_everywhere():
    fast = sweep(lambda d: 1200.0, lambda d: 60.0, spread=0.02)
    steady = sweep(lambda d: 1000.0, lambda d: 50.0, spread=0.02, seed="s")
    correctness = {"nightly": {"status": "suspect", "mean_kld": 0.4, "reason": "top-1 agreement 71%"},
                   "stable": {"status": "reference"}}
    rec = recommend({"nightly": fast, "stable": steady}, correctness=correctness)
    assert all(v.recommended == "stable" for v in rec.verdicts)
    note = next(s.note for s in rec.stability if s.build == "nightly")
    assert "suspect" in note and "0.4" in note


def test_moe_and_split_are_judged_per_context_range():
    rocm = sweep(lambda d: 900.0, lambda d: 80.0 if d < 16384 else 40.0, model=MOE, spread=0.01)
    vulkan = sweep(lambda d: 700.0, lambda d: 90.0 if d < 16384 else 20.0, model=MOE, spread=0.01, seed="v")
    split = [bench(512, 0, 0, around(300, 0.01, 5, "a"), model=MOE, n_cpu_moe=28),
             bench(512, 0, 32768, around(100, 0.01, 5, "b"), model=MOE, n_cpu_moe=28)]
    split_v = [bench(512, 0, 0, around(200, 0.01, 5, "c"), model=MOE, n_cpu_moe=28),
               bench(512, 0, 32768, around(150, 0.01, 5, "d"), model=MOE, n_cpu_moe=28)]
    rec = recommend({"ROCm": rocm + split, "Vulkan": vulkan + split_v})
    assert rec.verdict("moe", "tg", "short").winner.startswith("Vulkan")
    assert rec.verdict("moe", "tg", "long").winner.startswith("ROCm")
    assert rec.verdict("moe", "pp", "short").winner.startswith("ROCm")
    assert rec.verdict("split", "pp", "short").winner.startswith("ROCm")
    assert rec.verdict("split", "pp", "long").winner.startswith("Vulkan")
    assert rec.verdict("split", "pp", "long").label == "split GPU/CPU, long context — prompt processing"


def test_margins_above_two_are_ratios():
    assert margin_text(1.123) == "+12%" and margin_text(1.041) == "+4.1%"
    assert margin_text(3.1) == "x3.1" and margin_text(150.2) == "x150"
    assert tokens_text(4096) == "4K" and tokens_text(34816) == "34,816" and tokens_text(512) == "512"


def test_a_simulated_aa_run_gives_no_winner_and_no_crossover():
    """One build under two names: noise only. Across 40 seeded runs the false-discovery
    control keeps false winners rare and false crossovers absent."""
    winners = crossovers = 0
    for seed in range(40):
        rng = random.Random(seed)

        def noisy(mean: float, rng: random.Random = rng) -> list[float]:
            return [mean * math.exp(rng.gauss(0, 0.08)) for _ in range(5)]

        results = {name: [bench(512, 0, d, noisy(1000 - d / 64)) for d in DEPTHS]
                   + [bench(0, 128, d, noisy(50 - d / 4096)) for d in DEPTHS] for name in ("a", "b")}
        rec = recommend(results)
        winners += sum(1 for v in rec.verdicts if v.status == "winner")
        crossovers += len(rec.crossovers)
    assert crossovers == 0
    assert winners <= 2  # 160 class verdicts


def test_energy_and_heat_from_each_results_telemetry():
    a = [ProfileResult("A", r, {"mean_power_w": 200.0, "peak_vram_bytes": 8 * 2**30, "throttled": False})
         for r in sweep(lambda d: 1000.0, lambda d: 50.0, depths=(0,))]
    b = [ProfileResult("B", r, None) for r in sweep(lambda d: 1500.0, lambda d: 60.0, depths=(0,), seed="b")]
    rec = recommend_run(RunRecords(results=tuple(a + b)))
    energy = {e.contender: e for e in rec.verdict("short_dense", "pp").energy}
    assert energy["A"].tokens_per_joule == pytest.approx(1000.0 / 200.0, rel=0.01)
    assert energy["A"].peak_vram_bytes == 8 * 2**30 and energy["A"].throttled is False
    assert (energy["B"].tokens_per_joule, energy["B"].peak_vram_bytes, energy["B"].throttled) == (None, None, None)


def test_the_journal_records_give_the_profiles_verdict():
    results = sweep(lambda d: 1300.0, lambda d: 40.0, spread=0.02) + sweep(
        lambda d: 1000.0, lambda d: 50.0, spread=0.02, seed="v")
    events = [SweepStarted(run_id="r", run_dir="/r", model="/m/dense-8b-Q8_0.gguf", builds=("ROCm", "Vulkan"),
                           points=())]
    events += [ResultReceived(build="ROCm" if i < len(results) // 2 else "Vulkan", result=r,
                              telemetry={"mean_power_w": 150.0}) for i, r in enumerate(results)]
    profile = profile_from_journal(events, name="x")
    assert recommend_run(records_from_events(events), VerdictSettings()) == profile.recommendation
    assert recommend_run(profile.records()) == profile.recommendation


def test_student_t_and_welch_match_published_values():
    assert stats.student_t_two_sided_p(2.228, 10) == pytest.approx(0.05, abs=5e-4)
    assert stats.student_t_two_sided_p(4.303, 2) == pytest.approx(0.05, abs=5e-4)
    a = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    b = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    test = stats.welch_from_samples(a, b)
    assert test.t == pytest.approx(2.46, abs=0.01) and test.p_value == pytest.approx(0.021, abs=0.001)


def test_benjamini_hochberg_and_starved_repetitions():
    # Benjamini & Hochberg (1995): q_i = min over j >= i of p_(j) m / j.
    assert stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.0533333, 0.0533333, 0.2])
    assert stats.starved([784, 481, 6]) == [2]
    assert stats.starved([100, 150, 200]) == []  # widely spread, none far below the others
    assert stats.starved([5.0, 100.0]) == []  # two values: no majority to tell which is odd


def test_moe_detection_from_model_type():
    assert is_moe_model_type("qwen3moe 30B.A3B Q4_K - Medium")
    assert is_moe_model_type("gpt-oss 20B MXFP4 MoE") and is_moe_model_type("llama 8x7B Q4_0")
    assert is_moe_model_type("minimax-m2 230B.A10B Q3_K - Small")
    assert not is_moe_model_type("llama 8B Q5_K - Medium") and not is_moe_model_type("qwen35 27B Q8_0")


def test_throttled_results_are_named_and_whether_they_change_the_winner():
    rocm = sweep(lambda d: 1000.0, lambda d: 50.0, reps=5, seed="r", depths=(0, 4096))
    vulkan = sweep(lambda d: 800.0, lambda d: 40.0, reps=5, seed="v", depths=(0, 4096))
    hot = {"throttled": True, "throttle_reasons": ["HBM temperature"]}
    results = [ProfileResult("rocm", r, hot if r.point.name == "pp512" else None) for r in rocm]
    results += [ProfileResult("vulkan", r) for r in vulkan]
    rec = recommend_run(RunRecords(results=tuple(results), builds=("rocm", "vulkan")))
    pp = rec.verdict("short_dense", "pp")
    tg = rec.verdict("short_dense", "tg")
    assert pp.recommended == "rocm"
    assert any("measured while the GPU throttled: rocm pp512; without them the winner is the same" in c
               for c in pp.caveats)
    assert not any("throttled" in c for c in tg.caveats)  # generation had none


def _busy_aa(starved: bool):
    # The shape of an A/A run under two test workers on two cores (tg8 on the tiny model):
    # cpu-b's repetitions as measured, each later point with one starved repetition beside
    # them; cpu-a about 7 % lower with a wider spread. Foreign load that stays with one
    # process makes such a gap: moderate evidence from a busy machine is not a winner.
    extra = (lambda value: [value]) if starved else (lambda value: [])
    b = [bench(0, 8, 0, [23100, 22600, 23500, 22900, 23300]),
         bench(0, 8, 64, [15514, 14880, 15544, 15200, *extra(1688.9)]),
         bench(0, 8, 128, [9901, 9732, 9898, 9650, *extra(1573.0)]),
         bench(0, 8, 256, [5517, 5738, 5676, 5590, *extra(1431.8)])]
    a = [bench(0, 8, d, [round(m * (1 + 0.05 * z)) for z in (0.8, -0.9, 1.0, -0.7, 0.1)])
         for d, m in ((0, 22300), (64, 14000), (128, 9100), (256, 5250))]
    return recommend({"cpu-a": a, "cpu-b": b}).verdict("short_dense", "tg")


def test_moderate_evidence_with_starved_repetitions_is_no_winner():
    busy = _busy_aa(starved=True)
    assert (busy.status, busy.winner) == ("no clear winner", None)
    quiet = _busy_aa(starved=False)  # the same gap on a machine that starved nothing
    assert (quiet.status, quiet.winner, quiet.confidence) == ("winner", "cpu-b", "moderate")

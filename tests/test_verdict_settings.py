"""Best against best, like with like, and the numbers a class shows.

Constructed cases: our published collection has backends measured at different settings
(kyuz0: ROCm at ub=512, Vulkan at ub=256) and at the same flash-attention settings (lhl), both
tested in test_realdata.py, but no file where two backends each win at a different ubatch,
nor one where a backend measured deeper than the other without failing; the right answer
here is known by construction.
"""

from __future__ import annotations

import math

import pytest

from backends.journal.sweep import BenchResult
from profiles.verdict import recommend

MOE = {"model_filename": "/m/moe-30b.gguf", "model_type": "qwen3moe 30B.A3B Q4_0", "n_gpu_layers": 99}


def bench(n_prompt: int, depth: int, mean: float, **raw) -> BenchResult:
    samples = [mean * (1 + s) for s in (-0.004, -0.002, 0.0, 0.002, 0.004)]
    avg = math.fsum(samples) / len(samples)
    sd = math.sqrt(math.fsum((s - avg) ** 2 for s in samples) / (len(samples) - 1))
    return BenchResult.from_llama_bench({**MOE, **raw, "n_prompt": n_prompt, "n_gen": 0, "n_depth": depth,
                                         "avg_ts": avg, "stddev_ts": sd, "samples_ts": samples})


def test_each_backend_wins_at_its_own_ubatch_and_the_verdict_says_both():
    # ROCm gains from a large ubatch, Vulkan is fastest at the default 512.
    rocm = [bench(512, d, 1000.0 - d / 100, n_ubatch=512) for d in (0, 4096)]
    rocm += [bench(512, d, 1300.0 - d / 100, n_ubatch=2048) for d in (0, 4096)]
    vulkan = [bench(512, d, 1150.0 - d / 100, n_ubatch=512) for d in (0, 4096)]
    vulkan += [bench(512, d, 1100.0 - d / 100, n_ubatch=2048) for d in (0, 4096)]
    rec = recommend({"ROCm": rocm, "Vulkan": vulkan})
    v = rec.verdict("moe", "pp", "short")
    # Best against best: ROCm at ub=2048 against Vulkan at its best, ub=512.
    assert (v.winner, v.runner_up, v.status) == ("ROCm ub=2048", "Vulkan ub=512", "winner")
    best, *same = v.settings_comparisons
    assert (best.kind, best.settings, best.other_settings) == ("best", {"n_ubatch": "2048"}, {"n_ubatch": "512"})
    outcomes = {c.settings["n_ubatch"]: (c.leader_backend, c.status) for c in same}
    assert outcomes == {"512": ("Vulkan", "winner"), "2048": ("ROCm", "winner")}
    assert "each at its fastest measured settings: ROCm ub=2048, Vulkan ub=512 (the default)" in v.summary
    assert "at ub=512 (the default) Vulkan +15% (decisive)" in v.summary
    assert "at ub=2048 ROCm +19% (decisive)" in v.summary
    assert "they disagree: ROCm wins at its best and at ub=2048, Vulkan at ub=512 (the default)" in v.summary


def test_the_same_settings_on_both_sides_add_nothing():
    rocm = [bench(512, d, 1300.0, n_ubatch=512) for d in (0, 4096)]
    vulkan = [bench(512, d, 1000.0, n_ubatch=512) for d in (0, 4096)]
    v = recommend({"ROCm": rocm, "Vulkan": vulkan}).verdict("moe", "pp", "short")
    assert v.settings_comparisons == () and "like with like" not in v.summary


def test_points_one_side_measured_alone_stay_out_of_the_table_and_the_margin():
    # ROCm measured 64K and 96K as well; Vulkan stopped at 32K. Both fall with depth, ROCm
    # less. The class's cells and margin come from the three points both measured.
    depths = (16384, 24576, 32768)
    rocm = [bench(2048, d, 900.0 - d / 100) for d in (*depths, 65536, 98304)]
    vulkan = [bench(2048, d, 600.0 - d / 100) for d in depths]
    v = recommend({"ROCm": rocm, "Vulkan": vulkan}).verdict("moe", "pp", "long")
    assert v.winner == "ROCm" and v.unpaired == ("only ROCm measured pp2048 @ d65536, pp2048 @ d98304",)
    assert v.typical_ts["ROCm"] / v.typical_ts["Vulkan"] == pytest.approx(v.ratio)
    assert {c.test for c in v.comparisons[0].cells} == {f"pp2048 @ d{d}" for d in depths}
    assert "only ROCm measured pp2048 @ d65536, pp2048 @ d98304 (not in the margin)" in v.summary

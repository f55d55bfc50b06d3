"""Several models in one class, and crossovers that rest on single runs.

Constructed: the published set of five files with two MoE models is not in our collection
(real multi-model cases are in test_realdata.py: kyuz0's two Qwen3.6 quantisations agree,
a Strix Halo table of eight dense models does not), and no published file has a lead that
reverses with depth on single runs; the right answer is known by construction.
"""

from __future__ import annotations

import math

from backends.journal.sweep import BenchResult
from profiles.verdict import recommend

A = {"model_filename": "/m/qwen3-30b-a3b.gguf", "model_type": "qwen3moe 30B.A3B Q4_K", "n_gpu_layers": 99}
B = {"model_filename": "/m/gpt-oss-120b.gguf", "model_type": "gpt-oss 120B MXFP4 MoE", "n_gpu_layers": 99}
DEPTHS = (0, 4096, 8192, 16384, 32768)


def bench(model: dict, depth: int, mean: float, reps: int = 5) -> BenchResult:
    samples = [mean * (1 + s) for s in (-0.004, -0.002, 0.0, 0.002, 0.004)[:reps]] if reps > 1 else [mean]
    avg = math.fsum(samples) / len(samples)
    sd = math.sqrt(math.fsum((s - avg) ** 2 for s in samples) / (len(samples) - 1)) if reps > 1 else 0.0
    return BenchResult.from_llama_bench({**model, "n_prompt": 512, "n_gen": 0, "n_depth": depth,
                                         "avg_ts": avg, "stddev_ts": sd, "samples_ts": samples})


def test_two_models_going_opposite_ways_are_judged_apart():
    # On model A ROCm's prefill lead grows with depth (+7% to +78%); on model B Vulkan leads at
    # every depth. Pooled, this read "no clear winner ... (the lead changes)" with no crossover.
    grow = dict(zip(DEPTHS, (1.07, 1.2, 1.35, 1.55, 1.78)))
    rocm = [bench(A, d, 1000.0 * grow[d]) for d in DEPTHS] + [bench(B, d, 800.0) for d in DEPTHS]
    vulkan = [bench(A, d, 1000.0) for d in DEPTHS] + [bench(B, d, 920.0) for d in DEPTHS]
    rec = recommend({"ROCm": rocm, "Vulkan": vulkan})
    for context in ("short", "long"):
        v = rec.verdict("moe", "pp", context)
        assert (v.status, v.winner, v.recommended) == ("by model", None, None), v.summary
        assert "no clear winner" not in v.summary and "lead changes" not in v.summary
        assert "it depends on the model" in v.summary
        assert rec.verdict("moe", "pp", context, model="qwen3-30b-a3b.gguf").winner == "ROCm"
        assert rec.verdict("moe", "pp", context, model="gpt-oss-120b.gguf").winner == "Vulkan"
    assert rec.crossovers == ()
    choose = " ".join(rec.choose)
    assert "on qwen3-30b-a3b.gguf" in choose and "on gpt-oss-120b.gguf" in choose


def test_two_models_that_agree_say_so():
    rocm = [bench(A, d, 1300.0) for d in DEPTHS] + [bench(B, d, 1120.0) for d in DEPTHS]
    vulkan = [bench(A, d, 1000.0) for d in DEPTHS] + [bench(B, d, 1000.0) for d in DEPTHS]
    v = recommend({"ROCm": rocm, "Vulkan": vulkan}).verdict("moe", "pp", "short")
    assert (v.status, v.winner, v.recommended) == ("winner", "ROCm", "ROCm")
    assert v.summary == "MoE, short context — prompt processing: ROCm on both models (+12%, +30%; decisive)."


def test_a_crossover_on_single_runs_is_reported_and_marked_untested():
    rocm = [bench(A, d, 1000.0 * (1.3 if d < 8192 else 0.7), reps=1) for d in DEPTHS]
    vulkan = [bench(A, d, 1000.0, reps=1) for d in DEPTHS]
    rec = recommend({"ROCm": rocm, "Vulkan": vulkan})
    (cross,) = rec.crossovers
    assert (cross.leader_before, cross.leader_after, cross.tested, cross.significant) == ("ROCm", "Vulkan", False, False)
    assert cross.sentence.endswith("between 4,608 and 8,704 tokens of context (one run: not tested).")
    assert cross.sentence in rec.summary

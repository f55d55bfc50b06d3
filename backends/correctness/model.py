"""What the correctness check decides: thresholds and the judgement (its results and events
are records of the run: ``backends.journal.check``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from backends.journal.check import CorrectnessResult, Status

# The context the check uses unless told otherwise: llama-perplexity's own default, cut to
# what the model was trained on.
DEFAULT_CONTEXT = 512
# The smallest context worth checking: below it a chunk scores too few tokens.
MIN_CONTEXT = 16
DEFAULT_TIMEOUT_S = 600.0

# When the user names no reference: CPU first (the simplest, most tested code path), then
# backends in the order they are usually trusted. Nightly ROCm builds come last because
# they are the ones most often seen giving wrong output.
REFERENCE_PREFERENCE = ("cpu", "blas", "metal", "vulkan", "cuda", "sycl", "opencl", "hip", "rocm")


class CheckInputError(ValueError):
    """Bad input to a check (missing text, unknown reference, no builds): one line to show."""


class CheckableBuild(Protocol):
    """What the check needs from a build; `backends.builds.BuildInfo` has all of it."""

    @property
    def name(self) -> str: ...
    @property
    def perplexity(self) -> Path | None: ...
    @property
    def env(self) -> Mapping[str, str]: ...
    @property
    def backend(self) -> str: ...


@dataclass(frozen=True)
class CorrectnessThresholds:
    """How far a build may stray from the reference before it is called suspect.

    The defaults sit well above the differences healthy backends show and below what a
    broken build gives.

    Measured here with this llama.cpp (source 11434.0.0) on generated models with random
    weights, context 128, 4 chunks of the shipped text (``python3
    benchmarks/correctness_noise.py``; two runs, both shown where they differ)::

        pair                                          mean KLD   top-1         PPL delta
        CPU vs Vulkan/lavapipe, tiny llama F32        0          100 %         +0.004 %
        CPU vs Vulkan/lavapipe, tiny MoE F32          0-2.2e-5   99.6-100 %    +0.016 %
        CPU vs Vulkan/lavapipe, small qwen3 Q8_0      1.9e-4     95.6-96.4 %   -0.13..+0.39 %
        CPU 2 threads vs 1 thread, all three          0          100 %         0 %
        tiny llama F32 vs Q8_0 weights (CPU)          2.6e-5     97.2 %        +0.01 %
        small qwen3 F32 vs Q8_0 weights (CPU)         4.4e-4     92.5-93.7 %   -0.5..0 %
        small qwen3 F32 vs Q4_0 weights (CPU)         0.07       31 %          -8..-10 %
        wrong: --rope-freq-base 1 (tiny llama)        7.5e-4     86-87 %       -0.3 %
        wrong: rms epsilon 10 (tiny llama)            0.08       4-5 %         -8 %
        wrong: weights + 5 % noise (tiny llama)       1.2e-3     78 %          +0.6 %
        wrong: weights + 30 % noise (tiny llama)      0.041      21 %          +3.9 %

    ("small qwen3": 4 layers, 256 wide, vocabulary 2048.) Random weights give nearly flat
    token distributions (perplexity close to the vocabulary size), so the KL divergence
    stays small even when the build is wrong, while the top-1 token flips easily; that is
    why both are checked.

    Real models give peaked distributions. llama.cpp's own figures for LLaMA 3 8B
    (tools/perplexity/README.md in its source): FP16 on CUDA against FP16 logits, mean KLD
    5.5e-4; BF16 vs FP16 on CPU 2.5e-5 and 99.74 % top-1; Q8_0 1.4e-3 and 97.7 %; Q6_K
    5.5e-3 and 96.0 %; Q4_K_M 0.031 and 91.9 %, perplexity +2.8 %. Hence:

    * ``max_mean_kld`` 0.01: twenty times the backend noise of a real 8B model, about a
      Q5_K_M quantisation; a build that loses more than that computes something else.
    * ``min_top1_agreement`` 0.90 (a fraction): BF16 and FP16 agree on 99.7 % of real
      tokens, healthy backends on 95.6 % or more even of near-flat random ones; the subtle
      wrong numerics above fall to 78-87 %.
    * ``max_ppl_delta_pct`` 2.0: healthy backends move perplexity by hundredths of a
      percent on real models and by under 0.4 % on random ones.

    Big random-weight models (a vocabulary of 152K) are flatter still; measure them with
    the benchmark script before trusting the top-1 limit on them.
    """

    max_mean_kld: float = 0.01
    min_top1_agreement: float = 0.90
    max_ppl_delta_pct: float = 2.0

    def __post_init__(self) -> None:
        if not self.max_mean_kld >= 0:
            raise CheckInputError(f"max_mean_kld must be >= 0, not {self.max_mean_kld}")
        if not 0 <= self.min_top1_agreement <= 1:
            raise CheckInputError(
                f"min_top1_agreement is a fraction from 0 to 1, not {self.min_top1_agreement}")
        if not self.max_ppl_delta_pct >= 0:
            raise CheckInputError(f"max_ppl_delta_pct must be >= 0, not {self.max_ppl_delta_pct}")


@dataclass(frozen=True)
class CheckOptions:
    """How a correctness check runs (``run_check``'s settings): the reference build (None:
    chosen by ``REFERENCE_PREFERENCE``), the text (None: the shipped one), the thresholds,
    seconds per tool run, ``-c`` per chunk and how many chunks the reference reads (None:
    sized from the model and the text), per-build extra arguments and models, and the folder
    for the reference's probabilities."""

    reference: str | None = None
    text: str | Path | None = None
    thresholds: CorrectnessThresholds = CorrectnessThresholds()
    timeout: float = DEFAULT_TIMEOUT_S
    context: int | None = None
    chunks: int | None = None
    extra_args: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    models: Mapping[str, Path] = field(default_factory=dict)
    work_dir: Path | None = None


# --- judging -------------------------------------------------------------------------------

def judge(mean_kld: float, top1_agreement: float, ppl: float | None, ppl_ref: float | None,
          thresholds: CorrectnessThresholds) -> tuple[Status, str]:
    """``pass`` or ``suspect`` with the numbers that crossed a threshold."""
    numbers = [mean_kld, top1_agreement] + [v for v in (ppl, ppl_ref) if v is not None]
    if not all(math.isfinite(v) for v in numbers):
        return "suspect", "non-finite numbers (NaN or inf): the build gives broken logits"
    problems = []
    if mean_kld > thresholds.max_mean_kld:
        problems.append(f"mean KLD {mean_kld:.3g} > {thresholds.max_mean_kld:g}")
    if top1_agreement < thresholds.min_top1_agreement:
        problems.append(f"top-1 agreement {top1_agreement * 100:.1f}% < "
                        f"{thresholds.min_top1_agreement * 100:g}%")
    if ppl is not None and ppl_ref:
        delta = (ppl - ppl_ref) / ppl_ref * 100.0
        if abs(delta) > thresholds.max_ppl_delta_pct:
            problems.append(f"perplexity {ppl:.4g} vs {ppl_ref:.4g} ({delta:+.2f}%, "
                            f"limit ±{thresholds.max_ppl_delta_pct:g}%)")
    if problems:
        return "suspect", "; ".join(problems)
    return "pass", "within thresholds"


# A first chunk decides a staged check alone when its figures lie this many times inside
# every limit, or this many times beyond one; anything between reads the whole text.
FIRST_CHUNK_MARGIN = 4.0


def decided_by_first_chunk(result: CorrectnessResult, thresholds: CorrectnessThresholds) -> bool:
    """Whether one chunk's result settles the check (a nightly gate's first look): a crash or
    non-finite numbers; a pass with every figure ``FIRST_CHUNK_MARGIN`` times inside its limit
    (mean KLD <= a quarter of the limit, top-1 disagreement <= a quarter of what is allowed);
    or a suspect result that many times beyond a limit (the other model's 4-5 % top-1 or
    0.08 KLD, not the 86 % of a subtly wrong rope that the full text must confirm)."""
    if result.status == "failed":
        return True
    kld, top1, delta = result.mean_kld, result.top1_agreement, result.ppl_delta_pct
    if kld is None or top1 is None:
        return False
    if not all(math.isfinite(v) for v in (kld, top1, *(() if delta is None else (delta,)))):
        return True
    shares = [_share(kld, thresholds.max_mean_kld),
              _share(1.0 - top1, 1.0 - thresholds.min_top1_agreement)]
    if delta is not None:
        shares.append(_share(abs(delta), thresholds.max_ppl_delta_pct))
    if result.status == "pass":
        return max(shares) <= 1.0 / FIRST_CHUNK_MARGIN
    return max(shares) >= FIRST_CHUNK_MARGIN


def _share(value: float, limit: float) -> float:
    """``value`` as a multiple of ``limit`` (a zero limit: 0 where nothing is allowed and
    nothing happened, else infinitely far)."""
    if limit > 0:
        return value / limit
    return 0.0 if value <= 0 else math.inf

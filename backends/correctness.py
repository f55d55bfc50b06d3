"""The correctness gate: catch a build that is fast but wrong.

A reference build reads a text with ``llama-perplexity --kl-divergence-base FILE`` and saves
its token probabilities; every other build reads the same text with ``--kl-divergence``
against that file. llama.cpp then reports, per build:

* the mean KL divergence of its token distribution from the reference's,
* how often both pick the same most likely token ("Same top p", the top-1 agreement),
* its perplexity, compared with the reference's.

Two healthy backends running the same model file differ only by floating-point rounding
(a different summation order, fused kernels, f16 accumulators), which moves these numbers
very little. A broken kernel, a miscompiled shader or a nightly that corrupts memory moves
them a lot. Results beyond `CorrectnessThresholds` mark the build ``suspect``; a crash or
time-out during the check marks it ``failed``.

Where the default thresholds come from: see `CorrectnessThresholds`.

    async for event in run_check(builds, model):
        ...  # CheckStarted, BuildChecked(result) per build, CheckFinished(results)
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import (Any, Literal, Protocol)
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence

from backends import procs
from backends.tool import run_tool

Status = Literal["reference", "pass", "suspect", "failed"]
STATUSES: tuple[str, ...] = ("reference", "pass", "suspect", "failed")

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

    name: str
    perplexity: Path | None
    env: Mapping[str, str]
    backend: str


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
class CorrectnessResult:
    """One build's verdict against the reference. ``top1_agreement`` is a fraction (0..1).

    The reference itself has status ``reference`` and only its perplexity. Numbers a run
    could not give are None (and left out of `to_json`, since TOML has no null).
    """

    build: str
    reference: str
    mean_kld: float | None = None
    top1_agreement: float | None = None
    ppl: float | None = None
    ppl_ref: float | None = None
    status: Status = "pass"
    reason: str = ""
    context: int | None = None
    chunks: int | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")

    @property
    def ppl_delta_pct(self) -> float | None:
        """Perplexity relative to the reference's, in percent (+ is worse)."""
        if self.ppl is None or self.ppl_ref is None or self.ppl_ref == 0:
            return None
        return (self.ppl - self.ppl_ref) / self.ppl_ref * 100.0

    @property
    def ok(self) -> bool:
        return self.status in ("reference", "pass")

    def to_json(self) -> dict[str, Any]:
        """Plain keys and values for TOML and JSON; None values are dropped."""
        data = {
            "build": self.build,
            "reference": self.reference,
            "mean_kld": self.mean_kld,
            "top1_agreement": self.top1_agreement,
            "ppl": self.ppl,
            "ppl_ref": self.ppl_ref,
            "status": self.status,
            "reason": self.reason,
            "context": self.context,
            "chunks": self.chunks,
        }
        return {key: value for key, value in data.items() if value is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CorrectnessResult:
        def number(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        def integer(key: str) -> int | None:
            value = data.get(key)
            return None if value is None else int(value)

        return cls(
            build=str(data["build"]),
            reference=str(data.get("reference", "")),
            mean_kld=number("mean_kld"),
            top1_agreement=number("top1_agreement"),
            ppl=number("ppl"),
            ppl_ref=number("ppl_ref"),
            status=str(data.get("status", "pass")),  # type: ignore[arg-type]
            reason=str(data.get("reason", "")),
            context=integer("context"),
            chunks=integer("chunks"),
        )

    def summary(self) -> str:
        """One short line: KLD, top-1 %, PPL delta, verdict."""
        if self.status == "reference":
            ppl = f"PPL {self.ppl:.4g}" if self.ppl is not None else "PPL ?"
            return f"{self.build}: reference ({ppl})"
        if self.status == "failed":
            return f"{self.build}: FAILED - {self.reason}"
        parts = []
        if self.mean_kld is not None:
            parts.append(f"KLD {self.mean_kld:.2e}")
        if self.top1_agreement is not None:
            parts.append(f"top-1 {self.top1_agreement * 100:.2f}%")
        delta = self.ppl_delta_pct
        if delta is not None:
            parts.append(f"PPL {self.ppl:.4g} ({delta:+.2f}%)")
        verdict = "pass" if self.status == "pass" else f"SUSPECT - {self.reason}"
        return f"{self.build}: {', '.join(parts)}: {verdict}"


# --- events --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckStarted:
    builds: tuple[str, ...]
    reference: str
    model: str
    text: str
    context: int


@dataclass(frozen=True)
class BuildChecked:
    result: CorrectnessResult


@dataclass(frozen=True)
class CheckFinished:
    """The end of a check. ``problem`` says why nothing could be compared (the reference
    failed); it is None when every build got a verdict."""

    results: tuple[CorrectnessResult, ...]
    problem: str | None = None


CheckEvent = CheckStarted | BuildChecked | CheckFinished
CHECK_EVENT_TYPES: tuple[type, ...] = (CheckStarted, BuildChecked, CheckFinished)


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


# --- parsing llama-perplexity's output ------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)"
_FINAL_PPL = re.compile(rf"Final estimate:\s*PPL\s*=\s*({_NUMBER})", re.IGNORECASE)
_RUNNING_PPL = re.compile(rf"\[(\d+)\]({_NUMBER}),")
_MEAN_PPL_Q = re.compile(rf"Mean PPL\(Q\)\s*:\s*({_NUMBER})", re.IGNORECASE)
_MEAN_PPL_BASE = re.compile(rf"Mean PPL\(base\)\s*:\s*({_NUMBER})", re.IGNORECASE)
_MEAN_KLD = re.compile(rf"Mean\s+KLD\s*:\s*({_NUMBER})", re.IGNORECASE)
_SAME_TOP = re.compile(rf"Same top p\s*:\s*({_NUMBER})", re.IGNORECASE)
_TOO_FEW_TOKENS = re.compile(r"tokenizes to only (\d+) tokens")
_CHUNKS = re.compile(r"over (\d+) chunks, n_ctx=(\d+)")
# llama.cpp's log prefix: "0.00.018.724 E " (time, level), or none when timestamps are off.
_ERROR_LINE = re.compile(r"^(?:\d+\.\d+\.\d+\.\d+\s+)?E\s+(.*\S)")
_OTHER_LEVEL_LINE = re.compile(r"^\d+\.\d+\.\d+\.\d+\s+[IWD]\s")
_ERROR_WORDS = re.compile(r"error|failed|unable|cannot|abort|exception|what\(\)", re.IGNORECASE)


def _float(text: str) -> float:
    return float(text.lower().replace("-nan", "nan"))


def _last(pattern: re.Pattern[str], text: str) -> str | None:
    matches = pattern.findall(text)
    if not matches:
        return None
    last = matches[-1]
    return last[-1] if isinstance(last, tuple) else last


@dataclass(frozen=True)
class PerplexityRun:
    """What one ``llama-perplexity`` run over the text reported."""

    ppl: float | None
    chunks: int | None
    context: int | None
    too_few_tokens: int | None  # tokens in the text when it was too short for the context


def parse_perplexity_output(text: str) -> PerplexityRun:
    """The final perplexity; the running estimate only when it covers every chunk (the log
    may have lost its last lines, and a partial estimate is a different number)."""
    chunks = _CHUNKS.findall(text)
    n_chunks = int(chunks[-1][0]) if chunks else None
    final = _last(_FINAL_PPL, text)
    if final is None:
        running = _RUNNING_PPL.findall(text)  # "[N]value," after each chunk
        if running and n_chunks is not None and int(running[-1][0]) == n_chunks:
            final = running[-1][1]
    too_few = _last(_TOO_FEW_TOKENS, text)
    return PerplexityRun(
        ppl=_float(final) if final is not None else None,
        chunks=n_chunks,
        context=int(chunks[-1][1]) if chunks else None,
        too_few_tokens=int(too_few) if too_few is not None else None,
    )


@dataclass(frozen=True)
class DivergenceRun:
    """What one ``llama-perplexity --kl-divergence`` run reported."""

    mean_kld: float | None
    top1_agreement: float | None  # fraction
    ppl: float | None
    ppl_base: float | None
    chunks: int | None


def _last_chunk_row(text: str) -> list[float] | None:
    """The last per-chunk row: chunk, PPL ± u, ln ratio ± u, KLD ± u, Δp RMS ± u %, top ± u %.

    llama.cpp prints the summary block only after 100 scored tokens; the rows come always.
    """
    row = None
    for line in text.splitlines():
        fields = [f for f in line.replace("±", " ").replace("%", " ").split() if f != "+/-"]
        if len(fields) != 11 or not fields[0].isdigit():
            continue
        try:
            row = [_float(f) for f in fields]
        except ValueError:
            continue
    return row


def parse_divergence_output(text: str) -> DivergenceRun:
    """The summary block when it is all there ("Same top p" is its last line), else the
    last chunk row when it is the last chunk; top-1 agreement in percent, as printed."""
    chunks = _CHUNKS.findall(text)
    n_chunks = int(chunks[-1][0]) if chunks else None
    mean_kld, same_top = _last(_MEAN_KLD, text), _last(_SAME_TOP, text)
    if mean_kld is not None and same_top is not None:
        ppl, ppl_base = _last(_MEAN_PPL_Q, text), _last(_MEAN_PPL_BASE, text)
        return DivergenceRun(
            mean_kld=_float(mean_kld), top1_agreement=_float(same_top),
            ppl=_float(ppl) if ppl else None, ppl_base=_float(ppl_base) if ppl_base else None,
            chunks=n_chunks)
    row = _last_chunk_row(text)
    if row is None or n_chunks is None or int(row[0]) != n_chunks:
        return DivergenceRun(None, None, None, None, n_chunks)
    return DivergenceRun(mean_kld=row[5], top1_agreement=row[9], ppl=row[1], ppl_base=None,
                         chunks=n_chunks)


def _percent_to_fraction(run: DivergenceRun) -> DivergenceRun:
    top = run.top1_agreement
    return DivergenceRun(run.mean_kld, None if top is None else top / 100.0, run.ppl,
                         run.ppl_base, run.chunks)


NO_REASON = "its log gave no reason"


def error_line(output: str) -> str | None:
    """The last line llama.cpp logged as an error, else the last one that reads like one."""
    lines = output.splitlines()
    logged = [m.group(1) for m in map(_ERROR_LINE.match, lines) if m]
    telling = [line for line in logged if "error loading model" in line]
    logged = telling or logged
    # Else an untagged line such as a C++ exception or GGML_ASSERT; info and warning lines
    # may hold those words innocently (a path with "failed" in it).
    found = logged[-1] if logged else next(
        (line.strip() for line in reversed(lines[-40:])
         if _ERROR_WORDS.search(line) and not _OTHER_LEVEL_LINE.match(line)), None)
    if found and len(found) > 200:
        found = found[:197] + "..."
    return found


# --- running the tool ----------------------------------------------------------------------

@dataclass(frozen=True)
class ToolRun:
    returncode: int | None
    output: str
    timed_out: bool

    def failure(self, what: str, timeout: float) -> str | None:
        """Why the run failed as a process (crash, time-out, non-zero exit), else None."""
        if self.timed_out:
            return f"{what} timed out after {timeout:g} s"
        if self.returncode != 0:
            exit_text, _ = procs.describe_exit(self.returncode)
            detail = error_line(self.output)
            return f"{what} {exit_text}: " + (detail or NO_REASON)
        return None


async def _run_tool(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> ToolRun:
    """Run one tool to the end in its own process group; kill the group on time-out or cancel."""
    out, err, finished = await run_tool(argv, env=env, timeout=timeout)
    if finished.timed_out:
        return ToolRun(finished.returncode, "", timed_out=True)
    return ToolRun(finished.returncode, out + "\n" + err, timed_out=False)


# llama.cpp's logger is a thread that the tools do not flush at exit, so a run may lose its
# last lines: about one run in forty that succeeds, most runs that fail at once (a model
# that will not load). A run that ended without saying how is repeated: quick ones a few
# times, long ones once. A crash by signal is not repeated; its signal says enough.
QUICK_RUN_S = 10.0
QUICK_ATTEMPTS = 5
SLOW_ATTEMPTS = 2


async def _run_until_told(argv: Sequence[str], env: Mapping[str, str], timeout: float,
                          told: Callable[[ToolRun], bool]) -> ToolRun:
    """Run the tool until its output tells what happened (``told``), a few times at most."""
    attempt = 0
    while True:
        attempt += 1
        started = time.monotonic()
        run = await _run_tool(argv, env, timeout)
        quick = time.monotonic() - started < QUICK_RUN_S
        if run.timed_out or (run.returncode or 0) < 0 or told(run):
            return run
        if error_line(run.output) is not None:
            return run  # it said what went wrong
        if attempt >= (QUICK_ATTEMPTS if quick else SLOW_ATTEMPTS):
            return run


# --- choosing and preparing ----------------------------------------------------------------

def choose_reference(builds: Sequence[CheckableBuild], name: str | None = None) -> CheckableBuild:
    """The named build, else the CPU build, else the most trusted backend present."""
    if not builds:
        raise CheckInputError("no builds to check")
    if name is not None:
        for build in builds:
            if build.name == name:
                return build
        known = ", ".join(b.name for b in builds)
        raise CheckInputError(f"reference {name!r} is not among the builds ({known})")
    usable = [b for b in builds if b.perplexity is not None] or list(builds)

    def rank(build: CheckableBuild) -> int:
        backend = (build.backend or "").lower()
        for position, word in enumerate(REFERENCE_PREFERENCE):
            if word in backend:
                return position
        return len(REFERENCE_PREFERENCE)

    return min(usable, key=rank)  # min keeps the first of equals: the user's order


@contextlib.contextmanager
def reference_text(text: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """The text file to read: the user's, or the one that ships with llamaduel."""
    if text is not None:
        path = Path(text)
        if not path.is_file():
            raise CheckInputError(f"text file not found: {path}")
        yield path
        return
    shipped = importlib.resources.files("backends") / "data" / "reference.txt"
    with importlib.resources.as_file(shipped) as path:
        yield path


def _model_path(model: Any) -> Path:
    path = Path(getattr(model, "path", model))
    if not path.is_file():
        raise CheckInputError(f"model file not found: {path}")
    return path


def model_context_length(path: Path) -> int | None:
    """The context the model was trained on, from its GGUF metadata; None if unreadable."""
    try:
        import gguf

        reader = gguf.GGUFReader(path, "r")
        for name, field_ in reader.fields.items():
            if name.endswith(".context_length") and field_.data:
                return int(field_.parts[field_.data[0]][0])
    except Exception:  # a truncated or odd file: the tool will say what is wrong
        return None
    return None


def model_problem(path: Path) -> str | None:
    """What is wrong with a model file that llama.cpp would not load, if gguf can tell."""
    try:
        import gguf

        gguf.GGUFReader(path, "r")
    except Exception as error:  # any reader error means a damaged file
        return f"the model file looks damaged or incomplete ({type(error).__name__}: {error})"
    return None


def _explain(failure: str, model: Path) -> str:
    """Fill in a reason llama.cpp's log lost, from the model file when it is to blame."""
    if failure.endswith(NO_REASON):
        problem = model_problem(model)
        if problem:
            return failure[: -len(NO_REASON)] + problem
    return failure


def default_context(model_path: Path) -> int:
    trained = model_context_length(model_path)
    if trained and trained >= MIN_CONTEXT:
        return min(DEFAULT_CONTEXT, trained)
    return DEFAULT_CONTEXT


def _context_for(tokens: int) -> int | None:
    """The largest power-of-two context that still leaves two chunks of ``tokens``."""
    context = 1 << max(0, (tokens // 2).bit_length() - 1)
    return context if context >= MIN_CONTEXT else None


# --- the check -----------------------------------------------------------------------------

async def run_check(
    builds: Sequence[CheckableBuild],
    model: Any,
    *,
    reference: str | None = None,
    text: str | os.PathLike[str] | None = None,
    thresholds: CorrectnessThresholds = CorrectnessThresholds(),
    timeout: float = DEFAULT_TIMEOUT_S,
    context: int | None = None,
    chunks: int | None = None,
    extra_args: Mapping[str, Sequence[str]] | None = None,
    models: Mapping[str, Any] | None = None,
    work_dir: str | os.PathLike[str] | None = None,
) -> AsyncIterator[CheckEvent]:
    """Check every build against the reference build; yields CheckStarted, one BuildChecked
    per build (the reference first) and CheckFinished.

    ``model`` is a path or anything with ``.path`` (a ModelInfo). ``context`` is the
    per-chunk context (``-c``; default 512 or the model's trained context if smaller, and
    smaller still when the text is short); ``chunks`` caps how many chunks of the text the
    reference reads (default: all). ``extra_args`` adds arguments per build name, e.g.
    ``{"rocm": ["-ngl", "99"]}``. ``models`` gives a build its own model file, by build
    name: the same model in another file or quantisation (the vocabulary must match), to
    see what a quantisation costs. ``timeout`` bounds each tool run in seconds. The
    reference's probabilities go to a temporary file under ``work_dir`` (default: the
    system's temporary folder), removed at the end; it takes about
    chunks x context/2 x vocabulary x 2 bytes.
    """
    if timeout <= 0:
        raise CheckInputError(f"timeout must be positive, not {timeout}")
    if context is not None and context < MIN_CONTEXT:
        raise CheckInputError(f"context must be at least {MIN_CONTEXT}, not {context}")
    if chunks is not None and chunks < 1:
        raise CheckInputError(f"chunks must be at least 1, not {chunks}")
    names = [b.name for b in builds]
    if len(set(names)) != len(names):
        raise CheckInputError("build names must be unique: " + ", ".join(names))
    model_path = _model_path(model)
    ref_build = choose_reference(builds, reference)
    extra = {name: list(args) for name, args in (extra_args or {}).items()}
    own_models = {name: _model_path(path) for name, path in (models or {}).items()}
    for what, mapping in (("extra arguments", extra), ("models", own_models)):
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise CheckInputError(f"{what} for unknown builds: " + ", ".join(unknown))
    wanted_context = context or default_context(model_path)

    with reference_text(text) as text_path:
        yield CheckStarted(tuple(names), ref_build.name, str(model_path), str(text_path),
                           wanted_context)
        results: list[CorrectnessResult] = []
        scratch = Path(tempfile.mkdtemp(prefix="llamaduel-check-", dir=work_dir))
        try:
            base_file = scratch / "reference.kld"
            ref_result, used_context = await _run_reference(
                ref_build, own_models.get(ref_build.name, model_path), text_path, base_file,
                wanted_context, shrink_allowed=context is None, chunks=chunks,
                extra=extra.get(ref_build.name, []), timeout=timeout)
            results.append(ref_result)
            yield BuildChecked(ref_result)
            if ref_result.status == "failed":
                yield CheckFinished(tuple(results),
                                    problem=f"the reference build {ref_build.name} failed: "
                                    f"{ref_result.reason}")
                return
            for build in builds:
                if build is ref_build:
                    continue
                result = await _run_divergence(
                    build, ref_result, own_models.get(build.name, model_path), base_file,
                    used_context, extra=extra.get(build.name, []), thresholds=thresholds,
                    timeout=timeout)
                results.append(result)
                yield BuildChecked(result)
            yield CheckFinished(tuple(results))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _perplexity_told(run: ToolRun) -> bool:
    if run.returncode != 0:
        return False
    parsed = parse_perplexity_output(run.output)
    return parsed.ppl is not None or parsed.too_few_tokens is not None


def _divergence_told(run: ToolRun) -> bool:
    if run.returncode != 0:
        return False
    parsed = parse_divergence_output(run.output)
    return parsed.mean_kld is not None and parsed.top1_agreement is not None


def _tool_or_problem(build: CheckableBuild) -> tuple[Path | None, str | None]:
    tool = build.perplexity
    if tool is None:
        return None, "this build has no llama-perplexity"
    if not Path(tool).is_file():
        return None, f"llama-perplexity not found at {tool}"
    return Path(tool), None


def _env(build: CheckableBuild) -> dict[str, str]:
    return dict(getattr(build, "env", None) or {})


async def _run_reference(build: CheckableBuild, model: Path, text: Path, base_file: Path,
                         context: int, *, shrink_allowed: bool, chunks: int | None,
                         extra: list[str], timeout: float) -> tuple[CorrectnessResult, int]:
    tool, problem = _tool_or_problem(build)
    if tool is None:
        return CorrectnessResult(build.name, build.name, status="failed",
                                 reason=problem or ""), context
    while True:
        argv = [str(tool), "-m", str(model), "-f", str(text), "-c", str(context),
                "--kl-divergence-base", str(base_file)]
        if chunks is not None:
            argv += ["--chunks", str(chunks)]
        run = await _run_until_told(argv + extra, _env(build), timeout, _perplexity_told)
        failure = run.failure("llama-perplexity", timeout)
        parsed = parse_perplexity_output(run.output) if failure is None else None
        if parsed is not None and parsed.too_few_tokens is not None and parsed.ppl is None:
            smaller = _context_for(parsed.too_few_tokens)
            if shrink_allowed and smaller is not None and smaller < context:
                context = smaller  # a short text or a small model: fit two chunks
                continue
            failure = (f"the text has only {parsed.too_few_tokens} tokens; a context of "
                       f"{context} needs at least {2 * context}")
        if failure is None and (parsed is None or parsed.ppl is None):
            failure = "llama-perplexity gave no perplexity" + (
                f": {error_line(run.output)}" if error_line(run.output) else "")
        if failure is None and not base_file.is_file():
            failure = "llama-perplexity wrote no logits file"
        if failure is not None:
            return CorrectnessResult(build.name, build.name, status="failed",
                                     reason=_explain(failure, model),
                                     context=context), context
        assert parsed is not None
        return CorrectnessResult(
            build.name, build.name, ppl=parsed.ppl, ppl_ref=parsed.ppl, status="reference",
            reason="the others are compared with this build", context=parsed.context or context,
            chunks=parsed.chunks), context


async def _run_divergence(build: CheckableBuild, ref: CorrectnessResult, model: Path,
                          base_file: Path, context: int, *, extra: list[str],
                          thresholds: CorrectnessThresholds,
                          timeout: float) -> CorrectnessResult:
    def failed(reason: str) -> CorrectnessResult:
        return CorrectnessResult(build.name, ref.build, ppl_ref=ref.ppl, status="failed",
                                 reason=reason, context=context, chunks=ref.chunks)

    tool, problem = _tool_or_problem(build)
    if tool is None:
        return failed(problem or "")
    argv = [str(tool), "-m", str(model), "-c", str(context), "--kl-divergence",
            "--kl-divergence-base", str(base_file)]
    run = await _run_until_told(argv + extra, _env(build), timeout, _divergence_told)
    failure = run.failure("llama-perplexity", timeout)
    if failure is not None:
        return failed(_explain(failure, model))
    parsed = _percent_to_fraction(parse_divergence_output(run.output))
    if parsed.mean_kld is None or parsed.top1_agreement is None:
        # llama-perplexity exits 0 even when it gives up (a bad model, a failed decode).
        detail = error_line(run.output)
        return failed("llama-perplexity gave no KL divergence" + (f": {detail}" if detail else ""))
    status, reason = judge(parsed.mean_kld, parsed.top1_agreement, parsed.ppl, ref.ppl,
                           thresholds)
    return CorrectnessResult(
        build.name, ref.build, mean_kld=parsed.mean_kld, top1_agreement=parsed.top1_agreement,
        ppl=parsed.ppl, ppl_ref=ref.ppl, status=status, reason=reason, context=context,
        chunks=parsed.chunks or ref.chunks)


def results_by_build(results: Sequence[CorrectnessResult]) -> dict[str, dict[str, Any]]:
    """``{build: result.to_json()}``: what a profile stores and the verdicts read."""
    return {result.build: result.to_json() for result in results}


def check_builds(builds: Sequence[CheckableBuild], model: Any, **options: Any,
                 ) -> list[CorrectnessResult]:
    """`run_check` for scripts: every build's result, the reference first."""

    async def collect() -> list[CorrectnessResult]:
        results: list[CorrectnessResult] = []
        async for event in run_check(builds, model, **options):
            if isinstance(event, BuildChecked):
                results.append(event.result)
        return results

    return asyncio.run(collect())

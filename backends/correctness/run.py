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
import dataclasses
import importlib.resources
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends import procs
from backends.correctness import reference_cache
from backends.correctness.model import (
    DEFAULT_TIMEOUT_S,
    MIN_CONTEXT,
    REFERENCE_PREFERENCE,
    CheckableBuild,
    CheckInputError,
    CheckOptions,
    CorrectnessThresholds,
    judge,
)
from backends.correctness.model_file import (
    CheckModel,
    _context_for,
    _explain,
    _model_path,
    default_context,
)
from backends.correctness.parse import (
    NO_REASON,
    _percent_to_fraction,
    error_line,
    parse_divergence_output,
    parse_perplexity_output,
)
from backends.journal.check import BuildChecked, CheckEvent, CheckFinished, CheckStarted, CorrectnessResult
from backends.tool import run_tool

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


# --- the check -----------------------------------------------------------------------------

def _check_inputs(builds: Sequence[CheckableBuild], timeout: float, context: int | None,
                  chunks: int | None) -> None:
    if timeout <= 0:
        raise CheckInputError(f"timeout must be positive, not {timeout}")
    if context is not None and context < MIN_CONTEXT:
        raise CheckInputError(f"context must be at least {MIN_CONTEXT}, not {context}")
    if chunks is not None and chunks < 1:
        raise CheckInputError(f"chunks must be at least 1, not {chunks}")
    names = [b.name for b in builds]
    if len(set(names)) != len(names):
        raise CheckInputError("build names must be unique: " + ", ".join(names))


def _per_build(names: Sequence[str], extra_args: Mapping[str, Sequence[str]] | None,
               models: Mapping[str, CheckModel] | None) -> tuple[dict[str, list[str]], dict[str, Path]]:
    """Each build's own extra arguments and model file, checked against the build names."""
    extra = {name: list(args) for name, args in (extra_args or {}).items()}
    own_models = {name: _model_path(path) for name, path in (models or {}).items()}
    for what, mapping in (("extra arguments", extra), ("models", own_models)):
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise CheckInputError(f"{what} for unknown builds: " + ", ".join(unknown))
    return extra, own_models


async def run_check(
    builds: Sequence[CheckableBuild],
    model: CheckModel,
    *,
    reference: str | None = None,
    text: str | os.PathLike[str] | None = None,
    thresholds: CorrectnessThresholds = CorrectnessThresholds(),
    timeout: float = DEFAULT_TIMEOUT_S,
    context: int | None = None,
    chunks: int | None = None,
    extra_args: Mapping[str, Sequence[str]] | None = None,
    models: Mapping[str, CheckModel] | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    reference_cache: str | os.PathLike[str] | None = None,
) -> AsyncIterator[CheckEvent]:
    """Check every build against the reference; yields CheckStarted, BuildChecked per build
    (the reference first) and CheckFinished. ``model``: a path or a ModelInfo; ``context``:
    ``-c`` per chunk (default 512, less for a short model or text); ``chunks``: how many the
    reference reads (default all); ``extra_args`` / ``models``: per build name; ``timeout``:
    seconds per tool run; the reference's probabilities go under ``work_dir``, or are taken
    from (and kept in) ``reference_cache`` (``backends.correctness.reference_cache``)."""
    _check_inputs(builds, timeout, context, chunks)
    names = [b.name for b in builds]
    model_path = _model_path(model)
    ref_build = choose_reference(builds, reference)
    extra, own_models = _per_build(names, extra_args, models)
    wanted_context = context or default_context(model_path)

    with reference_text(text) as text_path:
        yield CheckStarted(tuple(names), ref_build.name, str(model_path), str(text_path),
                           wanted_context)
        results: list[CorrectnessResult] = []
        scratch = Path(tempfile.mkdtemp(prefix="llamaduel-check-", dir=work_dir))
        try:
            ref_result, used_context, base_file = await _reference(
                ref_build, own_models.get(ref_build.name, model_path), text_path, scratch,
                wanted_context, shrink_allowed=context is None, chunks=chunks,
                extra=extra.get(ref_build.name, []), timeout=timeout,
                cache=Path(reference_cache) if reference_cache is not None else None)
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


async def _reference(build: CheckableBuild, model: Path, text: Path, scratch: Path, context: int, *,
                     shrink_allowed: bool, chunks: int | None, extra: list[str], timeout: float,
                     cache: Path | None) -> tuple[CorrectnessResult, int, Path]:
    """The reference's result, the context it read at and its probabilities' file: kept
    ones from ``cache`` when the same reference read the same text before, else a run."""
    tool, _ = _tool_or_problem(build)
    key = None
    if cache is not None and tool is not None:
        key = await asyncio.to_thread(reference_cache.reference_key, tool, model, text, context,
                                      chunks, extra, _env(build))
        kept = reference_cache.load(cache, key)
        if kept is not None:  # the same binaries, maybe under another name
            renamed = dataclasses.replace(kept.result, build=build.name, reference=build.name)
            return renamed, kept.context, kept.logits
    base_file = scratch / reference_cache.LOGITS
    result, used = await _run_reference(build, model, text, base_file, context,
                                        shrink_allowed=shrink_allowed, chunks=chunks, extra=extra,
                                        timeout=timeout)
    if key is not None and cache is not None and result.status == "reference":
        await asyncio.to_thread(reference_cache.store, cache, key, base_file, result, used)
    return result, used, base_file


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


def results_by_build(results: Sequence[CorrectnessResult]) -> dict[str, dict[str, object]]:
    """``{build: result.to_json()}``: what a profile stores and the verdicts read."""
    return {result.build: result.to_json() for result in results}


def check_builds(builds: Sequence[CheckableBuild], model: CheckModel, **options: Any,
                 ) -> list[CorrectnessResult]:
    """`run_check` for scripts: every build's result, the reference first."""

    async def collect() -> list[CorrectnessResult]:
        results: list[CorrectnessResult] = []
        async for event in run_check(builds, model, **options):
            if isinstance(event, BuildChecked):
                results.append(event.result)
        return results

    return asyncio.run(collect())


def run_check_with(builds: Sequence[CheckableBuild], model: CheckModel,
                   options: CheckOptions) -> AsyncIterator[CheckEvent]:
    """``run_check`` with its settings carried in one ``CheckOptions``."""
    return run_check(builds, model, reference=options.reference, text=options.text,
                     thresholds=options.thresholds, timeout=options.timeout, context=options.context,
                     chunks=options.chunks, extra_args=options.extra_args, models=options.models,
                     work_dir=options.work_dir)

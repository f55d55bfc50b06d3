"""The completion race: one prompt streamed through each build's completion tool.

Each build's ``llama-completion`` (or, in versions before it existed, the non-interactive
``llama-cli``) gets the same prompt, model and sampling settings. Text is read from stdout
in chunks as the tool flushes it, so a reader sees tokens arrive live; the tool's own
timing lines on stderr (``prompt eval time = ... tokens per second``) give the rates at the
end. Builds share one GPU, so by default they run one after the other; every streamed
piece carries its time since that build's start, so a screen can replay them side by
side on a common clock.

Greedy decoding (temperature 0) of the same model and seed should give the same text on
every build; a build whose text differs from the reference is flagged from the first
differing character.

    async with contextlib.aclosing(run_race(builds, model, spec)) as events:
        async for event in events:
            ...
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import tempfile
import time
from collections import deque
from collections.abc import AsyncGenerator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from backends import procs
from backends.journal.race import (
    BuildFailed,
    BuildFinished,
    BuildRetrying,
    BuildStarted,
    Divergence,
    FirstToken,
    RaceEvent,
    RaceFinished,
    RaceSpec,
    RaceStarted,
    TimedPiece,
    TokenReceived,
)
from backends.race.output import _TailHolder, compare_outputs, failure_reason, output_was_cut, parse_timings
from backends.race.spec import (
    DEFAULT_ATTEMPTS,
    DEFAULT_TIMEOUT_S,
    HELP_TIMEOUT_S,
    STDERR_TAIL_LINES,
    RaceBuild,
    RaceBuildLike,
    RaceError,
    as_race_build,
    completion_argv,
    find_completion_tool,
    tool_flags,
)
from backends.tool import ToolProcess


async def _race_one(build: RaceBuild, model: Path, spec: RaceSpec, prompt_file: Path,
                    timeout: float, attempts: int, emit: Emit, running: set[ToolProcess]
                    ) -> BuildFinished | BuildFailed:
    tool = build.completion or find_completion_tool(build.folder)
    if tool is None:
        return BuildFailed(build.name, f"no llama-completion or llama-cli in {build.folder}")
    env = dict(build.env)
    flags = await tool_flags(tool, env, min(HELP_TIMEOUT_S, timeout))
    if isinstance(flags, str):
        return BuildFailed(build.name, flags)
    argv = completion_argv(tool, flags, model, spec, prompt_file)
    for attempt in range(1, attempts + 1):
        result, stderr_lines = await _attempt(build.name, tool, argv, env, timeout, attempt, emit, running)
        if attempt == attempts or not output_was_cut(result, stderr_lines):
            break
        await emit(BuildRetrying(build.name, attempt, "the tool exited before printing all of its output"))
    if isinstance(result, BuildFinished):
        result = dataclasses.replace(result, complete=result.n_gen is not None, attempts=attempt)
    elif result.reason.endswith("without an error message"):
        result = dataclasses.replace(result, reason=_likely_cause(result.reason, spec))
    return result


def _likely_cause(reason: str, spec: RaceSpec) -> str:
    """A guess at a silent failure's cause, marked as one: llama.cpp can lose its last log
    lines at exit, the "prompt is too long" error among them."""
    approx_tokens = len(spec.prompt) // 4  # English text runs about four characters a token
    if spec.ctx_size and approx_tokens > spec.ctx_size:
        return (f"{reason}; the prompt, about {approx_tokens} tokens, is probably longer than "
                f"the context allows ({spec.ctx_size}): raise the context size (-c) or shorten "
                "the prompt")
    return reason


class Emit(Protocol):
    async def __call__(self, event: RaceEvent, /) -> None: ...


async def _attempt(name: str, tool: Path, argv: list[str], env: Mapping[str, str], timeout: float,
                   attempt: int, emit: Emit, running: set[ToolProcess]
                   ) -> tuple[BuildFinished | BuildFailed, list[str]]:
    process = ToolProcess(argv, env=env)
    try:
        await process.start()
    except OSError as error:
        return BuildFailed(name, f"{tool.name} cannot start: {error.strerror or error}"), []
    running.add(process)
    await emit(BuildStarted(name, tuple(argv), process.pid, attempt))
    stderr_lines: deque[str] = deque(maxlen=400)
    reader = _TextReader(name, emit)

    async def read_stderr() -> None:
        async for line in process.stderr_lines():
            stderr_lines.append(line)

    stderr_task = asyncio.create_task(read_stderr())
    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            async for chunk in process.stdout_chunks():
                await reader.take_bytes(chunk, time.monotonic() - process.started_at)
            await stderr_task
            await process.wait()
    except TimeoutError:
        timed_out = True
    finally:
        await process.kill()  # also on cancel: the group dies, nothing is left
        stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stderr_task
        running.discard(process)
    wall = time.monotonic() - process.started_at
    stopped_at_eos = await reader.finish(wall)
    return _outcome(name, tool, process.returncode, timed_out, timeout, list(stderr_lines), reader,
                    wall, stopped_at_eos), list(stderr_lines)


class _TextReader:
    """The generated text as it streams: decoded incrementally, the trailer held back."""

    def __init__(self, name: str, emit: Emit) -> None:
        self.name, self.emit = name, emit
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.holder = _TailHolder()
        self.pieces: list[TimedPiece] = []
        self.first_at: float | None = None

    async def take_bytes(self, chunk: bytes, at: float) -> None:
        await self.take(self.holder.feed(self.decoder.decode(chunk)), at)

    async def take(self, text: str, at: float) -> None:
        if not text:
            return
        if self.first_at is None:
            self.first_at = at
            await self.emit(FirstToken(self.name, at))
        self.pieces.append(TimedPiece(at, text))
        await self.emit(TokenReceived(self.name, text, len(self.pieces) - 1, at))

    async def finish(self, wall: float) -> bool:
        await self.take(self.holder.feed(self.decoder.decode(b"", final=True)), wall)
        rest, stopped_at_eos = self.holder.finish()
        await self.take(rest, wall)
        return stopped_at_eos

    @property
    def text(self) -> str:
        return "".join(piece.text for piece in self.pieces)


def _outcome(name: str, tool: Path, returncode: int | None, timed_out: bool, timeout: float,
             lines: list[str], reader: _TextReader, wall: float,
             stopped_at_eos: bool) -> BuildFinished | BuildFailed:
    tail = "\n".join(lines[-STDERR_TAIL_LINES:])
    _, signal_name = procs.describe_exit(returncode)
    if timed_out:
        return BuildFailed(name, f"{tool.name} did not finish within {timeout:g}s and was killed",
                           exit_code=None, signal="SIGKILL", timed_out=True, stderr_tail=tail,
                           text=reader.text)
    if returncode != 0:
        return BuildFailed(name, failure_reason(lines, returncode, tool.name),
                           exit_code=returncode if returncode and returncode > 0 else None,
                           signal=signal_name, stderr_tail=tail, text=reader.text)
    timings = parse_timings(lines)
    return BuildFinished(
        build=name, text=reader.text, ttft=reader.first_at, wall_s=wall,
        prompt_tps=timings.prompt_tps, gen_tps=timings.gen_tps,
        n_prompt=timings.n_prompt, n_gen=timings.n_gen,
        prompt_ms=timings.prompt_ms, gen_ms=timings.gen_ms, load_ms=timings.load_ms,
        stopped_at_eos=stopped_at_eos, pieces=tuple(reader.pieces),
    )


# ---------------------------------------------------------------------------- race


class _Referee:
    """Picks the reference (the first build, in race order, that finished) and compares."""

    def __init__(self, order: Sequence[str], specs: Mapping[str, RaceSpec]) -> None:
        self.order = list(order)
        self.specs = specs
        self.results: dict[str, BuildFinished | BuildFailed] = {}
        self.compared: set[str] = set()
        self.reference: str | None = None
        self.divergences: list[Divergence] = []

    def record(self, result: BuildFinished | BuildFailed) -> list[Divergence]:
        self.results[result.build] = result
        if self.reference is None:
            for name in self.order:
                outcome = self.results.get(name)
                if outcome is None:
                    return []  # an earlier build is still running: it may become the reference
                if isinstance(outcome, BuildFinished):
                    self.reference = name
                    break
            if self.reference is None:
                return []
        reference = self.results[self.reference]
        assert isinstance(reference, BuildFinished)
        found = []
        for name in self.order:
            outcome = self.results.get(name)
            if name == self.reference or name in self.compared or not isinstance(outcome, BuildFinished):
                continue
            self.compared.add(name)
            a, b = self.specs[self.reference], self.specs[name]
            unexpected = a.greedy and b.greedy and a.seed == b.seed
            if divergence := compare_outputs(reference, outcome, unexpected=unexpected):
                found.append(divergence)
        self.divergences += found
        return found

    def finished(self) -> RaceFinished:
        outcomes = list(self.results.values())
        return RaceFinished(tuple(r for r in outcomes if isinstance(r, BuildFinished)),
                            tuple(r for r in outcomes if isinstance(r, BuildFailed)),
                            tuple(self.divergences), self.reference, tuple(self.results))


def _race_specs(names: Sequence[str], model: Path, spec: RaceSpec, timeout: float, attempts: int,
                overrides: Mapping[str, Mapping[str, Any]] | None) -> dict[str, RaceSpec]:
    """Each build's settings (the shared spec with its own overrides); RaceError when the
    race cannot run as asked."""
    if not names:
        raise RaceError("no builds to race: give at least one")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RaceError(f"build names must differ: {', '.join(duplicates)} given twice")
    if problem := spec.problem():
        raise RaceError(problem)
    if attempts < 1 or timeout <= 0:
        raise RaceError("attempts must be at least 1 and the time-out positive")
    if not model.is_file():
        raise RaceError(f"model file not found: {model}")
    specs: dict[str, RaceSpec] = {}
    for name in names:
        changes = dict((overrides or {}).get(name, {}))
        if "prompt" in changes:
            raise RaceError("every build races the same prompt: it cannot be overridden")
        try:
            specs[name] = dataclasses.replace(spec, **changes)
        except TypeError as error:
            raise RaceError(f"bad setting for {name}: {error}") from None
    unknown = sorted(set(overrides or {}) - set(names))
    if unknown:
        raise RaceError(f"settings given for builds not in the race: {', '.join(unknown)}")
    return specs


async def run_race(builds: Sequence[RaceBuildLike], model: Path | str, spec: RaceSpec, *,
                   sequential: bool = True, timeout: float = DEFAULT_TIMEOUT_S,
                   attempts: int = DEFAULT_ATTEMPTS,
                   overrides: Mapping[str, Mapping[str, Any]] | None = None,
                   ) -> AsyncGenerator[RaceEvent, None]:
    """Race ``spec`` through every build; yields events as they happen.

    ``builds`` are BuildInfo objects, RaceBuilds or ``(name, folder)`` pairs.
    ``overrides`` changes spec fields for one build (``{"b": {"seed": 7}}``).
    ``timeout`` bounds each build's run; a build that fails or hangs is reported and the
    others go on. A run whose output the tool cut short at exit runs again, up to
    ``attempts`` runs in all. Raises RaceError before starting when the input cannot run.
    """
    race_builds = [as_race_build(build) for build in builds]
    names = [build.name for build in race_builds]
    model = Path(model)
    specs = _race_specs(names, model, spec, timeout, attempts, overrides)

    queue: asyncio.Queue[RaceEvent | None] = asyncio.Queue()  # None: the races are over
    running: set[ToolProcess] = set()

    put = queue.put
    referee = _Referee(names, specs)

    with tempfile.TemporaryDirectory(prefix="llamaduel-race-") as scratch:
        prompt_file = Path(scratch) / "prompt.txt"
        prompt_file.write_text(spec.prompt, encoding="utf-8")

        async def one(build: RaceBuild) -> None:
            try:
                result = await _race_one(build, model, specs[build.name], prompt_file,
                                         timeout, attempts, put, running)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a bug or OS trouble in one build must not end the race
                result = BuildFailed(build.name, f"race error: {type(error).__name__}: {error}")
            await queue.put(result)

        async def produce() -> None:
            try:
                if sequential:
                    for build in race_builds:
                        await one(build)
                else:
                    await asyncio.gather(*(one(build) for build in race_builds))
            finally:
                await queue.put(None)

        yield RaceStarted(tuple(names), str(model), spec, sequential)
        producer = asyncio.create_task(produce())
        try:
            while (event := await queue.get()) is not None:
                yield event
                if isinstance(event, (BuildFinished, BuildFailed)):
                    for divergence in referee.record(event):
                        yield divergence
            await producer
        finally:
            await _stop(producer, running)
        yield referee.finished()


async def _stop(producer: asyncio.Task[None], running: set[ToolProcess]) -> None:
    """Also when the reader walks away: every tool's group is killed and reaped."""
    if not producer.done():
        producer.cancel()
    for process in list(running):
        procs.kill_group(process.pid)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await producer
    for process in list(running):
        with contextlib.suppress(Exception):
            await process.kill()


async def collect_race(builds: Sequence[RaceBuildLike], model: Path | str, spec: RaceSpec,
                       **options: Any) -> list[RaceEvent]:
    """Every event of a race, in order (for scripts and tests)."""
    events: list[RaceEvent] = []
    async with contextlib.aclosing(run_race(builds, model, spec, **options)) as stream:
        async for event in stream:
            events.append(event)
    return events



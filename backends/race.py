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
import math
import os
import re
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

from backends import procs
from backends.text import printable as text_printable

COMPLETION_TOOLS = ("llama-completion", "llama-cli")
DEFAULT_TIMEOUT_S = 600.0
HELP_TIMEOUT_S = 20.0
DEFAULT_ATTEMPTS = 4
STDERR_TAIL_LINES = 40
# What the tool prints after the generated text: " [end of text]\n" when the model
# stopped on its own, then "\n\n" before the timing lines. Not part of the completion.
_END_OF_TEXT = " [end of text]\n"
_TRAILER = "\n\n"


class RaceError(ValueError):
    """A race that cannot start as asked: the message is one line for the user."""


# ---------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class RaceSpec:
    """The prompt and settings every build in a race gets."""

    prompt: str
    n_predict: int = 64
    temperature: float = 0.0
    seed: int = 42
    flash_attn: bool | None = None  # None: the tool's own default
    type_k: str | None = None
    type_v: str | None = None
    n_gpu_layers: int | None = None
    n_cpu_moe: int | None = None
    ctx_size: int | None = None
    threads: int | None = None
    extra_args: tuple[str, ...] = ()

    def problem(self) -> str | None:
        """Why this spec cannot run, in one line, or None."""
        if not self.prompt.strip():
            return "the prompt is empty: give some text to complete"
        if self.n_predict < 1:
            return f"tokens to generate must be at least 1, not {self.n_predict}"
        if not math.isfinite(self.temperature) or self.temperature < 0:
            return f"temperature must be 0 or more, not {self.temperature}"
        if self.ctx_size is not None and self.ctx_size < 0:
            return f"context size must be 0 (the model's) or more, not {self.ctx_size}"
        return None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_json(self) -> dict[str, Any]:
        """Settings without the prompt text (which can be a whole document)."""
        data = dataclasses.asdict(self)
        data.pop("prompt")
        data["extra_args"] = list(self.extra_args)
        data["prompt_chars"] = len(self.prompt)
        return {key: value for key, value in data.items() if value is not None}


def long_document(approx_words: int, *, question: str = "Summarise the log above in one sentence.") -> str:
    """A deterministic long prompt for long-context races: numbered, varied log lines."""
    subjects = ("the pump", "valve seven", "the north fan", "sensor B", "the backup link",
                "rack twelve", "the cooler", "line four")
    verbs = ("reported", "recovered from", "logged", "cleared", "raised", "ignored")
    things = ("a pressure spike", "a slow reply", "a checksum error", "a warm start",
              "a power dip", "a retry storm", "a stale reading")
    lines = []
    words = 0
    index = 0
    while words < approx_words:
        line = (f"Entry {index}: {subjects[index % len(subjects)]} "
                f"{verbs[(index * 5) % len(verbs)]} {things[(index * 3) % len(things)]} "
                f"at step {index * 17 % 1000}.")
        lines.append(line)
        words += len(line.split())
        index += 1
    return "\n".join(lines) + "\n\n" + question + "\n"


# --------------------------------------------------------------------------- builds


@dataclass(frozen=True)
class RaceBuild:
    """A build as the race sees it: a name, its folder, and environment it needs."""

    name: str
    folder: Path
    env: Mapping[str, str] = field(default_factory=dict)
    completion: Path | None = None  # the tool, when already known


def as_race_build(build: Any) -> RaceBuild:
    """Accept a RaceBuild, a ``(name, folder)`` pair or anything BuildInfo-shaped."""
    if isinstance(build, RaceBuild):
        return build
    if isinstance(build, tuple) and len(build) == 2:
        name, folder = build
        return RaceBuild(name=str(name), folder=Path(folder))
    completion = getattr(build, "completion", None)
    return RaceBuild(
        name=str(build.name),
        folder=Path(build.folder),
        env=dict(getattr(build, "env", None) or {}),
        completion=Path(completion) if completion else None,
    )


def find_completion_tool(folder: Path) -> Path | None:
    """The build's completion tool file: ``llama-completion``, else ``llama-cli``.

    In versions before ``llama-completion`` existed, ``llama-cli`` was the plain
    completion tool; newer ``llama-cli`` is a chat front end, which ``tool_flags`` tells
    apart (it has no ``-no-cnv``).
    """
    for name in COMPLETION_TOOLS:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


_FLAG_RE = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


async def _run_quiet(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> tuple[int | None, str]:
    """Run a short tool call; stdout and stderr together, None as exit code on time-out."""
    process = await procs.spawn(argv, env=env)
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        await procs.stop(process)
        return None, ""
    finally:
        if process.returncode is None:
            await procs.stop(process)
    return process.returncode, (out + err).decode("utf-8", "replace")


@dataclass(frozen=True)
class ToolFlags:
    """What this version's completion tool accepts, read from its ``--help``."""

    flags: frozenset[str]
    flash_attn_takes_value: bool  # `-fa on|off|auto` (newer) or a bare `-fa` (older)

    def has(self, *names: str) -> bool:
        return any(name in self.flags for name in names)


async def tool_flags(tool: Path, env: Mapping[str, str], timeout: float = HELP_TIMEOUT_S) -> ToolFlags | str:
    """The tool's flags, or one line saying why it cannot race."""
    try:
        code, text = await _run_quiet([str(tool), "--help"], env, timeout)
    except OSError as error:
        return f"{tool.name} cannot start: {error.strerror or error}"
    if code is None:
        return f"{tool.name} --help did not answer within {timeout:g}s"
    flags = frozenset(_FLAG_RE.findall(text))
    if not flags & {"-m", "--model"}:
        return f"{tool.name} --help lists no -m/--model flag (exit code {code}): not a llama.cpp completion tool"
    if tool.name == "llama-cli" and not flags & {"-no-cnv", "--no-conversation"}:
        return "this build's llama-cli is the chat front end and it has no llama-completion"
    fa_line = next((line for line in text.splitlines() if "--flash-attn" in line), "")
    return ToolFlags(flags=flags, flash_attn_takes_value="on|off" in fa_line)


def completion_argv(tool: Path, flags: ToolFlags, model: Path, spec: RaceSpec, prompt_file: Path) -> list[str]:
    """The argument list for one non-interactive completion of ``spec`` on ``tool``."""
    argv = [str(tool), "-m", str(model), "-f", str(prompt_file),
            "-n", str(spec.n_predict), "--temp", f"{spec.temperature:g}", "-s", str(spec.seed)]
    if flags.has("-no-cnv"):
        argv.append("-no-cnv")
    if flags.has("--no-display-prompt"):
        argv.append("--no-display-prompt")
    if flags.has("--no-escape"):
        argv.append("--no-escape")  # the prompt is literal text, backslashes included
    if spec.flash_attn is not None:
        if flags.flash_attn_takes_value:
            argv += ["-fa", "on" if spec.flash_attn else "off"]
        elif spec.flash_attn:
            argv.append("-fa")
    if spec.type_k:
        argv += ["-ctk", spec.type_k]
    if spec.type_v:
        argv += ["-ctv", spec.type_v]
    if spec.n_gpu_layers is not None:
        argv += ["-ngl", str(spec.n_gpu_layers)]
    if spec.n_cpu_moe is not None:
        argv += ["-ncmoe", str(spec.n_cpu_moe)]
    if spec.ctx_size is not None:
        argv += ["-c", str(spec.ctx_size)]
    if spec.threads is not None:
        argv += ["-t", str(spec.threads)]
    argv += list(spec.extra_args)
    return argv


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class RaceStarted:
    builds: tuple[str, ...]
    model: str
    spec: RaceSpec
    sequential: bool


@dataclass(frozen=True)
class BuildStarted:
    build: str
    argv: tuple[str, ...]
    pid: int  # leader of the tool's own process group (for telemetry and clean-up)
    attempt: int = 1


@dataclass(frozen=True)
class BuildRetrying:
    """The last attempt's output was cut short; the build runs again from the start.

    A reader drops what it showed for this build: the next BuildStarted begins afresh.
    """

    build: str
    attempt: int
    reason: str


@dataclass(frozen=True)
class TokenReceived:
    """A piece of generated text as it arrived.

    ``index`` counts pieces; a piece is one token when the reader keeps up with the tool,
    several when the tool outruns it. ``at`` is seconds since this build's process started.
    """

    build: str
    text: str
    index: int
    at: float


@dataclass(frozen=True)
class FirstToken:
    build: str
    seconds: float  # from process start: model load, warm-up and prompt included


@dataclass(frozen=True)
class TimedPiece:
    at: float
    text: str


@dataclass(frozen=True)
class BuildFinished:
    """A finished completion with the tool's own timings (None where it printed none)."""

    build: str
    text: str
    ttft: float | None
    wall_s: float
    prompt_tps: float | None
    gen_tps: float | None
    n_prompt: int | None
    n_gen: int | None
    prompt_ms: float | None
    gen_ms: float | None
    load_ms: float | None
    stopped_at_eos: bool
    pieces: tuple[TimedPiece, ...] = ()
    complete: bool = True  # False: the tool's timing lines never came, the text may be short
    attempts: int = 1

    @property
    def replay_tps(self) -> float | None:
        """Tokens per second seen by the reader from the first token to the last."""
        if not self.pieces or not self.n_gen or len(self.pieces) < 2:
            return None
        span = self.pieces[-1].at - self.pieces[0].at
        return self.n_gen / span if span > 0 else None


@dataclass(frozen=True)
class BuildFailed:
    build: str
    reason: str
    exit_code: int | None = None
    signal: str | None = None
    timed_out: bool = False
    stderr_tail: str = ""
    text: str = ""  # what it had written before it failed


@dataclass(frozen=True)
class Divergence:
    """``build``'s text differs from ``reference_build``'s from ``char_offset`` on.

    ``piece_index`` is the streamed piece of ``build`` holding that character, so a screen
    can mark it in the replay. ``unexpected`` is True when both ran greedy with the same
    seed: then a different text is a warning about the build, not sampling noise.
    """

    build: str
    reference_build: str
    char_offset: int
    piece_index: int | None
    reference_excerpt: str
    build_excerpt: str
    unexpected: bool

    @property
    def message(self) -> str:
        kind = "warning: greedy output differs" if self.unexpected else "output differs (sampling)"
        return (f"{kind}: {self.build} vs {self.reference_build} from character {self.char_offset}: "
                f"{self.build_excerpt!r} vs {self.reference_excerpt!r}")


@dataclass(frozen=True)
class RaceFinished:
    finished: tuple[BuildFinished, ...]
    failed: tuple[BuildFailed, ...]
    divergences: tuple[Divergence, ...]
    reference: str | None
    order: tuple[str, ...] = ()  # the builds in race order

    @property
    def results(self) -> dict[str, BuildFinished | BuildFailed]:
        """Each build's outcome, in race order."""
        found: dict[str, BuildFinished | BuildFailed] = {r.build: r for r in self.finished}
        found.update({r.build: r for r in self.failed})
        return {name: found[name] for name in (*self.order, *found) if name in found}


RaceEvent = (RaceStarted | BuildStarted | BuildRetrying | TokenReceived | FirstToken | BuildFinished
             | BuildFailed | Divergence | RaceFinished)
RACE_EVENT_TYPES: tuple[type, ...] = (RaceStarted, BuildStarted, BuildRetrying, TokenReceived,
                                      FirstToken, BuildFinished, BuildFailed, Divergence, RaceFinished)


# -------------------------------------------------------------------------- parsing

_NUMBER = r"([0-9.]+|inf|nan)"
_PROMPT_RE = re.compile(
    r"prompt eval time\s*=\s*" + _NUMBER + r"\s*ms\s*/\s*(\d+)\s*tokens?.*?" + _NUMBER + r"\s*tokens per second")
_EVAL_RE = re.compile(
    r"(?<!prompt )eval time\s*=\s*" + _NUMBER + r"\s*ms\s*/\s*(\d+)\s*(?:runs|tokens?).*?" + _NUMBER + r"\s*tokens per second")
_LOAD_RE = re.compile(r"load time\s*=\s*" + _NUMBER + r"\s*ms")
_TOO_LONG_RE = re.compile(r"prompt is too long \((\d+) tokens, max (\d+)\)")
_ERROR_RE = re.compile(r"(^\d+\.\d+\.\d+\.\d+ E |error|failed|unable|invalid|unknown argument|not found"
                       r"|cannot|too long)", re.IGNORECASE)


@dataclass(frozen=True)
class ToolTimings:
    prompt_ms: float | None = None
    n_prompt: int | None = None
    prompt_tps: float | None = None
    gen_ms: float | None = None
    n_gen: int | None = None
    gen_tps: float | None = None
    load_ms: float | None = None


def _number(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def parse_timings(lines: Iterable[str]) -> ToolTimings:
    """The tool's timing print: the last ``load``/``prompt eval``/``eval`` lines win.

    Both the newer ``common_perf_print:`` and older ``llama_perf_context_print:`` /
    ``llama_print_timings:`` prefixes carry the same text after the colon.
    """
    found: dict[str, Any] = {}
    for line in lines:
        if match := _PROMPT_RE.search(line):
            found.update(prompt_ms=_number(match[1]), n_prompt=int(match[2]), prompt_tps=_number(match[3]))
        elif match := _EVAL_RE.search(line):
            found.update(gen_ms=_number(match[1]), n_gen=int(match[2]), gen_tps=_number(match[3]))
        elif match := _LOAD_RE.search(line):
            found.update(load_ms=_number(match[1]))
    return ToolTimings(**found)


def _strip_log_prefix(line: str) -> str:
    # "0.00.227.576 E llama_completion: ..." -> "llama_completion: ..."
    return re.sub(r"^\d+\.\d+\.\d+\.\d+ [IWEDC] ", "", line).strip()


def failure_reason(stderr_lines: Sequence[str], returncode: int | None, tool: str) -> str:
    """One line for a failed run: the tool's own error where it gave one."""
    exit_text, _ = procs.describe_exit(returncode)
    for line in stderr_lines:
        if match := _TOO_LONG_RE.search(line):
            return (f"the prompt is {match[1]} tokens, longer than the context allows ({match[2]}): "
                    "raise the context size (-c) or shorten the prompt")
    errors = [_strip_log_prefix(line) for line in stderr_lines if _ERROR_RE.search(line)]
    if errors:
        # The first error usually names the cause; later ones repeat it from higher up.
        detail = next((e for e in errors if "error loading model" in e), errors[0])
        return f"{tool} {exit_text}: {detail}"
    return f"{tool} {exit_text} without an error message"


def first_difference(reference: str, other: str) -> int | None:
    """Offset of the first differing character, or None when the texts are equal."""
    if reference == other:
        return None
    for offset, (a, b) in enumerate(zip(reference, other)):
        if a != b:
            return offset
    return min(len(reference), len(other))


def _piece_at(pieces: Sequence[TimedPiece], offset: int) -> int | None:
    position = 0
    for index, piece in enumerate(pieces):
        position += len(piece.text)
        if offset < position:
            return index
    return len(pieces) - 1 if pieces else None


def compare_outputs(reference: BuildFinished, other: BuildFinished, *, unexpected: bool,
                    excerpt: int = 24) -> Divergence | None:
    offset = first_difference(reference.text, other.text)
    if offset is None:
        return None
    cut_short = not (reference.complete and other.complete)
    if cut_short and offset == min(len(reference.text), len(other.text)):
        return None  # one text stops early because its tool's output was cut, not a difference
    return Divergence(
        build=other.build,
        reference_build=reference.build,
        char_offset=offset,
        piece_index=_piece_at(other.pieces, offset),
        reference_excerpt=reference.text[offset:offset + excerpt],
        build_excerpt=other.text[offset:offset + excerpt],
        unexpected=unexpected,
    )


# ---------------------------------------------------------------------- one build


class _TailHolder:
    """Holds back text that may be the tool's trailer, so pieces carry only the completion."""

    _MARKERS = (_END_OF_TEXT + _TRAILER, _TRAILER)

    def __init__(self) -> None:
        self.pending = ""

    def feed(self, text: str) -> str:
        self.pending += text
        keep = 0
        for marker in self._MARKERS:
            for size in range(min(len(marker), len(self.pending)), keep, -1):
                if self.pending.endswith(marker[:size]):
                    keep = size
                    break
        ready = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(ready):]
        return ready

    def finish(self) -> tuple[str, bool]:
        """The rest of the completion at end of output, and whether the model stopped itself."""
        rest = self.pending
        self.pending = ""
        if rest.endswith(_TRAILER):
            rest = rest[: -len(_TRAILER)]
        if rest.endswith(_END_OF_TEXT):
            return rest[: -len(_END_OF_TEXT)], True
        return rest, False


def output_was_cut(result: BuildFinished | BuildFailed, stderr_lines: Sequence[str]) -> bool:
    """Whether the tool exited before its log writer printed everything.

    llama.cpp's tools print through a background log thread that is not flushed at exit;
    on a busy machine a quick run can exit with its text, timings or error message unprinted.
    The timing lines come last, so a clean exit without them lost output (text included,
    since a single thread prints both in order); a plain non-zero exit without any error
    line lost its message.
    """
    if isinstance(result, BuildFinished):
        return result.n_gen is None
    if result.timed_out or result.signal:
        return False
    return not any(_ERROR_RE.search(line) for line in stderr_lines)


async def _race_one(build: RaceBuild, model: Path, spec: RaceSpec, prompt_file: Path,
                    timeout: float, attempts: int, emit, running: set) -> BuildFinished | BuildFailed:
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


async def _attempt(name: str, tool: Path, argv: list[str], env: Mapping[str, str], timeout: float,
                   attempt: int, emit, running: set) -> tuple[BuildFinished | BuildFailed, list[str]]:
    started = time.monotonic()
    try:
        process = await procs.spawn(argv, env=env)
    except OSError as error:
        return BuildFailed(name, f"{tool.name} cannot start: {error.strerror or error}"), []
    running.add(process)
    await emit(BuildStarted(name, tuple(argv), process.pid, attempt))
    stderr_lines: deque[str] = deque(maxlen=400)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    holder = _TailHolder()
    pieces: list[TimedPiece] = []
    first_at: float | None = None

    async def read_stderr() -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))

    async def take(text: str, at: float) -> None:
        nonlocal first_at
        if not text:
            return
        if first_at is None:
            first_at = at
            await emit(FirstToken(name, at))
        pieces.append(TimedPiece(at, text))
        await emit(TokenReceived(name, text, len(pieces) - 1, at))

    stderr_task = asyncio.create_task(read_stderr())
    timed_out = False
    try:
        try:
            async with asyncio.timeout(timeout):
                assert process.stdout is not None
                while chunk := await process.stdout.read(65536):
                    at = time.monotonic() - started
                    await take(holder.feed(decoder.decode(chunk)), at)
                await stderr_task
                await process.wait()
        except TimeoutError:
            timed_out = True
            await procs.stop(process)
    finally:
        if process.returncode is None:
            procs.kill_group(process)
        stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stderr_task
        if process.returncode is None:
            await procs.stop(process)
        running.discard(process)
    wall = time.monotonic() - started

    await take(holder.feed(decoder.decode(b"", final=True)), wall)
    rest, stopped_at_eos = holder.finish()
    await take(rest, wall)
    text = "".join(piece.text for piece in pieces)
    lines = list(stderr_lines)
    tail = "\n".join(lines[-STDERR_TAIL_LINES:])
    returncode = process.returncode
    _, signal_name = procs.describe_exit(returncode)
    if timed_out:
        return BuildFailed(name, f"{tool.name} did not finish within {timeout:g}s and was killed",
                           exit_code=None, signal="SIGKILL", timed_out=True, stderr_tail=tail,
                           text=text), lines
    if returncode != 0:
        return BuildFailed(name, failure_reason(lines, returncode, tool.name),
                           exit_code=returncode if returncode and returncode > 0 else None,
                           signal=signal_name, stderr_tail=tail, text=text), lines
    timings = parse_timings(lines)
    return BuildFinished(
        build=name, text=text, ttft=first_at, wall_s=wall,
        prompt_tps=timings.prompt_tps, gen_tps=timings.gen_tps,
        n_prompt=timings.n_prompt, n_gen=timings.n_gen,
        prompt_ms=timings.prompt_ms, gen_ms=timings.gen_ms, load_ms=timings.load_ms,
        stopped_at_eos=stopped_at_eos, pieces=tuple(pieces),
    ), lines


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


async def run_race(builds: Sequence[Any], model: Path | str, spec: RaceSpec, *,
                   sequential: bool = True, timeout: float = DEFAULT_TIMEOUT_S,
                   attempts: int = DEFAULT_ATTEMPTS,
                   overrides: Mapping[str, Mapping[str, Any]] | None = None,
                   ) -> AsyncIterator[RaceEvent]:
    """Race ``spec`` through every build; yields events as they happen.

    ``builds`` are BuildInfo objects, RaceBuilds or ``(name, folder)`` pairs.
    ``overrides`` changes spec fields for one build (``{"b": {"seed": 7}}``).
    ``timeout`` bounds each build's run; a build that fails or hangs is reported and the
    others go on. A run whose output the tool cut short at exit runs again, up to
    ``attempts`` runs in all. Raises RaceError before starting when the input cannot run.
    """
    race_builds = [as_race_build(build) for build in builds]
    if not race_builds:
        raise RaceError("no builds to race: give at least one")
    names = [build.name for build in race_builds]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RaceError(f"build names must differ: {', '.join(duplicates)} given twice")
    if problem := spec.problem():
        raise RaceError(problem)
    if attempts < 1 or timeout <= 0:
        raise RaceError("attempts must be at least 1 and the time-out positive")
    model = Path(model)
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

    queue: asyncio.Queue = asyncio.Queue()
    running: set = set()
    referee = _Referee(names, specs)
    done_marker = object()

    with tempfile.TemporaryDirectory(prefix="llamaduel-race-") as scratch:
        prompt_file = Path(scratch) / "prompt.txt"
        prompt_file.write_text(spec.prompt, encoding="utf-8")

        async def one(build: RaceBuild) -> None:
            try:
                result = await _race_one(build, model, specs[build.name], prompt_file,
                                         timeout, attempts, queue.put, running)
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
                await queue.put(done_marker)

        yield RaceStarted(tuple(names), str(model), spec, sequential)
        producer = asyncio.create_task(produce())
        try:
            while (event := await queue.get()) is not done_marker:
                yield event
                if isinstance(event, (BuildFinished, BuildFailed)):
                    for divergence in referee.record(event):
                        yield divergence
            await producer
        finally:
            if not producer.done():
                producer.cancel()
            for process in list(running):
                procs.kill_group(process)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer
            for process in list(running):
                with contextlib.suppress(Exception):
                    await procs.stop(process)
        outcomes = list(referee.results.values())
        yield RaceFinished(tuple(r for r in outcomes if isinstance(r, BuildFinished)),
                           tuple(r for r in outcomes if isinstance(r, BuildFailed)),
                           tuple(referee.divergences), referee.reference, tuple(referee.results))


async def collect_race(builds: Sequence[Any], model: Path | str, spec: RaceSpec, **options: Any) -> list[RaceEvent]:
    """Every event of a race, in order (for scripts and tests)."""
    events: list[RaceEvent] = []
    async with contextlib.aclosing(run_race(builds, model, spec, **options)) as stream:
        async for event in stream:
            events.append(event)
    return events


# ------------------------------------------------------------------------- summary


def printable(text: str) -> str:
    """Generated text made safe for a terminal: control characters escaped, lines kept."""
    return text_printable(text, multiline=True)


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def race_summary(events: Iterable[RaceEvent], builds: Iterable[Any] = ()) -> dict[str, Any]:
    """A race as plain data for a profile (TOML-friendly: no None values, string keys).

    ``builds`` (BuildInfo objects) add each build's backend and version to its entry.
    """
    started: RaceStarted | None = None
    finished: RaceFinished | None = None
    results: dict[str, BuildFinished | BuildFailed] = {}
    divergences: list[Divergence] = []
    for event in events:
        if isinstance(event, RaceStarted):
            started = event
        elif isinstance(event, (BuildFinished, BuildFailed)):
            results[event.build] = event
        elif isinstance(event, Divergence):
            divergences.append(event)
        elif isinstance(event, RaceFinished):
            finished = event
    summary: dict[str, Any] = {"kind": "completion-race"}
    if started is not None:
        summary.update(model=started.model, sequential=started.sequential,
                       settings=started.spec.to_json())
    if finished is not None and finished.reference:
        summary["reference"] = finished.reference
    info_by_name = {getattr(b, "name", None): b for b in builds}
    by_build: dict[str, dict[str, Any]] = {}
    for name, result in results.items():
        if isinstance(result, BuildFinished):
            entry = {
                "status": "finished", "ttft_s": _rounded(result.ttft), "wall_s": _rounded(result.wall_s),
                "prompt_tps": _rounded(result.prompt_tps, 2), "gen_tps": _rounded(result.gen_tps, 2),
                "n_prompt": result.n_prompt, "n_gen": result.n_gen,
                "load_ms": _rounded(result.load_ms, 2), "stopped_at_eos": result.stopped_at_eos,
                "chars": len(result.text),
                "attempts": result.attempts if result.attempts > 1 else None,
                "complete": None if result.complete else False,
            }
        else:
            entry = {"status": "timed-out" if result.timed_out else "failed", "reason": result.reason,
                     "exit_code": result.exit_code, "signal": result.signal}
        info = info_by_name.get(name)
        if info is not None:
            entry.update(backend=getattr(info, "backend", None) or None,
                         version=getattr(info, "version", None) or None)
        by_build[name] = {key: value for key, value in entry.items() if value is not None}
    summary["builds"] = by_build
    summary["divergences"] = [
        {key: value for key, value in {
            "build": d.build, "reference": d.reference_build, "char_offset": d.char_offset,
            "piece_index": d.piece_index, "unexpected": d.unexpected,
            "build_excerpt": d.build_excerpt, "reference_excerpt": d.reference_excerpt,
        }.items() if value is not None}
        for d in divergences
    ]
    return summary

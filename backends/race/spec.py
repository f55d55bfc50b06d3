"""What a race is: the prompt and settings, the builds, and each tool's argument list."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from backends.journal.race import RaceSpec
from backends.tool import run_tool

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


class BuildShaped(Protocol):
    """What a race needs of a probed build (``backends.builds.BuildInfo`` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def folder(self) -> Path: ...


# A build to race: a RaceBuild, a ``(name, folder)`` pair or anything BuildInfo-shaped.
RaceBuildLike = RaceBuild | tuple[str, str | Path] | BuildShaped


def as_race_build(build: RaceBuildLike) -> RaceBuild:
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
    out, err, finished = await run_tool(argv, env=env, timeout=timeout)
    return (None if finished.timed_out else finished.returncode), out + err


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



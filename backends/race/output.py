"""Reading a completion tool's output: its timing lines, its errors, the generated text."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from backends import procs
from backends.journal.race import BuildFailed, BuildFinished, Divergence, TimedPiece
from backends.race.spec import _END_OF_TEXT, _TRAILER

# -------------------------------------------------------------------------- parsing

_NUMBER = r"([0-9.]+|inf|nan)"
_PROMPT_RE = re.compile(
    r"prompt eval time\s*=\s*" + _NUMBER + r"\s*ms\s*/\s*(\d+)\s*tokens?.*?" + _NUMBER + r"\s*tokens per second")
_EVAL_RE = re.compile(
    r"(?<!prompt )eval time\s*=\s*" + _NUMBER + r"\s*ms\s*/\s*(\d+)\s*(?:runs|tokens?).*?" + _NUMBER + r"\s*tokens per second")  # noqa: E501 (one pattern)
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
    found = ToolTimings()
    for line in lines:
        if match := _PROMPT_RE.search(line):
            found = replace(found, prompt_ms=_number(match[1]), n_prompt=int(match[2]), prompt_tps=_number(match[3]))
        elif match := _EVAL_RE.search(line):
            found = replace(found, gen_ms=_number(match[1]), n_gen=int(match[2]), gen_tps=_number(match[3]))
        elif match := _LOAD_RE.search(line):
            found = replace(found, load_ms=_number(match[1]))
    return found


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



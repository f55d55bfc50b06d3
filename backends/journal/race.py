"""What a race was asked (``RaceSpec``) and what it yields: frozen events, journalled like a
sweep's (``backends.journal.journal``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

# --------------------------------------------------------------------------- events


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

    def to_json(self) -> dict[str, object]:
        """Settings without the prompt text (which can be a whole document)."""
        data = dataclasses.asdict(self)
        data.pop("prompt")
        data["extra_args"] = list(self.extra_args)
        data["prompt_chars"] = len(self.prompt)
        return {key: value for key, value in data.items() if value is not None}


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



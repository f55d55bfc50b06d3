"""What a soak journals: frozen dataclasses with JSON-friendly fields only.

``at_s`` is the soak's own clock: seconds of soaking since it first started, carried on
across a resume, so hours are counted the same after a hang-up. Requests are not
journalled one by one: each build's figures of a window (``SoakWindow``) are, and every
event worth counting (a crash, a hang, an HTTP error, a probe, a wrong answer) is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SoakBuild:
    """A soaked build as the journal keeps it, so a resume can start its server again."""

    name: str
    folder: str
    env: dict[str, str] = field(default_factory=dict)
    backend: str = "unknown"


@dataclass(frozen=True)
class SoakStarted:
    builds: tuple[SoakBuild, ...]
    model: str
    reference: str
    settings: dict[str, Any]
    journal: str | None = None
    resumed: bool = False
    at_s: float = 0.0
    wall: float = 0.0  # time.time() when this part of the soak began


@dataclass(frozen=True)
class ProbeReference:
    """The answer every later answer to probe ``probe`` is compared with.

    ``top`` holds, per generated position, the reference's top token ids and their log
    probabilities (same order)."""

    probe: int
    depth: int
    prompt: str
    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...]
    answer: str
    top_ids: tuple[tuple[int, ...], ...]
    top_logprobs: tuple[tuple[float, ...], ...]
    build: str
    at_s: float = 0.0


@dataclass(frozen=True)
class SoakServerUp:
    build: str
    pid: int
    port: int
    load_s: float
    restart: bool  # started again after a crash or a hang
    at_s: float = 0.0


@dataclass(frozen=True)
class SoakStartFailed:
    build: str
    reason: str
    at_s: float = 0.0


@dataclass(frozen=True)
class SoakCrashed:
    """The server exited while it served: ``reason`` ends with its log's last error line."""

    build: str
    reason: str
    exit_code: int | None = None
    signal: str | None = None
    log_tail: tuple[str, ...] = ()
    at_s: float = 0.0


@dataclass(frozen=True)
class SoakHang:
    """No token for the hang limit: the server was killed and started again."""

    build: str
    reason: str
    what: str  # "request" or "probe"
    at_s: float = 0.0


@dataclass(frozen=True)
class SoakHttpError:
    build: str
    reason: str
    at_s: float = 0.0


@dataclass(frozen=True)
class SoakProbe:
    """One probe answer compared with the reference (``ok`` within the thresholds)."""

    build: str
    probe: int
    depth: int
    mean_kld: float | None
    top1: float | None
    tokens: int
    ok: bool
    at_s: float = 0.0


@dataclass(frozen=True)
class SoakWrongAnswer:
    """A probe answer beyond the thresholds: the prompt, the depth and both answers kept."""

    build: str
    probe: int
    depth: int
    prompt: str
    answer: str
    reference_answer: str
    reference_build: str
    reason: str
    mean_kld: float | None = None
    top1: float | None = None
    at_s: float = 0.0


@dataclass(frozen=True)
class SoakWindow:
    """One build's figures over one window of the soak."""

    build: str
    seconds: float
    requests: int
    errors: int
    tokens: int
    gen_s: float  # seconds the answers' decoding took, summed over requests
    rss_bytes: int | None = None  # the server's resident memory at the window's end
    vram_bytes: int | None = None
    at_s: float = 0.0

    @property
    def gen_tps(self) -> float | None:
        return self.tokens / self.gen_s if self.gen_s > 0 and self.tokens else None


@dataclass(frozen=True)
class SoakFinished:
    cancelled: bool = False
    problem: str | None = None
    at_s: float = 0.0


SoakEvent = (SoakStarted | ProbeReference | SoakServerUp | SoakStartFailed | SoakCrashed | SoakHang
             | SoakHttpError | SoakProbe | SoakWrongAnswer | SoakWindow | SoakFinished)
SOAK_EVENT_TYPES: tuple[type, ...] = (
    SoakStarted, ProbeReference, SoakServerUp, SoakStartFailed, SoakCrashed, SoakHang,
    SoakHttpError, SoakProbe, SoakWrongAnswer, SoakWindow, SoakFinished)
# Fsynced as they come: what a power cut must not take.
SOAK_DURABLE: tuple[type, ...] = (SoakStarted, ProbeReference, SoakCrashed, SoakHang,
                                  SoakWrongAnswer, SoakWindow, SoakFinished)

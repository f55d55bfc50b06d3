"""What the tune phase records: the candidates, every probe, each round, the choice and why.

The tune phase (``backends.tune``) runs before a sweep's first point, in the same journal:
a resumed run rebuilds the search from these events, and the profile keeps the choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from backends.journal.sweep import BenchResult, TestPoint

if TYPE_CHECKING:
    from backends.journal.journal import RunEvent

Phase = Literal["search", "defaults"]  # the halving, or the defaults at the middle depth
FREE_SETTINGS = {"ub": "ubatch (-ub, with -b = max(-b, -ub))", "fa": "flash attention (-fa)",
                 "kv": "KV cache types (-ctk/-ctv)", "ncmoe": "MoE experts on the CPU (-ncmoe)",
                 "ngl": "layers on the GPU (-ngl)", "threads": "threads on CPU builds (-t)"}
DEFAULT_FREE = ("ub",)
DEFAULT_BUDGET_S = 300.0


@dataclass(frozen=True)
class TuneSpec:
    """What the tune phase may spend and change."""

    budget_s: float = DEFAULT_BUDGET_S  # shared by all contenders, in equal parts
    free: tuple[str, ...] = DEFAULT_FREE

    def validate(self) -> None:
        if not self.budget_s > 0:
            raise ValueError(f"the tune budget must be positive, got {self.budget_s:g} s")
        unknown = [f for f in self.free if f not in FREE_SETTINGS]
        if unknown or not self.free:
            raise ValueError(f"--tune-free: {', '.join(unknown) or 'nothing'} is not one of "
                             f"{', '.join(FREE_SETTINGS)}")


@dataclass(frozen=True)
class Candidate:
    """llama-bench settings the tune may choose; None leaves the sweep's own setting."""

    ubatch: int | None = None
    batch: int | None = None
    flash_attn: bool | None = None
    type_k: str | None = None
    type_v: str | None = None
    n_cpu_moe: int | None = None
    n_gpu_layers: int | None = None
    threads: int | None = None
    fit_target: int | None = None  # MiB per device: llama.cpp's own fit (-fitt) chooses

    def args(self) -> tuple[str, ...]:
        """The llama-bench arguments, in a fixed order."""
        argv: list[str] = []
        pairs = (("-ub", self.ubatch), ("-b", self.batch), ("-ctk", self.type_k),
                 ("-ctv", self.type_v), ("-ncmoe", self.n_cpu_moe), ("-ngl", self.n_gpu_layers),
                 ("-t", self.threads), ("-fitt", self.fit_target))
        if self.flash_attn is not None:
            argv += ["-fa", "1" if self.flash_attn else "0"]
        for flag, value in pairs:
            if value is not None:
                argv += [flag, str(value)]
        return tuple(argv)

    @property
    def label(self) -> str:
        """``ub=2048 b=2048 fa=1``: short enough for a panel, stable as a journal key."""
        parts = [f"ub={self.ubatch}" if self.ubatch is not None else "",
                 f"b={self.batch}" if self.batch is not None else "",
                 "" if self.flash_attn is None else f"fa={int(self.flash_attn)}",
                 _kv_label(self.type_k, self.type_v),
                 f"ncmoe={self.n_cpu_moe}" if self.n_cpu_moe is not None else "",
                 f"ngl={self.n_gpu_layers}" if self.n_gpu_layers is not None else "",
                 f"t={self.threads}" if self.threads is not None else "",
                 f"fitt={self.fit_target}" if self.fit_target is not None else ""]
        return " ".join(p for p in parts if p) or "defaults"


def _kv_label(type_k: str | None, type_v: str | None) -> str:
    if type_k is None and type_v is None:
        return ""
    return f"kv={type_k}" if type_k == type_v else f"kv={type_k}/{type_v}"


@dataclass(frozen=True)
class SkippedCandidate:
    candidate: Candidate
    reason: str


@dataclass(frozen=True)
class TuneStarted:
    """The tune phase begins: the budget, what is free, the probe and each contender's share."""

    builds: tuple[str, ...]
    budget_s: float
    free: tuple[str, ...]
    points: tuple[TestPoint, ...]
    shares_s: dict[str, float] = field(default_factory=dict)
    at: float = 0.0


@dataclass(frozen=True)
class TuneGrid:
    """One contender's candidates (the defaults first) and those that cannot fit."""

    build: str
    default: Candidate
    candidates: tuple[Candidate, ...]
    skipped: tuple[SkippedCandidate, ...] = ()
    fit: Candidate | None = None  # llama.cpp's own fit (-fitt), the baseline to beat
    notes: tuple[str, ...] = ()
    at: float = 0.0


@dataclass(frozen=True)
class TuneRound:
    """A round of the halving begins for one contender: who is still in and why."""

    build: str
    round: int
    survivors: tuple[Candidate, ...]
    repetitions: int
    reason: str
    at: float = 0.0


@dataclass(frozen=True)
class ProbeMeasured:
    """One probe point's result for one candidate."""

    build: str
    candidate: Candidate
    result: BenchResult
    round: int = 0
    phase: Phase = "search"
    throttled: bool = False
    process: int = -1  # which of the contender's probe processes (candidates in one are paired)
    at: float = 0.0


@dataclass(frozen=True)
class ProbeFailed:
    """A probe point without a result. ``budget`` True: cut because the budget ran out
    (the candidate keeps what it had); otherwise the candidate failed and is out."""

    build: str
    candidate: Candidate
    point: TestPoint
    reason: str
    round: int = 0
    phase: Phase = "search"
    budget: bool = False
    at: float = 0.0


@dataclass(frozen=True)
class ProbeFinished:
    """A probe process ended; its time counts against the contender's share."""

    build: str
    candidate: Candidate
    seconds: float
    repetitions: int
    round: int = 0
    phase: Phase = "search"
    load_s: float | None = None  # this candidate's share of the process's start and load
    shared: int = 1  # how many candidates ran in the process, one after the other
    at: float = 0.0


@dataclass(frozen=True)
class TuneChosen:
    """The settings a contender runs the duel with, and why."""

    build: str
    best: Candidate | None  # None: nothing could be measured; the contender runs its defaults
    default: Candidate
    reason: str
    scores: dict[str, float] = field(default_factory=dict)  # label -> sum of log t/s
    fit: Candidate | None = None
    probes: int = 0
    seconds: float = 0.0
    at: float = 0.0

    @property
    def chosen(self) -> Candidate:
        return self.best or self.default

    @property
    def changed(self) -> bool:
        return self.chosen != self.default


@dataclass(frozen=True)
class TuneFinished:
    seconds: float
    budget_s: float
    cancelled: bool = False
    at: float = 0.0


@dataclass(frozen=True)
class TuneShareMoved:
    """A contender whose search ended early gave what was left of its share to the others."""

    build: str
    given: dict[str, float]  # seconds per contender that got some
    at: float = 0.0


TuneEvent = (TuneStarted | TuneGrid | TuneRound | ProbeMeasured | ProbeFailed | ProbeFinished
             | TuneShareMoved | TuneChosen | TuneFinished)
TUNE_EVENT_TYPES: tuple[type, ...] = (TuneStarted, TuneGrid, TuneRound, ProbeMeasured, ProbeFailed,
                                      ProbeFinished, TuneShareMoved, TuneChosen, TuneFinished)
DURABLE_TUNE_TYPES: tuple[type, ...] = (TuneStarted, TuneGrid, ProbeMeasured, ProbeFailed,
                                        ProbeFinished, TuneChosen, TuneFinished)


def tune_from_history(history: Sequence[RunEvent]) -> TuneSpec | None:
    """The tune options of an interrupted run that was tuned (from its TuneStarted)."""
    start = next((e for e in history if isinstance(e, TuneStarted)), None)
    return None if start is None else TuneSpec(budget_s=start.budget_s, free=start.free)

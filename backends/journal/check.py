"""What a correctness check records: each build's result against the reference, and the
check's events (journalled like every run's, see ``backends.journal.journal``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from backends.journal import codec

Status = Literal["reference", "pass", "suspect", "failed"]
STATUSES: tuple[str, ...] = ("reference", "pass", "suspect", "failed")


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

    def to_json(self) -> dict[str, object]:
        """Plain keys and values for TOML and JSON; None values are dropped (TOML has no null)."""
        return {key: value for key, value in codec.to_builtins(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> CorrectnessResult:
        return codec.from_builtins(data, cls)

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

"""The shape of a recommendation: frozen dataclasses the store saves as TOML."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CLASS_LABELS = {
    "short_dense": "dense, short context",
    "long_dense": "dense, long context",
    "moe": "MoE",
    "split": "split GPU/CPU",
}
CONTEXT_WORDS = {"short": "short context", "long": "long context"}
PHASE_LABELS = {"pp": "prompt processing", "tg": "generation", "pg": "prompt+generation"}
PHASE_ORDER = ("pp", "tg", "pg")
PG_POLICY = "pg (-pg pp+tg) rows are judged as their own phase, never mixed into pp or tg"
STABILITY_RULE = (
    "A contender that failed in a class (crash, hang, out of memory, time-out, no result) is "
    "not recommended there while one that ran is: the fastest that ran is, with a caveat naming "
    "the faster one. Suspect or failed output in the correctness check disqualifies everywhere."
)


def class_label(workload: str, context: str) -> str:
    if workload in ("short_dense", "long_dense"):
        return CLASS_LABELS[workload]
    return f"{CLASS_LABELS.get(workload, workload)}, {CONTEXT_WORDS.get(context, context)}"


# One llama-bench setting's value as a file states it (n_ubatch=512, flash_attn=True, devices="ROCm0").
Setting = str | int | float | bool


@dataclass(frozen=True)
class Contender:
    """A build and the settings that set it apart from the build's other configurations."""

    label: str
    build: str
    backend: str
    settings: Mapping[str, str] = field(default_factory=dict)
    known_settings: Mapping[str, Any] = field(default_factory=dict)  # Setting values (toml_form reads no unions)


@dataclass(frozen=True)
class CellComparison:
    """The leader (challenger) against one other contender (baseline) at one test point."""

    model: str
    test: str
    context: int
    baseline_ts: float
    challenger_ts: float
    ratio: float
    p_value: float | None
    q_value: float | None = None
    separated: bool = False
    significant: int = 0  # +1 the leader's lead is significant here, -1 the other's, 0 neither
    reps: str = ""


@dataclass(frozen=True)
class PairComparison:
    leader: str
    other: str
    ratio: float
    margin_pct: float
    p_value: float | None  # class level, after the false-discovery correction
    cells: tuple[CellComparison, ...]
    significant_for: int
    significant_against: int
    separated_for: int = 0
    one_run: bool = False
    reps_above: int = 0  # the leader's repetitions above every repetition of the other
    reps_total: int = 0
    bounded_for: int = 0  # points the leader wins on printed means and spreads alone (no samples)


@dataclass(frozen=True)
class Outlier:
    contender: str
    model: str
    test: str
    value: float
    siblings: tuple[float, ...]

    @property
    def sentence(self) -> str:
        beside = " and ".join(f"{v:,.1f}" if v < 100 else f"{v:,.0f}" for v in self.siblings[:3])
        return (f"one starved repetition set aside: {self.contender} {self.value:,.1f} t/s at "
                f"{self.test} beside {beside}")


@dataclass(frozen=True)
class Crossover:
    """The lead changes sides along the context axis, significantly on both sides."""

    model: str
    phase: str
    workload: str
    low: int
    high: int
    at: float
    leader_before: str
    leader_after: str
    sentence: str
    axis: str = "context"
    at_depth: float | None = None
    significant: bool = True
    tested: bool = True


@dataclass(frozen=True)
class SettingsComparison:
    """Two backends at one set of settings ("same": like with like), or each at its fastest
    measured settings ("best"). ``settings`` are the ones that differ between the class's
    contenders: the shared values for "same", the leader's for "best" (``other_settings``
    the other's)."""

    kind: str  # 'same' | 'best'
    settings: Mapping[str, str]
    leader: str
    other: str
    leader_backend: str
    other_backend: str
    status: str  # as ClassVerdict.status
    confidence: str
    ratio: float
    other_settings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Energy:
    """Per contender per class: '-' (None) wherever the telemetry did not say."""

    contender: str
    tokens_per_joule: float | None = None
    peak_vram_bytes: int | None = None
    throttled: bool | None = None
    # Over the counted repetitions only: their spread (sample stdev), how it was measured,
    # the idle power beside it, and why there is no figure ("too short to measure").
    tokens_per_joule_sd: float | None = None
    method: str | None = None
    idle_power_w: float | None = None
    note: str | None = None

    @property
    def text(self) -> str:
        """``11.6 ± 0.3 tok/J``, ``too short to measure`` or ``-``."""
        if self.tokens_per_joule is None or not math.isfinite(self.tokens_per_joule):
            return "too short to measure" if self.note else "-"
        spread = (f" ± {self.tokens_per_joule_sd:.2f}" if self.tokens_per_joule_sd is not None
                  and math.isfinite(self.tokens_per_joule_sd) else "")
        return f"{self.tokens_per_joule:.2f}{spread} tok/J"


@dataclass(frozen=True)
class ClassVerdict:
    workload: str
    phase: str
    status: str  # 'winner' | 'lead' | 'tie' | 'no clear winner' | 'only one ran' | 'single contender' | 'by model'
    winner: str | None
    recommended: str | None
    margin_pct: float | None
    p_value: float | None
    confidence: str
    typical_ts: Mapping[str, float]
    comparisons: tuple[PairComparison, ...]
    crossovers: tuple[Crossover, ...]
    caveats: tuple[str, ...]
    summary: str
    tied: tuple[str, ...] = ()
    best_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # Setting values, as above
    context: str = "short"
    runner_up: str | None = None
    ratio: float | None = None
    headline: str = ""
    outliers: tuple[Outlier, ...] = ()
    failures: tuple[str, ...] = ()
    energy: tuple[Energy, ...] = ()
    points: int = 0
    gpus: int = 1  # the most devices one contender in this class split the model across
    split_kind: str = "GPUs"  # "devices" when some are not GPUs (an RPC server)
    model: str = ""  # set on a class's per-model verdicts when it measured several models
    models: tuple[str, ...] = ()  # on the class's own verdict above them: the models it spans
    unpaired: tuple[str, ...] = ()  # points one side of the verdict's pair measured alone
    settings_comparisons: tuple[SettingsComparison, ...] = ()  # best against best, like with like

    @property
    def label(self) -> str:
        split = f", split across {self.gpus} {self.split_kind}" if self.gpus > 1 else ""
        on = f" on {self.model}" if self.model else ""
        return f"{class_label(self.workload, self.context)}{split} — {PHASE_LABELS[self.phase]}{on}"


@dataclass(frozen=True)
class BuildStability:
    build: str
    results: int
    failures: int
    timeouts: int
    crashes: int
    correctness: str | None
    stable: bool
    note: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recommendation:
    builds: tuple[str, ...]
    verdicts: tuple[ClassVerdict, ...]
    stability: tuple[BuildStability, ...]
    crossovers: tuple[Crossover, ...]
    summary: tuple[str, ...]
    choose: tuple[str, ...]
    rule: str = STABILITY_RULE
    pg_policy: str = PG_POLICY
    long_context_tokens: int = 16384
    contenders: tuple[Contender, ...] = ()
    outliers: tuple[Outlier, ...] = ()
    machine: str = ""
    tie_pct: float = 3.0
    # "vulkan: built for Vulkan but found no Vulkan device; it ran on the CPU" per build
    # (``profiles.fallback``); also the first summary lines.
    fallbacks: tuple[str, ...] = ()

    def verdict(self, workload: str, phase: str, context: str | None = None,
                model: str | None = None) -> ClassVerdict | None:
        """A class's verdict; with ``model``, that model's (the class's own when it measured one)."""
        found = [v for v in self.verdicts
                 if v.workload == workload and v.phase == phase and (context is None or v.context == context)]
        if model is not None:
            mine = next((v for v in found if v.model == model), None)
            if mine is not None:
                return mine
        return next((v for v in found if not v.model), None)

    def contender(self, name: str) -> Contender | None:
        """A contender by label, or the first contender of a build by the build's name."""
        by_label = next((c for c in self.contenders if c.label == name), None)
        return by_label or next((c for c in self.contenders if c.build == name), None)

    def recommended_build(self, workload: str, context: str | None = None) -> str | None:
        """The contender for a workload: generation's pick (what a chat user waits on), else
        prompt processing's, else pg's; the short-context class first unless asked."""
        for wanted in ((context,) if context else ("short", "long")):
            picks = {v.phase: v.recommended for v in self.verdicts
                     if v.workload == workload and v.context == wanted and not v.model}
            pick = picks.get("tg") or picks.get("pp") or picks.get("pg")
            if pick:
                return pick
        return None

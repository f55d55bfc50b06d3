"""Profiles saved by earlier versions: fields added since, derived from what the file holds.

A field this version always writes that an older file lacks takes its default, or where it
has none (a ratio, a crossover's sentence) is derived here from the fields beside it. The
file itself is never rewritten on read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from backends.json_types import JsonValue
from profiles.outcome import PHASE_LABELS, CellComparison, ClassVerdict, Crossover, PairComparison
from profiles.wording import between_text

if TYPE_CHECKING:
    from profiles.model import Profile

# A field derived from the table an older version saved; None where it cannot be.
Derive = Callable[[Mapping[str, JsonValue]], float | str | None]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _speed_ratio(data: Mapping[str, JsonValue]) -> float | None:
    """A cell's ratio: the leader's speed over the other's."""
    a, b = _number(data.get("challenger_ts")), _number(data.get("baseline_ts"))
    return a / b if a is not None and b else None


def _pair_ratio(data: Mapping[str, JsonValue]) -> float | None:
    """The margin is the ratio less one, in per cent (``profiles.judge``)."""
    margin = _number(data.get("margin_pct"))
    return 1.0 + margin / 100.0 if margin is not None else None


def _verdict_ratio(data: Mapping[str, JsonValue]) -> float | None:
    margin = _number(data.get("margin_pct"))
    return 1.0 + margin / 100.0 if margin is not None and data.get("status") in ("winner", "lead") else None


def _verdict_context(data: Mapping[str, JsonValue]) -> str:
    return "long" if data.get("workload") == "long_dense" else "short"


def _crossover_sentence(data: Mapping[str, JsonValue]) -> str | None:
    phase, low, high = data.get("phase"), data.get("low"), data.get("high")
    if phase not in PHASE_LABELS or not isinstance(low, int) or not isinstance(high, int):
        return None
    untested = "" if data.get("tested", True) else " (one run: not tested)"
    return (f"{PHASE_LABELS[str(phase)].capitalize()} on {data.get('model', '')}: the lead passes from "
            f"{data.get('leader_before', '')} to {data.get('leader_after', '')} {between_text(low, high)}{untested}.")


DERIVED: Mapping[type, Mapping[str, Derive]] = {
    CellComparison: {"ratio": _speed_ratio},
    PairComparison: {"ratio": _pair_ratio},
    ClassVerdict: {"ratio": _verdict_ratio, "context": _verdict_context},
    # Older crossovers did not record their workload: unknown, not guessed.
    Crossover: {"workload": lambda data: "", "sentence": _crossover_sentence},
}


def derived_fields(cls: type, data: Mapping[str, JsonValue]) -> dict[str, float | str]:
    """The fields of ``cls`` that ``data`` lacks and that can be derived from what it has."""
    out: dict[str, float | str] = {}
    for name, derive in DERIVED.get(cls, {}).items():
        if name not in data:
            value = derive(data)
            if value is not None:
                out[name] = value
    return out


def older_verdict_lines(profile: Profile) -> list[str]:
    """Under a verdict an older version saved: what this version makes of the same results."""
    rec = profile.recommendation
    if rec is None or not any(p.startswith("recommendation") for p in profile.lacking):
        return []
    head = "This verdict was saved by an older llamaduel"
    if not profile.results:
        return [f"{head}; it has no saved results to judge again."]
    from profiles.verdict import VerdictSettings, recommend_run

    now = recommend_run(profile.records(rec.machine),
                        VerdictSettings(long_context_tokens=rec.long_context_tokens, tie_pct=rec.tie_pct))
    count = f"{len(profile.results)} saved results"
    if (now.summary, now.choose) == (rec.summary, rec.choose):
        return [f"{head}; this version reaches the same verdict from its {count}."]
    return [f"{head}. From its {count} this version says:", *(f"- {line}" for line in (*now.summary, *now.choose))]

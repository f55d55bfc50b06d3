"""Best against best, and like with like, where contenders differ in settings.

Settings often decide more than the backend. Where the contenders of two backends ran with
different settings (KV types, ubatch, flash attention, fit target, ``-ncmoe``...), a class
says both: each backend at its fastest measured settings (the verdict's own pair), and the
two backends at the same settings wherever both measured them ("like with like"), and
when the two disagree ("ROCm wins at ub=2048, Vulkan at ub=512 (the default)"). Where no
setting was measured on both sides it says so. A setting absent from a file is
llama-bench's default for that column (``profiles.contenders.default_value``).

The comparisons are ``SettingsComparison`` values, so another pair of settings (a build at
its tuned best against its defaults) can be said the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from profiles.contenders import LLAMA_BENCH_DEFAULTS, Measure, PointKey, default_value, setting_label, value_text
from profiles.outcome import Contender, SettingsComparison
from profiles.wording import margin_text

# Which device a contender ran on names its backend; it is not a setting to match.
_NOT_SETTINGS = frozenset({"devices"})


@dataclass(frozen=True)
class LikePair:
    """Two contenders of two backends at the same settings, the faster first."""

    a: str
    b: str
    settings: Mapping[str, str]


def setting_values(c: Contender) -> dict[str, str]:
    out = {k: value_text(k, v) for k, v in c.known_settings.items()}
    out.update({k: str(v) for k, v in c.settings.items()})
    return out


def differing_keys(contenders: Sequence[Contender]) -> tuple[str, ...]:
    values = [setting_values(c) for c in contenders]
    keys = set().union(*values) - _NOT_SETTINGS if values else set()
    return tuple(k for k in sorted(keys) if len({v.get(k, default_value(k)) for v in values}) > 1)


def _signature(c: Contender, keys: Sequence[str]) -> tuple[str, ...]:
    values = setting_values(c)
    return tuple(values.get(k, default_value(k)) for k in keys)


def _faster(a: Mapping[PointKey, Measure], b: Mapping[PointKey, Measure]) -> bool:
    shared = [k for k in a if k in b and a[k].mean > 0 and b[k].mean > 0]
    return not shared or math.fsum(math.log(a[k].mean / b[k].mean) for k in shared) >= 0


def like_pairs(leader: str, opponents: Sequence[str], ranked: Sequence[str],
               contenders: Mapping[str, Contender],
               grouped: Mapping[str, Mapping[PointKey, Measure]]) -> list[LikePair]:
    """Per opponent of another backend: the best contender of each side at every set of
    settings both sides measured, where the two backends' contenders differ in settings."""
    out: list[LikePair] = []
    mine = contenders.get(leader)
    for other in opponents:
        theirs = contenders.get(other)
        if mine is None or theirs is None or mine.backend == theirs.backend:
            continue
        members = [contenders[n] for n in ranked if n in contenders
                   and contenders[n].backend in (mine.backend, theirs.backend)]
        keys = differing_keys(members)
        if not keys:
            continue
        first: dict[tuple[str, tuple[str, ...]], str] = {}
        for c in members:
            first.setdefault((c.backend, _signature(c, keys)), c.label)
        for (backend, signature), name in first.items():
            partner = first.get((theirs.backend, signature)) if backend == mine.backend else None
            if partner is None or not any(k in grouped[partner] for k in grouped[name]):
                continue
            a, b = (name, partner) if _faster(grouped[name], grouped[partner]) else (partner, name)
            out.append(LikePair(a, b, dict(zip(keys, signature))))
    return out


def settings_text(settings: Mapping[str, str]) -> str:
    """``ub=512 (the default) fa on``: llama-bench's defaults named as such."""
    parts = []
    for key, value in settings.items():
        text = setting_label(key, value)
        parts.append(f"{text} (the default)" if LLAMA_BENCH_DEFAULTS.get(key) == value else text)
    return " ".join(parts) or "the same settings"


def _named(label: str, settings: Mapping[str, str]) -> str:
    """A contender with its settings, unless its label already names them."""
    if all(setting_label(k, v) in label.split(" ") or setting_label(k, v) in label for k, v in settings.items()):
        return label + (" (the default)" if all(LLAMA_BENCH_DEFAULTS.get(k) == v for k, v in settings.items()) else "")
    return f"{label} with {settings_text(settings)}"


def _outcome(c: SettingsComparison) -> str:
    if c.status in ("winner", "lead"):
        return f"{c.leader_backend} {margin_text(c.ratio)} ({c.confidence})"
    return "a tie" if c.status == "tie" else "no clear winner"


def settings_lines(comparisons: Sequence[SettingsComparison]) -> list[str]:
    """What a class adds where its contenders differ in settings."""
    best = next((c for c in comparisons if c.kind == "best"), None)
    same = [c for c in comparisons if c.kind == "same"]
    differ = best is not None and best.settings != best.other_settings
    if not same:
        if best is None or not differ:
            return []
        return [f"settings differ: {_named(best.leader, best.settings)}, {_named(best.other, best.other_settings)}; "
                "nothing was measured at the same settings on both sides"]
    lines = []
    if best is not None and differ:
        lines.append(f"each at its fastest measured settings: {_named(best.leader, best.settings)}, "
                     f"{_named(best.other, best.other_settings)}")
    lines.append("like with like: " + "; ".join(f"at {settings_text(c.settings)} {_outcome(c)}" for c in same))
    wins = [c for c in (*([best] if best is not None and differ else []), *same) if c.status in ("winner", "lead")]
    places: dict[str, list[str]] = {}
    for c in wins:
        places.setdefault(c.leader_backend, []).append(
            f"at {settings_text(c.settings)}" if c.kind == "same" else "at its best")
    if len(places) > 1:
        said = [f"{backend} {'wins ' if i == 0 else ''}{' and '.join(dict.fromkeys(where))}"
                for i, (backend, where) in enumerate(places.items())]
        lines.append("they disagree: " + ", ".join(said))
    return lines


def comparisons(leader: str, other: str, best_status: str, best_confidence: str, best_ratio: float,
                like: Sequence[tuple[LikePair, str, str, float]],
                contenders: Mapping[str, Contender]) -> tuple[SettingsComparison, ...]:
    """The class's settings comparisons: its own pair ("best") and each like-with-like pair
    (with its status, confidence and ratio), where the contenders differ in settings."""
    mine, theirs = contenders.get(leader), contenders.get(other)
    if mine is None or theirs is None or mine.backend == theirs.backend:
        return ()
    keys = tuple(dict.fromkeys([*differing_keys([mine, theirs]), *(k for p, *_ in like for k in p.settings)]))
    if not keys:
        return ()
    best = SettingsComparison(
        kind="best", settings=dict(zip(keys, _signature(mine, keys))), leader=leader, other=other,
        leader_backend=mine.backend, other_backend=theirs.backend, status=best_status,
        confidence=best_confidence, ratio=best_ratio, other_settings=dict(zip(keys, _signature(theirs, keys))))
    same = [SettingsComparison(kind="same", settings=dict(p.settings), leader=p.a, other=p.b,
                               leader_backend=contenders[p.a].backend, other_backend=contenders[p.b].backend,
                               status=status, confidence=confidence, ratio=ratio)
            for p, status, confidence, ratio in like]
    return (best, *same)

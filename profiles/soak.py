"""A soak's figures beside the speed verdict: who crashed, hung or answered wrong, and for
how long it was watched; with ``require_stable``, such a build loses the recommendation.

Pure functions over the profile's recommendation and the soak summary kept with it
(``backends.soak.SoakSummary.to_json()``, a plain mapping).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from backends.json_types import JsonValue, items_of, table_of
from profiles.model import Profile
from profiles.outcome import ClassVerdict, Recommendation
from profiles.verdict_text import choose_lines
from profiles.wording import plural

REQUIRE_STABLE_RULE = ("--require-stable: a build that crashed, hung or gave a wrong answer "
                       "in the soak is not recommended for serving while a stable one ran.")
_TIMES = {1: "once", 2: "twice"}


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 60:.3g} min"


def _times(count: int) -> str:
    return _TIMES.get(count, f"{count} times")


def _whole(value: JsonValue) -> int:
    return int(value) if isinstance(value, (int, float)) else 0


def trouble(build: Mapping[str, JsonValue], soaked_s: float) -> str | None:
    """``crashed twice in 8 h (HIP error: ...) and gave 1 wrong answer in 960 probes``, or
    None for a build the soak found nothing wrong with."""
    crashes, hangs, wrong = (_whole(build.get(k)) for k in ("crashes", "hangs", "wrong"))
    if not (crashes or hangs or wrong):
        return None
    parts = []
    if crashes:
        reasons = items_of(build.get("crash_reasons"))
        why = f" ({reasons[0]})" if reasons else ""
        parts.append(f"crashed {_times(crashes)} in {_hours(soaked_s)}{why}")
    if hangs:
        parts.append(f"hung {_times(hangs)}" + ("" if crashes else f" in {_hours(soaked_s)}"))
    if wrong:
        parts.append(f"gave {plural(wrong, 'wrong answer')} in {_whole(build.get('probes'))} probes")
    return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]


def _soaked_s(soak: Mapping[str, JsonValue]) -> float:
    seconds = soak.get("soaked_s")
    return float(seconds) if isinstance(seconds, (int, float)) else 0.0


def _builds(soak: Mapping[str, JsonValue]) -> list[Mapping[str, JsonValue]]:
    return [table_of(b) for b in items_of(soak.get("builds"))]


def troubles(soak: Mapping[str, JsonValue]) -> dict[str, str | None]:
    """Every soaked build's trouble in words (None: none)."""
    soaked = _soaked_s(soak)
    return {str(b.get("build")): trouble(b, soaked) for b in _builds(soak)}


def stability_sentence(soak: Mapping[str, JsonValue]) -> str:
    """``Soak, 8 h against cpu: rocm crashed twice ...; vulkan: none.``"""
    found = troubles(soak)
    bad = [f"{name} {words}" for name, words in found.items() if words]
    calm = [name for name, words in found.items() if not words]
    text = "; ".join(bad + ([f"{', '.join(calm)}: none"] if calm else []))
    return (f"Soak, {_hours(_soaked_s(soak))} of serving, answers checked "
            f"against {soak.get('reference')}: {text}.")


def _build_of(rec: Recommendation, contender: str | None) -> str | None:
    if contender is None:
        return None
    info = rec.contender(contender)
    return info.build if info is not None else contender


def _with_soak(verdict: ClassVerdict, rec: Recommendation, found: Mapping[str, str | None],
               require_stable: bool) -> ClassVerdict:
    winner = _build_of(rec, verdict.recommended)
    words = found.get(winner or "")
    if not words:
        return verdict
    others = [name for name in found if name != winner and name in {
        _build_of(rec, c) for c in verdict.typical_ts}]
    tail = "; ".join(f"{o}: {found[o] or 'none'}" for o in others)
    summary = f"{verdict.summary.rstrip('.')}, but {winner} {words}" + (f"; {tail}" if tail else "") + "."
    if not require_stable:
        return dataclasses.replace(verdict, summary=summary)
    stable = sorted(((ts, c) for c, ts in verdict.typical_ts.items()
                     if not found.get(_build_of(rec, c) or "")), reverse=True)
    if not stable:
        caveat = f"every contender had trouble in the soak; {winner} stays recommended: {words}"
        return dataclasses.replace(verdict, summary=summary, caveats=(*verdict.caveats, caveat))
    chosen = stable[0][1]
    caveat = (f"{verdict.recommended} is faster but lost the recommendation under --require-stable: "
              f"it {words}; {chosen} is recommended instead")
    return dataclasses.replace(verdict, recommended=chosen, summary=summary,
                               caveats=(*verdict.caveats, caveat))


def with_stability(rec: Recommendation, soak: Mapping[str, JsonValue], *,
                   require_stable: bool = False) -> Recommendation:
    """The recommendation with the soak's figures said beside the speed, and with
    ``require_stable`` a build with crashes, hangs or wrong answers losing its picks."""
    found = troubles(soak)
    verdicts = tuple(_with_soak(v, rec, found, require_stable) for v in rec.verdicts)
    summary = (*tuple(v.summary for v in verdicts), stability_sentence(soak))
    rule = rec.rule + (" " + REQUIRE_STABLE_RULE if require_stable else "")
    return dataclasses.replace(rec, verdicts=verdicts, summary=summary,
                               choose=tuple(choose_lines(verdicts)), rule=rule)


def with_soak(profile: Profile, soak: Mapping[str, JsonValue], *, require_stable: bool = False) -> Profile:
    """The profile with the soak's figures kept and its recommendation saying them."""
    kept = {**soak, "require_stable": require_stable}
    rec = profile.recommendation
    if rec is not None:
        base = profile_base(profile)
        rec = with_stability(base, kept, require_stable=require_stable)
    return dataclasses.replace(profile, soak=kept, recommendation=rec)


def profile_base(profile: Profile) -> Recommendation:
    """The recommendation before any soak was applied to it (recomputed from the records)."""
    from profiles.verdict import recommend_run

    assert profile.recommendation is not None
    return recommend_run(profile.records(profile.recommendation.machine))


def soak_lines(soak: Mapping[str, JsonValue] | None) -> Sequence[str]:
    """What ``profiles show`` prints about the soak."""
    if not soak:
        return ()
    lines = [stability_sentence(soak)]
    for build in _builds(soak):
        for example in map(table_of, items_of(build.get("wrong_examples"))[:1]):
            lines.append(f"  {build.get('build')} answered {str(example.get('answer'))[:70]!r} "
                         f"where {example.get('reference_build')} answered "
                         f"{str(example.get('reference_answer'))[:70]!r} (probe "
                         f"{example.get('probe')}, depth {example.get('depth')})")
    if soak.get("require_stable"):
        lines.append("  " + REQUIRE_STABLE_RULE)
    return lines

"""A class verdict from its comparisons, and the sentences that say it."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TypedDict

from profiles.contenders import Field, Measure, PointKey, settings_of
from profiles.judge import Call, PairResult, call, headline, repetitions_text
from profiles.outcome import (
    PHASE_LABELS,
    BuildStability,
    ClassVerdict,
    Crossover,
    Energy,
    Outlier,
    PairComparison,
    Setting,
    class_label,
)
from profiles.settings_pairs import LikePair, comparisons, settings_lines
from profiles.stability import PlacedFailure, energy, failure_lines
from profiles.wording import between_text, margin_text, plural

ClassKey = tuple[str, str, str]


class _Base(TypedDict):
    """What every verdict of a class states, whatever its outcome."""

    workload: str
    phase: str
    context: str
    best_settings: Mapping[str, Mapping[str, Setting]]
    model: str
    energy: tuple[Energy, ...]
    failures: tuple[str, ...]
    points: int


def _typical(grouped: Mapping[str, Mapping[PointKey, Measure]], leader: str | None,
             runner_up: str | None = None) -> dict[str, float]:
    """Each contender's geometric-mean speed over the points the verdict pairs it on: the
    leader and the runner-up over the points both measured (the margin's own), every other
    contender over the points it shares with the leader."""
    out = {}
    for name, ms in grouped.items():
        partner = runner_up if name == leader and runner_up else leader
        keys = [k for k in ms if partner is None or k in grouped.get(partner, {})] or list(ms)
        logs = [math.log(ms[k].mean) for k in keys if ms[k].mean > 0]
        if logs:
            out[name] = math.exp(math.fsum(logs) / len(logs))
    return out


def unpaired(grouped: Mapping[str, Mapping[PointKey, Measure]], a: str, b: str) -> tuple[str, ...]:
    """Points one side of a pair measured alone, said apart: "only ROCm measured pp2048 @ d65536"."""
    out = []
    for mine, theirs in ((a, b), (b, a)):
        alone = sorted((k for k in grouped.get(mine, {}) if k not in grouped.get(theirs, {})),
                       key=lambda k: (k[1].depth, k[1].n_prompt, k[1].n_gen))
        if alone:
            names = [k[1].name for k in alone]
            shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            out.append(f"only {mine} measured {shown}")
    return tuple(out)


def _outliers(pairs: Sequence[PairResult]) -> tuple[Outlier, ...]:
    seen: dict[tuple[str, str, str, float], Outlier] = {}
    for r in pairs:
        for t in r.tests:
            for o in t.outliers:
                seen.setdefault((o.contender, o.model, o.test, o.value), o)
    return tuple(seen.values())


def _failed_here(placed: Sequence[PlacedFailure], grouped: Mapping[str, Mapping[PointKey, Measure]]) -> set[str]:
    """Contenders that failed a test another contender ran (a test nobody ran counts for no one)."""
    out = set()
    for p in placed:
        for name, ms in grouped.items():
            if name == p.contender:
                continue
            if any(_same_test(p, m) for m in ms.values()):
                out.add(p.contender)
                break
    return out


def _same_test(p: PlacedFailure, m: Measure) -> bool:
    record = p.record
    if record.model and record.model != m.model:
        return False
    if record.point is not None:
        return record.point == m.point
    return record.depth is None or record.depth == m.point.depth


def _pick(ranked: Sequence[str], leader: str, failed: set[str], stability: Mapping[str, BuildStability],
          caveats: list[str], margin: str) -> str:
    def ok(name: str) -> bool:
        s = stability.get(name)
        return name not in failed and not (s is not None and s.correctness in ("suspect", "failed"))
    if ok(leader):
        return leader
    better = next((n for n in ranked if ok(n)), None)
    why = "failed here" if leader in failed else "gave suspect output"
    if better is None:
        caveats.append(f"every contender here failed or gave suspect output; {leader} is fastest")
        return leader
    caveats.append(f"{leader} is faster ({margin}) but {why}; {better} recommended instead")
    return better


def class_verdict(key: ClassKey, grouped: Mapping[str, Mapping[PointKey, Measure]], ranked: Sequence[str],
                  pairs: Sequence[PairResult], class_q: Mapping[str, float],
                  placed: Sequence[PlacedFailure], crossovers: tuple[Crossover, ...],
                  stability: Mapping[str, BuildStability], field: Field, tie_pct: float,
                  alpha: float, model: str = "",
                  like: Sequence[tuple[LikePair, str, str, float]] = ()) -> ClassVerdict:
    """One class's verdict (one model's, with ``model``); ``class_q`` by opponent; ``like``:
    its like-with-like pairs' calls."""
    workload, context, phase = key
    label = f"{class_label(workload, context)} — {PHASE_LABELS[phase]}" + (f" on {model}" if model else "")
    failed = _failed_here(placed, grouped)
    fail_lines = tuple(failure_lines(placed))
    # The settings each contender ran with here (its most common values in this class and model).
    settings = {c.label: settings_of(grouped[c.label].values()) or dict(c.known_settings)
                for c in field.contenders if c.label in grouped}
    energies = tuple(energy(n, list(grouped[n].values())) for n in ranked)
    base: _Base = {"workload": workload, "phase": phase, "context": context, "best_settings": settings,
                   "model": model,
                   "energy": energies, "failures": fail_lines,
                   "points": len(set().union(*grouped.values())) if grouped else 0}
    if not pairs:
        return _alone(label, ranked, grouped, {p.contender for p in placed}, fail_lines, crossovers, base)
    closest = min(pairs, key=lambda r: r.comparison.ratio)
    calls = {r.comparison.other: call(r, class_q.get(r.comparison.other), tie_pct / 100, alpha) for r in pairs}
    verdict_call = calls[closest.comparison.other]
    c = closest.comparison
    leader = ranked[0]
    caveats: list[str] = []
    tied = tuple([leader] + [r.comparison.other for r in pairs if calls[r.comparison.other].status == "tie"]) \
        if verdict_call.status == "tie" else ()
    recommended = _recommend(verdict_call, leader, tied, ranked, failed, stability, caveats, c)
    summary = _summary(label, verdict_call, c, tied, pairs, calls, tie_pct, crossovers)
    contenders = {x.label: dataclasses.replace(x, known_settings=settings[x.label])
                  for x in field.contenders if x.label in settings}
    compared = comparisons(leader, c.other, verdict_call.status, verdict_call.confidence, c.ratio, like, contenders)
    lines = settings_lines(compared)
    if lines:
        summary = summary.rstrip(".") + "; " + "; ".join(lines) + "."
    alone = unpaired(grouped, leader, c.other)
    if alone:
        summary = summary.rstrip(".") + "; " + "; ".join(alone) + " (not in the margin)."
    if fail_lines:
        summary = summary.rstrip(".") + "; " + "; ".join(fail_lines) + "."
    outliers = _outliers(pairs)
    if verdict_call.status == "winner" and c.significant_against:
        points = plural(len(c.cells), "point")
        caveats.append(f"{c.other} is significantly ahead at {c.significant_against} of {points}")
    if outliers and verdict_call.status in ("winner", "lead"):
        summary = summary.rstrip(".") + "; " + "; ".join(o.sentence for o in outliers[:3]) + "."
    winner = leader if verdict_call.status in ("winner", "lead") else None
    return ClassVerdict(status=verdict_call.status, winner=winner, recommended=recommended,
                        margin_pct=c.margin_pct, p_value=class_q.get(c.other),
                        confidence=verdict_call.confidence, typical_ts=_typical(grouped, leader, c.other),
                        comparisons=tuple(r.comparison for r in pairs), crossovers=crossovers,
                        caveats=tuple(dict.fromkeys(caveats)), summary=summary, tied=tied,
                        runner_up=c.other, ratio=c.ratio, outliers=outliers, unpaired=alone,
                        settings_comparisons=compared,
                        headline=headline(verdict_call.status, verdict_call.confidence, winner, c, tied),
                        **base)


def _recommend(verdict_call: Call, leader: str, tied: Sequence[str], ranked: Sequence[str], failed: set[str],
               stability: Mapping[str, BuildStability], caveats: list[str], c: PairComparison) -> str | None:
    if verdict_call.status in ("winner", "lead"):
        if verdict_call.status == "lead":
            caveats.append("one run each: a point estimate, not tested")
        return _pick(ranked, leader, failed, stability, caveats, margin_text(c.ratio))
    if verdict_call.status == "tie":
        good = [n for n in tied if n not in failed and (stability.get(n) is None or stability[n].stable)]
        choice = (good or [n for n in tied if n not in failed] or list(tied))[0]
        if choice != leader:
            caveats.append(f"tie on speed; {choice} chosen for stability")
        return choice
    return None


def _alone(label: str, ranked: Sequence[str], grouped: Mapping[str, Mapping[PointKey, Measure]],
           failed: set[str], fail_lines: tuple[str, ...], crossovers: tuple[Crossover, ...],
           base: _Base) -> ClassVerdict:
    ran = ranked[0] if ranked else None
    others = sorted(failed - {ran} if ran else failed)
    if ran and others:
        why = "; ".join(line.split(": ", 1)[-1] for line in fail_lines if not line.startswith(ran))
        summary = f"{label}: {ran} ran and {', '.join(others)} failed, because {why}."
        status = "only one ran"
    elif ran:
        summary, status = f"{label}: only {ran} has results here; nothing to compare.", "single contender"
    else:
        summary = f"{label}: nothing ran: " + "; ".join(fail_lines) + "."
        status = "only one ran" if fail_lines else "single contender"
    return ClassVerdict(status=status, winner=None, recommended=ran if ran not in failed else None,
                        margin_pct=None, p_value=None, confidence="none", typical_ts=_typical(grouped, None),
                        comparisons=(), crossovers=crossovers, caveats=(), summary=summary,
                        headline=f"{ran} ran, {', '.join(others)} failed" if ran and others else status, **base)


def _no_winner_reason(c: PairComparison, conf: str, crossovers: Sequence[Crossover], tie_pct: float) -> str:
    """Why no one wins, in words that agree with the crossover list."""
    points = plural(len(c.cells), "point")
    if c.significant_for and c.significant_against:
        text = f"{c.leader} ahead at {c.significant_for} of {points}, {c.other} at {c.significant_against}"
        if any(x.tested for x in crossovers):
            return text + " (the lead changes: " + "; ".join(_where(x) for x in crossovers if x.tested) + ")"
        return text + " (at different tests, not along the context)"
    if c.significant_against:
        return (f"{c.other} significantly ahead at {c.significant_against} of {points}, "
                f"{c.leader} ahead on average ({margin_text(c.ratio)}) but nowhere significantly")
    if c.significant_for and c.ratio < 1.0 + tie_pct / 100.0:
        return (f"{c.leader} significantly ahead at {c.significant_for} of {points} but "
                f"{margin_text(c.ratio)} on average, inside the {tie_pct:g}% tie band")
    return f"{c.leader} ahead by {margin_text(c.ratio)}, not significant: low confidence"


def _where(x: Crossover) -> str:
    return f"{x.leader_before} to {x.leader_after} {between_text(x.low, x.high)}"


def _summary(label: str, verdict_call: Call, c: PairComparison, tied: Sequence[str], pairs: Sequence[PairResult],
             calls: Mapping[str, Call], tie_pct: float, crossovers: Sequence[Crossover] = ()) -> str:
    status, conf = verdict_call.status, verdict_call.confidence
    points = plural(len(c.cells), "point")
    if status == "winner" and conf == "decisive":
        reps = " " + repetitions_text(c) if repetitions_text(c) else ""
        text = f"{label}: {c.leader} is {margin_text(c.ratio)} faster than {c.other}{reps} (decisive)."
    elif status == "winner":
        text = f"{label}: {c.leader} is {margin_text(c.ratio)} faster than {c.other} ({conf} confidence, {points})."
    elif status == "lead":
        text = f"{label}: {c.leader} ahead of {c.other} by {margin_text(c.ratio)} (one run: no repetitions to test)."
    elif status == "tie":
        text = (f"{label}: tie between {', '.join(tied)} (within {abs(c.margin_pct):.1f}%, inside the "
                f"{tie_pct:g}% tie band" + (", one run)." if conf == "one run" else ")."))
    else:
        text = f"{label}: no clear winner: {_no_winner_reason(c, conf, crossovers, tie_pct)}."
    others = [r.comparison for r in pairs
              if r.comparison.other != c.other and calls[r.comparison.other].status == "winner"]
    if others and status == "winner":
        text = text.rstrip(".") + "; " + ", ".join(f"{margin_text(o.ratio)} over {o.other}" for o in others) + "."
    return text


def summary_lines(verdicts: Sequence[ClassVerdict], stability: Mapping[str, BuildStability],
                  crossovers: Sequence[Crossover]) -> list[str]:
    lines = [v.summary for v in verdicts]
    lines += list(dict.fromkeys(x.sentence for x in crossovers))
    lines += [f"Stability: {s.build} {s.note}." for s in stability.values() if not s.stable]
    for v in verdicts:
        lines += [f"Caveat ({v.label}): {caveat}." for caveat in v.caveats]
    return list(dict.fromkeys(lines))


def choose_lines(verdicts: Sequence[ClassVerdict]) -> list[str]:
    picks: dict[str, list[str]] = defaultdict(list)
    # A class's per-model picks are said only where the class as a whole names none.
    settled = {(v.workload, v.context, v.phase) for v in verdicts if not v.model and v.recommended}
    for v in verdicts:
        if not v.recommended or v.status not in ("winner", "lead", "only one ran", "tie"):
            continue
        if v.status == "tie" and len(v.tied) > 1 and not v.caveats:
            continue
        if v.model and (v.workload, v.context, v.phase) in settled:
            continue
        note = " (one run)" if v.confidence == "one run" else ""
        on = f" on {v.model}" if v.model else ""
        picks[v.recommended].append(f"{class_label(v.workload, v.context)} ({v.phase}){on}{note}")
    return [f"Choose {build} if you run: {'; '.join(items)}." for build, items in picks.items()]


_ = Energy

"""Tune events in words, one line each: for the command line and the app's Tune panel."""

from __future__ import annotations

from typing import Any

from backends.journal.tune import (
    ProbeFailed,
    ProbeFinished,
    ProbeMeasured,
    TuneChosen,
    TuneFinished,
    TuneGrid,
    TuneRound,
    TuneShareMoved,
    TuneStarted,
)


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def describe_tune(event: Any) -> str:
    """One line for a tune event, or '' for one not worth a line (a probe's end)."""
    if isinstance(event, TuneStarted):
        probe = ", ".join(p.name for p in event.points)
        share = ", ".join(f"{n} {s:.0f} s" for n, s in event.shares_s.items())
        return (f"tune: {', '.join(event.free)} free, probe {probe}, budget {event.budget_s:.0f} s "
                f"({share})")
    if isinstance(event, TuneGrid):
        skipped = "".join(f"\n{event.build:>12}  skipped {s.candidate.label}: {s.reason}"
                          for s in event.skipped)
        notes = "".join(f"\n{event.build:>12}  note: {n}" for n in event.notes)
        return (f"{event.build:>12}  tune: {len(event.candidates)} candidates, defaults "
                f"{event.default.label}{skipped}{notes}")
    if isinstance(event, TuneRound):
        return f"{event.build:>12}  tune {event.reason}"
    if isinstance(event, ProbeMeasured):
        r = event.result
        where = "defaults" if event.phase == "defaults" else f"round {event.round}"
        return (f"{event.build:>12}  {where} {event.candidate.label:<22} {r.point.name:<14} "
                f"{_rate(r.avg_ts)} t/s")
    if isinstance(event, ProbeFailed):
        where = "defaults" if event.phase == "defaults" else f"round {event.round}"
        return (f"{event.build:>12}  {where} {event.candidate.label:<22} {event.point.name:<14} "
                f"{'CUT' if event.budget else 'FAILED'}: {event.reason}")
    if isinstance(event, TuneShareMoved):
        given = ", ".join(f"{n} +{s:.0f} s" for n, s in event.given.items())
        return f"{event.build:>12}  tune done early: the rest of its share passed on ({given})"
    if isinstance(event, TuneChosen):
        return f"{event.build:>12}  tuned: {event.chosen.label} ({event.reason})"
    if isinstance(event, TuneFinished):
        return f"tune: done in {event.seconds:.0f} s of {event.budget_s:.0f} s"
    if isinstance(event, ProbeFinished):
        return ""
    return ""

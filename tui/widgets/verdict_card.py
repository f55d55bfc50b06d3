"""One workload class's verdict: winner, margin, confidence, crossovers, stability."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import Static

from tui.widgets._css import css_beside

PHASE_WORDS = {"pp": "prompt", "tg": "generation", "pg": "prompt+gen"}


class VerdictCard(Static):
    """The verdicts of one workload class (pp, tg and pg phases) and its builds' stability."""

    DEFAULT_CSS = css_beside(__file__)

    def __init__(self, title: str, verdicts: Sequence, stability: Sequence = (), **kwargs) -> None:
        super().__init__(describe_class(verdicts, stability), **kwargs)
        self.border_title = title
        statuses = {v.status for v in verdicts}
        self.set_class(statuses == {"winner"}, "-winner")
        self.set_class("no clear winner" in statuses, "-unclear")


def _margin(percent: float | None) -> str:
    """+12% for a lead, ×68 once it is more than double."""
    if percent is None:
        return ""
    if percent >= 100:
        return f" ×{1 + percent / 100:.1f}"
    return f" +{percent:.0f}%"


def describe_phase(verdict) -> str:
    phase = PHASE_WORDS.get(verdict.phase, verdict.phase)
    if verdict.status == "winner":
        margin = _margin(verdict.margin_pct)
        confidence = verdict.confidence if " " in verdict.confidence else f"{verdict.confidence} confidence"
        text = f"{phase}: {verdict.winner}{margin} ({confidence})"
    elif verdict.status == "tie":
        text = f"{phase}: tie ({', '.join(verdict.tied) or 'all builds'})"
    else:
        text = f"{phase}: {verdict.status}"
    if verdict.recommended and verdict.recommended != verdict.winner:
        text += f", use {verdict.recommended}"
    return text


def describe_class(verdicts: Sequence, stability: Sequence = ()) -> str:
    """Short lines a person reads at a glance."""
    lines = [describe_phase(v) for v in verdicts]
    for verdict in verdicts:
        for crossover in verdict.crossovers:
            lines.append(f"{PHASE_WORDS.get(verdict.phase, verdict.phase)} crossover at "
                         f"{crossover.axis} ≈{crossover.at:,.0f}: {crossover.leader_before} → "
                         f"{crossover.leader_after}")
    unstable = [s for s in stability if not s.stable]
    if stability:
        lines.append("stability: " + ("; ".join(f"{s.build} {s.note}" for s in unstable)
                                      if unstable else "every build ran clean"))
    caveats = dict.fromkeys(c for v in verdicts for c in v.caveats)
    lines += [f"! {caveat}" for caveat in caveats]
    return "\n".join(lines)

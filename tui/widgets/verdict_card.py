"""One workload class's verdict: winner, margin, confidence, crossovers, stability."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from textual.widgets import Static

from tui.widgets._css import css_beside

if TYPE_CHECKING:
    from profiles.outcome import BuildStability, ClassVerdict
    from profiles.tuning import Tuning

PHASE_WORDS = {"pp": "prompt", "tg": "generation", "pg": "prompt+gen"}


class VerdictCard(Static):
    """The verdicts of one workload class (pp, tg and pg phases) and its builds' stability."""

    DEFAULT_CSS = css_beside(__file__)

    def __init__(self, title: str, verdicts: Sequence[ClassVerdict], stability: Sequence[BuildStability] = (),
                 **kwargs: Any) -> None:
        super().__init__(describe_class(verdicts, stability), **kwargs)
        self.border_title = title
        statuses = {v.status for v in verdicts}
        self.set_class(statuses == {"winner"}, "-winner")
        self.set_class("no clear winner" in statuses, "-unclear")


def describe_phase(verdict: ClassVerdict) -> str:
    """The verdict's own headline (the same words the profile and the CLI print)."""
    phase = PHASE_WORDS.get(verdict.phase, verdict.phase)
    context = "" if verdict.workload.endswith("dense") else f" ({verdict.context})"
    text = f"{phase}{context}: {verdict.headline or verdict.status}"
    if verdict.recommended and verdict.recommended != verdict.winner:
        text += f", use {verdict.recommended}"
    energy = [e for e in verdict.energy if e.tokens_per_joule is not None or e.note
              or e.peak_vram_bytes is not None or e.throttled]
    if energy:
        from profiles.wording import bytes_text

        idle = next((e.idle_power_w for e in energy if e.idle_power_w is not None), None)
        text += "\n  " + "; ".join(f"{e.contender} {e.text}, "
                                   f"{bytes_text(e.peak_vram_bytes)}" + (", throttled" if e.throttled else "")
                                   for e in energy)
        if idle is not None:
            text += f" (idle {idle:.0f} W)"
    return text


def describe_class(verdicts: Sequence[ClassVerdict], stability: Sequence[BuildStability] = ()) -> str:
    """Short lines a person reads at a glance."""
    lines = [describe_phase(v) for v in verdicts]
    lines += list(dict.fromkeys(x.sentence for v in verdicts for x in v.crossovers))
    lines += list(dict.fromkeys(f for v in verdicts for f in v.failures))
    unstable = [s for s in stability if not s.stable]
    if stability:
        lines.append("stability: " + ("; ".join(f"{s.build} {s.note}" for s in unstable)
                                      if unstable else "every build ran clean"))
    caveats = dict.fromkeys(c for v in verdicts for c in v.caveats)
    lines += [f"! {caveat}" for caveat in caveats]
    return "\n".join(lines)


def describe_tuning(tuning: Tuning | None, differences: Sequence[str] = ()) -> str:
    """What tuning was worth per contender (best / default), the duel at each build's best and
    at the defaults, and what else differs between the contenders."""
    from profiles.confounds import confound_line
    from profiles.tuning import worth_text

    lines: list[str] = []
    if tuning is not None:
        lines += [worth_text(c) for c in tuning.contenders]
        lines += list(tuning.lines)
        lines.append(f"tune: {tuning.seconds:.0f} s of {tuning.budget_s:.0f} s, "
                     f"{', '.join(tuning.free)} free")
    if differences:
        lines.append(confound_line(differences))
    return "\n".join(lines)


class TuningCard(Static):
    """The tune's outcome beside the verdict cards (plain text: names are never markup)."""

    DEFAULT_CSS = css_beside(__file__)

    def __init__(self, tuning: Tuning | None, differences: Sequence[str] = (), **kwargs: Any) -> None:
        from rich.text import Text

        super().__init__(Text(describe_tuning(tuning, differences)), **kwargs)
        self.border_title = "tuning" if tuning is not None else "also differs"

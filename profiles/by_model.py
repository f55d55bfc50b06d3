"""One class over several models: a verdict per model, and a line that says how they agree.

Speeds of different models are never pooled: a build that wins on one model and loses on
another is neither "ahead at 2 of 4 points" nor "no clear winner"; each model has its own
verdict (``ClassVerdict.model``), and the class's line above them says "on both models" only
where they agree, and otherwise which model goes which way.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

from profiles.outcome import PHASE_LABELS, ClassVerdict, Setting, class_label
from profiles.wording import CONFIDENCE_WORDS, margin_text, plural

BY_MODEL = "by model"  # the status of a class whose models disagree


def _weakest(confidences: Sequence[str]) -> str:
    return max(confidences, key=lambda c: CONFIDENCE_WORDS.index(c) if c in CONFIDENCE_WORDS else 99)


def _all(n: int) -> str:
    return "both models" if n == 2 else f"all {n} models"


def _way(v: ClassVerdict) -> str:
    """One model's verdict in a few words: "ROCm +40% (decisive)", "a tie", "no clear winner"."""
    if v.status in ("winner", "lead") and v.winner:
        return f"{v.winner} {margin_text(v.ratio)} ({v.confidence})"
    if v.status == "tie":
        return "a tie"
    if v.status == "single contender":
        return f"only {v.recommended or 'one contender'} measured"
    if v.status == "only one ran":
        return f"only {v.recommended} ran" if v.recommended else "nothing ran"
    return "no clear winner"


def _span(wins: Sequence[ClassVerdict]) -> str:
    ratios = sorted(v.ratio or 1.0 for v in wins)
    low, high = margin_text(ratios[0]), margin_text(ratios[-1])
    return low if low == high else f"{low} to {high}"


def across_models(per_model: Sequence[ClassVerdict], failures: Sequence[str] = ()) -> ClassVerdict:
    """The class's own verdict from its per-model verdicts (two or more).

    One contender wins the class where it wins on some model and no model names another
    winner (the others tie, are unclear or were measured by one side only); every model tied
    is a tie; anything else depends on the model. ``failures``: the class's failure lines.
    """
    return _with_failures(_across(per_model), failures)


def _with_failures(v: ClassVerdict, failures: Sequence[str]) -> ClassVerdict:
    if not failures:
        return v
    summary = v.summary.rstrip(".") + "; " + "; ".join(failures) + "."
    return dataclasses.replace(v, summary=summary, failures=tuple(failures))


def _across(per_model: Sequence[ClassVerdict]) -> ClassVerdict:
    first = per_model[0]
    label = f"{class_label(first.workload, first.context)} — {PHASE_LABELS[first.phase]}"
    judged = [v for v in per_model if v.status not in ("single contender", "only one ran")]
    wins = [v for v in judged if v.status in ("winner", "lead")]
    winners = {v.winner for v in wins}
    ties = [v for v in judged if v.status == "tie"]
    ways = "; ".join(f"{_way(v)} on {v.model}" for v in per_model)
    if len(winners) == 1:
        (winner,) = winners
        closest = min(wins, key=lambda v: v.ratio or 1.0)
        confidence = _weakest([v.confidence for v in wins])
        margins = ", ".join(margin_text(v.ratio) for v in wins)
        where = _all(len(wins)) if len(wins) == len(per_model) else f"{len(wins)} of {len(per_model)} models"
        if len(wins) < len(per_model):
            summary = f"{label}: {winner} on {where}, no model the other way: {ways}."
        else:
            summary = f"{label}: {winner} on {where} ({margins}; {confidence})."
        recommended = {v.recommended for v in wins} | {v.recommended for v in ties if winner not in v.tied}
        common = next(iter(recommended)) if len(recommended) == 1 else None
        caveats = () if common is not None else ("the build to use differs by model: " + "; ".join(
            f"{v.recommended or 'none'} on {v.model}" for v in judged),)
        return _aggregate(per_model, status="lead" if any(v.status == "lead" for v in wins) else "winner",
                          winner=winner, recommended=common, confidence=confidence, ratio=closest.ratio,
                          summary=summary, headline=f"{winner} on {where} ({_span(wins)}, {confidence})",
                          caveats=caveats, runner_up=closest.runner_up)
    if judged and len(ties) == len(judged):
        tied = tuple(dict.fromkeys(n for v in judged for n in v.tied))
        recommended = {v.recommended for v in ties}
        summary = f"{label}: a tie on {_all(len(judged))} (" + ", ".join(
            f"within {abs(v.margin_pct or 0.0):.1f}%" for v in judged) + ")."
        return _aggregate(per_model, status="tie", winner=None,
                          recommended=next(iter(recommended)) if len(recommended) == 1 else None,
                          confidence="none", ratio=None, summary=summary,
                          headline=f"tie on {_all(len(judged))}", tied=tied)
    summary = f"{label}: it depends on the model: {ways}."
    counts = Counter(v.winner for v in wins)
    headline = ("by model: " + ", ".join(f"{w} on {plural(n, 'model')}" for w, n in counts.items())
                if counts else "no winner on any model")
    return _aggregate(per_model, status=BY_MODEL, winner=None, recommended=None, confidence="none", ratio=None,
                      summary=summary, headline=headline)


def _aggregate(per_model: Sequence[ClassVerdict], *, status: str, winner: str | None, recommended: str | None,
               confidence: str, ratio: float | None, summary: str, headline: str,
               caveats: tuple[str, ...] = (), tied: tuple[str, ...] = (),
               runner_up: str | None = None) -> ClassVerdict:
    first = per_model[0]
    compared = [v for v in per_model if v.comparisons]
    if compared and all(v.confidence == "one run" for v in compared):
        confidence = "one run"
    settings: dict[str, dict[str, Setting]] = {}
    for v in per_model:
        for name, values in v.best_settings.items():
            settings.setdefault(name, dict(values))
    return ClassVerdict(
        workload=first.workload, phase=first.phase, context=first.context, status=status, winner=winner,
        recommended=recommended, margin_pct=None if ratio is None else (ratio - 1.0) * 100.0, p_value=None,
        confidence=confidence, typical_ts={}, comparisons=(),
        crossovers=tuple(dict.fromkeys(x for v in per_model for x in v.crossovers)), caveats=caveats,
        summary=summary, tied=tied, best_settings=settings, runner_up=runner_up, ratio=ratio, headline=headline,
        points=sum(v.points for v in per_model), gpus=max(v.gpus for v in per_model),
        split_kind=next((v.split_kind for v in per_model if v.gpus > 1), first.split_kind),
        models=tuple(v.model for v in per_model))

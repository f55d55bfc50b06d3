"""A race as plain data for a profile."""

from __future__ import annotations

from collections.abc import Iterable

from backends.journal.race import BuildFailed, BuildFinished, Divergence, RaceEvent, RaceFinished, RaceStarted
from backends.text import printable as text_printable

# ------------------------------------------------------------------------- summary


def printable(text: str) -> str:
    """Generated text made safe for a terminal: control characters escaped, lines kept."""
    return text_printable(text, multiline=True)


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def race_summary(events: Iterable[RaceEvent], builds: Iterable[object] = ()) -> dict[str, object]:
    """A race as plain data for a profile (TOML-friendly: no None values, string keys).

    ``builds`` (BuildInfo objects) add each build's backend and version to its entry.
    """
    started: RaceStarted | None = None
    finished: RaceFinished | None = None
    results: dict[str, BuildFinished | BuildFailed] = {}
    divergences: list[Divergence] = []
    for event in events:
        if isinstance(event, RaceStarted):
            started = event
        elif isinstance(event, (BuildFinished, BuildFailed)):
            results[event.build] = event
        elif isinstance(event, Divergence):
            divergences.append(event)
        elif isinstance(event, RaceFinished):
            finished = event
    summary: dict[str, object] = {"kind": "completion-race"}
    if started is not None:
        summary.update(model=started.model, sequential=started.sequential,
                       settings=started.spec.to_json())
    if finished is not None and finished.reference:
        summary["reference"] = finished.reference
    info_by_name = {getattr(b, "name", None): b for b in builds}
    by_build: dict[str, dict[str, object]] = {}
    for name, result in results.items():
        if isinstance(result, BuildFinished):
            entry = {
                "status": "finished", "ttft_s": _rounded(result.ttft), "wall_s": _rounded(result.wall_s),
                "prompt_tps": _rounded(result.prompt_tps, 2), "gen_tps": _rounded(result.gen_tps, 2),
                "n_prompt": result.n_prompt, "n_gen": result.n_gen,
                "load_ms": _rounded(result.load_ms, 2), "stopped_at_eos": result.stopped_at_eos,
                "chars": len(result.text),
                "attempts": result.attempts if result.attempts > 1 else None,
                "complete": None if result.complete else False,
            }
        else:
            entry = {"status": "timed-out" if result.timed_out else "failed", "reason": result.reason,
                     "exit_code": result.exit_code, "signal": result.signal}
        info = info_by_name.get(name)
        if info is not None:
            entry.update(backend=getattr(info, "backend", None) or None,
                         version=getattr(info, "version", None) or None)
        by_build[name] = {key: value for key, value in entry.items() if value is not None}
    summary["builds"] = by_build
    summary["divergences"] = [
        {key: value for key, value in {
            "build": d.build, "reference": d.reference_build, "char_offset": d.char_offset,
            "piece_index": d.piece_index, "unexpected": d.unexpected,
            "build_excerpt": d.build_excerpt, "reference_excerpt": d.reference_excerpt,
        }.items() if value is not None}
        for d in divergences
    ]
    return summary

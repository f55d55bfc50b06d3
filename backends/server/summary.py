"""A server duel as plain data for a profile: TOML-friendly (no None values, string keys).

Each contender's levels keep their distributions and raw per-request samples, so a
"serving" verdict per concurrency level can test the difference between two builds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from backends.journal.serve import (
    BenchGap,
    DuelFinished,
    DuelStarted,
    LevelSummary,
    ServeEvent,
)


def _plain(value: Any) -> Any:
    """Drop None values at every depth; tuples become lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value if v is not None]
    return value


def level_entry(summary: LevelSummary) -> dict[str, Any]:
    entry = dataclasses.asdict(summary)
    entry.pop("contender")
    level = entry.pop("level")
    entry.update(concurrency=level["concurrency"], n_prompt=level["n_prompt"],
                 n_gen=level["n_gen"], depth=level["depth"], key=summary.level.key,
                 ctx_size=level["ctx_size"], slots=level["slots"], cache_type=level["cache_type"])
    return dict(_plain(entry))


def duel_summary(events: Iterable[ServeEvent]) -> dict[str, Any]:
    """``{"kind": "server-duel", "model", "settings", "contenders": {name: {"levels": [...],
    "gaps": [...]}}, "failures": [...]}`` from a duel's events (a journal's too)."""
    started: DuelStarted | None = None
    summaries: list[LevelSummary] = []
    gaps: list[BenchGap] = []
    failures: tuple[str, ...] = ()
    for event in events:
        if isinstance(event, DuelStarted):
            started = event
        elif isinstance(event, DuelFinished):
            summaries, gaps, failures = list(event.summaries), list(event.gaps), event.failures
    out: dict[str, Any] = {"kind": "server-duel"}
    names: list[str] = list(started.contenders) if started else []
    if started is not None:
        out.update(model=started.model, settings=_plain(started.settings))
    contenders: dict[str, dict[str, Any]] = {name: {"levels": [], "gaps": []} for name in names}
    for summary in summaries:
        contenders.setdefault(summary.contender, {"levels": [], "gaps": []})
        contenders[summary.contender]["levels"].append(level_entry(summary))
    for gap in gaps:
        contenders.setdefault(gap.contender, {"levels": [], "gaps": []})
        entry = _plain(dataclasses.asdict(gap))
        entry.pop("contender", None)
        contenders[gap.contender]["gaps"].append(entry)
    out["contenders"] = contenders
    out["failures"] = list(failures)
    return out

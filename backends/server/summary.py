"""A server duel as plain data for a profile: TOML-friendly (no None values, string keys).

Each contender's levels keep their distributions and raw per-request samples, so a
"serving" verdict per concurrency level can test the difference between two builds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from backends.journal.serve import (
    BenchGap,
    DuelFinished,
    DuelStarted,
    LevelSummary,
    ServeEvent,
)
from backends.json_types import JsonObject, JsonValue, table_of


def _plain(value: object) -> JsonValue:
    """Drop None values at every depth; tuples become lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value if v is not None]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"not plain data: {type(value).__name__}")


def level_entry(summary: LevelSummary) -> JsonObject:
    entry = dataclasses.asdict(summary)
    entry.pop("contender")
    level = entry.pop("level")
    entry.update(concurrency=level["concurrency"], n_prompt=level["n_prompt"],
                 n_gen=level["n_gen"], depth=level["depth"], key=summary.level.key,
                 ctx_size=level["ctx_size"], slots=level["slots"], cache_type=level["cache_type"])
    return dict(table_of(_plain(entry)))


def duel_summary(events: Iterable[ServeEvent]) -> JsonObject:
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
    out: JsonObject = {"kind": "server-duel"}
    names: list[str] = list(started.contenders) if started else []
    if started is not None:
        out.update(model=started.model, settings=_plain(started.settings))
    # Each contender's levels and gaps, in the order they first appear.
    contenders: dict[str, tuple[list[JsonValue], list[JsonValue]]] = {name: ([], []) for name in names}
    for summary in summaries:
        contenders.setdefault(summary.contender, ([], []))[0].append(level_entry(summary))
    for gap in gaps:
        entry = dict(table_of(_plain(dataclasses.asdict(gap))))
        entry.pop("contender", None)
        contenders.setdefault(gap.contender, ([], []))[1].append(entry)
    out["contenders"] = {name: {"levels": levels, "gaps": found} for name, (levels, found) in contenders.items()}
    out["failures"] = list(failures)
    return out

"""Where a duel's events go before anyone sees them: any object with ``append(event)``.

The default writes JSONL, one ``{"type": ClassName, ...fields}`` line per event, flushed
before the event is yielded; ``read_journal`` decodes the lines back into the same
dataclasses (msgspec converts nested dataclasses and tuples by their annotations).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Protocol

import msgspec

from backends.server.events import EVENT_TYPES, DuelFinished, LevelFinished, ServeEvent


class EventSink(Protocol):
    def append(self, event: ServeEvent) -> None: ...


def event_to_dict(event: ServeEvent) -> dict[str, Any]:
    return {"type": type(event).__name__, **dataclasses.asdict(event)}


def event_from_dict(data: dict[str, Any]) -> ServeEvent:
    fields = dict(data)
    cls = EVENT_TYPES[str(fields.pop("type"))]
    event: ServeEvent = msgspec.convert(fields, type=cls)
    return event


class JsonlJournal:
    """Append-only JSONL; level results and the finish are also fsynced."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (open for the duel)

    def append(self, event: ServeEvent) -> None:
        self._file.write(json.dumps(event_to_dict(event), separators=(",", ":")) + "\n")
        self._file.flush()
        if isinstance(event, (LevelFinished, DuelFinished)):
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


class MemoryJournal:
    """Keeps events in a list (tests, and callers that store them elsewhere)."""

    def __init__(self) -> None:
        self.events: list[ServeEvent] = []

    def append(self, event: ServeEvent) -> None:
        self.events.append(event)


def read_journal(path: str | Path) -> list[ServeEvent]:
    """A journal's events; a torn last line and unknown types are skipped."""
    events: list[ServeEvent] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                events.append(event_from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError, msgspec.ValidationError):
                continue
    return events

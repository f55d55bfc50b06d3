"""Where a duel's events go before anyone sees them: any object with ``append(event)``.

The default is the run journal every llamaduel run writes (``backends.journal.journal``):
one JSONL line per event, flushed before the event is yielded, read back by
``backends.journal.journal.read_journal`` like a sweep's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from backends.journal.journal import RunEvent
from backends.journal.journal import read_journal as read_run_journal
from backends.journal.serve import ServeEvent


class EventSink(Protocol):
    def append(self, event: ServeEvent) -> None: ...


class MemoryJournal:
    """Keeps events in a list (tests, and callers that store them elsewhere)."""

    def __init__(self) -> None:
        self.events: list[ServeEvent] = []

    def append(self, event: ServeEvent) -> None:
        self.events.append(event)


def read_journal(path: str | Path) -> list[RunEvent]:
    """A duel journal's events (see ``backends.journal.journal.read_journal`` for the lines it could not read)."""
    return list(read_run_journal(path))

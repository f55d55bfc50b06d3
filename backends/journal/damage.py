"""A damaged journal, said aloud: lines that cannot be read, and results a decision counted
that are no longer there.

A line cut by a full disk, an interrupted copy or a crash mid-write, or garbage written
over one, is skipped, and every reader says so once per line. A point whose decision is
recorded but one of whose counted results was on such a line is not decided any more:
``resume`` measures it again and the verdict does not count it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends.journal.sweep import PointDecided, PointFailed, ResultReceived, SweepStarted, TestPoint

if TYPE_CHECKING:
    from backends.journal.journal import RunEvent


def unreadable_line(number: int) -> str:
    """How every reader reports a journal line it skips."""
    return f"journal line {number}: unreadable (cut or corrupted), skipped"


@dataclass(frozen=True)
class MissingResult:
    """``build``'s result at ``point``: counted by the point's decision, absent now."""

    build: str
    point: TestPoint
    counted: int  # repetitions the decision counted
    found: int  # repetitions the journal still holds

    @property
    def again(self) -> str:
        """What ``resume`` says as it measures it again."""
        return f"{self.build}'s {self.point.name} result is missing from the journal: measuring it again"

    def __str__(self) -> str:
        left = f" ({self.found} of its {self.counted} repetitions are left)" if self.found else ""
        return (f"{self.build}'s {self.point.name} result is missing from the journal{left}: "
                f"{self.point.name} is not counted until it is measured again (`llamaduel resume`)")


def missing_results(events: Iterable[RunEvent]) -> tuple[MissingResult, ...]:
    """Results that the last decision of each point counted and the journal no longer has."""
    starts: list[SweepStarted] = []
    decisions: dict[str, PointDecided] = {}
    blocks: dict[tuple[str, str], list[ResultReceived]] = {}
    failed: set[tuple[str, str]] = set()
    for event in events:
        if isinstance(event, SweepStarted):
            starts.append(event)
        elif isinstance(event, PointDecided):
            decisions[event.point.key] = event
        elif isinstance(event, ResultReceived):
            blocks.setdefault((event.build, event.result.point.key), []).append(event)
        elif isinstance(event, PointFailed):
            failed.add((event.build, event.point.key))
    names = tuple(dict.fromkeys(n for s in starts for n in s.builds))
    missing = []
    for key, decision in decisions.items():
        for name in names:
            if (name, key) in failed:
                continue
            found = _counted(blocks.get((name, key), []))
            wanted = decision.repetitions.get(name, found or 1)
            if found < wanted:
                missing.append(MissingResult(name, decision.point, wanted, found))
    return tuple(missing)


def _counted(blocks: list[ResultReceived]) -> int:
    """Repetitions counted from these blocks: those that did not throttle, else all."""
    clean = [b for b in blocks if not b.throttled]
    return sum(len(b.result.samples_ts) for b in (clean or blocks))


def without_points(events: Iterable[RunEvent], keys: Mapping[str, object] | set[str]) -> list[RunEvent]:
    """The events less every result, failure and decision at the points ``keys``."""
    def point_key(event: RunEvent) -> str | None:
        if isinstance(event, ResultReceived):
            return event.result.point.key
        if isinstance(event, (PointFailed, PointDecided)):
            return event.point.key
        return None

    return [e for e in events if point_key(e) not in keys]

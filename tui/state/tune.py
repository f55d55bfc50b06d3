"""The Tune panels' state: per contender, the candidates tried, the current best and the
time left of its share, folded from the tune's events (a frozen snapshot per event)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backends import stats
from backends.journal.tune import (
    ProbeFailed,
    ProbeFinished,
    ProbeMeasured,
    TuneChosen,
    TuneEvent,
    TuneGrid,
    TuneRound,
    TuneShareMoved,
    TuneStarted,
)


@dataclass(frozen=True)
class TuneLane:
    """One contender's tune so far."""

    build: str
    share_s: float = 0.0
    spent_s: float = 0.0
    candidates: int = 0
    skipped: int = 0
    tried: frozenset[str] = frozenset()
    failed: frozenset[str] = frozenset()
    round: int = 0
    survivors: int = 0
    samples: Mapping[str, Mapping[str, tuple[float, ...]]] = field(default_factory=dict)
    chosen: str | None = None
    reason: str = ""
    defaults: tuple[str, ...] = ()  # the defaults measured at the middle depth, a line each

    def best(self) -> tuple[str, float] | None:
        """The label with the best geometric mean of its points' medians, and that mean."""
        scored = []
        for label, by_point in self.samples.items():
            if label in self.failed or not by_point:
                continue
            logs = [math.log(stats.median(v)) for v in by_point.values() if v]
            if logs:
                scored.append((label, math.exp(sum(logs) / len(logs))))
        return max(scored, key=lambda item: item[1]) if scored else None

    @property
    def left_s(self) -> float:
        return max(self.share_s - self.spent_s, 0.0)

    def text(self) -> str:
        """The panel's lines."""
        lines = [f"{len(self.tried)}/{self.candidates} candidates tried"
                 + (f", {len(self.failed)} failed" if self.failed else "")
                 + (f", {self.skipped} cannot fit" if self.skipped else "")]
        best = self.best()
        if self.chosen is not None:
            lines.append(f"chosen: {self.chosen}")
            lines.append(self.reason)
            lines += [f"at its defaults: {line}" for line in self.defaults]
        else:
            lines.append(f"round {self.round}: {self.survivors} in, {self.left_s:.0f} s left")
            if best is not None:
                lines.append(f"best so far: {best[0]} ({best[1]:,.0f} t/s)")
        return "\n".join(lines)


@dataclass(frozen=True)
class TuneBoard:
    lanes: Mapping[str, TuneLane] = field(default_factory=dict)

    def lane(self, name: str) -> TuneLane | None:
        return self.lanes.get(name)


def _with(board: TuneBoard, name: str, **changes: Any) -> TuneBoard:
    lane = board.lanes.get(name) or TuneLane(build=name)
    return TuneBoard({**board.lanes, name: dataclasses.replace(lane, **changes)})


def fold_tune(board: TuneBoard, event: TuneEvent) -> TuneBoard:
    """The board after one tune event (other events leave it as it is)."""
    if isinstance(event, TuneStarted):
        for name in event.builds:
            board = _with(board, name, share_s=event.shares_s.get(name, 0.0))
        return board
    name = getattr(event, "build", "")
    lane = board.lanes.get(name) or TuneLane(build=name)
    if isinstance(event, TuneGrid):
        return _with(board, name, candidates=len(event.candidates), skipped=len(event.skipped))
    if isinstance(event, TuneRound):
        return _with(board, name, round=event.round, survivors=len(event.survivors))
    if isinstance(event, ProbeMeasured) and event.phase == "search":
        label = event.candidate.label
        by_point = dict(lane.samples.get(label, {}))
        key = event.result.point.key
        by_point[key] = (*by_point.get(key, ()), *event.result.samples_ts)
        return _with(board, name, samples={**lane.samples, label: by_point},
                     tried=lane.tried | {label})
    if isinstance(event, ProbeMeasured):  # the defaults, measured after the choice
        line = f"{event.result.point.name} {event.result.avg_ts:,.0f} t/s"
        return _with(board, name, defaults=(*lane.defaults, line))
    if isinstance(event, ProbeFailed) and event.phase == "search" and not event.budget:
        label = event.candidate.label
        return _with(board, name, failed=lane.failed | {label}, tried=lane.tried | {label})
    if isinstance(event, TuneShareMoved):
        for other, seconds in event.given.items():
            got = board.lanes.get(other) or TuneLane(build=other)
            board = _with(board, other, share_s=got.share_s + seconds)
        return _with(board, name, share_s=lane.spent_s)
    if isinstance(event, ProbeFinished) and event.phase == "search":
        return _with(board, name, spent_s=lane.spent_s + event.seconds)
    if isinstance(event, TuneChosen):
        return _with(board, name, chosen=event.chosen.label, reason=event.reason)
    return board


def fold_tune_all(events: Iterable[object], board: TuneBoard | None = None) -> TuneBoard:
    board = board or TuneBoard()
    for event in events:
        if isinstance(event, TuneEvent):
            board = fold_tune(board, event)
    return board

"""What the Race screen shows, as one frozen snapshot folded from race events.

Pure functions only: ``fold(board, event)`` gives the next board, ``replay(board, t)`` the
board as it stood ``t`` seconds after every build's start (a common clock, so builds that
ran one after the other can be watched side by side), ``rate_series`` the tokens/second
line of one lane.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from backends.race import (
    BuildFailed,
    BuildFinished,
    BuildRetrying,
    BuildStarted,
    Divergence,
    FirstToken,
    RaceEvent,
    RaceFinished,
    RaceStarted,
    TimedPiece,
    TokenReceived,
)

WAITING, RUNNING, FINISHED, FAILED, TIMED_OUT = "waiting", "running", "finished", "failed", "timed out"


@dataclass(frozen=True)
class LaneState:
    build: str
    status: str = WAITING
    pieces: tuple[TimedPiece, ...] = ()
    ttft: float | None = None
    prompt_tps: float | None = None
    gen_tps: float | None = None
    n_gen: int | None = None
    wall_s: float | None = None
    reason: str = ""
    attempt: int = 1
    complete: bool = True
    is_reference: bool = False
    divergence: Divergence | None = None
    matches: str = ""  # the reference build whose text this one's equals, once compared

    @property
    def text(self) -> str:
        return "".join(piece.text for piece in self.pieces)

    @property
    def live_tps(self) -> float | None:
        """Pieces per second since the first one: tokens/second as the reader saw them."""
        if len(self.pieces) < 2:
            return None
        span = self.pieces[-1].at - self.pieces[0].at
        return (len(self.pieces) - 1) / span if span > 0 else None

    @property
    def divergence_offset(self) -> int | None:
        return self.divergence.char_offset if self.divergence else None


@dataclass(frozen=True)
class RaceBoard:
    lanes: tuple[LaneState, ...] = ()
    status: str = "idle"  # idle, running, finished, cancelled
    model: str = ""
    sequential: bool = True
    replay_at: float | None = None  # set while replaying: seconds on the common clock

    def lane(self, build: str) -> LaneState | None:
        return next((lane for lane in self.lanes if lane.build == build), None)

    @property
    def duration(self) -> float:
        """Seconds from start to the last piece of the slowest build."""
        ends = [lane.wall_s or (lane.pieces[-1].at if lane.pieces else 0.0) for lane in self.lanes]
        return max(ends, default=0.0)

    @property
    def divergences(self) -> tuple[Divergence, ...]:
        return tuple(lane.divergence for lane in self.lanes if lane.divergence)

    @property
    def same_text(self) -> bool:
        """Every other finished build wrote the reference build's text."""
        others = [lane for lane in self.lanes if not lane.is_reference]
        return bool(others) and all(lane.matches for lane in others)


def _with_lane(board: RaceBoard, build: str, **changes: Any) -> RaceBoard:
    lanes = tuple(dataclasses.replace(lane, **changes) if lane.build == build else lane
                  for lane in board.lanes)
    return dataclasses.replace(board, lanes=lanes)


def fold(board: RaceBoard, event: RaceEvent) -> RaceBoard:
    """The board after ``event``."""
    if isinstance(event, RaceStarted):
        return RaceBoard(lanes=tuple(LaneState(name) for name in event.builds), status="running",
                         model=event.model, sequential=event.sequential)
    if isinstance(event, BuildStarted):
        # A new attempt starts afresh: what the cut-short one showed is dropped.
        return _with_lane(board, event.build, status=RUNNING, pieces=(), ttft=None,
                          attempt=event.attempt)
    if isinstance(event, BuildRetrying):
        return _with_lane(board, event.build, reason=event.reason)
    if isinstance(event, FirstToken):
        return _with_lane(board, event.build, ttft=event.seconds)
    if isinstance(event, TokenReceived):
        lane = board.lane(event.build)
        if lane is None:
            return board
        return _with_lane(board, event.build, pieces=(*lane.pieces, TimedPiece(event.at, event.text)))
    if isinstance(event, BuildFinished):
        return _with_lane(board, event.build, status=FINISHED, pieces=event.pieces, ttft=event.ttft,
                          prompt_tps=event.prompt_tps, gen_tps=event.gen_tps, n_gen=event.n_gen,
                          wall_s=event.wall_s, complete=event.complete, reason="")
    if isinstance(event, BuildFailed):
        return _with_lane(board, event.build, status=TIMED_OUT if event.timed_out else FAILED,
                          reason=event.reason)
    if isinstance(event, Divergence):
        board = _with_lane(board, event.reference_build, is_reference=True)
        return _with_lane(board, event.build, divergence=event)
    if isinstance(event, RaceFinished):
        if event.reference:
            board = _with_lane(board, event.reference, is_reference=True)
            differing = {d.build for d in event.divergences}
            for lane in board.lanes:
                if (lane.status == FINISHED and lane.build != event.reference
                        and lane.build not in differing):
                    board = _with_lane(board, lane.build, matches=event.reference)
        return dataclasses.replace(board, status="finished")
    return board


def fold_all(events: Iterable[RaceEvent], board: RaceBoard | None = None) -> RaceBoard:
    board = board or RaceBoard()
    for event in events:
        board = fold(board, event)
    return board


def replay(board: RaceBoard, at: float) -> RaceBoard:
    """The board ``at`` seconds after every build's own start: text and rates so far."""
    lanes = []
    for lane in board.lanes:
        pieces = tuple(p for p in lane.pieces if p.at <= at)
        done = lane.wall_s is not None and at >= lane.wall_s
        lanes.append(dataclasses.replace(
            lane, pieces=pieces,
            status=lane.status if done or lane.status in (FAILED, TIMED_OUT) else RUNNING,
            ttft=lane.ttft if lane.ttft is not None and lane.ttft <= at else None,
            divergence=lane.divergence if done else None,
            matches=lane.matches if done else ""))
    return dataclasses.replace(board, lanes=tuple(lanes), replay_at=at)


def rate_series(lane: LaneState, points: int = 40) -> tuple[list[float], list[float]]:
    """Tokens/second over time (seconds since the build's start) for one lane.

    The rate at each time is the pieces that arrived in the window before it, scaled by
    the tool's own token count when a piece held several tokens.
    """
    times = [piece.at for piece in lane.pieces]
    if len(times) < 2:
        return [], []
    start, end = times[0], times[-1]
    span = end - start
    if span <= 0:
        return [], []
    scale = 1.0
    if lane.n_gen and len(times) > 1:
        scale = lane.n_gen / (len(times) - 1)
    window = max(span / 8, 1e-6)
    xs, ys = [], []
    steps = min(points, len(times))
    for step in range(1, steps + 1):
        t = start + span * step / steps
        arrived = sum(1 for at in times if t - window < at <= t)
        xs.append(t)
        ys.append(arrived * scale / min(window, t - start))
    return xs, ys

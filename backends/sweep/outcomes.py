"""What a run measured, per contender and test point, from its journal's events.

A point measured in several blocks (adaptive repetitions, a throttled block measured
again) has several ResultReceived events; its result is the counted samples of all of them
together: the blocks that did not throttle, or every block when all of them did. This is
the one place that merging happens: the command line, the app and the profile all read
point results through it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from backends.journal.sweep import BenchResult, PointDecided, PointFailed, ResultReceived

if TYPE_CHECKING:
    from backends.journal.journal import RunEvent


@dataclass(frozen=True)
class PointResult:
    """One contender at one point: the merged result and how it was measured."""

    build: str
    result: BenchResult
    blocks: int
    throttled: bool  # every counted block throttled (then the result is flagged)
    telemetry: dict[str, object] | None  # the last counted block's summary
    decision: PointDecided | None = None


def merge_blocks(blocks: list[ResultReceived]) -> tuple[BenchResult, bool, dict[str, object] | None]:
    clean = [b for b in blocks if not b.throttled]
    counted = clean or blocks
    samples = tuple(s for b in counted for s in b.result.samples_ts)
    first = counted[0].result
    if len(counted) == 1:
        return first, not clean, counted[0].telemetry
    mean = statistics.fmean(samples) if samples else math.nan
    spread = statistics.stdev(samples) if len(samples) > 1 else 0.0
    warmups = tuple(w for b in counted for w in b.result.warmup_ts)
    merged = replace(first, avg_ts=mean, stddev_ts=spread, samples_ts=samples, warmup_ts=warmups)
    return merged, not clean, counted[-1].telemetry


def point_results(events: Iterable[RunEvent]) -> list[PointResult]:
    """Merged results in the order their points were first measured."""
    blocks: dict[tuple[str, str], list[ResultReceived]] = {}
    decisions: dict[str, PointDecided] = {}
    for event in events:
        if isinstance(event, ResultReceived):
            blocks.setdefault((event.build, event.result.point.key), []).append(event)
        elif isinstance(event, PointDecided):
            decisions[event.point.key] = event
    found = []
    for (build, key), measured in blocks.items():
        result, throttled, telemetry = merge_blocks(measured)
        found.append(PointResult(build, result, len(measured), throttled, telemetry, decisions.get(key)))
    return found


def point_failures(events: Iterable[RunEvent]) -> list[PointFailed]:
    """The failures of points that have no result (a point measured again after a failure
    by ``resume --retry-failed`` counts as measured)."""
    events = list(events)
    measured = {(e.build, e.result.point.key) for e in events if isinstance(e, ResultReceived)}
    return [e for e in events if isinstance(e, PointFailed) and (e.build, e.point.key) not in measured]

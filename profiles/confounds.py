"""Confounds said aloud: where the contenders differ in more than the backend.

A "ROCm beats Vulkan" is often "commit A beats commit B", another compiler, or another
power cap. From a run's own events: the build number and commit llama-bench wrote into
each result, the compiler each build's banner names (``built with ...``, journalled with
the contender), and the card's power cap and shader clock as the telemetry saw them while
each contender's blocks ran. One line: ``also differs: commit 8467 vs 8501; power cap
225 W vs 300 W``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from backends import stats
from backends.journal.sweep import PointFailed, PointStarted, ResultReceived, SweepStarted, TelemetryRecorded

if TYPE_CHECKING:
    from backends.journal.journal import RunEvent
    from backends.json_types import JsonValue

CLOCK_SPREAD = 0.10  # median shader clocks further apart than this are a difference


def _first_results(events: Sequence[RunEvent]) -> dict[str, Mapping[str, JsonValue]]:
    raw: dict[str, Mapping[str, JsonValue]] = {}
    for event in events:
        if isinstance(event, ResultReceived):
            raw.setdefault(event.build, event.result.raw)
    return raw


def _windows(events: Sequence[RunEvent]) -> dict[str, list[tuple[float, float]]]:
    """When each contender's blocks ran: from a block's start to its result or failure."""
    windows: dict[str, list[tuple[float, float]]] = {}
    open_at: dict[str, float] = {}
    for event in events:
        if isinstance(event, PointStarted):
            open_at.setdefault(event.build, event.at)
        elif isinstance(event, (ResultReceived, PointFailed)) and event.build in open_at:
            windows.setdefault(event.build, []).append((open_at.pop(event.build), event.at))
    return windows


def _seen(events: Sequence[RunEvent], windows: Mapping[str, list[tuple[float, float]]],
          key: str) -> dict[str, list[float]]:
    """Values of one device field in the ticks inside each contender's windows."""
    out: dict[str, list[float]] = {}
    for event in events:
        if not isinstance(event, TelemetryRecorded):
            continue
        at = float(event.sample.get("at") or event.at)
        values = [float(d[key]) for d in event.sample.get("devices") or ()
                  if isinstance(d, Mapping) and isinstance(d.get(key), (int, float))]
        if not values:
            continue
        for build, spans in windows.items():
            if any(start <= at <= end for start, end in spans):
                out.setdefault(build, []).extend(values)
    return out


def _differs(label: str, values: Mapping[str, str], builds: Sequence[str]) -> str | None:
    shown = [values[b] for b in builds if b in values]
    if len(shown) < 2 or len(set(shown)) < 2:
        return None
    return f"{label} {' vs '.join(shown)}"


def confounds(events: Iterable[RunEvent]) -> tuple[str, ...]:
    """Each difference between the contenders besides the backend, in a few words."""
    events = list(events)
    started = next((e for e in events if isinstance(e, SweepStarted)), None)
    raw = _first_results(events)
    builds = list(started.builds) if started else list(raw)
    found: list[str | None] = []
    numbers = {b: str(r["build_number"]) for b, r in raw.items() if r.get("build_number") not in (None, 0)}
    commits = {b: str(r["build_commit"]) for b, r in raw.items() if r.get("build_commit")}
    found.append(_differs("commit", numbers, builds) or _differs("commit", commits, builds))
    contenders = started.contenders if started else {}
    compilers = {b: str(c["compiler"]) for b, c in contenders.items() if c.get("compiler")}
    found.append(_differs("compiler", compilers, builds))
    windows = _windows(events)
    caps = {b: f"{stats.median(v):.0f} W" for b, v in _seen(events, windows, "power_cap_w").items()}
    found.append(_differs("power cap", caps, builds))
    clocks = {b: stats.median(v) for b, v in _seen(events, windows, "sclk_mhz").items()}
    if len(clocks) >= 2 and max(clocks.values()) > min(clocks.values()) * (1 + CLOCK_SPREAD):
        found.append(_differs("GPU clock", {b: f"{v:.0f} MHz" for b, v in clocks.items()}, builds))
    return tuple(f for f in found if f)


def confound_line(differences: Sequence[str]) -> str:
    return "also differs: " + "; ".join(differences) if differences else ""

"""How a run's figures were taken, in the words a user comparing with bare llama-bench needs:
the warm-up, the cool starts and the temperature at each start, the llama-bench
kept loaded between points, and how energy was measured. Read from the journal alone, so
the run's summary, the profile and the Results screen say the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from backends.journal.sweep import CoolingWaited, PointStarted, ResultReceived, SweepStarted

if TYPE_CHECKING:
    from backends.journal.journal import RunEvent

WARM_UP = ("warm-up: llama-bench's own untimed warm-up run before each test, as in bare llama-bench; "
           "every timed repetition counts")
# What runs journalled before every block stopped setting a timed repetition aside said.
WARM_UP_SET_ASIDE = ("warm-up: llama-bench's warm-up run and each block's first timed repetition are set "
                     "aside (bare llama-bench counts every timed repetition)")


def conditions(events: Iterable[RunEvent]) -> tuple[str, ...]:
    """One line per condition that can make a figure differ from bare llama-bench."""
    events = list(events)
    starts = [e for e in events if isinstance(e, SweepStarted)]
    blocks = [e for e in events if isinstance(e, PointStarted)]
    if not starts or not blocks:
        return ()
    temps = _start_temps(events)
    set_aside = any(isinstance(e, ResultReceived) and e.result.warmup_ts for e in events)
    lines = [WARM_UP_SET_ASIDE if set_aside else WARM_UP, _cooling(events, starts, len(blocks), bool(temps))]
    if temps:
        lines.append(temps)
    lines.append(_processes(blocks))
    lines += [n for s in starts[-1:] for n in s.notes if n.startswith("energy: ")]
    return tuple(lines)


def _cooling(events: list[RunEvent], starts: list[SweepStarted], blocks: int, temps: bool) -> str:
    waits = [e for e in events if isinstance(e, CoolingWaited)]
    off = next((n for s in starts for n in s.notes if n.startswith("thermal guard off")), None)
    if off and not waits:
        return f"cool starts: none ({off}); each block started when the last one ended"
    if not waits and not temps:
        return "cool starts: not recorded (no GPU temperatures in this journal)"
    if not waits:
        return f"cool starts: the card was near idle before each of the {blocks} blocks, no wait"
    seconds = sum(w.seconds for w in waits)
    unreached = sum(1 for w in waits if not w.reached)
    return (f"cool starts: the thermal guard waited before {len(waits)} of {blocks} blocks "
            f"({seconds:.0f} s in all, the longest {max(w.seconds for w in waits):.0f} s"
            + (f"; {unreached} ran out of time before the card was cool" if unreached else "") + ")")


def _start_temps(events: list[RunEvent]) -> str:
    """``temperature at each start: junction 41-48 °C, edge 35-39 °C``."""
    seen: dict[str, list[float]] = {}
    for event in events:
        if isinstance(event, ResultReceived) and event.telemetry:
            for sensor, value in (event.telemetry.get("start_temps") or {}).items():
                if isinstance(value, (int, float)):
                    seen.setdefault(str(sensor), []).append(float(value))
    if not seen:
        return ""
    spans = [f"{name} {min(v):.0f}" + (f"-{max(v):.0f}" if max(v) - min(v) >= 0.5 else "") + " °C"
             for name, v in seen.items()]
    return "temperature at each start: " + ", ".join(spans)


def _processes(blocks: list[PointStarted]) -> str:
    """Whether points shared a loaded llama-bench (several points, one pid)."""
    by_pid: dict[tuple[str, int | None], int] = {}
    for block in blocks:
        by_pid[(block.build, block.pid)] = by_pid.get((block.build, block.pid), 0) + 1
    shared = sum(n for n in by_pid.values() if n > 1)
    if not shared:
        return "processes: a fresh llama-bench for every block, the model loaded in each"
    return (f"resident process: {shared} of {len(blocks)} blocks shared a loaded llama-bench "
            "with other points (a resident one is paused with SIGSTOP between them)")

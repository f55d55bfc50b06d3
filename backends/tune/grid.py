"""The tune phase's candidates: which settings are free, their values, and which cannot fit.

A candidate is a set of llama-bench settings for one contender (``-ub 2048 -b 2048``); the
grid is every combination of the free settings' values. The probe is a short piece of the
sweep's own workload: its largest prompt and a short generation at its middle depth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from backends.journal.sweep import TestPoint
from backends.journal.tune import Candidate, SkippedCandidate, TuneSpec
from backends.sweep.spec import SweepError, SweepSpec

UBATCH_SIZES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
BENCH_BATCH, BENCH_UBATCH = 2048, 512  # llama-bench's own defaults
KV_CHOICES = (("f16", "f16"), ("q8_0", "q8_0"), ("q4_0", "q4_0"))
PROBE_GEN = 32  # generation speed hardly depends on the count; the depth is what matters
FIT_MARGIN_MIB = 1024  # -fitt margin per device for llama.cpp's own fit
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Grid:
    """One contender's candidates: the defaults first, what cannot fit set aside."""

    default: Candidate
    candidates: tuple[Candidate, ...]
    skipped: tuple[SkippedCandidate, ...] = ()
    fit: Candidate | None = None  # llama.cpp's own fit, when the build has -fitt
    notes: tuple[str, ...] = field(default_factory=tuple)


def parse_budget(text: str) -> float:
    """``5m``, ``90s``, ``90``, ``1.5h`` -> seconds; SweepError for anything else."""
    match = _BUDGET.match(text)
    if not match:
        raise SweepError(f"--tune-budget {text!r}: give seconds, or minutes as 5m")
    value = float(match.group(1))
    unit = (match.group(2) or "s").lower()[0]
    seconds = value * {"s": 1, "m": 60, "h": 3600}[unit]
    if seconds <= 0:
        raise SweepError(f"--tune-budget {text!r}: must be more than 0")
    return seconds


def parse_free(text: str) -> tuple[str, ...]:
    """``ub,fa`` -> ("ub", "fa"), checked."""
    free = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    try:
        TuneSpec(free=free).validate()
    except ValueError as error:
        raise SweepError(str(error)) from None
    return free


def middle_depth(spec: SweepSpec) -> int:
    depths = sorted(spec.depths)
    return depths[(len(depths) - 1) // 2]


# Settings that change generation speed; ``-ub`` does not (one token per step).
CHANGES_GENERATION = frozenset({"fa", "kv", "ncmoe", "ngl", "threads"})
PP_ONLY_NOTE = "generation not probed: -ub cannot change it (one token per step)"


def probe_points(spec: SweepSpec, free: tuple[str, ...] = ("fa",)) -> tuple[TestPoint, ...]:
    """The probe: the sweep's largest prompt and a short generation at its middle depth
    (the generation only when a free setting can change it)."""
    depth = middle_depth(spec)
    points = []
    if spec.prompts:
        points.append(TestPoint(n_prompt=max(spec.prompts), n_gen=0, depth=depth))
    if spec.gens and (CHANGES_GENERATION & set(free) or not points):
        points.append(TestPoint(n_prompt=0, n_gen=min(min(spec.gens), PROBE_GEN), depth=depth))
    return tuple(points)


def defaults_points(spec: SweepSpec) -> tuple[TestPoint, ...]:
    """The sweep's own points at its middle depth: where the defaults are measured too."""
    depth = middle_depth(spec)
    return tuple(p for p in spec.points() if p.depth == depth)


def ubatch_values(spec: SweepSpec) -> tuple[int, ...]:
    """Powers of two below the largest prompt, and one ubatch that holds it whole: the
    sweep's own when it does, else the first power of two that does. Every ubatch that holds
    the prompt splits it the same way (one ubatch), so they do the same work: measuring two
    of them compares a setting with itself, and any gap between them is noise."""
    largest = max(spec.prompts, default=BENCH_UBATCH)
    own = spec.ubatch or BENCH_UBATCH
    values = [u for u in UBATCH_SIZES if u < largest]
    values.append(own if own >= largest else next((u for u in UBATCH_SIZES if u >= largest),
                                                  UBATCH_SIZES[-1]))
    if own < largest:
        values.append(own)
    return tuple(sorted(set(values)))


def holds_whole_note(spec: SweepSpec) -> str | None:
    """Why smaller ubatch sizes that hold the largest prompt are not candidates, when the
    sweep's own ubatch stands for them."""
    largest = max(spec.prompts, default=0)
    own = spec.ubatch or BENCH_UBATCH
    first = next((u for u in UBATCH_SIZES if u >= largest), None)
    if not largest or first is None or first >= own:
        return None
    return (f"-ub {first} to {own} hold the {largest}-token prompt whole and do the same work: "
            f"-ub {own}, the defaults, stands for them")


def batch_for(spec: SweepSpec, ubatch: int) -> int:
    return max(spec.batch or BENCH_BATCH, ubatch)


def is_cpu_contender(contender: object) -> bool:
    """A contender that computes on the CPU: a CPU build, or one told to use no device."""
    devices = getattr(contender, "devices", ())
    return getattr(contender, "selected_devices", None) == () or not devices


def free_vram(contender: object) -> int | None:
    """The least free memory among the devices the contender uses, in bytes."""
    chosen = getattr(contender, "selected_devices", None)
    devices = [d for d in getattr(contender, "devices", ())
               if chosen is None or d.name in chosen]
    known = [d.free_mib for d in devices if d.free_mib]
    return min(known) * 1024 * 1024 if known else None

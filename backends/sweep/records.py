"""What llama-bench writes, read strictly: result lines, progress lines and failures.

A result line that is not a valid result (a missing, non-numeric, NaN, infinite,
negative or absurd ``avg_ts``, or samples like that) is never a result: it becomes the
failure of its point, with the line quoted, and ``resume`` measures that point again.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from backends import procs
from backends.journal.sweep import BenchResult, PointFailed, TestPoint
from backends.text import printable

PROGRESS = re.compile(r"^llama-bench: benchmark (\d+)/(\d+): (.*)$")
TIMED_RUN = re.compile(r"^(prompt|generation) run ")
# No llama.cpp build on any hardware comes near this: a bigger number is garbage.
ABSURD_TS = 1e8
_ERROR_LINE = re.compile(r"(^|: )error: ", re.IGNORECASE)
_ERROR_WORDS = re.compile(r"error|failed|unable|cannot|invalid|abort", re.IGNORECASE)


@dataclass(frozen=True)
class InvalidResult:
    """A JSON object on llama-bench's stdout that claims to be a result but is not one."""

    point: TestPoint | None
    problem: str
    line: str


def parse_result_line(line: bytes, *, warmup: int = 0) -> BenchResult | InvalidResult | None:
    """A ``-o jsonl`` result line; None for anything that is no JSON object (kept as text by
    the caller). ``warmup`` leading samples are set aside as warm-up."""
    text = line.decode("utf-8", "replace").strip()
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    point = _point(record)
    problem = _record_problem(record)
    if problem or point is None:
        return InvalidResult(point, problem or "no test sizes (n_prompt, n_gen)", text[:300])
    samples = tuple(float(s) for s in record.get("samples_ts") or ())
    if not samples:
        samples = (float(record["avg_ts"]),)
    counted, set_aside = (samples[warmup:], samples[:warmup]) if len(samples) > warmup else (samples, ())
    mean = sum(counted) / len(counted)
    spread = math.sqrt(sum((s - mean) ** 2 for s in counted) / (len(counted) - 1)) if len(counted) > 1 else 0.0
    return BenchResult(point=point, avg_ts=mean, stddev_ts=spread, samples_ts=counted,
                       raw=record, warmup_ts=set_aside)


def _point(record: Mapping[str, Any]) -> TestPoint | None:
    try:
        point = TestPoint(int(record.get("n_prompt") or 0), int(record.get("n_gen") or 0),
                          int(record.get("n_depth") or 0))
    except (TypeError, ValueError, OverflowError):
        return None
    return point if point.tokens > 0 and point.depth >= 0 else None


def _record_problem(record: Mapping[str, object]) -> str | None:
    value = record.get("avg_ts")
    if not _valid_rate(value):
        return f"avg_ts is {printable(repr(value))}"
    samples = record.get("samples_ts")
    if samples is not None:
        if not isinstance(samples, list):
            return f"samples_ts is {printable(repr(samples))[:60]}"
        bad = [s for s in samples if not _valid_rate(s)]
        if bad:
            return f"samples_ts holds {printable(repr(bad[0]))}"
    return None


def _valid_rate(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and 0 < value < ABSURD_TS


def invalid_result_failure(contender: str, point: TestPoint, invalid: InvalidResult) -> PointFailed:
    return PointFailed(build=contender, point=point, at=time.time(),
                       reason=f"llama-bench wrote an invalid result ({invalid.problem}): "
                              f"{printable(invalid.line)[:200]}")


def point_failed(contender: str, point: TestPoint, returncode: int | None, timed_out: bool,
                 limit: float, tail: Iterable[str], stdout_head: bytes = b"") -> PointFailed:
    """The failure of a point that ended without a result, in one line plus the stderr tail.

    ``returncode`` None and no time-out: the process went on to its next test (then it was
    paused and killed) without writing this one's result. ``stdout_head``: the first bytes
    it wrote on stdout that were no result, quoted when it wrote no result at all.
    """
    reason, signal_name = procs.describe_exit(returncode)
    if timed_out:
        reason = f"hung: no result within {limit:.0f} s, killed"
    elif returncode is None:
        reason = "went on to its next test without a result line for this one" + _head(stdout_head)
    elif returncode == 0:
        reason = "exited 0 without a result line" + _head(stdout_head)
    lines = [printable(line) for line in tail]
    detail = last_error(lines) if returncode else ""
    return PointFailed(
        build=contender, point=point, at=time.time(),
        reason=f"{reason}: {detail}" if detail and not timed_out else reason,
        exit_code=None if timed_out else returncode,
        signal=None if timed_out else signal_name, timed_out=timed_out,
        stderr_tail="\n".join(lines))


def _head(data: bytes) -> str:
    if not data.strip():
        return "; stdout was empty"
    return f"; first bytes: {printable(data.decode('utf-8', 'replace').strip())[:80]}"


def last_error(lines: Iterable[str]) -> str:
    """The most telling stderr line: the first ``error:`` line (the cause; what follows it is
    often usage text), else the last that says error/failed, else the last line."""
    kept = [line for line in lines if line.strip()]
    for line in kept:
        if _ERROR_LINE.search(line):
            return line.strip()[:200]
    for line in reversed(kept):
        if _ERROR_WORDS.search(line):
            return line.strip()[:200]
    return kept[-1].strip()[:200] if kept else ""

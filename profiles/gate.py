"""The nightly gate's judgement: is the new build as fast and as right as the one it replaces?

Pure functions over per-point samples (tokens/s) and a correctness result. A point is
slower when the new build's mean is below the old one's by more than the user's threshold
and Welch's test says the gap is real (p < ``alpha``). The outcome is the worst of:
``failed`` (the new build crashed or gave no result), ``wrong`` (the correctness check
found it suspect or failed), ``slower``, else ``pass``. Each gate run becomes one record
of the profile's history, and ``trend_lines`` draws each workload across those records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backends import stats

STATUSES = ("pass", "slower", "wrong", "failed")
ALPHA = 0.05
_BARS = " ▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class SlowerPoint:
    point: str
    old_ts: float
    new_ts: float
    p_value: float

    @property
    def gap_pct(self) -> float:
        return (1.0 - self.new_ts / self.old_ts) * 100.0

    def words(self) -> str:
        return f"{self.point} {self.gap_pct:.0f}% slower ({self.old_ts:,.1f} -> {self.new_ts:,.1f} t/s)"


@dataclass(frozen=True)
class GateOutcome:
    status: str  # one of STATUSES
    line: str
    slower: tuple[SlowerPoint, ...] = ()
    means: Mapping[str, float] | None = None  # the new build's t/s per point


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def slower_points(old: Mapping[str, Sequence[float]], new: Mapping[str, Sequence[float]],
                  threshold_pct: float, alpha: float = ALPHA) -> list[SlowerPoint]:
    """Points where the new build is slower beyond ``threshold_pct`` and significantly."""
    found = []
    for point, old_samples in old.items():
        new_samples = new.get(point) or ()
        if not old_samples or not new_samples:
            continue
        old_ts, new_ts = _mean(old_samples), _mean(new_samples)
        if old_ts <= 0 or (1.0 - new_ts / old_ts) * 100.0 <= threshold_pct:
            continue
        test = stats.welch_from_samples(list(old_samples), list(new_samples))
        p_value = test.p_value if test is not None else (0.0 if new_ts < old_ts else 1.0)
        if p_value < alpha:
            found.append(SlowerPoint(point, old_ts, new_ts, p_value))
    return found


def drift_factor(fresh: Sequence[float], saved: Sequence[float], alpha: float = ALPHA) -> float:
    """How much faster (> 1) or slower (< 1) this machine runs the old build now than when
    its figures were saved, from one point measured again: the ratio of the means where
    Welch's test says the gap is real, else 1."""
    if not fresh or not saved:
        return 1.0
    test = stats.welch_from_samples(list(fresh), list(saved))
    if test is None or test.p_value >= alpha:
        return 1.0
    return _mean(fresh) / _mean(saved)


def baseline(saved: Mapping[str, Sequence[float]], factor: float,
             live: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """The old build's figures to judge against: the saved ones scaled by the machine's
    drift, and the points measured again as they were measured."""
    scaled = {point: [v * factor for v in samples] for point, samples in saved.items()}
    scaled.update({point: list(samples) for point, samples in live.items() if samples})
    return scaled


def judge_gate(new_name: str, against: str, old: Mapping[str, Sequence[float]],
               new: Mapping[str, Sequence[float]], *, failures: Sequence[str] = (),
               correctness: Mapping[str, Any] | None = None, threshold_pct: float = 5.0,
               ) -> GateOutcome:
    """The gate's status and its one line."""
    means = {point: _mean(samples) for point, samples in new.items() if samples}
    if failures or not means:
        why = failures[0] if failures else "no result at all"
        more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
        return GateOutcome("failed", f"gate FAILED: {new_name} crashed or gave no result: {why}{more}",
                           means=means)
    check = dict(correctness or {})
    if check.get("status") in ("suspect", "failed"):
        read = f" ({_read_words(check)})" if _read_words(check) else ""
        return GateOutcome("wrong", f"gate WRONG: {new_name} output {check.get('status')} against "
                           f"{check.get('reference')}: {check.get('reason', '')}".rstrip(": ") + read,
                           means=means)
    slower = tuple(slower_points(old, new, threshold_pct))
    if slower:
        shown = "; ".join(s.words() for s in slower[:4])
        more = f" and {len(slower) - 4} more" if len(slower) > 4 else ""
        return GateOutcome("slower", f"gate SLOWER: {new_name} vs {against}, beyond {threshold_pct:g}%: "
                           f"{shown}{more}", slower, means)
    compared = sum(1 for p in old if new.get(p))
    checked = (f"; output matches {check.get('reference')} ({_check_words(check)})"
               if check.get("status") == "pass" else "; correctness not checked (no reference)")
    return GateOutcome("pass", f"gate PASS: {new_name} vs {against}: {compared} points, none slower "
                       f"beyond {threshold_pct:g}%{checked}", means=means)


def _check_words(check: Mapping[str, Any]) -> str:
    kld, top1 = check.get("mean_kld"), check.get("top1_agreement")
    parts = []
    if isinstance(kld, (int, float)):
        parts.append(f"KLD {kld:.2g}")
    if isinstance(top1, (int, float)):
        parts.append(f"top-1 {top1 * 100:.1f}%")
    if read := _read_words(check):
        parts.append(read)
    return ", ".join(parts) or "within thresholds"


def _read_words(check: Mapping[str, Any]) -> str:
    """How much text the check read: "4 chunks of 128 tokens"."""
    chunks, context = check.get("chunks"), check.get("context")
    if not isinstance(chunks, int) or not isinstance(context, int):
        return ""
    return f"{chunks} chunk{'s' if chunks != 1 else ''} of {context} tokens"


def gate_record(outcome: GateOutcome, *, build: str, replaces: str, label: str, against: str,
                when: str) -> dict[str, Any]:
    """One entry of the profile's gate history (TOML-ready: no None values)."""
    return {"when": when, "build": build, "replaces": replaces, "label": label, "against": against,
            "status": outcome.status, "line": outcome.line,
            "points": {k: round(v, 3) for k, v in (outcome.means or {}).items()},
            "slower": [s.point for s in outcome.slower]}


def _bar(value: float, low: float, high: float) -> str:
    if high <= low:
        return _BARS[-1]
    return _BARS[1 + round((value - low) / (high - low) * (len(_BARS) - 2))]


def trend_lines(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per workload (test point), its t/s across the gate runs, oldest first, with a bar per
    run; the x axis names each run's build (number or commit) and its status."""
    if not history:
        return []
    labels = [str(h.get("label") or h.get("build")) for h in history]
    lines = ["x: " + "  ".join(f"{n + 1}={label} ({h.get('status')})"
                               for n, (label, h) in enumerate(zip(labels, history)))]
    points = list(dict.fromkeys(p for h in history for p in (h.get("points") or {})))
    for point in points:
        values = [(h.get("points") or {}).get(point) for h in history]
        known = [float(v) for v in values if isinstance(v, (int, float))]
        if not known:
            continue
        low, high = min(known), max(known)
        bars = "".join(_bar(float(v), low, high) if isinstance(v, (int, float)) else "·" for v in values)
        figures = " ".join(f"{v:,.1f}" if isinstance(v, (int, float)) else "-" for v in values)
        lines.append(f"{point:<16} {bars}  {figures} t/s")
    return lines

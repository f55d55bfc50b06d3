"""Failures are data: who failed where, and why; energy and heat beside speed."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from backends import stats
from profiles.contenders import Measure, default_value, is_moe_model_type, setting_label
from profiles.outcome import BuildStability, Contender, Energy
from profiles.records import Correctness, FailureRecord, ModelFacts
from profiles.wording import plural


@dataclass(frozen=True)
class PlacedFailure:
    """A failure with the contender and the classes it belongs to."""

    contender: str
    record: FailureRecord
    workload: str  # 'dense' | 'moe' | 'split'
    context: int
    phases: tuple[str, ...]


def contender_for(failure: FailureRecord, contenders: Sequence[Contender]) -> str:
    """The contender a failure belongs to: its build's, matched on the splitting settings."""
    mine = [c for c in contenders if c.build == failure.build]
    if len(mine) == 1:
        return mine[0].label
    for c in mine:
        if c.settings and all(str(failure.settings.get(k, default_value(k))) == v or
                              setting_label(k, str(failure.settings.get(k))) in c.label
                              for k, v in c.settings.items()):
            return c.label
    return failure.build


def place(failures: Iterable[FailureRecord], contenders: Sequence[Contender], models: Sequence[str],
          facts: ModelFacts | None) -> list[PlacedFailure]:
    out = []
    for f in failures:
        model = f.model or (models[0] if len(models) == 1 else "")
        ngl, ncmoe = f.settings.get("n_gpu_layers"), f.settings.get("n_cpu_moe")
        if (isinstance(ncmoe, int) and ncmoe > 0) or ngl == 0:
            workload = "split"
        elif facts is not None and facts.is_moe is not None:
            workload = "moe" if facts.is_moe else "dense"
        else:
            workload = "moe" if is_moe_model_type(model) else "dense"
        if f.point is not None:
            context = f.point.depth + f.point.n_prompt + f.point.n_gen
            phases: tuple[str, ...] = (f.point.kind,)
        else:
            context = f.depth or 0
            phases = (f.phase,) if f.phase else ("pp", "tg")
        out.append(PlacedFailure(contender_for(f, contenders), f, workload, context, phases))
    return out


def _why(records: Sequence[FailureRecord]) -> str:
    reasons = list(dict.fromkeys(r.reason for r in records))
    text = "; ".join(reasons[:2])
    return text + (f" (+{len(reasons) - 2} more)" if len(reasons) > 2 else "")


def failure_lines(placed: Sequence[PlacedFailure]) -> list[str]:
    """One line per contender: "Vulkan amdvlk failed 2 tests (exit 134, abort: ...)"."""
    by_contender: dict[str, list[FailureRecord]] = defaultdict(list)
    for p in placed:
        by_contender[p.contender].append(p.record)
    lines = []
    for name, records in by_contender.items():
        tests = list(dict.fromkeys(r.test for r in records))
        shown = ", ".join(tests[:3]) + (f" and {len(tests) - 3} more" if len(tests) > 3 else "")
        lines.append(f"{name} failed {plural(len(tests), 'test')} ({shown}): {_why(records)}")
    return lines


def build_stability(names: Sequence[str], result_counts: Mapping[str, int],
                    placed: Sequence[PlacedFailure],
                    correctness: Correctness,
                    build_of: Mapping[str, str]) -> dict[str, BuildStability]:
    out: dict[str, BuildStability] = {}
    for name in names:
        fails = [p.record for p in placed if p.contender == name]
        timeouts = sum(1 for f in fails if f.timed_out)
        crashes = sum(1 for f in fails if not f.timed_out and (f.signal or (f.exit_code or 0) != 0))
        check = dict(correctness.get(name) or correctness.get(build_of.get(name, name)) or {})
        status = check.get("status")
        parts = []
        if fails:
            ran = result_counts.get(name, 0)
            parts.append(f"ran {plural(ran, 'test')} and failed {len(fails)}: {_why(fails)}")
        if status in ("suspect", "failed"):
            kld = check.get("mean_kld")
            detail = f"; mean KLD {kld:.4g}" if isinstance(kld, (int, float)) and math.isfinite(kld) else ""
            reason = check.get("reason") or ""
            parts.append(f"output {status}{detail}" + (f" ({reason})" if reason else ""))
        out[name] = BuildStability(build=name, results=result_counts.get(name, 0), failures=len(fails),
                                   timeouts=timeouts, crashes=crashes,
                                   correctness=str(status) if status is not None else None,
                                   stable=not fails and status not in ("suspect", "failed"),
                                   note="; ".join(parts) or "no failures",
                                   reasons=tuple(dict.fromkeys(f.reason for f in fails)))
    return out


def energy(contender: str, measures: Sequence[Measure]) -> Energy:
    """Tokens per joule (median over the class's tests), peak VRAM, throttling. Figures
    taken over the counted repetitions (``energy_method``) carry their spread; an older
    run's block power gives the figure without one."""
    per_joule: list[float] = []
    peaks, throttled, spreads, measured = [], [], [], []
    for m in measures:
        for t in m.telemetry:
            power = t.get("mean_power_w")
            if t.get("energy_method"):
                measured.append(t)
                per_j, spread = t.get("tokens_per_joule"), t.get("tokens_per_joule_sd")
                if isinstance(per_j, (int, float)):
                    per_joule.append(float(per_j))
                    if isinstance(spread, (int, float)):
                        spreads.append(float(spread))
            elif isinstance(power, (int, float)) and power > 0 and math.isfinite(m.mean):
                per_joule.append(m.mean / float(power))
            peak = t.get("peak_process_vram_bytes") or t.get("peak_vram_bytes")
            if isinstance(peak, (int, float)) and peak > 0:
                peaks.append(int(peak))
            hot = t.get("throttled")
            if isinstance(hot, bool):
                throttled.append(hot)
    idle = [v for t in measured if isinstance(v := t.get("idle_power_w"), (int, float))]
    return Energy(contender=contender,
                  tokens_per_joule=stats.median(per_joule) if per_joule else None,
                  peak_vram_bytes=max(peaks) if peaks else None,
                  throttled=any(throttled) if throttled else None,
                  tokens_per_joule_sd=stats.median(spreads) if spreads else None,
                  method=str(measured[0]["energy_method"]) if measured else None,
                  idle_power_w=float(idle[0]) if idle else None,
                  note=next((str(t["energy_note"]) for t in measured if t.get("energy_note")), None))

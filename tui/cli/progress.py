"""What ``bench`` and ``resume`` print while a sweep runs, and the table at its end."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

from backends.journal.journal import RunEvent, event_to_json
from backends.journal.sweep import (
    CoolingWaited,
    PointDecided,
    PointFailed,
    PointProgress,
    ResultReceived,
    SweepFinished,
    SweepNote,
    SweepStarted,
    TelemetryRecorded,
    TestPoint,
)
from backends.journal.tune import TUNE_EVENT_TYPES
from backends.sweep.outcomes import PointResult, point_failures, point_results
from backends.text import printable
from backends.tune.words import describe_tune
from profiles.format import format_rate, format_ratio, render_table
from tui.cli import exits
from tui.cli.common import say


class SweepPrinter:
    """Progress lines on stderr, then on stdout the table (``text``), one JSON document
    with every event (``json``), or every event as a JSON line as it comes (``jsonl``)."""

    def __init__(self, output: str = "text") -> None:
        self.output = output
        self.events: list[RunEvent] = []
        self.documents: list[Mapping[str, object]] = []  # every event as JSON, for ``json``
        self.started: SweepStarted | None = None
        self.finished: SweepFinished | None = None

    def show(self, event: RunEvent) -> None:
        if not isinstance(event, TelemetryRecorded):
            self.events.append(event)
        if self.output == "jsonl":
            print(json.dumps(event_to_json(event)), flush=True)
        elif self.output == "json":
            self.documents.append(event_to_json(event))
        if isinstance(event, SweepStarted):
            self.started = event
        elif isinstance(event, SweepFinished):
            self.finished = event
        if self.output != "jsonl":
            line, transient = describe(event)
            if line:
                say(line, transient=transient)

    def finish(self, *, cancelled: bool) -> tuple[int, Path | None]:
        """Say how the run ended, print the table of the whole journal; the exit code
        (``tui.cli.exits``) and the run folder."""
        started = self.started
        run_dir = Path(started.run_dir) if started is not None else None
        problem = self.finished.problem if self.finished is not None else ""
        if self.output == "json":
            self.print_document(cancelled, run_dir)
        if cancelled or problem:
            say(f"stopped: {problem}" if problem else
                "cancelled: every llama.cpp process was stopped; results so far are in the journal")
            if started is not None and run_dir is not None:
                say(f"journal: {run_dir / 'journal.jsonl'}  (continue with `llamaduel resume {started.run_id}`)")
            return (exits.STOPPED if problem else exits.CANCELLED), None
        if started is None or run_dir is None:
            return exits.NO_COMPARISON, run_dir
        events = whole_run(run_dir, self.events)
        if self.output == "text":
            from backends.sweep.conditions import conditions

            say("", transient=False)
            print(side_by_side_table(started.builds, events))
            taken = conditions(events)
            if taken:
                print("\nhow these figures were taken:" + "".join(f"\n- {printable(line)}" for line in taken))
            for line in tuning_text(events):
                print(printable(line))
            if self.finished is not None and self.finished.overhead:
                from backends.sweep.overhead import overhead_line

                print(f"\n{overhead_line(self.finished.overhead)}")
            print(f"\njournal: {run_dir / 'journal.jsonl'}")
        status, lines = sweep_status(events)
        for line in lines:
            say(line)
        return status, run_dir

    def print_document(self, cancelled: bool, run_dir: Path | None) -> None:
        """The run as one JSON document: where it is, how it ended, every event."""
        problem = self.finished.problem if self.finished is not None else None
        print(json.dumps({
            "run_id": self.started.run_id if self.started is not None else None,
            "run_dir": str(run_dir) if run_dir else None,
            "journal": str(run_dir / "journal.jsonl") if run_dir else None,
            "state": "cancelled" if cancelled else "stopped" if problem else "finished",
            "problem": problem or None, "events": self.documents}, indent=1), flush=True)


def tuning_text(events: list[RunEvent]) -> list[str]:
    """What tuning was worth and the duel both ways (a tuned run), and what else differs."""
    from profiles.confounds import confound_line, confounds
    from profiles.tuning import tuning_from_events, worth_text

    lines: list[str] = []
    tuning = tuning_from_events(events)
    if tuning is not None:
        lines += ["", "tuned:"]
        lines += [f"- {worth_text(c)}" for c in tuning.contenders]
        lines += [f"- {line}" for line in tuning.lines]
    if differences := confounds(events):
        lines += ["", confound_line(differences)]
    return lines


def whole_run(run_dir: Path, seen: list[RunEvent]) -> list[RunEvent]:
    """Every event of the run's journal (a resumed run's earlier sessions too), or what
    this session saw when the journal cannot be read back."""
    from backends.sweep import read_journal

    try:
        return list(read_journal(run_dir))
    except OSError:
        return seen


def sweep_status(events: list[RunEvent]) -> tuple[int, list[str]]:
    """The exit code of a sweep from its journal's events, and a line per contender that
    failed or lacks points: how many, and the first reason."""
    starts = [e for e in events if isinstance(e, SweepStarted)]
    measured = {(r.build, r.result.point.key) for r in point_results(events)}
    reasons = {(f.build, f.point.key): f.reason for f in point_failures(events)}
    if starts:
        planned, builds = {p.key for p in starts[-1].points}, tuple(starts[-1].builds)
    else:  # results written without a start (an older tool's journal): what they hold
        seen = [*measured, *reasons]
        planned, builds = {key for _, key in seen}, tuple(dict.fromkeys(name for name, _ in seen))
    done, failed, lines = {}, {}, []
    for build in builds:
        missing = sorted(k for k in planned if (build, k) not in measured)
        done[build], failed[build] = len(planned) - len(missing), len(missing)
        if missing:
            why = next((reasons[(build, k)] for k in missing if (build, k) in reasons), "no result")[:160]
            lines.append(f"{build}: {len(missing)} of {len(planned)} points failed ({why})")
    return exits.comparison_status(done, failed), lines


def describe(event: RunEvent) -> tuple[str, bool]:
    """One line for an event (and whether it is a passing one), or ''."""
    if isinstance(event, SweepStarted):
        notes = "".join(f"\nnote: {n}" for n in event.notes)
        spec = event.spec
        reps = (f"-r auto ({spec.get('repetitions', 3)}-{spec.get('max_repetitions', 10)})"
                if spec.get("adaptive") else f"-r {spec.get('repetitions')}")
        names = [b + (f" on {event.contenders[b]['host']}" if event.contenders.get(b, {}).get("host")
                      else "") for b in event.builds]
        return (f"run {event.run_id}: {len(event.points)} test points x {len(event.builds)} builds "
                f"({', '.join(names)}), {reps}{notes}"), False
    if isinstance(event, ResultReceived):
        r = event.result
        block = f" (block {event.block + 1})" if event.block else ""
        flag = "  THROTTLED" if event.throttled else ""
        return (f"{event.build:>12}  {r.point.name:<18} {format_rate(r.avg_ts):>10} t/s "
                f"± {format_rate(r.stddev_ts)}{energy_text(event.telemetry)}{block}{flag}"), False
    if isinstance(event, PointFailed):
        return f"{event.build:>12}  {event.point.name:<18} FAILED: {event.reason}", False
    if isinstance(event, PointProgress):
        return f"{event.build:>12}  {event.point.name:<18} {event.message}", True
    if isinstance(event, PointDecided) and event.outcome != "fixed":
        return f"{'':>12}  {event.point.name:<18} {event.reason}", False
    if isinstance(event, CoolingWaited):
        return f"{event.build:>12}  {event.point.name:<18} {event.message}", False
    if isinstance(event, SweepNote):
        return f"note: {event.message}", False
    if isinstance(event, TUNE_EVENT_TYPES):
        return describe_tune(event), False
    return "", False


def energy_text(telemetry: Mapping[str, object] | None) -> str:
    """``  1.03 ± 0.02 tok/J`` over the counted repetitions, or why there is none."""
    if not telemetry or not telemetry.get("energy_method"):
        return ""
    if not isinstance(telemetry.get("tokens_per_joule"), (int, float)):
        return "  energy: too short to measure"
    return "  " + ", ".join(_with_spread(telemetry, key, unit) for key, unit in (
        ("tokens_per_joule", "tok/J"), ("joules_per_token", "J/token")))


def _with_spread(figures: Mapping[str, object], key: str, unit: str) -> str:
    value, spread = figures.get(key), figures.get(f"{key}_sd")
    if not isinstance(value, (int, float)):
        return f"- {unit}"
    shown = f"{value:.3g}" + (f" ± {spread:.2g}" if isinstance(spread, (int, float)) else "")
    return f"{shown} {unit}"


def side_by_side_table(builds: tuple[str, ...] | list[str], events: list[RunEvent]) -> str:
    """One row per test point, tok/s ± stddev per contender, the fastest and its lead."""
    results = point_results(events)
    cells: dict[str, dict[str, str]] = {}
    speeds: dict[str, dict[str, float]] = {}
    order: dict[str, TestPoint] = {}
    for item in results:
        point = item.result.point
        order.setdefault(point.key, point)
        cells.setdefault(point.key, {})[item.build] = _cell(item)
        speeds.setdefault(point.key, {})[item.build] = item.result.avg_ts
    for failure in point_failures(events):
        order.setdefault(failure.point.key, failure.point)
        why = " (time-out)" if failure.timed_out else f" ({failure.signal})" if failure.signal else ""
        cells.setdefault(failure.point.key, {})[failure.build] = "failed" + why
    rows = []
    for point in sorted(order.values(), key=lambda p: (p.depth, p.kind != "pp", p.n_prompt, p.n_gen)):
        rows.append([point.name] + [cells[point.key].get(b, "-") for b in builds]
                    + [_lead(speeds.get(point.key, {}))])
    headers = ["test"] + [f"{b} t/s" for b in builds] + ["fastest"]
    return render_table(headers, rows, markdown=not sys.stdout.isatty(),
                        right=range(1, len(builds) + 1))


def _cell(item: PointResult) -> str:
    r = item.result
    text = f"{format_rate(r.avg_ts)} ± {format_rate(r.stddev_ts)}"
    if len(r.samples_ts) and item.decision is not None and item.decision.outcome != "fixed":
        text += f" (n={len(r.samples_ts)})"
    return text + (" throttled" if item.throttled else "")


def _lead(speeds: dict[str, float]) -> str:
    if len(speeds) < 2:
        return ""
    ranked = sorted(speeds.items(), key=lambda kv: kv[1], reverse=True)
    (top, best), (_, second) = ranked[0], ranked[1]
    return f"{top} {format_ratio(best / second)}" if second > 0 else top

"""``llamaduel runs`` and ``llamaduel resume``: the journals of earlier runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from profiles.format import render_table
from tui.cli import CommandError
from tui.cli.bench import add_json_options, drive, output_mode
from tui.cli.common import Subparsers, add_fallback_option, refuse_cpu_fallback


def register(subparsers: Subparsers) -> None:
    resume = subparsers.add_parser("resume", help="continue an interrupted sweep from its journal",
                                   description="Continue a run without redoing finished points.")
    resume.add_argument("run", help="a run id (see `llamaduel runs`) or run folder")
    resume.add_argument("--retry-failed", action="store_true", help="run failed points again")
    add_json_options(resume)
    add_fallback_option(resume)
    resume.set_defaults(func=cmd_resume)

    runs = subparsers.add_parser("runs", help="list run journals, newest first")
    runs.add_argument("--json", action="store_true", help="print the runs as one JSON list")
    runs.set_defaults(func=cmd_runs)


def cmd_resume(options: argparse.Namespace) -> int:
    from backends.paths import runs_root
    from backends.sweep import SweepControl, SweepError, resume
    from backends.sweep.resume import probe_recorded

    run_dir = Path(options.run)
    if not run_dir.is_dir():
        run_dir = runs_root() / options.run
    if not run_dir.is_dir():
        raise CommandError(f"no run {options.run!r}: see `llamaduel runs`")
    report_damage(run_dir)
    try:
        builds = probe_recorded(run_dir)
        if not options.allow_cpu_fallback:
            for build in builds:
                refuse_cpu_fallback(build)
        control = SweepControl()
        events = resume(run_dir, builds=builds, retry_failed=options.retry_failed, control=control)
        return drive(events, output_mode(options), control=control)[0]
    except SweepError as error:
        raise CommandError(str(error)) from None


def report_damage(run_dir: Path) -> None:
    """Each line of the journal that cannot be read, once, before the run goes on."""
    from backends.sweep import read_journal
    from tui.cli.common import say

    try:
        journal = read_journal(run_dir)
    except OSError:
        return  # resume says what is missing
    for line in journal.report():
        say(line)
    from backends.journal.damage import missing_results

    for missing in missing_results(journal.events):
        say(missing.again)


def cmd_runs(options: argparse.Namespace) -> int:
    from backends.sweep import list_runs

    runs = list_runs()
    if options.json:
        print(json.dumps([{"run_id": run.run_id, "run_dir": str(run.run_dir), "model": run.model,
                           "builds": list(run.builds), "done": run.done, "total": run.total,
                           "finished": run.finished, "problem": run.problem or None}
                          for run in runs], indent=1))
        return 0
    if not runs:
        print("no runs yet: start one with `llamaduel bench`")
        return 0
    rows = []
    for run in runs:
        state = "finished" if run.finished else f"interrupted: `llamaduel resume {run.run_id}`"
        rows.append([run.run_id, ", ".join(run.builds), f"{run.done}/{run.total}", state])
    print(render_table(["run", "builds", "points", "state"], rows, right=[2]))
    for run in runs:
        if run.problem:
            print(f"note: {run.problem}")
    return 0

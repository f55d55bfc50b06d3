"""``llamaduel bench``: a sweep of llama-bench over two or more contenders, side by side.

Progress goes to stderr as one line per event, the side-by-side table to stdout, so
scripts can keep the table and still watch the run. ``--json`` prints the run as one JSON
document at its end instead, ``--jsonl`` every event as a JSON line as it comes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tui.cli import CommandError
from tui.cli.common import (
    Subparsers,
    add_contender_options,
    add_fallback_option,
    cancellable,
    load_builds,
    load_model,
    make_contenders,
)
from tui.cli.progress import SweepPrinter

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.journal.journal import RunEvent
    from backends.journal.tune import TuneSpec
    from backends.models import ModelInfo
    from backends.sweep import SweepControl, SweepSpec
    from backends.telemetry import Telemetry


def register(subparsers: Subparsers) -> None:
    bench = subparsers.add_parser(
        "bench", help="run a sweep of llama-bench on two or more builds, side by side",
        description="Run llama-bench for each contender on one model, taking turns per test point "
        "(ABBA), and print a side-by-side table. Every event is journalled to the run folder.")
    bench.add_argument("--build", action="append", default=[], metavar="NAME=[HOST:]PATH", required=True,
                       help="a llama.cpp build folder (or its llama-bench); HOST: an ssh destination "
                       "(user@host or a ~/.ssh/config alias) it is on; repeat for each build")
    bench.add_argument("--host", action="append", default=[], metavar="NAME=HOST",
                       help="run build NAME's tools on HOST over ssh (its PATH is a path there)")
    bench.add_argument("--model", required=True, type=Path,
                       help="the GGUF model file (for builds on other hosts: its path there)")
    bench.add_argument("--model-on", action="append", default=[], metavar="HOST=PATH",
                       help="the model's path on HOST when it is not --model's")
    bench.add_argument("--preset", default="chat",
                       help="seed-sweep, chat, long-doc or moe-split (default: chat)")
    add_grid_options(bench)
    add_contender_options(bench)
    add_fallback_option(bench)
    add_measurement_options(bench)
    add_tune_options(bench)
    order = bench.add_argument_group("scheduling")
    order.add_argument("--granularity", choices=("auto", "point", "resident", "depth", "build"),
                       help="llama-bench processes: auto (default: one loaded per build where the models fit "
                       "side by side, else chosen from the first points' load time), "
                       "one per test point, one loaded per build paused between points, per depth, "
                       "or per build")
    order.add_argument("--no-interleave", action="store_true",
                       help="all of one build, then the next (default: A B, B A per test point)")
    order.add_argument("--parallel", action="store_true",
                       help="run builds at the same time (only when they use different devices)")
    bench.add_argument("--telemetry", choices=("auto", "off"), default="auto",
                       help="sample GPU and host telemetry beside the run (default: auto)")
    bench.add_argument("--run-dir", type=Path, help="where to keep the journal (default: data folder)")
    bench.add_argument("--save", metavar="NAME",
                       help="save the results and the verdict as a profile with this name")
    bench.add_argument("--store", type=Path, help="profile folder for --save (default: data folder)")
    add_json_options(bench)
    bench.set_defaults(func=cmd_bench)


def add_json_options(parser: argparse.ArgumentParser) -> None:
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true",
                        help="print the run as one JSON document at its end (every event)")
    output.add_argument("--jsonl", action="store_true",
                        help="print every event as a JSON line as it comes")


def output_mode(options: argparse.Namespace) -> str:
    return "json" if options.json else "jsonl" if options.jsonl else "text"


def add_grid_options(parser: argparse.ArgumentParser) -> None:
    from backends.sweep import GRID

    grid = parser.add_argument_group("grid (overrides the preset)")
    for setting in GRID:
        flags = [f for f in (setting.flag, setting.option) if f]
        grid.add_argument(*flags, dest=setting.dest, help=setting.help, choices=setting.choices or None)
    grid.add_argument("--extra", action="append", default=[], metavar="ARG",
                      help="a raw llama-bench argument, passed as is (repeatable)")
    grid.add_argument("--timeout", type=float, help="seconds per test point before it counts as hung")


def add_measurement_options(parser: argparse.ArgumentParser) -> None:
    measure = parser.add_argument_group("measurement")
    measure.add_argument("-r", "--repetitions", metavar="N|auto",
                         help="timed repetitions per point: a number, or auto (the presets' "
                         "default): 3, then more in ABBA order until the gap is decided")
    measure.add_argument("--max-repetitions", type=int, metavar="N",
                         help="the most repetitions -r auto adds up to (default 10)")
    measure.add_argument("--cooldown", metavar="auto|off|SECONDS",
                         help="thermal guard before every block: wait until the GPU is back near "
                         "idle (auto, at most 120 s), not at all (off), or at most SECONDS")
    measure.add_argument("--max-temp", type=float, metavar="C",
                         help="start a block only below this temperature (default: near idle)")


def add_tune_options(parser: argparse.ArgumentParser) -> None:
    tune = parser.add_argument_group("tuning (a fair fight: each build at its own best settings)")
    tune.add_argument("--tune", action="store_true",
                      help="before the duel, search each build's best settings on a short probe "
                      "(its largest prompt and a short generation at the middle depth)")
    tune.add_argument("--tune-budget", default="5m", metavar="TIME",
                      help="time for the whole tune, shared equally by the builds (default 5m)")
    tune.add_argument("--tune-free", default="ub", metavar="LIST",
                      help="settings the tune may change: ub (default; -b follows), fa, kv, ncmoe, "
                      "ngl, threads")


def make_tune(options: argparse.Namespace) -> TuneSpec | None:
    """The tune options, or None without --tune."""
    if not getattr(options, "tune", False):
        return None
    from backends.journal.tune import TuneSpec
    from backends.sweep import SweepError
    from backends.tune.grid import parse_budget, parse_free

    try:
        return TuneSpec(budget_s=parse_budget(options.tune_budget), free=parse_free(options.tune_free))
    except SweepError as error:
        raise CommandError(str(error)) from None


def make_spec(options: argparse.Namespace) -> SweepSpec:
    """The preset with what the command line changes (checked with the run's request)."""
    from backends.sweep import GRID, SweepError, preset
    from backends.sweep.grid import read_fields

    try:
        spec = preset(options.preset)
        texts = {f.name: text for f in GRID if (text := getattr(options, f.dest, None)) is not None}
        changes = read_fields(texts, lambda setting: setting.option)
        for name in ("timeout", "max_repetitions", "cooldown", "max_temp"):
            if (value := getattr(options, name, None)) is not None:
                changes[name] = value
        changes.update(_repetitions(options.repetitions))
        if options.extra:
            changes["extra_args"] = tuple(options.extra)
        # Keeps the preset's name; the fields say what changed.
        return spec.with_changes(**changes) if changes else spec
    except SweepError as error:
        raise CommandError(str(error)) from None


def _repetitions(text: str | None) -> dict[str, object]:
    if text is None:
        return {}
    from backends.sweep.adaptive import repetition_changes

    try:
        return repetition_changes(text)
    except ValueError:
        raise CommandError(f"-r {text!r}: give a whole number or auto") from None


def cmd_bench(options: argparse.Namespace) -> int:
    from backends.remote.ssh import close_hosts

    try:
        return _bench(options)
    finally:
        close_hosts()  # the ssh master connections of this run


def _bench(options: argparse.Namespace) -> int:
    from backends.sweep import DEFAULT_GRANULARITY, RunRequest, SweepControl, SweepError, run_sweep
    from tui.cli.remote import host_models, host_telemetry

    builds, servers = make_contenders(load_builds(options.build, hosts=options.host,
                                                   allow_cpu_fallback=options.allow_cpu_fallback), options)
    local = any(not b.host for b in builds)
    model, model_paths = host_models(builds, options.model, options.model_on,
                                     load_model(options.model) if local else None)
    request = RunRequest(builds, model, make_spec(options), run_dir=options.run_dir,
                         interleave=not options.no_interleave, parallel=options.parallel,
                         granularity=options.granularity or DEFAULT_GRANULARITY,
                         model_paths=model_paths, local_rpc=servers, tune=make_tune(options))
    if options.save:
        from profiles.store import ProfileError, check_name

        try:
            check_name(options.save)
        except ProfileError as error:
            raise CommandError(str(error)) from None
    telemetry = _telemetry(options.telemetry) if local else None
    remote = host_telemetry(builds) if options.telemetry != "off" else {}
    printer, control = SweepPrinter(output_mode(options)), SweepControl()
    try:
        status, run_dir = drive(run_sweep(request, telemetry=telemetry, host_telemetry=remote, control=control),
                                printer=printer, control=control)
    except SweepError as error:
        raise CommandError(str(error)) from None
    finally:
        if telemetry is not None:
            telemetry.close()
        for source in remote.values():
            source.close()
    if options.save and run_dir is not None:
        save_profile(options.save, printer.events, run_dir, model, builds, options.store,
                     quiet=output_mode(options) != "text")
    return status


def save_profile(name: str, events: Sequence[RunEvent], run_dir: Path, model: ModelInfo | None,
                 builds: Sequence[BuildInfo], store_path: Path | None, *, quiet: bool = False) -> None:
    """Save the run's profile from its events as they passed (the journal is not read back);
    its path goes to stderr when stdout carries JSON."""
    from profiles.model import profile_from_journal
    from profiles.store import ProfileError, ProfileStore

    profile = profile_from_journal(events, name=name, model_info=model, builds=builds)
    try:
        path = ProfileStore(store_path).save(profile)
    except (ProfileError, OSError) as error:
        raise CommandError(f"the profile could not be saved ({error}); the run is in {run_dir}") from None
    print(f"profile: {path}", file=sys.stderr if quiet else sys.stdout)


def _telemetry(choice: str) -> Telemetry | None:
    if choice == "off":
        return None
    from backends.telemetry import Telemetry

    return Telemetry()


def drive(events: AsyncIterator[RunEvent], output: str = "text", *,
          printer: SweepPrinter | None = None, control: SweepControl | None = None) -> tuple[int, Path | None]:
    """Run the sweep to its end, printing as it goes (``printer`` keeps its events); the
    exit code and the run folder. ``control``: the one the sweep was started with, whose
    events journalled as a cancel landed are shown too, so the output holds what the
    journal holds."""
    from backends.sweep import JournalError

    printer = printer or SweepPrinter(output)
    try:
        finished = asyncio.run(cancellable(events, printer.show))
    except JournalError as error:
        raise CommandError(str(error)) from None
    if not finished and control is not None:
        for event in control.undelivered:
            printer.show(event)
    return printer.finish(cancelled=not finished)

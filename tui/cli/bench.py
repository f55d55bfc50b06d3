"""``llamaduel bench``: a sweep of llama-bench over two or more contenders, side by side.

Progress goes to stderr as one line per event, the side-by-side table to stdout, so
scripts can keep the table and still watch the run. ``--json`` prints every event as a
JSON line instead.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from tui.cli import CommandError
from tui.cli.common import add_contender_options, cancellable, load_builds, load_model, make_contenders


def register(subparsers: Any) -> None:
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
    add_measurement_options(bench)
    add_tune_options(bench)
    order = bench.add_argument_group("scheduling")
    order.add_argument("--granularity", choices=("auto", "point", "resident", "depth", "build"),
                       help="llama-bench processes: auto (default: measured from the first points), "
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
    bench.add_argument("--json", action="store_true", help="print every event as a JSON line")
    bench.set_defaults(func=cmd_bench)


def add_grid_options(parser: argparse.ArgumentParser) -> None:
    grid = parser.add_argument_group("grid (overrides the preset)")
    grid.add_argument("-p", "--prompts", help="prompt sizes, e.g. 512 or 128,512")
    grid.add_argument("-n", "--gens", help="generation sizes, e.g. 128")
    grid.add_argument("-d", "--depths", help="context depths, e.g. 0,4k,16k")
    grid.add_argument("-fa", "--flash-attn", choices=("on", "off", "default"))
    grid.add_argument("-ctk", "--cache-type-k")
    grid.add_argument("-ctv", "--cache-type-v")
    grid.add_argument("-ngl", "--n-gpu-layers", type=int)
    grid.add_argument("-ncmoe", "--n-cpu-moe", type=int)
    grid.add_argument("--mmap", choices=("on", "off", "default"))
    grid.add_argument("-t", "--threads", type=int)
    grid.add_argument("-b", "--batch", type=int)
    grid.add_argument("-ub", "--ubatch", type=int)
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


def make_tune(options: argparse.Namespace) -> Any:
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


def make_spec(options: argparse.Namespace) -> Any:
    from backends.sweep import SweepError, parse_int_list, preset

    try:
        spec = preset(options.preset)
        changes: dict[str, Any] = {}
        for option, name, label in (("prompts", "prompts", "--prompts"), ("gens", "gens", "--gens"),
                                    ("depths", "depths", "--depths")):
            text = getattr(options, option)
            if text:
                changes[name] = parse_int_list(text, label)
        for option, name in (("flash_attn", "flash_attn"), ("mmap", "mmap")):
            choice = getattr(options, option)
            if choice:
                changes[name] = {"on": True, "off": False, "default": None}[choice]
        for option, name in (("cache_type_k", "type_k"), ("cache_type_v", "type_v"),
                             ("n_gpu_layers", "n_gpu_layers"), ("threads", "threads"),
                             ("batch", "batch"), ("ubatch", "ubatch"), ("timeout", "timeout"),
                             ("max_repetitions", "max_repetitions"), ("cooldown", "cooldown"),
                             ("max_temp", "max_temp")):
            value = getattr(options, option, None)
            if value is not None:
                changes[name] = value
        changes.update(_repetitions(options.repetitions))
        if options.n_cpu_moe is not None:
            changes.update(n_cpu_moe=options.n_cpu_moe, auto_ncmoe=False)
        if options.extra:
            changes["extra_args"] = tuple(options.extra)
        if changes:
            spec = spec.with_changes(**changes)  # keeps the preset's name; the fields say what changed
        spec.validate()
        return spec
    except SweepError as error:
        raise CommandError(str(error)) from None


def _repetitions(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    if text.strip().lower() == "auto":
        return {"adaptive": True, "repetitions": 3}
    try:
        return {"adaptive": False, "repetitions": int(text)}
    except ValueError:
        raise CommandError(f"-r {text!r}: give a whole number or auto") from None


def cmd_bench(options: argparse.Namespace) -> int:
    from backends.remote import close_hosts

    try:
        return _bench(options)
    finally:
        close_hosts()  # the ssh master connections of this run


def _bench(options: argparse.Namespace) -> int:
    from backends.sweep import SweepError, run_sweep
    from tui.cli.remote import host_models, host_telemetry

    builds, servers = make_contenders(load_builds(options.build, hosts=options.host), options)
    local = any(not b.host for b in builds)
    model, model_paths = host_models(builds, options.model, options.model_on,
                                     load_model(options.model) if local else None)
    spec = make_spec(options)
    telemetry = _telemetry(options.telemetry) if local else None
    remote = host_telemetry(builds) if options.telemetry != "off" else {}
    kwargs: dict[str, Any] = dict(run_dir=options.run_dir, telemetry=telemetry, local_rpc=servers,
                                  interleave=not options.no_interleave, parallel=options.parallel,
                                  host_telemetry=remote, model_paths=model_paths,
                                  tune=make_tune(options))
    if options.granularity:
        kwargs["granularity"] = options.granularity
    if options.save:
        from profiles.store import ProfileError, check_name

        try:
            check_name(options.save)
        except ProfileError as error:
            raise CommandError(str(error)) from None
    try:
        status, run_dir = drive(run_sweep(builds, model, spec, **kwargs), json_lines=options.json)
    except SweepError as error:
        raise CommandError(str(error)) from None
    finally:
        if telemetry is not None:
            telemetry.close()
        for source in remote.values():
            source.close()
    if options.save and run_dir is not None:
        save_profile(options.save, run_dir, model, builds, options.store)
    return status


def save_profile(name: str, run_dir: Path, model: Any, builds: Sequence[Any],
                 store_path: Path | None) -> None:
    from backends.sweep import read_journal
    from profiles.model import profile_from_journal
    from profiles.store import ProfileError, ProfileStore

    profile = profile_from_journal(read_journal(run_dir), name=name, model_info=model, builds=builds)
    try:
        path = ProfileStore(store_path).save(profile)
    except (ProfileError, OSError) as error:
        raise CommandError(f"the profile could not be saved ({error}); the run is in {run_dir}") from None
    print(f"profile: {path}")


def _telemetry(choice: str) -> Any:
    if choice == "off":
        return None
    from backends.telemetry import Telemetry

    return Telemetry()


def drive(events: AsyncIterator[Any], *, json_lines: bool) -> tuple[int, Path | None]:
    """Run the sweep to its end, printing as it goes; the exit code and the run folder."""
    from backends.sweep import JournalError
    from tui.cli.progress import SweepPrinter

    printer = SweepPrinter(json_lines)
    try:
        finished = asyncio.run(cancellable(events, printer.show))
    except JournalError as error:
        raise CommandError(str(error)) from None
    return printer.finish(cancelled=not finished)

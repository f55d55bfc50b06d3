"""Headless sweeps: ``llamaduel bench``, ``resume``, ``runs`` and ``toolchain``.

Progress goes to stderr as one line per event, the side-by-side table to stdout, so
scripts can keep the table and still watch the run. ``--json`` prints every event as a
JSON line instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from tui.cli import CommandError


def register(subparsers: Any) -> None:
    bench = subparsers.add_parser(
        "bench", help="run a sweep of llama-bench on two or more builds, side by side",
        description="Run llama-bench for each build on one model, taking turns per test point, "
        "and print a side-by-side table. Every event is journalled to the run folder.")
    bench.add_argument("--build", action="append", default=[], metavar="NAME=PATH", required=True,
                       help="a llama.cpp build folder (or its llama-bench); repeat for each build")
    bench.add_argument("--model", required=True, type=Path, help="the GGUF model file")
    bench.add_argument("--preset", default="chat",
                       help="seed-sweep, chat, long-doc or moe-split (default: chat)")
    grid = bench.add_argument_group("grid (overrides the preset)")
    grid.add_argument("-p", "--prompts", help="prompt sizes, e.g. 512 or 128,512")
    grid.add_argument("-n", "--gens", help="generation sizes, e.g. 128")
    grid.add_argument("-d", "--depths", help="context depths, e.g. 0,4k,16k")
    grid.add_argument("-r", "--repetitions", type=int)
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
    order = bench.add_argument_group("scheduling")
    order.add_argument("--granularity", choices=("point", "depth", "build"),
                       help="one llama-bench process per test point (default), per depth, or per build")
    order.add_argument("--no-interleave", action="store_true",
                       help="all of one build, then the next (default: A B A B per test point)")
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

    resume = subparsers.add_parser("resume", help="continue an interrupted sweep from its journal",
                                   description="Continue a run without redoing finished points.")
    resume.add_argument("run", help="a run id (see `llamaduel runs`) or run folder")
    resume.add_argument("--retry-failed", action="store_true", help="run failed points again")
    resume.add_argument("--json", action="store_true", help="print every event as a JSON line")
    resume.set_defaults(func=cmd_resume)

    runs = subparsers.add_parser("runs", help="list run journals, newest first")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)

    tools = subparsers.add_parser(
        "toolchain", help="build llama.cpp's CPU and Vulkan tools from the pinned source",
        description="Build llama-bench, llama-completion and llama-perplexity for the CPU and "
        "Vulkan backends into the cache (the working default when you have no builds).")
    tools.add_argument("--backend", choices=("cpu", "vulkan", "all"), default="all")
    tools.add_argument("--jobs", type=int)
    tools.add_argument("--print-dir", action="store_true")
    tools.set_defaults(func=cmd_toolchain)


def make_spec(options: argparse.Namespace):
    from backends.sweep import SweepError, parse_int_list, preset

    try:
        spec = preset(options.preset)
        changes: dict[str, Any] = {}
        if options.prompts:
            changes["prompts"] = parse_int_list(options.prompts, "--prompts")
        if options.gens:
            changes["gens"] = parse_int_list(options.gens, "--gens")
        if options.depths:
            changes["depths"] = parse_int_list(options.depths, "--depths")
        if options.flash_attn:
            changes["flash_attn"] = {"on": True, "off": False, "default": None}[options.flash_attn]
        if options.mmap:
            changes["mmap"] = {"on": True, "off": False, "default": None}[options.mmap]
        for option, name in (("repetitions", "repetitions"), ("cache_type_k", "type_k"),
                             ("cache_type_v", "type_v"), ("n_gpu_layers", "n_gpu_layers"),
                             ("threads", "threads"), ("batch", "batch"), ("ubatch", "ubatch"),
                             ("timeout", "timeout")):
            value = getattr(options, option)
            if value is not None:
                changes[name] = value
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


def load_builds(arguments: Sequence[str], needs: str | None = "bench") -> list[Any]:
    """Probe each ``--build NAME=PATH``; one-line CommandError for the first that cannot serve.

    ``needs`` names the tool the command runs: ``bench`` (llama-bench), ``completion`` or
    ``perplexity``; None takes every build that exists, for commands that report a build's
    missing tool themselves. A build whose llama-bench is broken can still serve the others.
    """
    from backends.builds import parse_build_arg, probe_build

    if not arguments:
        raise CommandError("give at least one --build NAME=PATH")
    builds = []
    for argument in arguments:
        try:
            name, path = parse_build_arg(argument)
        except ValueError as error:
            raise CommandError(str(error)) from None
        folder = path.parent if path.is_file() else path
        if not folder.is_dir():
            raise CommandError(f"build {name!r}: no such folder {folder}")
        build = probe_build(path, name)
        if needs == "bench" and build.problem:
            raise CommandError(f"build {name!r} ({path}): {build.problem}")
        if needs not in (None, "bench") and getattr(build, needs) is None:
            why = f" ({build.problem})" if build.problem else ""
            raise CommandError(f"build {name!r}: no llama-{needs} in {build.folder}{why}")
        builds.append(build)
    if len({b.name for b in builds}) != len(builds):
        raise CommandError("each --build needs its own NAME")
    return builds


def load_model(path: Path):
    from backends.models import read_model

    if not path.exists():
        raise CommandError(f"model not found: {path}")
    model = read_model(path)
    if model.problem:
        raise CommandError(f"{path.name}: {model.problem}")
    return model


def cmd_bench(options: argparse.Namespace) -> int:
    from backends.runner import run_sweep
    from backends.sweep import SweepError

    builds = load_builds(options.build)
    model = load_model(options.model)
    spec = make_spec(options)
    telemetry = _telemetry(options.telemetry, builds)
    kwargs: dict[str, Any] = dict(run_dir=options.run_dir, telemetry=telemetry,
                                  interleave=not options.no_interleave, parallel=options.parallel)
    if options.granularity:
        kwargs["granularity"] = options.granularity
    if options.save:
        from profiles.store import ProfileError, check_name

        try:
            check_name(options.save)
        except ProfileError as error:
            raise CommandError(str(error)) from None
    try:
        events = run_sweep(builds, model, spec, **kwargs)
        status, run_dir = _consume(events, json_lines=options.json)
    except SweepError as error:
        raise CommandError(str(error)) from None
    finally:
        if telemetry is not None:
            telemetry.close()
    if options.save and run_dir is not None:
        _save_profile(options.save, run_dir, model, builds, options.store)
    return status


def _save_profile(name: str, run_dir: Path, model: Any, builds: Sequence[Any],
                  store_path: Path | None) -> None:
    from backends.runner import read_journal
    from profiles.model import profile_from_journal
    from profiles.store import ProfileStore

    profile = profile_from_journal(read_journal(run_dir), name=name, model_info=model, builds=builds)
    path = ProfileStore(store_path).save(profile)
    print(f"profile: {path}")


def cmd_resume(options: argparse.Namespace) -> int:
    from backends.paths import runs_root
    from backends.runner import resume
    from backends.sweep import SweepError

    run_dir = Path(options.run)
    if not run_dir.is_dir():
        run_dir = runs_root() / options.run
    if not run_dir.is_dir():
        raise CommandError(f"no run {options.run!r}: see `llamaduel runs`")
    try:
        return _consume(resume(run_dir, retry_failed=options.retry_failed), json_lines=options.json)[0]
    except SweepError as error:
        raise CommandError(str(error)) from None


def cmd_runs(options: argparse.Namespace) -> int:
    from backends.runner import list_runs

    runs = list_runs()
    if options.json:
        for run in runs:
            print(json.dumps({"run_id": run.run_id, "run_dir": str(run.run_dir), "model": run.model,
                              "builds": list(run.builds), "done": run.done, "total": run.total,
                              "finished": run.finished}))
        return 0
    if not runs:
        print("no runs yet: start one with `llamaduel bench`")
        return 0
    print(f"{'run':<40} {'builds':<24} {'points':>9}  state")
    for run in runs:
        state = "finished" if run.finished else "interrupted: `llamaduel resume " + run.run_id + "`"
        print(f"{run.run_id:<40} {','.join(run.builds)[:24]:<24} {run.done:>4}/{run.total:<4}  {state}")
    return 0


def cmd_toolchain(options: argparse.Namespace) -> int:
    from backends import toolchain

    argv = ["--backend", options.backend]
    if options.jobs:
        argv += ["--jobs", str(options.jobs)]
    if options.print_dir:
        argv.append("--print-dir")
    try:
        toolchain.main(argv)
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise CommandError(str(stop.code)) from None
    return 0


def _telemetry(choice: str, builds: Sequence[Any]):
    if choice == "off":
        return None
    try:
        from backends.telemetry import Telemetry
    except ImportError:
        return None
    return Telemetry()


def _consume(events: AsyncIterator[Any], *, json_lines: bool) -> tuple[int, Path | None]:
    """Drive the sweep; Ctrl-C and SIGHUP cancel it (the runner kills its children).

    Returns the exit code and the run folder."""
    return asyncio.run(_drive(events, json_lines))


async def _drive(events: AsyncIterator[Any], json_lines: bool) -> tuple[int, Path | None]:
    from backends.events import (PointFailed, PointProgress, ResultReceived, SweepFinished,
                                 SweepStarted, TelemetryRecorded, event_to_json)

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, task.cancel)
    started: SweepStarted | None = None
    results: list[ResultReceived] = []
    failures: list[PointFailed] = []
    finished: SweepFinished | None = None
    try:
        async for event in events:
            if json_lines:
                print(json.dumps(event_to_json(event)), flush=True)
            if isinstance(event, SweepStarted):
                started = event
                if not json_lines:
                    _say(f"run {event.run_id}: {len(event.points)} test points x "
                         f"{len(event.builds)} builds ({', '.join(event.builds)})")
                    for note in event.notes:
                        _say(f"note: {note}")
            elif isinstance(event, ResultReceived):
                results.append(event)
                if not json_lines:
                    r = event.result
                    _say(f"{event.build:>12}  {r.point.name:<18} {r.avg_ts:>10.2f} t/s ± {r.stddev_ts:.2f}")
            elif isinstance(event, PointFailed):
                failures.append(event)
                if not json_lines:
                    _say(f"{event.build:>12}  {event.point.name:<18} FAILED: {event.reason}")
            elif isinstance(event, PointProgress) and not json_lines:
                _say(f"{event.build:>12}  {event.point.name:<18} {event.message}", transient=True)
            elif isinstance(event, SweepFinished):
                finished = event
            elif isinstance(event, TelemetryRecorded):
                pass
    except asyncio.CancelledError:
        _say("cancelled: every llama-bench process was stopped; results so far are in the journal")
        if started is not None:
            _say(f"journal: {Path(started.run_dir) / 'journal.jsonl'}  "
                 f"(continue with `llamaduel resume {started.run_id}`)")
        return 130, None
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
    if not json_lines and started is not None:
        _say("", transient=False)
        print(side_by_side_table(started.builds, results, failures))
        print(f"\njournal: {Path(started.run_dir) / 'journal.jsonl'}")
    run_dir = Path(started.run_dir) if started is not None else None
    if finished is not None and finished.results == 0:
        return 1, run_dir
    return 0, run_dir


_transient_open = False


def _say(text: str, transient: bool = False) -> None:
    """Progress on stderr; transient lines overwrite each other on a terminal."""
    global _transient_open
    stream = sys.stderr
    if stream.isatty():
        if _transient_open:
            stream.write("\r\033[K")
        stream.write(text if transient else text + "\n")
        _transient_open = transient
    elif not transient:
        stream.write(text + "\n")
    stream.flush()


def side_by_side_table(builds: Sequence[str], results: Sequence[Any], failures: Sequence[Any]) -> str:
    """Markdown table: one row per test point, tok/s ± stddev per build, the fastest marked."""
    cells: dict[str, dict[str, str]] = {}
    speeds: dict[str, dict[str, float]] = {}
    order: list[Any] = []
    for event in results:
        point = event.result.point
        if point.key not in cells:
            order.append(point)
        cells.setdefault(point.key, {})[event.build] = (
            f"{event.result.avg_ts:.2f} ± {event.result.stddev_ts:.2f}")
        if not math.isnan(event.result.avg_ts):
            speeds.setdefault(point.key, {})[event.build] = event.result.avg_ts
    for event in failures:
        if event.point.key not in cells:
            order.append(event.point)
        cells.setdefault(event.point.key, {})[event.build] = "failed" + (
            " (time-out)" if event.timed_out else f" ({event.signal})" if event.signal else "")
    order.sort(key=lambda p: (p.depth, p.kind != "pp", p.n_prompt, p.n_gen))
    header = ["test"] + [f"{b} t/s" for b in builds] + ["fastest"]
    rows = [header, ["---"] + ["---:"] * len(builds) + ["---"]]
    for point in order:
        row_speeds = speeds.get(point.key, {})
        best = ""
        if len(row_speeds) >= 2:
            ranked = sorted(row_speeds.items(), key=lambda kv: kv[1], reverse=True)
            (top, top_v), (_, second_v) = ranked[0], ranked[1]
            best = f"{top} x{top_v / second_v:.2f}" if second_v > 0 else top
        rows.append([point.name] + [cells[point.key].get(b, "-") for b in builds] + [best])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows)

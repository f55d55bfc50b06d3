"""``llamaduel soak``: each build as llama-server for hours under mixed load, its answers checked.

    llamaduel soak --build rocm=~/llama.cpp/build/bin --build vk=~/llama.cpp/build-vk/bin \\
        --model model.gguf --duration 8h
    llamaduel soak --resume RUN_FOLDER

Progress goes to stderr (one line per event worth seeing), the summary to stdout: per build
the requests, probes, crashes (with the log's last error line), hangs, HTTP errors, wrong
answers (with both answers), restarts, memory growth and throughput drift. ``--save NAME``
puts the soak's figures into a profile beside its speed verdict. Exit code 0 when every
build was stable, 7 when one crashed or hung, 6 when one answered wrong, 1 when the soak
stopped short, 130 when it was cancelled (``--resume`` goes on).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tui.cli import CommandError, exits
from tui.cli.common import Subparsers, cancellable, say

if TYPE_CHECKING:
    from backends.journal.soak import SoakEvent
    from backends.soak import SoakBuild, SoakSpec, SoakSummary


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "soak", help="serve builds for hours under mixed load, counting crashes, hangs and wrong answers",
        description="Run each build's llama-server at once under mixed load (growing chats, long "
        "documents, several slots, idle gaps) for --duration, with fixed probes compared against "
        "the reference build's answers (mean KL divergence and top-1 agreement). A crashed or hung "
        "server is restarted and the soak goes on; everything is journalled as it happens.")
    parser.add_argument("--build", action="append", default=[], metavar="NAME=PATH",
                        help="a build folder with llama-server; repeat for each build")
    parser.add_argument("--model", "-m", type=Path, metavar="FILE", help="the GGUF model file")
    parser.add_argument("--duration", default="1h", metavar="TIME",
                        help="how long to soak: 8h, 30m, 90s (1h)")
    parser.add_argument("--reference", metavar="NAME",
                        help="the build whose answers are right (default: CPU, then the most trusted backend)")
    parser.add_argument("--slots", type=int, default=2, metavar="N", help="parallel slots per server (2)")
    parser.add_argument("-c", "--ctx-size", type=int, default=4096, metavar="N",
                        help="context allocated to each server, shared by its slots (4096)")
    parser.add_argument("-n", "--n-gen", type=int, default=64, metavar="N", help="tokens per answer (64)")
    parser.add_argument("--probe-every", type=float, default=30.0, metavar="S",
                        help="seconds between correctness probes per build (30)")
    parser.add_argument("--hang", type=float, default=120.0, metavar="S",
                        help="no answer for this long (a request's whole answer, or a probe's) is a hang: "
                        "the server is killed and restarted (120)")
    parser.add_argument("--idle", type=float, default=2.0, metavar="S", help="longest idle gap of a slot (2)")
    parser.add_argument("--window", type=float, default=60.0, metavar="S",
                        help="seconds between journalled memory and throughput figures (60)")
    parser.add_argument("-ngl", "--n-gpu-layers", type=int, default=999, metavar="N")
    parser.add_argument("-t", "--threads", type=int, metavar="N")
    parser.add_argument("--journal", metavar="FILE", help="JSONL journal (default: a new run folder)")
    parser.add_argument("--resume", metavar="RUN", help="go on with the soak in this run folder or journal")
    parser.add_argument("--save", metavar="PROFILE",
                        help="add the soak's figures to this profile (its stability beside the speed)")
    parser.add_argument("--require-stable", action="store_true",
                        help="with --save: a build that crashed, hung or answered wrong loses the "
                        "profile's recommendation to the fastest stable one, saying why")
    parser.add_argument("--store", type=Path, metavar="PATH", help="profile folder for --save")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    from tui.cli.common import add_fallback_option

    add_fallback_option(parser)
    parser.set_defaults(func=handle_soak)


def _spec(options: argparse.Namespace) -> SoakSpec:
    from backends.server import ServerSettings
    from backends.soak import SoakError, SoakSpec, parse_duration

    try:
        spec = SoakSpec(duration_s=parse_duration(options.duration), slots=options.slots,
                        ctx_size=options.ctx_size, n_gen=options.n_gen,
                        probe_every_s=options.probe_every, hang_s=options.hang, idle_s=options.idle,
                        window_s=options.window,
                        settings=ServerSettings(n_gpu_layers=options.n_gpu_layers,
                                                threads=options.threads))
    except SoakError as error:
        raise CommandError(str(error)) from None
    if problem := spec.problem():
        raise CommandError(problem)
    return spec


def _builds(arguments: list[str], allow_cpu_fallback: bool) -> list[SoakBuild]:
    from backends.soak import SoakBuild
    from tui.cli.common import load_builds

    return [SoakBuild(b.name, str(b.folder), dict(b.env), b.backend)
            for b in load_builds(arguments, needs="server", allow_cpu_fallback=allow_cpu_fallback)]


def handle_soak(options: argparse.Namespace) -> int:
    from backends.soak import SoakError, resume_soak, run_soak

    if options.save:
        _check_profile(options)
    if options.resume:
        events = resume_soak(Path(options.resume).expanduser())
    else:
        if not options.model:
            raise CommandError("give the model with --model FILE (or --resume RUN)")
        builds = _builds(options.build, options.allow_cpu_fallback)
        events = run_soak(builds, options.model.expanduser(), _spec(options),
                          reference=options.reference, journal_path=options.journal)
    printer = SoakPrinter()
    try:
        finished = asyncio.run(cancellable(events, printer.show))
    except SoakError as error:
        raise CommandError(str(error)) from None
    if not finished:
        say("soak cancelled: every server was stopped; the journal keeps what was measured")
    status = _report(printer.journal, options)
    return status if finished else exits.CANCELLED


def _check_profile(options: argparse.Namespace) -> None:
    from profiles.store import ProfileError, ProfileStore

    try:
        ProfileStore(options.store).load(options.save)
    except (ProfileError, OSError) as error:
        raise CommandError(f"--save {options.save}: {error}") from None


def _report(journal: str | None, options: argparse.Namespace) -> int:
    from backends.soak import summarize, summary_lines
    from backends.sweep import read_journal

    if journal is None:
        raise CommandError("the soak wrote no journal")
    summary = summarize(read_journal(journal))
    if summary is None:
        raise CommandError(f"{journal} holds no soak")
    if options.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        print("\n".join(summary_lines(summary)))
    if options.save:
        _save(options, summary)
    if summary.problem or not summary.finished:
        return exits.STOPPED
    if any(b.crashes or b.hangs or b.start_failures for b in summary.builds):
        return exits.UNSTABLE
    return exits.WRONG if any(b.wrong for b in summary.builds) else exits.COMPARED


def _save(options: argparse.Namespace, summary: SoakSummary) -> None:
    from profiles.soak import with_soak
    from profiles.store import ProfileError, ProfileStore

    store = ProfileStore(options.store)
    try:
        path = store.save(with_soak(store.load(options.save), summary.to_json(),
                                    require_stable=options.require_stable))
    except (ProfileError, OSError) as error:
        raise CommandError(f"the profile could not be saved ({error})") from None
    print(f"profile: {path}", file=sys.stderr if options.json else sys.stdout)


class SoakPrinter:
    """One stderr line per event worth seeing; remembers where the journal is."""

    def __init__(self) -> None:
        self.journal: str | None = None

    def show(self, event: SoakEvent) -> None:
        from backends.soak import (
            SoakCrashed,
            SoakFinished,
            SoakHang,
            SoakHttpError,
            SoakServerUp,
            SoakStarted,
            SoakStartFailed,
            SoakWrongAnswer,
        )

        stamp = f"[{getattr(event, 'at_s', 0.0) / 60:6.1f} min]"
        if isinstance(event, SoakStarted):
            self.journal = event.journal
            what = "resumed" if event.resumed else "started"
            say(f"soak {what}: {', '.join(b.name for b in event.builds)}; reference "
                f"{event.reference}; journal: {event.journal}")
        elif isinstance(event, SoakServerUp):
            again = "restarted" if event.restart else "up"
            say(f"{stamp} {event.build}: server {again} (pid {event.pid}, {event.load_s:.1f}s to load)")
        elif isinstance(event, SoakCrashed):
            say(f"{stamp} {event.build}: CRASHED: {event.reason}")
        elif isinstance(event, SoakHang):
            say(f"{stamp} {event.build}: HUNG ({event.what}): {event.reason}")
        elif isinstance(event, SoakHttpError):
            say(f"{stamp} {event.build}: HTTP error: {event.reason}")
        elif isinstance(event, SoakStartFailed):
            say(f"{stamp} {event.build}: server did not start: {event.reason}")
        elif isinstance(event, SoakWrongAnswer):
            say(f"{stamp} {event.build}: WRONG answer to probe {event.probe}: {event.reason}")
        elif isinstance(event, SoakFinished):
            state = "cancelled" if event.cancelled else "finished"
            say(f"{stamp} soak {state}" + (f": {event.problem}" if event.problem else ""))

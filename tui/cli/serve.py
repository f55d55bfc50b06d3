"""``llamaduel serve-bench``: the builds as users run them, under llama-server and load.

    llamaduel serve-bench --build vk=~/llama.cpp/build-vk/bin --build rocm=~/llama.cpp/build/bin \\
        --model model.gguf --concurrency 1,2,4,8 -p 512,4096 -n 128 -d 0,16384 --requests 16

Each build's own llama-server serves each load level in turns (A B, then B A); a table per level
follows, then llama-bench against llama-server for each shape. ``--json`` prints every
level summary, failure and gap as JSON instead. ``--validate-launch PROFILE`` (or
``--launch-command``) starts a profile's launch command for real and sends one request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tui.cli.common import Subparsers, stoppable

if TYPE_CHECKING:
    from backends.journal.serve import DuelFinished, Level, LevelFinished, LevelSummary, ServeEvent
    from backends.server import DuelSpec, ServedBuild


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one number")
    return values


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "serve-bench", help="race builds as llama-server under concurrent streamed load",
        description="Start each build's llama-server, stream the same load through each in "
        "turn, and compare time to first token, inter-token latency and tokens/s per stream "
        "and in total; then llama-bench against llama-server for each shape.")
    parser.add_argument("--build", action="append", default=[], metavar="NAME=PATH",
                        help="a build folder with llama-server; repeat for each build")
    parser.add_argument("--model", "-m", metavar="FILE", help="the GGUF model file")
    parser.add_argument("--preset", metavar="NAME",
                        help="a named duel (server-cliffs: 4K,16K,32K context x f16,q8_0,q4_0 "
                        "cache x 1,2,4 slots at -p 128 -n 64, one stream); other options override it")
    parser.add_argument("--concurrency", type=_ints, metavar="LIST",
                        help="concurrent streams per level (1,2,4,8)")
    parser.add_argument("-p", "--n-prompt", type=_ints, metavar="LIST",
                        help="prompt lengths in tokens, exact (512)")
    parser.add_argument("-n", "--n-gen", type=int, metavar="N",
                        help="tokens every request asks for and must get (128)")
    parser.add_argument("-d", "--depth", type=_ints, metavar="LIST",
                        help="shared prefix (context depth) in tokens (0)")
    parser.add_argument("-c", "--ctx-size", type=_ints, metavar="LIST",
                        help="context the servers allocate, whatever the prompt; a level each "
                        "(default: the largest request in every slot)")
    parser.add_argument("--parallel", type=_ints, metavar="LIST",
                        help="server slots, whatever the concurrency sent; a level each "
                        "(default: the highest concurrency)")
    parser.add_argument("--cache-types", metavar="LIST",
                        help="KV cache types for -ctk and -ctv together, a level each (f16,q8_0,q4_0)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--requests", type=int, metavar="N", help="requests per level (3 per stream)")
    amount.add_argument("--duration", type=float, metavar="S", help="send requests for S seconds per level")
    parser.add_argument("--turns", type=int, metavar="N",
                        help="turns per level, A B then B A ..., the requests shared out (2)")
    parser.add_argument("--endpoint", choices=("chat", "completion"), default="chat",
                        help="chat (/v1/chat/completions, default) or completion (/completion)")
    parser.add_argument("--cache-reuse", type=int, metavar="N",
                        help="cache study: the same prompt every time and --cache-reuse N on the servers")
    _server_settings(parser)
    parser.add_argument("--no-gap", action="store_true", help="skip llama-bench for the gap")
    parser.add_argument("--journal", metavar="FILE", help="JSONL journal (default: a new run folder)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    from tui.cli.common import add_fallback_option

    add_fallback_option(parser)
    parser.add_argument("--save", metavar="NAME",
                        help="save the duel and its serving verdicts as a profile with this name")
    check = parser.add_argument_group("launch check")
    check.add_argument("--validate-launch", metavar="PROFILE",
                       help="start this profile's launch command (name or .toml) and send one request")
    check.add_argument("--launch-command", metavar="CMD", help="check this llama-server command line instead")
    check.add_argument("--workload", help="the profile's workload to launch (default: the first recommended)")
    check.add_argument("--store", metavar="PATH", help="profile folder (for --save too)")
    check.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                       help="environment for the checked command (GGML_VK_VISIBLE_DEVICES=0)")
    parser.set_defaults(func=handle_serve)


def _server_settings(parser: argparse.ArgumentParser) -> None:
    """What each llama-server is started with."""
    parser.add_argument("-fa", "--flash-attn", choices=("on", "off"), help="flash attention")
    parser.add_argument("-ctk", "--cache-type-k", metavar="TYPE")
    parser.add_argument("-ctv", "--cache-type-v", metavar="TYPE")
    parser.add_argument("-ngl", "--n-gpu-layers", type=int, default=999, metavar="N")
    parser.add_argument("-ncmoe", "--n-cpu-moe", type=int, metavar="N")
    parser.add_argument("--no-mmap", action="store_true")
    parser.add_argument("-b", "--batch-size", type=int, metavar="N")
    parser.add_argument("-ub", "--ubatch-size", type=int, metavar="N")
    parser.add_argument("-t", "--threads", type=int, metavar="N")
    parser.add_argument("--stall", type=float, default=120.0, metavar="S",
                        help="a request silent this long fails its level and the server is killed (120)")
    parser.add_argument("--start-timeout", type=float, default=300.0, metavar="S",
                        help="how long a server may take to become healthy (300)")
    parser.add_argument("--resident", action="store_true",
                        help="keep every server up for the whole duel (builds on different devices)")


def _spec(options: argparse.Namespace) -> DuelSpec:
    """The preset (or the defaults) with every option the user gave on top."""
    from backends.server import DuelSpec, ServerSettings
    from backends.server.spec import preset

    base = preset(options.preset) if options.preset else DuelSpec()
    settings = ServerSettings(
        n_gpu_layers=options.n_gpu_layers,
        flash_attn=None if options.flash_attn is None else options.flash_attn == "on",
        type_k=options.cache_type_k, type_v=options.cache_type_v, n_cpu_moe=options.n_cpu_moe,
        no_mmap=options.no_mmap, n_batch=options.batch_size, n_ubatch=options.ubatch_size,
        threads=options.threads, cache_reuse=options.cache_reuse)
    given = {"concurrency": options.concurrency, "prompts": options.n_prompt,
             "n_gen": options.n_gen, "depths": options.depth, "ctx_sizes": options.ctx_size,
             "parallel": options.parallel, "turns": options.turns,
             "cache_types": tuple(t.strip() for t in options.cache_types.split(",") if t.strip())
             if options.cache_types is not None else None}
    if options.requests is not None or options.duration is not None:
        given.update(requests=options.requests, duration_s=options.duration)
    return dataclasses.replace(
        base, **{k: v for k, v in given.items() if v is not None}, endpoint=options.endpoint,
        settings=settings, stall_s=options.stall, start_timeout_s=options.start_timeout,
        resident=options.resident, gap=not options.no_gap)


def _contenders(arguments: list[str], allow_cpu_fallback: bool) -> list[ServedBuild]:
    from backends.server import ServedBuild
    from tui.cli.common import load_builds

    return [ServedBuild(name=b.name, folder=str(b.folder), env=dict(b.env), backend=b.backend)
            for b in load_builds(arguments, needs=None, allow_cpu_fallback=allow_cpu_fallback)]


def handle_serve(options: argparse.Namespace) -> int:
    from backends.server import DuelError
    from tui.cli import CommandError

    if options.validate_launch or options.launch_command:
        return _handle_validate(options)
    if not options.model:
        raise CommandError("give the model with --model FILE")
    try:
        spec = _spec(options)
    except DuelError as error:
        raise CommandError(str(error)) from None
    if problem := spec.problem():
        raise CommandError(problem)
    if options.save:
        from profiles.store import ProfileError, check_name

        try:
            check_name(options.save)
        except ProfileError as error:
            raise CommandError(str(error)) from None
    contenders = _contenders(options.build, options.allow_cpu_fallback)
    try:
        events = asyncio.run(stoppable(_run(contenders, options, spec)))
    except DuelError as error:
        raise CommandError(str(error)) from None
    from backends.journal.serve import DuelFinished
    from backends.server import duel_summary

    finished = events[-1] if events else None
    if not isinstance(finished, DuelFinished):
        raise CommandError("the server duel ended without its summary")
    from profiles.disagreement import disagreement
    from profiles.serving import serving_verdicts

    summary = duel_summary(events)
    verdicts = serving_verdicts(summary)
    against_bench = disagreement(summary, verdicts)
    if options.json:
        out = dataclasses.asdict(finished)
        out["serving_verdicts"] = [dataclasses.asdict(v) for v in verdicts]
        out["disagreement"] = against_bench
        print(json.dumps(out, indent=2))
    else:
        print(results_table(finished))
        print()
        for verdict in verdicts:
            print("\n".join([verdict.sentence, *(f"  ! {why}" for why in verdict.failures)]))
        if against_bench:
            print(f"\nServer against llama-bench: {against_bench}")
    if options.save:
        _save(options, events, contenders)
    return _status(finished, [c.name for c in contenders])


def _status(finished: DuelFinished, names: list[str]) -> int:
    """The shared exit code (``tui.cli.exits``): levels measured and failed per contender."""
    from tui.cli import exits

    if finished.cancelled:
        return exits.CANCELLED
    failed = exits.counts(next((n for n in names if f.startswith((f"{n}:", f"{n} at "))), "")
                          for f in finished.failures)
    failed.pop("", None)
    status = exits.comparison_status(exits.counts(s.contender for s in finished.summaries), failed)
    return exits.PARTIAL if status == exits.COMPARED and finished.failures else status


def _save(options: argparse.Namespace, events: list[ServeEvent], contenders: list[ServedBuild]) -> None:
    from profiles.model import profile_from_serve_duel
    from profiles.store import ProfileError, ProfileStore
    from tui.cli import CommandError

    profile = profile_from_serve_duel(events, name=options.save, builds=contenders)
    try:
        path = (ProfileStore(Path(options.store).expanduser()) if options.store else ProfileStore()).save(profile)
    except (ProfileError, OSError) as error:
        raise CommandError(f"the profile could not be saved ({error})") from None
    print(f"profile: {path}", file=sys.stderr if options.json else sys.stdout)


async def _run(contenders: list[ServedBuild], options: argparse.Namespace, spec: DuelSpec) -> list[ServeEvent]:
    from backends.journal.serve import DuelStarted, LevelFinished, ServerFailed
    from backends.server import run_serve_duel

    events: list[ServeEvent] = []
    stream = run_serve_duel(contenders, Path(options.model).expanduser(), spec,
                            journal_path=options.journal)
    async with contextlib.aclosing(stream) as duel:
        async for event in duel:
            events.append(event)
            if isinstance(event, DuelStarted) and event.journal:
                print(f"journal: {event.journal}", file=sys.stderr)
            elif isinstance(event, LevelFinished):
                print(progress_line(event), file=sys.stderr)
            elif isinstance(event, ServerFailed):
                print(f"{event.contender}: server failed ({event.phase}): {event.reason}", file=sys.stderr)
    return events


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f}" if value >= 0.01 else f"{value * 1000:.3f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def progress_line(event: LevelFinished) -> str:
    s = event.summary
    state = "FAILED" if event.failed else "done"
    short = f", {s.short} short" if s.short else ""
    reason = f": {s.reason}" if s.reason else ""
    return (f"{event.contender} {s.level.key}: {state}, {s.requests} requests, {s.errors} errors"
            f"{short}, {_rate(s.total_tps)} tok/s in total{reason}")


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in
                                                           zip(row[1:], widths[1:])]).rstrip()
                     for row in rows)


def _level_row(s: LevelSummary, with_setting: bool) -> tuple[str, ...]:
    e2e = "-" if s.e2e_s.p50 is None else f"{s.e2e_s.p50:.2f}"
    setting = ((_setting(s.level),) if with_setting else ())
    return (s.contender, str(s.level.concurrency), s.level.shape, *setting, str(s.requests),
            str(s.errors), str(s.short), _ms(s.ttft_s.p50), _ms(s.ttft_s.p99), _ms(s.itl_s.p50),
            e2e, _rate(s.gen_tps.mean), _rate(s.total_tps))


def _setting(level: Level) -> str:
    """``32K q4_0 s4``: the server's context, cache type and slots, short."""
    ctx = level.ctx_size
    parts = [(f"{ctx // 1024}K" if ctx % 1024 == 0 else str(ctx)) if ctx else "auto",
             level.cache_type or "-", f"s{level.slots}" if level.slots else "s-"]
    return " ".join(parts)


def results_table(finished: DuelFinished) -> str:
    """Level results (the first reason of each level that lost a request beneath), the
    bench-vs-server gap and the failures, as text tables."""
    with_setting = any(s.level.setting for s in finished.summaries)
    rows = [("build", "c", "shape", *(("server",) if with_setting else ()), "req", "err", "short",
             "ttft p50 ms", "ttft p99 ms", "itl p50 ms", "e2e p50 s", "tok/s/stream", "tok/s total")]
    rows += [_level_row(s, with_setting) for s in finished.summaries]
    parts = [_table(rows)]
    reasons = [f"  {s.contender} {s.level.key}: {s.reason}" for s in finished.summaries if s.reason]
    if reasons:
        parts += ["", "first reason per build and level:", *reasons]
    if finished.gaps:
        gap_rows = [("build", "shape", "bench pp t/s", "server pp t/s", "pp ratio",
                     "bench tg t/s", "server tg t/s", "tg ratio")]
        for g in finished.gaps:
            shape = f"{g.shape} {g.cache_type}".strip()
            if g.problem:
                gap_rows.append((g.contender, shape, "-", "-", "-", "-", "-", g.problem[:60]))
                continue
            gap_rows.append((g.contender, shape, _rate(g.bench_pp_tps), _rate(g.server_pp_tps),
                             _ratio(g.pp_ratio), _rate(g.bench_tg_tps), _rate(g.server_tg_tps),
                             _ratio(g.tg_ratio)))
        parts += ["", "llama-bench vs llama-server (concurrency 1; ratio = server / bench):",
                  _table(gap_rows)]
    shown = tuple(f"{s.contender} at {s.level.key}:" for s in finished.summaries if s.reason)
    parts += [f"FAILED {line}" for line in finished.failures if not line.startswith(shown)]
    return "\n".join(parts)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _launch_argv(options: argparse.Namespace) -> list[str]:
    from tui.cli import CommandError

    if options.launch_command:
        try:
            return shlex.split(options.launch_command)
        except ValueError as error:
            raise CommandError(f"cannot read --launch-command: {error}") from None
    from profiles import exporters
    from profiles.store import ProfileError, ProfileStore, profile_from_toml

    source = Path(options.validate_launch).expanduser()
    try:
        if source.suffix == ".toml" and source.is_file():
            profile = profile_from_toml(source.read_text(encoding="utf-8"))
        else:
            store = ProfileStore(options.store) if options.store else ProfileStore()
            profile = store.load(options.validate_launch)
        rec = profile.recommendation
        workload = options.workload or next(
            (w for w in exporters.WORKLOADS if rec and rec.recommended_build(w)), None)
        if workload is None:
            raise CommandError("the profile recommends no build for any workload; pass --workload")
        return list(exporters.launch_command(profile, workload, model_path=options.model).argv)
    except (ProfileError, ValueError, OSError) as error:
        raise CommandError(str(error)) from None


def _handle_validate(options: argparse.Namespace) -> int:
    from backends.server.validate import validate_launch
    from tui.cli import CommandError

    argv = _launch_argv(options)
    env = {}
    for item in options.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--env wants KEY=VALUE, not {item!r}")
        env[key] = value
    check = asyncio.run(validate_launch(argv, env=env, deadline_s=options.start_timeout,
                                        stall_s=options.stall))
    if options.json:
        print(json.dumps(dataclasses.asdict(check), indent=2))
    elif check.ok:
        print(f"launch command works: healthy after {check.load_s:.1f}s, {check.endpoint} request "
              f"answered {check.n_gen} tokens (first after {_ms(check.ttft_s)} ms)")
        print(f"  {shlex.join(check.argv)}")
    else:
        print(f"launch command FAILED: {check.reason}")
        print(f"  {shlex.join(check.argv)}")
    from tui.cli import exits

    return exits.COMPARED if check.ok else exits.NO_COMPARISON

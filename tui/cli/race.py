"""``llamaduel race``: stream one prompt through several builds and compare them.

    llamaduel race --build cpu=~/llama.cpp/build/bin --build vk=~/llama.cpp/build-vk/bin \\
        --model model.gguf --prompt "Once upon a time" -n 64

Builds take turns on the one GPU unless ``--parallel`` is given. The text of each build
streams as it is generated; a side-by-side table of time to first token, prompt and
generation speed and any differing output follows. ``--json`` prints the race summary
(the shape a profile keeps) instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from backends.race import RaceSpec
    from backends.race.spec import RaceBuildLike

from tui.cli.common import Subparsers, stoppable


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "race",
        help="stream one prompt through each build's completion tool, side by side",
        description="Stream one prompt through each build's llama-completion and compare "
        "time to first token, prompt and generation speed, and the text itself.",
    )
    parser.add_argument("--build", action="append", default=[], metavar="NAME=PATH",
                        help="a build folder (or its completion tool) to race; repeat for each build")
    parser.add_argument("--model", "-m", required=True, metavar="FILE", help="the GGUF model file")
    prompt = parser.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", "-p", metavar="TEXT", help="the prompt text")
    prompt.add_argument("--prompt-file", "-f", metavar="FILE", help="read the prompt from a file")
    prompt.add_argument("--long-document", type=int, metavar="WORDS",
                        help="a generated document of about WORDS words, to test long context")
    parser.add_argument("-n", "--n-predict", type=int, default=64, metavar="N", help="tokens to generate (64)")
    parser.add_argument("--seed", "-s", type=int, default=42, help="sampling seed (42)")
    parser.add_argument("--temp", type=float, default=0.0, help="temperature (0: greedy, same text expected)")
    parser.add_argument("-fa", "--flash-attn", nargs="?", const="on", choices=("on", "off"),
                        help="flash attention on or off (default: the tool's own)")
    parser.add_argument("-ctk", "--cache-type-k", metavar="TYPE", help="KV cache type for K")
    parser.add_argument("-ctv", "--cache-type-v", metavar="TYPE", help="KV cache type for V")
    parser.add_argument("-ngl", "--n-gpu-layers", type=int, metavar="N", help="layers on the GPU")
    parser.add_argument("-ncmoe", "--n-cpu-moe", type=int, metavar="N", help="MoE expert layers kept on the CPU")
    parser.add_argument("-c", "--ctx-size", type=int, metavar="N", help="context size (0: the model's)")
    parser.add_argument("-t", "--threads", type=int, metavar="N", help="CPU threads")
    parser.add_argument("--parallel", action="store_true",
                        help="run the builds at once (only when they use different devices)")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                        help="kill a build that has not finished after this long (600)")
    parser.add_argument("--json", action="store_true", help="print the race summary as JSON")
    from tui.cli.common import add_fallback_option

    add_fallback_option(parser)
    parser.set_defaults(func=handle_race)


def _prompt(options: argparse.Namespace) -> str:
    from backends.race import long_document
    from tui.cli import CommandError

    if options.prompt is not None:
        return str(options.prompt)
    if options.long_document is not None:
        if options.long_document < 1:
            raise CommandError("--long-document wants a positive number of words")
        return long_document(options.long_document)
    try:
        return Path(options.prompt_file).expanduser().read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise CommandError(f"cannot read prompt file {options.prompt_file}: {error.strerror or error}") from None


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def summary_table(summary: dict[str, Any]) -> str:
    """The side-by-side summary of a race, from ``race_summary``'s dictionary."""
    rows = [("build", "ttft", "prompt t/s", "gen t/s", "tokens", "output")]
    differing = {d["build"]: d for d in summary.get("divergences", [])}
    for name, entry in summary.get("builds", {}).items():
        if entry["status"] != "finished":
            rows.append((name, "-", "-", "-", "-", f"{entry['status']}: {entry.get('reason', '')}"))
            continue
        if name == summary.get("reference"):
            output = "reference"
        elif name in differing:
            d = differing[name]
            kind = "WARNING differs" if d["unexpected"] else "differs (sampling)"
            output = f"{kind} from char {d['char_offset']}"
        else:
            output = "same text"
        ttft = entry.get("ttft_s")
        tokens = f"{entry.get('n_prompt', '?')}+{entry.get('n_gen', '?')}"
        rows.append((name, "-" if ttft is None else f"{ttft:.3f}s", _rate(entry.get("prompt_tps")),
                     _rate(entry.get("gen_tps")), tokens, output))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in range(1, 5)] + [row[5]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


class _LivePrinter:
    """Streams each build's text; with parallel builds, whole lines prefixed by the build."""

    def __init__(self, out: TextIO, parallel: bool) -> None:
        self.out = out
        self.parallel = parallel
        self.partial: dict[str, str] = {}

    def started(self, build: str) -> None:
        if not self.parallel:
            self.out.write(f"--- {build}\n")
            self.out.flush()

    def text(self, build: str, text: str) -> None:
        from backends.race import printable

        text = printable(text)
        if not self.parallel:
            self.out.write(text)
            self.out.flush()
            return
        buffered = self.partial.get(build, "") + text
        *complete, rest = buffered.split("\n")
        for line in complete:
            self.out.write(f"{build} | {line}\n")
        self.partial[build] = rest
        self.out.flush()

    def ended(self, build: str, line: str) -> None:
        if self.parallel:
            if rest := self.partial.pop(build, ""):
                self.out.write(f"{build} | {rest}\n")
            self.out.write(f"{build} | {line}\n")
        else:
            self.out.write(f"\n    {line}\n")
        self.out.flush()


def handle_race(options: argparse.Namespace) -> int:
    import asyncio

    from backends.race import RaceError, RaceSpec
    from tui.cli import CommandError
    from tui.cli.common import load_builds

    # The race reports a missing tool itself.
    builds = load_builds(options.build, needs=None, allow_cpu_fallback=options.allow_cpu_fallback)
    spec = RaceSpec(
        prompt=_prompt(options),
        n_predict=options.n_predict,
        temperature=options.temp,
        seed=options.seed,
        flash_attn=None if options.flash_attn is None else options.flash_attn == "on",
        type_k=options.cache_type_k,
        type_v=options.cache_type_v,
        n_gpu_layers=options.n_gpu_layers,
        n_cpu_moe=options.n_cpu_moe,
        ctx_size=options.ctx_size,
        threads=options.threads,
    )
    if options.timeout <= 0:
        raise CommandError("--timeout wants a positive number of seconds")
    try:
        summary = asyncio.run(stoppable(_race(builds, Path(options.model).expanduser(), spec, options)))
    except RaceError as error:
        raise CommandError(str(error)) from None
    if options.json:
        json.dump(summary, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print()
        print(summary_table(summary))
    from tui.cli import exits

    statuses = {name: entry["status"] for name, entry in summary["builds"].items()}
    return exits.comparison_status({n: int(s == "finished") for n, s in statuses.items()},
                                   {n: int(s != "finished") for n, s in statuses.items()})


async def _race(builds: Sequence[RaceBuildLike], model: Path, spec: RaceSpec,
                options: argparse.Namespace) -> dict[str, Any]:
    import contextlib

    from backends.race import (
        BuildFailed,
        BuildFinished,
        BuildRetrying,
        BuildStarted,
        Divergence,
        TokenReceived,
        race_summary,
        run_race,
    )

    live = None if options.json else _LivePrinter(sys.stdout, options.parallel)
    events = []
    async with contextlib.aclosing(run_race(builds, model, spec, sequential=not options.parallel,
                                            timeout=options.timeout)) as stream:
        async for event in stream:
            events.append(event)
            if live is None:
                continue
            if isinstance(event, BuildStarted):
                live.started(event.build)
            elif isinstance(event, TokenReceived):
                live.text(event.build, event.text)
            elif isinstance(event, BuildRetrying):
                live.ended(event.build, f"[{event.reason}: running it again]")
            elif isinstance(event, BuildFinished):
                note = "" if event.complete else " | timings missing: output cut short"
                live.ended(event.build, f"[ttft {event.ttft or 0:.3f}s | prompt {_rate(event.prompt_tps)} t/s"
                                        f" | gen {_rate(event.gen_tps)} t/s{note}]")
            elif isinstance(event, BuildFailed):
                if not options.parallel and not any(
                        isinstance(e, BuildStarted) and e.build == event.build for e in events):
                    live.started(event.build)
                live.ended(event.build, f"[failed: {event.reason}]")
            elif isinstance(event, Divergence):
                print(f"llamaduel: {event.message}", file=sys.stderr)
    return race_summary(events, [b for b in builds if not isinstance(b, tuple)])

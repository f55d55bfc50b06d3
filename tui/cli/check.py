"""``llamaduel check``: does each build compute the same thing as a reference build?

One line per build on stdout: mean KL divergence, top-1 agreement, perplexity and its
delta, and the verdict (pass, SUSPECT with the numbers that crossed a threshold, or FAILED
with the reason). ``--json`` prints one JSON document at the end instead (``{"reference":
..., "builds": [...], "problem": ...}``), ``--jsonl`` one JSON line per build as it comes.

Exit status: 0 when the check ran, even when a build is suspect or failed (the lines say
so, and scripts read ``--json``); 1 when the reference itself failed, so nothing could be
compared; 2 for bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from backends.correctness import CorrectnessThresholds

from tui.cli import CommandError, exits
from tui.cli.common import Subparsers, stoppable


def register(subparsers: Subparsers) -> None:
    check = subparsers.add_parser(
        "check", help="check that each build gives the same answers as a reference build",
        description="Run llama-perplexity on a reference build to save its token "
        "probabilities, then on every other build against them: mean KL divergence, top-1 "
        "token agreement and perplexity per build. A build beyond the thresholds is SUSPECT; "
        "one that crashes or hangs is FAILED. Exits 0 either way (1 if the reference fails).")
    check.add_argument("--build", action="append", default=[], metavar="NAME=PATH",
                       required=True, help="a llama.cpp build folder; repeat for each build")
    check.add_argument("--model", required=True, type=Path, help="the GGUF model file")
    check.add_argument("--reference", metavar="NAME",
                       help="the build the others are compared with (default: the CPU build "
                       "if there is one, else the most trusted backend)")
    check.add_argument("--text", type=Path,
                       help="a plain text file to read (default: the text shipped with llamaduel)")
    check.add_argument("-c", "--context", type=int,
                       help="context per chunk (default: 512, less for a small model or text)")
    check.add_argument("--chunks", type=int, help="read at most this many chunks of the text")
    check.add_argument("--args", action="append", default=[], metavar="NAME=ARGS",
                       help="extra llama-perplexity arguments for one build, e.g. "
                       "--args 'rocm=-ngl 99 -fa on' (repeatable)")
    check.add_argument("--timeout", type=float, default=600.0,
                       help="seconds each llama-perplexity run may take (default: 600)")
    limits = check.add_argument_group("thresholds")
    limits.add_argument("--max-kld", type=float, help="largest mean KL divergence (default: 0.01)")
    limits.add_argument("--min-top1", type=float,
                        help="smallest top-1 agreement in percent (default: 90)")
    limits.add_argument("--max-ppl-delta", type=float,
                        help="largest perplexity change in percent (default: 2)")
    output = check.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true",
                        help="print one JSON document at the end: the reference and every build")
    output.add_argument("--jsonl", action="store_true", help="print one JSON line per build as it comes")
    from tui.cli.common import add_fallback_option

    add_fallback_option(check)
    check.set_defaults(func=cmd_check)


def _extra_args(arguments: Sequence[str]) -> dict[str, list[str]]:
    extra: dict[str, list[str]] = {}
    for argument in arguments:
        name, sep, text = argument.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"--args {argument!r}: use NAME=ARGS")
        try:
            extra.setdefault(name.strip(), []).extend(shlex.split(text))
        except ValueError as error:
            raise CommandError(f"--args {argument!r}: {error}") from None
    return extra


class _Document(TypedDict):
    """What ``check --json`` prints at the end."""

    reference: str | None
    model: str
    builds: list[dict[str, object]]
    problem: str | None


def _thresholds(options: argparse.Namespace) -> CorrectnessThresholds:
    from backends.correctness import CorrectnessThresholds

    defaults = CorrectnessThresholds()
    return CorrectnessThresholds(
        max_mean_kld=defaults.max_mean_kld if options.max_kld is None else options.max_kld,
        min_top1_agreement=(defaults.min_top1_agreement if options.min_top1 is None
                            else options.min_top1 / 100.0),
        max_ppl_delta_pct=(defaults.max_ppl_delta_pct if options.max_ppl_delta is None
                           else options.max_ppl_delta),
    )


def cmd_check(options: argparse.Namespace) -> int:
    from backends.correctness import BuildChecked, CheckFinished, CheckInputError, CheckStarted, run_check

    if not options.model.is_file():
        raise CommandError(f"model not found: {options.model}")
    if options.text is not None and not options.text.is_file():
        raise CommandError(f"text file not found: {options.text}")
    if options.min_top1 is not None and not 0 <= options.min_top1 <= 100:
        raise CommandError(f"--min-top1 is a percentage from 0 to 100, not {options.min_top1:g}")
    try:
        thresholds = _thresholds(options)
    except CheckInputError as error:
        raise CommandError(str(error)) from None
    from tui.cli.common import load_builds

    builds = load_builds(options.build, needs="perplexity",
                         allow_cpu_fallback=options.allow_cpu_fallback)
    extra = _extra_args(options.args)

    document: _Document = {"reference": None, "model": str(options.model), "builds": [],
                           "problem": None}

    async def drive() -> int:
        status = exits.NO_COMPARISON  # until the check finishes
        async for event in run_check(
                builds, options.model, reference=options.reference, text=options.text,
                thresholds=thresholds, timeout=options.timeout, context=options.context,
                chunks=options.chunks, extra_args=extra):
            if isinstance(event, CheckStarted):
                print(f"checking {len(event.builds)} build(s) against {event.reference} "
                      f"on {Path(event.model).name}", file=sys.stderr, flush=True)
                document["reference"] = event.reference
            elif isinstance(event, BuildChecked):
                document["builds"].append(event.result.to_json())
                if options.jsonl:
                    print(json.dumps(event.result.to_json()), flush=True)
                elif not options.json:  # --json: one document at the end
                    print(event.result.summary(), flush=True)
            elif isinstance(event, CheckFinished):
                if event.problem:
                    print(f"llamaduel: {event.problem}", file=sys.stderr)
                    document["problem"] = event.problem
                    return exits.NO_COMPARISON
                status = exits.comparison_status(
                    {r.build: int(r.status != "failed") for r in event.results},
                    {r.build: int(r.status == "failed") for r in event.results})
        return status

    try:
        status = asyncio.run(stoppable(drive()))
    except CheckInputError as error:
        raise CommandError(str(error)) from None
    if options.json:
        print(json.dumps(document, indent=1))
    return status

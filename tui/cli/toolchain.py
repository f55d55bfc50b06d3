"""``llamaduel toolchain``: build llama.cpp's tools from the pinned source (the working default)."""

from __future__ import annotations

import argparse

from tui.cli import CommandError
from tui.cli.common import Subparsers


def register(subparsers: Subparsers) -> None:
    from backends.tooling.toolchain import BACKENDS

    tools = subparsers.add_parser(
        "toolchain", help="build llama.cpp's CPU, Vulkan and combined tools from the pinned source",
        description="Build llama-bench, llama-completion, llama-perplexity, llama-server and "
        "rpc-server for the CPU and Vulkan backends, and one combined build that loads both "
        "as modules, into the cache (the working default when you have no builds).")
    tools.add_argument("--backend", choices=(*BACKENDS, "all"), default="all")
    tools.add_argument("--jobs", type=int)
    tools.add_argument("--print-dir", action="store_true")
    tools.set_defaults(func=cmd_toolchain)


def cmd_toolchain(options: argparse.Namespace) -> int:
    from backends.tooling import toolchain

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

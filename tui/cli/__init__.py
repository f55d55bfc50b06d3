"""The ``llamaduel`` command: the Textual app by default, headless verbs for scripts.

One module per verb (or family of verbs) registers its subcommands; Textual is imported
only when the app starts, so headless commands stay quick. Bad input is one line on
stderr and exit code 2; a closed pipe (``| head``) ends quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

VERB_MODULES = (
    "tui.cli.bench",
    "tui.cli.runs",
    "tui.cli.toolchain",
    "tui.cli.profiles",
    "tui.cli.race",
    "tui.cli.check",
    "tui.cli.telemetry",
    "tui.cli.builds",
    "tui.cli.serve",
    "tui.cli.soak",
    "tui.cli.gate",
)


class CommandError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llamaduel",
        description="Race llama.cpp builds side by side and keep the verdict. "
        "With no command, opens the app.",
        epilog="The app's own options: llamaduel [--build NAME=PATH ...] [--models DIR ...] "
        "[--store PATH] [--demo] [--replay JOURNAL] [--screen NAME] [--no-telemetry]; "
        "`llamaduel --demo` builds llama.cpp's CPU and Vulkan tools if needed, gets Gemma 3 270M "
        "(a generated model stands in when it cannot) and runs a real comparison. "
        "`llamaduel COMMAND --help` explains each command.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in VERB_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help")):
        from tui.cli.app import run_app  # no command: the app, with its own options

        return run_app(args)
    try:
        options = build_parser().parse_args(args)
        return int(options.func(options) or 0)
    except CommandError as error:
        from backends.text import printable

        print(f"llamaduel: {printable(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llamaduel: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _closed_pipe()


def _closed_pipe() -> int:
    """The reader went away (``| head -1``): stop quietly, as a tool killed by SIGPIPE would."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail
    except OSError:
        pass
    return 128 + signal.SIGPIPE

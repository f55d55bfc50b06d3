"""The ``llamaduel`` command: the Textual app by default, headless verbs for scripts.

One module per verb (or family of verbs) registers its subcommands; Textual is imported
only when the app starts, so headless commands stay quick. Bad input is one line on
stderr and exit code 2; a closed pipe (``| head``) ends quietly. Every verb's help ends with
the exit codes they all share (``tui.cli.exits``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap

from tui.cli import exits

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
    _add_exit_codes(parser)
    return parser


class _HelpFormatter(argparse.HelpFormatter):
    """Fills prose as argparse does; keeps the indented lines of a table in place."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        prose: list[str] = []
        for line in [*text.splitlines(), ""]:
            if line.startswith("  ") or not line.strip():
                if prose:
                    out.append(super()._fill_text(" ".join(prose), width, indent))
                    prose = []
                if line.strip():
                    out.append(textwrap.fill(line, width, initial_indent=indent,
                                             subsequent_indent=indent + " " * 7))
                elif out:
                    out.append("")
            else:
                prose.append(line.strip())
        return "\n".join(out).rstrip("\n")


def _add_exit_codes(parser: argparse.ArgumentParser) -> None:
    """Every parser, verbs' and their actions' alike, ends its help with the exit codes."""
    parser.formatter_class = _HelpFormatter
    parser.epilog = f"{parser.epilog}\n\n{exits.EPILOG}" if parser.epilog else exits.EPILOG
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _add_exit_codes(child)


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
        return exits.BAD_INPUT
    except KeyboardInterrupt:
        print("llamaduel: interrupted", file=sys.stderr)
        return exits.CANCELLED
    except BrokenPipeError:
        return _closed_pipe()


def _closed_pipe() -> int:
    """The reader went away (``| head -1``): stop quietly, as a tool killed by SIGPIPE would."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail
    except OSError:
        pass
    return exits.CLOSED_PIPE

"""The ``llamaduel`` command: the Textual app by default, headless subcommands for scripts.

Textual is imported only when the app starts, so headless commands stay quick.
Each area of the program registers its subcommands from its own module under
``tui.commands``; a module lists itself in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "tui.commands.profiles",
    "tui.commands.engine",
    "tui.commands.race",
    "tui.commands.check",
    "tui.commands.telemetry",
    "tui.commands.models_builds",
    "tui.commands.serve",
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
        "`llamaduel --demo` builds llama.cpp's CPU and Vulkan tools if needed and races them "
        "on a small generated model. `llamaduel COMMAND --help` explains each command.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help")):
        from tui.commands.app import run_app  # no command: the app, with its own options

        return run_app(args)
    parser = build_parser()
    options = parser.parse_args(args)
    try:
        return int(options.func(options) or 0)
    except CommandError as error:
        print(f"llamaduel: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llamaduel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Options of the app itself (``llamaduel`` with no command) and its start.

Kept free of Textual at import time: the app is imported only once the options are good.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backends.telemetry import Telemetry

SCREENS = ("setup", "run", "results", "profiles", "race")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llamaduel",
        description="Race llama.cpp builds side by side and keep the verdict. "
        "Run `llamaduel COMMAND --help` for the headless commands.",
    )
    parser.add_argument("--build", action="append", default=[], metavar="NAME=PATH",
                        help="a llama.cpp build folder to race (repeatable)")
    parser.add_argument("--models", action="append", default=[], metavar="DIR", type=Path,
                        help="a folder with .gguf models (repeatable)")
    parser.add_argument("--store", type=Path, metavar="PATH",
                        help="where profiles are kept (default: the user data folder)")
    parser.add_argument("--demo", action="store_true",
                        help="the working default: build llama.cpp's CPU and Vulkan (lavapipe) "
                        "tools if needed, check them against each other and run a short "
                        "sweep on Gemma 3 270M (a small generated model without it)")
    parser.add_argument("--replay", type=Path, metavar="JOURNAL",
                        help="show a recorded run journal (journal.jsonl) without running anything")
    parser.add_argument("--screen", choices=SCREENS, help="the screen to open first")
    parser.add_argument("--no-telemetry", action="store_true",
                        help="do not sample GPU and host telemetry during sweeps")
    return parser


def run_app(argv: list[str]) -> int:
    options = build_parser().parse_args(argv)
    from backends.builds import parse_build_arg

    build_paths: dict[str, Path] = {}
    for text in options.build:
        try:
            name, path = parse_build_arg(text)
        except ValueError as error:
            return _fail(str(error))
        if not path.exists():
            return _fail(f"build {name!r}: no such folder: {path}")
        build_paths[name] = path
    for folder in options.models:
        if not folder.expanduser().exists():
            return _fail(f"models: no such folder: {folder}")
    if options.replay is not None and not options.replay.is_file():
        return _fail(f"replay: no such journal: {options.replay}")
    store = None
    if options.store is not None:
        from profiles import ProfileStore

        store = ProfileStore(options.store.expanduser())

    if options.demo:
        from backends import demo

        if not demo.is_ready():
            # A first build takes minutes: do it here, where its progress can be read.
            print("llamaduel: building llama.cpp's CPU and Vulkan tools once (a few minutes on "
                  "two cores), then the app opens", file=sys.stderr)
            try:
                demo.prepare_demo()
            except (SystemExit, Exception) as error:
                return _fail(f"the working default could not be built: {error}")

    from tui.app import LlamaduelApp

    app = LlamaduelApp(
        build_paths=build_paths, model_dirs=[m.expanduser() for m in options.models],
        store=store, journal=options.replay, start_screen=options.screen, demo=options.demo,
        telemetry=None if options.no_telemetry else _make_telemetry, handle_hangup=True,
        auto_probe=True,
    )
    return int(app.run() or 0)


def _make_telemetry() -> Telemetry:
    from backends.telemetry import Telemetry

    return Telemetry()


def _fail(message: str) -> int:
    print(f"llamaduel: {message}", file=sys.stderr)
    return 2

"""The app's screens: each is made on first use (its module imported then, so the first
frame stays quick), and every screen's styles are read once at start, so a screen shown
later adds no CSS to parse. A new screen goes here, in ``SCREENS``, with its ``.tcss``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.screen import Screen

HERE = Path(__file__).parent
SCREENS = {"setup": "tui.screens.setup:SetupScreen", "run": "tui.screens.run:RunScreen",
           "results": "tui.screens.results:ResultsScreen",
           "profiles": "tui.screens.profiles:ProfilesScreen",
           "race": "tui.screens.race:RaceScreen", "serve": "tui.screens.serve:ServeScreen",
           "soak": "tui.screens.soak:SoakScreen"}
CSS_FILES: list[str | PurePath] = [HERE.parent / "app.tcss", *(HERE / f"{name}.tcss" for name in (
    "setup", "run", "results", "profiles", "race", "serve", "soak", "help", "dialogs"))]


def factory(name: str) -> Callable[[], Screen[object]]:
    module, _, cls = SCREENS[name].partition(":")
    return lambda: getattr(importlib.import_module(module), cls)()

"""One command message per action, shared by key bindings and the command palette.

A key press runs the ``command`` action, which posts the command's message to the active
screen; the palette's provider posts the very same message. Screens and the app handle
each command in one ``@on(...)`` handler, so there is one code path per action.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar, Iterable

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.message import Message


class Command(Message):
    """Base of every command message."""

    key: ClassVar[str] = ""
    title: ClassVar[str] = ""
    help: ClassVar[str] = ""
    footer: ClassVar[bool] = True

    @classmethod
    def binding(cls, show: bool | None = None) -> Binding:
        return Binding(cls.key, f"command('{cls.__name__}')", cls.title.lower(),
                       show=cls.footer if show is None else show,
                       priority=cls.key in ("ctrl+c",))


REGISTRY: dict[str, type[Command]] = {}


def command(key: str, title: str, help: str, footer: bool = True):
    """Class decorator: registers a command with its key, palette title and help."""

    def register(cls: type[Command]) -> type[Command]:
        cls.key, cls.title, cls.help, cls.footer = key, title, help, footer
        REGISTRY[cls.__name__] = cls
        return cls

    return register


# Commands everywhere in the app.
@command("question_mark,f1", "Help", "List every key and command")
class ShowHelp(Command): ...


@command("1", "Setup", "Choose builds, model and workload", footer=False)
class ShowSetup(Command): ...


@command("2", "Run", "Watch the running sweep", footer=False)
class ShowRun(Command): ...


@command("3", "Results", "Verdicts, plot and table of the last sweep", footer=False)
class ShowResults(Command): ...


@command("4", "Profiles", "Saved profiles: open, compare, rename, delete, import", footer=False)
class ShowProfiles(Command): ...


@command("5", "Race", "Stream one prompt through each build, text side by side", footer=False)
class ShowRace(Command): ...


@command("r", "Start sweep", "Start the sweep set up on the Setup screen")
class StartSweep(Command): ...


@command("p", "Pause/resume", "Pause between test points, or resume")
class TogglePause(Command): ...


@command("c", "Cancel sweep", "Stop the running sweep (asks first); results so far are kept")
class CancelSweep(Command): ...


@command("d", "Demo", "Race the CPU and Vulkan builds on a small generated model", footer=False)
class RunDemo(Command): ...


@command("q,ctrl+c", "Quit", "Quit; a running sweep stops and its results stay in the journal")
class Quit(Command): ...


# Results screen.
@command("w", "Save profile", "Save this sweep as a profile")
class SaveProfile(Command): ...


@command("e", "Export", "Write the results as Markdown, CSV and JSON files")
class ExportResults(Command): ...


@command("y", "Copy launch command", "Copy the recommended launch command to the clipboard")
class CopyLaunchCommand(Command): ...


# Profiles screen.
@command("enter", "Open profile", "Show the selected profile's results", footer=False)
class OpenProfile(Command): ...


@command("m", "Compare", "Compare the marked profile with the selected one side by side")
class CompareProfiles(Command): ...


@command("n", "Rename", "Rename the selected profile")
class RenameProfile(Command): ...


@command("x", "Delete", "Delete the selected profile (asks first)")
class DeleteProfile(Command): ...


@command("e", "Export", "Export the selected profile as Markdown, CSV and JSON")
class ExportProfile(Command): ...


@command("i", "Import", "Import a llama-bench output file as a profile")
class ImportBenchFile(Command): ...


# Setup screen.
@command("a", "Add build", "Add a llama.cpp build folder by path", footer=False)
class AddBuild(Command): ...


@command("o", "Model folder", "Look for models in another folder", footer=False)
class AddModelFolder(Command): ...


class ProfilesChanged(Message):
    """A profile was saved, renamed, deleted or imported: lists should reload."""


APP_COMMANDS: tuple[type[Command], ...] = (
    ShowHelp, ShowSetup, ShowRun, ShowResults, ShowProfiles, ShowRace, StartSweep, TogglePause,
    CancelSweep, RunDemo, Quit,
)


# Shown in the footer only by the screen they belong to (the keys work everywhere).
SCREEN_FOOTER_COMMANDS = (StartSweep, TogglePause, CancelSweep)


def bindings(commands: Iterable[type[Command]], hide: Iterable[type[Command]] = ()) -> list[Binding]:
    hidden = set(hide)
    return [cls.binding(show=False if cls in hidden else None) for cls in commands]


class CommandsMixin:
    """Gives a screen or the app the ``command`` action that key bindings call."""

    def action_command(self, name: str) -> None:
        cls = REGISTRY[name]
        self.app.screen.post_message(cls())


class ActionsProvider(Provider):
    """The palette lists every command of the app and of the screen it was opened from."""

    def _commands(self) -> list[type[Command]]:
        own = getattr(self.screen, "COMMAND_MESSAGES", ())
        return list(dict.fromkeys((*own, *APP_COMMANDS)))

    def _run(self, cls: type[Command]):
        return partial(self.screen.post_message, cls())

    async def discover(self) -> Hits:
        for cls in self._commands():
            yield DiscoveryHit(cls.title, self._run(cls), help=cls.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for cls in self._commands():
            score = matcher.match(f"{cls.title} {cls.help}")
            if score > 0:
                yield Hit(score, matcher.highlight(cls.title), self._run(cls), help=cls.help)


def key_label(key: str) -> str:
    names = {"question_mark": "?", "enter": "Enter", "ctrl+c": "Ctrl-C", "f1": "F1"}
    return " / ".join(names.get(k, k) for k in key.split(","))

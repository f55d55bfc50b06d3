"""One command message per action, shared by key bindings, the palette and the help.

Each command class carries its key, its title and its help line. A key press runs the
``command`` action, which posts the command's message to the active screen; the palette's
provider posts the very same message. Screens and the app handle each command in one
``@on(...)`` handler, so there is one code path per action. A screen that cannot do a
command right now says so in ``command_available``: the footer then leaves its key out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, ClassVar, TypeVar

from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.message import Message

if TYPE_CHECKING:
    from backends.sweep import SweepSpec


class Command(Message):
    """Base of every command message."""

    key: ClassVar[str] = ""
    title: ClassVar[str] = ""
    help: ClassVar[str] = ""
    footer: ClassVar[bool] = True
    label: ClassVar[str] = ""  # the footer's word, when shorter than the title

    @classmethod
    def binding(cls, show: bool | None = None) -> Binding:
        return Binding(cls.key, f"command('{cls.__name__}')", cls.label or cls.title.lower(),
                       show=cls.footer if show is None else show,
                       priority=cls.key in ("ctrl+c",))


REGISTRY: dict[str, type[Command]] = {}


C = TypeVar("C", bound=type[Command])


def command(key: str, title: str, help: str, footer: bool = True,
            label: str = "") -> Callable[[C], C]:
    """Class decorator: registers a command with its key, palette title and help."""

    def register(cls: C) -> C:
        cls.key, cls.title, cls.help, cls.footer, cls.label = key, title, help, footer, label
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


@command("6", "Serve", "Watch the running server duel and its serving verdict", footer=False)
class ShowServe(Command): ...


@command("7", "Soak", "Watch the running soak: crashes, hangs, wrong answers, memory, drift",
         footer=False)
class ShowSoak(Command): ...


@command("r", "Start sweep", "Start the sweep (or the server duel, or the soak) set up on the Setup screen",
         label="start")
class StartSweep(Command): ...


@command("p", "Pause/resume", "Pause between test points, or resume", label="pause")
class TogglePause(Command): ...


@command("c", "Cancel sweep", "Stop the running sweep (asks first); results so far are kept",
         label="cancel")
class CancelSweep(Command): ...


@command("c", "Stop soak", "Stop the running soak (asks first); every server is stopped, the "
         "journal keeps what it measured", label="stop")
class StopSoak(Command): ...


@command("u", "Resume soak", "Go on with the last soak that was stopped (cancelled, or cut off "
         "by a hang-up) for the time it had left, against the same reference answers",
         label="resume")
class ResumeSoak(Command): ...


@command("d", "Demo", "CPU and Vulkan builds: a correctness check, then a short sweep",
         footer=False)
class RunDemo(Command): ...


@command("q,ctrl+c", "Quit", "Quit; a running sweep stops and its results stay in the journal")
class Quit(Command): ...


# Results screen.
@command("w", "Save profile", "Save this sweep as a profile")
class SaveProfile(Command): ...


@command("e", "Export", "Write the results as Markdown, CSV and JSON files")
class ExportResults(Command): ...


@command("y", "Copy launch command", "Copy the recommended launch command to the clipboard",
         label="launch cmd")
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


@command("t", "Time it", "Measure each chosen build on the model briefly, for the estimate")
class ProbeRates(Command): ...


@command("m", "Sweep/server/soak",
         "Switch between a llama-bench sweep, a llama-server duel and a soak",
         label="mode")
class ToggleServeMode(Command): ...


# Race screen.
@command("ctrl+r", "Race", "Stream the prompt through each chosen build")
class StartRace(Command): ...


@command("ctrl+b", "Stop race", "Stop the race; its processes are killed")
class StopRace(Command): ...


@command("ctrl+l", "Replay race", "Replay the last race with every build on one clock")
class ReplayRace(Command): ...


@command("ctrl+s", "Add race to profile", "Keep the last race in a profile (new or existing)",
         label="keep")
class AddRaceToProfile(Command): ...


@command("f2", "Race settings", "Show or hide the prompt and settings above the lanes",
         label="settings")
class ToggleRaceSettings(Command): ...


@command("e", "Edit prompt", "Type the prompt (Enter races, Escape leaves the field)")
class EditPrompt(Command): ...


class ProfilesChanged(Message):
    """A profile was saved, renamed, deleted or imported: lists should reload."""


class SourcesChanged(Message):
    """Builds or models were added (the working default, discovery): lists should reload.
    ``spec``: the grid about to run (the working default's), for Setup to show and estimate."""

    def __init__(self, spec: SweepSpec | None = None) -> None:
        super().__init__()
        self.spec = spec


APP_COMMANDS: tuple[type[Command], ...] = (
    ShowHelp, ShowSetup, ShowRun, ShowResults, ShowProfiles, ShowRace, ShowServe, ShowSoak, StartSweep,
    TogglePause,
    CancelSweep, RunDemo, Quit,
)


SETUP_COMMANDS: tuple[type[Command], ...] = (StartSweep, ToggleServeMode, AddBuild, AddModelFolder,
                                              ProbeRates)
RUN_COMMANDS: tuple[type[Command], ...] = (TogglePause, CancelSweep, ShowResults)
RESULTS_COMMANDS: tuple[type[Command], ...] = (SaveProfile, ExportResults, CopyLaunchCommand)
PROFILES_COMMANDS: tuple[type[Command], ...] = (
    OpenProfile, CompareProfiles, RenameProfile, DeleteProfile, ExportProfile, ImportBenchFile)
SERVE_COMMANDS: tuple[type[Command], ...] = (CancelSweep,)
SOAK_COMMANDS: tuple[type[Command], ...] = (StopSoak, ResumeSoak)
RACE_COMMANDS: tuple[type[Command], ...] = (
    StartRace, StopRace, ReplayRace, AddRaceToProfile, ToggleRaceSettings, EditPrompt)

# Shown in the footer only by the screen they belong to (the keys work everywhere).
SCREEN_FOOTER_COMMANDS = (StartSweep, TogglePause, CancelSweep)

# Every screen and its own commands, in the order the help lists them.
SECTIONS: tuple[tuple[str, tuple[type[Command], ...]], ...] = (
    ("Everywhere", tuple(c for c in APP_COMMANDS if c is not StartSweep)),
    ("Setup", SETUP_COMMANDS),
    ("Run", RUN_COMMANDS),
    ("Results", RESULTS_COMMANDS),
    ("Profiles", PROFILES_COMMANDS),
    ("Race", RACE_COMMANDS),
    ("Serve", SERVE_COMMANDS),
    ("Soak", SOAK_COMMANDS),
)


def bindings(commands: Iterable[type[Command]], hide: Iterable[type[Command]] = ()) -> list[BindingType]:
    hidden = set(hide)
    return [cls.binding(show=False if cls in hidden else None) for cls in commands]


class CommandsMixin:
    """Gives a screen or the app the ``command`` action that key bindings call.

    ``command_available`` (on screens) answers True (offered), None (shown dimmed) or
    False (left out of the footer; the key does nothing)."""

    def action_command(self, name: str) -> None:
        self.app.screen.post_message(REGISTRY[name]())  # type: ignore[attr-defined]

    def command_available(self, command: type[Command]) -> bool | None:
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "command" and parameters and str(parameters[0]) in REGISTRY:
            screen = self.app.screen  # type: ignore[attr-defined]
            if isinstance(screen, CommandsMixin):
                return screen.command_available(REGISTRY[str(parameters[0])])
        return True


class ActionsProvider(Provider):
    """The palette lists every command of the app and of the screen it was opened from."""

    def _commands(self) -> list[type[Command]]:
        own = getattr(self.screen, "COMMAND_MESSAGES", ())
        return list(dict.fromkeys((*own, *APP_COMMANDS)))

    def _run(self, cls: type[Command]) -> Callable[[], object]:
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
    """``ctrl+r`` as Ctrl-R, ``question_mark,f1`` as ``? / F1``."""
    names = {"question_mark": "?", "enter": "Enter", "escape": "Escape", "space": "Space",
             "delete": "Delete"}

    def one(key: str) -> str:
        if key in names:
            return names[key]
        if key.startswith("ctrl+"):
            return "Ctrl-" + key[5:].upper()
        return key.upper() if len(key) == 2 and key[0] == "f" else key

    return " / ".join(one(k) for k in key.split(","))

"""The llamaduel app: a thin shell that holds the sources and switches between screens.

Everything the app reads comes in through its ``Sources``, so tests hand it real, small
ones. Key actions are ``tui.actions``' commands; the demo and resuming are ``tui.startup``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import App
from textual.worker import Worker, WorkerState

from tui import actions as cmd
from tui import hangup, screens
from tui.sources import Sources
from tui.startup import Startup
from tui.state.run import RunState

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.models import ModelInfo
    from tui.screens.run import RunScreen
    from tui.screens.serve import ServeScreen
    from tui.screens.soak import SoakScreen
    from tui.state.run_text import SweepStart
    from tui.state.serve import ServeRequest
    from tui.state.soak import SoakRequest

FAILED = {"sweep": "Sweep stopped", "serve": "Server duel stopped", "soak": "Soak stopped",
          "soak-save": "Soak not saved", "demo": "Demo set-up failed",
          "resume": "Could not read earlier runs", "discover": "Discovery failed"}


class LlamaduelApp(cmd.CommandsMixin, App[int]):
    TITLE = "llamaduel"
    CSS_PATH = screens.CSS_FILES  # every screen's, read once at start
    COMMANDS = {cmd.ActionsProvider}
    BINDINGS = cmd.bindings(cmd.APP_COMMANDS, hide=cmd.SCREEN_FOOTER_COMMANDS)
    # Each screen is made once, on first use, and keeps its state while another shows.
    SCREENS = {name: screens.factory(name) for name in screens.SCREENS}
    MODES = {name: name for name in screens.SCREENS}
    DEFAULT_MODE = "setup"
    # Screens get one of these classes from the terminal width (panels stack when narrow).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-medium"), (140, "-wide")]

    def __init__(self, builds: Sequence[BuildInfo] | None = None,
                 models: Sequence[ModelInfo] | None = None, *, sources: Sources | None = None,
                 journal: Path | None = None, start_screen: str | None = None,
                 demo: bool = False, offer_resume: bool = True, handle_hangup: bool = False,
                 auto_probe: bool = False, **source_options: Any) -> None:
        """``sources``, or ``builds``/``models`` (None: found after the first frame) and
        Sources' keywords. ``journal`` replays a run; ``demo`` starts the working default;
        ``auto_probe`` times the chosen builds for Setup's estimate."""
        super().__init__()
        self.sources = sources or Sources(builds, models, **source_options)
        self.journal = journal
        self.start_screen = start_screen
        self.demo = demo
        self.offer_resume = offer_resume and journal is None and not demo
        self.handle_hangup = handle_hangup
        self.auto_probe = auto_probe
        self.last_run = RunState()
        self.startup = Startup(self)
        self._css_signature: tuple[object, ...] = ()

    def on_mount(self) -> None:
        if self.handle_hangup:
            # A closed terminal stops the sweep like q (its journal stays), and the
            # process is gone within seconds whatever it was doing.
            hangup.install(self.startup.stop_sweep)
        if self.journal is not None:
            self.startup.replay(self.journal)
        elif self.demo:
            self.post_message(cmd.RunDemo())
        elif self.offer_resume:
            self.call_after_refresh(self.startup.find_unfinished_run)
        if self.start_screen:
            self.switch_mode(self.start_screen)
        self.call_after_refresh(self.startup.warm_up)

    def refresh_css(self, animate: bool = True) -> None:
        """Re-parse styles only when they changed (Textual asks on each screen's first
        visit: hundreds of milliseconds for nothing, every style being read at start)."""
        signature = (self.theme, tuple(self.stylesheet.source),
                     tuple(self.get_css_variables().items()))
        if signature != self._css_signature:
            self._css_signature = signature
            super().refresh_css(animate)

    @property
    def run_screen(self) -> RunScreen:
        return self.get_screen("run")  # type: ignore[return-value]

    @property
    def serve_screen(self) -> ServeScreen:
        return self.get_screen("serve")  # type: ignore[return-value]

    @property
    def soak_screen(self) -> SoakScreen:
        return self.get_screen("soak")  # type: ignore[return-value]

    # Navigation: one handler for the seven screens' commands.
    @on(cmd.ShowSetup)
    @on(cmd.ShowRun)
    @on(cmd.ShowResults)
    @on(cmd.ShowProfiles)
    @on(cmd.ShowRace)
    @on(cmd.ShowServe)
    @on(cmd.ShowSoak)
    def _show(self, message: cmd.Command) -> None:
        self.switch_mode(type(message).__name__.removeprefix("Show").lower())

    @on(cmd.ShowHelp)
    def _show_help(self) -> None:
        from tui.screens.help import HelpScreen
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # Sweeps.
    def start_sweep(self, request: SweepStart) -> None:
        self.switch_mode("run")
        self.run_screen.start(request)

    def start_serve(self, request: ServeRequest) -> None:
        self.switch_mode("serve")
        self.serve_screen.start(request)

    def start_soak(self, request: SoakRequest) -> None:
        self.switch_mode("soak")
        self.soak_screen.start(request)

    def sweep_finished(self, state: RunState) -> None:
        self.last_run = state
        if self.current_mode == "run":
            self.switch_mode("results")
        self.notify(f"Sweep {state.status}: {state.done}/{state.total} test points.")

    @on(cmd.TogglePause)
    @on(cmd.CancelSweep)
    def _forward_to_run(self, message: cmd.Command) -> None:
        # Pause and cancel work from any screen: the run screen owns the sweep.
        if self.current_mode == "run":
            return
        if self.startup.sweep_workers():
            self.run_screen.post_message(type(message)())
        else:
            self.notify("No sweep is running.", severity="warning")

    @on(cmd.RunDemo)
    def _run_demo(self) -> None:
        self.startup.run_demo()
    # Leaving.
    @on(cmd.Quit)
    async def _quit(self) -> None:
        await self.startup.stop_sweep()
        self.exit(0)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """The one place worker failures reach the user: one line, never a traceback."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        text = str(error).strip()
        message = text.splitlines()[0] if text else type(error).__name__
        what = FAILED.get(event.worker.group, "Failed")
        self.notify(f"{what}: {message}", severity="error", timeout=10)
        if event.worker.group == "sweep":
            self.run_screen.sweep_failed()
        elif event.worker.group == "serve":
            self.serve_screen.duel_failed()
        elif event.worker.group == "soak":
            self.soak_screen.soak_failed(message)

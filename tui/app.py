"""The llamaduel app: a thin shell that holds the sources and switches between screens.

Everything the app reads comes in through the constructor (builds, models, telemetry,
profile store, a journal to replay), so tests hand it real, small ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App
from textual.worker import Worker, WorkerCancelled, WorkerFailed, WorkerState

from tui.screens import commands as cmd
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.run_state import RunState
from tui.screens.setup import SetupScreen

if TYPE_CHECKING:
    from tui.screens.run import RunScreen, SweepRequest


def _lazy(module: str, name: str):
    """A screen factory that imports its module on first use: the first frame stays quick."""

    def make():
        import importlib

        return getattr(importlib.import_module(module), name)()

    return make


class LlamaduelApp(cmd.CommandsMixin, App[int]):
    TITLE = "llamaduel"
    CSS_PATH = "app.tcss"
    # The Race screen opens with the ShowRace command (key 5, and the palette).
    COMMANDS = {cmd.ActionsProvider}
    BINDINGS = cmd.bindings(cmd.APP_COMMANDS, hide=cmd.SCREEN_FOOTER_COMMANDS)
    # Each screen is made once, on first use, and keeps its state while another shows.
    SCREENS = {"setup": SetupScreen, "run": _lazy("tui.screens.run", "RunScreen"),
               "results": _lazy("tui.screens.results", "ResultsScreen"),
               "profiles": _lazy("tui.screens.profiles", "ProfilesScreen"),
               "race": _lazy("tui.screens.race", "RaceScreen")}
    MODES = {name: name for name in SCREENS}
    DEFAULT_MODE = "setup"
    # Screens get one of these classes from the terminal width (panels stack when narrow).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-medium"), (140, "-wide")]

    def __init__(
        self,
        builds: Sequence[Any] | None = None,
        models: Sequence[Any] | None = None,
        *,
        telemetry: Any = None,  # a Telemetry, a callable making one, or None
        store: Any = None,
        build_paths: Mapping[str, Path] | None = None,
        model_dirs: Sequence[Path] = (),
        journal: Path | None = None,
        start_screen: str | None = None,
        runs_root: Path | None = None,
        demo: bool = False,
        offer_resume: bool = True,
        handle_hangup: bool = False,
        check_options: Mapping[str, Any] | None = None,
    ) -> None:
        """``builds``/``models`` None: discover them in the background after the first frame.

        ``journal`` replays a recorded run (no processes start); ``runs_root`` is where new
        runs keep their journals (default: the user data folder). ``check_options`` go to
        the correctness check before a sweep (`backends.correctness.run_check`'s keywords:
        context, chunks, text, reference, timeout).
        """
        super().__init__()
        self.builds: list[Any] | None = list(builds) if builds is not None else None
        self.models: list[Any] | None = list(models) if models is not None else None
        self._telemetry = telemetry
        self._store = store
        self.build_paths = dict(build_paths or {})
        self.model_dirs = list(model_dirs)
        self.journal = journal
        self.start_screen = start_screen
        self.runs_root = runs_root
        self.demo = demo
        self.offer_resume = offer_resume and journal is None and not demo
        self.last_run = RunState()
        self.handle_hangup = handle_hangup
        self.check_options = dict(check_options or {})

    @property
    def telemetry(self) -> Any:
        """The telemetry source; a factory given to the constructor is called on first use."""
        if callable(self._telemetry) and not hasattr(self._telemetry, "stream"):
            try:
                self._telemetry = self._telemetry()
            except Exception as error:  # noqa: BLE001 - a sweep runs fine without telemetry
                self.notify(f"Telemetry is off: {error}", severity="warning")
                self._telemetry = None
        return self._telemetry

    @property
    def store(self) -> Any:
        """The profile store, opened on first use so that starting stays quick."""
        if self._store is None:
            from profiles import ProfileStore

            self._store = ProfileStore()
        return self._store

    def on_mount(self) -> None:
        if self.handle_hangup:
            # A closed terminal (SIGHUP) quits like q: the sweep stops, its journal stays.
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP, lambda: self.post_message(cmd.Quit()))
        if self.journal is not None:
            self._replay(self.journal)
        elif self.demo:
            self.post_message(cmd.RunDemo())
        elif self.offer_resume:
            self.call_after_refresh(self.find_unfinished_run)
        if self.start_screen:
            self.switch_mode(self.start_screen)

    def _replay(self, journal: Path) -> None:
        from backends.runner import read_journal

        events = read_journal(journal)
        self.switch_mode("run")
        run_screen = self.run_screen
        run_screen.show_events(events)
        self.last_run = run_screen.run_state
        self.start_screen = self.start_screen or "results"

    @property
    def run_screen(self) -> "RunScreen":
        return self.get_screen("run")  # type: ignore[return-value]

    # Navigation.
    @on(cmd.ShowSetup)
    def _show_setup(self) -> None:
        self.switch_mode("setup")

    @on(cmd.ShowRun)
    def _show_run(self) -> None:
        self.switch_mode("run")

    @on(cmd.ShowResults)
    def _show_results(self) -> None:
        self.switch_mode("results")

    @on(cmd.ShowProfiles)
    def _show_profiles(self) -> None:
        self.switch_mode("profiles")

    @on(cmd.ShowRace)
    def _show_race(self) -> None:
        self.switch_mode("race")

    @on(cmd.ShowHelp)
    def _show_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    @on(cmd.ProfilesChanged)
    def _profiles_changed(self) -> None:
        from textual.screen import Screen

        screen = self._installed_screens.get("profiles")
        if isinstance(screen, Screen) and screen is not self.screen:
            screen.post_message(cmd.ProfilesChanged())

    # Sweeps.
    def start_sweep(self, request: "SweepRequest") -> None:
        self.switch_mode("run")
        self.run_screen.start(request)

    def sweep_finished(self, state: RunState) -> None:
        self.last_run = state
        if self.current_mode == "run":
            self.switch_mode("results")
        self.notify(f"Sweep {state.status}: {state.done}/{state.total} test points.")

    @on(cmd.TogglePause)
    @on(cmd.CancelSweep)
    def _forward_to_run(self, message: cmd.Command) -> None:
        # Pause and cancel work from any screen: the run screen owns the sweep.
        from tui.screens.run import RunScreen

        if self.screen_stack and not isinstance(self.screen, RunScreen):
            self.run_screen.post_message(type(message)())

    @on(cmd.RunDemo)
    def _run_demo(self) -> None:
        from backends.demo import build_log_path, is_ready

        if not is_ready():
            self.notify("Building llama.cpp's CPU and Vulkan (lavapipe) tools and a small model "
                        f"for the working default: several minutes; log: {build_log_path()}",
                        timeout=12)
        self.prepare_demo()

    @work(thread=True, group="demo", exclusive=True, exit_on_error=False)
    def prepare_demo(self) -> None:
        from backends.builds import probe_build
        from backends.demo import prepare_demo
        from backends.models import read_model

        from backends.demo import build_log_path

        log = build_log_path()
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as output:  # never onto the app's screen
            setup = prepare_demo(output=output)
        builds = [probe_build(folder, name) for name, folder in setup.builds.items()]
        model = read_model(setup.model)
        self.call_from_thread(self._demo_ready, builds, model, setup.spec)

    def _demo_ready(self, builds: list[Any], model: Any, spec: Any) -> None:
        known = {b.name for b in self.builds or ()}
        self.builds = [*(self.builds or ()), *(b for b in builds if b.name not in known)]
        if self.models is None or all(m.path != model.path for m in self.models):
            self.models = [*(self.models or ()), model]
        from tui.screens.run import SweepRequest

        self.start_sweep(SweepRequest(builds=tuple(builds), model=model, spec=spec))

    # Resuming an interrupted run.
    @work(thread=True, group="resume", exit_on_error=False)
    def find_unfinished_run(self) -> None:
        from backends.runner import list_runs

        unfinished = [run for run in list_runs(self.runs_root) if run.resumable]
        if unfinished:
            self.call_from_thread(self._offer_resume, unfinished[0])

    def _offer_resume(self, run: Any) -> None:
        def answered(yes: bool | None) -> None:
            from tui.screens.run import SweepRequest

            if yes:
                self.start_sweep(SweepRequest(builds=(), model=None, spec=None,
                                              resume_dir=Path(run.run_dir)))

        question = (f"An unfinished run of {Path(run.model).name} "
                    f"({' vs '.join(run.builds)}, {run.done}/{run.total} done) was stopped. "
                    "Resume it?")
        self.push_screen(ConfirmScreen(question, yes="Resume", no="Not now"), answered)

    # Leaving.
    @on(cmd.Quit)
    async def _quit(self) -> None:
        await self.stop_sweep()
        self.exit(0)

    async def stop_sweep(self) -> None:
        """Stop a running sweep and wait until its llama-bench processes are gone."""
        from textual.screen import Screen

        screen = self._installed_screens.get("run")
        if not isinstance(screen, Screen):
            return
        running = [w for w in screen.workers if w.group == "sweep" and w.is_running]
        if running:
            screen.cancel_sweep()
            for worker in running:
                # The worker's own finally closes the runner, which kills llama-bench.
                with contextlib.suppress(WorkerCancelled, WorkerFailed):
                    await worker.wait()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """The one place worker failures reach the user: one line, never a traceback."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        what = {"sweep": "Sweep stopped", "demo": "Demo set-up failed",
                "resume": "Could not read earlier runs", "discover": "Discovery failed",
                }.get(event.worker.group, "Failed")
        self.notify(f"{what}: {message}", severity="error", timeout=10)
        if event.worker.group == "sweep":
            from tui.screens.run_state import CANCELLED, with_status

            screen = self.run_screen
            screen.control = None
            if screen.run_state.active:
                screen.run_state = with_status(screen.run_state, CANCELLED)

    def describe_build(self, name: str, state: RunState) -> str:
        """One line about a build: backend, device and version."""
        info = next((b for b in self.builds or () if b.name == name), None)
        if info is not None:
            parts = [info.backend, info.devices[0].description if info.devices else "", info.version]
            return " · ".join(p for p in parts if p)
        progress = state.build(name)
        if progress and progress.results:
            raw = progress.results[0].raw
            device = raw.get("gpu_info") or raw.get("cpu_info") or ""
            return " · ".join(str(p) for p in (raw.get("backends"), device,
                                                progress.results[0].build_label) if p)
        return ""

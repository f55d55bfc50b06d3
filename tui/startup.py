"""What the app does on its own: the working default (``--demo``), the offer to resume an
interrupted run, and stopping a sweep on the way out."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from textual.worker import Worker, WorkerCancelled, WorkerFailed

from tui import actions as cmd
from tui.engine import list_runs, read_journal

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.demo import DemoSetup
    from backends.models import ModelInfo
    from backends.sweep import RunSummary
    from tui.app import LlamaduelApp

__all__ = ["Startup"]


WARM_UP_DELAY_S = 0.3


class Startup:
    """The app's own doings, held by the app (``app.startup``); screens never import it."""

    def __init__(self, app: LlamaduelApp) -> None:
        self.app = app

    def replay(self, journal: Path) -> None:
        """Show a recorded run as it ended; Results opens unless another screen was asked."""
        self.app.switch_mode("run")
        read = read_journal(journal)
        self.app.run_screen.show_events(read)
        for line in read.report():  # each skipped line once, where the user looks
            self.app.notify(line, severity="warning", timeout=30)
        self.app.last_run = self.app.run_screen.run_state
        self.app.start_screen = self.app.start_screen or "results"

    # Warming up the later screens.
    def warm_up(self) -> None:
        """Shortly after the first frame, mount one hidden instance of each widget the other
        screens use, then remove them: their modules are imported and their styles parsed
        while the user reads Setup, so a first visit to another screen only lays it out."""
        self.app.set_timer(WARM_UP_DELAY_S, self._warm_up)

    def _warm_up(self, tries: int = 10) -> None:
        from textual.containers import Vertical
        from textual.widget import MountError

        from tui.screens import help, profiles, race, results, run  # noqa: F401 - imported now
        from tui.screens.base import AppScreen
        from tui.widgets.build_panel import BuildPanel
        from tui.widgets.race_controls import RaceControls
        from tui.widgets.race_lane import RaceLane
        from tui.widgets.race_plot import RaceRatePlot
        from tui.widgets.telemetry_strip import TelemetryStrip
        from tui.widgets.throughput_plot import ThroughputPlot
        from tui.widgets.verdict_card import VerdictCard

        if not self.app.is_running:
            return
        if not isinstance(self.app.screen, AppScreen) or not self.app.screen.is_mounted:
            if tries > 1:  # a dialog is up (the resume offer): after it
                self.app.set_timer(WARM_UP_DELAY_S, lambda: self._warm_up(tries - 1))
            return
        holder = Vertical(classes="-warm-up")
        holder.display = False
        widgets = [BuildPanel("warm-up"), ThroughputPlot("pp"), RaceControls(),
                   RaceLane("warm-up"), RaceRatePlot(), TelemetryStrip(), VerdictCard("", [])]

        async def mount_then_remove() -> None:
            screen = self.app.screen
            if not screen.is_attached or not self.app.is_running:
                return  # quitting already
            try:
                await screen.mount(holder)
                await holder.mount_all(widgets)
                await holder.remove()
            except MountError:
                return  # the screen closed meanwhile: nothing to warm up for
            self.app.refresh_css()  # the new styles parsed now, not on the next screen change

        self.app.call_later(mount_then_remove)

    # The working default.
    def run_demo(self) -> None:
        from backends.demo import build_log_path, is_ready

        if not is_ready():
            self.app.notify("Building llama.cpp's CPU and Vulkan (lavapipe) tools and fetching a small "
                       f"model for the working default: several minutes; log: {build_log_path()}",
                       timeout=12)
        self.app.run_worker(lambda: self._prepare_demo(), thread=True, group="demo", exclusive=True,
                       exit_on_error=False)

    def _prepare_demo(self) -> None:
        from backends.builds import probe_build
        from backends.demo import build_log_path, prepare_demo
        from backends.models import read_model

        log = build_log_path()
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as output:  # never onto the self.app's screen
            setup = prepare_demo(output=output)
        builds = [probe_build(folder, name) for name, folder in setup.builds.items()]
        model = read_model(setup.model)
        self.app.call_from_thread(self._demo_ready, builds, model, setup)

    def _demo_ready(self, builds: list[BuildInfo], model: ModelInfo,
                    setup: DemoSetup) -> None:
        sources = self.app.sources
        sources.add_builds(builds)
        sources.add_models([model])
        sources.chosen_model = str(model.path)
        for note in setup.notes:
            self.app.notify(note, severity="warning", timeout=10)
        if self.app.is_screen_installed("setup"):
            self.app.get_screen("setup").post_message(cmd.SourcesChanged(setup.spec))
        self.app.run_worker(self._demo_sweep(builds, model, setup), group="demo", exit_on_error=False)

    async def _demo_sweep(self, builds: list[BuildInfo], model: ModelInfo,
                          setup: DemoSetup) -> None:
        """Time the builds briefly when nothing is known yet (for the ETA), then run."""
        from backends.sweep import RunRequest
        from tui.state.plan import make_plan
        from tui.state.run_text import SweepStart

        rates = self.app.sources.rates
        if any(rates.get(b, model) is None for b in builds):
            if not (self.app.current_mode == "setup" and self.app.auto_probe):
                # Setup's status line says so itself; a toast there would hide that line.
                self.app.notify("Timing both builds briefly for the estimate…", timeout=6)
            # The queue Setup uses too: a build Setup is timing now is not timed twice.
            async for _name, _measured in self.app.sources.probes.measure(builds, model):
                pass  # a failed probe: the run says why, on its own
        plan = make_plan(builds, model, setup.spec, {b.name: rates.get(b, model) for b in builds},
                         check=True, check_options=self.app.sources.check_options)
        run = RunRequest(builds, model, setup.spec, runs_root=self.app.sources.runs_root, check=plan.check)
        self.app.start_sweep(SweepStart(run, plan=plan))

    # Resuming an interrupted run.
    def find_unfinished_run(self) -> None:
        self.app.run_worker(lambda: self._find(), thread=True, group="resume", exit_on_error=False)

    def _find(self) -> None:
        unfinished = [run for run in list_runs(self.app.sources.runs_root) if run.resumable]
        if unfinished:
            self.app.call_from_thread(self._offer_resume, unfinished[0])

    def _offer_resume(self, run: RunSummary) -> None:
        from tui.screens.confirm import ConfirmScreen
        from tui.state.run_text import SweepStart

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.start_sweep(SweepStart(resume_dir=Path(run.run_dir)))

        question = (f"An unfinished run of {Path(run.model).name} "
                    f"({' vs '.join(run.builds)}, {run.done}/{run.total} done) was stopped. "
                    "Resume it?")
        self.app.push_screen(ConfirmScreen(question, yes="Resume", no="Not now"), answered)

    # Leaving.
    def sweep_workers(self) -> list[Worker[None]]:
        return [w for w in self.app.workers if w.group == "sweep" and w.is_running]

    async def stop_sweep(self) -> None:
        """Stop a running sweep, server duel or soak and wait until its processes are gone."""
        duels = [w for w in self.app.workers if w.group in ("serve", "soak") and w.is_running]
        for worker in duels:
            worker.cancel()  # the worker's own finally closes the duel, which stops its servers
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                await worker.wait()
        running = self.sweep_workers()
        if running:
            self.app.run_screen.cancel_sweep()
            for worker in running:
                # The worker's own finally closes the runner, which kills llama-bench.
                with contextlib.suppress(WorkerCancelled, WorkerFailed):
                    await worker.wait()

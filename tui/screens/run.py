"""The race as it happens: a panel per build, throughput against depth, and telemetry."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, ProgressBar, Static

from backends.events import BenchEvent, SweepFinished, TelemetryRecorded
from tui.screens import commands as cmd
from tui.screens.confirm import ConfirmScreen
from tui.screens.run_state import (
    CANCELLED, FINISHED, PAUSED, RUNNING, CheckPlanned, RunState, fold, fold_all, fold_check,
    with_status,
)
from tui.widgets.build_panel import BuildPanel
from tui.widgets.telemetry_panel import TelemetryHistory, TelemetryPanel, reading_from
from tui.widgets.throughput_plot import ThroughputPlot

@dataclass(frozen=True)
class SweepRequest:
    """What to run: builds (BuildInfo), a model (ModelInfo or path) and a SweepSpec.

    ``check``: options for the correctness check that runs before the sweep
    (`backends.correctness.run_check`'s keywords, e.g. context); None runs no check.
    """

    builds: tuple[Any, ...]
    model: Any
    spec: Any
    resume_dir: Path | None = None
    options: dict = field(default_factory=dict, hash=False, compare=False)
    check: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)


NOT_CHECKED = "check: no llama-perplexity: not checked"


class RunScreen(cmd.CommandsMixin, Screen):
    CSS_PATH = "run.tcss"
    COMMAND_MESSAGES = (cmd.TogglePause, cmd.CancelSweep, cmd.ShowResults)
    BINDINGS = cmd.bindings(COMMAND_MESSAGES)

    run_state: reactive[RunState] = reactive(RunState, always_update=True, repaint=False)
    history: reactive[TelemetryHistory] = reactive(TelemetryHistory, always_update=True, repaint=False)

    class SweepEventReceived(Message):
        """The runner yielded an event (a result, a failure, progress, the end)."""

        def __init__(self, event: BenchEvent) -> None:
            super().__init__()
            self.event = event

    class CheckEventReceived(Message):
        """The correctness check before the sweep moved on (started, a build checked, done)."""

        def __init__(self, event: Any) -> None:
            super().__init__()
            self.event = event

    class TelemetrySampled(Message):
        """A telemetry tick; a newer one replaces it if the screen has not drawn it yet."""

        def __init__(self, event: TelemetryRecorded) -> None:
            super().__init__()
            self.event = event

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunScreen.TelemetrySampled)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.control = None
        self._shown_builds: tuple[str, ...] = ()
        self._shown_notes: tuple[str, ...] = ()
        self._shown_summary = ""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="run-body"):
            with Horizontal(id="run-header"):
                yield Static("No sweep yet: set one up on the Setup screen (1) and press r.",
                             id="run-summary")
                yield ProgressBar(total=1, show_eta=False, id="run-progress")
            yield Static("", id="run-notes")
            yield Horizontal(id="build-panels")
            with Horizontal(id="throughput"):
                yield ThroughputPlot("pp", id="plot-pp").data_bind(RunScreen.run_state)
                yield ThroughputPlot("tg", id="plot-tg").data_bind(RunScreen.run_state)
            yield TelemetryPanel(id="telemetry").data_bind(RunScreen.history)
        yield Footer()

    def on_mount(self) -> None:
        # State set before the screen was mounted shows now.
        self.call_after_refresh(self.mutate_reactive, RunScreen.run_state)

    # The one place display state changes: every event folds into a new frozen state.
    def watch_run_state(self, state: RunState) -> None:
        if not self.is_attached or not self.query("#run-summary"):
            return
        if state.builds and tuple(b.name for b in state.builds) != self._shown_builds:
            self._show_panels(state)
        summary = self.query_one("#run-summary", Static)
        bar = self.query_one("#run-progress", ProgressBar)
        if not state.builds:
            return
        if (bar.total, bar.progress) != (max(state.total, 1), state.done):
            bar.update(total=max(state.total, 1), progress=state.done)
        model = Path(state.model).name
        status = {RUNNING: "running", PAUSED: "paused (p resumes)", FINISHED: "finished",
                  CANCELLED: "cancelled"}.get(state.status, state.status)
        if state.active and not state.run_id:
            status = "checking correctness first"
        failures = sum(len(b.failures) for b in state.builds)
        failed = f", {failures} failed" if failures else ""
        text = (f"{model}  ·  {' vs '.join(b.name for b in state.builds)}  ·  "
                f"{state.done}/{state.total} done{failed}  ·  {status}")
        if text != self._shown_summary:  # progress lines alone leave it as it is
            self._shown_summary = text
            summary.update(text, layout=False)
        if state.notes != self._shown_notes:
            self._shown_notes = state.notes
            notes = self.query_one("#run-notes", Static)
            notes.update("\n".join(state.notes))
            notes.display = bool(state.notes)

    def _show_panels(self, state: RunState) -> None:
        self._shown_builds = tuple(b.name for b in state.builds)
        container = self.query_one("#build-panels", Horizontal)
        container.remove_children()
        container.set_class(len(state.builds) > 2, "-many")
        container.mount_all(
            BuildPanel(b.name, self.app.describe_build(b.name, state), id=f"panel-{i}")
            .data_bind(RunScreen.run_state)
            for i, b in enumerate(state.builds)
        )

    def show_events(self, events: list[BenchEvent]) -> None:
        """Show a recorded run (a journal) as it ended."""
        history = TelemetryHistory(show_host=_splits(events))
        for event in events:
            if isinstance(event, TelemetryRecorded):
                history = history.add(reading_from(event.sample))
        with self.app.batch_update():
            self.run_state = fold_all(events)
            self.history = history

    # Live runs.
    def start(self, request: SweepRequest) -> None:
        self.history = TelemetryHistory(show_host=_spec_splits(request.spec))
        if request.resume_dir is not None:
            from backends.runner import read_journal

            self.show_events(read_journal(request.resume_dir / "journal.jsonl"))
        else:
            self.run_state = RunState()
        self.run_sweep(request)

    @work(group="sweep", exclusive=True, exit_on_error=False)
    async def run_sweep(self, request: SweepRequest) -> None:
        from backends import runner

        self.control = runner.SweepControl()
        try:
            if request.check is not None and request.resume_dir is None:
                # In this worker, so that cancel and quit stop the check's processes too.
                await self._check_first(request)
            await self._sweep(request, runner)
        finally:
            self.control = None

    async def _check_first(self, request: SweepRequest) -> None:
        from backends.correctness import CheckFinished, CheckInputError, run_check

        builds = list(request.builds)
        checkable = [b for b in builds if getattr(b, "perplexity", None)]
        skipped = {b.name for b in builds} - {b.name for b in checkable}
        self.post_message(self.CheckEventReceived(CheckPlanned(
            model=str(getattr(request.model, "path", request.model)),
            builds=tuple(b.name for b in builds),
            not_checked={name: NOT_CHECKED for name in skipped})))
        if not checkable:
            return
        events = run_check(checkable, request.model, **dict(request.check or {}))
        try:
            async for event in events:
                self.post_message(self.CheckEventReceived(event))
        except CheckInputError as error:  # bad check options: say so and race anyway
            self.post_message(self.CheckEventReceived(CheckFinished((), problem=str(error))))
        finally:
            # Closing it kills a running llama-perplexity and removes the reference's file.
            await events.aclose()

    async def _sweep(self, request: SweepRequest, runner: Any) -> None:
        options = {"telemetry": self.app.telemetry, "control": self.control, **request.options}
        if request.resume_dir is not None:
            events = runner.resume(request.resume_dir, builds=list(request.builds) or None,
                                   **options)
        else:
            if self.app.runs_root is not None:
                options.setdefault("runs_root", self.app.runs_root)
            events = runner.run_sweep(list(request.builds), request.model, request.spec,
                                      **options)
        try:
            async for event in events:
                if isinstance(event, TelemetryRecorded):
                    self.post_message(self.TelemetrySampled(event))
                else:
                    self.post_message(self.SweepEventReceived(event))
        finally:
            # Closing the iterator kills llama-bench's process group; the journal keeps
            # every result so far and the next start offers to resume.
            await events.aclose()

    @on(SweepEventReceived)
    def _event_received(self, message: SweepEventReceived) -> None:
        with self.app.batch_update():
            state = fold(self.run_state, message.event)
            if self.control is not None and self.control.paused and state.status == RUNNING:
                state = with_status(state, PAUSED)
            self.run_state = state
        if isinstance(message.event, SweepFinished):
            self.app.sweep_finished(self.run_state)

    @on(CheckEventReceived)
    def _check_event_received(self, message: CheckEventReceived) -> None:
        self.run_state = fold_check(self.run_state, message.event)

    @on(TelemetrySampled)
    def _telemetry_sampled(self, message: TelemetrySampled) -> None:
        self.history = self.history.add(reading_from(message.event.sample))

    @on(cmd.TogglePause)
    def _toggle_pause(self, message: cmd.TogglePause) -> None:
        message.stop()
        if self.control is None or not self.run_state.active:
            self.notify("No sweep is running.", severity="warning")
            return
        if self.control.paused:
            self.control.resume()
            self.run_state = with_status(self.run_state, RUNNING)
            self.notify("Resumed.")
        else:
            self.control.pause()
            self.run_state = with_status(self.run_state, PAUSED)
            self.notify("Pausing after the current test point.")

    @on(cmd.CancelSweep)
    def _cancel(self, message: cmd.CancelSweep) -> None:
        message.stop()
        if self.control is None or not self.run_state.active:
            self.notify("No sweep is running.", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.cancel_sweep()

        self.app.push_screen(ConfirmScreen(
            "Cancel the sweep? Results so far stay in the journal and in the table.",
            yes="Cancel sweep", no="Keep running"), answered)

    def cancel_sweep(self) -> None:
        # Cancelling the worker closes the runner, which kills every llama-bench group; a
        # paused runner is not resumed first, so no new test point starts meanwhile.
        self.workers.cancel_group(self, "sweep")
        self.run_state = with_status(self.run_state, CANCELLED)

    @property
    def sweep_running(self) -> bool:
        return self.control is not None


def _spec_splits(spec: Any) -> bool:
    """Host CPU and RAM matter when part of the model runs on the CPU."""
    return bool(getattr(spec, "n_cpu_moe", None) or getattr(spec, "auto_ncmoe", False)
                or (getattr(spec, "n_gpu_layers", None) not in (None, -1)
                    and getattr(spec, "n_gpu_layers", 99) < 99))


def _splits(events: list[BenchEvent]) -> bool:
    from backends.events import SweepStarted

    for event in events:
        if isinstance(event, SweepStarted):
            spec = event.spec or {}
            ngl = spec.get("n_gpu_layers")
            return bool(spec.get("n_cpu_moe") or spec.get("auto_ncmoe")
                        or (ngl is not None and 0 <= ngl < 99))
    return False

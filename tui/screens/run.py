"""The run as it happens: the check, a panel per build, throughput against depth, telemetry.

The sweep's events arrive as messages and fold into one frozen RunState (``run_state``);
panels and plots watch it. The header says what the run waits for and about how long.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Footer, Static

from backends.correctness import CheckEvent
from backends.journal.sweep import (
    BenchEvent,
    PointFailed,
    PointProgress,
    ResultReceived,
    SweepFinished,
    TelemetryRecorded,
)
from backends.journal.tune import TuneEvent
from tui import actions as cmd
from tui.screens.base import AppScreen
from tui.screens.confirm import ConfirmScreen
from tui.state.run import (
    CANCELLED,
    PAUSED,
    RUNNING,
    CheckPlanned,
    RunState,
    fold,
    fold_all,
    fold_check,
    keep_record,
    with_status,
)
from tui.state.run_text import SweepStart, describe, header_text, journal_splits, progress_bar, spec_splits
from tui.state.telemetry import TelemetryHistory, reading_from
from tui.state.tune import TuneBoard, fold_tune, fold_tune_all
from tui.widgets.build_panel import BuildPanel
from tui.widgets.telemetry_panel import TelemetryPanel
from tui.widgets.throughput_plot import ThroughputPlot
from tui.widgets.tune_panel import TunePanel

if TYPE_CHECKING:
    from collections.abc import Iterable

    from backends.sweep import RunRequest, SweepControl
    from tui.state.plan import Plan

NOT_CHECKED = "check: no llama-perplexity: not checked"
HEADER_SECONDS = 1.0
PROGRESS_SECONDS = 0.5


class RunScreen(AppScreen):
    COMMAND_MESSAGES = cmd.RUN_COMMANDS
    BINDINGS = cmd.bindings(COMMAND_MESSAGES)
    AUTO_FOCUS = None
    # Short terminals: smaller panels, the plots side by side, telemetry in one line.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]

    run_state: reactive[RunState] = reactive(RunState, always_update=True, repaint=False)
    history: reactive[TelemetryHistory] = reactive(TelemetryHistory, always_update=True,
                                                   repaint=False)

    class SweepEventReceived(Message):
        """The runner yielded an event (a result, a failure, progress, the end)."""

        def __init__(self, event: BenchEvent) -> None:
            super().__init__()
            self.event = event

    class CheckEventReceived(Message):
        """The correctness check before the sweep moved on (started, a build checked, done)."""

        def __init__(self, event: CheckEvent | CheckPlanned) -> None:
            super().__init__()
            self.event = event

    class TuneEventReceived(Message):
        """The tune before the sweep moved on (a grid, a round, a probe, a choice)."""

        def __init__(self, event: TuneEvent) -> None:
            super().__init__()
            self.event = event

    class TelemetrySampled(Message):
        """A telemetry tick; a newer one replaces it if the screen has not drawn it yet."""

        def __init__(self, event: TelemetryRecorded) -> None:
            super().__init__()
            self.event = event

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunScreen.TelemetrySampled)

    def __init__(self) -> None:
        super().__init__()
        self.control: SweepControl | None = None
        self.request: SweepStart | None = None
        self._shown_builds: tuple[str, ...] = ()
        self._shown: dict[str, object] = {}
        self._progress: list[BenchEvent] = []
        self._progress_timer: Timer | None = None
        self.tune_board = TuneBoard()

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="run-body", can_focus=False):
            with Horizontal(id="run-header"):
                yield Static("No sweep yet: set one up on the Setup screen (1) and press r.",
                             id="run-summary")
                yield Static("", id="run-progress")
            yield Static("", id="run-activity")
            yield Static("", id="run-notes")
            yield Horizontal(id="tune-panels")
            yield Horizontal(id="build-panels")
            with Horizontal(id="throughput"):
                yield ThroughputPlot("pp", id="plot-pp").data_bind(RunScreen.run_state)
                yield ThroughputPlot("tg", id="plot-tg").data_bind(RunScreen.run_state)
            yield TelemetryPanel(id="telemetry").data_bind(RunScreen.history)
        yield Footer()

    def on_mount(self) -> None:
        # State set before the screen was mounted shows now; the header ticks for the ETA.
        self.call_after_refresh(self.mutate_reactive, RunScreen.run_state)
        self.call_after_refresh(lambda: self.show_tune(self.tune_board))
        self.set_interval(HEADER_SECONDS, self._show_header)
        if self.request is not None:
            self._show_telemetry_off()

    def _show_telemetry_off(self) -> None:
        if self.is_mounted and self.sources.telemetry is None:
            self.query_one(TelemetryPanel).waiting_text = (
                self.sources.telemetry_problem or "telemetry is off (no source on this machine)")

    # The one place display state changes: every event folds into a new frozen state.
    def watch_run_state(self, state: RunState) -> None:
        if not self.is_attached or not self.query("#run-summary"):
            return
        if state.builds and tuple(b.name for b in state.builds) != self._shown_builds:
            self._show_panels(state)
        if not state.builds:
            return
        bar = progress_bar(state.done, state.total)
        if self._changed("bar", bar):
            self.query_one("#run-progress", Static).update(bar, layout=False)
        self._show_header()
        notes = "\n".join(state.notes)
        if self._changed("notes", notes):
            widget = self.query_one("#run-notes", Static)
            widget.update(notes)
            widget.display = bool(notes)

    def _changed(self, what: str, value: object) -> bool:
        """True (and remembered) when ``value`` differs from what was shown last."""
        if self._shown.get(what) == value:
            return False
        self._shown[what] = value
        return True

    def _show_header(self) -> None:
        state = self.run_state
        if not state.builds or not self.is_mounted:
            return
        now = time.time()
        summary = header_text(state, now)
        if self._changed("summary", summary):  # a line redrawn only when its text changed
            self.query_one("#run-summary", Static).update(summary, layout=False)
        activity = state.check.line(now) if state.check is not None and state.active else ""
        if self._changed("activity", activity):
            widget = self.query_one("#run-activity", Static)
            widget.update(activity)
            widget.display = bool(activity)

    def _show_panels(self, state: RunState) -> None:
        self._shown_builds = tuple(b.name for b in state.builds)
        container = self.query_one("#build-panels", Horizontal)
        container.remove_children()
        container.set_class(len(state.builds) > 2, "-many")
        container.mount_all(
            BuildPanel(b.name, describe(self.sources.describe_build(b.name), b.name, state),
                       id=f"panel-{i}").data_bind(RunScreen.run_state)
            for i, b in enumerate(state.builds))

    def show_events(self, events: Iterable[object]) -> None:
        """Show a recorded run (a journal) as it ended."""
        events = list(events)
        history = TelemetryHistory(show_host=journal_splits(events))
        for event in events:
            if isinstance(event, TelemetryRecorded):
                history = history.add(reading_from(event.sample))
        with self.app.batch_update():
            self.run_state = fold_all(events)
            self.history = history
            self.show_tune(fold_tune_all(events))

    # Live runs.
    def start(self, request: SweepStart) -> None:
        from tui.engine import read_journal

        self.request = request
        self.history = TelemetryHistory(show_host=spec_splits(request.spec))
        self._show_telemetry_off()
        if request.resume_dir is not None:
            self.show_events(read_journal(request.resume_dir / "journal.jsonl"))
        else:
            self.run_state = RunState()
        self.run_sweep(request)

    @work(group="sweep", exclusive=True, exit_on_error=False)
    async def run_sweep(self, request: SweepStart) -> None:
        from tui.engine import new_control

        self.control = new_control()
        self.refresh_bindings()  # p and c now work
        try:
            if request.request is not None and request.request.check is not None:
                self._plan_check(request.request, request.plan)
            await self._sweep(request)
        finally:
            self.control = None
            self.refresh_bindings()

    def _plan_check(self, run: RunRequest, plan: Plan | None) -> None:
        """Say what the check will read, and with which builds, before the sweep runs it."""
        skipped = {b.name for b in run.builds if b.perplexity is None}
        self.post_message(self.CheckEventReceived(CheckPlanned(
            model=str(run.model_path), builds=tuple(b.name for b in run.builds),
            not_checked={name: NOT_CHECKED for name in skipped},
            chunks=run.check.chunks if run.check else None,
            estimates=dict(plan.check_estimates) if plan else {},
            sweep_estimate=plan.estimate.seconds if plan else None, at=time.time())))

    async def _sweep(self, request: SweepStart) -> None:
        from tui.engine import sweep

        events = sweep(request, telemetry=self.sources.telemetry, control=self.control)
        try:
            async for event in events:
                if isinstance(event, TelemetryRecorded):
                    self.post_message(self.TelemetrySampled(event))
                elif isinstance(event, CheckEvent):
                    self.post_message(self.CheckEventReceived(event))
                elif isinstance(event, BenchEvent):
                    self.post_message(self.SweepEventReceived(event))
                elif isinstance(event, TuneEvent):
                    self.post_message(self.TuneEventReceived(event))
        finally:
            # Closing the iterator kills llama-bench's process group; the journal keeps
            # every result so far and the next start offers to resume.
            await events.aclose()
            if self.control is not None:  # results journalled as the cancel came are shown too
                landed = [e for e in self.control.undelivered if isinstance(e, ResultReceived | PointFailed)]
                self.run_state = fold_all(landed, self.run_state)

    @on(TuneEventReceived)
    def _tune_event_received(self, message: TuneEventReceived) -> None:
        self.show_tune(fold_tune(self.tune_board, message.event))
        self.run_state = keep_record(self.run_state, message.event)

    def show_tune(self, board: TuneBoard) -> None:
        """A Tune panel per contender: mounted with the first event, updated with each."""
        self.tune_board = board
        if not self.is_mounted or not self.query("#tune-panels"):
            return  # a replayed run before the screen is up: shown from on_mount
        container = self.query_one("#tune-panels", Horizontal)
        for name, lane in board.lanes.items():
            found = [p for p in container.query(TunePanel) if p.build_name == name]
            panel = found[0] if found else TunePanel(name)
            if not found:
                container.mount(panel)
            panel.show(lane)

    @on(SweepEventReceived)
    def _event_received(self, message: SweepEventReceived) -> None:
        if isinstance(message.event, PointProgress):
            # llama-bench's progress lines come several a second: shown a few times a
            # second, in order, and always before the next result.
            self._progress.append(message.event)
            if self._progress_timer is None:
                self._progress_timer = self.set_timer(PROGRESS_SECONDS, self._flush_progress)
            return
        self._flush_progress()
        with self.app.batch_update():
            state = fold(self.run_state, message.event)
            if self.control is not None and self.control.paused and state.status == RUNNING:
                state = with_status(state, PAUSED)
            if self.request is not None and self.request.plan is not None and not state.estimate:
                state = dataclasses.replace(state, estimate=self.request.plan.estimate.seconds)
            self.run_state = state
        if isinstance(message.event, SweepFinished):
            self._learn_rates()
            self.duel_app.sweep_finished(self.run_state)

    def _flush_progress(self) -> None:
        if self._progress_timer is not None:
            self._progress_timer.stop()
            self._progress_timer = None
        if self._progress:
            events, self._progress = self._progress, []
            self.run_state = fold_all(events, self.run_state)

    def _learn_rates(self) -> None:
        request = self.request
        model = getattr(request, "model", None) if request else None
        if request is not None and model is not None and hasattr(model, "size_bytes"):
            self.sources.rates.learn(self.run_state, request.builds, model)

    @on(CheckEventReceived)
    def _check_event_received(self, message: CheckEventReceived) -> None:
        self.run_state = fold_check(self.run_state, message.event, now=time.time())

    @on(TelemetrySampled)
    def _telemetry_sampled(self, message: TelemetrySampled) -> None:
        self.history = self.history.add(reading_from(message.event.sample))

    def command_available(self, command: type[cmd.Command]) -> bool | None:
        if command in (cmd.TogglePause, cmd.CancelSweep):
            return self.control is not None and self.run_state.active
        return True

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

    def sweep_failed(self) -> None:
        """The sweep's worker raised: no control any more, and the run is over."""
        self.control = None
        if self.run_state.active:
            self.run_state = with_status(self.run_state, CANCELLED)

    @property
    def sweep_running(self) -> bool:
        return self.control is not None

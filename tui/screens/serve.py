"""A server duel as it happens: a panel per contender, then the serving verdict.

The duel's events arrive as messages and fold into one frozen ``DuelState``
(``backends.server.fold``); the panels watch it. The journal holds every event before
the screen sees it. At the end, the serving verdict per concurrency level
(``profiles.serving``) comes from the same duel summary a profile keeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Footer, Static

from backends.journal.serve import DuelFinished, DuelStarted, StreamTick
from backends.server import DuelState, ServeEvent, duel_summary, fold
from tui import actions as cmd
from tui.screens.base import AppScreen
from tui.screens.confirm import ConfirmScreen
from tui.state.serve import ServeRequest, header_text, plan_line, verdict_lines
from tui.widgets.serve_panel import ServePanel

if TYPE_CHECKING:
    from profiles.serving import ServingVerdict


class ServeScreen(AppScreen):
    COMMAND_MESSAGES = cmd.SERVE_COMMANDS
    BINDINGS = cmd.bindings(COMMAND_MESSAGES)
    AUTO_FOCUS = None

    duel_state: reactive[DuelState] = reactive(DuelState, always_update=True, repaint=False)

    class DuelEventReceived(Message):
        """The duel yielded an event; a stream's newer tick replaces one not drawn yet."""

        def __init__(self, event: ServeEvent) -> None:
            super().__init__()
            self.event = event

        def can_replace(self, message: Message) -> bool:
            old, new = getattr(message, "event", None), self.event
            return (isinstance(message, ServeScreen.DuelEventReceived) and isinstance(old, StreamTick)
                    and isinstance(new, StreamTick) and (old.contender, old.stream, old.level)
                    == (new.contender, new.stream, new.level))

    def __init__(self) -> None:
        super().__init__()
        self.request: ServeRequest | None = None
        self.journal: str | None = None
        self.status = "idle"  # idle, running, finished, cancelled, failed
        self.verdicts: tuple[ServingVerdict, ...] = ()
        self.disagreement = ""
        self._started: DuelStarted | None = None
        self._shown: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="serve-body", can_focus=False):
            yield Static(header_text(DuelState()), id="serve-summary")
            yield Static("", id="serve-plan")
            yield Horizontal(id="serve-panels")
            yield Static("", id="serve-verdict")
        yield Footer()

    def on_mount(self) -> None:
        self.call_after_refresh(self.mutate_reactive, ServeScreen.duel_state)

    def watch_duel_state(self, state: DuelState) -> None:
        if not self.is_attached or not self.query("#serve-summary"):
            return
        names = tuple(c.name for c in state.contenders)
        if names and names != self._shown:
            self._shown = names
            panels = self.query_one("#serve-panels", Horizontal)
            panels.remove_children()
            panels.set_class(len(names) > 2, "-many")
            panels.mount_all(ServePanel(n, self.sources.describe_build(n), id=f"serve-panel-{i}")
                             .data_bind(ServeScreen.duel_state) for i, n in enumerate(names))
        header = header_text(state)
        if self.status in ("cancelled", "failed"):
            header = header.replace("running", self.status)
        self.query_one("#serve-summary", Static).update(header)

    # Live duels.
    def start(self, request: ServeRequest) -> None:
        self.request, self.journal, self.verdicts, self._started = request, None, (), None
        self.status = "running"
        self.duel_state = DuelState()
        if self.is_mounted:
            self.query_one("#serve-plan", Static).update(plan_line(request.spec, len(request.builds)))
            self.query_one("#serve-verdict", Static).update("")
        self.run_duel(request)

    @work(group="serve", exclusive=True, exit_on_error=False)
    async def run_duel(self, request: ServeRequest) -> None:
        from tui.engine import serve

        events = serve(request, runs_root=self.sources.runs_root)
        self.refresh_bindings()
        try:
            async for event in events:
                self.post_message(self.DuelEventReceived(event))
        finally:
            # Closing the duel stops every server it started; the journal keeps the rest.
            await events.aclose()
            self.refresh_bindings()

    @on(DuelEventReceived)
    def _event_received(self, message: DuelEventReceived) -> None:
        event = message.event
        if isinstance(event, DuelStarted):
            self._started, self.journal = event, event.journal
            plan = plan_line(self.request.spec, len(event.contenders)) if self.request else ""
            self.query_one("#serve-plan", Static).update(f"{plan}\njournal: {event.journal}")
        self.duel_state = fold(self.duel_state, event)
        if isinstance(event, DuelFinished):
            self._finished(event)

    def _finished(self, event: DuelFinished) -> None:
        from profiles.disagreement import disagreement
        from profiles.serving import serving_verdicts

        self.status = "cancelled" if event.cancelled else "finished"
        started = [self._started] if self._started is not None else []
        summary = duel_summary([*started, event])
        self.verdicts = serving_verdicts(summary)
        self.disagreement = disagreement(summary, self.verdicts)
        text = verdict_lines(self.verdicts, event.failures, self.disagreement)
        verdict = self.query_one("#serve-verdict", Static)
        verdict.update(f"Serving verdict\n{text}" if text else "")
        self.app.notify(f"Server duel {self.status}: " + "; ".join(
            f"{v.workload} {v.headline}" for v in self.verdicts))

    @property
    def running(self) -> bool:
        return any(w.group == "serve" and w.is_running for w in self.workers)

    def command_available(self, command: type[cmd.Command]) -> bool | None:
        if command is cmd.CancelSweep:
            return self.running
        return True

    @on(cmd.CancelSweep)
    def _cancel(self, message: cmd.CancelSweep) -> None:
        message.stop()
        if not self.running:
            self.notify("No server duel is running.", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.cancel_duel()

        self.app.push_screen(ConfirmScreen(
            "Stop the server duel? Every server is stopped; the journal keeps what it measured.",
            yes="Stop duel", no="Keep running"), answered)

    def cancel_duel(self) -> None:
        self.workers.cancel_group(self, "serve")
        self.status = "cancelled"
        self.duel_state = self.duel_state

    def duel_failed(self) -> None:
        self.status = "failed"
        self.duel_state = self.duel_state

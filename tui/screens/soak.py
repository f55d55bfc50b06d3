"""A soak as it happens: per build its uptime, requests, crashes (with the last error line),
hangs, HTTP errors, probes and wrong answers, restarts, memory growth and throughput now
against the first window. A soak that stopped with time left (``c`` here, or a hang-up that
took the app away) goes on with ``u``, in its own journal, its figures counting on.

The soak runs through ``tui.engine.soak`` (the engine ``llamaduel soak`` uses); its events
are journalled before they arrive here as messages, and fold into one frozen ``SoakView``
(``tui.state.soak.fold``). At the end, a profile named on Setup gets the soak's figures.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from tui import actions as cmd
from tui.screens.base import AppScreen
from tui.screens.confirm import ConfirmScreen
from tui.state.soak import (
    SoakRequest,
    SoakView,
    build_lines,
    fold,
    footer_text,
    header_text,
    plan_line,
    resume_line,
)

if TYPE_CHECKING:
    from backends.soak import Unfinished


class SoakScreen(AppScreen):
    COMMAND_MESSAGES = cmd.SOAK_COMMANDS
    BINDINGS = cmd.bindings(COMMAND_MESSAGES)
    AUTO_FOCUS = None

    class SoakEventReceived(Message):
        def __init__(self, event: object) -> None:
            super().__init__()
            self.event = event

    def __init__(self) -> None:
        super().__init__()
        self.request: SoakRequest | None = None
        self.view = SoakView()
        self.saved: Path | None = None
        self.unfinished: Unfinished | None = None  # the last soak, stopped with time left
        self._event_at = time.monotonic()

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="soak-body", can_focus=False):
            yield Static(header_text(self.view), id="soak-summary")
            yield Static("", id="soak-plan")
            yield Vertical(id="soak-builds")
            yield Static("", id="soak-footer")
            yield Static("", id="soak-resume")
        yield Footer()

    def on_mount(self) -> None:
        self._show()
        self.set_interval(1.0, self._tick)  # uptime and the clock count on between events
        self.find_unfinished()

    def on_screen_resume(self) -> None:
        self.find_unfinished()

    @work(thread=True, group="soak-find", exclusive=True, exit_on_error=False)
    def find_unfinished(self) -> None:
        from backends.soak import last_unfinished

        if not self.running:
            found = last_unfinished(self.sources.runs_root)
            self.app.call_from_thread(self._found, found)

    @on(Worker.StateChanged)
    def _soak_ended(self, event: Worker.StateChanged) -> None:
        # Not stopped: the app says why a soak failed. A cancelled soak can go on (u).
        if event.worker.group == "soak" and event.state in (
                WorkerState.SUCCESS, WorkerState.CANCELLED, WorkerState.ERROR):
            self.find_unfinished()

    def _found(self, found: Unfinished | None) -> None:
        self.unfinished = None if self.running else found
        self._show()
        self.refresh_bindings()

    def _now(self) -> float | None:
        if self.view.status != "running" or not self.running:
            return None
        return self.view.at_s + time.monotonic() - self._event_at

    def _tick(self) -> None:
        if self._now() is not None:
            self._show()

    @property
    def journal(self) -> str | None:
        return self.view.journal

    @property
    def running(self) -> bool:
        return any(w.group == "soak" and w.is_running for w in self.workers)

    def start(self, request: SoakRequest) -> None:
        self._begin(request, SoakView())
        self.run_soak(request, None)

    def resume(self, journal: Path) -> None:
        """Go on with the soak journalled at ``journal``: its figures so far first."""
        from backends.journal.journal import read_journal

        view = SoakView()
        for event in read_journal(journal):
            view = fold(view, event)
        same = self.request is not None and self.view.journal == str(journal)
        self._begin(self.request if same else None, view)  # a profile to save into stays
        self.run_soak(None, journal)

    def _begin(self, request: SoakRequest | None, view: SoakView) -> None:
        self.request, self.view, self.saved, self.unfinished = request, view, None, None
        self._event_at = time.monotonic()
        if self.is_mounted:
            self.query_one("#soak-builds", Vertical).remove_children()
            self._show()

    @work(group="soak", exclusive=True, exit_on_error=False)
    async def run_soak(self, request: SoakRequest | None, resume: Path | None) -> None:
        from tui.engine import soak, soak_resume

        if resume is not None:
            events = soak_resume(resume)
        else:
            assert request is not None
            events = soak(request, runs_root=self.sources.runs_root)
        self.refresh_bindings()
        try:
            async for event in events:
                self.post_message(self.SoakEventReceived(event))
        except asyncio.CancelledError:
            # Stopped here: the journal ends with the soak's cancelled SoakFinished, and so
            # does the screen, after every event already on its way.
            from backends.soak import SoakFinished

            self.post_message(self.SoakEventReceived(SoakFinished(cancelled=True, at_s=self.view.at_s)))
            raise
        finally:
            # Closing the soak stops every server it started; the journal keeps the rest.
            await events.aclose()
            self.refresh_bindings()

    @on(SoakEventReceived)
    def _event_received(self, message: SoakEventReceived) -> None:
        from backends.soak import SoakFinished

        self.view = fold(self.view, message.event)
        self._event_at = time.monotonic()
        self._show()
        if isinstance(message.event, SoakFinished):
            self._finished()

    def _show(self) -> None:
        if not self.is_mounted:
            return
        now = self._now()
        self.query_one("#soak-summary", Static).update(header_text(self.view, now))
        request = self.request
        plan = plan_line(request.spec, len(request.builds), request.reference) if request else ""
        self.query_one("#soak-plan", Static).update(plan)
        panels = self.query_one("#soak-builds", Vertical)
        for index, build in enumerate(self.view.builds):
            found = panels.query(f"#soak-build-{index}")
            text = "\n".join(build_lines(build, self.view, now))
            if found:
                found.first(Static).update(text)
            else:
                panels.mount(Static(text, id=f"soak-build-{index}", classes="soak-build"))
        self.query_one("#soak-footer", Static).update(footer_text(self.view))
        self.query_one("#soak-resume", Static).update(resume_line(self.unfinished))

    def _finished(self) -> None:
        self.app.notify(f"Soak {self.view.status}: " + "; ".join(
            f"{b.name} {b.crashes} crashes, {b.wrong} wrong" for b in self.view.builds))
        if self.request is not None and self.request.profile and self.view.journal:
            self.save(self.request, self.view.journal)

    @work(thread=True, group="soak-save", exit_on_error=False)
    def save(self, request: SoakRequest, journal: str) -> None:
        from tui.state.soak import save_soak

        assert request.profile is not None
        path = save_soak(self.sources.store, request.profile, Path(journal),
                         require_stable=request.require_stable)
        self.app.call_from_thread(self._saved, path)

    def _saved(self, path: Path) -> None:
        self.saved = path
        self.notify(f"Soak figures saved into {path}")
        self.app.post_message(cmd.ProfilesChanged())

    def command_available(self, command: type[cmd.Command]) -> bool | None:
        if command is cmd.StopSoak:
            return self.running
        if command is cmd.ResumeSoak:
            return not self.running and self.unfinished is not None
        return True

    @on(cmd.ResumeSoak)
    def _resume(self, message: cmd.ResumeSoak) -> None:
        message.stop()
        if self.running or self.unfinished is None:
            self.notify("No stopped soak to resume.", severity="warning")
            return
        self.resume(self.unfinished.journal)

    @on(cmd.StopSoak)
    def _cancel(self, message: cmd.StopSoak) -> None:
        message.stop()
        if not self.running:
            self.notify("No soak is running.", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.workers.cancel_group(self, "soak")

        self.app.push_screen(ConfirmScreen(
            "Stop the soak? Every server is stopped; the journal keeps what it measured.",
            yes="Stop soak", no="Keep running"), answered)

    def soak_failed(self, reason: str) -> None:
        self.view = dataclasses.replace(self.view, status="failed", problem=reason)
        self._show()

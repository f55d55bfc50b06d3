"""The telemetry strip under the race: samples only while a race runs and its screen shows,
follows each tool the race starts, and says in one line when there is no source."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static
from textual.worker import Worker

from tui.state.telemetry import TelemetryHistory, reading_from, summary_line
from tui.widgets.telemetry_panel import TelemetryPanel

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.telemetry.model import TelemetrySource

TELEMETRY_SECONDS = 0.5
NO_TELEMETRY = "Telemetry is off: no telemetry source on this machine."


def uses_host(build: BuildInfo) -> bool:
    """Host CPU and RAM are the race's own figures when a build runs on the CPU."""
    return str(build.backend).lower() in ("", "cpu") or not build.devices


class TelemetryStrip(Vertical):
    """Holds the panel; ``source`` is the app's telemetry (None: the one-line note)."""

    class Sampled(Message):
        """A telemetry tick; a newer one replaces it if the strip has not drawn it yet."""

        def __init__(self, sample: dict[str, object]) -> None:
            super().__init__()
            self.sample = sample

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, TelemetryStrip.Sampled)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.source: TelemetrySource | None = None
        self.samples = 0
        self.race_over = True

    def compose(self) -> ComposeResult:
        yield TelemetryPanel(id="race-telemetry")
        yield Static(NO_TELEMETRY, id="race-telemetry-off")

    def on_unmount(self) -> None:
        self.stop(now=True)

    @property
    def panel(self) -> TelemetryPanel:
        return self.query_one(TelemetryPanel)

    def show_source(self, source: TelemetrySource | None) -> None:
        self.source = source
        self.query_one("#race-telemetry-off", Static).display = source is None
        self.panel.display = source is not None

    def begin(self, builds: Sequence[BuildInfo]) -> None:
        """A race starts: a fresh history, then sampling."""
        self.panel.history = TelemetryHistory(show_host=any(uses_host(b) for b in builds))
        self.race_over = False
        self.start()

    def start(self) -> None:
        if self.source is None:
            return
        self.samples = 0
        self.follow(self.source)

    def follow_pid(self, pid: int) -> None:
        if self.source is not None:
            self.source.watch_pids([pid])

    def workers_running(self) -> list[Worker[None]]:
        return [w for w in self.workers
                if w.node is self and w.group == "race-telemetry" and w.is_running]

    def stop(self, *, now: bool = False) -> None:
        # At the race's end a worker that has not shown its first tick yet shows it first,
        # so even a race over in milliseconds leaves the machine's state on the strip.
        if now or self.samples:
            for worker in self.workers_running():
                worker.cancel()

    def ended(self) -> None:
        """The race is over: stop following its tools and sampling."""
        self.race_over = True
        if self.source is not None:
            self.source.unwatch_all()
        self.stop()

    @work(exclusive=True, group="race-telemetry", exit_on_error=False)
    async def follow(self, source: TelemetrySource) -> None:
        from backends.telemetry import snapshot_to_json

        async with contextlib.aclosing(source.stream(TELEMETRY_SECONDS)) as stream:
            async for snapshot in stream:
                self.post_message(self.Sampled(snapshot_to_json(snapshot)))
                self.samples += 1
                if self.race_over:
                    return

    @on(Sampled)
    def _sampled(self, message: Sampled) -> None:
        panel = self.panel
        panel.history = panel.history.add(reading_from(message.sample))

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "race-telemetry" or event.worker.is_running:
            return
        # The panel writes its values line at most once a second; the last tick of a short
        # race would be left unwritten, so the final figures are written here.
        history = self.panel.history
        if history.readings and self.is_mounted:
            self.panel.show_values(summary_line(history.readings[-1], history.show_host))

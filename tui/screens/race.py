"""The Race screen: one prompt streamed through each build, text side by side.

Pick builds, a model and the prompt; Ctrl-R races them (one after the other on a shared
GPU, at once with "parallel"). Each lane shows its text as it streams, time to first token
and tokens/second; where a build's text parts from the reference build's it is shown
reversed. Ctrl-L replays a finished race with every build on one clock; Ctrl-S adds the
race to a profile. While a race runs the telemetry strip at the bottom follows the machine
(VRAM, temperatures, power, throttling, host CPU and RAM) and the tools the race started.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Checkbox, Footer, Input, Label, Select, SelectionList, Static
from textual.worker import Worker, WorkerState

from tui.widgets.race_lane import RaceLane
from tui.widgets.telemetry_panel import TelemetryHistory, TelemetryPanel, reading_from, summary_line
from tui.widgets.race_plot import RaceRatePlot
from tui.widgets.race_state import RaceBoard, apply, replay

REFRESH_SECONDS = 0.1
REPLAY_FRAME_SECONDS = 0.05
REPLAY_MIN_SECONDS = 4.0  # a race over in milliseconds replays in slow motion
TELEMETRY_SECONDS = 0.5
NO_TELEMETRY = "Telemetry is off: no telemetry source on this machine."

def _uses_host(build: Any) -> bool:
    """Host CPU and RAM are the race's own figures when a build runs on the CPU."""
    return str(getattr(build, "backend", "")).lower() in ("", "cpu") or not getattr(build, "devices", ())


def describe(build: Any) -> str:
    devices = getattr(build, "devices", ()) or ()
    device = devices[0].description if devices else ""
    parts = [getattr(build, "backend", ""), device, getattr(build, "version", "")]
    return " · ".join(str(p) for p in parts if p)


def add_race_to_profile(store: Any, name: str, summary: dict[str, Any], *, builds: Any = (),
                        model_info: Any = None) -> tuple[Any, bool]:
    """Append ``summary`` to profile ``name``'s races, making the profile if it is new."""
    from profiles.model import profile_from_journal

    existing = {entry.name for entry in store.list()}
    if name in existing:
        profile = store.load(name)
        profile = dataclasses.replace(profile, races=(*profile.races, summary))
        created = False
    else:
        profile = profile_from_journal([], name=name, model_info=model_info, builds=builds,
                                       races=[summary])
        created = True
    store.save(profile)
    return profile, created


class RaceScreen(Screen):
    CSS_PATH = "race.tcss"
    BINDINGS = [
        Binding("ctrl+r", "start_race", "race"),
        Binding("ctrl+b", "stop_race", "stop"),
        Binding("ctrl+l", "replay", "replay"),
        Binding("ctrl+s", "add_to_profile", "add to profile"),
        Binding("f2", "toggle_settings", "settings"),
    ]

    # Short terminals keep the lanes: the telemetry strip drops its plots (race.tcss).
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]

    board: reactive[RaceBoard] = reactive(RaceBoard, always_update=True)
    history: reactive[TelemetryHistory] = reactive(TelemetryHistory, always_update=True, repaint=False)

    class TelemetrySampled(Message):
        """A telemetry tick; a newer one replaces it if the screen has not drawn it yet."""

        def __init__(self, sample: dict[str, Any]) -> None:
            super().__init__()
            self.sample = sample

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RaceScreen.TelemetrySampled)

    def __init__(self, *, builds: Any = None, models: Any = None, store: Any = None,
                 **kwargs) -> None:
        """``builds``/``models``/``store`` default to the app's."""
        super().__init__(**kwargs)
        self._builds = builds
        self._models = models
        self._store = store
        self.events: list[Any] = []
        self._pending = RaceBoard()
        self._dirty = False
        self._final: RaceBoard | None = None
        self._replay_timer = None
        self._replay_clock = 0.0
        self._replay_speed = 1.0
        self._race_builds: list[Any] = []
        self._race_model: Any = None
        self._shown_sources: tuple = ()
        self._race_over = True
        self._telemetry_samples = 0

    # Sources.
    @property
    def builds(self) -> list[Any]:
        return list(self._builds if self._builds is not None else getattr(self.app, "builds", None) or ())

    @property
    def models(self) -> list[Any]:
        return list(self._models if self._models is not None else getattr(self.app, "models", None) or ())

    @property
    def store(self) -> Any:
        if self._store is None:
            self._store = getattr(self.app, "store", None)
            if self._store is None:
                from profiles import ProfileStore

                self._store = ProfileStore()
        return self._store

    # Layout.
    def compose(self) -> ComposeResult:
        with Vertical(id="race-settings"):
            with Horizontal(classes="race-row"):
                yield Label("Prompt ", classes="race-label")
                yield Input(placeholder="text to complete (Enter or Ctrl-R races)", id="race-prompt")
            with Horizontal(classes="race-row"):
                yield Select([], prompt="model", id="race-model", compact=True)
                yield Label(" tokens ", classes="race-label")
                yield Input("64", id="race-n", type="integer", classes="race-number")
                yield Label(" temp ", classes="race-label")
                yield Input("0", id="race-temp", type="number", classes="race-number")
                yield Label(" seed ", classes="race-label")
                yield Input("42", id="race-seed", type="integer", classes="race-number")
                yield Checkbox("parallel", id="race-parallel", compact=True)
            yield SelectionList(id="race-builds")
        yield Static("", id="race-status")
        yield Horizontal(id="race-lanes")
        yield RaceRatePlot(id="race-plot")
        yield TelemetryPanel(id="race-telemetry").data_bind(RaceScreen.history)
        yield Static(NO_TELEMETRY, id="race-telemetry-off")
        yield Footer()

    def on_mount(self) -> None:
        self._fill_sources()
        self.set_interval(REFRESH_SECONDS, self._push_pending)
        self.set_interval(1.0, self._fill_sources)  # builds and models may still be found
        self._show_status()
        self._show_telemetry_source()

    def on_screen_resume(self) -> None:
        self._fill_sources()
        self._show_telemetry_source()
        if self._race_running():
            self._start_telemetry()

    def on_screen_suspend(self) -> None:
        # Nobody sees the strip while another screen is up; the race itself goes on.
        self._stop_telemetry(now=True)

    def on_unmount(self) -> None:
        self._stop_telemetry(now=True)

    def _fill_sources(self) -> None:
        builds, models = self.builds, self.models
        key = (tuple(getattr(b, "name", "") for b in builds),
               tuple(str(getattr(m, "path", "")) for m in models))
        if key == self._shown_sources or not self.is_mounted:
            return
        self._shown_sources = key
        chooser = self.query_one("#race-builds", SelectionList)
        chooser.clear_options()
        for build in builds:
            usable = getattr(build, "completion", None) is not None
            label = f"{build.name}  {describe(build)}" + ("" if usable else "  (no completion tool)")
            chooser.add_option((label, build.name, usable))
        model_select = self.query_one("#race-model", Select)
        model_select.set_options([(Path(str(m.path)).name, str(m.path)) for m in models])
        if models and model_select.is_blank():
            model_select.value = str(models[0].path)
        self._show_status()

    # The snapshot travels in one reactive; children watch their part.
    def _push_pending(self) -> None:
        if self._dirty and self._replay_timer is None:
            self._dirty = False
            self.board = self._pending

    def watch_board(self, board: RaceBoard) -> None:
        if not self.is_mounted:
            return
        with self.app.batch_update():
            for lane in board.lanes:
                for widget in self.query(RaceLane):
                    if widget.build == lane.build:
                        widget.lane = lane
            self.query_one(RaceRatePlot).board = board
            self._show_status()

    def _show_status(self) -> None:
        board = self.board
        if not board.lanes:
            if not self.builds:
                text = "No builds yet: they are being found, or add one on the Setup screen (1)."
            else:
                text = "Pick builds, a model and a prompt; Ctrl-R races them. F2 hides these settings."
        else:
            names = " vs ".join(lane.build for lane in board.lanes)
            how = "one after the other" if board.sequential else "at once"
            state = board.status
            if board.replay_at is not None:
                state = f"replay {board.replay_at:.3f}s (×{self._replay_speed:.3g} speed)"
            text = f"{names} on {Path(board.model).name}, {how}: {state}"
            greedy_warnings = [d for d in board.divergences if d.unexpected]
            if greedy_warnings:
                text += f" · WARNING: greedy output differs ({', '.join(d.build for d in greedy_warnings)})"
        self.query_one("#race-status", Static).update(text)

    # Actions.
    @on(Input.Submitted, "#race-prompt")
    async def _prompt_submitted(self) -> None:
        await self.action_start_race()

    def _read_spec(self) -> Any:
        from backends.race import RaceSpec

        prompt = self.query_one("#race-prompt", Input).value
        try:
            n_predict = int(self.query_one("#race-n", Input).value)
            temperature = float(self.query_one("#race-temp", Input).value)
            seed = int(self.query_one("#race-seed", Input).value)
        except ValueError:
            raise ValueError("tokens and seed must be whole numbers and temp a number") from None
        spec = RaceSpec(prompt=prompt, n_predict=n_predict, temperature=temperature, seed=seed)
        if problem := spec.problem():
            raise ValueError(problem)
        return spec

    def _race_running(self) -> bool:
        return any(w.group == "race" and w.is_running for w in self.workers)

    async def action_start_race(self) -> None:
        if self._race_running():
            self.notify("A race is running: Ctrl-B stops it.", severity="warning")
            return
        try:
            spec = self._read_spec()
        except ValueError as error:
            self.notify(str(error), severity="error")
            return
        chosen = set(self.query_one("#race-builds", SelectionList).selected)
        builds = [b for b in self.builds if b.name in chosen]
        if not builds:
            self.notify("Select at least one build (Space in the list).", severity="error")
            return
        model_select = self.query_one("#race-model", Select)
        model_path = model_select.value
        if model_select.is_blank():
            self.notify("Pick a model first.", severity="error")
            return
        self._race_builds = builds
        self._race_model = next((m for m in self.models if str(m.path) == model_path), None)
        self._stop_replay()
        await self._mount_lanes(builds)
        if self.size.height < 40:
            self.add_class("-hide-settings")
        parallel = self.query_one("#race-parallel", Checkbox).value
        self.history = TelemetryHistory(show_host=any(_uses_host(b) for b in builds))
        self._race_over = False
        self._start_telemetry()
        self.run_race(builds, Path(str(model_path)), spec, not parallel)

    async def _mount_lanes(self, builds: list[Any]) -> None:
        holder = self.query_one("#race-lanes", Horizontal)
        await holder.remove_children()
        await holder.mount_all(RaceLane(b.name, describe(b)) for b in builds)
        self.events = []
        self._pending = RaceBoard()
        self._final = None
        self.board = RaceBoard()

    @work(exclusive=True, group="race", exit_on_error=False)
    async def run_race(self, builds: list[Any], model: Path, spec: Any, sequential: bool) -> None:
        from backends.race import RaceError, run_race

        from backends.race import BuildStarted

        try:
            async with contextlib.aclosing(run_race(builds, model, spec, sequential=sequential)) as stream:
                async for event in stream:
                    self.events.append(event)
                    self._pending = apply(self._pending, event)
                    self._dirty = True
                    if isinstance(event, BuildStarted) and self.app.telemetry is not None:
                        self.app.telemetry.watch_pids([event.pid])
        except RaceError as error:
            self.notify(f"Race not started: {error}", severity="error")
            return
        finally:
            self._race_ended()
        self._final = self._pending
        self.board = self._pending
        failed = [lane.build for lane in self._final.lanes if lane.status in ("failed", "timed out")]
        if failed:
            self.notify(f"Race done; {', '.join(failed)} failed.", severity="warning")
        else:
            self.notify("Race done. Ctrl-L replays it side by side; Ctrl-S adds it to a profile.")

    # Telemetry while a race runs.
    def _show_telemetry_source(self) -> None:
        off = self.app.telemetry is None
        self.query_one("#race-telemetry-off", Static).display = off
        self.query_one("#race-telemetry", TelemetryPanel).display = not off

    def _start_telemetry(self) -> None:
        if self.app.telemetry is None:
            return
        self._telemetry_samples = 0
        self.follow_telemetry(self.app.telemetry)

    def _telemetry_workers(self) -> list[Worker]:
        return [w for w in self.workers if w.group == "race-telemetry" and w.is_running]

    def _stop_telemetry(self, *, now: bool = False) -> None:
        # At the race's end a worker that has not shown its first tick yet shows it first,
        # so even a race over in milliseconds leaves the machine's state on the strip.
        if now or self._telemetry_samples:
            for worker in self._telemetry_workers():
                worker.cancel()

    def _race_ended(self) -> None:
        self._race_over = True
        if self.app.telemetry is not None:
            self.app.telemetry.unwatch_all()
        self._stop_telemetry()

    @work(exclusive=True, group="race-telemetry", exit_on_error=False)
    async def follow_telemetry(self, telemetry: Any) -> None:
        from backends.telemetry import snapshot_to_json

        async with contextlib.aclosing(telemetry.stream(TELEMETRY_SECONDS)) as stream:
            async for snapshot in stream:
                self.post_message(self.TelemetrySampled(snapshot_to_json(snapshot)))
                self._telemetry_samples += 1
                if self._race_over:
                    return

    @on(TelemetrySampled)
    def _telemetry_sampled(self, message: TelemetrySampled) -> None:
        self.history = self.history.add(reading_from(message.sample))

    @on(Worker.StateChanged)
    def _telemetry_worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "race-telemetry" or event.worker.is_running:
            return
        # The panel writes its values line at most once a second; the last tick of a short
        # race would be left unwritten, so the final figures are written here.
        readings = self.history.readings
        if readings and self.is_mounted:
            self.query_one("#race-telemetry #telemetry-now", Static).update(
                summary_line(readings[-1], self.history.show_host))

    @on(Worker.StateChanged)
    def _race_worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "race":
            return
        # Failures are told by the app's one worker handler; here the board only says so.
        if event.state in (WorkerState.CANCELLED, WorkerState.ERROR):
            status = "cancelled" if event.state == WorkerState.CANCELLED else "failed"
            self._pending = dataclasses.replace(self._pending, status=status)
            self.board = self._pending

    def action_stop_race(self) -> None:
        running = [w for w in self.workers if w.group == "race" and w.is_running]
        for worker in running:
            worker.cancel()
        if running:
            self.notify("Race stopped; its processes are killed.")

    def action_toggle_settings(self) -> None:
        self.toggle_class("-hide-settings")

    # Replay on a common clock.
    def action_replay(self) -> None:
        final = self._final
        if final is None or not final.lanes:
            self.notify("Nothing to replay yet: race first (Ctrl-R).", severity="warning")
            return
        self._stop_replay()
        duration = final.duration
        self._replay_speed = min(1.0, duration / REPLAY_MIN_SECONDS) if duration > 0 else 1.0
        self._replay_clock = 0.0
        self._replay_timer = self.set_interval(REPLAY_FRAME_SECONDS, self._replay_frame)

    def _replay_frame(self) -> None:
        final = self._final
        if final is None:
            self._stop_replay()
            return
        self._replay_clock += REPLAY_FRAME_SECONDS * self._replay_speed
        if self._replay_clock >= final.duration:
            self._stop_replay()
            self.board = final
            return
        self.board = replay(final, self._replay_clock)

    def _stop_replay(self) -> None:
        if self._replay_timer is not None:
            self._replay_timer.stop()
            self._replay_timer = None

    # Keeping the result.
    def action_add_to_profile(self) -> None:
        if self._final is None or not any(lane.status == "finished" for lane in self._final.lanes):
            self.notify("No finished race to add yet.", severity="warning")
            return
        from tui.screens.confirm import AskTextScreen

        try:
            names = [entry.name for entry in self.store.list() if entry.problem is None]
        except Exception as error:  # noqa: BLE001 - an unreadable folder is one line
            self.notify(f"Cannot read profiles: {error}", severity="error")
            return
        suggestion = names[-1] if names else "race"
        question = ("Add this race to which profile? An existing name adds it there; "
                    "a new name makes a profile.")
        self.app.push_screen(AskTextScreen(question, suggestion), self._save_to)

    def _save_to(self, name: str | None) -> None:
        if name:
            self.save_race(name)

    @work(thread=True, group="race-save", exit_on_error=False)
    def save_race(self, name: str) -> None:
        from backends.race import race_summary

        try:
            _, created = add_race_to_profile(self.store, name, race_summary(self.events, self._race_builds),
                                             builds=self._race_builds, model_info=self._race_model)
        except Exception as error:  # noqa: BLE001 - a bad name or a full disk is one line
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            self.app.call_from_thread(self.notify, f"Not saved: {message}", severity="error")
            return
        what = "New profile" if created else "Added to profile"
        self.app.call_from_thread(self.notify, f"{what} {name!r}: race kept.")
        self.app.call_from_thread(self._profiles_changed)

    def _profiles_changed(self) -> None:
        with contextlib.suppress(Exception):
            from tui.screens.commands import ProfilesChanged

            self.app.post_message(ProfilesChanged())

"""The Race screen: one prompt streamed through each build, text side by side.

Pick builds (the screen opens on their list: Space ticks one), type a prompt (``e``; Enter
races, Escape leaves the field), Ctrl-R races them (one after the other on a shared GPU,
at once with "parallel"). Each lane shows its text as it streams, time to first token and
tokens/second; where a build's text parts from the reference build's it is shown reversed,
and when the texts match the lanes say so. Ctrl-L replays a finished race with every build
on one clock; Ctrl-S adds the race to a profile. While a race runs the telemetry strip at
the bottom follows the machine and the tools the race started.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState

from tui import actions as cmd
from tui.screens.base import AppScreen
from tui.screens.confirm import ask_before_cpu_fallback
from tui.state.race import RaceBoard, fold, replay
from tui.widgets.race_controls import RaceControls, describe
from tui.widgets.race_lane import RaceLane
from tui.widgets.race_plot import RaceRatePlot
from tui.widgets.telemetry_strip import NO_TELEMETRY, TelemetryStrip  # noqa: F401

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.models import ModelInfo
    from backends.race import RaceEvent, RaceSpec
    from profiles.model import Profile
    from profiles.store import ProfileStore
    from tui.state.telemetry import TelemetryHistory

REFRESH_SECONDS = 0.1
REPLAY_FRAME_SECONDS = 0.05
REPLAY_MIN_SECONDS = 4.0  # a race over in milliseconds replays in slow motion
LOG_SCALE_RATIO = 8


def add_race_to_profile(store: ProfileStore, name: str, summary: dict[str, object], *,
                        builds: Sequence[BuildInfo] = (), model_info: ModelInfo | None = None,
                        ) -> tuple[Profile, bool]:
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


def expects_log(builds: list[BuildInfo], rates: list[float | None]) -> bool:
    """The race plot's scale, chosen when the race starts: log when the builds' known
    generation rates differ a lot, or when a CPU or software build races a GPU one."""
    known = [r for r in rates if r]
    if len(known) == len(builds) and len(known) > 1:
        return max(known) / min(known) > LOG_SCALE_RATIO
    slow = [not b.devices or all(d.is_software for d in b.devices) for b in builds]
    return any(slow) and not all(slow)


class RaceScreen(AppScreen):
    COMMAND_MESSAGES = cmd.RACE_COMMANDS
    BINDINGS = cmd.bindings(COMMAND_MESSAGES, hide=(cmd.EditPrompt,))
    AUTO_FOCUS = "#race-builds"
    # Short terminals keep the lanes: the telemetry strip drops its plots (race.tcss).
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]

    def __init__(self) -> None:
        super().__init__()
        self.events: list[RaceEvent] = []
        self.board = RaceBoard()
        self._pending = RaceBoard()
        self._dirty = False
        self._final: RaceBoard | None = None
        self._replay_timer: Timer | None = None
        self._replay_clock = 0.0
        self._replay_speed = 1.0
        self._race_builds: list[BuildInfo] = []
        self._race_model: ModelInfo | None = None

    def compose(self) -> ComposeResult:
        yield RaceControls(id="race-settings")
        yield Static("", id="race-status")
        yield Horizontal(id="race-lanes")
        yield RaceRatePlot(id="race-plot")
        yield TelemetryStrip(id="race-strip")
        yield Footer()

    def on_mount(self) -> None:
        self._fill_sources()
        self.set_interval(REFRESH_SECONDS, self._push_pending)
        self.set_interval(1.0, self._fill_sources)  # builds and models may still be found
        self._show_status()
        self.strip.show_source(self.sources.telemetry)

    @property
    def strip(self) -> TelemetryStrip:
        return self.query_one(TelemetryStrip)

    @property
    def history(self) -> TelemetryHistory:
        """What the telemetry strip shows."""
        return self.strip.panel.history

    def on_screen_resume(self) -> None:
        self._fill_sources()
        self.strip.show_source(self.sources.telemetry)
        if self.race_running():
            self.strip.start()

    def on_screen_suspend(self) -> None:
        # Nobody sees the strip while another screen is up; the race itself goes on.
        self.strip.stop(now=True)

    def _fill_sources(self) -> None:
        if not self.is_mounted:
            return
        sources = self.sources
        if self.query_one(RaceControls).fill(sources.builds or (), sources.models or (),
                                              sources.chosen_model):
            self._show_status()

    # The snapshot travels in one attribute set at most ten times a second.
    def _push_pending(self) -> None:
        if self._dirty and self._replay_timer is None:
            self._dirty = False
            self.show_board(self._pending)

    def show_board(self, board: RaceBoard) -> None:
        self.board = board
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
            if not self.sources.builds:
                text = "No builds yet: they are being found, or add one on the Setup screen (1)."
            else:
                text = ("Space ticks builds · e types the prompt · Ctrl-R races · "
                        "F2 hides these settings")
        else:
            names = " vs ".join(lane.build for lane in board.lanes)
            how = "one after the other" if board.sequential else "at once"
            state = board.status
            if board.replay_at is not None:
                state = f"replay {board.replay_at:.3f}s (×{self._replay_speed:.3g} speed)"
            text = f"{names} on {Path(board.model).name}, {how}: {state}"
            warnings = [d.build for d in board.divergences if d.unexpected]
            if warnings:
                text += f" · WARNING: greedy output differs ({', '.join(warnings)})"
            elif board.status == "finished" and board.same_text:
                text += " · same text from every build"
        self.query_one("#race-status", Static).update(text)

    # Actions.
    @on(Input.Submitted, "#race-prompt")
    async def _prompt_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_leave_field()  # the race's keys (Ctrl-B, q, 1-5) work while it runs
        await self._start_race()

    @on(cmd.EditPrompt)
    def _edit_prompt(self, event: cmd.EditPrompt) -> None:
        event.stop()
        self.query_one("#race-prompt").focus()

    def race_running(self) -> bool:
        return any(w.group == "race" and w.is_running for w in self.workers)

    def command_available(self, command: type[cmd.Command]) -> bool | None:
        if command is cmd.StopRace:
            return self.race_running()
        if command in (cmd.ReplayRace, cmd.AddRaceToProfile):
            return self._final is not None and bool(self._final.lanes)
        return True

    @on(cmd.StartRace)
    async def _start_race_command(self, event: cmd.StartRace) -> None:
        event.stop()
        await self._start_race()

    async def _start_race(self) -> None:
        if self.race_running():
            self.notify("A race is running: Ctrl-B stops it.", severity="warning")
            return
        controls = self.query_one(RaceControls)
        try:
            spec = controls.read_spec()
        except ValueError as error:
            self.notify(str(error), severity="error")
            return
        chosen = controls.chosen_builds()
        builds = [b for b in self.sources.builds or () if b.name in chosen]
        if not builds:
            self.notify("Select at least one build (Space in the list).", severity="error")
            return
        model_path = controls.model_path()
        if model_path is None:
            self.notify("Pick a model first.", severity="error")
            return
        # A build that would run on the CPU under a GPU name asks first.
        ask_before_cpu_fallback(self.app, builds, lambda: self.call_later(
            self._begin_race, builds, model_path, spec, not controls.parallel))

    async def _begin_race(self, builds: list[BuildInfo], model_path: str, spec: RaceSpec,
                          sequential: bool) -> None:
        self._race_builds = builds
        self._race_model = self.sources.model(model_path)
        self._stop_replay()
        await self._mount_lanes(builds)
        if self.size.height < 40:
            self.add_class("-hide-settings")
        rates = [self.sources.rates.get(b, self._race_model) if self._race_model else None
                 for b in builds]
        self.query_one(RaceRatePlot).set_scale(
            expects_log(builds, [r.tg if r else None for r in rates]))
        self.strip.begin(builds)
        self.call_later(self.refresh_bindings)
        self.run_race(builds, Path(model_path), spec, sequential)

    async def _mount_lanes(self, builds: list[BuildInfo]) -> None:
        holder = self.query_one("#race-lanes", Horizontal)
        await holder.remove_children()
        await holder.mount_all(RaceLane(b.name, describe(b)) for b in builds)
        self.events = []
        self._pending = RaceBoard()
        self._final = None
        self.show_board(RaceBoard())

    @work(exclusive=True, group="race", exit_on_error=False)
    async def run_race(self, builds: list[BuildInfo], model: Path, spec: RaceSpec,
                       sequential: bool) -> None:
        from backends.race import BuildStarted, RaceError, run_race

        try:
            async with contextlib.aclosing(run_race(builds, model, spec,
                                                    sequential=sequential)) as stream:
                async for event in stream:
                    self.events.append(event)
                    self._pending = fold(self._pending, event)
                    self._dirty = True
                    if isinstance(event, BuildStarted):
                        self.strip.follow_pid(event.pid)
        except RaceError as error:
            self.notify(f"Race not started: {error}", severity="error")
            return
        finally:
            self.strip.ended()
            self.call_later(self.refresh_bindings)  # Ctrl-B off, Ctrl-L and Ctrl-S on
        self._final = self._pending
        self.show_board(self._pending)
        failed = [lane.build for lane in self._final.lanes if lane.status in ("failed", "timed out")]
        if failed:
            self.notify(f"Race done; {', '.join(failed)} failed.", severity="warning")
        else:
            self.notify("Race done. Ctrl-L replays it side by side; Ctrl-S adds it to a profile.")

    @on(Worker.StateChanged)
    def _race_worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "race" or event.state not in (WorkerState.CANCELLED,
                                                               WorkerState.ERROR):
            return
        # Failures are told by the app's one worker handler; here the board only says so.
        status = "cancelled" if event.state == WorkerState.CANCELLED else "failed"
        self._pending = dataclasses.replace(self._pending, status=status)
        self.show_board(self._pending)

    @on(cmd.StopRace)
    def _stop_race(self, event: cmd.StopRace) -> None:
        event.stop()
        running = [w for w in self.workers if w.group == "race" and w.is_running]
        for worker in running:
            worker.cancel()
        if running:
            self.notify("Race stopped; its processes are killed.")

    @on(cmd.ToggleRaceSettings)
    def _toggle_settings(self, event: cmd.ToggleRaceSettings) -> None:
        event.stop()
        self.toggle_class("-hide-settings")

    # Replay on a common clock.
    @on(cmd.ReplayRace)
    def _replay(self, event: cmd.ReplayRace) -> None:
        event.stop()
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
            self.show_board(final)
            return
        self.show_board(replay(final, self._replay_clock))

    def _stop_replay(self) -> None:
        if self._replay_timer is not None:
            self._replay_timer.stop()
            self._replay_timer = None

    # Keeping the result.
    @on(cmd.AddRaceToProfile)
    def _add_to_profile(self, event: cmd.AddRaceToProfile) -> None:
        event.stop()
        if self._final is None or not any(lane.status == "finished" for lane in self._final.lanes):
            self.notify("No finished race to add yet.", severity="warning")
            return
        from tui.screens.confirm import AskTextScreen

        try:
            names = [entry.name for entry in self.sources.store.list() if entry.problem is None]
        except Exception as error:
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
            _, created = add_race_to_profile(
                self.sources.store, name, race_summary(self.events, self._race_builds),
                builds=self._race_builds, model_info=self._race_model)
        except Exception as error:
            text = str(error).strip()
            message = text.splitlines()[0] if text else type(error).__name__
            self.app.call_from_thread(self.notify, f"Not saved: {message}", severity="error")
            return
        what = "New profile" if created else "Added to profile"
        self.app.call_from_thread(self.notify, f"{what} {name!r}: race kept.")
        self.app.call_from_thread(self.app.post_message, cmd.ProfilesChanged())

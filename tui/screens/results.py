"""The verdict of a sweep: a card per workload class, the plot with crossovers, the table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.reactive import reactive
from textual.widgets import DataTable, Footer, Static

from profiles.format import format_rate
from tui import actions as cmd
from tui.screens import profile_actions as actions
from tui.screens.base import AppScreen
from tui.screens.confirm import AskTextScreen
from tui.state.run import RunState
from tui.widgets.throughput_plot import ThroughputPlot
from tui.widgets.verdict_card import TuningCard, VerdictCard

if TYPE_CHECKING:
    from profiles.exporters import LaunchCommand
    from profiles.model import Profile
    from profiles.verdict import Recommendation


def recommendation_for(state: RunState) -> Recommendation:
    """The run's verdict from the same records the saved profile is made from (kept in
    memory as the run passed, never read back from its journal)."""
    from profiles.records import records_from_events
    from profiles.verdict import recommend_run

    # A build the correctness check found suspect or failed counts as unstable.
    records = records_from_events(actions.records_of(state), correctness=state.correctness_by_build())
    return recommend_run(records)


def table_rows(state: RunState) -> tuple[list[str], list[tuple[str, ...]]]:
    """One row per test point: each build's tok/s (± stddev), then the lead in words."""
    names = [b.name for b in state.builds]
    columns = ["test", *names, "lead"]
    rows = []
    points = list(state.points) or list(dict.fromkeys(
        r.point for b in state.builds for r in b.results))
    for point in points:
        rates: dict[str, float] = {}
        cells = []
        for build in state.builds:
            result = next((r for r in build.results if r.point == point), None)
            failure = next((f for f in build.failures if f.point == point), None)
            if result is not None and not math.isnan(result.avg_ts):
                rates[build.name] = result.avg_ts
                cells.append(f"{format_rate(result.avg_ts)} ± {format_rate(result.stddev_ts)}")
            elif failure is not None:
                cells.append("FAILED")
            else:
                cells.append("-")
        rows.append((point.name, *cells, _lead(rates)))
    return columns, rows


def _lead(rates: dict[str, float]) -> str:
    if len(rates) < 2:
        return ""
    ranked = sorted(rates.items(), key=lambda item: item[1], reverse=True)
    (best, top), (_, second) = ranked[0], ranked[1]
    if second <= 0:
        return best
    return f"{best} ×{top / second:.2f}"


def _cards(rec: Recommendation) -> list[VerdictCard]:
    from profiles.verdict import CLASS_LABELS

    # A class over several models shows its own line (which model goes which way); the
    # per-model verdicts are in the summary and the table.
    classes = list(dict.fromkeys(v.workload for v in rec.verdicts))
    return [VerdictCard(CLASS_LABELS.get(w, w), [v for v in rec.verdicts if v.workload == w and not v.model],
                        rec.stability) for w in classes]


class ResultsScreen(AppScreen):
    COMMAND_MESSAGES = cmd.RESULTS_COMMANDS
    BINDINGS = cmd.bindings(COMMAND_MESSAGES)
    AUTO_FOCUS = "#results-table"

    run_state: reactive[RunState] = reactive(RunState, always_update=True, repaint=False)

    def __init__(self, state: RunState | None = None, *, title: str = "",
                 profile: Profile | None = None) -> None:
        super().__init__()
        self._given_state = state
        self.profile = profile  # set when showing a saved profile
        self.title_text = title
        self.recommendation: Recommendation | None = None
        self._launchable: list[tuple[str, LaunchCommand]] | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="results-body"):
            yield Static("No results yet: run a sweep (1 Setup, r Start) or open a profile (4).",
                         id="results-title")
            yield Horizontal(id="verdicts")
            yield Static("", id="results-summary", markup=False)  # build names come from files
            with Horizontal(id="results-plots"):
                yield ThroughputPlot("pp", mark_crossovers=True, id="results-pp").data_bind(
                    ResultsScreen.run_state)
                yield ThroughputPlot("tg", mark_crossovers=True, id="results-tg").data_bind(
                    ResultsScreen.run_state)
            yield DataTable(cursor_type="row", id="results-table")
            yield Static("", id="launch-command")
        yield Footer()

    def on_mount(self) -> None:
        self.call_after_refresh(setattr, self, "run_state",
                                self._given_state or self.duel_app.last_run)

    def on_screen_resume(self) -> None:
        last = self.duel_app.last_run
        if self._given_state is None and last is not self.run_state:
            self.run_state = last

    def watch_run_state(self, state: RunState) -> None:
        if not state.builds or not self.query("#results-title"):
            return
        if self.profile is not None and self.profile.recommendation is not None:
            self.recommendation = self.profile.recommendation
        else:
            self.recommendation = recommendation_for(state)
        rec = self.recommendation
        self._launchable = None
        with self.app.batch_update():
            title = self.title_text or (
                f"{Path(state.model).name}: {' vs '.join(b.name for b in state.builds)} "
                f"({state.done}/{state.total} test points, {state.status})")
            self.query_one("#results-title", Static).update(title)
            verdicts = self.query_one("#verdicts", Horizontal)
            verdicts.remove_children()
            verdicts.mount_all([*_cards(rec), *self._tuning_cards(state)])
            summary = [*rec.fallbacks, *rec.choose, *(f"Stability: {s.build} {s.note}." for s in rec.stability
                                      if not s.stable)]
            if self.profile is not None and self.profile.serving_disagreement:
                summary.append(f"Server against llama-bench: {self.profile.serving_disagreement}")
            summary += [f"How taken: {line}" for line in self._conditions(state)]
            self.query_one("#results-summary", Static).update("\n".join(summary))
            for kind, plot_id in (("pp", "#results-pp"), ("tg", "#results-tg")):
                self.query_one(plot_id, ThroughputPlot).show_crossovers(tuple(
                    x.at_depth for x in rec.crossovers if x.phase == kind and x.at_depth is not None))
            table = self.query_one("#results-table", DataTable)
            table.clear(columns=True)
            columns, rows = table_rows(state)
            table.add_columns(*columns)
            table.add_rows(rows)
        self.refresh_bindings()  # w, e, and y where llama-server is

    def _conditions(self, state: RunState) -> tuple[str, ...]:
        """What can make these figures differ from bare llama-bench (the profile's, or the run's)."""
        if self.profile is not None:
            return self.profile.conditions
        from backends.sweep.conditions import conditions

        return conditions(actions.records_of(state))

    def _tuning_cards(self, state: RunState) -> list[TuningCard]:
        """A card with what tuning was worth and what else differs, when there is either."""
        from profiles.confounds import confounds
        from profiles.tuning import tuning_from_events

        if self.profile is not None:
            tuning, differences = self.profile.tuning, self.profile.confounds
        else:
            events = actions.records_of(state)
            tuning, differences = tuning_from_events(events), confounds(events)
        return [TuningCard(tuning, differences)] if tuning or differences else []

    # Actions on the shown results.
    def _has_results(self) -> bool:
        if not self.run_state.builds:
            self.notify("No results to work with yet.", severity="warning")
            return False
        return True

    def _profile(self, name: str | None = None) -> Profile:
        """The shown profile, or one made from this run (not saved)."""
        if self.profile is not None and name in (None, self.profile.name):
            return self.profile
        name = name or actions.default_profile_name(self.run_state)
        return actions.profile_from_state(self.run_state, name, builds=self.sources.builds)

    @on(cmd.SaveProfile)
    def _save(self) -> None:
        if not self._has_results():
            return
        default = self.profile.name if self.profile else actions.default_profile_name(self.run_state)

        def named(name: str | None) -> None:
            if name:
                self.save_profile(name)

        self.app.push_screen(AskTextScreen("Save these results as the profile named:", default),
                             named)

    @work(thread=True, group="profile", exit_on_error=False)
    def save_profile(self, name: str) -> None:
        profile = self._profile(name)
        path = self.sources.store.save(profile)
        self.app.call_from_thread(self._saved, profile, path)

    def _saved(self, profile: Profile, path: Path) -> None:
        self.profile = profile
        self.notify(f"Saved profile {profile.name} to {path}")
        self.app.post_message(cmd.ProfilesChanged())

    @on(cmd.ExportResults)
    def _export(self) -> None:
        if not self._has_results():
            return

        def chosen(folder: str | None) -> None:
            if folder:
                self.export(Path(folder).expanduser())

        self.app.push_screen(AskTextScreen("Write Markdown, CSV and JSON files into the folder:",
                                           str(Path.cwd() / "llamaduel-export")), chosen)

    @work(thread=True, group="profile", exit_on_error=False)
    def export(self, folder: Path) -> None:
        written = actions.export_profile(self._profile(), folder)
        self.app.call_from_thread(self.notify, "Wrote " + ", ".join(p.name for p in written)
                                  + f" in {folder}")

    def launchable(self) -> list[tuple[str, LaunchCommand]]:
        """Launch commands of recommended builds whose folder has llama-server."""
        if self._launchable is None:
            if not self.run_state.builds:
                return []
            commands = actions.launch_commands(self._profile(),
                                               model_path=actions.model_path_of(self.run_state))
            self._launchable = [(label, c) for label, c in commands if actions.has_server(c)]
        return self._launchable

    def command_available(self, command: type[cmd.Command]) -> bool | None:
        if command is cmd.CopyLaunchCommand:
            return bool(self.launchable())
        if command in (cmd.SaveProfile, cmd.ExportResults):
            return bool(self.run_state.builds)
        return True

    @on(cmd.CopyLaunchCommand)
    def _copy_launch(self) -> None:
        if not self._has_results():
            return
        commands = self.launchable()
        shown = self.query_one("#launch-command", Static)
        if not commands:
            shown.update("No launch command: no recommended build has llama-server.")
            self.notify("No recommended build has llama-server to launch.", severity="warning")
            return
        shown.update("\n".join(f"{label}: {command.display}" for label, command in commands))
        label, first = commands[0]
        self.app.copy_to_clipboard(first.display)
        self.notify(f"Copied the {label} launch command ({first.build}).")

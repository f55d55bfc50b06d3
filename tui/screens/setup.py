"""Pick the builds to race, the model, and the workload; see what it will take; start."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Select, Static

from tui import actions as cmd
from tui.screens.confirm import ask_before_cpu_fallback
from tui.screens.setup_sources import SetupSourcesScreen
from tui.state.plan import Plan, fit_text, make_plan
from tui.widgets.builds_table import BuildsSection
from tui.widgets.fields_form import FieldsForm
from tui.widgets.grid_form import GridForm
from tui.widgets.models_table import ModelsSection
from tui.widgets.serve_form import ServeForm
from tui.widgets.soak_form import SoakForm

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.estimate import Rates
    from backends.models import ModelInfo
    from backends.sweep import SweepSpec


BODY_DELAY_S = 0.02
NARROW_WIDTH = 100  # the app's -narrow breakpoint
SHORT_HEIGHT = 32
MODES = [("sweep (llama-bench)", "sweep"), ("server (llama-server)", "server"),
         ("soak (llama-server)", "soak")]
START_LABELS = {"sweep": "Start (r)", "server": "Serve (r)", "soak": "Soak (r)"}


class SetupScreen(SetupSourcesScreen):
    COMMAND_MESSAGES = cmd.SETUP_COMMANDS
    BINDINGS = cmd.bindings(COMMAND_MESSAGES)
    AUTO_FOCUS = "#builds-table"
    # Builds beside models only where both tables fit whole (their status text is long).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-medium"), (240, "-wide")]
    # Short terminals (24 rows): sections lose their side and bottom borders.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (SHORT_HEIGHT, "-tall")]

    def __init__(self) -> None:
        super().__init__()
        self._shown_version = -1
        self._probed: set[tuple[str, str]] = set()
        self.plan: Plan | None = None
        self._timing: set[str] = set()  # builds a quick probe is timing now
        self._given_grid: SweepSpec | None = None  # the working default's own grid

    def compose(self) -> ComposeResult:
        # The tables and the form are mounted right after the first frame (on_mount): the
        # app shows at once, saying what it is doing.
        yield VerticalScroll(id="setup-body", can_focus=False)
        # Under the scrolling part: the plan, its estimate and warnings are always in view.
        with Horizontal(id="start-row"):
            yield Select(MODES, value="sweep", allow_blank=False, id="mode", compact=True)
            yield Button("Start (r)", variant="success", id="start", compact=True, disabled=True)
            yield Static("", id="setup-status")
        yield Footer()

    def on_resize(self, event: events.Resize) -> None:
        # Narrow: keys closer together, so the footer's last key keeps its word ("q quit").
        self.query_one(Footer).compact = event.size.width < NARROW_WIDTH

    def on_mount(self) -> None:
        self._status("Looking for llama.cpp builds and models…" if not self.sources.ready
                     else "Reading the builds and models…")
        # After the first frame is written (a refresh, then a moment): the app shows at once.
        self.call_after_refresh(self.set_timer, BODY_DELAY_S, self._mount_body)

    async def _mount_body(self) -> None:
        body = self.query_one("#setup-body", VerticalScroll)
        await body.mount(Horizontal(BuildsSection(id="builds-section"),
                                    ModelsSection(id="models-section"), id="sources"),
                         GridForm(id="workload-section"), ServeForm(id="serve-section"),
                         SoakForm(id="soak-section"))
        if self._given_grid is not None:  # given before the form was there
            self.query_one(GridForm).show_spec(self._given_grid)
        if self.focused is None and self.is_current:
            self.query_one("#builds-table").focus()
        if not self.sources.ready:
            self.discover()
        else:
            self._sources_ready()

    @property
    def body_ready(self) -> bool:
        return bool(self.query("#workload-section"))

    def on_screen_resume(self) -> None:
        # Builds and models can change while another screen is shown (the working default).
        if self.body_ready and self.sources.ready and self.sources.version != self._shown_version:
            self._sources_ready()

    @on(cmd.SourcesChanged)
    def _sources_changed(self, event: cmd.SourcesChanged) -> None:
        if event.spec is not None:  # the estimate is for the grid that runs
            self._given_grid = event.spec
            if self.body_ready:
                self.query_one(GridForm).show_spec(event.spec)
        if self.body_ready and self.sources.ready and self.is_current:
            self._sources_ready()

    # Discovery runs in a thread: probing builds starts processes.
    @work(thread=True, group="discover", exclusive=True, exit_on_error=False)
    def discover(self) -> None:
        self.sources.discover()
        self.app.call_from_thread(self._sources_ready)

    def _sources_ready(self) -> None:
        sources = self.sources
        self._shown_version = sources.version
        if not self.chosen_builds:
            self.chosen_builds = frozenset(b.name for b in sources.builds or () if b.runnable)
        if not self.chosen_model or sources.model(self.chosen_model) is None:
            runnable = [m for m in sources.models or () if m.runnable]
            self.chosen_model = str(runnable[0].path) if runnable else ""
        self._show()
        if not sources.builds and not sources.models:
            self._status("No llama.cpp builds or models found. Press d for the working "
                         "default (CPU + Vulkan builds, a small model), or add a build "
                         "folder and a model folder above.", problem=True)
        else:
            self._validate()
            self._maybe_probe()

    def _show(self) -> None:
        sources = self.sources
        self.query_one(BuildsSection).show(sources.builds or (), self.chosen_builds)
        spec = self.query_one(GridForm).current_spec()
        chosen = [b for b in sources.builds or () if b.name in self.chosen_builds]
        fits = {str(m.path): fit_text(m, chosen, spec) for m in sources.models or ()}
        self.query_one(ModelsSection).show(sources.models or (), self.chosen_model, fits)

    def watch_chosen_builds(self) -> None:
        self._refresh()

    def watch_chosen_model(self, path: str) -> None:
        self.sources.chosen_model = path
        self._refresh()

    def _refresh(self) -> None:
        if self.body_ready and self.sources.ready:
            self._show()
            self._validate()
            self._maybe_probe()

    # Workload, estimate and start.
    @property
    def mode(self) -> str:
        return str(self.query_one("#mode", Select).value)

    @property
    def serve_mode(self) -> bool:
        return self.mode == "server"

    @on(cmd.ToggleServeMode)
    def _toggle_mode(self, event: cmd.ToggleServeMode) -> None:
        event.stop()  # sweep, server, soak, sweep...
        order = [value for _, value in MODES]
        self.query_one("#mode", Select).value = order[(order.index(self.mode) + 1) % len(order)]

    @on(Select.Changed, "#mode")
    def _mode_changed(self, event: Select.Changed) -> None:
        event.stop()
        if self.body_ready:
            self.query_one(GridForm).display = self.mode == "sweep"
            self.query_one(ServeForm).set_class(self.serve_mode, "-shown")
            self.query_one(SoakForm).set_class(self.mode == "soak", "-shown")
            self.query_one("#start", Button).label = START_LABELS[self.mode]
            self._grid_changed()

    @on(GridForm.Changed)
    @on(FieldsForm.Changed)  # the server and soak forms
    def _grid_changed(self) -> None:
        if self.sources.ready and self.body_ready:
            self._validate()

    def _rates(self) -> dict[str, Rates | None]:
        model = self.sources.model(self.chosen_model)
        rates: dict[str, Rates | None] = {}
        for name in self.chosen_builds:
            build = self.sources.build(name)
            rates[name] = self.sources.rates.get(build, model) if build and model else None
        return rates

    def _make_plan(self) -> Plan | None:
        model = self.sources.model(self.chosen_model)
        spec = self.query_one(GridForm).current_spec()
        builds = [b for b in self.sources.builds or () if b.name in self.chosen_builds]
        if model is None or spec is None or not builds:
            return None
        form = self.query_one(GridForm)
        return make_plan(builds, model, spec, self._rates(), check=form.check_first,
                         check_options=self.sources.check_options, tune=form.tune_spec())

    def _validate(self) -> bool:
        problem = self._problem()
        self.plan = None if problem or self.mode != "sweep" else self._make_plan()
        if problem:
            self._status(problem, problem=True)
        elif self.serve_mode:
            from tui.state.serve import plan_line

            line = plan_line(self.query_one(ServeForm).spec(), len(self.chosen_builds))
            self._status(f"Ready: {line}. Press r to start.")
        elif self.mode == "soak":
            self._status(f"Ready: {self.query_one(SoakForm).plan(len(self.chosen_builds))}. "
                         "Press r to start.")
        elif self.plan is not None:
            warning = "".join(f"\nWARNING: {w}" for w in self.plan.warnings)
            self._status(f"Ready: {self.plan.line(self._timing)}. Press r to start.{warning}",
                         problem=bool(self.plan.warnings))
        start = self.query_one("#start", Button)
        if start.disabled != bool(problem):
            start.disabled = bool(problem)
            self.refresh_bindings()  # r offered only when the run can start
        return not problem

    def _problem(self) -> str | None:
        form = {"server": ServeForm, "soak": SoakForm}.get(self.mode, GridForm)
        try:
            self.query_one(form).spec()  # type: ignore[attr-defined]
        except ValueError as error:
            return str(error)
        if not self.chosen_builds:
            return "Choose at least one build (Space on a row), or press d for the demo builds."
        if not self.chosen_model:
            return "Choose a model (Enter on a row), or look in a folder below the table."
        return self.query_one(SoakForm).problem(self.chosen_builds) if self.mode == "soak" else None

    @on(cmd.ProbeRates)
    def _probe_asked(self, event: cmd.ProbeRates) -> None:
        event.stop()
        self._maybe_probe(asked=True)

    def _maybe_probe(self, asked: bool = False) -> None:
        model = self.sources.model(self.chosen_model)
        if model is None or (not asked and not self.duel_app.auto_probe):
            return
        unknown = [b for b in self.sources.builds or () if b.name in self.chosen_builds
                   and (asked or (self.sources.rates.get(b, model) is None
                                  and (b.name, str(model.path)) not in self._probed))]
        if not unknown or any(w.group == "rate-probe" and w.is_running for w in self.workers):
            return
        self._probed |= {(b.name, str(model.path)) for b in unknown}
        self._timing = {b.name for b in unknown}
        self._validate()
        self.probe_rates(unknown, model, asked)

    @work(group="rate-probe", exclusive=True, exit_on_error=False)
    async def probe_rates(self, builds: list[BuildInfo], model: ModelInfo, asked: bool) -> None:
        try:
            async for name, rates in self.sources.probes.measure(builds, model, again=asked):
                if isinstance(rates, str):
                    self.notify(f"Could not time {name}: {rates}", severity="warning")
                self._timing.discard(name)
                self._validate()
        finally:
            self._timing = set()
            self._validate()

    def command_available(self, command: type[cmd.Command]) -> bool | None:
        if command is cmd.StartSweep:
            return self.body_ready and not self.query_one("#start", Button).disabled
        return True

    @on(Button.Pressed, "#start")
    @on(cmd.StartSweep)
    @on(GridForm.Submitted)
    @on(FieldsForm.Submitted)  # the server and soak forms
    def _start(self, event: object = None) -> None:
        if isinstance(event, (cmd.StartSweep, GridForm.Submitted, FieldsForm.Submitted)):
            event.stop()
        if not self.body_ready or not self.sources.ready:
            return
        if not self._validate() or (self.plan is None and self.mode == "sweep"):
            self.notify(str(self.query_one("#setup-status", Static).content), severity="warning")
            return
        ask_before_cpu_fallback(self.app, self._chosen(), self._go)  # a flagged build asks first

    def _go(self) -> None:
        """Start the server duel, the soak or the sweep the screen shows."""
        from backends.sweep import RunRequest
        from tui.state.run_text import SweepStart
        from tui.state.serve import ServeRequest

        model = self.sources.model(self.chosen_model)
        assert model is not None
        if self.serve_mode:
            self.duel_app.start_serve(ServeRequest(builds=self._chosen(), model=model,
                                                   spec=self.query_one(ServeForm).spec()))
            return
        if self.mode == "soak":
            self.duel_app.start_soak(self.query_one(SoakForm).request(self._chosen(), model))
            return
        if any(w.group == "rate-probe" and w.is_running for w in self.workers):
            self.workers.cancel_group(self, "rate-probe")  # the run measures for itself
        plan = self.plan or self._make_plan()
        assert plan is not None
        run = RunRequest(self._chosen(), model, self.query_one(GridForm).spec(), runs_root=self.sources.runs_root,
                         check=plan.check, tune=self.query_one(GridForm).tune_spec())
        self.duel_app.start_sweep(SweepStart(run, plan=plan))

    def _chosen(self) -> tuple[BuildInfo, ...]:
        return tuple(b for b in self.sources.builds or () if b.name in self.chosen_builds)

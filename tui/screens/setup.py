"""Pick the builds to race, the model, and the workload; then start."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Button, Checkbox, DataTable, Footer, Input, Label, Select, Static

from tui.screens import commands as cmd

GIB = 1024**3
FA_CHOICES = (("on", "1"), ("off", "0"), ("build default", "default"))
# Custom grid fields: input id -> (label, placeholder).
GRID_FIELDS = {
    "prompts": ("prompt sizes", "512"),
    "gens": ("generation sizes", "128"),
    "depths": ("depths", "0,4k,8k"),
    "type-k": ("K cache", "f16"),
    "type-v": ("V cache", "f16"),
    "ngl": ("-ngl", "all"),
    "ncmoe": ("-ncmoe", "none / auto"),
    "reps": ("repetitions", "5"),
}


def spec_from_fields(values: dict[str, str], fa: str, preset_name: str) -> Any:
    """A SweepSpec from the grid's text fields; raises SweepError with one line."""
    from backends.sweep import SweepError, SweepSpec, parse_int_list

    def one_int(key: str, label: str, empty: Any = None) -> Any:
        text = values.get(key, "").strip().lower()
        if text in ("", "all", "none", "default"):
            return empty
        try:
            return int(text)
        except ValueError:
            raise SweepError(f"{label}: {text!r} is not a whole number") from None

    ncmoe_text = values.get("ncmoe", "").strip().lower()
    spec = SweepSpec(
        name=preset_name,
        prompts=parse_int_list(values.get("prompts", ""), "prompt sizes"),
        gens=parse_int_list(values.get("gens", ""), "generation sizes"),
        depths=parse_int_list(values.get("depths", "") or "0", "depths"),
        flash_attn={"1": True, "0": False}.get(fa),
        type_k=values.get("type-k", "").strip() or "f16",
        type_v=values.get("type-v", "").strip() or "f16",
        n_gpu_layers=one_int("ngl", "-ngl"),
        n_cpu_moe=None if ncmoe_text == "auto" else one_int("ncmoe", "-ncmoe"),
        auto_ncmoe=ncmoe_text == "auto",
        repetitions=one_int("reps", "repetitions", 5),
    )
    spec.validate()
    return spec


def fields_from_spec(spec: Any) -> dict[str, str]:
    def ints(values: tuple[int, ...]) -> str:
        return ",".join(f"{v // 1024}k" if v and v % 1024 == 0 else str(v) for v in values)

    return {
        "prompts": ints(spec.prompts), "gens": ints(spec.gens), "depths": ints(spec.depths),
        "type-k": spec.type_k, "type-v": spec.type_v,
        "ngl": "" if spec.n_gpu_layers is None else str(spec.n_gpu_layers),
        "ncmoe": "auto" if spec.auto_ncmoe else ("" if spec.n_cpu_moe is None else str(spec.n_cpu_moe)),
        "reps": str(spec.repetitions),
    }


def _gib(value: float) -> str:
    if value >= GIB / 10:
        return f"{value / GIB:.1f} GiB"
    return f"{value / 1024**2:.0f} MiB" if value >= 1024**2 else f"{value / 1024:.0f} KiB"


def _short(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


class SetupScreen(cmd.CommandsMixin, Screen):
    CSS_PATH = "setup.tcss"
    COMMAND_MESSAGES = (cmd.StartSweep, cmd.AddBuild, cmd.AddModelFolder)
    BINDINGS = [*cmd.bindings(COMMAND_MESSAGES),
                ("space", "toggle_build", "use build"), ("delete", "remove_build", "remove")]

    # Names of the builds that will race, and the chosen model's path.
    chosen_builds: reactive[frozenset[str]] = reactive(frozenset, repaint=False)
    chosen_model: reactive[str] = reactive("", repaint=False)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="setup-body"):
            with Horizontal(id="sources"):
                with Vertical(id="builds-section", classes="section") as section:
                    section.border_title = "Builds · Space use/skip · Delete remove"
                    yield DataTable(cursor_type="row", id="builds-table")
                    yield Static("", id="build-detail", classes="hint")
                    yield Input(placeholder="add a build: NAME=FOLDER or FOLDER, then Enter",
                                id="build-path", compact=True)
                with Vertical(id="models-section", classes="section") as section:
                    section.border_title = "Models · Enter chooses"
                    yield DataTable(cursor_type="row", id="models-table")
                    yield Input(placeholder="look for .gguf models in a folder, then Enter",
                                id="model-folder", compact=True)
            with Vertical(id="workload-section", classes="section") as section:
                section.border_title = "Workload"
                with Horizontal(id="preset-row"):
                    yield Select(self._preset_options(), value="seed-sweep", allow_blank=False,
                                 id="preset", compact=True)
                    yield Static("", id="preset-description")
                with Grid(id="grid-fields"):
                    for key, (label, placeholder) in GRID_FIELDS.items():
                        yield Label(label, classes="field-label")
                        yield Input(placeholder=placeholder, id=f"field-{key}", compact=True)
                    yield Label("flash attn", classes="field-label")
                    yield Select(FA_CHOICES, value="1", allow_blank=False, id="field-fa",
                                 compact=True)
                    # Each build reads a text with llama-perplexity before the sweep; its output
                    # is compared with a reference build's, so a fast but wrong build shows up.
                    yield Label("correctness", classes="field-label")
                    yield Checkbox("check first", value=True, compact=True,
                                   id="check-correctness")
            with Horizontal(id="start-row"):
                yield Button("Start (r)", variant="success", id="start", compact=True)
                yield Static("", id="setup-status")
        yield Footer()

    @staticmethod
    def _preset_options() -> list[tuple[str, str]]:
        from backends.sweep import PRESETS

        return [*((name, name) for name in PRESETS), ("custom", "custom")]

    def on_mount(self) -> None:
        builds = self.query_one("#builds-table", DataTable)
        builds.add_columns("use", "name", "backend", "devices", "VRAM", "version", "status")
        models = self.query_one("#models-table", DataTable)
        models.add_columns("use", "model", "arch", "size", "quant", "kind", "fit")
        self._apply_preset("seed-sweep")
        if self.app.builds is None or self.app.models is None:
            self._status("Looking for llama.cpp builds and models…")
            self.call_after_refresh(self.discover)  # after the first frame is on screen
        else:
            self._sources_ready()

    # Discovery runs in a thread: probing builds starts processes.
    @work(thread=True, group="discover", exclusive=True, exit_on_error=False)
    def discover(self) -> None:
        app = self.app
        if app.builds is None:
            from backends.builds import discover_builds

            builds = discover_builds(extra=app.build_paths)
            self.app.call_from_thread(self._found, "builds", builds)
        if app.models is None:
            from backends.models import find_models

            models = find_models(app.model_dirs)
            self.app.call_from_thread(self._found, "models", models)
        self.app.call_from_thread(self._sources_ready)

    def _found(self, kind: str, found: list) -> None:
        # The working default may have filled them in meanwhile: keep both.
        known = getattr(self.app, kind) or []
        paths = {getattr(item, "name", None) if kind == "builds" else item.path for item in known}
        fresh = [item for item in found
                 if (item.name if kind == "builds" else item.path) not in paths]
        setattr(self.app, kind, [*known, *fresh])

    def on_screen_resume(self) -> None:
        # Builds and models can change while another screen is shown (the working default).
        if self.app.builds is not None and self.app.models is not None:
            self._sources_ready()

    def _sources_ready(self) -> None:
        app = self.app
        if not self.chosen_builds:
            self.chosen_builds = frozenset(b.name for b in app.builds or () if b.runnable)
        if not self.chosen_model:
            runnable = [m for m in app.models or () if m.runnable]
            self.chosen_model = str(runnable[0].path) if runnable else ""
        self._show_builds()
        self._show_models()
        if not app.builds and not app.models:
            self._status("No llama.cpp builds or models found. Press d for the working "
                         "default (CPU + Vulkan builds, a small generated model), or add "
                         "a build folder and a model folder above.", problem=True)
        else:
            self._validate()

    def _status(self, text: str, problem: bool = False) -> None:
        status = self.query_one("#setup-status", Static)
        status.update(text)
        status.set_class(problem, "problem")

    # Builds.
    def _show_builds(self) -> None:
        table = self.query_one("#builds-table", DataTable)
        row = table.cursor_row
        table.clear()
        for build in self.app.builds or ():
            devices = ", ".join(d.name for d in build.devices) or "CPU"
            vram = sum(d.total_mib for d in build.devices if not d.is_software)
            status = _short(build.problem or build.note or "ok", 24)
            table.add_row("●" if build.name in self.chosen_builds else "·", build.name,
                          build.backend, devices, f"{vram / 1024:.0f} GiB" if vram else "-",
                          build.version, status, key=build.name)
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    def watch_chosen_builds(self) -> None:
        if self.is_mounted and self.app.builds is not None:
            self._show_builds()
            self._show_models()
            self._validate()

    def action_toggle_build(self) -> None:
        table = self.query_one("#builds-table", DataTable)
        if not table.has_focus or not table.row_count:
            return
        name = self._row_key(table)
        build = next(b for b in self.app.builds if b.name == name)
        if not build.runnable:
            self.notify(f"{name} cannot run: {build.problem}", severity="warning")
            return
        self.chosen_builds = self.chosen_builds ^ {name}

    def action_remove_build(self) -> None:
        table = self.query_one("#builds-table", DataTable)
        if not table.has_focus or not table.row_count:
            return
        name = self._row_key(table)
        self.app.builds = [b for b in self.app.builds if b.name != name]
        self.chosen_builds = self.chosen_builds - {name}
        self._show_builds()

    @staticmethod
    def _row_key(table: DataTable) -> str:
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    @on(cmd.AddBuild)
    def _focus_build_input(self) -> None:
        self.query_one("#build-path", Input).focus()

    @on(Input.Submitted, "#build-path")
    def _add_build(self, event: Input.Submitted) -> None:
        from backends.builds import parse_build_arg

        text = event.value.strip()
        if not text:
            return
        try:
            name, path = parse_build_arg(text)
        except ValueError as error:
            self._status(str(error), problem=True)
            return
        if not path.exists():
            self._status(f"no such folder: {path}", problem=True)
            return
        if any(b.name == name for b in self.app.builds or ()):
            self._status(f"a build named {name!r} is already listed: use NAME=FOLDER", problem=True)
            return
        self._status(f"Probing {path}…")
        self.probe(name, path)

    @work(thread=True, group="probe", exit_on_error=False)
    def probe(self, name: str, path: Path) -> None:
        from backends.builds import probe_build

        build = probe_build(path, name)
        self.app.call_from_thread(self._build_probed, build)

    def _build_probed(self, build: Any) -> None:
        self.app.builds = [*(self.app.builds or ()), build]
        self.query_one("#build-path", Input).value = ""
        if build.runnable:
            self.chosen_builds = self.chosen_builds | {build.name}
            self._status(f"Added {build.name}: {build.backend}, {build.version}.")
        else:
            self._show_builds()
            self._status(f"{build.name} cannot run: {build.problem}", problem=True)

    # Models.
    def _free_bytes(self) -> int | None:
        """Free VRAM of the chosen builds' first real GPU; None when all run on the CPU."""
        free = [d.free_mib for b in self.app.builds or () if b.name in self.chosen_builds
                for d in b.devices if not d.is_software]
        return min(free) * 1024**2 if free else None

    def _fit_text(self, model: Any) -> str:
        from backends.models import estimate_fit

        if model.problem:
            return model.problem
        free = self._free_bytes()
        if free is None:
            return "CPU only"
        spec = self._current_spec()
        context = max((p.depth + p.tokens for p in spec.points()), default=4096) if spec else 4096
        try:
            fit = estimate_fit(model, free, context)
        except Exception as error:  # noqa: BLE001 - a model we cannot size still lists
            return f"unknown ({error})"
        if fit.fits:
            return f"fits ({_gib(fit.needed_bytes)})"
        if fit.suggested_ncmoe:
            return f"too big: try -ncmoe {fit.suggested_ncmoe}"
        return f"too big ({_gib(fit.needed_bytes)})"

    def _show_models(self) -> None:
        table = self.query_one("#models-table", DataTable)
        row = table.cursor_row
        table.clear()
        for model in self.app.models or ():
            kind = f"MoE {model.experts_used}/{model.expert_count}" if model.is_moe else "dense"
            table.add_row("●" if str(model.path) == self.chosen_model else "·", model.name,
                          model.architecture or "?", _gib(model.size_bytes), model.quant or "?",
                          kind, self._fit_text(model), key=str(model.path))
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    @on(DataTable.RowSelected, "#models-table")
    def _model_selected(self, event: DataTable.RowSelected) -> None:
        path = str(event.row_key.value)
        model = next(m for m in self.app.models if str(m.path) == path)
        if not model.runnable:
            self.notify(f"{model.name} cannot run: {model.problem}", severity="warning")
            return
        self.chosen_model = path

    @on(DataTable.RowHighlighted, "#builds-table")
    def _build_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The whole story of the build under the cursor: folder, problem or note."""
        build = next((b for b in self.app.builds or () if b.name == event.row_key.value), None)
        detail = self.query_one("#build-detail", Static)
        if build is None:
            detail.update("")
            return
        what = build.problem or build.note or (build.version_text.splitlines() or [""])[0]
        detail.update(f"{build.name}: {build.folder}" + (f" — {what}" if what else ""))
        detail.set_class(bool(build.problem), "problem")

    @on(DataTable.RowSelected, "#builds-table")
    def _build_selected(self) -> None:
        self.action_toggle_build()

    def watch_chosen_model(self) -> None:
        if self.is_mounted and self.app.models is not None:
            self._show_models()
            self._validate()

    @on(cmd.AddModelFolder)
    def _focus_model_input(self) -> None:
        self.query_one("#model-folder", Input).focus()

    @on(Input.Submitted, "#model-folder")
    def _add_model_folder(self, event: Input.Submitted) -> None:
        folder = Path(event.value.strip()).expanduser()
        if not event.value.strip():
            return
        if not folder.is_dir() and not (folder.is_file() and folder.suffix == ".gguf"):
            self._status(f"not a folder or .gguf file: {folder}", problem=True)
            return
        self._status(f"Reading models in {folder}…")
        self.scan_models(folder)

    @work(thread=True, group="models", exit_on_error=False)
    def scan_models(self, folder: Path) -> None:
        from backends.models import find_models, read_model

        found = [read_model(folder)] if folder.is_file() else find_models([folder])
        self.app.call_from_thread(self._models_found, folder, found)

    def _models_found(self, folder: Path, found: list[Any]) -> None:
        known = {str(m.path) for m in self.app.models or ()}
        new = [m for m in found if str(m.path) not in known]
        self.app.models = [*(self.app.models or ()), *new]
        self.app.model_dirs.append(folder)
        self.query_one("#model-folder", Input).value = ""
        if not self.chosen_model:
            runnable = [m for m in new if m.runnable]
            if runnable:
                self.chosen_model = str(runnable[0].path)
        self._show_models()
        self._status(f"{len(new)} new model(s) in {folder}." if new else f"no new .gguf models in {folder}",
                     problem=not new)

    # Workload.
    @on(Select.Changed, "#preset")
    def _preset_changed(self, event: Select.Changed) -> None:
        if event.value != "custom":
            self._apply_preset(str(event.value))

    def _apply_preset(self, name: str) -> None:
        from backends.sweep import PRESET_DESCRIPTIONS, preset

        spec = preset(name)
        self._applying = True
        for key, value in fields_from_spec(spec).items():
            self.query_one(f"#field-{key}", Input).value = value
        fa = {True: "1", False: "0"}.get(spec.flash_attn, "default")
        self.query_one("#field-fa", Select).value = fa
        self.query_one("#preset-description", Static).update(PRESET_DESCRIPTIONS.get(name, ""))
        self.call_after_refresh(setattr, self, "_applying", False)

    @on(Input.Changed, "#grid-fields Input")
    @on(Select.Changed, "#field-fa")
    def _grid_edited(self) -> None:
        if getattr(self, "_applying", False):
            return
        preset_select = self.query_one("#preset", Select)
        if preset_select.value != "custom":
            from backends.sweep import preset

            same = fields_from_spec(preset(str(preset_select.value))) == self._field_values()
            if not same:
                preset_select.value = "custom"
                self.query_one("#preset-description", Static).update("your own grid")
        self._validate()

    def _field_values(self) -> dict[str, str]:
        return {key: self.query_one(f"#field-{key}", Input).value for key in GRID_FIELDS}

    def _current_spec(self) -> Any:
        try:
            return self._spec_or_raise()
        except ValueError:
            return None

    def _spec_or_raise(self) -> Any:
        from backends.sweep import PRESETS, preset

        name = str(self.query_one("#preset", Select).value)
        values = self._field_values()
        spec = spec_from_fields(values, str(self.query_one("#field-fa", Select).value), name)
        if name in PRESETS and fields_from_spec(preset(name)) == values:
            spec = preset(name).with_changes(flash_attn=spec.flash_attn)
        return spec

    def _validate(self) -> bool:
        problem = self._problem()
        if problem:
            self._status(problem, problem=True)
        else:
            spec = self._spec_or_raise()
            points = len(spec.points())
            self._status(f"Ready: {len(self.chosen_builds)} builds × {points} test points × "
                         f"{spec.repetitions} repetitions. Press r to start.")
        self.query_one("#start", Button).disabled = bool(problem)
        return not problem

    def _problem(self) -> str | None:
        try:
            self._spec_or_raise()
        except ValueError as error:
            return str(error)
        if not self.chosen_builds:
            return "Choose at least one build (Space on a row), or press d for the demo builds."
        if not self.chosen_model:
            return "Choose a model (Enter on a row), or look in a folder below the table."
        return None

    # Start.
    @on(Button.Pressed, "#start")
    @on(cmd.StartSweep)
    def _start(self, event: Any = None) -> None:
        if isinstance(event, cmd.StartSweep):
            event.stop()
        if not self._validate():
            self.notify(self.query_one("#setup-status", Static).content.__str__(),
                        severity="warning")
            return
        from tui.screens.run import SweepRequest

        builds = tuple(b for b in self.app.builds if b.name in self.chosen_builds)
        model = next(m for m in self.app.models if str(m.path) == self.chosen_model)
        check = (dict(self.app.check_options)
                 if self.query_one("#check-correctness", Checkbox).value else None)
        self.app.start_sweep(SweepRequest(builds=builds, model=model, spec=self._spec_or_raise(),
                                          check=check))

"""Setup's builds and models: choosing them, adding a build folder, looking in a model folder,
and the status line that answers. ``SetupScreen`` adds the workload and the start."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.reactive import reactive
from textual.widgets import Static

from tui import actions as cmd
from tui.screens.base import AppScreen
from tui.widgets.builds_table import BuildsSection, BuildsTable
from tui.widgets.models_table import ModelsSection

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.models import ModelInfo


class SetupSourcesScreen(AppScreen):
    # Names of the builds that will race, and the chosen model's path.
    chosen_builds: reactive[frozenset[str]] = reactive(frozenset, repaint=False)
    chosen_model: reactive[str] = reactive("", repaint=False)

    def _show(self) -> None:
        """Show the builds and models as they are now (the Setup screen's own)."""
        raise NotImplementedError

    def _status(self, text: str, problem: bool = False) -> None:
        status = self.query_one("#setup-status", Static)
        status.update(text)
        status.set_class(problem, "problem")

    # Builds.
    @on(BuildsTable.Toggled)
    def _toggle_build(self, event: BuildsTable.Toggled) -> None:
        build = self.sources.build(event.name)
        if build is None:
            return
        if not build.runnable:
            self.notify(f"{build.name} cannot run: {build.problem}", severity="warning")
            return
        self.chosen_builds = self.chosen_builds ^ {build.name}

    @on(BuildsTable.Removed)
    def _remove_build(self, event: BuildsTable.Removed) -> None:
        self.sources.remove_build(event.name)
        self.chosen_builds = self.chosen_builds - {event.name}
        self._show()

    @on(cmd.AddBuild)
    def _focus_build_input(self) -> None:
        self.query_one("#build-path").focus()

    @on(BuildsSection.AddRequested)
    def _add_build(self, event: BuildsSection.AddRequested) -> None:
        from backends.builds import parse_build_arg

        try:
            name, path = parse_build_arg(event.text)
        except ValueError as error:
            self._status(str(error), problem=True)
            return
        if not path.exists():
            self._status(f"no such folder: {path}", problem=True)
            return
        if self.sources.build(name) is not None:
            self._status(f"a build named {name!r} is already listed: use NAME=FOLDER",
                         problem=True)
            return
        self._status(f"Probing {path}…")
        self.probe_build(name, path)

    @work(thread=True, group="probe", exit_on_error=False)
    def probe_build(self, name: str, path: Path) -> None:
        from backends.builds import probe_build

        build = probe_build(path, name)
        self.app.call_from_thread(self._build_probed, build)

    def _build_probed(self, build: BuildInfo) -> None:
        self.sources.add_builds([build])
        self.query_one(BuildsSection).clear_field()
        if build.runnable:
            self.chosen_builds = self.chosen_builds | {build.name}
            flag = f" FLAGGED: it was {build.fallback}." if build.fallback else ""
            self._status(f"Added {build.name}: {build.backend}, {build.version}.{flag}",
                         problem=bool(flag))
        else:
            self._show()
            self._status(f"{build.name} cannot run: {build.problem}", problem=True)

    # Models.
    @on(ModelsSection.Chosen)
    def _model_chosen(self, event: ModelsSection.Chosen) -> None:
        model = self.sources.model(event.path)
        if model is None:
            return
        if not model.runnable:
            self.notify(f"{model.name} cannot run: {model.problem}", severity="warning")
            return
        self.chosen_model = event.path

    @on(cmd.AddModelFolder)
    def _focus_model_input(self) -> None:
        self.query_one("#model-folder").focus()

    @on(ModelsSection.FolderRequested)
    def _add_model_folder(self, event: ModelsSection.FolderRequested) -> None:
        folder = event.folder
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

    def _models_found(self, folder: Path, found: list[ModelInfo]) -> None:
        new = self.sources.add_models(found, folder)
        self.query_one(ModelsSection).clear_field()
        if not self.chosen_model:
            runnable = [m for m in new if m.runnable]
            if runnable:
                self.chosen_model = str(runnable[0].path)
        self._show()
        self._status(f"{len(new)} new model(s) in {folder}." if new
                     else f"no new .gguf models in {folder}", problem=not new)

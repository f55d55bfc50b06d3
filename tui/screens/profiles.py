"""Saved profiles: list, open, compare two side by side, rename, delete, export, import."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static

from tui import actions as cmd
from tui.screens import profile_actions as actions
from tui.screens.base import FIELDS, AppScreen
from tui.screens.compare import CompareScreen
from tui.screens.confirm import AskTextScreen, ConfirmScreen
from tui.screens.results import ResultsScreen
from tui.widgets.marks import MarkedTable

if TYPE_CHECKING:
    from profiles.importers import ImportedRun
    from profiles.model import Profile
    from profiles.store import ProfileEntry


class ProfilesScreen(AppScreen):
    COMMAND_MESSAGES = cmd.PROFILES_COMMANDS
    BINDINGS = cmd.bindings(COMMAND_MESSAGES)
    AUTO_FOCUS = "#profiles-table"

    def __init__(self) -> None:
        super().__init__()
        self.marked: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("Profiles", id="profiles-title", classes="section-title")
        yield MarkedTable(id="profiles-table")
        yield Static("", id="profile-preview")
        yield Static("", id="profiles-hint", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(MarkedTable)
        table.add_marked_columns("", "name", "created", "model", "builds")
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    @on(cmd.ProfilesChanged)
    def reload(self) -> None:
        """Read the store in a thread (every profile is parsed): the screen shows at once."""
        self.list_profiles()

    @work(thread=True, group="profiles-list", exclusive=True, exit_on_error=False)
    def list_profiles(self) -> None:
        entries = self.sources.store.list()
        self.app.call_from_thread(self._show_entries, entries)

    def _show_entries(self, entries: list[ProfileEntry]) -> None:
        table = self.query_one("#profiles-table", MarkedTable)
        row = table.cursor_row
        table.clear()
        store = self.sources.store
        for entry in entries:
            mark = "◆" if entry.name == self.marked else ""
            detail = entry.problem and f"cannot read: {entry.problem}"
            table.add_marked_row(mark, entry.name, entry.created[:16].replace("T", " "),
                                 detail or entry.model, ", ".join(entry.builds), key=entry.name)
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        table.refresh_marker()
        self.refresh_bindings()
        self.query_one("#profiles-title", Static).update(
            f"Profiles in {store.root} ({len(entries)})")
        self.query_one("#profiles-hint", Static).update(
            "Enter open · m mark, then m on another to compare · n rename · x delete · "
            "e export · i import llama-bench output" if entries else
            "No profiles yet: save one from the Results screen (w), or import llama-bench "
            "output with i.")

    @on(DataTable.RowHighlighted, "#profiles-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.preview(str(event.row_key.value))

    @work(thread=True, group="profile-preview", exclusive=True, exit_on_error=False)
    def preview(self, name: str) -> None:
        """What the profile under the cursor says, without opening it."""
        from profiles.store import ProfileError

        try:
            profile = self.sources.store.load(name)
        except ProfileError as error:
            self.app.call_from_thread(self._show_preview, [str(error)])
            return
        self.app.call_from_thread(self._show_preview, self._preview_lines(profile))

    def _show_preview(self, lines: list[str]) -> None:
        self.query_one("#profile-preview", Static).update(Text("\n".join(lines)))

    @staticmethod
    def _preview_lines(profile: Profile) -> list[str]:
        rec = profile.recommendation
        host = " · ".join(p for p in (profile.host.gpu_name, profile.host.cpu) if p)
        lines = [f"{profile.name}: {profile.model.file_name}"
                 + (f" on {host}" if host else ""),
                 "builds: " + ", ".join(f"{b.name} ({b.backend})" for b in profile.builds)]
        lines += list(rec.choose or rec.summary) if rec else ["no recommendation"]
        return lines

    def _selected(self) -> str | None:
        name = self.query_one("#profiles-table", MarkedTable).selected_key()
        if name is None:
            self.notify("No profile selected.", severity="warning")
        return name

    def command_available(self, command: type[cmd.Command]) -> bool | None:
        if command in cmd.PROFILES_COMMANDS and command is not cmd.ImportBenchFile:
            return self.query_one("#profiles-table", MarkedTable).row_count > 0
        return True

    def _load(self, name: str) -> Profile | None:
        from profiles.store import ProfileError

        try:
            return self.sources.store.load(name)
        except ProfileError as error:
            self.notify(str(error), severity="error")
            return None

    @on(DataTable.RowSelected, "#profiles-table")
    @on(cmd.OpenProfile)
    def _open(self, event: DataTable.RowSelected | cmd.OpenProfile | None = None) -> None:
        if isinstance(event, cmd.OpenProfile):
            event.stop()
        name = self._selected()
        profile = name and self._load(name)
        if profile:
            self.app.push_screen(ProfileResultsScreen(
                actions.state_from_profile(profile), title=f"Profile {profile.name}: "
                f"{profile.model.file_name} ({profile.created[:10]})", profile=profile))

    @on(cmd.CompareProfiles)
    def _compare(self) -> None:
        name = self._selected()
        if name is None:
            return
        if self.marked is None or self.marked == name:
            self.marked = None if self.marked == name else name
            self.reload()
            if self.marked:
                self.notify(f"Marked {name}: select another profile and press m to compare.")
            return
        first, second = self._load(self.marked), self._load(name)
        self.marked = None
        self.reload()
        if first and second:
            self.app.push_screen(CompareScreen(first, second))

    @on(cmd.RenameProfile)
    def _rename(self) -> None:
        name = self._selected()
        if name is None:
            return

        def renamed(new: str | None) -> None:
            from profiles.store import ProfileError

            if not new or new == name:
                return
            try:
                self.sources.store.rename(name, new)
            except ProfileError as error:
                self.notify(str(error), severity="error")
                return
            self.notify(f"Renamed {name} to {new}.")
            self.reload()

        self.app.push_screen(AskTextScreen(f"New name for {name}:", name), renamed)

    @on(cmd.DeleteProfile)
    def _delete(self) -> None:
        name = self._selected()
        if name is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.sources.store.delete(name)
                self.notify(f"Deleted {name}.")
                self.reload()

        self.app.push_screen(ConfirmScreen(f"Delete the profile {name}? This cannot be undone.",
                                           yes="Delete", no="Keep"), answered)

    @on(cmd.ExportProfile)
    def _export(self) -> None:
        name = self._selected()
        profile = name and self._load(name)
        if not profile:
            return

        def chosen(folder: str | None) -> None:
            if folder:
                written = actions.export_profile(profile, Path(folder).expanduser())
                self.notify("Wrote " + ", ".join(p.name for p in written) + f" in {folder}")

        self.app.push_screen(AskTextScreen(f"Export {name} (Markdown, CSV, JSON) into the folder:",
                                           str(Path.cwd() / "llamaduel-export")), chosen)

    @on(cmd.ImportBenchFile)
    def _import(self) -> None:
        def chosen(text: str | None) -> None:
            if text:
                self.import_files(actions.typed_paths(text))

        self.app.push_screen(AskTextScreen(
            "Import llama-bench output (jsonl, json, csv, markdown, logs or a .sqlite database; several "
            "files: separate with spaces, quote names that hold spaces):",
            placeholder="~/bench/rocm.jsonl ~/bench/vulkan.jsonl"), chosen)

    @work(thread=True, group="profile", exit_on_error=False)
    def import_files(self, paths: list[Path]) -> None:
        from profiles.importers import import_files
        from profiles.model import profile_from_import

        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise ValueError(f"no such file: {missing[0]}")
        run = import_files(paths)
        if not run.result_count:
            raise ValueError(f"no results found in {', '.join(p.name for p in paths)}")
        from tui.state.run import BuildProgress, RunState

        name = actions.default_profile_name(RunState(
            model=paths[0].stem, builds=tuple(BuildProgress(b.name) for b in run.builds)))
        existing = {e.name for e in self.sources.store.list()}
        base, number = name, 2
        while name in existing:
            name, number = f"{base}-{number}", number + 1
        self.sources.store.save(profile_from_import(run, name=name))
        self.app.call_from_thread(self._imported, name, run)

    def _imported(self, name: str, run: ImportedRun) -> None:
        problems = f" ({len(run.problems)} lines skipped)" if run.problems else ""
        self.notify(f"Imported {run.result_count} results as {name}{problems}.")
        self.reload()


class ProfileResultsScreen(ResultsScreen):
    """A saved profile's results, opened over the Profiles screen; Escape goes back."""

    BINDINGS = [Binding("escape", "leave_field", "back")]

    def action_leave_field(self) -> None:
        if isinstance(self.focused, FIELDS):
            super().action_leave_field()
        else:
            self.app.pop_screen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return True if action == "leave_field" else super().check_action(action, parameters)

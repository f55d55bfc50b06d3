"""The Setup screen's models: a table of the models found and a field to look in another
folder. Enter chooses the model for the run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input

from tui.state.format import size_text
from tui.widgets.marks import CHECKED, UNCHECKED, MarkedTable

if TYPE_CHECKING:
    from backends.models import ModelInfo

class ModelsTable(MarkedTable):
    pass


class ModelsSection(Vertical):
    """The models table and the look-in-a-folder field."""

    class Chosen(Message):
        """Enter on a model."""

        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

    class FolderRequested(Message):
        """Enter in the folder field."""

        def __init__(self, folder: Path) -> None:
            super().__init__()
            self.folder = folder

    def __init__(self, **kwargs: object) -> None:
        super().__init__(classes="section", **kwargs)  # type: ignore[arg-type]
        self.border_title = "Models · Enter chooses"

    def compose(self) -> ComposeResult:
        yield ModelsTable(id="models-table")
        yield Input(placeholder="look for .gguf models in a folder, then Enter",
                    id="model-folder", compact=True)

    def on_mount(self) -> None:
        self.query_one(ModelsTable).add_marked_columns(
            "use", "model", "arch", "size", "quant", "kind", "context", "fit")

    def show(self, models: Sequence[ModelInfo], chosen: str,
             fits: Mapping[str, str]) -> None:
        table = self.query_one(ModelsTable)
        row = table.cursor_row
        table.clear()
        for model in models:
            kind = f"MoE {model.experts_used}/{model.expert_count}" if model.is_moe else "dense"
            context = f"{model.context_length:,}" if model.context_length else "?"
            table.add_marked_row(CHECKED if str(model.path) == chosen else UNCHECKED,
                                 model.name, model.architecture or "?",
                                 size_text(model.size_bytes), model.quant or "?", kind, context,
                                 fits.get(str(model.path), ""), key=str(model.path))
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        table.refresh_marker()

    @on(DataTable.RowSelected, "#models-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.Chosen(str(event.row_key.value)))

    @on(Input.Submitted, "#model-folder")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.post_message(self.FolderRequested(Path(event.value.strip()).expanduser()))

    def clear_field(self) -> None:
        self.query_one("#model-folder", Input).value = ""

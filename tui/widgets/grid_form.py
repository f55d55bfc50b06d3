"""The Setup screen's workload: a preset, the grid's fields, flash attention and the
correctness check. An empty field stands for its placeholder, the preset's value."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Select, Static

from tui.state.format import format_eta
from tui.state.grid import (
    FA_CHOICES,
    GRID_FIELDS,
    effective,
    fa_choice,
    fields_from_spec,
    placeholders,
    spec_from_fields,
)
from tui.widgets.marks import TickBox

if TYPE_CHECKING:
    from backends.journal.tune import TuneSpec
    from backends.sweep import SweepSpec


def tune_budget_text() -> str:
    """The tune phase's cap, as Setup says it: ``5 min``."""
    from backends.journal.tune import DEFAULT_BUDGET_S

    return format_eta(DEFAULT_BUDGET_S).removeprefix("~")


def _presets() -> list[tuple[str, str]]:
    from backends.sweep import PRESETS

    return [*((name, name) for name in PRESETS), ("custom", "custom")]


class GridForm(Vertical):
    """Posts Changed on every edit and Submitted on Enter in one of its fields."""

    class Changed(Message):
        """The grid, the preset or the check box changed."""

    class Submitted(Message):
        """Enter in a grid field: start the run if it is good."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(classes="section", **kwargs)  # type: ignore[arg-type]
        self.border_title = "Workload"
        self._applying = False
        self._defaults: dict[str, str] = {}
        self._preset_values: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        with Horizontal(id="preset-row"):
            yield Select(_presets(), value="seed-sweep", allow_blank=False, id="preset",
                         compact=True)
            yield Static("", id="preset-description")
        with Grid(id="grid-fields"):
            for key, label in GRID_FIELDS.items():
                yield Label(label, classes="field-label")
                yield Input(id=f"field-{key}", compact=True)
            yield Label("flash attn", classes="field-label")
            yield Select(FA_CHOICES, value="on", allow_blank=False, id="field-fa", compact=True)
            # Each build reads a text with llama-perplexity before the sweep; its output is
            # compared with a reference build's, so a fast but wrong build shows up.
            yield TickBox("correctness check first", value=True, compact=True,
                          id="check-correctness", classes="grid-tick")
            # Each build at its own best settings: -ub searched on a short probe first.
            yield TickBox(f"tune each build first (up to {tune_budget_text()})", value=False,
                          compact=True, id="tune-first", classes="grid-tick")

    def on_mount(self) -> None:
        self.apply_preset("seed-sweep")

    @property
    def preset_name(self) -> str:
        return str(self.query_one("#preset", Select).value)

    @property
    def check_first(self) -> bool:
        return self.query_one("#check-correctness", TickBox).value

    @property
    def tune_first(self) -> bool:
        return self.query_one("#tune-first", TickBox).value

    def tune_spec(self) -> TuneSpec | None:
        """The tune phase before the duel when ticked; None runs none."""
        from backends.journal.tune import TuneSpec

        return TuneSpec() if self.tune_first else None

    def values(self) -> dict[str, str]:
        return {key: self.query_one(f"#field-{key}", Input).value for key in GRID_FIELDS}

    def apply_preset(self, name: str) -> None:
        from backends.sweep import PRESET_DESCRIPTIONS, preset

        spec = preset(name)
        self._applying = True
        self._defaults = placeholders(spec)
        self._preset_values = effective(fields_from_spec(spec), self._defaults)
        for key, value in fields_from_spec(spec).items():
            field = self.query_one(f"#field-{key}", Input)
            field.value = value
            field.placeholder = self._defaults[key]
        self.query_one("#field-fa", Select).value = fa_choice(spec)
        self.query_one("#preset-description", Static).update(PRESET_DESCRIPTIONS.get(name, ""))
        self.call_after_refresh(self._applied)

    def show_spec(self, spec: SweepSpec) -> None:
        """Show a grid that is not a preset (the working default's own) as a custom one."""
        self._applying = True
        self.query_one("#preset", Select).value = "custom"
        self.query_one("#preset-description", Static).update(f"the {spec.name}'s own grid")
        # An empty field stands for this grid's own value, not the preset shown before.
        self._defaults = placeholders(spec)
        for key, value in fields_from_spec(spec).items():
            field = self.query_one(f"#field-{key}", Input)
            field.value = value
            field.placeholder = self._defaults[key]
        self.query_one("#field-fa", Select).value = fa_choice(spec)
        self.call_after_refresh(self._applied)

    def _applied(self) -> None:
        self._applying = False
        self.post_message(self.Changed())

    def spec(self) -> SweepSpec:
        """The sweep the form describes; raises SweepError (one line) when it is not one."""
        from backends.sweep import PRESETS, preset

        name = self.preset_name
        values = self.values()
        fa = str(self.query_one("#field-fa", Select).value)
        spec = spec_from_fields(values, fa, name, self._defaults)
        if name in PRESETS and effective(values, self._defaults) == self._preset_values:
            spec = preset(name).with_changes(flash_attn=spec.flash_attn)
        return spec

    def current_spec(self) -> SweepSpec | None:
        try:
            return self.spec()
        except ValueError:
            return None

    @on(Select.Changed, "#preset")
    def _preset_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value != "custom":
            self.apply_preset(str(event.value))

    @on(Input.Changed, "#grid-fields Input")
    @on(Select.Changed, "#field-fa")
    @on(TickBox.Changed, "#check-correctness")
    @on(TickBox.Changed, "#tune-first")
    def _edited(self, event: Message) -> None:
        event.stop()
        # Compared even while a preset is being applied: its own edits have all landed by
        # now (it sets every field in one go), so a difference is the user's typing.
        preset_select = self.query_one("#preset", Select)
        if preset_select.value != "custom" and (
                effective(self.values(), self._defaults) != self._preset_values):
            preset_select.value = "custom"
            self.query_one("#preset-description", Static).update(
                "your own grid (empty fields: the placeholder's value)")
        if not self._applying:  # the preset's own edits end in one Changed (``_applied``)
            self.post_message(self.Changed())

    @on(Input.Submitted, "#grid-fields Input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Submitted())

"""A mode's fields on the Setup screen: a label and an input per field, then the mode's
own boxes. Server and soak modes share it; an empty field stands for its placeholder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.message import Message
from textual.widgets import Input, Label

from tui.widgets.marks import TickBox


class FieldsForm(Vertical):
    """Posts Changed on every edit and Submitted on Enter in one of its fields."""

    FIELDS: ClassVar[Mapping[str, tuple[str, str]]]  # key -> (label, placeholder)
    PREFIX: ClassVar[str]  # the ids: "#PREFIX-fields", "#PREFIX-KEY"
    TITLE: ClassVar[str]

    class Changed(Message):
        """A field or a box changed."""

    class Submitted(Message):
        """Enter in a field: start if the form is good."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(classes="section", **kwargs)  # type: ignore[arg-type]
        self.border_title = self.TITLE

    def compose(self) -> ComposeResult:
        with Grid(id=f"{self.PREFIX}-fields"):
            for key, (label, placeholder) in self.FIELDS.items():
                yield Label(label, classes="field-label")
                yield Input(placeholder=placeholder, id=f"{self.PREFIX}-{key}", compact=True)
            yield from self.boxes()

    def boxes(self) -> ComposeResult:
        """The mode's own boxes after its fields, each with its label."""
        yield from ()

    def values(self) -> dict[str, str]:
        return {key: self.query_one(f"#{self.PREFIX}-{key}", Input).value.strip() for key in self.FIELDS}

    @on(Input.Changed)
    @on(TickBox.Changed)
    def _edited(self, event: Message) -> None:
        event.stop()
        self.post_message(self.Changed())

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Submitted())

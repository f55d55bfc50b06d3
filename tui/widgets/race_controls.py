"""The Race screen's settings: the builds to race, the prompt, the model and sampling."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select

from tui.widgets.marks import TickBox, TickList

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.models import ModelInfo
    from backends.race import RaceSpec

PROMPT_HINT = "text to complete: e types here, Enter or Ctrl-R races, Escape leaves"


def describe(build: BuildInfo) -> str:
    device = build.devices[0].description if build.devices else ""
    return " · ".join(str(p) for p in (build.backend, device, build.version) if p)


class RaceControls(Vertical):
    """Builds first (where the screen opens), then the prompt and the settings."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._shown: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())

    def compose(self) -> ComposeResult:
        yield TickList(id="race-builds")
        with Horizontal(classes="race-row"):
            yield Label("Prompt ", classes="race-label")
            yield Input(placeholder=PROMPT_HINT, id="race-prompt")
        with Horizontal(classes="race-row"):
            yield Select([], prompt="model", id="race-model", compact=True)
            yield Label(" tokens ", classes="race-label")
            yield Input("64", id="race-n", type="integer", classes="race-number")
            yield Label(" temp ", classes="race-label")
            yield Input("0", id="race-temp", type="number", classes="race-number")
            yield Label(" seed ", classes="race-label")
            yield Input("42", id="race-seed", type="integer", classes="race-number")
            yield TickBox("parallel", id="race-parallel", compact=True)

    def fill(self, builds: Sequence[BuildInfo], models: Sequence[ModelInfo],
             preferred: str = "") -> bool:
        """List the builds and the runnable models; True when the lists changed.

        The model defaults to ``preferred`` (Setup's choice), never to a broken one."""
        usable_models = [m for m in models if m.runnable]
        key = (tuple(b.name for b in builds), tuple(str(m.path) for m in usable_models))
        if key == self._shown:
            return self._prefer(preferred)
        self._shown = key
        chooser = self.query_one("#race-builds", TickList)
        chosen = set(chooser.selected)
        chooser.clear_options()
        for build in builds:
            usable = build.completion is not None
            label = f"{build.name}  {describe(build)}" + ("" if usable else "  (no completion tool)")
            chooser.add_option((label, build.name, usable and (not chosen or build.name in chosen)))
        select = self.query_one("#race-model", Select)
        current = None if select.is_blank() else str(select.value)
        select.set_options([(Path(str(m.path)).name, str(m.path)) for m in usable_models])
        paths = {str(m.path) for m in usable_models}
        default = (preferred if preferred in paths else current if current in paths
                   else next(iter(key[1]), None))
        if default is not None:
            select.value = default
        self._preferred = preferred
        return True

    def _prefer(self, preferred: str) -> bool:
        """Follow a new choice on the Setup screen."""
        if preferred and preferred != getattr(self, "_preferred", "") and preferred in self._shown[1]:
            self._preferred = preferred
            self.query_one("#race-model", Select).value = preferred
            return True
        return False

    def read_spec(self) -> RaceSpec:
        """The race's settings; ValueError (one line) when they are not good."""
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

    def chosen_builds(self) -> set[str]:
        return set(self.query_one("#race-builds", TickList).selected)

    def model_path(self) -> str | None:
        select = self.query_one("#race-model", Select)
        return None if select.is_blank() else str(select.value)

    @property
    def parallel(self) -> bool:
        return self.query_one("#race-parallel", TickBox).value

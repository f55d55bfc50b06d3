"""One build's lane in the race: its streamed text, time to first token and speeds.

Where the text parts from the reference build's, the rest is shown reversed (visible
without colour) and the stats line says from which character.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from backends.race import printable
from profiles.format import format_rate
from tui.state.race import FAILED, FINISHED, TIMED_OUT, LaneState
from tui.widgets._css import css_beside


def stats_line(lane: LaneState) -> str:
    """ttft, live and final rates, and the verdict on the text, in one line."""
    if lane.status in (FAILED, TIMED_OUT):
        return f"{lane.status.upper()}: {lane.reason}"
    parts = [lane.status if lane.attempt == 1 else f"{lane.status} (run {lane.attempt})"]
    parts.append("ttft -" if lane.ttft is None else f"ttft {lane.ttft:.3f}s")
    if lane.status == FINISHED and lane.gen_tps is not None:
        parts.append(f"pp {format_rate(lane.prompt_tps)} t/s")
        parts.append(f"tg {format_rate(lane.gen_tps)} t/s")
    else:
        parts.append(f"{format_rate(lane.live_tps)} t/s")
    if lane.status == FINISHED and not lane.complete:
        parts.append("timings missing")
    if lane.divergence is not None:
        word = "DIFFERS" if lane.divergence.unexpected else "differs (sampling)"
        parts.append(f"{word} from char {lane.divergence.char_offset}")
    elif lane.matches:
        parts.append(f"same text as {lane.matches}")
    elif lane.is_reference:
        parts.append("reference")
    return " · ".join(parts)


def lane_text(lane: LaneState) -> Text:
    text = printable(lane.text)
    offset = lane.divergence_offset
    if offset is None:
        return Text(text)
    # Reverse video needs no colour; the marker shows where an empty tail would start.
    rendered = Text(text[:offset])
    rendered.append("▶", style="bold")
    rendered.append(text[offset:], style="reverse")
    return rendered


class RaceLane(Vertical):
    """Watches one LaneState; the screen sets it."""

    DEFAULT_CSS = css_beside(__file__)

    lane: reactive[LaneState | None] = reactive(None, always_update=True)

    def __init__(self, build: str, description: str = "", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.build = build
        self.description = description
        self.border_title = build

    def compose(self) -> ComposeResult:
        yield Static(self.description, classes="race-lane-description")
        yield Static("waiting", classes="race-lane-stats")
        with VerticalScroll(classes="race-lane-scroll"):
            yield Static("", classes="race-lane-text")

    def on_mount(self) -> None:
        self.watch_lane(self.lane)

    def watch_lane(self, lane: LaneState | None) -> None:
        if lane is None or not self.is_mounted or not self.query(".race-lane-stats"):
            return  # shown from on_mount once the children exist
        self.query_one(".race-lane-stats", Static).update(stats_line(lane))
        self.query_one(".race-lane-text", Static).update(lane_text(lane))
        self.set_class(lane.status in (FAILED, TIMED_OUT), "-failed")
        self.set_class(lane.divergence is not None, "-diverged")
        self.query_one(".race-lane-scroll", VerticalScroll).scroll_end(animate=False)

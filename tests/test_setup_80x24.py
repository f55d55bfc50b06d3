"""The newcomer's path at 80x24: everything Setup says before r is read whole from the
screen (real app, real builds, a real model), the workload is in view without scrolling,
and the footer's keys keep their words."""

from __future__ import annotations

import pytest

from backends.estimate import Rates
from backends.models import read_model
from tests.test_app import builds, make_app, until  # noqa: F401 - the fixture
from tui.screens.setup import SetupScreen
from tui.sources import RateBook
from tui.state.grid import GRID_FIELDS

pytestmark = pytest.mark.toolchain

SIZE = (80, 24)
# Every word of the workload a newcomer reads before r.
WORKLOAD_WORDS = (*GRID_FIELDS.values(), "flash attn", "seed-sweep", "the MI50 study",
                  "correctness check first", "tune each build first (up to 5 min)")


def screen_lines(app) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


def shown(app, widget_id: str) -> str:
    """The text a widget shows on screen now, its lines joined by spaces."""
    region = app.screen.query_one(widget_id).region
    lines = screen_lines(app)[region.y:region.bottom]
    return " ".join(line[region.x:region.right].strip() for line in lines)


def words(text: str) -> str:
    return " ".join(text.split())


def status_text(screen) -> str:
    return words(str(screen.query_one("#setup-status").content))


async def read_whole(pilot, screen) -> str:
    """The status once the screen shows all of it (the layout follows an update)."""
    await until(pilot, lambda: words(shown(pilot.app, "#setup-status")) == status_text(screen),
                "the whole status on screen")
    return status_text(screen)


async def sources_drawn(pilot) -> None:
    """The builds' and models' tables fill in after the screen: wait until they are drawn."""
    await until(pilot, lambda: "vulkan" in shown(pilot.app, "#builds-section")
                and "tiny llama" in shown(pilot.app, "#models-section"), "the builds and models drawn")


def assert_nothing_scrolls(app, screen) -> None:
    """Builds, models and the whole workload lie in the body's view, which cannot scroll."""
    body = screen.query_one("#setup-body")
    assert body.max_scroll_y == 0 and body.scroll_y == 0, body.virtual_size
    workload = screen.query_one("#workload-section").region
    assert body.region.contains_region(workload), (workload, body.region)
    text = shown(app, "#workload-section")
    for word in WORKLOAD_WORDS:
        assert word in text, (word, text)
    assert "cpu" in shown(app, "#builds-section") and "vulkan" in shown(app, "#builds-section")
    assert "tiny llama" in shown(app, "#models-section")


def known_rates(tmp_path, builds, tiny_llama) -> RateBook:  # noqa: F811
    """Rates as an earlier run left them: the estimate has figures to show."""
    book = RateBook(tmp_path / "rates.json")
    model = read_model(tiny_llama)
    for build, pp in zip(builds, (2000.0, 300.0), strict=True):
        book.put(build, model, Rates(pp, pp / 10, 0.2, "the run of 2026-05-01 10:00"))
    return book


async def test_setup_status_and_footer_are_read_whole_at_80x24(tmp_path, builds, tiny_llama):  # noqa: F811
    app = make_app(tmp_path, builds, tiny_llama, telemetry=None, offer_resume=False,
                   rates=known_rates(tmp_path, builds, tiny_llama))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, SetupScreen)
        await until(pilot, lambda: screen.plan is not None, "the plan shown")
        assert screen.has_class("-narrow") and screen.has_class("-short")
        # The longest the newcomer sees: the plan, the quick timing under way, a warning.
        screen._timing = {"cpu", "vulkan"}
        screen._validate()
        status = await read_whole(pilot, screen)
        assert "Press r to start." in status and "timing cpu, vulkan (pp32, tg8)" in status
        assert "WARNING" in status  # the seed sweep's depths pass this model's context
        await sources_drawn(pilot)
        assert_nothing_scrolls(app, screen)
        assert "[ ]  tune each build first" in shown(app, "#workload-section")
        await until(pilot, lambda: "help" in shown(app, "Footer"), "the footer drawn")
        footer = shown(app, "Footer")
        assert "q quit" in footer and "q q▏" not in footer, footer
        assert "r start" in footer
        # Tuning first: the estimate counts the tune phase and says so.
        screen._timing = set()
        screen.query_one("#tune-first").value = True
        await until(pilot, lambda: "with the tune first" in status_text(screen),
                    "the tune in the estimate")
        status = await read_whole(pilot, screen)
        assert "with the tune first (from the run of 2026-05-01 10:00)" in status
        assert "Press r to start." in status
        await sources_drawn(pilot)
        assert_nothing_scrolls(app, screen)
        # A problem is read whole too.
        screen.chosen_builds = frozenset()
        await until(pilot, lambda: "Choose at least one build" in status_text(screen),
                    "the problem said")
        await read_whole(pilot, screen)


async def test_setup_at_200x50_keeps_its_boxes_and_the_workload_in_one_block(
        tmp_path, builds, tiny_llama):  # noqa: F811
    app = make_app(tmp_path, builds, tiny_llama, telemetry=None, offer_resume=False)
    async with app.run_test(size=(200, 50)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.plan is not None, "the plan shown")
        assert screen.has_class("-tall") and not screen.has_class("-short")
        lines = screen_lines(app)
        assert lines[0].startswith("╭─ Builds")  # whole boxes where there is room
        status = await read_whole(pilot, screen)
        assert status.startswith("Ready: 2 builds × 10 points × 2 reps")
        await sources_drawn(pilot)
        assert_nothing_scrolls(app, screen)

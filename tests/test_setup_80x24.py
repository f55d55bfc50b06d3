"""The newcomer's path at 80x24: everything Setup says before r is read whole from the
screen (real app, real builds, a real model), and the footer's keys keep their words."""

from __future__ import annotations

import pytest

from tests.test_app import builds, make_app, until  # noqa: F401 - the fixture
from tui.screens.setup import SetupScreen

pytestmark = pytest.mark.toolchain

SIZE = (80, 24)


def screen_lines(app) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


def shown(app, widget_id: str) -> str:
    """The text a widget shows on screen now, its lines joined by spaces."""
    region = app.screen.query_one(widget_id).region
    lines = screen_lines(app)[region.y:region.bottom]
    return " ".join(line[region.x:region.right].strip() for line in lines)


def words(text: str) -> str:
    return " ".join(text.split())


async def test_setup_status_and_footer_are_read_whole_at_80x24(tmp_path, builds, tiny_llama):  # noqa: F811
    app = make_app(tmp_path, builds, tiny_llama, telemetry=None, offer_resume=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, SetupScreen)
        await until(pilot, lambda: screen.plan is not None, "the plan shown")
        # The longest the newcomer sees: the plan, the quick timing under way, a warning.
        screen._timing = {"cpu", "vulkan"}
        screen._validate()
        await pilot.pause(0.2)
        status = words(str(screen.query_one("#setup-status").content))
        assert "Press r to start." in status and "Timing cpu, vulkan" in status
        assert "WARNING" in status  # the seed sweep's depths pass this model's context
        assert words(shown(app, "#setup-status")) == status
        await until(pilot, lambda: "help" in shown(app, "Footer"), "the footer drawn")
        footer = shown(app, "Footer")
        assert "q quit" in footer and "q q▏" not in footer, footer
        assert "r start" in footer
        # A problem is read whole too.
        screen.chosen_builds = frozenset()
        await until(pilot, lambda: "Choose at least one build" in str(
            screen.query_one("#setup-status").content), "the problem said")
        await pilot.pause(0.2)
        said = words(str(screen.query_one("#setup-status").content))
        assert words(shown(app, "#setup-status")) == said

"""The app with a Vulkan build whose Vulkan loader finds no device: Setup flags it in the
builds table and the plan, asks before a run with it, and the verdict says it ran on the
CPU. Real builds, a real run, the real app under Pilot."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.builds import clear_memory_cache, probe_build
from backends.models import read_model
from profiles.store import ProfileStore
from tui.app import LlamaduelApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.results import ResultsScreen
from tui.screens.setup import SetupScreen

pytestmark = pytest.mark.toolchain

SIZE = (160, 48)
MISSING_DRIVER = "/nonexistent/vulkan-driver.json"
FLAG = "built for Vulkan but found no Vulkan device; it runs on the CPU"


async def until(pilot, condition, what: str, steps: int = 1800) -> None:
    """Wait for the app to reach a state (a step is 0.1 s; no timing is asserted)."""
    for _ in range(steps):
        if condition():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"the app never got to: {what}")


@pytest.fixture
def flagged_builds(cpu_bin, vulkan_bin, monkeypatch):
    # The runs inherit this environment too: the Vulkan build runs on the CPU, as probed.
    monkeypatch.setenv("VK_ICD_FILENAMES", MISSING_DRIVER)
    monkeypatch.setenv("VK_DRIVER_FILES", MISSING_DRIVER)
    monkeypatch.delenv("GGML_VK_VISIBLE_DEVICES", raising=False)
    clear_memory_cache()
    builds = [probe_build(cpu_bin, "cpu", use_cache=False),
              probe_build(vulkan_bin, "vulkan", use_cache=False)]
    assert builds[1].fallback == FLAG
    yield builds
    clear_memory_cache()


def row_text(screen: SetupScreen, name: str) -> str:
    table = screen.query_one("#builds-table")
    return " ".join(str(cell) for cell in table.get_row(name))


async def test_setup_flags_it_asks_before_the_run_and_the_verdict_names_it(
        tmp_path: Path, flagged_builds, tiny_llama):
    app = LlamaduelApp(flagged_builds, [read_model(tiny_llama)], telemetry=None,
                       store=ProfileStore(tmp_path / "profiles"), runs_root=tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, SetupScreen)
        await until(pilot, lambda: screen.chosen_builds == {"cpu", "vulkan"}, "builds chosen")
        assert "FLAGGED: built for Vulkan" in row_text(screen, "vulkan")
        assert "FLAGGED" not in row_text(screen, "cpu")
        screen.query_one("#check-correctness").value = False
        for key, value in {"prompts": "16", "gens": "4", "depths": "0", "reps": "2"}.items():
            screen.query_one(f"#field-{key}").value = value
        await until(pilot, lambda: any(FLAG in warning for warning in screen.plan.warnings),
                    "the plan to warn of the flagged build")
        screen.query_one("#builds-table").focus()
        await pilot.pause()

        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        assert f"vulkan was {FLAG}" in app.screen.question
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen, "back on Setup")
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())

        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question again")
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                    and app.screen.run_state.status == "finished", "the results screen")
        results = app.screen
        line = "vulkan: built for Vulkan but found no Vulkan device; it ran on the CPU"
        assert results.recommendation.fallbacks == (line,)
        assert line in str(results.query_one("#results-summary").render())


async def test_the_race_screen_asks_too(tmp_path: Path, flagged_builds, tiny_llama):
    from textual.widgets import Input, SelectionList

    from tui.screens.race import RaceScreen

    app = LlamaduelApp(flagged_builds, [read_model(tiny_llama)], telemetry=None, offer_resume=False,
                       store=ProfileStore(tmp_path / "profiles"), runs_root=tmp_path / "runs",
                       start_screen="race")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RaceScreen), "the Race screen")
        screen = app.screen
        builds = screen.query_one("#race-builds", SelectionList)
        await until(pilot, lambda: len(builds.options) == 2, "the builds listed")
        builds.select_all()
        screen.query_one("#race-n", Input).value = "4"
        screen.query_one("#race-prompt", Input).focus()
        await pilot.press(*"Once upon a time", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        assert f"vulkan was {FLAG}" in app.screen.question
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen, "back on the Race screen")
        assert screen.board.lanes == () and not screen.race_running()  # nothing started
        await pilot.press("ctrl+r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question again")
        await pilot.press("y")
        await until(pilot, lambda: app.screen is screen and screen.board.status == "finished",
                    "the race finished")
        assert [lane.build for lane in screen.board.lanes] == ["cpu", "vulkan"]

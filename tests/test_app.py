"""The real app, driven with Pilot, racing the real CPU and Vulkan (lavapipe) builds."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from backends.builds import probe_build
from backends.journal.sweep import ResultReceived
from backends.models import read_model
from backends.sweep import read_journal
from profiles.store import ProfileStore
from tui.app import LlamaduelApp
from tui.screens.profiles import ProfileResultsScreen, ProfilesScreen
from tui.screens.results import ResultsScreen
from tui.screens.setup import SetupScreen

pytestmark = pytest.mark.toolchain

SIZE = (160, 48)


@pytest.fixture(scope="module")
def builds(cpu_bin, vulkan_bin):
    found = [probe_build(cpu_bin, "cpu"), probe_build(vulkan_bin, "vulkan")]
    for build in found:
        assert build.runnable, build.problem
    return found


def make_app(tmp_path: Path, builds, tiny_llama, **options) -> LlamaduelApp:
    # The correctness check is on by default; a short one keeps these runs quick.
    options.setdefault("check_options", {"context": 64, "chunks": 4})
    return LlamaduelApp(builds, [read_model(tiny_llama)], store=ProfileStore(tmp_path / "profiles"),
                        runs_root=tmp_path / "runs", **options)


async def until(pilot, condition, what: str, steps: int = 1200) -> None:
    """Wait for the app to reach a state (a step is 0.1 s; no timing is asserted)."""
    for _ in range(steps):
        if condition():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"the app never got to: {what}")


async def set_grid(pilot, **values: str) -> None:
    screen = pilot.app.screen
    for key, value in values.items():
        screen.query_one(f"#field-{key}").value = value
    await pilot.pause()
    screen.query_one("#builds-table").focus()
    await pilot.pause()


def bench_children(running_only: bool = False) -> list[psutil.Process]:
    """Live llama-bench processes started by this test (a zombie has already ended).

    ``running_only`` leaves out processes the runner keeps loaded but stopped between
    their test points.
    """
    alive = []
    skip = {psutil.STATUS_ZOMBIE} | ({psutil.STATUS_STOPPED} if running_only else set())
    for process in psutil.Process().children(recursive=True):
        try:
            if process.status() not in skip and "llama-bench" in process.name():
                alive.append(process)
        except psutil.Error:
            continue
    return alive


async def test_race_both_builds_save_and_reopen_profile(tmp_path, builds, tiny_llama):
    app = make_app(tmp_path, builds, tiny_llama, telemetry=None)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, SetupScreen)
        await until(pilot, lambda: app.screen.chosen_builds == {"cpu", "vulkan"}, "builds chosen")
        assert app.screen.chosen_model == str(tiny_llama)
        await set_grid(pilot, prompts="16", gens="4", depths="0", reps="2")
        preset = app.screen.query_one("#preset")
        await until(pilot, lambda: str(preset.value) == "custom", "the preset to read custom")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                    and app.screen.run_state.status == "finished", "the results screen")

        state = app.screen.run_state
        for name in ("cpu", "vulkan"):
            progress = state.build(name)
            assert [r.point.name for r in progress.results] == ["pp16", "tg4"]
            assert all(r.avg_ts > 0 and len(r.samples_ts) == 2 for r in progress.results)
            assert progress.failures == ()
        table = app.screen.query_one("#results-table")
        assert table.row_count == 2
        assert app.screen.recommendation.verdicts  # a verdict card per class and phase
        assert len(app.screen.query("VerdictCard")) >= 1

        await pilot.press("w")
        await pilot.pause()
        app.screen.query_one("#dialog-input").value = "tiny duel"
        await pilot.press("enter")
        store = app.sources.store
        await until(pilot, lambda: [e.name for e in store.list()] == ["tiny duel"], "profile saved")
        saved = store.load("tiny duel")
        assert {b.name for b in saved.builds} == {"cpu", "vulkan"}
        assert len(saved.results) == 4

        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, ProfilesScreen), "profiles screen")
        profiles_table = app.screen.query_one("#profiles-table")
        await until(pilot, lambda: profiles_table.row_count == 1, "profile listed")
        profiles_table.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ProfileResultsScreen), "profile opened")
        reopened = app.screen
        await until(pilot, lambda: reopened.query_one("#results-table").row_count == 2,
                    "profile table")
        assert reopened.profile.name == "tiny duel"
        await pilot.press("y")
        launch_line = reopened.query_one("#launch-command")
        await until(pilot, lambda: "llama-server" in str(launch_line.render()), "launch command shown")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ProfilesScreen), "back to the profiles")


async def test_pause_resume_and_cancel_keep_results_and_leave_no_children(
        tmp_path, builds, tiny_llama):
    app = make_app(tmp_path, builds, tiny_llama, telemetry=None)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.chosen_builds == {"cpu", "vulkan"}, "builds chosen")
        await set_grid(pilot, prompts="16", gens="4", depths="0,64,128,256", reps="1")
        await pilot.press("r")
        run = app.get_screen("run")
        await until(pilot, lambda: run.run_state.done >= 1, "a first result")
        await pilot.press("p")
        await until(pilot, lambda: run.run_state.status == "paused", "paused")
        done_when_paused = run.run_state.done
        # Paused between points: the point under way finishes (and a result already on its
        # way to the screen lands), then no new one starts.
        await until(pilot, lambda: not bench_children(running_only=True),
                    "the current point to finish")
        await pilot.pause(1.0)
        settled = run.run_state.done
        assert settled <= done_when_paused + 2
        await pilot.pause(1.0)
        assert run.run_state.done == settled
        assert not bench_children(running_only=True)
        await pilot.press("p")
        await until(pilot, lambda: run.run_state.done > settled
                    or run.run_state.status == "finished", "resumed")
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")
        await until(pilot, lambda: run.run_state.status in ("cancelled", "finished"), "cancelled")
        await until(pilot, lambda: not bench_children(), "children gone")
        await until(pilot, lambda: not run.sweep_running, "the sweep's worker to end")
        journal = read_journal(Path(run.run_state.run_dir) / "journal.jsonl")
        journalled = {(e.build, e.result.point.key) for e in journal if isinstance(e, ResultReceived)}

        def shown() -> set[tuple[str, str]]:
            return {(b.name, r.point.key) for b in run.run_state.builds for r in b.results}

        # Every result on disk reaches the screen, even one journalled as the cancel came.
        await until(pilot, lambda: shown() == journalled, "the screen to show what the journal holds")
        assert len(journalled) >= 2


def journalled_results(tmp_path: Path) -> list[ResultReceived]:
    """The results in the journal of the one run under ``tmp_path`` (none before it starts)."""
    journals = list((tmp_path / "runs").glob("*/journal.jsonl"))
    return [e for e in read_journal(journals[0]) if isinstance(e, ResultReceived)] if journals else []


async def test_quit_mid_run_stops_children_and_next_start_offers_resume(
        tmp_path, builds, tiny_llama):
    app = make_app(tmp_path, builds, tiny_llama, telemetry=None)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.chosen_builds == {"cpu", "vulkan"}, "builds chosen")
        await set_grid(pilot, prompts="16", gens="4", depths="0,64,128,256,512,1024", reps="1")
        await pilot.press("r")
        # Two results on disk (the journal, not the screen: a loaded machine can leave the
        # screen's fold seconds behind, long enough for the whole run to finish first).
        await until(pilot, lambda: len(journalled_results(tmp_path)) >= 2, "two results")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, "the app to quit", steps=300)
    assert not bench_children()
    assert len(list((tmp_path / "runs").iterdir())) == 1
    assert len(journalled_results(tmp_path)) >= 2

    again = make_app(tmp_path, builds, tiny_llama, telemetry=None)
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: type(again.screen).__name__ == "ConfirmScreen"
                    and again.screen.query(".dialog-question"), "resume offer")
        assert "Resume" in str(again.screen.query_one(".dialog-question").render())
        await pilot.press("y")
        run = again.get_screen("run")
        await until(pilot, lambda: run.run_state.status == "finished", "the resumed run to finish")
        assert run.run_state.done == run.run_state.total == 24
        assert isinstance(again.screen, ResultsScreen)


async def test_bad_build_path_gets_one_line_and_nothing_crashes(tmp_path, builds, tiny_llama):
    app = make_app(tmp_path, builds, tiny_llama, telemetry=None)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.query("#build-path"), "the Setup form")
        field = app.screen.query_one("#build-path")
        field.focus()
        field.value = f"broken={tmp_path / 'nowhere'}"
        await pilot.press("enter")
        status = str(app.screen.query_one("#setup-status").render())
        assert "no such folder" in status and "\n" not in status.strip()
        field.value = f"empty={tmp_path}"
        await pilot.press("enter")
        await until(pilot, lambda: "empty" in {b.name for b in app.sources.builds}, "probed")
        empty = next(b for b in app.sources.builds if b.name == "empty")
        assert not empty.runnable
        assert "cannot run" in str(app.screen.query_one("#setup-status").render())
        app.screen.query_one("#field-depths").value = "0,-5"
        await until(pilot, lambda: "depth" in str(app.screen.query_one("#setup-status").render()),
                    "the status to name the bad depth")
        assert app.screen.query_one("#start").disabled

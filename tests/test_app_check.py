"""The correctness check as the first step of a run in the app, on the real CPU and Vulkan
(lavapipe) builds: its line in each build's panel, its results in the verdict and the
saved profile, and no llama-perplexity left behind when the run is cancelled."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import psutil
import pytest

from backends.builds import probe_build
from backends.correctness import BuildChecked, CheckFinished, CheckStarted, CorrectnessResult
from backends.models import read_model
from profiles.store import ProfileStore
from tests.probe_watch import Spawned, SpawnLog
from tui.app import LlamaduelApp
from tui.screens.results import ResultsScreen
from tui.state.run import CheckPlanned, RunState, fold_check

SIZE = (160, 48)
# Four chunks of 64 tokens: a check of seconds on the tiny model (see test_correctness.py).
FAST_CHECK = {"context": 64, "chunks": 4}
WHOLE_TEXT = {"context": 512}


@pytest.fixture(scope="module")
def builds(cpu_bin, vulkan_bin):
    found = [probe_build(cpu_bin, "cpu"), probe_build(vulkan_bin, "vulkan")]
    for build in found:
        assert build.runnable, build.problem
        assert build.perplexity is not None
    return found


def make_app(tmp_path: Path, builds, tiny_llama, check_options=FAST_CHECK) -> LlamaduelApp:
    return LlamaduelApp(builds, [read_model(tiny_llama)],
                        store=ProfileStore(tmp_path / "profiles"), runs_root=tmp_path / "runs",
                        telemetry=None, check_options=check_options)


def children_named(word: str) -> list[psutil.Process]:
    """Live (not zombie) child processes of this test whose name holds ``word``."""
    alive = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE and word in process.name():
                alive.append(process)
        except psutil.Error:
            continue
    return alive


@pytest.fixture
def spawns(monkeypatch) -> SpawnLog:
    """Every child process the app starts in this test."""
    return SpawnLog().install(monkeypatch)


class Watch:
    """Waits for the app (steps of 0.1 s, no timing asserted); every llama-perplexity the
    app started is in ``perplexity_seen`` (from each spawn, so even one too short to be
    seen running counts)."""

    def __init__(self, pilot, spawns: SpawnLog) -> None:
        self.pilot = pilot
        self.spawns = spawns

    @property
    def perplexity_seen(self) -> list[Spawned]:
        return [s for s in self.spawns.spawned if Path(s.argv[0]).name == "llama-perplexity"]

    async def until(self, condition, what: str, steps: int = 1200) -> None:
        for _ in range(steps):
            if condition():
                return
            await self.pilot.pause(0.1)
        raise AssertionError(f"the app never got to: {what}")


async def start_small_sweep(pilot, watch: Watch, check: bool) -> None:
    screen = pilot.app.screen
    await watch.until(lambda: screen.chosen_builds == {"cpu", "vulkan"}, "builds chosen")
    box = screen.query_one("#check-correctness")
    assert box.value is True  # on by default
    box.value = check
    for key, value in {"prompts": "16", "gens": "4", "depths": "0", "reps": "1"}.items():
        screen.query_one(f"#field-{key}").value = value
    await pilot.pause()
    screen.query_one("#builds-table").focus()
    await pilot.pause()
    await pilot.press("r")


def check_lines(app) -> dict[str, str]:
    run = app.get_screen("run")
    return {panel.build_name: str(panel.query_one(".build-check").render()).strip()
            for panel in run.query("BuildPanel")}


async def save_profile(pilot, watch: Watch, name: str):
    app = pilot.app
    await pilot.press("w")
    await pilot.pause()
    app.screen.query_one("#dialog-input").value = name
    await pilot.press("enter")
    await watch.until(lambda: [e.name for e in app.sources.store.list()] == [name], "profile saved")
    return app.sources.store.load(name)


@pytest.mark.toolchain
async def test_check_runs_first_shows_a_line_per_build_and_goes_into_the_profile(
        tmp_path, builds, tiny_llama, spawns):
    app = make_app(tmp_path, builds, tiny_llama)
    async with app.run_test(size=SIZE) as pilot:
        watch = Watch(pilot, spawns)
        await start_small_sweep(pilot, watch, check=True)
        await watch.until(lambda: isinstance(app.screen, ResultsScreen)
                          and app.screen.run_state.status == "finished", "the results screen")
        assert watch.perplexity_seen  # the check really ran llama-perplexity

        lines = check_lines(app)
        assert lines["cpu"].startswith("check: reference (PPL ")
        assert lines["vulkan"].startswith("check: pass (KLD ")
        assert "top-1 " in lines["vulkan"] and "\n" not in lines["vulkan"]

        state = app.screen.run_state
        assert {r.build: r.status for r in state.correctness} == {"cpu": "reference",
                                                                  "vulkan": "pass"}
        assert all(len(state.build(n).results) == 2 for n in ("cpu", "vulkan"))
        stability = {s.build: s for s in app.screen.recommendation.stability}
        assert stability["vulkan"].correctness == "pass" and stability["vulkan"].stable
        assert stability["cpu"].correctness == "reference"

        saved = await save_profile(pilot, watch, "checked duel")
        assert set(saved.correctness) == {"cpu", "vulkan"}
        assert saved.correctness["cpu"]["status"] == "reference"
        assert saved.correctness["vulkan"]["status"] == "pass"
        assert saved.correctness["vulkan"]["context"] == 64
        assert 0.9 <= saved.correctness["vulkan"]["top1_agreement"] <= 1.0
    assert not children_named("llama-")


@pytest.mark.toolchain
async def test_check_off_starts_no_llama_perplexity_and_shows_no_check_lines(
        tmp_path, builds, tiny_llama, spawns):
    app = make_app(tmp_path, builds, tiny_llama)
    async with app.run_test(size=SIZE) as pilot:
        watch = Watch(pilot, spawns)
        await start_small_sweep(pilot, watch, check=False)
        await watch.until(lambda: isinstance(app.screen, ResultsScreen)
                          and app.screen.run_state.status == "finished", "the results screen")
        assert not watch.perplexity_seen
        assert check_lines(app) == {"cpu": "", "vulkan": ""}
        run = app.get_screen("run")
        assert not any(line.display for line in run.query(".build-check"))
        assert app.screen.run_state.correctness == ()
        assert all(s.correctness is None for s in app.screen.recommendation.stability)
        saved = await save_profile(pilot, watch, "unchecked duel")
        assert not saved.correctness
        assert len(saved.results) == 4


@pytest.mark.toolchain
async def test_a_build_without_llama_perplexity_is_not_checked_and_not_held_against(
        tmp_path, builds, tiny_llama, spawns):
    cpu, vulkan = builds
    without = dataclasses.replace(vulkan, perplexity=None)
    app = make_app(tmp_path, [cpu, without], tiny_llama)
    async with app.run_test(size=SIZE) as pilot:
        watch = Watch(pilot, spawns)
        await start_small_sweep(pilot, watch, check=True)
        await watch.until(lambda: isinstance(app.screen, ResultsScreen)
                          and app.screen.run_state.status == "finished", "the results screen")
        lines = check_lines(app)
        assert lines["vulkan"] == "check: no llama-perplexity: not checked"
        assert lines["cpu"].startswith("check: reference")
        stability = {s.build: s for s in app.screen.recommendation.stability}
        assert stability["vulkan"].stable and stability["vulkan"].correctness is None
        saved = await save_profile(pilot, watch, "half checked")
        assert set(saved.correctness) == {"cpu"}


@pytest.mark.toolchain
async def test_cancel_during_the_check_leaves_no_llama_perplexity(tmp_path, builds, tiny_llama, spawns):
    # 512-token chunks over the whole shipped text (the check's own default; the app's
    # default on a software renderer is two short chunks): long enough to cancel midway.
    app = make_app(tmp_path, builds, tiny_llama, check_options=WHOLE_TEXT)
    async with app.run_test(size=SIZE) as pilot:
        watch = Watch(pilot, spawns)
        await start_small_sweep(pilot, watch, check=True)
        await watch.until(lambda: children_named("llama-perplexity"), "llama-perplexity running")
        run = app.get_screen("run")
        assert "checking correctness first" in str(run.query_one("#run-summary").render())
        assert "check: running…" in check_lines(app).values()
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")
        await watch.until(lambda: run.run_state.status == "cancelled", "cancelled")
        await watch.until(lambda: not run.sweep_running, "the worker to end")
        assert not children_named("llama-perplexity")
        assert not children_named("llama-bench")
        assert run.run_state.done == 0  # nothing measured
        # The check runs inside the run: its journal has the check's start and the cancel.
        from backends.correctness import CheckStarted
        from backends.journal.sweep import SweepFinished
        from backends.sweep import read_journal

        journal = read_journal(Path(run.run_state.run_dir))
        assert any(isinstance(e, CheckStarted) for e in journal)
        assert isinstance(journal[-1], SweepFinished) and journal[-1].cancelled


@pytest.mark.toolchain
async def test_quit_during_the_check_leaves_no_llama_perplexity(tmp_path, builds, tiny_llama, spawns):
    app = make_app(tmp_path, builds, tiny_llama, check_options=WHOLE_TEXT)
    async with app.run_test(size=SIZE) as pilot:
        watch = Watch(pilot, spawns)
        await start_small_sweep(pilot, watch, check=True)
        await watch.until(lambda: children_named("llama-perplexity"), "llama-perplexity running")
        await pilot.press("q")
        await watch.until(lambda: not app.is_running, "the app to quit", steps=300)
    assert not children_named("llama-perplexity")


def test_fold_check_lines_from_plan_to_verdicts():
    skipped = {"old": "check: no llama-perplexity: not checked"}
    state = fold_check(RunState(), CheckPlanned(model="m.gguf", builds=("cpu", "rocm", "old"),
                                                not_checked=skipped))
    assert [b.check for b in state.builds] == ["check: waiting", "check: waiting",
                                               "check: no llama-perplexity: not checked"]
    state = fold_check(state, CheckStarted(("cpu", "rocm"), "cpu", "m.gguf", "t.txt", 64))
    assert state.build("rocm").check == "check: running…"
    state = fold_check(state, BuildChecked(CorrectnessResult("cpu", "cpu", ppl=12.5,
                                                             ppl_ref=12.5, status="reference")))
    suspect = CorrectnessResult("rocm", "cpu", mean_kld=0.08, top1_agreement=0.05, ppl=13.5,
                                ppl_ref=12.5, status="suspect", reason="mean KLD 0.08 > 0.01")
    state = fold_check(state, BuildChecked(suspect))
    assert state.build("cpu").check == "check: reference (PPL 12.5)"
    assert state.build("rocm").check == "check: SUSPECT (KLD 0.08, top-1 5.0%): mean KLD 0.08 > 0.01"
    assert state.correctness_by_build()["rocm"]["status"] == "suspect"
    assert state.build("old").check == "check: no llama-perplexity: not checked"

    # The reference failed: the builds the check never reached say why.
    failed = fold_check(fold_check(RunState(), CheckPlanned("m.gguf", ("cpu", "rocm"))),
                        CheckStarted(("cpu", "rocm"), "cpu", "m.gguf", "t.txt", 64))
    failed = fold_check(failed, BuildChecked(CorrectnessResult("cpu", "cpu", status="failed",
                                                               reason="crashed")))
    failed = fold_check(failed, CheckFinished(failed.correctness,
                                              problem="the reference build cpu failed: crashed"))
    assert failed.build("cpu").check == "check: failed (crashed)"
    assert failed.build("rocm").check == "check: not run (the reference build cpu failed: crashed)"


def test_suspect_check_makes_the_build_unstable_in_the_verdict():
    from backends.journal.sweep import BenchResult, TestPoint
    from tui.screens.results import recommendation_for

    point = TestPoint(16, 0, 0)
    results = {name: BenchResult(point, rate, 1.0, (rate,), {}) for name, rate in
               (("cpu", 100.0), ("rocm", 900.0))}
    state = fold_check(RunState(), CheckPlanned("m.gguf", ("cpu", "rocm")))
    state = fold_check(state, BuildChecked(CorrectnessResult(
        "rocm", "cpu", mean_kld=0.08, top1_agreement=0.05, status="suspect", reason="far off")))
    state = dataclasses.replace(state, points=(point,), builds=tuple(
        dataclasses.replace(b, results=(results[b.name],)) for b in state.builds))
    stability = {s.build: s for s in recommendation_for(state).stability}
    assert not stability["rocm"].stable and "suspect" in stability["rocm"].note
    assert stability["cpu"].stable

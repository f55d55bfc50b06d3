"""The working default and Setup both want each build timed: one probe per build, never two
at once (real app, real builds, real llama-bench processes counted while they run)."""

from __future__ import annotations

import pytest

from backends.demo import DemoSetup
from backends.sweep import SweepSpec
from tests.probe_watch import SpawnLog
from tests.test_app import SIZE, bench_children, builds, make_app, until  # noqa: F401 - fixture
from tui.probes import overlapping
from tui.screens.setup import SetupScreen
from tui.widgets.grid_form import GridForm

pytestmark = pytest.mark.toolchain

DEMO_SPEC = SweepSpec(name="demo", prompts=(48,), gens=(12,), depths=(0, 256), repetitions=2)


async def test_demo_and_setup_share_one_probe_per_build_never_two_at_once(
        tmp_path, builds, tiny_llama, monkeypatch):  # noqa: F811 - the fixture
    app = make_app(tmp_path, builds, tiny_llama, telemetry=None, auto_probe=True,
                   offer_resume=False)
    demo = DemoSetup(builds={b.name: b.folder for b in builds}, model=tiny_llama, spec=DEMO_SPEC)

    def probing_done() -> bool:
        probes = app.sources.probes
        return probes.running is None and {s.build for s in probes.spans} == {"cpu", "vulkan"}

    spawns = SpawnLog().install(monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        setup = app.screen
        assert isinstance(setup, SetupScreen)
        await until(pilot, lambda: setup.chosen_builds == {"cpu", "vulkan"}, "builds chosen")
        await until(pilot, lambda: app.sources.probes.running is not None, "Setup timing")
        # The working default is ready while Setup is still timing: as in `llamaduel --demo`.
        model = app.sources.model(str(tiny_llama))
        app.startup._demo_ready(list(app.sources.builds or ()), model, demo)
        await until(pilot, probing_done, "both builds timed")
        await until(pilot, lambda: app.current_mode == "run", "the demo's sweep started")
        # Setup's estimate is the demo's own grid's, the one the demo runs with.
        started = app.run_screen.request.plan
        await until(pilot, lambda: setup.plan is not None and setup.plan.seconds is not None,
                    "Setup's estimate from the rates")
        assert setup.query_one(GridForm).spec().points() == DEMO_SPEC.points()
        assert setup.plan is not None and setup.plan.points == len(DEMO_SPEC.points()) == 4
        assert setup.plan.seconds == started.seconds is not None, (setup.plan, started)
        assert f"× {len(DEMO_SPEC.points())} points × 2 reps · about" in str(
            setup.query_one("#setup-status").content)
        await app.startup.stop_sweep()
        await until(pilot, lambda: not bench_children(), "children gone")
    spans = app.sources.probes.spans
    assert sorted(s.build for s in spans) == ["cpu", "vulkan"], spans  # once per build
    assert not overlapping(spans), spans
    # The processes themselves: one llama-bench probe per build, never two alive at once.
    for build in builds:
        assert len(spawns.probes_of(build.bench.parent)) == 1, (build.name, spawns.probes())
    assert spawns.most_probes_at_once() == 1, spawns.probes()

"""The working default and Setup both want each build timed: one probe per build, never two
at once (real app, real builds, real llama-bench processes counted while they run)."""

from __future__ import annotations

import psutil
import pytest

from backends.demo import DemoSetup
from backends.sweep import SweepSpec
from tests.test_app import SIZE, bench_children, builds, make_app, until  # noqa: F401 - fixture
from tui.probes import overlapping
from tui.screens.setup import SetupScreen

pytestmark = pytest.mark.toolchain

DEMO_SPEC = SweepSpec(name="demo", prompts=(48,), gens=(12,), depths=(0, 256), repetitions=2)


async def test_demo_and_setup_share_one_probe_per_build_never_two_at_once(
        tmp_path, builds, tiny_llama):  # noqa: F811 - the fixture
    app = make_app(tmp_path, builds, tiny_llama, telemetry=None, auto_probe=True,
                   offer_resume=False)
    demo = DemoSetup(builds={b.name: b.folder for b in builds}, model=tiny_llama, spec=DEMO_SPEC)
    most_at_once = 0

    def probing_done() -> bool:
        nonlocal most_at_once
        running = [p for p in bench_children(running_only=True) if _is_probe(p)]
        most_at_once = max(most_at_once, len(running))
        probes = app.sources.probes
        return probes.running is None and {s.build for s in probes.spans} == {"cpu", "vulkan"}

    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, SetupScreen)
        await until(pilot, lambda: app.screen.chosen_builds == {"cpu", "vulkan"}, "builds chosen")
        await until(pilot, lambda: app.sources.probes.running is not None, "Setup timing")
        # The working default is ready while Setup is still timing: as in `llamaduel --demo`.
        model = app.sources.model(str(tiny_llama))
        app.startup._demo_ready(list(app.sources.builds or ()), model, demo)
        await until(pilot, probing_done, "both builds timed")
        await until(pilot, lambda: app.current_mode == "run", "the demo's sweep started")
        setup = app.get_screen("setup")
        assert setup.query_one("#field-prompts").value == "48"  # the demo's grid, estimated
        await app.startup.stop_sweep()
        await until(pilot, lambda: not bench_children(), "children gone")
    spans = app.sources.probes.spans
    assert sorted(s.build for s in spans) == ["cpu", "vulkan"], spans  # once per build
    assert not overlapping(spans), spans
    assert most_at_once <= 1, most_at_once


def _is_probe(process: psutil.Process) -> bool:
    """A probe's llama-bench: the short pp32/tg8 test, in a temporary folder's run."""
    try:
        line = process.cmdline()
    except psutil.Error:
        return False
    return "-p" in line and line[line.index("-p") + 1] == "32"

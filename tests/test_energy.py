"""Energy over the measured work, on the MI50 sysfs fixtures with a counter that moves with
real time and the real sampler: a counter read at the edges of each window (the gpu_metrics
accumulator, wrapping at 32 bits, and hwmon energy1_input), power sampled at 25 Hz where
there is no counter, "too short to measure" where a window holds too little; and a real
llama-bench sweep whose figures come from its counted repetitions only, with their spread."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from backends.builds import probe_build
from backends.journal.sweep import PointStarted, ResultReceived, SweepStarted, TestPoint
from backends.sweep import RunRequest, SweepSpec, run_sweep
from backends.sweep.conditions import conditions
from backends.sweep.energy import TOO_SHORT, RepetitionTracker, energy_figures
from backends.telemetry import Telemetry
from backends.telemetry.energy import MIN_SAMPLES, EnergyMeter, SysfsEnergy
from tests.sysfs_fixtures import MovingEnergy, build_mi50_tree
from tui.cli.progress import energy_text


def wait_for(condition, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.005)


def measure(meter: EnergyMeter, mover: MovingEnergy, joules: float):
    """Open a window, let the card spend at least ``joules``, close it."""
    meter.open()
    start = mover.joules()
    wait_for(lambda: mover.joules() - start >= joules and (meter.counting or len(meter._samples) >= 8))
    return meter.close()


@pytest.mark.parametrize("counter, start", [("metrics", 1_000_000), ("metrics", (1 << 32) - 2_000_000),
                                             ("hwmon", 0)])
def test_a_moving_counter_gives_the_window_s_joules(tmp_path, counter, start):
    tree = build_mi50_tree(tmp_path)
    with MovingEnergy(tree, watts=187.0, counter=counter, start_count=start) as mover:
        card = SysfsEnergy(str(tree.device))
        meter = EnergyMeter([card])
        assert meter.counting and meter.method == "energy counter (" + (
            "gpu_metrics energy_accumulator" if counter == "metrics" else "hwmon energy1_input") + ")"
        window = measure(meter, mover, joules=60.0)  # ~0.3 s; the last start crosses the wrap
    assert window is not None and window.joules is not None
    assert window.joules / window.seconds == pytest.approx(187.0, rel=0.1)


def test_without_a_counter_power_is_sampled_fast_only_while_a_window_is_open(tmp_path):
    tree = build_mi50_tree(tmp_path)  # the MI50's own blob leaves energy_accumulator unfilled
    with MovingEnergy(tree, watts=150.0, counter=None) as mover:
        meter = EnergyMeter([SysfsEnergy(str(tree.device))])
        assert not meter.counting and meter.method == "power sampled at 25 Hz"
        window = measure(meter, mover, joules=60.0)
        assert meter._thread is None  # the sampler stopped with the window
        assert meter.measure_idle(0.2) == pytest.approx(150.0)
    assert window is not None and window.samples >= 8 and window.joules is not None
    assert window.joules / window.seconds == pytest.approx(150.0, rel=0.1)


def test_a_window_too_short_for_the_resolution_is_too_short_to_measure(tmp_path):
    tree = build_mi50_tree(tmp_path)
    with MovingEnergy(tree, watts=150.0, counter=None):
        meter = EnergyMeter([SysfsEnergy(str(tree.device))])
        meter.open()
        short = meter.close()  # far less than MIN_SAMPLES samples at 25 Hz
    assert short is not None and short.joules is None and short.samples < MIN_SAMPLES
    figures = energy_figures([short], tokens=32, method=meter.method)
    assert figures["tokens_per_joule"] is None and figures["energy_note"].startswith(TOO_SHORT)
    # A counter that does not move in a window is too short as well.
    still = build_mi50_tree(tmp_path / "still")
    MovingEnergy(still, watts=0.0, counter="hwmon")._write()
    meter = EnergyMeter([SysfsEnergy(str(still.device))])
    meter.open()
    assert meter.close().joules is None


def test_the_tracker_counts_timed_repetitions_only(tmp_path):
    """Warm-up, depth prefill and the set-aside first repetition are outside every window;
    a pg repetition's generation continues its window."""
    tree = build_mi50_tree(tmp_path)
    with MovingEnergy(tree, watts=100.0, counter="hwmon"):
        tracker = RepetitionTracker(EnergyMeter([SysfsEnergy(str(tree.device))]), warmup=1)
        lines = ["starting", "warmup prompt run", "warmup generation run"]
        for rep in (1, 2, 3):
            lines += [f"depth run {rep}/3", f"prompt run {rep}/3", f"generation run {rep}/3"]
        for line in lines:
            tracker.progress(line)
            if line.startswith(("prompt", "generation")):
                before = tracker.meter.sources[0].counter_j()
                wait_for(lambda b=before: tracker.meter.sources[0].counter_j() > b + 5.0)
        figures = tracker.finish(TestPoint(32, 8, 1024))
    assert figures["energy_windows"] == 2  # repetitions 2 and 3; the first is the warm-up
    assert figures["tokens_per_joule"] > 0 and figures["tokens_per_joule_sd"] is not None
    assert figures["tokens_per_joule"] * figures["joules_per_token"] == pytest.approx(1.0, rel=0.2)
    shown = energy_text(figures)  # the progress line: both figures, each with its spread
    assert re.fullmatch(r"  \S+ ± \S+ tok/J, \S+ ± \S+ J/token", shown), shown


def test_a_test_that_runs_on_before_the_last_result_keeps_its_own_windows(tmp_path):
    """A loaded llama-bench that runs on into its next test: that test's repetitions may
    start before the last test's result is read, and are never counted for it."""
    tree = build_mi50_tree(tmp_path)
    with MovingEnergy(tree, watts=100.0, counter="hwmon"):
        tracker = RepetitionTracker(EnergyMeter([SysfsEnergy(str(tree.device))]), warmup=0)
        lines = [(0, "starting"), (0, "prompt run 1/2"), (0, "prompt run 2/2"),
                 (1, "starting"), (1, "warmup generation run"), (1, "generation run 1/2")]
        for test, line in lines:
            tracker.progress(line, test)
            if "run " in line and not line.startswith("warmup"):
                before = tracker.meter.sources[0].counter_j()
                wait_for(lambda b=before: tracker.meter.sources[0].counter_j() > b + 5.0)
        first = tracker.finish(TestPoint(32, 0, 0), 0)  # read after test 1 began
        tracker.progress("generation run 2/2", 1)
        before = tracker.meter.sources[0].counter_j()
        wait_for(lambda b=before: tracker.meter.sources[0].counter_j() > b + 5.0)
        second = tracker.finish(TestPoint(0, 8, 0), 1)
    assert first["energy_windows"] == 2 and second["energy_windows"] == 2


@pytest.mark.toolchain
def test_a_real_sweep_takes_energy_over_its_counted_repetitions(cpu_bin, tiny_llama, tmp_path):
    """The real llama-bench on the CPU with the MI50 tree as the machine's card: the
    figures come from the counted repetitions, never the depth prefill or the load."""
    cpu = probe_build(cpu_bin, "cpu")
    tree = build_mi50_tree(tmp_path / "sys")
    spec = SweepSpec(name="energy", prompts=(), gens=(64,), depths=(2048,), repetitions=4, threads=1,
                     cooldown="off")

    async def sweep(telemetry):
        request = RunRequest([cpu], tiny_llama, spec, run_dir=tmp_path / "run", granularity="point")
        return [e async for e in run_sweep(request, telemetry=telemetry)]

    with MovingEnergy(tree, watts=187.0, counter="hwmon", period=0.0005), \
            Telemetry(sysfs_root=str(tree.root)) as telemetry:
        events = asyncio.run(sweep(telemetry))
    start = next(e for e in events if isinstance(e, SweepStarted))
    assert any(n.startswith("energy: energy counter (hwmon energy1_input), over each counted "
                            "repetition only; idle power 187 W") for n in start.notes), start.notes
    taken = conditions(events)
    assert taken[0].startswith("warm-up: ")
    assert "temperature at each start: edge 62 °C, junction 78 °C, memory 70 °C" in taken
    assert taken[-1].startswith("energy: energy counter (hwmon energy1_input)")
    result = next(e for e in events if isinstance(e, ResultReceived))
    figures = result.telemetry
    assert figures["energy_method"] == "energy counter (hwmon energy1_input)"
    assert figures["energy_windows"] == len(result.result.samples_ts) == 4
    assert figures["idle_power_w"] == pytest.approx(187.0)
    if figures["tokens_per_joule"] is None:  # a loaded machine can make a window too short
        assert figures["energy_note"].startswith(TOO_SHORT)
        return
    assert figures["tokens_per_joule_sd"] is not None and figures["joules_per_token_sd"] is not None
    block = result.at - next(e.at for e in events if isinstance(e, PointStarted))
    in_windows = figures["joules_per_token"] * 64 * 4 / 187.0  # seconds, at the card's 187 W
    timed = sum(64 / s for s in result.result.samples_ts)  # what llama-bench itself timed
    # The windows hold the timed generation runs, and only them: not the load, the warm-up
    # or the 2048-token prefill, which the block holds too.
    assert in_windows == pytest.approx(timed, rel=0.25) and in_windows < block

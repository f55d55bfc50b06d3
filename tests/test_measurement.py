"""Measurement that earns its confidence: the thermal guard, throttle flags, adaptive
repetitions and energy, on real sweeps of the real llama-bench builds.

The GPU here is an MI50-shaped sysfs tree (tests/sysfs_fixtures.py) whose temperature and
throttle files the tests change while a real sweep runs; the guard reads them through the
real telemetry source, exactly as on a card.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from sysfs_fixtures import build_mi50_tree

from backends.builds import probe_build
from backends.journal.sweep import (
    CoolingWaited,
    PointDecided,
    PointStarted,
    ResultReceived,
    SweepNote,
    SweepStarted,
    TelemetryRecorded,
)
from backends.sweep import RunRequest, SweepControl, SweepSpec, read_journal, run_sweep
from backends.sweep.adaptive import FIRST_BLOCK
from backends.sweep.plan import turn_order
from backends.telemetry import Telemetry

pytestmark = pytest.mark.toolchain

TINY = SweepSpec(name="tiny", prompts=(32,), gens=(8,), depths=(0,), repetitions=2, threads=1)
JUNCTION = "hwmon/temp2_input"


@pytest.fixture(scope="module")
def cpu(cpu_bin):
    return probe_build(cpu_bin, "cpu")


@pytest.fixture(scope="module")
def vulkan(vulkan_bin):
    return probe_build(vulkan_bin, "vulkan")


def mi50_telemetry(tmp_path: Path):
    tree = build_mi50_tree(tmp_path / "sysfs")
    return tree, Telemetry(["amdgpu-sysfs"], sysfs_root=str(tree.root))


def junction_of(event: TelemetryRecorded) -> float | None:
    devices = event.sample.get("devices") or []
    return devices[0].get("junction_c") if devices else None


def guarded_pair(cpu, tiny_llama, tmp_path: Path):
    """The CPU build under two names on an MI50 sysfs tree the test changes live, point by point."""
    tree, telemetry = mi50_telemetry(tmp_path)
    control = SweepControl()
    sweep = run_sweep(RunRequest([cpu, probe_build(cpu.folder, "cpu-again")], tiny_llama, TINY, run_dir=tmp_path / "run", telemetry_interval=0.1, granularity="point"), telemetry=telemetry, control=control)
    return tree, control, sweep


async def test_guard_waits_while_the_card_is_hot_and_goes_on_when_it_cools(cpu, tiny_llama, tmp_path):
    tree, control, sweep = guarded_pair(cpu, tiny_llama, tmp_path)
    events, phase = [], "baseline"
    async with contextlib.aclosing(sweep) as stream:
        async for event in stream:
            events.append(event)
            if phase == "baseline" and isinstance(event, ResultReceived):
                control.pause()  # hold the next block while the card heats up
                tree.file(JUNCTION).write_text("101000\n")
                phase = "heating"
            elif phase == "heating" and isinstance(event, TelemetryRecorded) and junction_of(event) == 101:
                control.resume()  # the guard now sees a hot card
                phase = "hot"
            elif phase == "hot" and isinstance(event, SweepNote) and "cooling" in event.message:
                # Waiting: no block may start while the card is hot.
                started = sum(isinstance(e, PointStarted) for e in events)
                tree.file(JUNCTION).write_text("79000\n")
                phase = "cooling"
            elif phase == "cooling" and isinstance(event, PointStarted):
                assert sum(isinstance(e, PointStarted) for e in events) == started + 1
                phase = "done"
    assert phase == "done"
    waits = [e for e in events if isinstance(e, CoolingWaited)]
    assert len(waits) == 1 and waits[0].reached
    start, end = waits[0].readings["junction"]
    assert start == 101 and end == 79  # baseline 78 °C: within the margin again
    assert "junction 101 °C -> 79 °C" in waits[0].message
    # The wait came before the block it guarded, and it is in the journal.
    # (Telemetry ticks go on meanwhile: a busy machine may journal one in between.)
    index = events.index(waits[0])
    after = [e for e in events[index + 1:] if not isinstance(e, TelemetryRecorded)]
    assert isinstance(after[0], PointStarted)
    assert any(isinstance(e, CoolingWaited) for e in read_journal(tmp_path / "run"))


async def test_power_above_the_baseline_with_the_card_cool_is_no_reason_to_wait(cpu, tiny_llama, tmp_path):
    # A card with a model loaded draws more at idle than before one was: the H200 drew
    # 79 W at the baseline and 120 W with an 8B model resident. The temperatures decide.
    tree, control, sweep = guarded_pair(cpu, tiny_llama, tmp_path)
    events, phase = [], "baseline"
    async with contextlib.aclosing(sweep) as stream:
        async for event in stream:
            events.append(event)
            if phase == "baseline" and isinstance(event, ResultReceived):
                control.pause()
                tree.file("hwmon/power1_average").write_text("400000000\n")  # 187 W at idle before
                phase = "drawing"
            elif phase == "drawing" and isinstance(event, TelemetryRecorded) and \
                    (event.sample.get("devices") or [{}])[0].get("power_w") == 400:
                control.resume()  # the guard has seen the high draw before the next block
                phase = "measuring"
    assert phase == "measuring"
    assert not any(isinstance(e, CoolingWaited) for e in events)
    assert not any(isinstance(e, SweepNote) and "cooling" in e.message for e in events)
    assert sum(isinstance(e, ResultReceived) for e in events) == 4  # pp and tg, both builds


async def test_a_throttled_block_is_flagged_and_measured_again(cpu, tiny_llama, tmp_path):
    tree, telemetry = mi50_telemetry(tmp_path)
    events = []
    # tg1024: a block of about a second, long enough for telemetry ticks inside it.
    sweep = run_sweep(RunRequest([cpu], tiny_llama, TINY.with_changes(prompts=(), gens=(1024,)), run_dir=tmp_path / "run", telemetry_interval=0.1, granularity="point"), telemetry=telemetry)
    async with contextlib.aclosing(sweep) as stream:
        async for event in stream:
            events.append(event)
            if isinstance(event, SweepStarted):
                tree.set_throttle(0x08)  # HBM temperature, while the first block runs
            elif isinstance(event, SweepNote) and "throttled" in event.message:
                tree.set_throttle(0)  # cooled down: the guard waits to see it, then measures
    # The guard held the second measurement until the card stopped throttling.
    waits = [e for e in events if isinstance(e, CoolingWaited)]
    assert len(waits) == 1 and waits[0].readings["throttling"] == (1.0, 0.0)
    assert "throttling ended" in waits[0].message
    results = [e for e in events if isinstance(e, ResultReceived)]
    assert [r.throttled for r in results] == [True, False]
    assert [r.block for r in results] == [0, 1]
    assert "HBM temperature" in results[0].telemetry["throttle_reasons"]
    decided = [e for e in events if isinstance(e, PointDecided)]
    # The throttled block is journalled but not counted: the clean one stands.
    assert decided[0].repetitions == {"cpu": TINY.repetitions}


async def test_without_gpu_telemetry_the_guard_says_so_once(cpu, tiny_llama, tmp_path):
    events = [e async for e in run_sweep(RunRequest([cpu], tiny_llama, TINY.with_changes(depths=(0, 64)), run_dir=tmp_path, telemetry_interval=0.1, granularity="point"), telemetry=Telemetry(["host"]))]
    start = events[0]
    assert isinstance(start, SweepStarted)
    lines = [n for n in start.notes if "thermal guard" in n]
    assert lines == ["thermal guard off: no GPU temperature telemetry on this machine"]
    assert not any(isinstance(e, SweepNote) and "guard" in e.message for e in events)
    assert sum(isinstance(e, ResultReceived) for e in events) == 4


async def test_tokens_per_joule_only_over_the_counted_repetitions(cpu, tiny_llama, tmp_path):
    """The MI50 fixture has no energy counter: power is sampled at 25 Hz while a counted
    repetition runs; a tiny model's millisecond repetitions hold too few samples, so the
    figure is 'too short to measure', never the block's mean power stood in for it."""
    _, telemetry = mi50_telemetry(tmp_path)
    events = [e async for e in run_sweep(RunRequest([cpu], tiny_llama, TINY, run_dir=tmp_path / "run", telemetry_interval=0.1, granularity="point"), telemetry=telemetry)]
    for result in (e for e in events if isinstance(e, ResultReceived)):
        summary = result.telemetry
        assert summary["mean_power_w"] == 187.0  # power1_average of the card
        assert summary["energy_method"] == "power sampled at 25 Hz"
        assert summary["tokens_per_joule"] is None
        assert summary["energy_note"].startswith("too short to measure (2 of 2 repetitions")
        assert summary["idle_power_w"] == pytest.approx(187.0)
        assert summary["peak_vram_bytes"] > 0


async def test_adaptive_repetitions_stop_a_clear_gap_after_the_first_block(cpu, vulkan, tiny_llama,
                                                                           tmp_path):
    spec = TINY.with_changes(repetitions=FIRST_BLOCK, adaptive=True, max_repetitions=7, depths=(0, 64))
    events = [e async for e in run_sweep(RunRequest([cpu, vulkan], tiny_llama, spec, run_dir=tmp_path, granularity="point"))]
    decided = [e for e in events if isinstance(e, PointDecided)]
    assert [d.point for d in decided] == list(spec.points())
    for decision in decided:
        assert decision.outcome == "decided" and decision.leader == "cpu", decision
        counts = set(decision.repetitions.values())
        assert len(counts) == 1, decision
        if decision.point.n_prompt:
            # Prompt processing: the CPU build is hundreds of times faster than lavapipe on
            # every repetition, wide and separated after the first two.
            assert decision.reason == "decided after 2" and counts == {2}, decision
        else:
            # Generation is some 8x apart, and one starved CPU repetition on a busy machine
            # can bring it inside the wide margin: then another block decides it.
            assert decision.reason.startswith("decided after"), decision
    for result in (e for e in events if isinstance(e, ResultReceived)):
        # Every timed repetition counts, as in bare llama-bench: its own untimed warm-up
        # run is the block's warm-up, and no timed one is set aside.
        assert len(result.result.samples_ts) == 2 and result.result.warmup_ts == ()
        assert len(result.result.raw["samples_ts"]) == 2
        assert result.result.avg_ts == pytest.approx(sum(result.result.samples_ts) / 2)


async def test_adaptive_repetitions_add_blocks_in_abba_order_until_decided_or_capped(cpu, tiny_llama,
                                                                                     tmp_path):
    other = probe_build(cpu.folder, "cpu-again")
    spec = TINY.with_changes(repetitions=3, adaptive=True, max_repetitions=7, gens=())
    events = [e async for e in run_sweep(RunRequest([cpu, other], tiny_llama, spec, run_dir=tmp_path, granularity="point"))]
    decided = [e for e in events if isinstance(e, PointDecided)]
    assert len(decided) == 1
    decision = decided[0]
    counts = set(decision.repetitions.values())
    assert len(counts) == 1 and 3 <= counts.pop() <= 7  # both got the same number
    assert re.match(r"(decided|tie) after \d|cap 7: still open|open after", decision.reason)
    starts = [(e.build, e.block) for e in events if isinstance(e, PointStarted)]
    blocks = max(b for _, b in starts) + 1
    # Round r: the order reverses every round (A B, B A, A B...).
    expected = [(name, r) for r in range(blocks) for name in turn_order(["cpu", "cpu-again"], 0, r)]
    assert starts == expected
    if decision.outcome == "decided":
        assert blocks == 1 or decision.reason.startswith("decided after")

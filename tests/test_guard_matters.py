"""The thermal guard waits only when heat matters: real sweeps of the real CPU build, with
the guard reading an MI50-shaped sysfs tree (tests/sysfs_fixtures.py) through the real
telemetry sampler. Baseline: junction 78 °C, its limit 110 °C; clock 1725 MHz, 97 % busy.
(A near-limit card, 101 °C, and a throttling one wait: tests/test_measurement.py.)"""

from __future__ import annotations

import contextlib

import pytest
from test_measurement import JUNCTION, cpu, guarded_pair, junction_of  # noqa: F401 - fixture

from backends.journal.sweep import CoolingWaited, PointStarted, ResultReceived, SweepNote, TelemetryRecorded

pytestmark = pytest.mark.toolchain

CLOCK = "hwmon/freq1_input"


def clock_of(event: TelemetryRecorded) -> float | None:
    devices = event.sample.get("devices") or []
    return devices[0].get("sclk_mhz") if devices else None


async def test_a_warm_card_far_from_its_limit_starts_the_next_block_at_once(
        cpu, tiny_llama, tmp_path):  # noqa: F811 - the fixture
    tree, control, sweep = guarded_pair(cpu, tiny_llama, tmp_path)
    events, phase = [], "baseline"
    async with contextlib.aclosing(sweep) as stream:
        async for event in stream:
            events.append(event)
            if phase == "baseline" and isinstance(event, ResultReceived):
                control.pause()
                tree.file(JUNCTION).write_text("88000\n")  # 10 °C over idle, 22 °C under the limit
                phase = "warming"
            elif phase == "warming" and isinstance(event, TelemetryRecorded) and junction_of(event) == 88:
                control.resume()  # the guard has seen the warm card before the next block
                phase = "warm"
            elif phase == "warm" and isinstance(event, PointStarted):
                phase = "started"
    assert phase == "started"
    assert not any(isinstance(e, CoolingWaited) for e in events)
    assert not any(isinstance(e, SweepNote) and "cooling" in e.message for e in events)
    assert sum(isinstance(e, ResultReceived) for e in events) == 4  # pp and tg, both builds


async def test_a_warm_card_whose_clock_dropped_waits_until_it_cools(
        cpu, tiny_llama, tmp_path):  # noqa: F811 - the fixture
    tree, control, sweep = guarded_pair(cpu, tiny_llama, tmp_path)
    events, phase, started = [], "baseline", 0
    async with contextlib.aclosing(sweep) as stream:
        async for event in stream:
            events.append(event)
            if phase == "baseline" and isinstance(event, ResultReceived):
                control.pause()
                tree.file(JUNCTION).write_text("88000\n")
                tree.file(CLOCK).write_text("1200000000\n")  # busy at 1200 MHz: slowed by heat
                phase = "warming"
            elif phase == "warming" and isinstance(event, TelemetryRecorded) and \
                    junction_of(event) == 88 and clock_of(event) == 1200:
                control.resume()
                phase = "hot"
            elif phase == "hot" and isinstance(event, SweepNote) and "cooling" in event.message:
                started = sum(isinstance(e, PointStarted) for e in events)
                tree.file(JUNCTION).write_text("79000\n")
                phase = "cooling"
            elif phase == "cooling" and isinstance(event, PointStarted):
                assert sum(isinstance(e, PointStarted) for e in events) == started + 1
                phase = "done"
    assert phase == "done"
    waits = [e for e in events if isinstance(e, CoolingWaited)]
    assert len(waits) == 1 and waits[0].reached
    assert waits[0].readings["junction"] == (88, 79)

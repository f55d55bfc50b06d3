"""A cancel that lands while results wait between the journal and the command line: what
``bench``/``resume`` print (``--json``'s document, the text's lines) holds what the
journal holds, not only what was yielded before the cancel.

The events are a real sweep's (the CPU build on a generated model); the cancel is replayed
at a chosen event so the race is the same every time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from backends.builds import probe_build
from backends.journal.journal import RunEvent, event_to_json
from backends.journal.sweep import ResultReceived, SweepStarted
from backends.sweep import RunRequest, SweepControl, SweepSpec, read_journal, run_sweep
from tui.cli.bench import drive

pytestmark = pytest.mark.toolchain

GRID = SweepSpec(name="cancel", prompts=(32,), gens=(8,), depths=(0,), repetitions=1, threads=1)


async def _collect(events: AsyncIterator[RunEvent]) -> list[RunEvent]:
    return [event async for event in events]


def _cancelled_after(events: list[RunEvent], handed: int, control: SweepControl) -> AsyncIterator[RunEvent]:
    """The sweep as the command line sees it when a cancel lands after ``handed`` events:
    the rest was journalled but never yielded, and waits in ``control.undelivered``."""

    async def replay() -> AsyncIterator[RunEvent]:
        for event in events[:handed]:
            yield event
        control.undelivered += events[handed:]
        raise asyncio.CancelledError  # what the signal handler's task.cancel() raises here

    return replay()


def test_a_cancelled_bench_json_document_holds_every_journalled_result(cpu_bin, tiny_llama, tmp_path, capsys):
    cpu = probe_build(cpu_bin, "cpu")
    run_dir = tmp_path / "run"
    events = asyncio.run(_collect(run_sweep(RunRequest([cpu], tiny_llama, GRID, run_dir=run_dir))))
    journalled = [e for e in read_journal(run_dir) if isinstance(e, ResultReceived)]
    assert len(journalled) == 2  # pp32 and tg8
    handed = next(i for i, e in enumerate(events) if isinstance(e, ResultReceived)) + 1  # the first result only
    capsys.readouterr()

    control = SweepControl()
    status, _ = drive(_cancelled_after(events, handed, control), "json", control=control)
    document = json.loads(capsys.readouterr().out)
    assert document["state"] == "cancelled" and status == 130
    results = [e for e in document["events"] if e["type"] == "ResultReceived"]
    assert [(r["build"], r["result"]["point"]) for r in results] == [
        (r.build, event_to_json(r)["result"]["point"]) for r in journalled]

    without = SweepControl()  # the same cancel, the undelivered events not handed over
    drive(_cancelled_after(events, handed, without), "json")
    shown = json.loads(capsys.readouterr().out)["events"]
    assert sum(e["type"] == "ResultReceived" for e in shown) == 1
    assert isinstance(events[0], SweepStarted)

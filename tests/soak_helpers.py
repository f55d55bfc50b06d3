"""Shared helpers for the soak tests: run a real soak, read its figures, check nothing is left."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from backends.journal.journal import read_journal
from backends.server import ServerSettings
from backends.soak import SoakBuild, SoakSpec, SoakSummary, run_soak, summarize

VULKAN_ENV = {"GGML_VK_VISIBLE_DEVICES": "0"}


def build(name: str, folder: Path, backend: str = "cpu") -> SoakBuild:
    env = dict(VULKAN_ENV) if backend == "vulkan" else {}
    return SoakBuild(name, str(folder), env, backend)


def quick_spec(duration_s: float, **changes: Any) -> SoakSpec:
    """Minutes, not hours: small answers, probes every second, two-second windows, and one
    thread per server (ggml's threads spin while they wait: two servers of two threads each
    on two shared cores slow each other a hundredfold)."""
    values: dict[str, Any] = dict(duration_s=duration_s, slots=2, ctx_size=1024, n_gen=16,
                                  probe_every_s=1.0, probe_tokens=8, idle_s=0.3, hang_s=60.0,
                                  window_s=2.0, start_timeout_s=120.0,
                                  settings=ServerSettings(threads=1))
    values.update(changes)
    return SoakSpec(**values)


def soak(builds: Sequence[SoakBuild], model: Path, spec: SoakSpec, journal: Path, *,
         reference: str | None = None,
         on_event: Callable[[Any], bool | None] | None = None) -> list[Any]:
    """Every event of a real soak; ``on_event`` returning True cancels it there."""

    async def collect() -> list[Any]:
        events: list[Any] = []
        stream = run_soak(builds, model, spec, reference=reference, journal_path=journal)
        async with contextlib.aclosing(stream) as running:
            async for event in running:
                events.append(event)
                if on_event is not None and on_event(event):
                    break
        return events

    return asyncio.run(collect())


def summary_of(journal: Path) -> SoakSummary:
    summary = summarize(read_journal(journal))
    assert summary is not None
    return summary


def of(events: Sequence[Any], kind: type, build: str | None = None) -> list[Any]:
    return [e for e in events if isinstance(e, kind)
            and (build is None or getattr(e, "build", None) == build)]


# Children of this test process that were there before the test began (``test_soak.py``'s
# autouse fixture): an earlier test's leftover on the same worker is that test's fault,
# not this one's.
BEFORE: set[int] = set()


def live_children() -> list[psutil.Process]:
    alive = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            continue
    return alive


def assert_no_children() -> None:
    """Nothing this test started is still running; what is, is named."""
    left = [p for p in live_children() if p.pid not in BEFORE]
    assert not left, [(p.pid, p.name()) for p in left]

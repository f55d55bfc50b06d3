"""The app's one door to the sweep runner, the server duel and the soak: runs, journals, resumes
and quick probes.

Screens import the runner only through here, so a change in how ``backends`` lays out
its sweep code is one edit in this file.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from backends.estimate import Rates
from backends.journal.sweep import PointFailed, PointStarted, ResultReceived

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.journal.journal import RunEvent
    from backends.models import ModelInfo
    from backends.server import ServeEvent
    from backends.soak import SoakEvent
    from backends.sweep import JournalRead, RunSummary, SweepControl
    from backends.telemetry.model import TelemetrySource
    from tui.state.run_text import SweepStart
    from tui.state.serve import ServeRequest
    from tui.state.soak import SoakRequest

# A quick probe: one short prompt and generation test, once, on each build.
PROBE_PROMPT, PROBE_GEN = 32, 8


def read_journal(path: Path) -> JournalRead:
    from backends.sweep import read_journal as read

    return read(path)


def list_runs(root: Path | None) -> list[RunSummary]:
    from backends.sweep import list_runs as runs

    return runs(root)


def new_control() -> SweepControl:
    from backends.sweep import SweepControl

    return SweepControl()


def sweep(start: SweepStart, *, telemetry: TelemetrySource | None,
          control: SweepControl | None) -> AsyncGenerator[RunEvent, None]:
    """A new run (its journal where its request says) or the rest of an interrupted one."""
    from backends import sweep as runner

    if start.resume_dir is not None:
        return runner.resume(start.resume_dir, telemetry=telemetry, control=control)
    assert start.request is not None
    return runner.run_sweep(start.request, telemetry=telemetry, control=control)


async def probe_rates(builds: Sequence[BuildInfo],
                      model: ModelInfo) -> AsyncGenerator[tuple[str, Rates | str], None]:
    """Measure each build briefly on ``model`` (pp32 and tg8, once): its rates and load
    time, or why it could not be measured (a str).

    Runs through the sweep runner (own process groups, killed when this is closed); the
    journal goes to a temporary folder that is removed afterwards."""
    from backends import sweep as runner
    from backends.sweep import SweepSpec

    spec = SweepSpec(name="probe", prompts=(PROBE_PROMPT,), gens=(PROBE_GEN,), depths=(0,),
                     repetitions=1, flash_attn=None)
    with tempfile.TemporaryDirectory(prefix="llamaduel-probe-") as folder:
        started: dict[str, float] = {}
        rates: dict[str, dict[str, float]] = {}
        failed: set[str] = set()
        events = runner.run_sweep(runner.RunRequest(builds, model, spec, run_dir=Path(folder) / "run",
                                                    interleave=False, granularity="build"))
        try:
            async for event in events:
                if isinstance(event, PointStarted):
                    started.setdefault(event.build, time.monotonic())
                elif isinstance(event, PointFailed) and event.build not in failed:
                    failed.add(event.build)
                    yield event.build, event.reason
                elif isinstance(event, ResultReceived):
                    found = rates.setdefault(event.build, {})
                    found[event.result.point.kind] = event.result.avg_ts
                    if {"pp", "tg"} <= set(found):
                        wall = time.monotonic() - started.get(event.build, time.monotonic())
                        work = 2 * (PROBE_PROMPT / found["pp"] + PROBE_GEN / found["tg"])
                        yield event.build, Rates(found["pp"], found["tg"],
                                                 load_s=max(0.0, wall - work),
                                                 basis="a quick probe")
        finally:
            await events.aclose()


def serve(request: ServeRequest, *, runs_root: Path | None) -> AsyncGenerator[ServeEvent, None]:
    """A server duel; its journal in a new run folder under ``runs_root`` (None: the
    user's runs folder), the servers' logs beside it."""
    from backends.journal.journal import JOURNAL_NAME, new_run_dir
    from backends.server import run_serve_duel

    journal_path = None
    if runs_root is not None:
        _, folder = new_run_dir(runs_root, Path(f"serve-{request.model_path.stem}"))
        journal_path = folder / JOURNAL_NAME
    return run_serve_duel(request.contenders(), request.model_path, request.spec,
                          journal_path=journal_path)


def soak(request: SoakRequest, *, runs_root: Path | None) -> AsyncGenerator[SoakEvent, None]:
    """A soak through the same engine as ``llamaduel soak``; its journal in a new run folder
    under ``runs_root`` (None: the user's runs folder), the servers' logs beside it."""
    from backends.journal.journal import JOURNAL_NAME, new_run_dir
    from backends.soak import run_soak

    journal_path = None
    if runs_root is not None:
        _, folder = new_run_dir(runs_root, Path(f"soak-{request.model.path.stem}"))
        journal_path = folder / JOURNAL_NAME
    return run_soak(request.soak_builds(), request.model.path, request.spec,
                    reference=request.reference, journal_path=journal_path)


def soak_resume(journal: Path) -> AsyncGenerator[SoakEvent, None]:
    """The rest of the soak journalled at ``journal``, in the same journal."""
    from backends.soak import resume_soak

    return resume_soak(journal)

"""Continue an interrupted sweep from its journal without redoing finished points."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from pathlib import Path

from backends.builds import BuildInfo, probe_build
from backends.journal.damage import missing_results
from backends.journal.journal import JOURNAL_NAME, JournalRead, RunEvent, read_journal
from backends.journal.sweep import PointDecided, PointFailed, SweepStarted
from backends.sweep.control import SweepControl
from backends.sweep.request import RunRequest
from backends.sweep.spec import SweepError, SweepSpec
from backends.sweep.start import run_sweep
from backends.telemetry.model import TelemetrySource


def resume_request(run_dir: Path | str, *, builds: Sequence[BuildInfo] | None = None,
                   retry_failed: bool = False) -> RunRequest:
    """The rest of the run in ``run_dir``, as a request: points already decided are kept,
    points part-way through carry their blocks over, and (with ``retry_failed``) failed
    points run again. A point whose decision counted a result the journal lost
    (``backends.journal.damage``) is open again, in a run that had finished too.

    Contenders are probed again from the paths the journal recorded unless given (on
    their hosts, over ssh, for contenders on other machines).
    """
    run_dir = Path(run_dir)
    journal, starts = _read(run_dir)
    first = starts[0]
    spec = SweepSpec.from_json(starts[-1].spec)
    if builds is None:
        builds = [_probe(first, name) for name in first.builds]
    model_paths = {str(data["host"]): str(data["model"]) for data in first.contenders.values()
                   if data.get("host") and data.get("model")}
    lost = {m.point.key for m in missing_results(journal.events)}
    history = [e for e in journal if not (isinstance(e, PointDecided) and e.point.key in lost)]
    if retry_failed:
        # A point with a failure is open again: its failures and its decision are dropped,
        # the blocks that did measure are kept.
        failed = {e.point.key for e in history if isinstance(e, PointFailed)}
        history = [e for e in history if not isinstance(e, PointFailed)
                   and not (isinstance(e, PointDecided) and e.point.key in failed)]
    return RunRequest(builds, Path(first.model), spec, run_dir=run_dir, run_id=first.run_id,
                      model_paths=model_paths, history=history)


def resume(run_dir: Path | str, *, builds: Sequence[BuildInfo] | None = None, retry_failed: bool = False,
           telemetry: TelemetrySource | None = None,
           control: SweepControl | None = None) -> AsyncGenerator[RunEvent, None]:
    """Run the rest of the run in ``run_dir`` (see ``resume_request``)."""
    return run_sweep(resume_request(run_dir, builds=builds, retry_failed=retry_failed),
                     telemetry=telemetry, control=control)


def _read(run_dir: Path) -> tuple[JournalRead, list[SweepStarted]]:
    journal_path = run_dir / JOURNAL_NAME
    if not journal_path.is_file():
        raise SweepError(f"no journal in {run_dir}")
    journal = read_journal(journal_path)
    starts = [e for e in journal if isinstance(e, SweepStarted)]
    if not starts:
        raise SweepError(f"{journal_path} has no sweep start: not a llamaduel run journal")
    return journal, starts


def probe_recorded(run_dir: Path | str) -> list[BuildInfo]:
    """The run's contenders, probed again from the paths its journal recorded (what
    ``resume`` runs unless given builds)."""
    first = _read(Path(run_dir))[1][0]
    return [_probe(first, name) for name in first.builds]


def _probe(start: SweepStarted, name: str) -> BuildInfo:
    recorded = start.contenders.get(name, {})
    host = recorded.get("host")
    if host:
        from backends.remote.probe import probe_remote_build

        build = probe_remote_build(str(host), start.build_paths[name], name)
    else:
        build = probe_build(Path(start.build_paths[name]), name)
    return build.as_contender(recorded)


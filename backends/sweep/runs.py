"""The runs under the data folder: what each journal holds, for listing and resuming."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backends.journal.journal import JOURNAL_NAME, finished_points, read_journal
from backends.journal.sweep import SweepFinished, SweepStarted
from backends.paths import runs_root


@dataclass(frozen=True)
class RunSummary:
    """What a run folder holds, for listing runs and offering to resume."""

    run_dir: Path
    run_id: str
    model: str
    builds: tuple[str, ...]
    total: int
    done: int
    finished: bool
    problem: str = ""  # unreadable lines in the journal, in one line

    @property
    def resumable(self) -> bool:
        return not self.finished and self.done < self.total


def summarize_run(run_dir: Path) -> RunSummary | None:
    """The run in ``run_dir``; None when it holds no readable sweep journal."""
    try:
        journal = read_journal(run_dir / JOURNAL_NAME)
    except OSError:
        return None
    starts = [e for e in journal if isinstance(e, SweepStarted)]
    if not starts:
        return None
    first = starts[0]
    ends = [e for e in journal if isinstance(e, SweepFinished)]
    done = len(finished_points(journal.events))
    total = len(first.points) * len(first.builds)
    finished = (bool(ends) and not ends[-1].cancelled and done >= total) or done >= total
    return RunSummary(run_dir=run_dir, run_id=first.run_id, model=first.model, builds=first.builds,
                      total=total, done=done, finished=finished,
                      problem=journal.describe_problems())


def list_runs(root: Path | None = None) -> list[RunSummary]:
    """Runs under ``root`` (default: the data folder's runs), newest first."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    summaries = [summarize_run(d) for d in sorted(root.iterdir(), reverse=True) if d.is_dir()]
    return [s for s in summaries if s is not None]

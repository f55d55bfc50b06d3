"""The run journal: one append-only JSONL file per run, for everything the run does.

Sweep events, the correctness check, races and telemetry all go into it, each written and
flushed before anyone sees it; starts, results, failures, decisions and the finish are
also fsynced, so a power cut keeps every finished test point. Replay and resume read it
back, and the verdict is computed from it.

* One writer: a journal is locked (``flock``) by the process that appends to it; a second
  writer gets JournalBusy with one line saying who holds it.
* Repair: a last line torn by a crash or a full disk is set aside (``journal.torn-N``)
  before anything is appended.
* Reading reports every line it cannot decode with its line number (``JournalRead``).
* Run ids are unique: the run folder is created atomically (``new_run_dir``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from backends.journal.check import CHECK_EVENT_TYPES, BuildChecked, CheckEvent, CheckFinished
from backends.journal.codec import CodecError, Registry
from backends.journal.damage import missing_results, unreadable_line
from backends.journal.race import RACE_EVENT_TYPES, RaceEvent
from backends.journal.race import BuildFailed as RaceBuildFailed
from backends.journal.race import BuildFinished as RaceBuildFinished
from backends.journal.serve import EVENT_TYPES as SERVE_EVENT_TYPES
from backends.journal.serve import DuelFinished, LevelFinished, ServeEvent
from backends.journal.soak import SOAK_DURABLE, SOAK_EVENT_TYPES, SoakEvent
from backends.journal.sweep import (
    SWEEP_EVENT_TYPES,
    BenchEvent,
    PointDecided,
    PointFailed,
    ResultReceived,
    SweepFinished,
    SweepStarted,
)
from backends.journal.tune import DURABLE_TUNE_TYPES, TUNE_EVENT_TYPES, TuneEvent
from backends.paths import describe_write_error
from backends.text import printable

JOURNAL_NAME = "journal.jsonl"
LOCK_NAME = "journal.lock"
# Everything a run's journal can hold.
RunEvent = BenchEvent | CheckEvent | RaceEvent | ServeEvent | TuneEvent | SoakEvent
RECORDS = Registry((*SWEEP_EVENT_TYPES, *CHECK_EVENT_TYPES, *RACE_EVENT_TYPES,
                    *SERVE_EVENT_TYPES.values(), *TUNE_EVENT_TYPES, *SOAK_EVENT_TYPES))
# Results of every kind are fsynced (a power cut keeps them); progress and telemetry are not.
_DURABLE: tuple[type, ...] = (
    SweepStarted, ResultReceived, PointFailed, PointDecided, SweepFinished,
    BuildChecked, CheckFinished, RaceBuildFinished, RaceBuildFailed, LevelFinished, DuelFinished,
    *DURABLE_TUNE_TYPES,
    *SOAK_DURABLE,
)


class JournalError(OSError):
    """The journal cannot be written or locked; ``str()`` is one line for the user."""


class JournalBusy(JournalError):
    pass


def _describe(error: OSError, path: Path) -> str:
    return describe_write_error(error, path, "the run journal")


class Journal:
    """Append-only JSONL, locked for one writer, repaired before the first append."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Held open for the journal's life: the lock is on this file.
            self._lock = open(path.parent / LOCK_NAME, "a+", encoding="utf-8")  # noqa: SIM115
        except OSError as error:
            raise JournalError(_describe(error, path)) from None
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.seek(0)
            holder = self._lock.read().strip() or "another process"
            self._lock.close()
            raise JournalBusy(f"the run in {path.parent} is being written by {holder}: "
                              "wait for it to finish or stop it first") from None
        try:
            self._lock.seek(0)
            self._lock.truncate()
            self._lock.write(f"llamaduel pid {os.getpid()}\n")
            self._lock.flush()
            self.set_aside = repair(path)
            self._file = open(path, "ab")  # noqa: SIM115 - appended to until close()
        except OSError as error:
            self._lock.close()
            raise JournalError(_describe(error, path)) from None

    def append(self, event: RunEvent) -> None:
        """Write one event; JournalError (one line) when the disk refuses it."""
        line = RECORDS.encode(event) + b"\n"
        try:
            self._file.write(line)
            self._file.flush()
            if isinstance(event, _DURABLE):
                os.fsync(self._file.fileno())
        except OSError as error:
            raise JournalError(_describe(error, self.path)) from None

    def close(self) -> None:
        for handle in (self._file, self._lock):
            # A full disk can refuse the last flush: what was fsynced is kept.
            with contextlib.suppress(OSError):
                handle.close()


def repair(path: Path) -> Path | None:
    """Set a torn last line aside (into ``journal.torn-N`` beside it); return where."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return None
        handle.seek(0)
        data = handle.read()
    cut = data.rfind(b"\n") + 1
    number = 1
    while (aside := path.with_name(f"{path.name}.torn-{number}")).exists():
        number += 1
    aside.write_bytes(data[cut:])
    with open(path, "r+b") as handle:
        handle.truncate(cut)
        handle.flush()
        os.fsync(handle.fileno())
    return aside


@dataclass(frozen=True)
class JournalProblem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class JournalRead:
    """The events of a journal and the lines that are not events (iterates the events)."""

    path: Path
    events: tuple[RunEvent, ...]
    problems: tuple[JournalProblem, ...] = ()
    torn_tail: bool = False  # the last line ends without a newline: a crash mid-write

    def __iter__(self) -> Iterator[RunEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, index: int) -> RunEvent:
        return self.events[index]

    def report(self) -> list[str]:
        """A line per line that could not be read, as every reader says it."""
        return [unreadable_line(p.line) for p in self.problems]

    def describe_problems(self, limit: int = 3) -> str:
        """One line about the lines that could not be read, or ''."""
        if not self.problems:
            return ""
        shown = "; ".join(str(p) for p in self.problems[:limit])
        more = f" and {len(self.problems) - limit} more" if len(self.problems) > limit else ""
        return f"{self.path}: {len(self.problems)} unreadable line(s) skipped ({shown}{more})"


def read_journal(path: Path | str) -> JournalRead:
    """Every event of a journal (a file or its run folder), with the lines that are not."""
    path = Path(path)
    if path.is_dir():
        path = path / JOURNAL_NAME
    with open(path, "rb") as handle:
        data = handle.read()
    return read_journal_data(data, path)


def read_journal_data(data: bytes, path: Path) -> JournalRead:
    """The events of a journal's bytes (read from ``path``), with the lines that are not."""
    events: list[RunEvent] = []
    problems: list[JournalProblem] = []
    lines = data.split(b"\n")
    torn = bool(lines and lines[-1])
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(decode_event(line))
        except CodecError as error:
            if torn and number == len(lines):
                problems.append(JournalProblem(number, "torn last line (set aside when the run resumes)"))
            else:
                problems.append(JournalProblem(number, printable(str(error))[:160]))
    return JournalRead(path, tuple(events), tuple(problems), torn)


def _run_stem(model: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model.stem)[:40] or "model"


def new_run_dir(root: Path, model: Path, when: float | None = None) -> tuple[str, Path]:
    """A fresh run folder under ``root``: its id is unique even for runs started in the
    same second (the folder is created atomically; a taken name gets a suffix)."""
    base = time.strftime("%Y%m%d-%H%M%S", time.localtime(when)) + f"-{_run_stem(model)}"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise JournalError(_describe(error, root / base)) from None
    for number in range(1, 1000):
        run_id = base if number == 1 else f"{base}-{number}"
        try:
            (root / run_id).mkdir()
        except FileExistsError:
            continue
        except OSError as error:
            raise JournalError(_describe(error, root / run_id)) from None
        return run_id, root / run_id
    raise JournalError(f"cannot find a free run folder name under {root}")


def open_run_journal(root: Path, kind: str, model: str | Path, journal_path: str | Path | None) -> Journal:
    """The journal at ``journal_path``, or in a new run folder ``KIND-MODEL`` under ``root``
    (a server duel's or a soak's). Raises JournalError, one line."""
    if journal_path is None:
        _, folder = new_run_dir(root, Path(f"{kind}-{Path(model).stem}"))
        journal_path = folder / JOURNAL_NAME
    return Journal(Path(journal_path))


def finished_points(events: Sequence[RunEvent] | JournalRead, *, retry_failed: bool = False) -> set[tuple[str, str]]:
    """(contender, point key) pairs a journal already has an outcome for.

    A journal with decisions (every run since adaptive repetitions) counts a point as done
    once it was decided; an older one, once it has a result or a failure.
    """
    decided = [e for e in events if isinstance(e, PointDecided)
               and not (retry_failed and e.outcome == "failed")]
    failed = set() if retry_failed else {(e.build, e.point.key) for e in events
                                         if isinstance(e, PointFailed)}
    if any(isinstance(e, PointDecided) for e in events):
        names = [n for e in events if isinstance(e, SweepStarted) for n in e.builds]
        lost = {m.point.key for m in missing_results(events)}  # decided, but a result is gone
        return {(name, d.point.key) for d in decided for name in names
                if d.point.key not in lost} | failed
    results = {(e.build, e.result.point.key) for e in events if isinstance(e, ResultReceived)}
    return results | failed


def event_to_json(event: RunEvent) -> dict[str, object]:
    """An event as a plain dict with its ``type`` tag (what one journal line holds)."""
    return dict(json.loads(RECORDS.encode(event)))


def event_from_json(payload: Mapping[str, object]) -> RunEvent:
    """Back from ``event_to_json``; CodecError (a ValueError) when it is not an event."""
    return decode_event(json.dumps(payload))


def decode_event(line: bytes | str) -> RunEvent:
    """The event on one journal line; CodecError says why it is not one."""
    # The registry holds the RunEvent types only, so what it decodes is one.
    return cast("RunEvent", RECORDS.decode(line))

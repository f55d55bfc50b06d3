"""Runs that died: which tests of a contender never finished, and why.

A log may end in a crash before any row, after some rows, or in the middle of a row (a
table cut by an abort, followed by the debugger's lines). The tests that did not finish are
the ones its command line asked for and no row reports; without a command line, the tests
that its siblings ran (files of the same model whose names describe the same tests) and it
did not. A crash is a failure whatever a wrapper said about the exit status.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backends.journal.sweep import TestPoint
from profiles.importers.failures import LogFailure, failure_in, is_backtrace, test_hints
from profiles.importers.grouping import model_key
from profiles.importers.rows import Row, point_of

# What describes a test rather than the contender that ran it.
_MEASUREMENT = frozenset({"n_prompt", "n_gen", "n_depth", "avg_ts", "stddev_ts", "samples_ts", "avg_ns",
                          "stddev_ns", "samples_ns", "test_time"})
_BANNER = re.compile(r"ggml_vulkan:|ggml_cuda_init:|Device \d+:|load_backend:|found \d+ \w+ devices")
UNFINISHED = "unfinished"  # Row.hints: the tests this failed run did not reach are not known yet
MEASURED = "measured"  # Row.hints: the tests the same run did finish


def _key(p: TestPoint) -> tuple[int, int, int]:
    return (p.n_prompt, p.n_gen, p.depth)


def log_failure_rows(state: Any, results: list[Row]) -> list[Row]:
    """Failures a log records beyond its table rows (a crash, an abort, a wrapper's exit)."""
    out = [row for table in state.tables for row in _table_failures(state, table)]
    if out:
        return out
    failure = failure_in(state.noise)
    if failure is None:
        return []
    if results and failure.exit_code is None and not state.command_points:
        return []  # an error line among results that all arrived is not a failed run
    return _unfinished(state, _base(state), {_key_of(r) for r in results}, failure)


def silent_stop(state: Any) -> list[Row]:
    """A log that printed llama-bench's banner or table header, then neither a row nor an error."""
    lines = [n for n in state.noise if not is_backtrace(n)]
    last = lines[-1] if lines else ""
    if state.headers:
        where = "after the table header"
    else:
        where = "after the device banner" if not last or _BANNER.search(last) else f"at {last[:60]!r}"
    failure = LogFailure(reason=f"no result and no error: the log stops {where}", hard=False)
    if state.command_points:
        return _unfinished(state, _base(state), set(), failure)
    return [failure_row(state, failure.reason)]


def failure_row(state: Any, reason: str) -> Row:
    """A failed run whose tests the log does not say: its siblings will (expand_unfinished)."""
    raw = dict(_base(state), n_prompt=0, n_gen=0, n_depth=0)
    row = Row(raw=raw, source=state.source, failed=True, reason=reason, point_known=False)
    row.hints[UNFINISHED] = True
    return row


def _base(state: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"backends": state.banner_backend or "",
                            "gpu_info": state.gpus.get("vulkan") or state.gpus.get("device") or ""}
    if state.tables and state.tables[-1].build is not None:
        base["build_commit"], base["build_number"] = state.tables[-1].build
    if state.model:
        base["model_filename"] = state.model
    base.update(state.command_settings)
    return base


def _key_of(row: Row) -> tuple[int, int, int]:
    return _key(point_of(row.raw))


def _table_failures(state: Any, table: Any) -> list[Row]:
    """A table whose run crashed after its last row (or in the middle of one)."""
    crash = failure_in(table.after)
    if crash is None or not crash.hard:
        return []
    whole = failure_in(state.noise) if len(state.tables) == 1 else None
    failure = whole if whole is not None and whole.hard else crash
    last = table.rows[-1] if table.rows else table.cut
    base = {k: v for k, v in last.raw.items() if k not in _MEASUREMENT} if last is not None else {}
    if table.build is not None:
        base["build_commit"], base["build_number"] = table.build
    done = {_key_of(r) for r in table.rows}
    out = []
    if table.cut is not None:
        cut = Row(raw=dict(table.cut.raw, **{k: v for k, v in base.items() if k not in table.cut.raw}),
                  source=state.source, failed=True, exit_code=failure.exit_code,
                  reason=f"{failure.reason} (the table stops in the middle of this row)")
        out.append(cut)
        done.add(_key_of(cut))
    return out + _unfinished(state, base, done, failure)


def _unfinished(state: Any, base: dict[str, Any], done: set[tuple[int, int, int]],
                failure: LogFailure) -> list[Row]:
    """One failure per test the run's command line asked for and no row reports; without a
    command line, one failure whose tests the siblings will tell (see expand_unfinished)."""
    if state.command_points:
        missing = [p for p in state.command_points if _key(p) not in done]
        return [Row(raw=dict(base, n_prompt=p.n_prompt, n_gen=p.n_gen, n_depth=p.depth), source=state.source,
                    failed=True, reason=failure.reason, exit_code=failure.exit_code) for p in missing]
    row = Row(raw=dict(base, n_prompt=0, n_gen=0, n_depth=0), source=state.source, failed=True,
              reason=failure.reason, exit_code=failure.exit_code, point_known=False)
    row.hints[UNFINISHED] = True
    row.hints[MEASURED] = sorted(done)
    return [row]


def expand_unfinished(rows: Sequence[Row]) -> list[Row]:
    """A failed run whose tests are unknown fails the tests its siblings ran and it did not:
    files of the same model (and machine) whose names describe the same tests."""
    ran: dict[tuple[str, str, Any], dict[tuple[int, int, int], None]] = defaultdict(dict)
    for row in rows:
        if not row.failed:
            ran[_sibling_key(row)][_key_of(row)] = None
    out: list[Row] = []
    for row in rows:
        if not (row.failed and row.hints.get(UNFINISHED)) or not model_key(row.raw):
            out.append(row)
            continue
        mine = {tuple(k) for k in row.hints.get(MEASURED, ())}
        wanted = [k for k in ran.get(_sibling_key(row), {}) if k not in mine]
        if not wanted:
            out.append(row)
            continue
        for p, g, d in wanted:
            raw = dict(row.raw, n_prompt=p, n_gen=g, n_depth=d)
            out.append(Row(raw=raw, source=row.source, failed=True, reason=row.reason, label=row.label,
                           machine=row.machine, exit_code=row.exit_code))
    return out


def _sibling_key(row: Row) -> tuple[str, str, Any]:
    return (model_key(row.raw), row.machine, test_hints(Path(row.source).name))

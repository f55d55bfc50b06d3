"""Read every format llama-bench writes, plus compare-llama-bench databases, raw logs and journals.

Formats are recognised by content, not by file name: ``-o jsonl`` (stderr lines mixed in are
skipped), ``-o json``, ``-o csv``, ``-o md`` (also pasted, hand-merged, cut, old ``pp 512``
tables and raw logs with banners and progress lines), ``-o sql`` (parsed, never executed),
compare-llama-bench's SQLite database (read-only, fixed queries) and llamaduel's own
``journal.jsonl``. Failed runs are results too: rows with no speed, logs that end in a crash,
a header-only CSV beside the ``.stderr`` that says why. Importing never runs anything.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from backends.journal.sweep import BenchResult
from profiles.importers.crashes import expand_unfinished, failure_row, log_failure_rows, silent_stop
from profiles.importers.csvfmt import clean_header, csv_lines, embedded_csv, read_csv
from profiles.importers.failures import (
    backend_hint,
    build_hint,
    failure_in,
    test_hints,
)
from profiles.importers.folders import read_all, without_repeats
from profiles.importers.grouping import (
    adopt_backends,
    failure_models,
    file_variants,
    identity,
    machine_of,
    merge_failures,
    model_key,
    name_builds,
    section_machines,
)
from profiles.importers.jsonfmt import read_json_array, read_jsonl
from profiles.importers.machines import host_of, split_machines
from profiles.importers.markdown import finish_tables, read_markdown
from profiles.importers.rows import (
    REPS_KEY,
    SETTING_KEYS,
    ImportProblem,
    Row,
    normalize_gpu,
    parse_speed,
    parse_test_name,
    point_of,
)
from profiles.importers.sqlfmt import read_sql, read_sqlite
from profiles.records import FailureRecord, ProfileResult, RunRecords

__all__ = ["FileRead", "ImportProblem", "ImportedBuild", "ImportedRun", "import_files", "normalize_gpu",
           "parse_speed", "parse_test_name", "read_file"]

MAX_IMPORT_BYTES = 64 * 1024 * 1024  # formats read whole (markdown, JSON, SQL)
MAX_STREAM_BYTES = 16 * 1024 ** 3  # llama-bench CSV and JSONL, read a row at a time
JOURNAL_HEAD = b"{\"type\":\""  # every line of a run journal, its first too
_COMPANION = (".stderr.log", ".stderr", ".log", ".err")
_RESULT_SUFFIXES = (".jsonl", ".json", ".csv", ".md", ".sql")


@dataclass(frozen=True)
class ImportedBuild:
    name: str
    backend: str
    build_number: int | None
    commit: str | None
    gpu: str | None
    sources: tuple[str, ...] = ()
    machine: str = ""


@dataclass(frozen=True)
class ImportedRun:
    builds: tuple[ImportedBuild, ...]
    results: Mapping[str, tuple[BenchResult, ...]]
    failures: Mapping[str, tuple[FailureRecord, ...]]
    problems: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    journal: tuple[Any, ...] = field(default=(), compare=False)
    telemetry: Mapping[str, tuple[Mapping[str, Any] | None, ...]] = field(default_factory=dict, compare=False)
    machine: str = ""

    @property
    def result_count(self) -> int:
        return sum(len(v) for v in self.results.values())

    @property
    def failure_count(self) -> int:
        return sum(len(v) for v in self.failures.values())

    def build(self, name: str) -> ImportedBuild:
        for b in self.builds:
            if b.name == name:
                return b
        raise KeyError(name)

    def machines(self) -> list[ImportedRun]:
        """One run per machine (and per GPU where one backend ran on two named GPUs)."""
        return split_machines(self)

    arenas = machines

    def records(self) -> RunRecords:
        results = tuple(ProfileResult(build=name, result=r, telemetry=t)
                        for name, rs in self.results.items()
                        for r, t in zip(rs, self.telemetry.get(name) or (None,) * len(rs)))
        failures = tuple(f for fs in self.failures.values() for f in fs)
        return RunRecords(results=results, failures=failures, machine=self.machine,
                          builds=tuple(b.name for b in self.builds))


@dataclass(frozen=True)
class FileRead:
    path: str
    format: str
    rows: tuple[Row, ...]
    problems: tuple[str, ...]
    events: tuple[Any, ...] = ()


# ---------------------------------------------------------------------------------------
# One file


def read_file(path: str | Path) -> FileRead:
    """Read one file in whatever llama-bench format it holds. Raises ImportProblem."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ImportProblem(f"{path}: {error.strerror or error}") from None
    if not path.is_file():
        raise ImportProblem(f"{path}: not a file")
    with open(path, "rb") as handle:
        head = handle.read(16)
        if head.startswith(b"SQLite format 3\x00"):
            return _with_host(FileRead(str(path), "sqlite", tuple(read_sqlite(path)), ()), path)
        head += handle.read(4096)
    streamed = _streamed(path, head, size)
    if streamed is not None:
        return _with_host(streamed, path)
    if size > MAX_IMPORT_BYTES:
        raise ImportProblem(f"{path}: {size / 2**20:.0f} MiB is too large for benchmark output")
    with open(path, "rb") as handle:
        data = handle.read()
    text = data.decode("utf-8", errors="replace")
    if data.startswith(JOURNAL_HEAD):
        return _with_host(_journal(data, str(path)), path)  # a damaged line is reported there
    if "\x00" in text:
        raise ImportProblem(f"{path}: binary data, not llama-bench output")
    read = _read_text(text, str(path))
    if not read.rows and not read.events:
        read = _failed_run(read, text, path)
    return _with_host(read, path)


def _streamed(path: Path, head: bytes, size: int) -> FileRead | None:
    """llama-bench's own CSV, read a row at a time (a database of a million rows fits)."""
    first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    columns = set(clean_header(first.split(",")))
    if not {"build_commit", "avg_ts", "n_prompt", "n_gen"} <= columns or b"\x00" in head:
        return None
    if size > MAX_STREAM_BYTES:
        raise ImportProblem(f"{path}: {size / 2**30:.0f} GiB is too large for benchmark output")
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        rows = read_csv(handle, str(path))
    read = FileRead(str(path), "csv", tuple(rows), ())
    return read if rows else _failed_run(read, first, path)


def _journal(data: str | bytes, source: str) -> FileRead:
    """A run journal: its events; each line that cannot be read and each result its
    decisions counted that is gone, one line each."""
    from backends.journal.damage import missing_results
    from backends.journal.journal import read_journal_data

    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
    read = read_journal_data(raw, Path(source))
    lost = [f"{source}: {m}" for m in missing_results(read.events)]
    return FileRead(source, "journal", (), (*(f"{source}: {line}" for line in read.report()), *lost),
                    read.events)


def _read_text(text: str, source: str) -> FileRead:
    stripped = text.lstrip()
    if re.search(r"INSERT\s+INTO\s+\"?\w+\"?\s*\(", text, re.IGNORECASE):
        rows, problems = read_sql(text, source)
        return FileRead(source, "sql", tuple(rows), tuple(problems))
    # "-o json" after stderr's lines (2>&1), its "[" on the line of an unterminated warning.
    array = re.search(r"\[[ \t]*\n\s*\{", stripped) if not stripped.startswith(("[", "{")) else None
    if array is not None:
        stripped = text = stripped[array.start():]
    if stripped.startswith("["):
        try:
            return FileRead(source, "json", tuple(read_json_array(text, source)), ())
        except ImportProblem:
            pass  # a truncated array: read what lines parse below
    rows, events = read_jsonl(text, source)
    if events and not rows:
        return _journal(text, source)
    if rows:
        return FileRead(source, "jsonl", tuple(rows), ())
    if stripped.startswith("{"):
        try:
            return FileRead(source, "json", tuple(read_json_array(text, source)), ())
        except ImportProblem:
            pass
    first = stripped.splitlines()[0] if stripped else ""
    if "|" in text:
        return _read_markdown_or_log(text, source)
    if "," in first:
        try:
            return FileRead(source, "csv", tuple(read_csv(csv_lines(text), source)), ())
        except (ImportProblem, csv.Error, ValueError, KeyError):
            return _read_markdown_or_log(text, source)  # not a CSV after all
    return _read_markdown_or_log(text, source)


_LOG_LINE = re.compile(r"^(?:ggml_\w+:|llama_\w+:|main: |load_backend:|llama-bench: |Error: |✖|/\S+\(\S*\) \[0x)"
                       r"|GGML_ASSERT|\b(?:ROCm|CUDA|HIP|Vulkan) error\b|^\S*llama-bench(?:\.exe)?\s+-")


def _looks_like_log(text: str, state: Any) -> bool:
    """llama.cpp's own output (banners, progress, its errors), not a script or a note."""
    if text.lstrip().startswith("#!"):
        return False
    if state.banner_backend or state.tables or state.headers:
        return True
    lines = [n for n in state.noise if n]
    return bool(lines) and sum(1 for n in lines if _LOG_LINE.search(n)) * 2 >= len(lines)


def _read_markdown_or_log(text: str, source: str) -> FileRead:
    rows, problems, state = read_markdown(text, source)
    finish_tables(state)
    rows += embedded_csv(text, source, rows)
    is_log = _looks_like_log(text, state) and not _is_companion(Path(source))
    failures = log_failure_rows(state, rows) if is_log else []
    if not rows and not failures and is_log and (state.banner_backend or state.headers):
        failures = silent_stop(state)
    for row in failures:
        _hint_failure(row, Path(source))
    fmt = "markdown" if rows or problems else "log"
    return FileRead(source, fmt, tuple(rows + failures), tuple(problems))


def _hint_failure(row: Row, path: Path) -> None:
    """Fill what the log did not say about a failed run from its file name."""
    phase, depth, reps = test_hints(str(path))
    if not row.raw.get("backends"):
        row.raw["backends"] = backend_hint(str(path)) or ""
    if row.raw.get("build_number") is None and (number := build_hint(str(path))) is not None:
        row.raw["build_number"] = number
    if not row.point_known:
        row.phase, row.depth = phase, depth
        if depth:
            row.raw["n_depth"] = depth
    if reps is not None:
        row.raw.setdefault(REPS_KEY, reps)


def _is_companion(path: Path) -> bool:
    name = path.name
    for suffix in _COMPANION:
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            return any((path.parent / (base + ext)).is_file() for ext in _RESULT_SUFFIXES)
    return False


def _failed_run(read: FileRead, text: str, path: Path) -> FileRead:
    """A header-only CSV (or empty JSON) beside the log that says why the run failed."""
    if read.format not in ("csv", "json", "jsonl") and not text.lstrip().startswith(("build_commit", "[")):
        return read
    for suffix in _COMPANION:
        log = path.with_name(path.stem + suffix)
        if log.is_file():
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
            failure = failure_in(lines)
            if failure is None:
                continue
            _, _, state = read_markdown("\n".join(lines), str(path))
            row = failure_row(state, f"{failure.reason} (from {log.name})")
            row.exit_code = failure.exit_code
            _hint_failure(row, path)
            if (model := re.search(r"failed to load model '([^']+)'", "\n".join(lines))) is not None:
                row.raw["model_filename"] = model.group(1)
            return FileRead(read.path, "csv", (row,), read.problems)
    return read


def _with_host(read: FileRead, path: Path) -> FileRead:
    host = host_of(str(path.parent.resolve()))
    if host:
        for row in read.rows:
            row.machine = row.machine or host
    return read


# ---------------------------------------------------------------------------------------
# Many files -> builds


def import_files(paths: Iterable[str | Path], *, strict: bool = False, one_machine: bool = False) -> ImportedRun:
    """Read llama-bench outputs and group their rows into builds.

    A folder stands for the files below it. Files that hold nothing to import are reported
    in ``problems`` (one line each; a folder's together); with ``strict`` the first such
    file raises ImportProblem instead. A result two files hold is counted once.
    ``one_machine`` drops what tells machines apart (host names beside the files,
    cpu_info), for files the user knows come from one machine.
    """
    reads, problems = read_all(paths, read_file, strict=strict)
    rows, repeated = without_repeats(reads)
    events = [event for read in reads for event in read.events]
    files = [read.path for read in reads]
    problems += repeated
    run = group_rows(rows, problems=problems, files=files, events=events)
    if one_machine:
        run = replace(run, builds=tuple(replace(b, machine="") for b in run.builds))
    return run


def group_rows(rows: Sequence[Row], *, problems: Sequence[str] = (), files: Sequence[str] = (),
               events: Sequence[Any] = ()) -> ImportedRun:
    section_machines(rows)
    failure_models(rows)
    rows = expand_unfinished(rows)
    variants = file_variants(rows)
    keyed: dict[Any, list[Row]] = defaultdict(list)
    for row in rows:
        keyed[identity(row, variants.get(row.source, ""))].append(row)
    keyed = merge_failures(adopt_backends(keyed))
    gpu_display: dict[str, str] = {}
    for row in rows:
        original = str(row.raw.get("gpu_info") or "")
        if original:
            gpu_display.setdefault(normalize_gpu(original), re.sub(r"\s*\(.*?\)", "", original).strip())
    names = name_builds(list(keyed), gpu_display)
    builds, results, failures, telemetry = [], {}, {}, {}
    for key, group in keyed.items():
        name = names[key]
        gpu = next((str(r.raw.get("gpu_info")) for r in group if r.raw.get("gpu_info")), None)
        builds.append(ImportedBuild(name=name, backend=key.backend or (key.label or ""),
                                    build_number=key.number, commit=key.commit, gpu=gpu,
                                    sources=tuple(dict.fromkeys(r.source for r in group)),
                                    machine=machine_of(group)))
        good = [r for r in group if not r.failed]
        results[name] = tuple(_result(r.raw) for r in good)
        telemetry[name] = tuple(r.hints.get("telemetry") for r in good)
        bad = tuple(_failure(name, r) for r in group if r.failed)
        if bad:
            failures[name] = bad
    return ImportedRun(builds=tuple(builds), results=results, failures=failures,
                       problems=tuple(problems), files=tuple(files), journal=tuple(events),
                       telemetry=telemetry)


def _result(raw: dict[str, Any]) -> BenchResult:
    """BenchResult.from_llama_bench without copying the record (big imports hold many)."""
    made = BenchResult.from_llama_bench({k: raw.get(k) for k in ("n_prompt", "n_gen", "n_depth", "avg_ts",
                                                                  "stddev_ts", "samples_ts")})
    return BenchResult(point=made.point, avg_ts=made.avg_ts, stddev_ts=made.stddev_ts,
                       samples_ts=made.samples_ts, raw=raw)


def _failure(build: str, row: Row) -> FailureRecord:
    raw = row.raw
    point = point_of(raw)
    known = row.point_known and bool(point.n_prompt or point.n_gen)
    model = model_key(raw) or None
    return FailureRecord(build=build, reason=row.reason or "no result", point=point if known else None,
                         phase=None if known else row.phase,
                         depth=None if known else (row.depth if row.depth is not None else (point.depth or None)),
                         model=model, settings={k: raw[k] for k in SETTING_KEYS if k in raw},
                         exit_code=row.exit_code, source=row.source)

"""``-o csv`` (streamed, pooled by configuration) and people's own CSV digests."""

from __future__ import annotations

import csv
import io
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from profiles.importers.pooling import MEASUREMENT_FIELDS, RowPool
from profiles.importers.rows import (
    SETTING_KEYS,
    ImportProblem,
    Row,
    canonical_backend,
    coerce_record,
    number,
    parse_test_name,
    point_of,
    row_from_record,
    samples,
)

# Columns of CSV files: llama-bench's own names first, then names people use in their own CSVs.
_CSV_ALIASES = {
    "avg_ts": ("avg_ts", "t/s", "tps", "speed_t_s", "tokens_per_sec", "tok_s"),
    "stddev_ts": ("stddev_ts", "stddev_tps", "std_ts"),
    "n_depth": ("n_depth", "depth", "starting_depth"),
    "backends": ("backends", "backend"),
    "model_type": ("model_type", "model"),
    "gpu_info": ("gpu_info", "gpu"),
    "test": ("test", "workload"),
}


_FIRST_FIELD = ("build_commit", "build_number", "cpu_info")


def clean_header(cells: list[str]) -> list[str]:
    """A header whose first name follows text on its line (stderr's unterminated warning
    before ``-o csv``'s header: ``...instead.build_commit``) gets its name back."""
    cells = [c.strip() for c in cells]
    if cells and cells[0] not in _FIRST_FIELD:
        for name in _FIRST_FIELD:
            if cells[0].endswith(name):
                return [name, *cells[1:]]
    return cells


def read_csv(lines: Iterable[str], source: str) -> list[Row]:
    reader = csv.reader(lines)
    header = clean_header(next(reader, []))
    lower = {h.lower(): i for i, h in enumerate(header)}
    # llama-bench's own CSV names the model file; an author's digest with the same speed
    # columns ("model", "starting_depth", "toolbox") is read by its aliases instead.
    if {"avg_ts", "n_prompt", "n_gen"} <= set(lower) and {"model_filename", "model_type"} & set(lower):
        return _read_bench_csv(reader, header, source)
    return _read_author_csv(reader, header, source)


class _Columns:
    """One header of a llama-bench CSV; files appended to by several runs repeat it, and a
    newer llama-bench may append rows under a header with other columns."""

    def __init__(self, header: list[str], first: _Columns | None = None) -> None:
        self.header = header
        # The configuration's columns in name order, so two headers that list them in another
        # order (or repeat) give the same key; a header with other columns keys its rows apart.
        static = sorted((i for i, h in enumerate(header) if h not in MEASUREMENT_FIELDS), key=lambda i: header[i])
        self.names = tuple(header[i] for i in static)
        get: Callable[[list[str]], Any] = operator.itemgetter(*static) if static else (lambda v: ())
        names = self.names
        self.key_of = get if first is None or first.names == names else (lambda v: (names, get(v)))
        self.avg_at = header.index("avg_ts")
        self.samples_at = header.index("samples_ts") if "samples_ts" in header else -1
        self.width = len(header)


def _is_header(values: list[str]) -> bool:
    cells = {v.strip() for v in values}
    return {"avg_ts", "n_prompt", "n_gen"} <= cells


def _read_bench_csv(reader: Iterator[list[str]], header: list[str], source: str) -> list[Row]:
    """llama-bench's own columns: each distinct configuration is parsed once, rows pooled."""
    first = columns = _Columns(header)
    key_of, avg_at, samples_at, width = columns.key_of, columns.avg_at, columns.samples_at, columns.width
    pool = RowPool()
    pooled, no_samples = pool.pooled, list[float]()
    for values in reader:
        if len(values) < width:
            if not any(v.strip() for v in values):
                continue
            values = values + [""] * (width - len(values))
        key = key_of(values)
        entry = pooled(key)
        if entry is not None:
            try:
                mean = float(values[avg_at])
            except ValueError:
                mean = math.nan
            if 0 < mean < math.inf:
                entry.add(mean, samples(values[samples_at]) if samples_at >= 0 else no_samples)
                continue
        if _is_header(values):  # a repeated (or newer) header: no row
            columns = _Columns([v.strip() for v in values], first)
            key_of, avg_at, samples_at, width = columns.key_of, columns.avg_at, columns.samples_at, columns.width
            continue
        row = row_from_record(coerce_record(dict(zip(columns.header, values))), source)
        if row.failed:
            row.reason = "no speed in this row"
            pool.add(row)
            continue
        pool.add(row, key=key)
    return pool.rows()


def _read_author_csv(reader: Iterator[list[str]], header: list[str], source: str) -> list[Row]:
    lower = {h.lower(): h for h in header}

    def column(name: str) -> str | None:
        for alias in _CSV_ALIASES.get(name, (name,)):
            if alias in lower:
                return lower[alias]
        return None

    speed_col = column("avg_ts")
    has_shape = ("n_prompt" in lower or "n_gen" in lower) or column("test") is not None
    if speed_col is None or not has_shape:
        raise ImportProblem("CSV without a speed column (avg_ts/t/s) and test sizes")
    rows = []
    for values in reader:
        record = dict(zip(header, values))
        if not any(v.strip() for v in values) or [v.strip() for v in values] == header:
            continue  # blank, or the header again (files appended to by several runs)
        row = _author_row(record, lower, column, speed_col, source)
        if row is not None:
            rows.append(row)
    return rows


def _author_row(record: Mapping[str, str], lower: Mapping[str, str],
                column: Callable[[str], str | None], speed_col: str, source: str) -> Row | None:
    rec = coerce_record(record)
    raw = dict(rec)
    raw["avg_ts"] = number(record.get(speed_col))
    for target in ("stddev_ts", "n_depth", "backends", "gpu_info", "model_type"):
        col = column(target)
        if col and target not in rec:
            value = record.get(col) or ""
            raw[target] = number(value) if target in ("stddev_ts", "n_depth") else value.strip()
    if "n_depth" in raw:
        d = number(raw["n_depth"])
        raw["n_depth"] = int(d) if not math.isnan(d) else 0
    if "quant" in lower and raw.get("model_type") and "model_filename" not in raw:
        raw["model_type"] = f"{raw['model_type']} {(record.get(lower['quant']) or '').strip()}".strip()
    if "n_prompt" not in lower and "n_gen" not in lower:
        point = parse_test_name(str(record.get(column("test") or "") or ""))
        if point is None:
            return None
        raw.update(n_prompt=point.n_prompt, n_gen=point.n_gen, n_depth=point.depth or raw.get("n_depth", 0))
    for key in ("n_prompt", "n_gen"):
        n = number(raw.get(key))
        raw[key] = int(n) if not math.isnan(n) else 0
    label = _author_label(record, lower, raw)
    if isinstance(raw.get("backends"), str) and raw["backends"].islower():
        raw["backends"] = canonical_backend(raw["backends"])
    row = row_from_record(raw, source, label)
    if row.failed:
        row.reason = "no speed in this row"
    return row


def _author_label(record: Mapping[str, str], lower: Mapping[str, str], raw: dict[str, Any]) -> str | None:
    label = None
    for col in ("toolbox", "build_or_version"):
        value = (record.get(lower[col]) or "").strip() if col in lower else ""
        if value:
            label = f"{raw.get('backends') or 'build'} {value}" if col == "build_or_version" else value
            break
    if "build_or_version" in lower and "build_number" not in lower:
        m = re.match(r"\s*b(\d+)\s+([0-9a-f]{6,})", record.get(lower["build_or_version"]) or "")
        if m:
            raw["build_number"], raw["build_commit"] = int(m.group(1)), m.group(2)
    return label


def csv_lines(text: str) -> io.StringIO:
    return io.StringIO(text)


_FENCE = re.compile(r"^\s*(```|~~~)")


def csv_blocks(text: str) -> list[list[str]]:
    """llama-bench CSV pasted into a report (a fenced block, or lines from its header to the
    first blank one): the lines of each, header first."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if current is not None:
            if not line.strip() or _FENCE.match(line) or (not line.lstrip().startswith(('"', "'")) and "," not in line):
                blocks.append(current)
                current = None
            else:
                current.append(line)
            continue
        if "avg_ts" in line and "n_prompt" in line and "," in line and not line.lstrip().startswith("|"):
            current = [",".join(clean_header(line.split(",")))]
    if current is not None:
        blocks.append(current)
    return blocks


_RUN_FIELDS = ("build_commit", "build_number", "gpu_info", "cpu_info")


def embedded_csv(text: str, source: str, table_rows: list[Row]) -> list[Row]:
    """The CSV blocks of a report, as rows. Tables of a backend for which the CSV names one run
    take its build, GPU and CPU; a table of the same model that agrees with the CSV's settings
    is the same run pasted twice: it takes the model file and settings the CSV names, and a
    test both hold is kept once, from the CSV."""
    rows = [row for block in csv_blocks(text) for row in read_csv(block, source)]
    runs: dict[str, set[tuple[str, ...]]] = {}
    models: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        backend = str(r.raw.get("backends") or "")
        runs.setdefault(backend, set()).add(tuple(str(r.raw.get(k) or "") for k in _RUN_FIELDS))
        models.setdefault((backend, str(r.raw.get("model_type") or "")), []).append(r)
    tests = {(_ident(r), point_of(r.raw)) for r in rows}
    for row in list(table_rows):
        backend = str(row.raw.get("backends") or "")
        named = runs.get(backend, set())
        if len(named) == 1 and not (row.raw.get("build_commit") or row.raw.get("build_number")):
            for key, value in zip(_RUN_FIELDS, next(iter(named))):
                if value and not row.raw.get(key):
                    row.raw[key] = int(value) if key == "build_number" and value.isdigit() else value
        given = _given(models.get((backend, str(row.raw.get("model_type") or "")), []))
        if given is None or any(str(row.raw[k]) != str(given.get(k)) for k in SETTING_KEYS if k in row.raw):
            continue
        for key, value in given.items():
            if row.raw.get(key) in (None, ""):
                row.raw[key] = value
        if (_ident(row), point_of(row.raw)) in tests:
            table_rows.remove(row)  # the same test in both: the CSV's record has more
    return rows


def _given(rows: list[Row]) -> dict[str, Any] | None:
    """What every row of one run in the CSV agrees on (its build, machine, model and settings)."""
    if not rows:
        return None
    keys = ("model_filename", *SETTING_KEYS)
    values = {k: {str(r.raw.get(k)) for r in rows} for k in keys}
    return {k: rows[0].raw[k] for k in keys if len(values[k]) == 1 and rows[0].raw.get(k) not in (None, "")}


def _ident(row: Row) -> tuple[str, ...]:
    return tuple(str(row.raw.get(k)) for k in ("backends", "model_type", "build_number", *SETTING_KEYS))

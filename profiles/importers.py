"""Read every format llama-bench writes, plus compare-llama-bench databases and journals.

Formats are recognised by content, not by file name: ``-o jsonl`` (stderr banner lines
mixed in are skipped), ``-o json``, ``-o csv``, ``-o md`` (markdown tables, also the old
``pp 512`` names, ``-pg`` rows, ``N/A`` cells, cut and hand-merged tables), ``-o sql``
(parsed as text, never executed), compare-llama-bench's SQLite database (opened read-only
with fixed queries) and llamaduel's own ``journal.jsonl``. Wrapper JSONL lines that carry
the llama-bench record under ``bench_raw`` are unwrapped.

Rows whose speed is null, NaN or "N/A" are failures, not results. Results are grouped into
builds by backend, build number, commit and GPU; where those are identical but the rows come
from different files measuring the same tests, the file name tells the builds apart.
Importing never runs anything.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from backends.events import BenchResult, PointFailed, TestPoint, event_from_json

MAX_IMPORT_BYTES = 64 * 1024 * 1024


class ImportProblem(Exception):
    """A file that cannot be read as benchmark results; the message is one line."""


@dataclass(frozen=True)
class ImportedBuild:
    name: str
    backend: str
    build_number: int | None
    commit: str | None
    gpu: str | None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportedRun:
    builds: tuple[ImportedBuild, ...]
    results: Mapping[str, tuple[BenchResult, ...]]
    failures: Mapping[str, tuple[PointFailed, ...]]
    problems: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    journal: tuple[Any, ...] = field(default=(), compare=False)

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

    def arenas(self) -> list["ImportedRun"]:
        """Split into one run per GPU when two GPUs each carry two or more builds.

        Comparing a build on one card with a build on another says nothing about builds;
        a single build per GPU (CPU against a GPU build) stays one comparison.
        """
        by_gpu: dict[str, list[ImportedBuild]] = defaultdict(list)
        for b in self.builds:
            by_gpu[normalize_gpu(b.gpu)].append(b)
        # Backends report one card under different names (HIP "AMD Radeon Graphics", Vulkan
        # "Radeon 8060S Graphics"), so split only when one backend ran on two named GPUs.
        gpus_of_backend: dict[str, set[str]] = defaultdict(set)
        for gpu, group in by_gpu.items():
            for b in group:
                if gpu:
                    gpus_of_backend[b.backend.split(",")[0].split("(")[0].strip().lower()].add(gpu)
        if (sum(1 for group in by_gpu.values() if len(group) >= 2) < 2
                or not any(len(g) > 1 for g in gpus_of_backend.values())):
            return [self]
        runs = []
        for group in by_gpu.values():
            names = {b.name for b in group}
            runs.append(ImportedRun(builds=tuple(group),
                                    results={k: v for k, v in self.results.items() if k in names},
                                    failures={k: v for k, v in self.failures.items() if k in names},
                                    problems=self.problems, files=self.files))
        return runs


@dataclass
class _Row:
    """One llama-bench test read from a file: a result or a failure."""

    raw: dict[str, Any]
    source: str
    failed: bool = False
    reason: str = ""
    label: str | None = None  # a build label given outside the record (wrapper, table cell)


# ---------------------------------------------------------------------------------------
# Small parsers


def normalize_gpu(name: str | None) -> str:
    text = (name or "").lower()
    text = re.sub(r"\(.*?\)", " ", text)
    for word in ("amd", "nvidia", "graphics", "geforce", "series"):
        text = re.sub(rf"\b{word}\b", " ", text)
    return " ".join(text.split())


_TEST_NAME = re.compile(
    r"^\s*(?:(pp|tg)\s*(\d+)(?:\s*\+\s*tg\s*(\d+))?|pg\s*(\d+)\s*,\s*(\d+))\s*(?:@\s*d\s*(\d+))?\s*$",
    re.IGNORECASE)


def parse_test_name(name: str) -> TestPoint | None:
    """``pp512``, ``tg128``, ``pp 512`` (old), ``pp4096+tg128``, ``pg 512,128``, with ``@ d4096``."""
    m = _TEST_NAME.match(name.replace("*", ""))
    if not m:
        return None
    kind, first, plus_gen, pg_p, pg_g, depth = m.groups()
    d = int(depth or 0)
    if pg_p is not None:
        return TestPoint(int(pg_p), int(pg_g), d)
    if plus_gen is not None:
        return TestPoint(int(first), int(plus_gen), d)
    return TestPoint(int(first), 0, d) if kind.lower() == "pp" else TestPoint(0, int(first), d)


def _number(text: Any) -> float:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if text is None:
        return math.nan
    cleaned = str(text).replace("*", "").replace(",", "").strip()
    try:
        return float(cleaned)
    except ValueError:
        return math.nan


_SPEED = re.compile(r"^\s*\**\s*([-+0-9.eE]+|nan|inf)\s*\**\s*(?:±\s*\**\s*([-+0-9.eE]+|nan)\s*\**)?\s*$",
                    re.IGNORECASE)


def parse_speed(cell: str) -> tuple[float, float]:
    """``1084.19 ± 2.41`` -> (1084.19, 2.41); ``N/A``, ``nan`` or junk -> (nan, nan)."""
    m = _SPEED.match(cell)
    if not m:
        return math.nan, math.nan
    return _number(m.group(1)), _number(m.group(2)) if m.group(2) else math.nan


_SIZE_UNITS = {"b": 1, "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4,
               "kb": 1e3, "mb": 1e6, "gb": 1e9}
_PARAM_UNITS = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def _size_bytes(text: str) -> int | None:
    m = re.match(r"\s*([0-9.]+)\s*([KMGT]?i?B)\s*$", text, re.IGNORECASE)
    if not m:
        return None
    return int(float(m.group(1)) * _SIZE_UNITS.get(m.group(2).lower(), 1))


def _params(text: str) -> int | None:
    m = re.match(r"\s*([0-9.]+)\s*([KMBT]?)\s*$", text, re.IGNORECASE)
    if not m:
        return None
    return int(float(m.group(1)) * _PARAM_UNITS[m.group(2).lower()])


def _record_failed(raw: Mapping[str, Any]) -> bool:
    value = raw.get("avg_ts")
    number = _number(value)
    return math.isnan(number) or number <= 0


def _samples(value: Any) -> list[float]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [v for v in re.split(r"[\s,;\[\]]+", value) if v]
    if not isinstance(value, (list, tuple)):
        return []
    out = [_number(v) for v in value]
    return [v for v in out if not math.isnan(v)]


def _coerce_record(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a CSV/SQL row (all strings) into llama-bench's JSON types."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key is None:
            continue
        key = str(key).strip()
        if isinstance(value, str):
            v = value.strip()
            if key in _INT_FIELDS:
                n = _number(v)
                value = int(n) if not math.isnan(n) else v
            elif key in ("avg_ts", "stddev_ts"):
                value = _number(v)
            elif key in ("samples_ts", "samples_ns"):
                value = _samples(v)
            else:
                value = v
        out[key] = value
    return out


_INT_FIELDS = {"build_number", "n_batch", "n_ubatch", "n_threads", "poll", "model_size", "model_n_params",
               "n_gpu_layers", "main_gpu", "n_prompt", "n_gen", "n_depth", "avg_ns", "stddev_ns",
               "n_cpu_moe", "flash_attn", "no_op_offload", "fit_target", "fit_min_ctx"}


def _row_from_record(raw: Mapping[str, Any], source: str, label: str | None = None) -> _Row:
    record = dict(raw)
    failed = _record_failed(record)
    return _Row(raw=record, source=source, failed=failed,
                reason="llama-bench wrote no speed (null or NaN)" if failed else "", label=label)


def _looks_like_record(obj: Any) -> bool:
    return isinstance(obj, dict) and ("avg_ts" in obj or "samples_ts" in obj) and (
        "n_prompt" in obj or "n_gen" in obj)


# ---------------------------------------------------------------------------------------
# Format readers: each returns rows, or raises ImportProblem


def _read_jsonl(text: str, source: str) -> tuple[list[_Row], list[Any]]:
    rows: list[_Row] = []
    events: list[Any] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue  # stderr banner lines and other noise
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if "type" in obj and "avg_ts" not in obj:
            try:
                events.append(event_from_json(obj))
            except (ValueError, TypeError, KeyError, AttributeError):
                pass
            continue
        if "bench_raw" in obj:
            rows.append(_unwrap(obj, source))
        elif _looks_like_record(obj):
            rows.append(_row_from_record(obj, source))
    return rows, events


def _unwrap(obj: Mapping[str, Any], source: str) -> _Row:
    """A wrapper line (``{"build": ..., "bench_raw": {...}}``): the label lives outside."""
    parts = [str(obj.get("build") or "").strip()]
    for key in ("hipblaslt", "fa", "b"):
        value = str(obj.get(key) or "").strip()
        if value:
            parts.append(f"hipblaslt={value}" if key == "hipblaslt" else value)
    label = " ".join(p for p in parts if p) or None
    raw = obj.get("bench_raw")
    if isinstance(raw, dict):
        row = _row_from_record(raw, source, label)
        return row
    mode, value = str(obj.get("mode") or ""), _number(obj.get("value"))
    n = int(value) if not math.isnan(value) else 0
    point = {"n_prompt": n if mode == "pp" else 0, "n_gen": n if mode == "tg" else 0, "n_depth": 0}
    return _Row(raw=point, source=source, failed=True, reason="the run produced no llama-bench record",
                label=label)


def _json_items(text: str) -> list[Any]:
    """Objects of a JSON array, as many as parse: a cut ``-o json`` file keeps its first ones."""
    decoder = json.JSONDecoder()
    start = text.index("[") + 1
    items, i = [], start
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text) or text[i] == "]":
            return items
        try:
            item, i = decoder.raw_decode(text, i)
        except ValueError:
            return items
        items.append(item)


def _read_json_array(text: str, source: str) -> list[_Row]:
    try:
        data = json.loads(text)
    except ValueError as error:
        if text.lstrip().startswith("["):
            data = _json_items(text)
        else:
            raise ImportProblem(f"not valid JSON ({error})") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ImportProblem("JSON holds no llama-bench records")
    rows = []
    for item in data:
        if isinstance(item, dict) and "bench_raw" in item:
            rows.append(_unwrap(item, source))
        elif _looks_like_record(item):
            rows.append(_row_from_record(item, source))
    return rows


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


def _read_csv(text: str, source: str) -> list[_Row]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
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
    for record in reader:
        if not record or all(not (v or "").strip() for v in record.values() if isinstance(v, str)):
            continue
        rec = _coerce_record({k: v for k, v in record.items() if k is not None})
        raw = dict(rec)
        raw["avg_ts"] = _number(record.get(speed_col))
        for target in ("stddev_ts", "n_depth", "backends", "gpu_info", "model_type"):
            col = column(target)
            if col and target not in rec:
                raw[target] = _number(record.get(col)) if target in ("stddev_ts", "n_depth") else (record.get(col) or "").strip()
        if "n_depth" in raw:
            d = _number(raw["n_depth"])
            raw["n_depth"] = int(d) if not math.isnan(d) else 0
        if "quant" in lower and raw.get("model_type") and "model_filename" not in raw:
            raw["model_type"] = f"{raw['model_type']} {(record.get(lower['quant']) or '').strip()}".strip()
        if "n_prompt" not in lower and "n_gen" not in lower:
            point = parse_test_name(str(record.get(column("test")) or ""))
            if point is None:
                continue
            raw.update(n_prompt=point.n_prompt, n_gen=point.n_gen, n_depth=point.depth or raw.get("n_depth", 0))
        for key in ("n_prompt", "n_gen"):
            n = _number(raw.get(key))
            raw[key] = int(n) if not math.isnan(n) else 0
        if "gpu" in lower and "gpu_info" not in rec:
            raw["gpu_info"] = (record.get(lower["gpu"]) or "").strip()
        label = None
        for col in ("toolbox", "build_or_version"):
            if col in lower and (record.get(lower[col]) or "").strip():
                label = (record.get(lower[col]) or "").strip()
                if col == "build_or_version":
                    label = f"{raw.get('backends') or 'build'} {label}"
                break
        if "build_or_version" in lower and "build_number" not in lower:
            m = re.match(r"\s*b(\d+)\s+([0-9a-f]{6,})", record.get(lower["build_or_version"]) or "")
            if m:
                raw["build_number"], raw["build_commit"] = int(m.group(1)), m.group(2)
        if isinstance(raw.get("backends"), str) and raw["backends"].islower():
            raw["backends"] = _canonical_backend(raw["backends"])
        row = _row_from_record(raw, source, label)
        if row.failed:
            row.reason = "no speed in this row"
        rows.append(row)
    return rows


def _canonical_backend(name: str) -> str:
    known = {"cuda": "CUDA", "rocm": "ROCm", "hip": "ROCm", "vulkan": "Vulkan", "metal": "Metal",
             "cpu": "CPU", "sycl": "SYCL", "opencl": "OpenCL", "blas": "BLAS"}
    return ",".join(known.get(part.strip().lower(), part.strip()) for part in name.split(","))


_DEVICE_VULKAN = re.compile(r"ggml_vulkan:\s*0\s*=\s*(.+?)\s*(?:\(|\|)")
_DEVICE_CUDA = re.compile(r"^\s*Device 0:\s*([^,]+),")
_DEVICE_GENERIC = re.compile(r"^\s*(?:Vulkan|CUDA|ROCm|HIP)0:\s*(.+?)\s*(?:\(|\||$)")
_BUILD_LINE = re.compile(r"^\s*build:\s*([0-9a-fA-F]+|unknown)\s*\((\d+)\)")


def _split_cells(line: str) -> list[str]:
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|"):
        body = body[:-1]
    return [c.strip() for c in body.split("|")]


def _read_markdown(text: str, source: str) -> tuple[list[_Row], list[str]]:
    rows: list[_Row] = []
    problems: list[str] = []
    vulkan_gpu = cuda_gpu = generic_gpu = None
    header: list[str] | None = None
    table_rows: list[_Row] = []
    pending_build: list[_Row] = []

    def close_table() -> None:
        nonlocal header, table_rows, pending_build
        if table_rows:
            pending_build = table_rows
        header, table_rows = None, []

    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if m := _BUILD_LINE.match(stripped):
            for row in pending_build or table_rows:
                row.raw.setdefault("build_commit", m.group(1))
                row.raw.setdefault("build_number", int(m.group(2)))
            pending_build = []
            continue
        if m := _DEVICE_VULKAN.search(stripped):
            vulkan_gpu = m.group(1)
        elif m := _DEVICE_CUDA.match(line):
            cuda_gpu = m.group(1).strip()
        elif m := _DEVICE_GENERIC.match(line):
            generic_gpu = m.group(1).strip()
        if not stripped.startswith("|"):
            if header is not None and stripped:
                close_table()
            elif stripped.startswith("#"):
                pending_build = []
            continue
        cells = _split_cells(stripped)
        lowered = [c.lower() for c in cells]
        if "test" in lowered and "t/s" in lowered:
            close_table()
            header = lowered
            continue
        if header is None or all(set(c) <= set("-: ") for c in cells):
            continue
        if len(cells) < len(header):
            problems.append(f"{Path(source).name}:{number}: cut table row skipped")
            continue
        values = dict(zip(header, cells))
        point = parse_test_name(values.get("test", ""))
        if point is None:
            problems.append(f"{Path(source).name}:{number}: unknown test name {values.get('test')!r}")
            continue
        speed, spread = parse_speed(values.get("t/s", ""))
        backend = values.get("backend", "")
        first = backend.split(",")[0].split("(")[0].strip().lower()
        gpu = vulkan_gpu if first == "vulkan" else (cuda_gpu if first in ("cuda", "rocm", "hip") else None)
        raw: dict[str, Any] = {
            "model_type": values.get("model", ""), "backends": backend,
            "n_prompt": point.n_prompt, "n_gen": point.n_gen, "n_depth": point.depth,
            "avg_ts": speed, "stddev_ts": spread, "samples_ts": [],
            "gpu_info": gpu or generic_gpu or "",
        }
        if (size := _size_bytes(values.get("size", ""))) is not None:
            raw["model_size"] = size
        if (params := _params(values.get("params", ""))) is not None:
            raw["model_n_params"] = params
        for column, key in (("ngl", "n_gpu_layers"), ("threads", "n_threads"), ("n_batch", "n_batch"),
                            ("n_ubatch", "n_ubatch"), ("fa", "flash_attn"), ("n_cpu_moe", "n_cpu_moe"),
                            ("mmap", "use_mmap"), ("type_k", "type_k"), ("type_v", "type_v")):
            if column in values and values[column] != "":
                n = _number(values[column])
                raw[key] = int(n) if key not in ("type_k", "type_v") and not math.isnan(n) else values[column]
        failed = math.isnan(speed) or speed <= 0
        row = _Row(raw=raw, source=source, failed=failed,
                   reason=f"table cell {values.get('t/s')!r}" if failed else "")
        table_rows.append(row)
        rows.append(row)
    close_table()
    return rows, problems


# -o sql: CREATE TABLE ...; INSERT INTO llama_bench (cols) VALUES ('v', ...);
_INSERT = re.compile(r"INSERT\s+INTO\s+\"?(\w+)\"?\s*\(([^)]*)\)\s*VALUES\s*\(", re.IGNORECASE)


def _sql_values(text: str, start: int) -> tuple[list[str | None], int]:
    """Read a VALUES tuple of quoted strings and bare numbers/NULL, from just after '('."""
    values: list[str | None] = []
    i, n = start, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n,":
            i += 1
        elif ch == "'":
            j, buf = i + 1, []
            while j < n:
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        buf.append("'")
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            if j >= n:
                raise ImportProblem("an SQL string never ends (truncated file?)")
            values.append("".join(buf))
            i = j + 1
        elif ch == ")":
            return values, i + 1
        else:
            m = re.match(r"[^,)\s]+", text[i:])
            token = m.group(0) if m else text[i]
            values.append(None if token.upper() == "NULL" else token)
            i += len(token)
    raise ImportProblem("an SQL INSERT never ends (truncated file?)")


def _read_sql(text: str, source: str) -> tuple[list[_Row], list[str]]:
    rows: list[_Row] = []
    problems: list[str] = []
    for m in _INSERT.finditer(text):
        columns = [c.strip().strip('"') for c in m.group(2).split(",")]
        try:
            values, _ = _sql_values(text, m.end())
        except ImportProblem as problem:
            problems.append(f"{Path(source).name}: {problem}")
            break
        if len(values) != len(columns):
            problems.append(f"{Path(source).name}: an INSERT has {len(values)} values for {len(columns)} columns")
            continue
        record = _coerce_record({k: ("" if v is None else v) for k, v in zip(columns, values)})
        rows.append(_row_from_record(record, source))
    return rows, problems


def _read_sqlite(path: Path) -> list[_Row]:
    """compare-llama-bench's database: table ``llama_bench`` (older: ``test``), read-only."""
    try:
        connection = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise ImportProblem(f"cannot open the SQLite file ({error})") from None
    try:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        table = next((t for t in ("llama_bench", "test") if t in tables), None)
        if table is None:
            raise ImportProblem("SQLite file has no llama_bench or test table")
        cursor = connection.execute(f'SELECT * FROM "{table}"')  # table name from the fixed list above
        names = [d[0] for d in cursor.description]
        rows = []
        for values in cursor:
            record = _coerce_record({k: (str(v) if v is not None else "") for k, v in zip(names, values)})
            rows.append(_row_from_record(record, str(path)))
        return rows
    except sqlite3.Error as error:
        raise ImportProblem(f"SQLite file unreadable ({error})") from None
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------
# One file


@dataclass(frozen=True)
class FileRead:
    path: str
    format: str
    rows: tuple[_Row, ...]
    problems: tuple[str, ...]
    events: tuple[Any, ...] = ()


def read_file(path: str | Path) -> FileRead:
    """Read one file in whatever llama-bench format it holds. Raises ImportProblem."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ImportProblem(f"{path}: {error.strerror or error}") from None
    if not path.is_file():
        raise ImportProblem(f"{path}: not a file")
    if size > MAX_IMPORT_BYTES:
        raise ImportProblem(f"{path}: {size / 2**20:.0f} MiB is too large for benchmark output")
    with open(path, "rb") as handle:
        head = handle.read(16)
        if head.startswith(b"SQLite format 3\x00"):
            return FileRead(str(path), "sqlite", tuple(_read_sqlite(path)), ())
        data = head + handle.read()
    text = data.decode("utf-8", errors="replace")
    if "\x00" in text:
        raise ImportProblem(f"{path}: binary data, not llama-bench output")
    return _read_text(text, str(path))


def _read_text(text: str, source: str) -> FileRead:
    stripped = text.lstrip()
    if re.search(r"INSERT\s+INTO\s+\"?\w+\"?\s*\(", text, re.IGNORECASE):
        rows, problems = _read_sql(text, source)
        return FileRead(source, "sql", tuple(rows), tuple(problems))
    if stripped.startswith("["):
        try:
            return FileRead(source, "json", tuple(_read_json_array(text, source)), ())
        except ImportProblem:
            pass  # a truncated array: read what lines parse below
    rows, events = _read_jsonl(text, source)
    if events and not rows:
        return FileRead(source, "journal", (), (), tuple(events))
    if rows:
        return FileRead(source, "jsonl", tuple(rows), ())
    if stripped.startswith("{"):
        try:
            return FileRead(source, "json", tuple(_read_json_array(text, source)), ())
        except ImportProblem:
            pass
    if "|" in text:
        md_rows, problems = _read_markdown(text, source)
        if md_rows or problems:
            return FileRead(source, "markdown", tuple(md_rows), tuple(problems))
    first = stripped.splitlines()[0] if stripped else ""
    if "," in first:
        try:
            return FileRead(source, "csv", tuple(_read_csv(text, source)), ())
        except (ImportProblem, csv.Error):
            pass
    raise ImportProblem(f"{Path(source).name}: no llama-bench results found")


# ---------------------------------------------------------------------------------------
# Many files -> builds


def _identity(row: _Row) -> tuple:
    raw = row.raw
    number = raw.get("build_number")
    try:
        number = int(number) if number not in (None, "") else None
    except (TypeError, ValueError):
        number = None
    commit = str(raw.get("build_commit") or "") or None
    return (row.label, str(raw.get("backends") or ""), number, commit, normalize_gpu(raw.get("gpu_info")))


def _cell(row: _Row) -> tuple:
    raw = row.raw
    model = str(raw.get("model_filename") or raw.get("model_type") or "").rsplit("/", 1)[-1]
    return (model, raw.get("n_prompt"), raw.get("n_gen"), raw.get("n_depth"), raw.get("n_cpu_moe"),
            raw.get("n_gpu_layers"), raw.get("type_k"), raw.get("type_v"), raw.get("flash_attn"),
            raw.get("n_ubatch"), raw.get("n_batch"), raw.get("n_threads"), raw.get("use_mmap"))


def _file_variants(stems: Sequence[str]) -> dict[str, str]:
    """The part of each file name that differs from the others ('default-hip', 'default-rocwmma')."""
    split = {s: [t for t in re.split(r"([._\-]+)", s)] for s in stems}
    tokens = {s: [t for t in v if t and not re.fullmatch(r"[._\-]+", t)] for s, v in split.items()}
    if len(stems) < 2:
        return {s: s for s in stems}
    prefix = 0
    lists = list(tokens.values())
    while all(len(t) > prefix for t in lists) and len({t[prefix] for t in lists}) == 1:
        prefix += 1
    suffix = 0
    while all(len(t) > prefix + suffix for t in lists) and len({t[-1 - suffix] for t in lists}) == 1:
        suffix += 1
    out = {}
    for s, t in tokens.items():
        middle = t[prefix:len(t) - suffix] if suffix else t[prefix:]
        out[s] = "-".join(middle) or s
    return out


def import_files(paths: Iterable[str | Path], *, strict: bool = False) -> ImportedRun:
    """Read llama-bench outputs and group their rows into builds.

    Files that hold no results are reported in ``problems`` (one line each); with
    ``strict`` the first such file raises ImportProblem instead.
    """
    rows: list[_Row] = []
    problems: list[str] = []
    files: list[str] = []
    events: list[Any] = []
    for path in paths:
        try:
            read = read_file(path)
        except ImportProblem as problem:
            if strict:
                raise
            problems.append(str(problem))
            continue
        files.append(str(path))
        rows.extend(read.rows)
        problems.extend(read.problems)
        events.extend(read.events)
        if not read.rows and not read.events:
            message = f"{Path(path).name}: no llama-bench results found"
            if strict:
                raise ImportProblem(message)
            problems.append(message)
    return group_rows(rows, problems=problems, files=files, events=events)


def group_rows(rows: Sequence[_Row], *, problems: Sequence[str] = (), files: Sequence[str] = (),
               events: Sequence[Any] = ()) -> ImportedRun:
    # Same build identity from different files measuring the same cells: tell them apart by file.
    sources_by_identity: dict[tuple, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for row in rows:
        sources_by_identity[_identity(row)][row.source].add(_cell(row))
    variant_of: dict[tuple[tuple, str], str] = {}
    for identity, per_source in sources_by_identity.items():
        if len(per_source) < 2:
            continue
        overlapping = {s for s in per_source for o in per_source
                       if o != s and per_source[s] & per_source[o]}
        if not overlapping:
            continue
        stems = {s: Path(s).stem for s in overlapping}
        by_model: dict[str, list[str]] = defaultdict(list)
        for s in overlapping:
            models = {c[0] for c in per_source[s]}
            by_model[",".join(sorted(models))].append(s)
        for group in by_model.values():
            variants = _file_variants([stems[s] for s in group])
            for s in group:
                variant_of[(identity, s)] = variants[stems[s]]

    keyed: dict[tuple, list[_Row]] = defaultdict(list)
    for row in rows:
        identity = _identity(row)
        keyed[identity + (variant_of.get((identity, row.source)),)].append(row)

    gpu_display: dict[str, str] = {}
    for row in rows:
        original = str(row.raw.get("gpu_info") or "")
        if original:
            gpu_display.setdefault(normalize_gpu(original), re.sub(r"\s*\(.*?\)", "", original).strip())
    names = _name_builds(list(keyed), gpu_display)
    builds, results, failures = [], {}, {}
    for key, group in keyed.items():
        label, backend, number, commit, gpu_norm, variant = key
        name = names[key]
        gpu = next((str(r.raw.get("gpu_info")) for r in group if r.raw.get("gpu_info")), None)
        builds.append(ImportedBuild(name=name, backend=_canonical_backend(backend) if backend else (label or ""),
                                    build_number=number, commit=commit, gpu=gpu,
                                    sources=tuple(dict.fromkeys(r.source for r in group))))
        good, bad = [], []
        for row in group:
            if row.failed:
                bad.append(PointFailed(build=name, point=_point(row.raw), reason=row.reason or "no result"))
            else:
                good.append(BenchResult.from_llama_bench(row.raw))
        results[name] = tuple(good)
        if bad:
            failures[name] = tuple(bad)
    return ImportedRun(builds=tuple(builds), results=results, failures=failures,
                       problems=tuple(problems), files=tuple(files), journal=tuple(events))


def _point(raw: Mapping[str, Any]) -> TestPoint:
    def n(key: str) -> int:
        v = _number(raw.get(key))
        return int(v) if not math.isnan(v) else 0
    return TestPoint(n("n_prompt"), n("n_gen"), n("n_depth"))


def _name_builds(keys: Sequence[tuple], gpu_display: Mapping[str, str]) -> dict[tuple, str]:
    """Short, distinct names: the label or backend, then build number, GPU and file variant as needed."""
    def base(key: tuple) -> str:
        label, backend = key[0], key[1]
        return label or _canonical_backend(backend) or "unknown build"

    names = {k: base(k) for k in keys}

    def clashes() -> dict[str, list[tuple]]:
        groups: dict[str, list[tuple]] = defaultdict(list)
        for k, v in names.items():
            groups[v].append(k)
        return {v: ks for v, ks in groups.items() if len(ks) > 1}

    for extend in (
        lambda k: f"b{k[2]}" if k[2] else (k[3] or ""),
        lambda k: f"@ {gpu_display.get(k[4], k[4])}" if k[4] else "",
        lambda k: k[5] or "",
        lambda k: k[3] or "",
    ):
        for ks in clashes().values():
            parts = {k: extend(k) for k in ks}
            if len(set(parts.values())) > 1:
                for k in ks:  # only the builds whose part differs gain it
                    if parts[k]:
                        names[k] = f"{names[k]} {parts[k]}"
    for v, ks in clashes().items():
        for i, k in enumerate(ks[1:], 2):
            names[k] = f"{v} #{i}"
    return names

"""``-o md`` tables as printed, pasted into documents, or mixed into a raw log.

Between and inside tables a log holds device banners, ``--progress`` lines, warnings, the
command line and crashes: banners name the GPU of the following tables, progress lines and
``-r`` give the repetition count, every other line is skipped without losing a row. A
``build: <commit> (<number>)`` line belongs to the table just before it (llama-bench prints
it after the table) or, when that one has its own, to the next table in the same section;
a table never takes a build line from another section. Columns llama-bench does not write
(a hand-added ``rocm`` version) are settings of the row; columns it does not print are
unknown, never defaults.
"""

from __future__ import annotations

import itertools
import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.journal.sweep import TestPoint
from profiles.importers.rows import (
    EXTRA_KEY,
    MIN_REPS_KEY,
    REPS_KEY,
    RESOLUTION_KEY,
    SECTION_KEY,
    SETTING_KEYS,
    SUMMARY_KEY,
    Row,
    number,
    params,
    parse_speed,
    parse_test_name,
    size_bytes,
)

_VULKAN_GPU = re.compile(r"ggml_vulkan:\s*0\s*=\s*(.+?)\s*(?:\(|\|)")
_DEVICE0 = re.compile(r"^\s*Device 0:\s*([^,]+),")
_GENERIC_GPU = re.compile(r"^\s*(?:Vulkan|CUDA|ROCm|HIP)0:\s*(.+?)\s*(?:\(|\||$)")
_FOUND = re.compile(r"found \d+ (ROCm|CUDA|MUSA|SYCL) devices", re.IGNORECASE)
_BUILD_LINE = re.compile(r"^\s*build:\s*([0-9a-fA-F]+|unknown)\s*\((\d+)\)")
_PROGRESS = re.compile(r"llama-bench: benchmark \d+/\d+: .*?run \d+/(\d+)")
# llama-bench's short column names (its get_field_display_name), older ones, and every field
# name it prints as is (n_cpu_moe, type_k, devices, ...): all settings of the row.
_COLUMNS = {"ngl": "n_gpu_layers", "threads": "n_threads", "fa": "flash_attn", "mmap": "use_mmap",
            "dev": "devices", "sm": "split_mode", "ts": "tensor_split", "mg": "main_gpu",
            "nkvo": "no_kv_offload", "embd": "embeddings", "lm": "load_mode", "ot": "tensor_buft_overrides",
            "fitt": "fit_target", "fitc": "fit_min_ctx", "nopo": "no_op_offload", "noh": "no_host",
            "rpk": "repack", "dio": "use_direct_io", **{k: k for k in SETTING_KEYS}}
_TEXT_SETTINGS = {"type_k", "type_v", "devices", "split_mode", "tensor_split", "load_mode", "cpu_mask",
                  "tensor_buft_overrides", "lazy_mode"}
_KNOWN = {"model", "size", "params", "backend", "test", "t/s", "llama.cpp", "commit", "build"}


@dataclass
class _Table:
    section: str
    rows: list[Row] = field(default_factory=list)
    build: tuple[str, int] | None = None
    reps: int | None = None
    after: list[str] = field(default_factory=list)  # lines after its last row (a crash, if any)
    cut: Row | None = None  # its last row, cut mid-line
    open_rows: int = 0  # rows without a closing "|" that other rows followed


@dataclass
class _State:
    source: str
    section: str = ""
    banner_backend: str | None = None
    gpus: dict[str, str] = field(default_factory=dict)
    reps: int | None = None
    command_points: list[TestPoint] = field(default_factory=list)
    model: str = ""  # the model file the command line names (-m)
    command_settings: dict[str, Any] = field(default_factory=dict)  # its settings of one value
    headers: int = 0  # llama-bench table headers printed (a run that started)
    header: list[str] | None = None
    header_closed: bool = True  # the header row ends with "|": so must every whole row
    last_header: list[str] | None = None
    table: _Table | None = None
    watched: _Table | None = None  # the table whose run the next lines may show crashing
    held: tuple[list[str], int] | None = None  # a row without its closing "|", until the next line
    tables: list[_Table] = field(default_factory=list)
    pending_build: tuple[tuple[str, int], str] | None = None
    noise: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_markdown(text: str, source: str) -> tuple[list[Row], list[str], _State]:
    state = _State(source)
    for number_, line in enumerate(text.splitlines(), 1):
        if state.held is not None:
            _settle(state, line.strip().startswith("|"))
        _line(state, line, number_)
    if state.held is not None:
        _settle(state, False)
    _close(state)
    rows = [row for table in state.tables for row in table.rows]
    return rows, state.problems, state


def _line(state: _State, line: str, at: int) -> None:
    stripped = line.strip()
    if m := _BUILD_LINE.match(stripped):
        _build_line(state, (m.group(1), int(m.group(2))))
        return
    if not stripped.startswith("|"):
        glued = _glued(state, stripped)
        if glued is None:
            _noise(state, stripped)
            return
        _noise(state, stripped[:glued].strip())
        stripped = stripped[glued:]
    cells = _split_cells(stripped)
    lowered = [c.lower() for c in cells]
    if "test" in lowered and "t/s" in lowered:
        _close(state)
        state.watched = None
        state.header = state.last_header = lowered
        state.headers += 1
        state.header_closed = stripped.endswith("|")
        state.table = _Table(section=state.section, reps=state.reps)
        return
    if all(set(c) <= set("-: ") for c in cells):
        if state.header is None:
            state.last_header = None  # the separator under another kind of table's header
        return
    if not _in_table(state, cells):
        return
    assert state.header is not None and state.table is not None
    if len(cells) < len(state.header):
        _cut(state, cells, at)
    elif state.header_closed and not stripped.endswith("|"):
        state.held = (cells, at)  # cut, unless the table goes on (then only its "|" is missing)
    else:
        _add_row(state, cells, at)


def _settle(state: _State, table_goes_on: bool) -> None:
    assert state.held is not None
    cells, at = state.held
    state.held = None
    if table_goes_on or (state.table is not None and state.table.open_rows):
        if table_goes_on and state.table is not None:
            state.table.open_rows += 1  # this table's rows do without their closing "|"
        _add_row(state, cells, at)
    else:
        _cut(state, cells, at)


def _cut(state: _State, cells: list[str], at: int) -> None:
    assert state.table is not None
    state.problems.append(f"{Path(state.source).name}:{at}: cut table row skipped")
    state.table.cut = _cut_row(state, cells)
    state.watched = state.table


def _add_row(state: _State, cells: list[str], at: int) -> None:
    assert state.header is not None and state.table is not None
    row = _row(state, dict(zip(state.header, cells)), at)
    if row is not None:
        state.table.rows.append(row)
        state.table.after.clear()
        state.table.cut = None
        state.watched = state.table


def _glued(state: _State, stripped: str) -> int | None:
    """Where a table row starts that shares its line with text before it (stderr's warning
    without a newline: ``DEPRECATED: ... instead.| model | size |``), or None."""
    at = stripped.find("|")
    if at <= 0:
        return None
    cells = _split_cells(stripped[at:])
    lowered = [c.lower() for c in cells]
    if "test" in lowered and "t/s" in lowered:
        return at
    header = state.header or state.last_header
    if header is None or len(cells) != len(header) or not stripped.endswith("|"):
        return None
    return at if parse_test_name(cells[header.index("test")]) is not None else None


def _in_table(state: _State, cells: list[str]) -> bool:
    """A row belongs to the open table, or continues the last one when its header is not
    repeated (a second table pasted without one): same width, and a test name where the
    header had it. Two-column key/value tables (``| **RAM** | 126 GiB |``) never qualify."""
    if state.header is not None:
        return True
    header = state.last_header
    if header is None or len(cells) != len(header):
        return False
    if parse_test_name(cells[header.index("test")]) is None or math.isnan(parse_speed(cells[header.index("t/s")])[0]):
        return False
    state.header = header
    state.table = _Table(section=state.section, reps=state.reps)
    return True


def _cut_row(state: _State, cells: list[str]) -> Row | None:
    """The test a row cut mid-line was for, when its test cell made it to the page."""
    assert state.header is not None
    at = state.header.index("test")
    point = parse_test_name(cells[at]) if at < len(cells) - 1 else None
    if point is None:
        return None
    values = dict(zip(state.header, cells[:at + 1]))
    raw: dict[str, Any] = {"model_type": values.get("model", ""),
                           "backends": values.get("backend", "") or state.banner_backend or "",
                           "n_prompt": point.n_prompt, "n_gen": point.n_gen, "n_depth": point.depth,
                           "gpu_info": state.gpus.get("vulkan") or state.gpus.get("device") or ""}
    if state.section:
        raw[SECTION_KEY] = state.section
    _sizes_and_settings(raw, values)
    return Row(raw=raw, source=state.source, failed=True, reason="the table stops mid-row")


def _noise(state: _State, stripped: str) -> None:
    """A line that is not a table row: banner, progress, command, heading, or anything else."""
    if stripped.startswith("#"):
        _close(state)
        state.watched = None
        state.section = stripped.lstrip("#").strip()
        state.pending_build = None
        return
    if m := _VULKAN_GPU.search(stripped):
        state.gpus["vulkan"] = m.group(1)
        state.banner_backend = state.banner_backend or "Vulkan"
    elif m := _FOUND.search(stripped):
        state.banner_backend = {"rocm": "ROCm", "cuda": "CUDA"}.get(m.group(1).lower(), m.group(1))
    elif m := _DEVICE0.match(stripped) or _GENERIC_GPU.match(stripped):
        state.gpus["device"] = m.group(1).strip()
    if m := _PROGRESS.search(stripped):
        state.reps = int(m.group(1))
        if state.table is not None:
            state.table.reps = state.reps
    elif "llama-bench" in stripped and " -" in stripped:
        _command_line(state, stripped)
    if stripped:
        state.noise.append(stripped)
        if state.watched is not None:
            state.watched.after.append(stripped)


_TEST_FLAGS = {"-r": "r", "--repetitions": "r", "-p": "p", "--n-prompt": "p", "-n": "n", "--n-gen": "n",
               "-d": "d", "--n-depth": "d", "-pg": "pg"}
# Flags of one value that make the contender (several values, "1,2", make several contenders).
_SETTING_FLAGS = {"-ngl": "n_gpu_layers", "--n-gpu-layers": "n_gpu_layers", "-fa": "flash_attn",
                  "--flash-attn": "flash_attn", "-b": "n_batch", "--batch-size": "n_batch", "-ub": "n_ubatch",
                  "--ubatch-size": "n_ubatch", "-ctk": "type_k", "--cache-type-k": "type_k", "-ctv": "type_v",
                  "--cache-type-v": "type_v", "-ncmoe": "n_cpu_moe", "--n-cpu-moe": "n_cpu_moe",
                  "-t": "n_threads", "--threads": "n_threads", "-mmp": "use_mmap", "--mmap": "use_mmap",
                  "-sm": "split_mode", "--split-mode": "split_mode", "-mg": "main_gpu", "--main-gpu": "main_gpu",
                  "-nkvo": "no_kv_offload", "--no-kv-offload": "no_kv_offload", "-lm": "load_mode",
                  "--load-mode": "load_mode", "-dev": "devices", "--device": "devices", "-ts": "tensor_split",
                  "--tensor-split": "tensor_split", "-fitt": "fit_target", "--fit-target": "fit_target"}


def _command_line(state: _State, line: str) -> None:
    try:  # a Windows prompt's backslashes are path separators, not escapes
        words = line.split() if "\\" in line else shlex.split(line.lstrip("$> "))
    except ValueError:
        words = line.split()
    values: dict[str, list[int]] = {}
    settings: dict[str, Any] = {}
    for flag, value in itertools.pairwise(words):
        if flag in ("-m", "--model"):
            state.model = value.replace("\\", "/").rsplit("/", 1)[-1]
        elif flag in _TEST_FLAGS:
            values.setdefault(_TEST_FLAGS[flag], []).extend(int(v) for v in re.findall(r"\d+", value))
        elif flag in _SETTING_FLAGS and "," not in value:
            key = _SETTING_FLAGS[flag]
            n = number(value)
            settings[key] = value if key in _TEXT_SETTINGS or math.isnan(n) else int(n)
    if values.get("r"):
        state.reps = values["r"][0]
    depths = values.get("d") or [0]
    points = [TestPoint(p, 0, d) for p in values.get("p", [512]) if p for d in depths]
    points += [TestPoint(0, g, d) for g in values.get("n", [128]) if g for d in depths]
    pg = values.get("pg", [])
    points += [TestPoint(pg[i], pg[i + 1], d) for i in range(0, len(pg) - 1, 2) for d in depths]
    state.command_points = points
    state.command_settings = settings


def _build_line(state: _State, build: tuple[str, int]) -> None:
    state.watched = None  # llama-bench prints its build line last: that run ended
    table = state.table if state.table is not None and state.table.rows else None
    if table is None and state.tables and state.header is None and state.pending_build is None:
        table = state.tables[-1]
    if table is not None and table.build is None and table.section == state.section:
        table.build = build
        state.pending_build = None
    else:
        state.pending_build = (build, state.section)
    _close(state)


def _close(state: _State) -> None:
    table = state.table
    if table is not None and (table.rows or table.cut is not None):
        if table.build is None and state.pending_build and state.pending_build[1] == table.section:
            table.build = state.pending_build[0]
            state.pending_build = None
        state.tables.append(table)
    state.header, state.table = None, None


def _split_cells(line: str) -> list[str]:
    body = line.strip()
    body = body.removeprefix("|")
    body = body.removesuffix("|")
    return [c.strip() for c in body.split("|")]


def _row(state: _State, values: dict[str, str], at: int) -> Row | None:
    point = parse_test_name(values.get("test", ""))
    if point is None:
        state.problems.append(f"{Path(state.source).name}:{at}: unknown test name {values.get('test')!r}")
        return None
    speed, spread = parse_speed(values.get("t/s", ""))
    backend = values.get("backend", "") or state.banner_backend or ""
    first = backend.split(",")[0].split("(")[0].strip().lower()
    gpu = state.gpus.get("vulkan") if first == "vulkan" else state.gpus.get("device")
    raw: dict[str, Any] = {
        "model_type": values.get("model", ""), "backends": backend,
        "n_prompt": point.n_prompt, "n_gen": point.n_gen, "n_depth": point.depth,
        "avg_ts": speed, "stddev_ts": spread, "samples_ts": [],
        "gpu_info": gpu or state.gpus.get("vulkan") or state.gpus.get("device") or "",
    }
    if state.section:
        raw[SECTION_KEY] = state.section
    _sizes_and_settings(raw, values)
    failed = math.isnan(speed) or speed <= 0
    return Row(raw=raw, source=state.source, failed=failed,
               reason=f"table cell {values.get('t/s')!r}" if failed else "")


def _sizes_and_settings(raw: dict[str, Any], values: dict[str, str]) -> None:
    if (size := size_bytes(values.get("size", ""))) is not None:
        raw["model_size"] = size
    if (count := params(values.get("params", ""))) is not None:
        raw["model_n_params"] = count
    extra: dict[str, str] = {}
    for column, cell in values.items():
        if cell == "" or column in _KNOWN:
            continue
        key = _COLUMNS.get(column)
        if key is None:
            extra[column] = cell
        elif key in _TEXT_SETTINGS:
            raw[key] = cell
        else:
            n = number(cell)
            raw[key] = int(n) if not math.isnan(n) else cell
    for column in ("llama.cpp", "commit", "build"):
        if re.fullmatch(r"[0-9a-f]{6,40}", values.get(column, "")):
            raw["build_commit"] = values[column]
    if extra:
        raw[EXTRA_KEY] = extra


def finish_tables(state: _State) -> None:
    """Build lines, and what each table says about its repetitions, into its rows."""
    for table in state.tables:
        spread = any(r.raw.get("stddev_ts", 0) > 0 for r in table.rows if not r.failed)
        for row in table.rows:
            if table.build is not None:
                row.raw.setdefault("build_commit", table.build[0])
                row.raw.setdefault("build_number", table.build[1])
            if table.reps is not None:
                row.raw[REPS_KEY] = table.reps
            else:
                row.raw[SUMMARY_KEY] = True  # mean ± sd as printed: how many runs, unknown
            if table.reps is None and spread:
                # One -r for the whole table: a spread anywhere means 2+ repetitions everywhere.
                row.raw[MIN_REPS_KEY] = 2
            row.raw[RESOLUTION_KEY] = 0.01

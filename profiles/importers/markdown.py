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
from profiles.importers.failures import failure_in
from profiles.importers.rows import (
    EXTRA_KEY,
    MIN_REPS_KEY,
    REPS_KEY,
    RESOLUTION_KEY,
    SECTION_KEY,
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
_COLUMNS = {"ngl": "n_gpu_layers", "threads": "n_threads", "n_batch": "n_batch", "n_ubatch": "n_ubatch",
            "fa": "flash_attn", "n_cpu_moe": "n_cpu_moe", "mmap": "use_mmap", "type_k": "type_k",
            "type_v": "type_v", "dev": "devices", "sm": "split_mode", "ts": "tensor_split",
            "mg": "main_gpu", "nkvo": "no_kv_offload", "embd": "embeddings", "lm": "load_mode",
            "poll": "poll", "cpu_mask": "cpu_mask", "ot": "tensor_buft_overrides"}
_TEXT_SETTINGS = {"type_k", "type_v", "devices", "split_mode", "tensor_split", "load_mode", "cpu_mask",
                  "tensor_buft_overrides"}
_KNOWN = {"model", "size", "params", "backend", "test", "t/s", "llama.cpp", "commit", "build"}


@dataclass
class _Table:
    section: str
    rows: list[Row] = field(default_factory=list)
    build: tuple[str, int] | None = None
    reps: int | None = None


@dataclass
class _State:
    source: str
    section: str = ""
    banner_backend: str | None = None
    gpus: dict[str, str] = field(default_factory=dict)
    reps: int | None = None
    command_points: list[TestPoint] = field(default_factory=list)
    header: list[str] | None = None
    table: _Table | None = None
    tables: list[_Table] = field(default_factory=list)
    pending_build: tuple[tuple[str, int], str] | None = None
    noise: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_markdown(text: str, source: str) -> tuple[list[Row], list[str], _State]:
    state = _State(source)
    for number_, line in enumerate(text.splitlines(), 1):
        _line(state, line, number_)
    _close(state)
    rows = [row for table in state.tables for row in table.rows]
    return rows, state.problems, state


def _line(state: _State, line: str, at: int) -> None:
    stripped = line.strip()
    if m := _BUILD_LINE.match(stripped):
        _build_line(state, (m.group(1), int(m.group(2))))
        return
    if not stripped.startswith("|"):
        _noise(state, stripped)
        return
    cells = _split_cells(stripped)
    lowered = [c.lower() for c in cells]
    if "test" in lowered and "t/s" in lowered:
        _close(state)
        state.header = lowered
        state.table = _Table(section=state.section, reps=state.reps)
        return
    if state.header is None or all(set(c) <= set("-: ") for c in cells):
        return
    if len(cells) < len(state.header):
        state.problems.append(f"{Path(state.source).name}:{at}: cut table row skipped")
        return
    row = _row(state, dict(zip(state.header, cells)), at)
    if row is not None and state.table is not None:
        state.table.rows.append(row)


def _noise(state: _State, stripped: str) -> None:
    """A line that is not a table row: banner, progress, command, heading, or anything else."""
    if stripped.startswith("#"):
        _close(state)
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


def _command_line(state: _State, line: str) -> None:
    try:
        words = shlex.split(line.lstrip("$> "))
    except ValueError:
        words = line.split()
    values: dict[str, list[int]] = {}
    for flag, value in itertools.pairwise(words):
        if flag in ("-r", "--repetitions", "-p", "--n-prompt", "-n", "--n-gen", "-d", "--n-depth", "-pg"):
            values.setdefault(flag.lstrip("-")[0] if flag != "-pg" else "pg", []).extend(
                int(v) for v in re.findall(r"\d+", value))
    if values.get("r"):
        state.reps = values["r"][0]
    depths = values.get("d") or [0]
    points = [TestPoint(p, 0, d) for p in values.get("p", [512]) if p for d in depths]
    points += [TestPoint(0, g, d) for g in values.get("n", [128]) if g for d in depths]
    pg = values.get("pg", [])
    points += [TestPoint(pg[i], pg[i + 1], d) for i in range(0, len(pg) - 1, 2) for d in depths]
    state.command_points = points


def _build_line(state: _State, build: tuple[str, int]) -> None:
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
    if table is not None and table.rows:
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
            elif spread:
                # One -r for the whole table: a spread anywhere means 2+ repetitions everywhere.
                row.raw[MIN_REPS_KEY] = 2
            row.raw[RESOLUTION_KEY] = 0.01


def log_failure_rows(state: _State, results: list[Row]) -> list[Row]:
    """Failures a log records beyond its table rows (a crash, an abort, a wrapper's exit)."""
    failure = failure_in(state.noise)
    if failure is None:
        return []
    if results and failure.exit_code is None and not state.command_points:
        return []  # an error line among results that all arrived is not a failed run
    measured = {(r.raw["n_prompt"], r.raw["n_gen"], r.raw["n_depth"]) for r in results}
    missing = [p for p in state.command_points if (p.n_prompt, p.n_gen, p.depth) not in measured]
    if state.command_points and not missing:
        return []
    base: dict[str, Any] = {"backends": state.banner_backend or "",
            "gpu_info": state.gpus.get("vulkan") or state.gpus.get("device") or ""}
    if state.tables and state.tables[-1].build is not None:
        base["build_commit"], base["build_number"] = state.tables[-1].build
    out = []
    wanted: list[TestPoint | None] = list(missing) or [None]
    for p in wanted:
        raw = dict(base, n_prompt=p.n_prompt if p else 0, n_gen=p.n_gen if p else 0,
                   n_depth=p.depth if p else 0)
        out.append(Row(raw=raw, source=state.source, failed=True, reason=failure.reason,
                       exit_code=failure.exit_code, point_known=p is not None))
    return out

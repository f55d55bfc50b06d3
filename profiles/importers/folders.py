"""Many inputs at once: folders expanded, and each result counted once.

People publish a campaign as a folder: raw outputs per model and build, their stderr logs,
notes, and often the author's digest of the same runs (one published campaign's
``curve_summary.csv`` repeats every JSONL row under the toolbox's name). Reading every file
is right; counting a result twice is not: it would pool one measurement as two and decide
on doubled evidence. So a result that a richer file already holds is left out of the poorer
one, and the user is told how many.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from profiles.importers.rows import ImportProblem, Row

if TYPE_CHECKING:
    from profiles.importers import FileRead

MAX_FOLDER_FILES = 10_000  # more is a home folder given by mistake, not a campaign
# The fuller record of a result first: its own llama-bench output before a digest of it.
_RICHER_FIRST = {"journal": 0, "jsonl": 1, "json": 1, "sqlite": 1, "sql": 1, "csv": 2}
_NAMES_SHOWN = 4


def read_all(paths: Iterable[str | Path], read: Callable[[Path], FileRead], *, strict: bool = False
             ) -> tuple[list[FileRead], list[str]]:
    """Every given file, and every file below each given folder, read with ``read``; the
    reads that hold something, and one line for each problem.

    A file given by name that holds nothing is a problem of its own (raised with
    ``strict``); a folder's files that hold nothing (its README, stderr logs, notes) are
    named together in one line, and only a folder with no result at all is a problem.
    """
    reads: list[FileRead] = []
    problems: list[str] = []
    for given in map(Path, paths):
        if not given.is_dir():
            found = _read_one(given, read, strict, problems)
            reads += [found] if found is not None else []
            continue
        files = _files_below(given)
        if len(files) > MAX_FOLDER_FILES:
            problems.append(f"{given}: more than {MAX_FOLDER_FILES:,} files; give the folder of one campaign")
            continue
        held, empty = [], []
        for path in files:
            found = _read_one(path, read, False, [])
            if found is None:
                empty.append(path.name)
            else:
                held.append(found)
                problems.extend(found.problems)
        reads += held
        if not held:
            message = f"{given}: none of its {len(files)} files holds llama-bench results"
            if strict:
                raise ImportProblem(message)
            problems.append(message)
        elif empty:
            names = ", ".join(empty[:_NAMES_SHOWN]) + (", ..." if len(empty) > _NAMES_SHOWN else "")
            problems.append(f"{given.name}: {len(empty)} of {len(files)} files hold no llama-bench "
                            f"results ({names})")
    return reads, problems


def _read_one(path: Path, read: Callable[[Path], FileRead], strict: bool,
              problems: list[str]) -> FileRead | None:
    try:
        found = read(path)
    except ImportProblem as problem:
        if strict:
            raise
        problems.append(str(problem))
        return None
    if not found.rows and not found.events:
        message = f"{path.name}: no llama-bench results found"
        if strict:
            raise ImportProblem(message)
        problems.extend([*found.problems, message])
        return None
    problems.extend(found.problems)
    return found


def _files_below(folder: Path) -> list[Path]:
    """Regular files below ``folder`` in name order, hidden ones and links left out."""
    found: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root, n) for n in sorted(names)
                  if not n.startswith(".") and not os.path.islink(os.path.join(root, n))]
        if len(found) > MAX_FOLDER_FILES:
            break
    return found


def without_repeats(reads: Sequence[FileRead]) -> tuple[list[Row], list[str]]:
    """Every read's rows in their order, less the results a richer read already holds.

    A result is its test and its mean to six digits: two runs of llama-bench never agree so
    closely, a copy of one does. Repeats inside one file stay (a file appended to by several
    runs); failures always stay. Where a digest names a build its own way ("llama-rocm-7.14"
    for the raw files' "ROCm b10246"), the results both hold say which build it means, and
    the digest's other results take that build's name too: one build is one contender.
    """
    order = sorted(range(len(reads)), key=lambda i: _RICHER_FIRST.get(reads[i].format, 3))
    seen: dict[tuple[object, ...], Row] = {}
    kept: dict[int, list[Row]] = {}
    notes: list[str] = []
    for index in order:
        rows: list[Row] = []
        own: dict[tuple[object, ...], Row] = {}
        aliases: dict[tuple[object, ...], Row] = {}
        for row in reads[index].rows:
            key = _result_key(row)
            if key is not None and (same := seen.get(key)) is not None and _same_build(row, same):
                aliases.setdefault(_build_of(row), same)
                continue
            rows.append(row)
            if key is not None:
                own.setdefault(key, row)
        for row in rows:
            if (same := aliases.get(_build_of(row))) is not None:
                _name_as(row, same)
        seen.update({key: row for key, row in own.items() if key not in seen})
        kept[index] = rows
        if repeats := len(reads[index].rows) - len(rows):
            path = Path(reads[index].path)
            notes.append(f"{path.parent.name}/{path.name}: {repeats} of {len(reads[index].rows)} "
                         "results repeat those of other files read with it (counted once)")
    return [row for index in range(len(reads)) for row in kept[index]], notes


def _same_build(row: Row, other: Row) -> bool:
    """Nothing the two rows say tells their builds apart (a digest may leave fields out,
    or shorten the commit)."""
    a, b = str(row.raw.get("build_commit") or ""), str(other.raw.get("build_commit") or "")
    if a and b and not (a.startswith(b) or b.startswith(a)):
        return False
    numbers = row.raw.get("build_number"), other.raw.get("build_number")
    return None in numbers or numbers[0] == numbers[1]


def _build_of(row: Row) -> tuple[object, ...]:
    return (row.label, row.raw.get("build_commit"), row.raw.get("build_number"))


def _name_as(row: Row, same: Row) -> None:
    row.label = same.label
    for field in ("build_commit", "build_number", "backends"):
        if same.raw.get(field) is not None:
            row.raw[field] = same.raw[field]


def _result_key(row: Row) -> tuple[object, ...] | None:
    if row.failed:
        return None
    try:
        mean = float(row.raw.get("avg_ts") or math.nan)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(mean) or mean <= 0:
        return None
    raw = row.raw
    return (_model_name(raw), raw.get("n_prompt") or 0, raw.get("n_gen") or 0, raw.get("n_depth") or 0,
            f"{mean:.6g}")


def _model_name(raw: dict[str, object]) -> str:
    """The model as a digest and llama-bench's own output both name it: the file's name
    without its folder and ``.gguf`` ("Qwen3.6-27B-UD-Q8_K_XL")."""
    name = str(raw.get("model_filename") or raw.get("model") or raw.get("model_type") or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return name[:-5].lower() if name.lower().endswith(".gguf") else name.lower()

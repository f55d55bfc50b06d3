"""``-o sql`` (parsed as text, never executed) and compare-llama-bench's SQLite database.

The SQL reader walks the text once with compiled patterns anchored at the current offset,
so its time grows linearly with the dump's size.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from profiles.importers.pooling import RowPool
from profiles.importers.rows import ImportProblem, Row, coerce_record, row_from_record

_INSERT = re.compile(r"INSERT\s+INTO\s+\"?(\w+)\"?\s*\(([^)]*)\)\s*VALUES\s*\(", re.IGNORECASE)
_TOKEN = re.compile(r"[^,)\s]+")
_SPACE = re.compile(r"[\s,]*")
_QUOTED = re.compile(r"'((?:[^']|'')*)'")


def _sql_values(text: str, start: int) -> tuple[list[str | None], int]:
    """Read a VALUES tuple of quoted strings and bare numbers/NULL, from just after '('."""
    values: list[str | None] = []
    i, n = start, len(text)
    while True:
        m = _SPACE.match(text, i)
        i = m.end() if m else i
        if i >= n:
            raise ImportProblem("an SQL INSERT never ends (truncated file?)")
        ch = text[i]
        if ch == ")":
            return values, i + 1
        if ch == "'":
            q = _QUOTED.match(text, i)
            if q is None:
                raise ImportProblem("an SQL string never ends (truncated file?)")
            values.append(q.group(1).replace("''", "'"))
            i = q.end()
            continue
        t = _TOKEN.match(text, i)
        token = t.group(0) if t else ch
        values.append(None if token.upper() == "NULL" else token)
        i += len(token)


def read_sql(text: str, source: str) -> tuple[list[Row], list[str]]:
    pool = RowPool()
    problems: list[str] = []
    position = 0
    while True:
        m = _INSERT.search(text, position)
        if m is None:
            break
        columns = [c.strip().strip('"') for c in m.group(2).split(",")]
        try:
            values, position = _sql_values(text, m.end())
        except ImportProblem as problem:
            problems.append(f"{Path(source).name}: {problem}")
            break
        if len(values) != len(columns):
            problems.append(f"{Path(source).name}: an INSERT has {len(values)} values for {len(columns)} columns")
            continue
        record = coerce_record({k: ("" if v is None else v) for k, v in zip(columns, values)})
        pool.add(row_from_record(record, source))
    return pool.rows(), problems


def read_sqlite(path: Path) -> list[Row]:
    """compare-llama-bench's database: table ``llama_bench`` (older: ``test``), read-only."""
    try:
        # as_uri() escapes what a URI would read as syntax: spaces, "#", "?", "%" in folder names.
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise ImportProblem(f"cannot open the SQLite file ({error})") from None
    try:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        table = next((t for t in ("llama_bench", "test") if t in tables), None)
        if table is None:
            raise ImportProblem("SQLite file has no llama_bench or test table")
        cursor = connection.execute(f'SELECT * FROM "{table}"')  # table name from the fixed list above
        names = [d[0] for d in cursor.description]
        pool = RowPool()
        for values in cursor:
            record = coerce_record({k: (str(v) if v is not None else "") for k, v in zip(names, values)})
            pool.add(row_from_record(record, str(path)))
        return pool.rows()
    except sqlite3.Error as error:
        raise ImportProblem(f"SQLite file unreadable ({error})") from None
    finally:
        connection.close()

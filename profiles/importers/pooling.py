"""Rows that measured the same test with the same build and settings become one result.

A file (or several) can hold the same test many times: a resumed run that measured a point
again, a database that gathered every night's run. Those rows are one configuration, so
their repetitions are pooled; past ``MAX_POOLED_SAMPLES`` each run's mean counts as one
repetition instead (run-to-run spread is then the honest unit, and memory stays bounded by
the number of distinct tests, not of rows).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Hashable
from typing import Any

from profiles.importers.rows import REPS_KEY, Row

MAX_POOLED_SAMPLES = 100
# Fields that belong to one measurement rather than to the configuration measured.
MEASUREMENT_FIELDS = frozenset({"avg_ts", "stddev_ts", "avg_ns", "stddev_ns", "samples_ts",
                                "samples_ns", "test_time"})


class Pooled:
    __slots__ = ("count", "has_samples", "means", "row", "samples")

    def __init__(self, row: Row) -> None:
        self.row = row
        self.means = array("d")
        self.samples = array("d")
        self.has_samples = True
        self.count = 0

    def add(self, mean: float, samples: list[float]) -> None:
        self.count += 1
        self.means.append(mean)
        if samples and self.has_samples:
            self.samples.extend(samples)
        else:
            self.has_samples = False


def pool_key(row: Row) -> Hashable:
    raw = row.raw
    return (row.source, row.label, tuple(sorted((k, _hashable(v)) for k, v in raw.items()
                                                if k not in MEASUREMENT_FIELDS)))


def _hashable(value: Any) -> Hashable:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    return value  # type: ignore[no-any-return]


class RowPool:
    """Collects result rows by configuration and test; failures pass through unchanged."""

    def __init__(self) -> None:
        self._pooled: dict[Hashable, Pooled] = {}
        self._failures: list[Row] = []

    def add(self, row: Row, key: Hashable | None = None) -> None:
        if row.failed:
            self._failures.append(row)
            return
        key = pool_key(row) if key is None else key
        entry = self._pooled.get(key)
        if entry is None:
            entry = self._pooled[key] = Pooled(row)
        values = row.raw.get("samples_ts")
        mean = float(row.raw.get("avg_ts") or math.nan)
        entry.add(mean, [float(v) for v in values] if isinstance(values, list) else [])

    def pooled(self, key: Hashable) -> Pooled | None:
        """The configuration added with ``add`` under this key, to add more measurements of it
        (one look-up per row: a million-row file pays for each)."""
        return self._pooled.get(key)

    def rows(self) -> list[Row]:
        out = [_finish(entry) for entry in self._pooled.values()]
        return out + self._failures


def _finish(entry: Pooled) -> Row:
    row = entry.row
    if entry.count == 1:
        return row
    if entry.has_samples and len(entry.samples) <= MAX_POOLED_SAMPLES:
        values = list(entry.samples)
    else:
        values = [m for m in entry.means if math.isfinite(m)]
        row.raw[REPS_KEY] = len(values)
    row.raw["samples_ts"] = values
    row.raw.pop("samples_ns", None)
    mean = math.fsum(values) / len(values) if values else math.nan
    row.raw["avg_ts"] = mean
    if len(values) > 1:
        row.raw["stddev_ts"] = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    row.hints["pooled_rows"] = entry.count
    return row

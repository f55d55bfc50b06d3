"""``-o jsonl`` and ``-o json``, wrapper lines that carry the record under ``bench_raw``, and
llamaduel's own journal (events with a ``type`` tag)."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from typing import Any

from backends.journal.journal import event_from_json
from profiles.importers.rows import (
    ImportProblem,
    Row,
    looks_like_record,
    number,
    row_from_record,
)

# A wrapper's per-run telemetry (lhl's llama-cpp-bencher) as telemetry-summary keys.
_MIB = 1024 * 1024


def read_jsonl(text: str, source: str) -> tuple[list[Row], list[Any]]:
    rows: list[Row] = []
    events: list[Any] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            at = line.find('{"')  # a record after stderr's unterminated warning on its line
            if at <= 0:
                continue  # stderr banner lines, progress lines and other noise
            line = line[at:]
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if "type" in obj and "avg_ts" not in obj:
            with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
                events.append(event_from_json(obj))
            continue
        if "bench_raw" in obj:
            rows.append(unwrap(obj, source))
        elif looks_like_record(obj):
            rows.append(row_from_record(obj, source))
    return rows, events


def _wrapper_label(obj: Mapping[str, Any]) -> str | None:
    parts = [str(obj.get("build") or "").strip()]
    for key in ("hipblaslt", "fa", "b"):
        value = str(obj.get(key) or "").strip()
        if value:
            parts.append(f"hipblaslt={value}" if key == "hipblaslt" else value)
    return " ".join(p for p in parts if p) or None


def wrapper_telemetry(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """A telemetry summary from a wrapper's own fields, when it measured any.

    GPU memory on an APU lives in GTT as well as in the VRAM carve-out, so their peaks are
    added; a value the wrapper did not record stays unknown (None), never 0.
    """
    power = number(obj.get("avg_power_w"))
    vram, gtt = number(obj.get("vram_peak_mib")), number(obj.get("gtt_peak_mib"))
    temp = number(obj.get("max_temp_c"))
    if all(math.isnan(v) for v in (power, vram, gtt, temp)):
        return None
    memory = [v for v in (vram, gtt) if not math.isnan(v)]
    return {"peak_vram_bytes": int(sum(memory) * _MIB) if memory else None,
            "mean_power_w": None if math.isnan(power) else power,
            "max_edge_c": None if math.isnan(temp) else temp,
            "throttled": None}


def unwrap(obj: Mapping[str, Any], source: str) -> Row:
    """A wrapper line (``{"build": ..., "bench_raw": {...}}``): the label lives outside."""
    label = _wrapper_label(obj)
    raw = obj.get("bench_raw")
    telemetry = wrapper_telemetry(obj)
    if isinstance(raw, dict):
        row = row_from_record(raw, source, label)
    else:
        mode, value = str(obj.get("mode") or ""), number(obj.get("value"))
        n = int(value) if not math.isnan(value) else 0
        point = {"n_prompt": n if mode == "pp" else 0, "n_gen": n if mode == "tg" else 0,
                 "n_depth": 0}
        row = Row(raw=point, source=source, failed=True, label=label,
                  reason="the run produced no llama-bench record", point_known=bool(n))
    if telemetry is not None:
        row.hints["telemetry"] = telemetry
    return row


def _json_items(text: str) -> list[Any]:
    """Objects of a JSON array, as many as parse: a cut ``-o json`` file keeps its first ones."""
    decoder = json.JSONDecoder()
    i = text.index("[") + 1
    items: list[Any] = []
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


def read_json_array(text: str, source: str) -> list[Row]:
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
            rows.append(unwrap(item, source))
        elif looks_like_record(item):
            rows.append(row_from_record(item, source))
    return rows

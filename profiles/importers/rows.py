"""One llama-bench test as read from a file, and the small parsers every format shares."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backends.journal.sweep import TestPoint


class ImportProblem(Exception):
    """A file that cannot be read as benchmark results; the message is one line."""


@dataclass
class Row:
    """One llama-bench test read from a file: a result, or a failure of that test.

    ``label`` is a build name given outside the record (a wrapper's field, a table cell);
    ``machine`` a machine hint from beside the file (a host name). A failure whose test is
    not known has ``phase``/``depth`` hints at most and no sizes in ``raw``.
    """

    raw: dict[str, Any]
    source: str
    failed: bool = False
    reason: str = ""
    label: str | None = None
    machine: str = ""
    phase: str | None = None
    depth: int | None = None
    exit_code: int | None = None
    point_known: bool = True
    hints: dict[str, Any] = field(default_factory=dict)


# llama-bench's own parameter fields (the settings a contender can differ in).
SETTING_KEYS = ("n_batch", "n_ubatch", "n_threads", "cpu_mask", "cpu_strict", "poll", "type_k",
                "type_v", "n_gpu_layers", "n_cpu_moe", "split_mode", "main_gpu", "no_kv_offload",
                "flash_attn", "devices", "tensor_split", "tensor_buft_overrides", "use_mmap",
                "load_mode", "use_direct_io", "embeddings", "no_op_offload", "no_host", "repack",
                "defrag_thold", "fit_target", "fit_min_ctx", "lazy_mode")
INT_FIELDS = frozenset({"build_number", "n_batch", "n_ubatch", "n_threads", "poll", "model_size",
                        "model_n_params", "n_gpu_layers", "main_gpu", "n_prompt", "n_gen", "n_depth",
                        "avg_ns", "stddev_ns", "n_cpu_moe", "flash_attn", "no_op_offload",
                        "fit_target", "fit_min_ctx", "no_host", "repack"})
# Keys the importer adds beside llama-bench's own (never written by llama-bench).
REPS_KEY = "import_repetitions"          # a repetition count the file states (-r, progress lines)
MIN_REPS_KEY = "import_min_repetitions"  # a lower bound the file implies (a spread > 0 in its table)
RESOLUTION_KEY = "import_stddev_resolution"  # smallest spread the table can print (0.01 for "± 0.00")
EXTRA_KEY = "import_settings"            # settings from columns llama-bench does not write
SECTION_KEY = "import_section"           # the document heading a pasted table sits under
SUMMARY_KEY = "import_summary_only"      # a printed mean ± sd: no samples, repetition count not stated


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


def number(text: Any) -> float:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if text is None:
        return math.nan
    cleaned = str(text).replace("*", "").replace(",", "").strip()
    try:
        return float(cleaned)
    except ValueError:
        return math.nan


def int_or_none(value: Any) -> int | None:
    n = number(value)
    return int(n) if math.isfinite(n) else None


_NUMBER = r"(?:[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)"
# "±" as printed, and as it arrives after an encoding loss: "+", "+/-", "+-", "Â±", "�", "?".
_PLUS_MINUS = r"(?:±|Â±|\+/-|\+-|\+|�|\?)"
_SPEED = re.compile(rf"^\s*\**\s*({_NUMBER})\s*\**\s*(?:{_PLUS_MINUS}\s*\**\s*({_NUMBER})\s*\**)?\s*$",
                    re.IGNORECASE)


def parse_speed(cell: str) -> tuple[float, float]:
    """``1084.19 ± 2.41`` -> (1084.19, 2.41), also with ``±`` lost to ``+``, ``Â±`` or ``�``;
    ``N/A``, ``nan`` or junk -> (nan, nan)."""
    m = _SPEED.match(cell)
    if not m:
        return math.nan, math.nan
    return number(m.group(1)), number(m.group(2)) if m.group(2) else math.nan


_SIZE_UNITS = {"b": 1.0, "kib": 1024.0, "mib": 1024.0 ** 2, "gib": 1024.0 ** 3, "tib": 1024.0 ** 4,
               "kb": 1e3, "mb": 1e6, "gb": 1e9}
_PARAM_UNITS = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def size_bytes(text: str) -> int | None:
    m = re.match(r"\s*([0-9.]+)\s*([KMGT]?i?B)\s*$", text, re.IGNORECASE)
    if not m:
        return None
    return int(float(m.group(1)) * _SIZE_UNITS.get(m.group(2).lower(), 1.0))


def params(text: str) -> int | None:
    m = re.match(r"\s*([0-9.]+)\s*([KMBT]?)\s*$", text, re.IGNORECASE)
    if not m:
        return None
    return int(float(m.group(1)) * _PARAM_UNITS[m.group(2).lower()])


def samples(value: Any) -> list[float]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [v for v in re.split(r"[\s,;\[\]]+", value) if v]
    if not isinstance(value, (list, tuple)):
        return []
    out = [number(v) for v in value]
    return [v for v in out if not math.isnan(v)]


def coerce_record(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a CSV/SQL row (all strings) into llama-bench's JSON types."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key is None:
            continue
        key = str(key).strip()
        if isinstance(value, str):
            v = value.strip()
            if key in INT_FIELDS:
                n = number(v)
                value = int(n) if not math.isnan(n) else v
            elif key in ("avg_ts", "stddev_ts"):
                value = number(v)
            elif key in ("samples_ts", "samples_ns"):
                value = samples(v)
            else:
                value = v
        out[key] = value
    return out


def record_failed(raw: Mapping[str, Any]) -> bool:
    value = number(raw.get("avg_ts"))
    return math.isnan(value) or value <= 0


def row_from_record(raw: Mapping[str, Any], source: str, label: str | None = None) -> Row:
    record = dict(raw)
    failed = record_failed(record)
    return Row(raw=record, source=source, failed=failed,
               reason="llama-bench wrote no speed (null or NaN)" if failed else "", label=label)


def looks_like_record(obj: Any) -> bool:
    return isinstance(obj, dict) and ("avg_ts" in obj or "samples_ts" in obj) and (
        "n_prompt" in obj or "n_gen" in obj)


_BACKENDS = {"cuda": "CUDA", "rocm": "ROCm", "hip": "ROCm", "vulkan": "Vulkan", "metal": "Metal",
             "cpu": "CPU", "sycl": "SYCL", "opencl": "OpenCL", "blas": "BLAS", "rpc": "RPC"}


def canonical_backend(name: str) -> str:
    return ",".join(_BACKENDS.get(part.strip().lower(), part.strip()) for part in name.split(","))


def normalize_gpu(name: Any) -> str:
    text = str(name or "").lower()
    text = re.sub(r"\(.*?\)", " ", text)
    for word in ("amd", "nvidia", "graphics", "geforce", "series"):
        text = re.sub(rf"\b{word}\b", " ", text)
    return " ".join(text.split())


def point_of(raw: Mapping[str, Any]) -> TestPoint:
    def n(key: str) -> int:
        v = number(raw.get(key))
        return int(v) if not math.isnan(v) else 0
    return TestPoint(n("n_prompt"), n("n_gen"), n("n_depth"))

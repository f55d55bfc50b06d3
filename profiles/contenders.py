"""Who the contenders are: a build and the settings it ran with.

Results are grouped by build (backend, build number, commit, device as the run or the
importer named it) and, within a build, by every llama-bench parameter whose value differs
between rows measuring the same test: ``n_ubatch``, ``type_k``, ``flash_attn``, ``devices``...
Two configurations are never pooled; their labels carry the differing settings
(``ROCm b6077 ub=2048``, ``Vulkan fa off``). A llama-bench column a file leaves out holds
llama-bench's default (its markdown prints only the columns that differ from it), so a
label names that default (``ctk=f16``, ``fitt default``), never ``?``. Settings a file does
not state never appear as "best settings".
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from backends.journal.sweep import BenchResult, TestPoint
from backends.json_types import JsonValue
from profiles.outcome import Contender, Setting
from profiles.records import ModelFacts, ProfileResult

SETTING_KEYS = ("n_batch", "n_ubatch", "n_threads", "cpu_mask", "cpu_strict", "poll", "type_k",
                "type_v", "n_gpu_layers", "n_cpu_moe", "split_mode", "main_gpu", "no_kv_offload",
                "flash_attn", "devices", "tensor_split", "tensor_buft_overrides", "use_mmap",
                "load_mode", "use_direct_io", "embeddings", "no_op_offload", "no_host", "repack",
                "defrag_thold", "fit_target", "fit_min_ctx", "lazy_mode")
_SHORT = {"n_batch": "b", "n_ubatch": "ub", "n_threads": "t", "type_k": "ctk", "type_v": "ctv",
          "n_gpu_layers": "ngl", "n_cpu_moe": "ncmoe", "split_mode": "sm", "main_gpu": "mg",
          "no_kv_offload": "nkvo", "devices": "dev", "tensor_split": "ts", "use_mmap": "mmap",
          "load_mode": "lm", "tensor_buft_overrides": "ot", "cpu_mask": "C", "no_op_offload": "nopo",
          "fit_target": "fitt", "fit_min_ctx": "fitc", "no_host": "noh"}
# llama-bench's defaults where every version agrees; other columns' defaults changed over
# versions (-ngl 99 -> -1, -fa 0 -> auto) and read "default".
LLAMA_BENCH_DEFAULTS = {"n_batch": "2048", "n_ubatch": "512", "type_k": "f16", "type_v": "f16",
                        "n_cpu_moe": "0", "main_gpu": "0", "split_mode": "layer", "no_kv_offload": "0",
                        "embeddings": "0", "cpu_strict": "0", "poll": "50", "cpu_mask": "0x0",
                        "no_op_offload": "0", "no_host": "0"}
EXTRA_KEY = "import_settings"
REPS_KEY = "import_repetitions"
MIN_REPS_KEY = "import_min_repetitions"
RESOLUTION_KEY = "import_stddev_resolution"
# Architectures llama.cpp runs as mixture-of-experts, as they appear in model_type strings.
_MOE_WORDS = ("moe", "gpt-oss", "mixtral", "deepseek2", "deepseek3", "llama4", "dbrx", "grok",
              "arctic", "jamba", "olmoe", "phimoe", "granitemoe", "hunyuan-moe", "bailingmoe",
              "ernie4_5-moe", "glm4moe", "dots1", "minimax", "kimi", "17bx16e")
_MOE_SIZE = re.compile(r"\d+x\d+(\.\d+)?[BMK]\b|\d+(\.\d+)?B[.-]A\d+(\.\d+)?B", re.IGNORECASE)


# A measure's place among a contender's: (model, test point).
PointKey = tuple[str, TestPoint]


@dataclass(frozen=True)
class Measure:
    """One contender at one test point: its repetitions, or what the file says of them."""

    contender: str
    model: str
    point: TestPoint
    workload: str  # 'dense' | 'moe' | 'split'
    values: tuple[float, ...]
    mean: float
    sd: float
    n: int | None  # repetitions the data states (samples, -r, progress lines); None: unknown
    n_min: int  # the fewest repetitions the data allows (2 where a spread is printed)
    resolution: float  # smallest spread the source can print (0 when exact)
    telemetry: tuple[Mapping[str, JsonValue], ...] = ()
    known: tuple[tuple[str, Setting], ...] = ()  # the llama-bench settings the point ran with

    @property
    def context(self) -> int:
        return context_of(self.point)


def context_of(point: TestPoint) -> int:
    """Tokens in the KV cache by the end of the test: depth plus what the test adds."""
    return point.depth + point.n_prompt + point.n_gen


@lru_cache(maxsize=4096)
def is_moe_model_type(model_type: str) -> bool:
    text = model_type.lower()
    return any(word in text for word in _MOE_WORDS) or bool(_MOE_SIZE.search(model_type))


def model_key(raw: Mapping[str, JsonValue]) -> str:
    filename = str(raw.get("model_filename") or "").replace("\\", "/").rsplit("/", 1)[-1]
    return filename or str(raw.get("model_type") or "model")


def backend_family(raw: Mapping[str, JsonValue], fallback: str) -> str:
    """The backend a contender runs on: its device when named (``ROCm0``), else the build's."""
    devices = str(raw.get("devices") or "")
    if devices and devices.lower() not in ("auto", "none", "-"):
        first = re.split(r"[,/]", devices)[0]
        name = re.sub(r"\d+$", "", first.strip())
        return {"hip": "ROCm", "rocm": "ROCm", "vulkan": "Vulkan", "cuda": "CUDA", "cpu": "CPU"}.get(
            name.lower(), name or fallback)
    backends = [b.strip() for b in str(raw.get("backends") or "").split(",") if b.strip()]
    useful = [b for b in backends if b.upper() not in ("RPC", "BLAS")] or backends
    return useful[0] if useful else fallback


def value_text(key: str, value: object) -> str:
    if key == "flash_attn":
        return {"1": "on", "True": "on", "true": "on", "0": "off", "False": "off", "false": "off",
                "-1": "auto"}.get(str(value), str(value))
    return str(value)


def _settings(raw: Mapping[str, JsonValue]) -> dict[str, str]:
    out = {k: value_text(k, raw[k]) for k in SETTING_KEYS
           if k in raw and isinstance(raw[k], (int, float, str, bool))}
    extra = raw.get(EXTRA_KEY)
    if isinstance(extra, Mapping):
        out.update({str(k): str(v) for k, v in extra.items()})
    return out


def default_value(key: str) -> str:
    """What a setting absent from a file was: llama-bench's default for its column, or, for a
    column an author added, that the file does not state it."""
    if key in SETTING_KEYS:
        return LLAMA_BENCH_DEFAULTS.get(key, "default")
    return "unstated"


def setting_label(key: str, value: str) -> str:
    short = _SHORT.get(key, key)
    if key == "flash_attn":
        return f"fa {value}"
    if key == "devices":
        return value
    return f"{short}={value}" if key in _SHORT else f"{short} {value}"


def split_keys(items: Sequence[tuple[str, str, TestPoint, dict[str, str]]]) -> dict[str, tuple[str, ...]]:
    """Per build, the settings whose values differ between rows measuring the same test."""
    seen: dict[tuple[str, str, TestPoint], list[dict[str, str]]] = defaultdict(list)
    for build, model, point, settings in items:
        seen[(build, model, point)].append(settings)
    keys: dict[str, set[str]] = defaultdict(set)
    for (build, _, _), variants in seen.items():
        if len(variants) < 2:
            continue
        names = set().union(*(v.keys() for v in variants))
        for name in names:
            if len({v.get(name, default_value(name)) for v in variants}) > 1:
                keys[build].add(name)
    return {b: tuple(dict.fromkeys(k for k in (*SETTING_KEYS, *sorted(ks)) if k in ks)) for b, ks in keys.items()}


def contender_label(build: str, keys: Sequence[str], settings: Mapping[str, str]) -> str:
    parts = [build]
    for key in keys:
        value = settings.get(key, default_value(key))
        if key == "devices" and key in settings:
            parts = [value, f"({build})"] if value.lower() not in build.lower() else parts
            continue
        parts.append(setting_label(key, value))
    return " ".join(parts)


def _workload(raw: Mapping[str, JsonValue], model: str, facts: ModelFacts | None) -> str:
    ngl = _int(raw.get("n_gpu_layers"))
    ncmoe = _int(raw.get("n_cpu_moe")) or 0
    layers = facts.layers if facts is not None else None
    if ncmoe > 0 or ngl == 0 or (ngl is not None and ngl > 0 and layers and ngl < layers):
        return "split"
    moe = facts.is_moe if facts is not None and facts.is_moe is not None else None
    if moe is None:
        moe = is_moe_model_type(str(raw.get("model_type") or "")) or is_moe_model_type(str(model))
    return "moe" if moe else "dense"


def _int(value: object) -> int | None:
    if not isinstance(value, (str, int, float)):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return int(number) if math.isfinite(number) else None


def _usable(result: BenchResult) -> bool:
    return (math.isfinite(result.avg_ts) and result.avg_ts > 0) or bool(result.samples_ts)


@dataclass
class _Pool:
    results: list[BenchResult] = field(default_factory=list)
    telemetry: list[Mapping[str, JsonValue]] = field(default_factory=list)


def _measure(label: str, model: str, point: TestPoint, workload: str, pool: _Pool) -> Measure:
    values = [v for r in pool.results for v in r.samples_ts if v > 0 and math.isfinite(v)]
    first = pool.results[0]
    stated = _int(first.raw.get(REPS_KEY))
    if len(pool.results) > 1 and values:
        mean = math.fsum(values) / len(values)
    else:
        mean = first.avg_ts if math.isfinite(first.avg_ts) and first.avg_ts > 0 else (
            math.fsum(values) / len(values) if values else math.nan)
    sd = first.stddev_ts if math.isfinite(first.stddev_ts) else 0.0
    n: int | None
    if values:
        n = n_min = len(values)
    else:
        n = stated
        n_min = stated or (_int(first.raw.get(MIN_REPS_KEY)) or (2 if sd > 0 else 1))
    resolution = float(first.raw.get(RESOLUTION_KEY) or 0.0)
    return Measure(contender=label, model=model, point=point, workload=workload, values=tuple(values),
                   mean=mean, sd=sd, n=n, n_min=n_min, resolution=resolution,
                   telemetry=tuple(pool.telemetry), known=_known(first.raw))


@dataclass
class _Info:
    """A contender as its rows name it, and how often each set of settings ran."""

    build: str
    settings: dict[str, str]
    backend: str
    known: Counter[tuple[tuple[str, Setting], ...]] = field(default_factory=Counter)


@dataclass(frozen=True)
class Field:
    contenders: tuple[Contender, ...]
    measures: tuple[Measure, ...]
    contender_of_build: Mapping[str, tuple[str, ...]]


def build_field(results: Iterable[ProfileResult], facts: ModelFacts | None) -> Field:
    """Contenders and their measures from a run's results."""
    rows = []
    for entry in results:
        r = entry.result
        if not _usable(r):
            continue
        raw = r.raw
        rows.append((entry, model_key(raw), _settings(raw)))
    keys = split_keys([(e.build, m, e.result.point, s) for e, m, s in rows])
    pools: dict[tuple[str, str, TestPoint, str], _Pool] = defaultdict(_Pool)
    info: dict[str, _Info] = {}
    for entry, model, settings in rows:
        build_keys = keys.get(entry.build, ())
        label = contender_label(entry.build, build_keys, settings)
        workload = _workload(entry.result.raw, model, facts)
        pool = pools[(label, model, entry.result.point, workload)]
        pool.results.append(entry.result)
        if entry.telemetry:
            pool.telemetry.append(entry.telemetry)
        slot = info.get(label)
        if slot is None:
            stated = {k: settings.get(k, default_value(k)) for k in build_keys}
            slot = info[label] = _Info(entry.build, stated, backend_family(entry.result.raw, entry.build))
        slot.known[_known(entry.result.raw)] += 1
    measures = tuple(_measure(label, model, point, workload, pool)
                     for (label, model, point, workload), pool in pools.items())
    contenders = tuple(Contender(label=label, build=d.build, backend=d.backend, settings=d.settings,
                                 known_settings=_most_common(d.known)) for label, d in info.items())
    by_build: dict[str, list[str]] = defaultdict(list)
    for c in contenders:
        by_build[c.build].append(c.label)
    return Field(contenders=contenders, measures=measures,
                 contender_of_build={b: tuple(ls) for b, ls in by_build.items()})


def _known(raw: Mapping[str, JsonValue]) -> tuple[tuple[str, Setting], ...]:
    return tuple((k, v) for k in SETTING_KEYS if isinstance(v := raw.get(k), (int, float, str, bool)))


def settings_of(measures: Iterable[Measure]) -> dict[str, Setting]:
    """A contender's settings over some of its points (a class, a model): each one's most
    common value there."""
    return _most_common(Counter(m.known for m in measures))


def _most_common(counts: Counter[tuple[tuple[str, Setting], ...]]) -> dict[str, Setting]:
    """Each setting's most common value over the contender's results."""
    tally: Counter[tuple[str, Setting]] = Counter()
    for settings, n in counts.items():
        for item in settings:
            tally[item] += n
    best: dict[str, tuple[int, Setting]] = {}
    for (key, value), n in tally.items():
        if key not in best or n > best[key][0]:
            best[key] = (n, value)
    return {k: v for k, (_, v) in best.items()}

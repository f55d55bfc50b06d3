"""Probing a build (cached by binary, libraries and device visibility)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from backends.builds.linked import backends_without_device, gpu_backends_built, needed_libraries
from backends.builds.model import BENCH, CACHE_VERSION, PROBE_TIMEOUT_S, VISIBILITY_VARIABLES, BuildInfo, Device
from backends.builds.parse import (
    _backend_from_libraries,
    backend_from_devices,
    parse_choices,
    parse_compiler,
    parse_devices,
    parse_flags,
    parse_version,
)
from backends.builds.run import LOCAL_PROBE, LocalProbeHost, ProbeHost, _find_completion, _last_line, _tool, find_bench
from backends.journal import codec

# --- cache ---------------------------------------------------------------------------------

_memory_cache: dict[str, dict[str, object]] = {}
_cache_lock = threading.Lock()


def default_cache_path() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("llamaduel")) / "probes.json"


def _cache_key(bench: Path) -> str | None:
    try:
        stat = bench.stat()
    except OSError:
        return None
    # Shared-library builds can change without relinking llama-bench.
    libraries = [p for p in bench.parent.glob("lib*.so*") if p.is_file()]
    newest_library = max((p.stat().st_mtime_ns for p in libraries), default=0)
    visibility = ",".join(f"{v}={os.environ.get(v, '')}" for v in VISIBILITY_VARIABLES
                          if v in os.environ)
    return (f"v{CACHE_VERSION}|{bench.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|"
            f"{newest_library}|{visibility}")


def _load_disk_cache(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_disk_cache(path: Path, key: str, record: dict[str, object]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _load_disk_cache(path)
        data[key] = record
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(temporary, path)
    except OSError:
        pass  # a cache that cannot be written only costs time


def clear_memory_cache() -> None:
    with _cache_lock:
        _memory_cache.clear()


# --- probing -------------------------------------------------------------------------------

GENERIC_FOLDERS = {"bin", "cmake", "release", "debug", "relwithdebinfo", "build"}


def _default_name(folder: Path) -> str:
    """A short name from the folder: ``~/llama.cpp/build-rocm/bin`` -> ``rocm``,
    ``~/llama.cpp/build/bin`` -> ``llama.cpp``."""
    parts = [p for p in folder.parts if p not in ("/", "")]
    while len(parts) > 1 and parts[-1].lower() in GENERIC_FOLDERS:
        parts.pop()
    if not parts:
        return "llama.cpp"
    last = parts[-1]
    for prefix in ("build-", "build_"):
        if last.lower().startswith(prefix) and len(last) > len(prefix):
            return last[len(prefix):]
    return last


def probe_build(folder: str | Path, name: str | None = None, *,
                timeout: float = PROBE_TIMEOUT_S, use_cache: bool = True,
                cache_path: Path | None = None) -> BuildInfo:
    """Probe the build in ``folder`` (or a path to its llama-bench). Never raises."""
    try:
        return _probe(Path(folder).expanduser(), name, timeout, use_cache, cache_path)
    except Exception as error:
        path = Path(folder).expanduser()
        return BuildInfo(name=name or _default_name(path), folder=path,
                         problem=f"probe failed: {type(error).__name__}: {error}")


def _probe(path: Path, name: str | None, timeout: float, use_cache: bool,
           cache_path: Path | None) -> BuildInfo:
    folder = path.parent if path.is_file() else path
    name = name or _default_name(folder)
    if not path.exists() and not path.is_symlink():
        return BuildInfo(name=name, folder=folder, problem=f"folder not found: {path}")
    bench = find_bench(path)
    if bench is None:
        return BuildInfo(name=name, folder=folder, problem=f"no {BENCH} in {path}")
    folder = bench.parent
    if not os.access(bench, os.X_OK):
        return BuildInfo(name=name, folder=folder, bench=bench,
                         problem=f"{bench.name} is not executable (chmod +x {bench})")

    key = _cache_key(bench) if use_cache else None
    cache_file = cache_path or default_cache_path()
    if key is not None:
        with _cache_lock:
            record = _memory_cache.get(key)
        if record is None:
            record = _load_disk_cache(cache_file).get(key)
        if record is not None:
            cached = _from_record(record)
            if cached is not None:
                return replace(cached, name=name)

    info = probe_tools(name, folder, bench, timeout)
    if key is not None and info.problem is None:
        record = codec.to_builtins(info)
        with _cache_lock:
            _memory_cache[key] = record
        _save_disk_cache(cache_file, key, record)
    return info


def probe_tools(name: str, folder: Path, bench: Path, timeout: float,
                where: ProbeHost = LOCAL_PROBE) -> BuildInfo:
    """What the llama-bench at ``bench`` is, from its own answers (run through ``where``)."""
    base = BuildInfo(name=name, folder=folder, bench=bench)
    version_run = where.run([str(bench), "--version"], {}, timeout)
    if version_run.problem:
        return replace(base, problem=version_run.problem)
    build_number, commit, version_text = parse_version(version_run.stderr + "\n"
                                                       + version_run.stdout)

    help_run = where.run([str(bench), "--help"], {}, timeout)
    if help_run.problem:
        return replace(base, problem=help_run.problem)
    flags = parse_flags(help_run.stdout + "\n" + help_run.stderr)
    if not version_text and not flags:
        return replace(base, problem=f"{bench.name} printed nothing for --version and --help "
                       "and exited with 0: it is not a working llama-bench")
    split_modes = parse_choices(help_run.stdout + "\n" + help_run.stderr, "--split-mode")

    found = _probe_devices(where, bench, flags, timeout)
    if isinstance(found, str):
        return replace(base, problem=found)
    devices, env = found
    libraries = where.library_names(folder)
    cpu_fallback = None
    if devices is None:
        backend = _backend_from_libraries(libraries) or "unknown"
        devices = ()
    else:
        backend = backend_from_devices(devices)
        linked = needed_libraries(bench) if isinstance(where, LocalProbeHost) else ()
        cpu_fallback = backends_without_device(gpu_backends_built([*libraries, *linked]), devices)
    software = [d for d in devices if d.is_software]
    note = None
    if software:
        names = ", ".join(f"{d.name} {d.description}" for d in software)
        note = f"software renderer ({names}): runs on the CPU, slow"

    return BuildInfo(
        name=name, folder=folder, bench=bench,
        completion=_find_completion(where, folder, env, timeout),
        perplexity=_tool(where, folder, "llama-perplexity"),
        server=_tool(where, folder, "llama-server"),
        rpc_server=_tool(where, folder, "rpc-server") or _tool(where, folder, "ggml-rpc-server"),
        backend=backend, devices=devices, build_number=build_number, commit=commit,
        version_text=version_text, flags=flags, env=env, note=note, split_modes=split_modes,
        cpu_fallback=cpu_fallback,
        compiler=parse_compiler(version_run.stderr + "\n" + version_run.stdout),
    )


def _probe_devices(where: ProbeHost, bench: Path, flags: frozenset[str],
                   timeout: float) -> tuple[tuple[Device, ...] | None, dict[str, str]] | str:
    """(devices or None for a build too old to list them, the environment that shows them),
    or the problem."""
    if "--list-devices" not in flags:
        return None, {}
    devices_run = where.run([str(bench), "--list-devices"], {}, timeout)
    if devices_run.problem:
        return devices_run.problem
    devices = parse_devices(devices_run.stdout)
    if devices is None:
        return "--list-devices printed no device list: " + _last_line(devices_run.stderr,
                                                                       devices_run.stdout)
    if not devices and "GGML_VK_VISIBLE_DEVICES" not in where.environ:
        # ggml hides CPU-type Vulkan devices (lavapipe) unless asked for by index.
        retry_env = {"GGML_VK_VISIBLE_DEVICES": "0"}
        retry = where.run([str(bench), "--list-devices"], retry_env, timeout)
        if retry.problem is None:
            shown = parse_devices(retry.stdout) or ()
            if shown:
                return shown, retry_env
    return devices, {}


def _from_record(record: Mapping[str, object]) -> BuildInfo | None:
    try:
        return codec.from_builtins(record, BuildInfo)
    except codec.CodecError:
        return None  # written by another version: probe again



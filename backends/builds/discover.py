"""Finding builds: PATH, ~/llama.cpp/build*, /opt/llama.cpp*, and the ones named."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from backends.builds.model import BENCH, PROBE_TIMEOUT_S, BuildInfo
from backends.builds.probe import _default_name, probe_build
from backends.builds.run import find_bench

# --- discovery -----------------------------------------------------------------------------

def parse_build_arg(text: str) -> tuple[str, Path]:
    """``rocm=~/llama.cpp/build-rocm`` -> ("rocm", Path). A bare path is named after its
    folder. Raises ValueError with a one-line message for an empty name or path."""
    name, sep, raw_path = text.partition("=")
    if not sep:
        name, raw_path = "", text
    name, raw_path = name.strip(), raw_path.strip()
    if sep and not name:
        raise ValueError(f"build {text!r} has an empty name (use NAME=PATH)")
    if not raw_path:
        raise ValueError(f"build {text!r} has no path (use NAME=PATH)")
    path = Path(raw_path).expanduser()
    if not name:
        folder = path.parent if path.name.startswith(BENCH) else path
        name = _default_name(folder)
    return name, path


def candidate_folders(home: Path | None = None, search_path: str | None = None) -> list[Path]:
    """Folders that may hold a build: PATH entries with llama-bench, ~/llama.cpp/build*,
    /opt/llama.cpp*."""
    home = home or Path.home()
    found: list[Path] = []
    path_value = os.environ.get("PATH", "") if search_path is None else search_path
    for entry in path_value.split(os.pathsep):
        if entry and (Path(entry) / BENCH).is_file():
            found.append(Path(entry))
    patterns = [
        (home / "llama.cpp", ("build*/bin", "build*")),
        (Path("/opt"), ("llama.cpp*/build*/bin", "llama.cpp*/build*", "llama.cpp*/bin",
                        "llama.cpp*")),
    ]
    for root, globs in patterns:
        if not root.is_dir():
            continue
        for pattern in globs:
            for folder in sorted(root.glob(pattern)):
                if (folder / BENCH).is_file():
                    found.append(folder)
    return found


def discover_builds(extra: Mapping[str, Path] | None = None, *,
                    search_defaults: bool = True, timeout: float = PROBE_TIMEOUT_S,
                    use_cache: bool = True, cache_path: Path | None = None) -> list[BuildInfo]:
    """Every build found plus the ones named in ``extra`` (always listed, with a problem
    when broken), probed in parallel. Each llama-bench appears once."""
    wanted: list[tuple[str | None, Path]] = [(n, Path(p).expanduser())
                                             for n, p in (extra or {}).items()]
    if search_defaults:
        wanted += [(None, folder) for folder in candidate_folders()]
    seen: set[Path] = set()
    unique: list[tuple[str | None, Path]] = []
    for name, path in wanted:
        bench = find_bench(path) if path.exists() else None
        identity = bench.resolve() if bench is not None else path.resolve()
        if identity in seen:
            continue
        seen.add(identity)
        unique.append((name, path))

    with ThreadPoolExecutor(max_workers=4) as pool:
        builds = list(pool.map(
            lambda item: probe_build(item[1], item[0], timeout=timeout, use_cache=use_cache,
                                     cache_path=cache_path),
            unique))
    return _unique_names(builds)


def _unique_names(builds: list[BuildInfo]) -> list[BuildInfo]:
    counts: dict[str, int] = {}
    result = []
    for build in builds:
        counts[build.name] = counts.get(build.name, 0) + 1
        if counts[build.name] > 1:
            build = replace(build, name=f"{build.name}-{counts[build.name]}")
        result.append(build)
    return result


def which_bench() -> Path | None:
    found = shutil.which(BENCH)
    return Path(found) if found else None

"""Reading what llama-bench says about itself: devices, version, flags, split modes."""

from __future__ import annotations

import re
from collections.abc import Iterable

from backends.builds.model import _DEVICE_LINE, _FLAG, BACKEND_LIBRARIES, BACKEND_PREFIXES, Device

# --- parsing -----------------------------------------------------------------------------

def parse_devices(text: str) -> tuple[Device, ...] | None:
    """Devices from ``llama-bench --list-devices``; None when there is no device list."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Available devices:")
    except StopIteration:
        return None
    devices = []
    for line in lines[start + 1:]:
        match = _DEVICE_LINE.match(line)
        if match:
            devices.append(Device(match["name"], match["description"],
                                  int(match["total"]), int(match["free"])))
    return tuple(devices)


def parse_version(text: str) -> tuple[int | None, str | None, str]:
    """(build number, commit, the version line) from ``--version``.

    Two styles exist: ``version: 8467 (a1b2c3d4)`` and, in newer builds,
    ``version: 0.6.0-dev (build 0, commit unknown)``; build 0 and "unknown" mean the
    build was made outside a git checkout and come back as None.
    """
    line = next((row.strip() for row in text.splitlines() if row.strip().startswith("version:")), "")
    if not line:
        return None, None, ""
    build: int | None = None
    commit: str | None = None
    new_style = re.search(r"\(build (\d+), commit ([^)\s]+)\)", line)
    old_style = re.match(r"version:\s*(\d+)\s*\(([^)\s]+)\)", line)
    if new_style:
        build, commit = int(new_style[1]), new_style[2]
    elif old_style:
        build, commit = int(old_style[1]), old_style[2]
    if build == 0:
        build = None
    if commit in ("unknown", ""):
        commit = None
    return build, commit, line


def parse_compiler(text: str) -> str | None:
    """``GNU 12.2.0`` from the banner's ``built with GNU 12.2.0 for Linux x86_64``."""
    match = re.search(r"^built with (.+?)(?: for .*)?$", text, re.MULTILINE)
    return match.group(1).strip()[:80] if match else None


def parse_flags(help_text: str) -> frozenset[str]:
    """Every option ``--help`` lists (``-ncmoe``, ``--n-cpu-moe``, ``-lm``, ...)."""
    flags: set[str] = set()
    for line in help_text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("-"):
            continue
        # Only the option column: stop at the first run of two spaces (the description).
        column = re.split(r"\s{2,}", stripped, maxsplit=1)[0]
        for token in _FLAG.findall(column):
            flags.add(token.rstrip(","))
    return frozenset(flags)


def parse_choices(help_text: str, flag: str) -> tuple[str, ...]:
    """The values ``--help`` lists for ``flag``: ``-sm, --split-mode <none|layer|row>``."""
    for line in help_text.splitlines():
        column = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        if flag in _FLAG.findall(column):
            match = re.search(r"<([\w|-]+)>", column)
            if match and "|" in match[1]:
                return tuple(match[1].split("|"))
    return ()


def backend_from_devices(devices: Iterable[Device]) -> str:
    """``ROCm``, ``Vulkan``, ``ROCm,Vulkan`` (llama-bench's join), or ``CPU``."""
    names: list[str] = []
    for device in devices:
        prefix = re.sub(r"\d+$", "", device.name)
        backend = BACKEND_PREFIXES.get(prefix.lower(), prefix)
        if backend not in names:
            names.append(backend)
    return ",".join(names) if names else "CPU"


def _backend_from_libraries(names: Iterable[str]) -> str | None:
    found = []
    for name in names:
        for stem, backend in BACKEND_LIBRARIES.items():
            if name.startswith(stem) and backend not in found:
                found.append(backend)
    return ",".join(found) if found else None



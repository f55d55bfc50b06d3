"""Contenders: a build *and* the devices, RPC servers and settings it runs with.

One ``llama-bench`` built with ``GGML_BACKEND_DL=ON`` sees ROCm0, Vulkan0 and the CPU; the
fairest ROCm-vs-Vulkan comparison is that one binary with ``-dev ROCm0`` against
``-dev Vulkan0``. Two contenders may therefore share a binary under two names.

    --build NAME=PATH                 the build (as always)
    --device NAME=DEV[/DEV...]        llama.cpp device names (``--list-devices``), or ``none``
    --rpc NAME=HOST:PORT[,HOST:PORT]  RPC servers this contender uses as devices
    --set NAME=ARGS                   its own llama-bench settings: ``-sm row -ts 1/1``

Everything is checked against what the build's ``--help`` and ``--list-devices`` say
before anything runs: a flag the build lacks is one clear line.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import shlex
from collections.abc import Mapping, Sequence

from backends.builds import BACKEND_PREFIXES, BuildInfo

# Settings that belong to the grid or to llamaduel itself, never to one contender.
GRID_FLAGS = {"-m", "--model", "-p", "--n-prompt", "-n", "--n-gen", "-d", "--n-depth", "-r",
              "--repetitions", "-o", "--output", "-oe", "--output-err", "--progress"}


class ContenderError(ValueError):
    """A contender that cannot run as asked: one line for the user."""


def _split_named(text: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ContenderError(f"{option} {text!r}: use {option} NAME=VALUE")
    return name.strip(), value.strip()


def parse_device_arg(text: str) -> tuple[str, tuple[str, ...]]:
    """``vk=Vulkan0`` -> ("vk", ("Vulkan0",)); ``cpu=none`` -> ("cpu", ())."""
    name, value = _split_named(text, "--device")
    if value.lower() == "none":
        return name, ()
    devices = tuple(d.strip() for d in value.split("/") if d.strip())
    if not devices:
        raise ContenderError(f"--device {text!r}: name at least one device, or none")
    return name, devices


def parse_rpc_arg(text: str) -> tuple[str, tuple[str, ...]]:
    """``both=10.0.0.2:50052,10.0.0.3:50052`` -> ("both", ("10.0.0.2:50052", ...))."""
    name, value = _split_named(text, "--rpc")
    endpoints = tuple(e.strip() for e in value.split(",") if e.strip())
    for endpoint in endpoints:
        host, sep, port = endpoint.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ContenderError(f"--rpc {text!r}: {endpoint!r} is not HOST:PORT")
    return name, endpoints


def parse_set_arg(text: str) -> tuple[str, tuple[str, ...]]:
    """``row=-sm row -ts 1/1`` -> ("row", ("-sm", "row", "-ts", "1/1"))."""
    name, value = _split_named(text, "--set")
    try:
        args = tuple(shlex.split(value))
    except ValueError as error:
        raise ContenderError(f"--set {text!r}: {error}") from None
    return name, args


def _check_settings(build: BuildInfo, settings: Sequence[str]) -> None:
    flags = [a for a in settings if a.startswith("-") and not _is_number(a)]
    for flag in flags:
        if flag in GRID_FLAGS:
            raise ContenderError(f"{build.name}: {flag} belongs to the grid, not to one contender")
        if not build.supports(flag):
            raise ContenderError(f"{build.name}: this llama-bench ({build.version}) has no {flag}")
    for flag, value in itertools.pairwise(settings):
        if flag in ("-sm", "--split-mode") and build.split_modes and value not in build.split_modes:
            raise ContenderError(f"{build.name}: -sm {value} is not one of this build's split "
                                 f"modes ({', '.join(build.split_modes)})")
        if flag in ("-sm", "--split-mode", "-ts", "--tensor-split", "-mg", "--main-gpu") and "," in value:
            raise ContenderError(f"{build.name}: {flag} {value}: one contender runs one setting "
                                 "(llama-bench would run one test per comma-separated value; "
                                 "write a tensor split as 3/1)")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_devices(build: BuildInfo, devices: tuple[str, ...], rpc: tuple[str, ...]) -> None:
    if not build.supports("-dev", "--device"):
        raise ContenderError(f"{build.name}: this llama-bench ({build.version}) has no -dev: "
                             "it cannot choose devices")
    known = {d.name for d in build.devices} | {f"RPC{i}" for i in range(len(rpc))}
    for device in devices:
        if device not in known:
            listed = ", ".join(sorted(known)) or "none besides the CPU"
            raise ContenderError(f"{build.name}: no device {device!r} (this build lists: {listed})")


def make_contenders(builds: Sequence[BuildInfo], *, devices: Mapping[str, tuple[str, ...]] = {},
                    rpc: Mapping[str, tuple[str, ...]] = {},
                    settings: Mapping[str, tuple[str, ...]] = {}) -> list[BuildInfo]:
    """The contenders: each build with its devices, RPC servers and settings.

    A name in ``devices``, ``rpc`` or ``settings`` that is no build's name makes a new
    contender of the only build given (``--build x=PATH --device cpu=none --device
    vk=Vulkan0`` compares one binary on two devices).
    """
    by_name = {b.name: b for b in builds}
    extra = [n for n in dict.fromkeys([*devices, *rpc, *settings]) if n not in by_name]
    if extra:
        if len(builds) != 1:
            raise ContenderError(f"no build named {extra[0]!r}: name contenders after their "
                                 "--build, or give one --build to derive several from it")
        base = builds[0]
        by_name = {n: dataclasses.replace(base, name=n) for n in extra}
        if any(n == base.name for n in [*devices, *rpc, *settings]):
            by_name = {base.name: base, **by_name}
    chosen = []
    for name, build in by_name.items():
        endpoints = tuple(rpc.get(name, ()))
        if endpoints and not build.supports("--rpc", "-rpc"):
            raise ContenderError(f"{name}: this llama-bench ({build.version}) has no --rpc")
        wanted = devices.get(name)
        if wanted is not None:
            _check_devices(build, wanted, endpoints)
        own = tuple(settings.get(name, ()))
        _check_settings(build, own)
        chosen.append(dataclasses.replace(build, selected_devices=wanted, rpc=endpoints, settings=own))
    return chosen


def loads_backends(build: BuildInfo) -> bool:
    """Whether the build loads its backends as modules (``GGML_BACKEND_DL``): then the CPU
    is a backend of its own beside the GPUs, chosen with ``-dev none``."""
    return any(build.folder.glob("libggml-cpu*.so"))


def by_backend(build: BuildInfo) -> dict[str, list[str]]:
    """A build's devices grouped by backend: ``{"Vulkan": ["Vulkan0"], "CPU": ["none"]}``."""
    groups: dict[str, list[str]] = {}
    for device in build.devices:
        prefix = re.sub(r"\d+$", "", device.name)
        groups.setdefault(BACKEND_PREFIXES.get(prefix.lower(), prefix), []).append(device.name)
    if groups and loads_backends(build):
        groups["CPU"] = ["none"]
    return groups


def split_variants(build: BuildInfo, cards: Sequence[str]) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """The multi-GPU preset for identical cards: one card alone against all of them split
    by layer, by row and by tensor (where this build has each), evenly and 3:1.

    Returns ``{contender name: (devices, settings)}``."""
    if len(cards) < 2:
        raise ContenderError(f"{build.name}: a split needs two or more devices, got {len(cards)}")
    even = "/".join("1" for _ in cards)
    uneven = "/".join(["3"] + ["1"] * (len(cards) - 1))
    modes = [m for m in ("layer", "row", "tensor") if not build.split_modes or m in build.split_modes]
    variants: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
        f"1x{cards[0]}": ((cards[0],), ("-sm", "none")),
    }
    for mode in modes:
        variants[f"{len(cards)}x-{mode}"] = (tuple(cards), ("-sm", mode, "-ts", even))
    variants[f"{len(cards)}x-layer-{uneven.replace('/', ':')}"] = (tuple(cards), ("-sm", "layer", "-ts", uneven))
    return variants

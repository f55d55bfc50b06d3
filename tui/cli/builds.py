"""``llamaduel builds`` and ``llamaduel models``: what llama.cpp builds and GGUF models
there are, and what each one is.

    llamaduel builds --build rocm=~/llama.cpp/build-rocm --build vulkan=~/llama.cpp/build-vk
    llamaduel models ~/models --vram 32 --context 32768
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from profiles.format import format_bytes, render_table
from tui.cli.common import Subparsers

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.models import ModelInfo
    from backends.models.fit import FitEstimate


def register(subparsers: Subparsers) -> None:
    builds = subparsers.add_parser(
        "builds",
        help="find and probe llama.cpp builds (backend, devices, version, flags)",
        description="Find llama.cpp builds on PATH, under ~/llama.cpp/build*/ and "
        "/opt/llama.cpp*, plus the ones named with --build, and probe each "
        "(llama-bench --version, --list-devices, --help) without running a model.",
    )
    builds.add_argument("--build", action="append", default=[], metavar="NAME=[HOST:]PATH",
                        help="a build folder (or its llama-bench) to include, on an ssh HOST "
                        "when given; repeatable")
    builds.add_argument("--no-search", action="store_true",
                        help="only the builds named with --build")
    builds.add_argument("--refresh", action="store_true",
                        help="probe again instead of using cached probes")
    builds.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="give up on a probe after this long (30)")
    builds.add_argument("--json", action="store_true", help="print JSON instead of a table")
    builds.set_defaults(func=handle_builds)

    models = subparsers.add_parser(
        "models",
        help="list GGUF models in folders (architecture, size, quant, dense or MoE)",
        description="Find .gguf files under the folders (recursively; split files count as "
        "one model) and read their metadata without loading weights.",
    )
    models.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                        help="a folder to search, or a .gguf file")
    models.add_argument("--vram", type=float, metavar="GIB",
                        help="free device memory in GiB: adds whether each model fits, and the "
                        "-ncmoe that makes a MoE fit")
    models.add_argument("--context", type=int, default=8192, metavar="TOKENS",
                        help="context for the fit estimate (8192)")
    models.add_argument("--cache-type", default="f16", metavar="TYPE",
                        help="KV cache type for the fit estimate (f16)")
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(func=handle_models)


# --- formatting ----------------------------------------------------------------------------

def human_count(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def _device_cell(build: BuildInfo, names: list[str] | None = None) -> str:
    if names == ["none"]:
        return "the CPU (-dev none)"
    devices = [d for d in build.devices if names is None or d.name in names]
    if not devices:
        return "-" if build.problem else "(CPU only)"
    return "\n".join(
        f"{d.name} {d.description}, {d.total_mib / 1024:.1f} GiB ({d.free_mib / 1024:.1f} free)"
        for d in devices)


def _build_status(build: BuildInfo) -> str:
    if build.problem:
        return f"problem: {build.problem}"
    notes = [f"FLAGGED: {build.fallback}" if build.fallback else "ok"]
    if build.env:
        notes.append("needs " + " ".join(f"{k}={v}" for k, v in build.env.items()))
    if build.note:
        notes.append(build.note)
    return "\n".join(notes)


def format_builds(builds: list[BuildInfo]) -> str:
    """One row per build, or per backend for a build with several (``GGML_BACKEND_DL``):
    ``-dev`` picks among them, e.g. ``--device vk=Vulkan0``."""
    from backends.contenders import by_backend

    rows = []
    for b in builds:
        if b.host:
            b = replace(b, name=f"{b.name} ({b.host})")
        groups = by_backend(b) if not b.problem and not b.host else {}
        if len(groups) > 1:
            for index, (backend, names) in enumerate(groups.items()):
                rows.append([b.name if index == 0 else "", backend, _device_cell(b, names),
                             b.version if index == 0 else "", _build_status(b) if index == 0 else ""])
            continue
        rows.append([b.name, b.backend if not b.problem else "-", _device_cell(b),
                     b.version if not b.problem else "-", _build_status(b)])
    return render_table(["NAME", "BACKEND", "DEVICES", "VERSION", "STATUS"], rows)


def _file_cell(model: ModelInfo) -> str:
    if len(model.files) > 1:
        return f"{model.path.name} (+{len(model.files) - 1} parts)"
    return str(model.path.name)


def format_models(models: list[ModelInfo], fits: Sequence[FitEstimate | None] | None = None) -> str:
    headers = ["FILE", "ARCH", "PARAMS", "QUANT", "SIZE", "LAYERS", "CTX", "KIND"]
    if fits is not None:
        headers.append("FIT")
    headers.append("STATUS")
    rows = []
    for i, m in enumerate(models):
        row = [_file_cell(m), m.architecture or "-", human_count(m.parameters), m.quant or "-",
               format_bytes(m.size_bytes), str(m.layers or "-"),
               str(m.context_length or "-"), m.kind if m.architecture else "-"]
        if fits is not None:
            fit = fits[i]
            if fit is None or not m.runnable:
                row.append("-")
            elif fit.fits:
                row.append("fits")
            elif fit.suggested_ncmoe is not None:
                row.append(f"-ncmoe {fit.suggested_ncmoe}")
            else:
                row.append("no")
        row.append("ok" if m.runnable else f"problem: {m.problem}")
        rows.append(row)
    return render_table(headers, rows)


# --- handlers ------------------------------------------------------------------------------

def handle_builds(options: argparse.Namespace, out: TextIO | None = None) -> int:
    from backends.builds import discover_builds
    from backends.journal import codec
    from backends.remote.probe import parse_build_target, probe_remote_build
    from backends.remote.ssh import close_hosts
    from tui.cli import CommandError

    out = out or sys.stdout
    extra: dict[str, Path] = {}
    remote: dict[str, tuple[str, str]] = {}
    for text in options.build:
        try:
            name, host, path = parse_build_target(text)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if name in extra or name in remote:
            raise CommandError(f"build name {name!r} is given twice")
        if host is None:
            extra[name] = Path(path)
        else:
            remote[name] = (host, path)
    found = discover_builds(extra, search_defaults=not options.no_search,
                            timeout=options.timeout, use_cache=not options.refresh)
    try:
        found += [probe_remote_build(host, path, name, timeout=options.timeout)
                  for name, (host, path) in remote.items()]
    finally:
        close_hosts()
    if options.json:
        # "flagged": the sentence for a build whose GPU backend found no device, else null.
        json.dump([{**codec.to_builtins(b), "flagged": b.fallback} for b in found], out, indent=2)
        out.write("\n")
    elif found:
        out.write(format_builds(found) + "\n")
    if not any(b.runnable for b in found):
        raise CommandError("no runnable llama.cpp build found; name one with --build NAME=PATH")
    return 0


def handle_models(options: argparse.Namespace, out: TextIO | None = None) -> int:
    from backends.models import ModelSearchError, cache_type_bytes, estimate_fit, find_models
    from tui.cli import CommandError

    out = out or sys.stdout
    if options.context <= 0:
        raise CommandError("--context must be a positive number of tokens")
    try:
        cache_type_bytes(options.cache_type)
    except ValueError as error:
        raise CommandError(str(error)) from None
    try:
        found = find_models(options.dirs)
    except ModelSearchError as error:
        raise CommandError(str(error)) from None
    fits = None
    if options.vram is not None:
        free = int(options.vram * (1 << 30))
        fits = [estimate_fit(m, free, options.context, options.cache_type, options.cache_type)
                for m in found]
    if options.json:
        records = []
        for i, model in enumerate(found):
            record = model.to_json()
            if fits is not None:
                fit = fits[i]
                record["fit"] = {"fits": fit.fits, "needed_bytes": fit.needed_bytes,
                                 "suggested_ncmoe": fit.suggested_ncmoe, "reason": fit.reason}
            records.append(record)
        json.dump(records, out, indent=2)
        out.write("\n")
        return 0
    if not found:
        out.write("no .gguf models found in " + ", ".join(str(d) for d in options.dirs) + "\n")
        return 0
    out.write(format_models(found, fits) + "\n")
    return 0

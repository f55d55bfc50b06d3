"""Never compare tables from different machines.

A machine is what the files say: a host name beside them (``run_metadata.txt``,
``system_info.json``), the CPU llama-bench names (``cpu_info``), or the document section a
pasted table sits under when one build's tables repeat under two headings. Within a machine,
two GPUs that each carry two or more builds are judged apart (a build on one card against a
build on another says nothing about builds); backends name one card differently (HIP
"AMD Radeon Graphics", Vulkan "Radeon 8060S Graphics"), so that split happens only where one
backend ran on two named GPUs.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from profiles.importers.rows import normalize_gpu

if TYPE_CHECKING:
    from profiles.importers import ImportedBuild, ImportedRun


def split_machines(run: ImportedRun) -> list[ImportedRun]:
    by_machine: dict[str, list[ImportedBuild]] = defaultdict(list)
    for b in run.builds:
        by_machine[b.machine].append(b)
    known = [m for m in by_machine if m]
    if "" in by_machine and len(known) == 1:
        by_machine[known[0]].extend(by_machine.pop(""))
    out: list[ImportedRun] = []
    for machine, builds in by_machine.items():
        for group in _split_gpus(builds):
            names = sorted({normalize_gpu(b.gpu) for b in group if b.gpu})
            gpus = sorted({_card(b.gpu, names): str(b.gpu) for b in group if b.gpu}.values())
            label = machine
            if not label and len(by_machine) > 1:
                label = "unknown machine"
            shown = dict.fromkeys(re.sub(r"\s*\(.*?\)", "", g).strip() for g in gpus)
            out.append(_subset(run, group, label or ", ".join(shown)))
    return out


def _card(name: str | None, names: Sequence[str]) -> str:
    """One card under the names its backends give it: "radeon" is "radeon 8060s"."""
    mine = normalize_gpu(name)
    words = set(mine.split())
    fuller = [n for n in names if words and words < set(n.split())]
    return max(fuller, key=len) if len(set(fuller)) == 1 else mine


def _split_gpus(builds: Sequence[ImportedBuild]) -> list[list[ImportedBuild]]:
    by_gpu: dict[str, list[ImportedBuild]] = defaultdict(list)
    names = sorted({normalize_gpu(b.gpu) for b in builds if b.gpu})
    for b in builds:
        by_gpu[_card(b.gpu, names)].append(b)
    gpus_of_backend: dict[str, set[str]] = defaultdict(set)
    for gpu, group in by_gpu.items():
        for b in group:
            if gpu:
                gpus_of_backend[b.backend.split(",")[0].split("(")[0].strip().lower()].add(gpu)
    if (sum(1 for group in by_gpu.values() if len(group) >= 2) < 2
            or not any(len(g) > 1 for g in gpus_of_backend.values())):
        return [list(builds)]
    return [group for group in by_gpu.values()]


def _subset(run: ImportedRun, builds: Sequence[ImportedBuild], machine: str) -> ImportedRun:
    from profiles.importers import ImportedRun

    rename = _plain_names(builds)
    return ImportedRun(builds=tuple(replace(b, name=rename[b.name]) for b in builds),
                       results={rename[k]: v for k, v in run.results.items() if k in rename},
                       failures={rename[k]: tuple(replace(f, build=rename[k]) for f in v)
                                 for k, v in run.failures.items() if k in rename},
                       problems=run.problems, files=run.files, journal=run.journal,
                       telemetry={rename[k]: v for k, v in run.telemetry.items() if k in rename},
                       machine=machine)


def _plain_names(builds: Sequence[ImportedBuild]) -> dict[str, str]:
    """Drop an "@ GPU" part that only told machines apart: one machine needs no GPU in names."""
    out = {}
    for b in builds:
        plain = re.sub(r" @ [^@]+$", "", b.name)
        clash = any(o.name != b.name and (o.name == plain or re.sub(r" @ [^@]+$", "", o.name) == plain)
                    for o in builds)
        out[b.name] = b.name if clash else plain
    return out


@lru_cache(maxsize=256)
def host_of(folder: str) -> str:
    """A host name the folder's own metadata states (run_metadata.txt, system_info.json)."""
    meta = Path(folder) / "run_metadata.txt"
    try:
        if meta.is_file():
            m = re.search(r"^host:\s*(\S+)", meta.read_text(errors="replace")[:4096], re.MULTILINE)
            if m:
                return m.group(1)
        info = Path(folder) / "system_info.json"
        if info.is_file() and info.stat().st_size < 1_000_000:
            data = json.loads(info.read_text(errors="replace"))
            if isinstance(data, dict) and isinstance(data.get("hostname"), str):
                return str(data["hostname"])
    except (OSError, ValueError):
        return ""
    return ""

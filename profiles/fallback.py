"""Builds that ran on the CPU although they were built for a GPU, read from their results.

llama-bench writes the backends a build has (``"backends": "Vulkan"``) and the GPUs it
found (``"gpu_info"``) into every result. A GPU backend beside an empty ``gpu_info`` found
no device: the build ran on the CPU, and a verdict that calls it "vulkan" must say so.
Results without a ``gpu_info`` field (markdown tables, old outputs) say nothing either way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from backends.builds.model import GPU_BACKENDS, fallback_text
from profiles.outcome import Recommendation
from profiles.records import RunRecords

# The names llama-bench gives GPU backends in "backends", besides GPU_BACKENDS' own.
_ALIASES = {"HIP": "ROCm"}


def gpu_backends_without_device(raw: Mapping[str, object]) -> str | None:
    """``"Vulkan"`` for a result of a build with a GPU backend that found no GPU, else None."""
    if raw.get("gpu_info") != "":
        return None
    named = [_ALIASES.get(b.strip(), b.strip()) for b in str(raw.get("backends") or "").split(",")]
    gpu = [b for b in named if b in GPU_BACKENDS]
    return ",".join(dict.fromkeys(gpu)) or None


def cpu_fallbacks(records: RunRecords) -> dict[str, str]:
    """Each build that ran on the CPU, with the GPU backends it was built for: as its probe
    found it (a GPU backend that cannot start at all leaves no trace in the results) or as
    its results show it."""
    found: dict[str, str] = dict(records.fallbacks)
    for entry in records.results:
        backends = gpu_backends_without_device(entry.result.raw)
        if backends and entry.build not in found:
            found[entry.build] = backends
    return found


def fallback_lines(records: RunRecords) -> tuple[str, ...]:
    """``vulkan: built for Vulkan but found no Vulkan device; it ran on the CPU``, per build."""
    return tuple(f"{build}: {fallback_text(backends, ran=True)}"
                 for build, backends in cpu_fallbacks(records).items())


def with_fallback_lines(recommendation: Recommendation, records: RunRecords) -> Recommendation:
    """The recommendation with a first summary line for each build that ran on the CPU."""
    lines = fallback_lines(records)
    if not lines:
        return recommendation
    return dataclasses.replace(recommendation, fallbacks=lines,
                               summary=(*lines, *recommendation.summary))

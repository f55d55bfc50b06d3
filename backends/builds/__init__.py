"""Find llama.cpp builds and learn what each one is, without running a model.

A probe runs the build's ``llama-bench`` three times (``--version``, ``--list-devices``,
``--help``) and reads: the backend (from device names such as ``ROCm0`` or ``Vulkan0``),
the devices with their memory, the build number and commit, and which flags this version
takes (flags change between versions: newer builds replaced ``-mmp`` with ``-lm``).

A broken build is never an exception: it comes back with a one-line ``problem``. Probes
are cached by the binary's path, size and modification time (and its libraries'), in
memory and in ``probes.json`` under the user cache folder; free memory in a cached probe
is as it was then.

    model.py     BuildInfo, Device and the constants
    parse.py     llama-bench's own words: devices, version, flags, split modes
    run.py       running a probe command (locally or through a ProbeHost)
    probe.py     probing a build, cached
    discover.py  finding builds
"""

from backends.builds.discover import candidate_folders, discover_builds, parse_build_arg, which_bench
from backends.builds.model import (
                                      BACKEND_LIBRARIES,
                                      BACKEND_PREFIXES,
                                      BENCH,
                                      CACHE_VERSION,
                                      ELF_MACHINES,
                                      PROBE_TIMEOUT_S,
                                      SOFTWARE_RENDERERS,
                                      VISIBILITY_VARIABLES,
                                      BuildInfo,
                                      Device,
)
from backends.builds.parse import backend_from_devices, parse_choices, parse_devices, parse_flags, parse_version
from backends.builds.probe import _default_name, clear_memory_cache, default_cache_path, probe_build, probe_tools
from backends.builds.run import LOCAL_PROBE, LocalProbeHost, ProbeHost, ProbeRun, find_bench, probe_outcome

__all__ = [
    "BACKEND_LIBRARIES", "BACKEND_PREFIXES", "BENCH", "CACHE_VERSION", "ELF_MACHINES",
    "LOCAL_PROBE", "PROBE_TIMEOUT_S", "SOFTWARE_RENDERERS", "VISIBILITY_VARIABLES", "BuildInfo",
    "Device", "LocalProbeHost", "ProbeHost", "ProbeRun", "_default_name", "backend_from_devices",
    "candidate_folders", "clear_memory_cache", "default_cache_path", "discover_builds",
    "find_bench", "parse_build_arg", "parse_choices", "parse_devices", "parse_flags",
    "parse_version", "probe_build", "probe_outcome", "probe_tools", "which_bench",
]

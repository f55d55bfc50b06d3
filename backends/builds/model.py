"""What a build is: its tools, backend, devices, version, flags; and the contender it runs as."""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from backends.json_types import JsonValue, items_of

BENCH = "llama-bench"
PROBE_TIMEOUT_S = 30.0
CACHE_VERSION = 5
# The environment a probe depends on besides the binary itself: which devices are visible
# and which Vulkan drivers and libraries the loader finds.
VISIBILITY_VARIABLES = (
    "GGML_VK_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES", "MUSA_VISIBLE_DEVICES", "VK_DRIVER_FILES", "VK_ICD_FILENAMES",
    "VK_ADD_DRIVER_FILES", "LD_LIBRARY_PATH",
)
# Device name prefixes (``ROCm0``, ``Vulkan1``) as llama-bench's "backends" field names them.
BACKEND_PREFIXES = {
    "rocm": "ROCm", "cuda": "CUDA", "vulkan": "Vulkan", "musa": "MUSA", "sycl": "SYCL",
    "metal": "Metal", "cann": "CANN", "opencl": "OpenCL", "rpc": "RPC", "blas": "BLAS",
    "webgpu": "WebGPU", "zdnn": "zDNN", "hexagon": "Hexagon",
}
# Backend libraries in a build folder, for builds too old to list their devices.
BACKEND_LIBRARIES = {
    "libggml-hip": "ROCm", "libggml-cuda": "CUDA", "libggml-vulkan": "Vulkan",
    "libggml-musa": "MUSA", "libggml-sycl": "SYCL", "libggml-metal": "Metal",
    "libggml-opencl": "OpenCL",
}
# Backends that run on a GPU: built with one of these and no device for it, a build runs
# on the CPU (``backends.builds.linked``).
GPU_BACKENDS = ("ROCm", "CUDA", "Vulkan", "MUSA", "SYCL", "Metal", "OpenCL")
SOFTWARE_RENDERERS = ("llvmpipe", "lavapipe", "swiftshader", "softpipe")
ELF_MACHINES = {
    0x03: "x86 (32-bit)", 0x08: "MIPS", 0x14: "PowerPC", 0x15: "PowerPC64", 0x16: "s390x",
    0x28: "ARM (32-bit)", 0x3E: "x86_64", 0xB7: "aarch64", 0xF3: "RISC-V",
    0x102: "LoongArch",
}

_DEVICE_LINE = re.compile(r"^\s+(?P<name>[^\s:]+):\s+(?P<description>.*?)\s+"
                          r"\((?P<total>\d+) MiB, (?P<free>\d+) MiB free\)\s*$")
_FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
_MISSING_LIBRARY = re.compile(r"error while loading shared libraries: ([^:\s]+)")


def fallback_text(backends: str, ran: bool = False) -> str:
    """``built for Vulkan but found no Vulkan device; it runs on the CPU``."""
    names = [b for b in backends.split(",") if b]
    built = " and ".join(names)
    device = " or ".join(names)
    return (f"built for {built} but found no {device} device; "
            f"it {'ran' if ran else 'runs'} on the CPU")


@dataclass(frozen=True)
class Device:
    name: str  # as llama.cpp names it: ROCm0, Vulkan0, CUDA1
    description: str
    total_mib: int
    free_mib: int

    @property
    def is_software(self) -> bool:
        text = self.description.lower()
        return any(renderer in text for renderer in SOFTWARE_RENDERERS)


@dataclass(frozen=True)
class BuildInfo:
    name: str
    folder: Path
    bench: Path | None = None
    completion: Path | None = None
    perplexity: Path | None = None
    backend: str = "unknown"
    devices: tuple[Device, ...] = ()
    build_number: int | None = None  # None when built without git ("build 0")
    commit: str | None = None  # None when "unknown"
    version_text: str = ""
    flags: frozenset[str] = frozenset()
    env: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None
    note: str | None = None  # worth telling, not wrong (a software renderer)
    server: Path | None = None  # llama-server
    rpc_server: Path | None = None  # rpc-server (ggml-rpc-server in newer trees)
    # What makes this build a contender (the same binary may be several): the devices it
    # uses (None: llama.cpp's default; () : the CPU only), RPC servers, llama-bench settings.
    selected_devices: tuple[str, ...] | None = None
    rpc: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    split_modes: tuple[str, ...] = ()  # what -sm takes in this version (none, layer, row, tensor)
    # The ssh destination this build lives on (None: this machine) and that machine's own
    # name (``uname -n``); paths are paths there (``backends.remote.probe``).
    host: str | None = None
    machine: str | None = None
    # The GPU backends this build was compiled with when none of them found a device
    # (``"Vulkan"``): it runs on the CPU whatever its name says.
    cpu_fallback: str | None = None
    compiler: str | None = None  # from the banner's ``built with GNU 12.2.0 for ...``

    @property
    def runnable(self) -> bool:
        return self.problem is None and self.bench is not None

    @property
    def fallback(self) -> str | None:
        """``built for Vulkan but found no Vulkan device; it runs on the CPU``, or None."""
        return fallback_text(self.cpu_fallback) if self.cpu_fallback else None

    @property
    def version(self) -> str:
        """Short version for tables: ``b8467 (abc1234)``, or what the build printed."""
        if self.build_number is None and self.commit is None:
            return "unknown" if not self.version_text else "no git info"
        number = f"b{self.build_number}" if self.build_number is not None else "b?"
        return f"{number} ({self.commit})" if self.commit else number

    def supports(self, *flags: str) -> bool:
        """True when this build's llama-bench accepts any of ``flags``."""
        return any(flag in self.flags for flag in flags)

    def launch_env(self) -> dict[str, str]:
        """The environment to start this build's tools with."""
        return {**os.environ, **self.env}

    def contender_args(self) -> list[str]:
        """llama-bench arguments that make this build the contender it is: its devices
        (``-dev``), RPC servers (``--rpc``) and its own settings (``-sm row -ts 1,1``)."""
        argv: list[str] = []
        if self.rpc:  # before -dev: the RPC devices exist only once registered
            argv += ["--rpc", ",".join(self.rpc)]
        if self.selected_devices is not None:
            argv += ["-dev", "/".join(self.selected_devices) or "none"]
        return argv + list(self.settings)

    def contender_json(self) -> dict[str, object]:
        """What this contender is beyond its build, for the journal (``as_contender``)."""
        data: dict[str, object] = {"backend": self.backend, "version": self.version,
                                   "machine": self.machine or platform.node()}
        if self.compiler:
            data["compiler"] = self.compiler  # a confound said aloud (profiles.confounds)
        if self.host is not None:
            data["host"] = self.host
        if self.selected_devices is not None:
            data["devices"] = list(self.selected_devices)
        if self.rpc:
            data["rpc"] = list(self.rpc)
        if self.settings:
            data["settings"] = list(self.settings)
        if self.cpu_fallback:
            data["cpu_fallback"] = self.cpu_fallback
        return data

    def as_contender(self, data: Mapping[str, JsonValue]) -> BuildInfo:
        """This build with the devices, RPC servers and settings a journal recorded."""
        devices = data.get("devices")
        return replace(self, selected_devices=None if devices is None else tuple(map(str, items_of(devices))),
                       rpc=tuple(map(str, items_of(data.get("rpc")))),
                       settings=tuple(map(str, items_of(data.get("settings")))))



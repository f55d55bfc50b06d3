"""How long reading a big model's metadata takes.

Writes a ~66 GB Qwen3-235B-A22B-shaped GGUF (47 of its 94 layers, Q4_0, 151,936-token
vocabulary) as a sparse file (only the header takes disk), then times
``backends.models.read_model`` on it and prints the median of several runs. With
``--compare-reader`` it also times ``gguf.GGUFReader`` once, for contrast.

    python benchmarks/gguf_metadata.py [--runs 7] [--keep DIR] [--compare-reader]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.models import read_model
from backends.tooling import synth

SHAPE = replace(
    synth.SHAPES["qwen3-30b-a3b"], name="Qwen3-235B-A22B-shaped, 47 layers", layers=47,
    embd=4096, heads=64, heads_kv=4, head_dim=128, experts=128, experts_used=8,
    expert_ff=1536,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="write the model here and keep it")
    parser.add_argument("--compare-reader", action="store_true",
                        help="also time gguf.GGUFReader once (takes seconds)")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        folder = options.keep or Path(scratch)
        path = folder / "big-moe.gguf"
        started = time.perf_counter()
        synth.write_model(path, SHAPE, data="sparse")
        written = time.perf_counter() - started
        stat = path.stat()
        print(f"model: {SHAPE.name}, {SHAPE.weight_type}")
        print(f"file: {stat.st_size / 1e9:.1f} GB apparent, {stat.st_blocks * 512 / 1e6:.1f} MB "
              f"on disk, written in {written:.2f} s")

        times = []
        for _ in range(options.runs):
            started = time.perf_counter()
            model = read_model(path)
            times.append(time.perf_counter() - started)
        assert model.runnable, model.problem
        print(f"read_model: median {statistics.median(times) * 1000:.1f} ms, "
              f"min {min(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms "
              f"over {options.runs} runs")
        print(f"  -> {model.parameters / 1e9:.1f}B parameters, {model.layers} layers, "
              f"{model.expert_count} experts ({model.experts_used} used), {model.quant}, "
              f"vocabulary {model.vocab_size}")

        if options.compare_reader:
            import gguf

            started = time.perf_counter()
            reader = gguf.GGUFReader(path)
            elapsed = time.perf_counter() - started
            print(f"gguf.GGUFReader (for contrast): {elapsed * 1000:.0f} ms, "
                  f"{len(reader.tensors)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())

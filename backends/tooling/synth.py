"""Generate real GGUF models that llama.cpp loads and runs: tiny ones for tests, real-shaped
ones (random weights) for GPU speed runs.

Speed does not depend on weight values, so a Qwen3-8B-shaped file of random Q8_0 blocks
races like the real thing. Big files are streamed: a small pool of valid quantized blocks
is tiled over each tensor, so writing 17 GB needs a few MiB of memory.

    python -m backends.tooling.synth OUT.gguf --shape tiny-llama|tiny-moe|qwen3-8b|qwen3-30b-a3b
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import gguf
import numpy as np
from gguf import GGMLQuantizationType, LlamaFileType, TokenType

WEIGHT_TYPES = {
    "F32": (GGMLQuantizationType.F32, LlamaFileType.ALL_F32),
    "F16": (GGMLQuantizationType.F16, LlamaFileType.MOSTLY_F16),
    "Q8_0": (GGMLQuantizationType.Q8_0, LlamaFileType.MOSTLY_Q8_0),
    "Q4_0": (GGMLQuantizationType.Q4_0, LlamaFileType.MOSTLY_Q4_0),
}

# How tensor bytes are produced: every value from a seeded generator, a tiled pool of
# valid random blocks (fast for big files), or nothing at all (a sparse hole; loads as
# zero weights, for metadata benchmarks).
DATA_MODES = ("random", "tiled", "sparse")


@dataclass(frozen=True)
class ModelShape:
    architecture: str  # llama, qwen3 or qwen3moe
    name: str
    layers: int
    embd: int
    heads: int
    heads_kv: int
    head_dim: int
    ff: int = 0  # dense feed-forward width
    experts: int = 0
    experts_used: int = 0
    expert_ff: int = 0
    vocab_size: int = 384
    context: int = 2048
    weight_type: str = "F32"

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def has_qk_norm(self) -> bool:
        return self.architecture in ("qwen3", "qwen3moe")


SHAPES: dict[str, ModelShape] = {
    "tiny-llama": ModelShape("llama", "tiny llama", layers=2, embd=64, heads=4, heads_kv=2,
                             head_dim=16, ff=128),
    "tiny-moe": ModelShape("qwen3moe", "tiny qwen3moe", layers=2, embd=64, heads=4, heads_kv=2,
                           head_dim=16, experts=8, experts_used=2, expert_ff=32),
    "qwen3-8b": ModelShape("qwen3", "Qwen3-8B-shaped random", layers=36, embd=4096, heads=32,
                           heads_kv=8, head_dim=128, ff=12288, vocab_size=151936,
                           context=40960, weight_type="Q8_0"),
    "qwen3-30b-a3b": ModelShape("qwen3moe", "Qwen3-30B-A3B-shaped random", layers=48,
                                embd=2048, heads=32, heads_kv=4, head_dim=128, experts=128,
                                experts_used=8, expert_ff=768, vocab_size=151936,
                                context=40960, weight_type="Q4_0"),
}


@dataclass(frozen=True)
class PlannedTensor:
    name: str
    ne: tuple[int, ...]  # ggml order: ne[0] is the row length
    qtype: GGMLQuantizationType

    @property
    def elements(self) -> int:
        return int(np.prod(self.ne))

    @property
    def nbytes(self) -> int:
        block, type_size = gguf.GGML_QUANT_SIZES[self.qtype]
        return self.elements // block * type_size

    @property
    def is_norm(self) -> bool:
        return len(self.ne) == 1


def tensor_plan(shape: ModelShape) -> list[PlannedTensor]:
    """Every tensor llama.cpp expects for this architecture, in file order."""
    weight = WEIGHT_TYPES[shape.weight_type][0]
    f32 = GGMLQuantizationType.F32
    q_dim = shape.heads * shape.head_dim
    kv_dim = shape.heads_kv * shape.head_dim
    plan = [PlannedTensor("token_embd.weight", (shape.embd, shape.vocab_size), weight)]
    for i in range(shape.layers):
        blk = f"blk.{i}"
        plan += [
            PlannedTensor(f"{blk}.attn_norm.weight", (shape.embd,), f32),
            PlannedTensor(f"{blk}.attn_q.weight", (shape.embd, q_dim), weight),
            PlannedTensor(f"{blk}.attn_k.weight", (shape.embd, kv_dim), weight),
            PlannedTensor(f"{blk}.attn_v.weight", (shape.embd, kv_dim), weight),
            PlannedTensor(f"{blk}.attn_output.weight", (q_dim, shape.embd), weight),
        ]
        if shape.has_qk_norm:
            plan += [
                PlannedTensor(f"{blk}.attn_q_norm.weight", (shape.head_dim,), f32),
                PlannedTensor(f"{blk}.attn_k_norm.weight", (shape.head_dim,), f32),
            ]
        plan.append(PlannedTensor(f"{blk}.ffn_norm.weight", (shape.embd,), f32))
        if shape.is_moe:
            plan += [
                # The router stays F32, as converters leave it.
                PlannedTensor(f"{blk}.ffn_gate_inp.weight", (shape.embd, shape.experts), f32),
                PlannedTensor(f"{blk}.ffn_gate_exps.weight",
                              (shape.embd, shape.expert_ff, shape.experts), weight),
                PlannedTensor(f"{blk}.ffn_up_exps.weight",
                              (shape.embd, shape.expert_ff, shape.experts), weight),
                PlannedTensor(f"{blk}.ffn_down_exps.weight",
                              (shape.expert_ff, shape.embd, shape.experts), weight),
            ]
        else:
            plan += [
                PlannedTensor(f"{blk}.ffn_gate.weight", (shape.embd, shape.ff), weight),
                PlannedTensor(f"{blk}.ffn_up.weight", (shape.embd, shape.ff), weight),
                PlannedTensor(f"{blk}.ffn_down.weight", (shape.ff, shape.embd), weight),
            ]
    plan += [
        PlannedTensor("output_norm.weight", (shape.embd,), f32),
        PlannedTensor("output.weight", (shape.embd, shape.vocab_size), weight),
    ]
    return plan


# --- tokenizer ---------------------------------------------------------------------------

_WORDS = (  # noqa: SIM905 - a word list reads best as words
    "hello world llama model token speed test prompt "
    "the of and to in is that it for was on are as with his they at be this from have or "
    "by one had not but what all were when we there can an your which their said if do "
    "will each about how up out them then she many some so these would other into has more "
    "her two like him see time could no make than first been its who now people my made "
    "over did down only way find use may water long little very after words called just "
    "where most know"
).split()


def spm_vocab(size: int) -> tuple[list[str], list[float], list[int]]:
    """A SentencePiece ('llama') vocabulary: <unk> <s> </s>, the 256 byte-fallback tokens (so
    any text tokenizes), letters and common words, then unused fillers up to ``size``."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [TokenType.BYTE] * 256
    pieces = ["▁", *list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")]
    pieces += [f"\u2581{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    pieces += [f"\u2581{w}" for w in _WORDS]
    seen = set(tokens)
    for piece in pieces:
        if piece not in seen and len(tokens) < size:
            seen.add(piece)
            tokens.append(piece)
            types.append(TokenType.NORMAL)
    if len(tokens) < 259:
        raise ValueError("a SentencePiece vocabulary needs at least 259 tokens")
    while len(tokens) < size:
        tokens.append(f"<unused{len(tokens)}>")
        types.append(TokenType.UNUSED)
    # Longer pieces score higher, so SentencePiece merges whole words first.
    scores = [0.0 if t != TokenType.NORMAL else float(len(tok)) for tok, t in zip(tokens, types)]
    return tokens, scores, [int(t) for t in types]


# --- writing -----------------------------------------------------------------------------

def _add_metadata(writer: gguf.GGUFWriter, shape: ModelShape) -> None:
    arch = shape.architecture
    writer.add_name(shape.name)
    writer.add_file_type(int(WEIGHT_TYPES[shape.weight_type][1]))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.embd)
    writer.add_block_count(shape.layers)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.heads_kv)
    writer.add_key_length(shape.head_dim)
    writer.add_value_length(shape.head_dim)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(1_000_000.0 if arch != "llama" else 10_000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_vocab_size(shape.vocab_size)
    if shape.is_moe:
        writer.add_feed_forward_length(shape.expert_ff * shape.experts_used)
        writer.add_expert_count(shape.experts)
        writer.add_expert_used_count(shape.experts_used)
        writer.add_expert_feed_forward_length(shape.expert_ff)
    else:
        writer.add_feed_forward_length(shape.ff)
    tokens, scores, types = spm_vocab(shape.vocab_size)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)


EOS_ID = 2  # </s> in ``spm_vocab``
# An end-of-text-first model: every token's embedding carries a large constant in its first
# dimension, which the random layers barely move, and only the end-of-text row of the
# output reads that dimension, so its logit wins after any context (about 20x the
# hidden state's first value, against random logits near 1 for every other token).
_EOS_EMBED = 4.0
_EOS_WEIGHT = 20.0


def _random_bytes(tensor: PlannedTensor, rng: np.random.Generator, eos_first: bool = False) -> bytes:
    if tensor.is_norm:
        return np.ones(tensor.ne, dtype=np.float32).tobytes()
    values = rng.standard_normal(tensor.elements, dtype=np.float32) * np.float32(0.05)
    rows = values.reshape(-1, tensor.ne[0])
    if eos_first and tensor.name == "token_embd.weight":
        rows[:, 0] = _EOS_EMBED
    elif eos_first and tensor.name == "output.weight":
        rows[:, 0] = 0.0
        rows[EOS_ID, 0] = _EOS_WEIGHT
    return gguf.quants.quantize(rows, tensor.qtype).tobytes()


_POOL_BYTES = 8 << 20


def _block_pool(qtype: GGMLQuantizationType, seed: int) -> memoryview:
    """About 8 MiB of valid random blocks of ``qtype``; tiling it fills any tensor whose
    byte size is a whole number of blocks."""
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = _POOL_BYTES // type_size
    rng = np.random.default_rng([seed, int(qtype)])
    values = rng.standard_normal(blocks * block, dtype=np.float32) * np.float32(0.05)
    data = gguf.quants.quantize(values.reshape(blocks, block), qtype)
    return memoryview(np.ascontiguousarray(data).tobytes())


def _write_tiled(fout: BinaryIO, nbytes: int, pool: memoryview) -> None:
    remaining = nbytes
    while remaining:
        n = min(remaining, len(pool))
        fout.write(pool[:n])
        remaining -= n


def _pad(fout: BinaryIO, alignment: int, sparse: bool) -> None:
    position = fout.tell()
    padding = -position % alignment
    if padding:
        if sparse:
            fout.seek(padding, 1)
        else:
            fout.write(b"\0" * padding)


def write_model(path: str | Path, shape: ModelShape, *, seed: int = 0, data: str = "random",
                split_max_tensors: int = 0, eos_first: bool = False) -> list[Path]:
    """Write ``shape`` as GGUF at ``path``; returns the files written (several when
    ``split_max_tensors`` splits it like gguf-split does: ``NAME-00001-of-00003.gguf``).

    ``eos_first``: greedy decoding predicts end-of-text as the first token after any
    prompt (a model that always stops at once unless told to ignore it); random data only."""
    if data not in DATA_MODES:
        raise ValueError(f"data must be one of {DATA_MODES}, not {data!r}")
    if eos_first and data != "random":
        raise ValueError("an end-of-text-first model needs random data, every value written")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plan = tensor_plan(shape)
    writer = gguf.GGUFWriter(path, shape.architecture, split_max_tensors=split_max_tensors)
    _add_metadata(writer, shape)
    for tensor in plan:
        numpy_shape = tuple(reversed(tensor.ne))
        if tensor.qtype == GGMLQuantizationType.F32:
            writer.add_tensor_info(tensor.name, numpy_shape, np.dtype(np.float32), tensor.nbytes)
        elif tensor.qtype == GGMLQuantizationType.F16:
            writer.add_tensor_info(tensor.name, numpy_shape, np.dtype(np.float16), tensor.nbytes)
        else:
            byte_shape = gguf.quant_shape_to_byte_shape(numpy_shape, tensor.qtype)
            writer.add_tensor_info(tensor.name, byte_shape, np.dtype(np.uint8), tensor.nbytes,
                                   raw_dtype=tensor.qtype)
    by_name = {t.name: t for t in plan}
    index = {t.name: i for i, t in enumerate(plan)}
    shards = [list(names) for names in writer.tensors]
    files = writer.format_shard_names(path)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    assert writer.fout is not None
    pools: dict[GGMLQuantizationType, memoryview] = {}
    sparse = data == "sparse"
    for fout, names in zip(writer.fout, shards):
        _pad(fout, writer.data_alignment, sparse)
        for name in names:
            tensor = by_name[name]
            if sparse:
                fout.seek(tensor.nbytes, 1)
            elif data == "random" or tensor.is_norm or tensor.nbytes < _POOL_BYTES:
                rng = np.random.default_rng([seed, index[name]])
                fout.write(_random_bytes(tensor, rng, eos_first))
            else:
                if tensor.qtype not in pools:
                    pools[tensor.qtype] = _block_pool(tensor.qtype, seed)
                _write_tiled(fout, tensor.nbytes, pools[tensor.qtype])
            _pad(fout, writer.data_alignment, sparse)
        fout.truncate()  # sets the length when the data region is a hole
    writer.close()
    return files


def write_tiny_llama(path: str | Path, *, layers: int = 2, embd: int = 64, heads: int = 4,
                     heads_kv: int = 2, ff: int = 128, vocab_size: int = 384,
                     context: int = 2048, weight_type: str = "F32", seed: int = 0,
                     name: str = "tiny llama", eos_first: bool = False) -> Path:
    """A small dense llama model (~0.2 MB in F32) that llama.cpp runs in milliseconds;
    ``eos_first``: one whose greedy answer is end-of-text at once."""
    shape = replace(SHAPES["tiny-llama"], layers=layers, embd=embd, heads=heads,
                    heads_kv=heads_kv, head_dim=embd // heads, ff=ff, vocab_size=vocab_size,
                    context=context, weight_type=weight_type, name=name)
    return write_model(path, shape, seed=seed, eos_first=eos_first)[0]


def write_tiny_moe(path: str | Path, *, experts: int = 8, experts_used: int = 2,
                   layers: int = 2, embd: int = 64, heads: int = 4, heads_kv: int = 2,
                   expert_ff: int = 32, vocab_size: int = 384, context: int = 2048,
                   weight_type: str = "F32", seed: int = 0,
                   name: str = "tiny qwen3moe") -> Path:
    """A small qwen3moe model (mixture of experts) that llama.cpp runs in milliseconds."""
    shape = replace(SHAPES["tiny-moe"], experts=experts, experts_used=experts_used,
                    layers=layers, embd=embd, heads=heads, heads_kv=heads_kv,
                    head_dim=embd // heads, expert_ff=expert_ff, vocab_size=vocab_size,
                    context=context, weight_type=weight_type, name=name)
    return write_model(path, shape, seed=seed)[0]


def planned_size(shape: ModelShape) -> int:
    """Bytes of tensor data (without the header) a shape writes."""
    return sum(t.nbytes for t in tensor_plan(shape))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backends.tooling.synth",
                                     description="Write a GGUF model with random weights.")
    parser.add_argument("out", type=Path, help="file to write (.gguf)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny-llama")
    parser.add_argument("--type", dest="weight_type", choices=sorted(WEIGHT_TYPES),
                        help="weight type (default: the shape's own)")
    parser.add_argument("--data", choices=DATA_MODES,
                        help="random: every value seeded; tiled: a pool of random blocks "
                        "repeated (default for big shapes); sparse: a hole, zero weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eos-first", action="store_true",
                        help="greedy decoding predicts end-of-text first after any prompt")
    options = parser.parse_args(argv)
    shape = SHAPES[options.shape]
    if options.weight_type:
        shape = replace(shape, weight_type=options.weight_type)
    data = options.data or ("tiled" if planned_size(shape) > 256 << 20 else "random")
    try:
        files = write_model(options.out, shape, seed=options.seed, data=data,
                            eos_first=options.eos_first)
    except (OSError, ValueError, NotImplementedError) as error:
        print(f"synth: {error}", file=sys.stderr)
        return 1
    for file in files:
        print(f"{file}\t{file.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

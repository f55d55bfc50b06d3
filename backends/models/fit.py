"""Whether a model fits in device memory, and the -ncmoe that makes a MoE fit."""

from __future__ import annotations

from dataclasses import dataclass

import gguf
from gguf import GGMLQuantizationType

from backends.models.info import ModelInfo

# --- fitting in memory ---------------------------------------------------------------------

GIB = 1 << 30
MIB = 1 << 20
COMPUTE_BASE_BYTES = 256 * MIB
UBATCH = 512


@dataclass(frozen=True)
class FitEstimate:
    fits: bool
    needed_bytes: int
    suggested_ncmoe: int | None
    reason: str
    weights_bytes: int = 0
    kv_bytes: int = 0
    compute_bytes: int = 0
    needed_with_ncmoe_bytes: int | None = None


def cache_type_bytes(type_name: str) -> float:
    """Bytes per element of a KV cache type (``f16``, ``q8_0``, ...)."""
    try:
        qtype = GGMLQuantizationType[type_name.upper()]
    except KeyError:
        raise ValueError(f"unknown cache type {type_name!r}") from None
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    return type_size / block


def kv_cache_bytes(model: ModelInfo, context: int, type_k: str = "f16",
                   type_v: str = "f16") -> int:
    """layers x context x (kv heads x head size) for K and for V."""
    layers = model.layers or 0
    kv_heads = model.head_count_kv or 0
    k_elements = layers * context * kv_heads * (model.key_length or 0)
    v_elements = layers * context * kv_heads * (model.value_length or 0)
    return int(k_elements * cache_type_bytes(type_k) + v_elements * cache_type_bytes(type_v))


def compute_buffer_bytes(model: ModelInfo, ubatch: int = UBATCH) -> int:
    """A margin for llama.cpp's compute buffer: a fixed part plus one batch of logits."""
    return COMPUTE_BASE_BYTES + ubatch * (model.vocab_size or 0) * 4


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def estimate_fit(model: ModelInfo, free_bytes: int, context: int, type_k: str = "f16",
                 type_v: str = "f16") -> FitEstimate:
    """Whether ``model`` with a ``context``-token KV cache fits in ``free_bytes`` of device
    memory; for a MoE that does not, the smallest ``-ncmoe`` (first N layers' experts on
    the CPU) that does."""
    if not model.runnable:
        return FitEstimate(False, 0, None, model.problem or "not runnable")
    weights = model.tensor_bytes
    kv = kv_cache_bytes(model, context, type_k, type_v)
    compute = compute_buffer_bytes(model)
    needed = weights + kv + compute
    parts = dict(weights_bytes=weights, kv_bytes=kv, compute_bytes=compute)
    if needed <= free_bytes:
        return FitEstimate(True, needed, None,
                           f"fits: needs {_gib(needed)} of {_gib(free_bytes)} free", **parts)
    short = f"needs {_gib(needed)}, {_gib(free_bytes)} free"
    if not model.is_moe or not model.expert_bytes_by_layer:
        return FitEstimate(False, needed, None,
                           f"does not fit: {short} (offload fewer layers with -ngl)", **parts)
    on_gpu = needed
    for n, layer_bytes in enumerate(model.expert_bytes_by_layer, start=1):
        on_gpu -= layer_bytes
        if on_gpu <= free_bytes:
            return FitEstimate(False, needed, n,
                               f"does not fit whole: {short}; -ncmoe {n} keeps {n} layers' "
                               f"experts on the CPU and needs {_gib(on_gpu)}",
                               needed_with_ncmoe_bytes=on_gpu, **parts)
    return FitEstimate(False, needed, None,
                       f"does not fit: {short}, {_gib(on_gpu)} even with every layer's "
                       "experts on the CPU", needed_with_ncmoe_bytes=on_gpu, **parts)

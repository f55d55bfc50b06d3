"""What a model is: its facts as read from the GGUF header, and the constants."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import gguf
from gguf import GGUFValueType

from backends.journal import codec

KNOWN_ARCHITECTURES = frozenset(gguf.MODEL_ARCH_NAMES.values())
SPLIT_NAME = re.compile(r"^(?P<base>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$", re.I)
EXPERT_TENSOR = re.compile(r"^blk\.(?P<layer>\d+)\.\w*_exps(\.\w+)*$")
# Numeric arrays up to this length are kept (per-layer head counts); longer ones, and all
# string arrays (the vocabulary), are only counted.
SMALL_ARRAY = 4096

_SCALARS: dict[int, str] = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h", GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<?", GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d",
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")



class ModelSearchError(ValueError):
    """A folder to search is missing or not a folder (one-line message)."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path  # the file to pass to llama.cpp (the first part of a split model)
    files: tuple[Path, ...]
    name: str
    architecture: str | None = None
    parameters: int | None = None
    size_bytes: int = 0  # on disk, all parts
    quant: str | None = None
    layers: int | None = None
    context_length: int | None = None
    expert_count: int = 0
    experts_used: int = 0
    embedding_length: int | None = None
    head_count: int | None = None
    head_count_kv: int | None = None
    problem: str | None = None
    key_length: int | None = None
    value_length: int | None = None
    vocab_size: int | None = None
    tensor_bytes: int = 0  # weights as llama.cpp loads them
    expert_bytes_by_layer: tuple[int, ...] = ()  # bytes of *_exps tensors in each layer

    @property
    def is_moe(self) -> bool:
        return self.expert_count > 1

    @property
    def runnable(self) -> bool:
        return self.problem is None

    @property
    def kind(self) -> str:
        """``dense`` or ``MoE 128x8`` (experts x used per token)."""
        return f"MoE {self.expert_count}x{self.experts_used}" if self.is_moe else "dense"

    def to_json(self) -> dict[str, object]:
        """Every field as plain data, plus what is derived from them (for ``models --json``)."""
        return {**codec.to_builtins(self), "is_moe": self.is_moe, "runnable": self.runnable}



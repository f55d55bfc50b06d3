"""Find GGUF models and read what they are, without reading their weights.

The header (metadata and tensor table) is parsed straight from a read-only memory map with
the ``gguf`` package's constants: only the pages holding the header are touched, so a 60 GB
file reads as fast as a small one. (``gguf.GGUFReader`` builds a Python object for every
token of a 150k vocabulary and takes seconds on such a file.)

Models split by gguf-split (``NAME-00001-of-00003.gguf``) are one model: sizes and tensors
are summed over the parts, and a missing part is a problem. A file that cannot be used is
still listed, with a one-line ``problem``.
"""

from __future__ import annotations

import mmap
import os
import stat
import re
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from backends import codec
from gguf import GGMLQuantizationType, GGUFValueType, LlamaFileType

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

    def to_json(self) -> dict[str, Any]:
        """Every field as plain data, plus what is derived from them (for ``models --json``)."""
        return {**codec.to_builtins(self), "is_moe": self.is_moe, "runnable": self.runnable}


# --- header parsing ------------------------------------------------------------------------

class HeaderError(Exception):
    """The file is not a usable GGUF file; the message is one line."""


class HeaderTruncated(HeaderError):
    """The bytes at hand end inside the header (the file may hold more)."""


@dataclass(frozen=True)
class TensorEntry:
    name: str
    shape: tuple[int, ...]  # ggml order
    type_id: int
    offset: int  # from the start of the data region

    @property
    def elements(self) -> int:
        count = 1
        for n in self.shape:
            count *= n
        return count

    @property
    def nbytes(self) -> int:
        block, type_size = gguf.GGML_QUANT_SIZES[GGMLQuantizationType(self.type_id)]
        return self.elements // block * type_size


@dataclass(frozen=True)
class ArrayInfo:
    """An array value not kept in full: its item type and length."""
    item_type: int
    count: int


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    metadata: Mapping[str, Any]
    tensors: tuple[TensorEntry, ...]
    data_offset: int
    file_size: int


class _Cursor:
    def __init__(self, buffer: mmap.mmap | bytes, size: int) -> None:
        self.buffer = buffer
        self.size = size
        self.pos = 0

    def need(self, n: int) -> None:
        if n < 0:
            raise HeaderError("corrupt header (negative length)")
        if self.pos + n > self.size:
            raise HeaderTruncated(f"truncated: the header ends early at byte {self.size}")

    def u32(self) -> int:
        self.need(4)
        value = _U32.unpack_from(self.buffer, self.pos)[0]
        self.pos += 4
        return value

    def u64(self) -> int:
        self.need(8)
        value = _U64.unpack_from(self.buffer, self.pos)[0]
        self.pos += 8
        return value

    def string(self) -> str:
        length = self.u64()
        self.need(length)
        text = bytes(self.buffer[self.pos:self.pos + length]).decode("utf-8", "replace")
        self.pos += length
        return text

    def skip_strings(self, count: int) -> None:
        buffer, pos, size, unpack = self.buffer, self.pos, self.size, _U64.unpack_from
        for _ in range(count):
            if pos + 8 > size:
                raise HeaderTruncated(f"truncated: the header ends early at byte {size}")
            pos += 8 + unpack(buffer, pos)[0]
        if pos > size:
            raise HeaderTruncated(f"truncated: the header ends early at byte {size}")
        self.pos = pos

    def value(self, value_type: int) -> Any:
        if value_type == GGUFValueType.STRING:
            return self.string()
        if value_type == GGUFValueType.ARRAY:
            item_type = self.u32()
            count = self.u64()
            return self.array(item_type, count)
        fmt = _SCALARS.get(value_type)
        if fmt is None:
            raise HeaderError(f"unknown metadata value type {value_type}")
        width = struct.calcsize(fmt)
        self.need(width)
        value = struct.unpack_from(fmt, self.buffer, self.pos)[0]
        self.pos += width
        return value

    def array(self, item_type: int, count: int) -> Any:
        if item_type == GGUFValueType.STRING:
            self.skip_strings(count)
            return ArrayInfo(item_type, count)
        fmt = _SCALARS.get(item_type)
        if fmt is None:
            raise HeaderError(f"unsupported metadata array of type {item_type}")
        width = struct.calcsize(fmt)
        self.need(width * count)
        if count <= SMALL_ARRAY:
            values = struct.unpack_from(f"<{count}{fmt[1]}", self.buffer, self.pos)
            self.pos += width * count
            return tuple(values)
        self.pos += width * count
        return ArrayInfo(item_type, count)


def read_header(path: Path) -> GGUFHeader:
    """Parse a GGUF file's metadata and tensor table; raises HeaderError (one line)."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise HeaderError("not a GGUF file (empty)")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return _parse(mapped, size)


def parse_header_bytes(data: bytes, file_size: int) -> GGUFHeader:
    """Parse the header from the first bytes of a file of ``file_size`` bytes (a file on
    another machine, fetched in part). HeaderTruncated when ``data`` ends inside the header
    and the file is longer: fetch more and try again."""
    try:
        return _parse(data, len(data), file_size)
    except HeaderTruncated:
        if len(data) >= file_size:
            raise HeaderError(f"truncated: the header ends early at byte {file_size}") from None
        raise


def _parse(buffer: mmap.mmap | bytes, size: int, file_size: int | None = None) -> GGUFHeader:
    """``size``: the bytes in ``buffer``; ``file_size``: the whole file's (default: the same)."""
    file_size = size if file_size is None else file_size
    cursor = _Cursor(buffer, size)
    if size < 4 and file_size > size:
        raise HeaderTruncated("need the first bytes")
    if size < 4 or buffer[:4] != b"GGUF":
        raise HeaderError("not a GGUF file (bad magic)")
    cursor.pos = 4
    version = cursor.u32()
    if version > 0xFFFF:
        raise HeaderError("big-endian GGUF files are not supported")
    if version < 2:
        raise HeaderError(f"GGUF version {version} is too old (re-convert the model)")
    n_tensors = cursor.u64()
    n_kv = cursor.u64()
    # Every entry consumes header bytes, so corrupt counts end at the file's end as
    # "truncated" rather than looping long.
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cursor.string()
        metadata[key] = cursor.value(cursor.u32())
    tensors = []
    for _ in range(n_tensors):
        name = cursor.string()
        n_dims = cursor.u32()
        if n_dims > 8:
            raise HeaderError(f"corrupt tensor table ({name!r} has {n_dims} dimensions)")
        shape = tuple(cursor.u64() for _ in range(n_dims))
        type_id = cursor.u32()
        offset = cursor.u64()
        if type_id not in gguf.GGML_QUANT_SIZES:
            raise HeaderError(f"tensor {name} has unknown type {type_id} "
                              "(made by a newer llama.cpp?)")
        tensors.append(TensorEntry(name, shape, type_id, offset))
    alignment = metadata.get("general.alignment", gguf.GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0:
        alignment = gguf.GGUF_DEFAULT_ALIGNMENT
    data_offset = -(-cursor.pos // alignment) * alignment
    header = GGUFHeader(version, metadata, tuple(tensors), data_offset, file_size)
    needed = data_offset + max((t.offset + t.nbytes for t in tensors), default=0)
    if needed > file_size:
        raise HeaderError(f"truncated: tensor data needs {needed} bytes, the file has {file_size}")
    return header


# --- models --------------------------------------------------------------------------------

def split_parts(path: Path) -> tuple[list[Path], str | None]:
    """All parts of the split model ``path`` belongs to, and a problem if some are missing.
    A file that is not split is its own single part."""
    match = SPLIT_NAME.match(path.name)
    if not match:
        return [path], None
    count = int(match["count"])
    base = match["base"]
    parts = [path.with_name(f"{base}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [str(i) for i, part in enumerate(parts, 1) if not part.is_file()]
    problem = None
    if missing:
        problem = (f"split model is missing part{'s' if len(missing) > 1 else ''} "
                   f"{', '.join(missing)} of {count}")
    return [p for p in parts if p.is_file()], problem


def _model_name(path: Path) -> str:
    match = SPLIT_NAME.match(path.name)
    return match["base"] if match else path.stem


def _first_int(value: Any) -> int | None:
    """An integer hyperparameter; per-layer arrays give their largest value."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, tuple) and value and all(isinstance(v, int) for v in value):
        return max(value)
    return None


def _quant_name(metadata: Mapping[str, Any], tensors: Iterable[TensorEntry]) -> str | None:
    file_type = metadata.get("general.file_type")
    if isinstance(file_type, int):
        try:
            name = LlamaFileType(file_type).name
        except ValueError:
            name = None
        if name and name != "GUESSED":
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
    # No file type: the tensor type holding most of the weights.
    by_bytes: Counter[str] = Counter()
    for tensor in tensors:
        by_bytes[GGMLQuantizationType(tensor.type_id).name] += tensor.nbytes
    return by_bytes.most_common(1)[0][0] if by_bytes else None


def _not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a model without blocking (a FIFO, a device), or None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # read_header says what is wrong
    if stat.S_ISREG(mode):
        return None
    kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    return f"is {kind}, not a model file"


def _gguf_files(root: Path) -> list[Path]:
    """``.gguf`` files under ``root``, following folder links but never around a loop."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            info = folder.stat()
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue  # unreadable or a loop: skipped, the rest is searched
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                pending.append(path)
            elif path.suffix.lower() == ".gguf":
                # Broken and looping links are kept: models the user expects to see, unreadable.
                found.append(path)
    return sorted(found)


def read_model(path: str | Path) -> ModelInfo:
    """What a GGUF model is. Never raises: bad files come back with ``problem`` set."""
    path = Path(path)
    parts, missing_problem = split_parts(path)
    first = parts[0] if parts else path
    name = _model_name(path)
    size = 0
    for part in parts:
        try:
            size += part.stat().st_size
        except OSError:
            pass
    base = ModelInfo(path=first, files=tuple(parts), name=name, size_bytes=size)
    for part in parts:
        special = _not_a_regular_file(part)
        if special:
            return _with_problem(base, special)
    try:
        headers = [(part, read_header(part)) for part in parts]
    except HeaderError as error:
        return _with_problem(base, str(error))
    except PermissionError:
        return _with_problem(base, "cannot read the file (permission denied)")
    except IsADirectoryError:
        return _with_problem(base, "is a folder, not a file")
    except OSError as error:
        return _with_problem(base, f"cannot read the file ({error.strerror or error})")
    return model_from_headers(base, headers, missing_problem)


def model_from_headers(base: ModelInfo, headers: list[tuple[Path, GGUFHeader]],
                       missing_problem: str | None) -> ModelInfo:
    """What a model is, from the headers of its parts (``base``: its path, files, name and
    size; ``missing_problem``: parts that are missing)."""
    first, parts, name, size = base.path, base.files, base.name, base.size_bytes
    if not headers:
        return _with_problem(base, missing_problem or "no such file")

    metadata = dict(headers[0][1].metadata)
    tensors = [t for _, header in headers for t in header.tensors]
    arch = metadata.get("general.architecture")
    arch = arch if isinstance(arch, str) else None
    title = metadata.get("general.name")

    def arch_int(key: str) -> int | None:
        return _first_int(metadata.get(f"{arch}.{key}")) if arch else None

    layers = arch_int("block_count")
    head_count = arch_int("attention.head_count")
    head_count_kv = arch_int("attention.head_count_kv") or head_count
    embd = arch_int("embedding_length")
    key_length = arch_int("attention.key_length")
    if key_length is None and embd and head_count:
        key_length = embd // head_count
    value_length = arch_int("attention.value_length") or key_length
    vocab = arch_int("vocab_size")
    tokens = metadata.get("tokenizer.ggml.tokens")
    if vocab is None and isinstance(tokens, ArrayInfo):
        vocab = tokens.count

    problem = missing_problem or _split_problem(headers) or _content_problem(arch, tensors)
    return ModelInfo(
        path=first, files=tuple(parts),
        name=title if isinstance(title, str) and title.strip() else name,
        architecture=arch,
        parameters=sum(t.elements for t in tensors),
        size_bytes=size,
        quant=_quant_name(metadata, tensors),
        layers=layers,
        context_length=arch_int("context_length"),
        expert_count=arch_int("expert_count") or 0,
        experts_used=arch_int("expert_used_count") or 0,
        embedding_length=embd,
        head_count=head_count,
        head_count_kv=head_count_kv,
        problem=problem,
        key_length=key_length,
        value_length=value_length,
        vocab_size=vocab,
        tensor_bytes=sum(t.nbytes for t in tensors),
        expert_bytes_by_layer=_expert_bytes(tensors, layers),
    )


def _expert_bytes(tensors: Iterable[TensorEntry], layers: int | None) -> tuple[int, ...]:
    """Bytes of each layer's ``*_exps`` tensors (() for a dense model)."""
    expert_bytes: dict[int, int] = {}
    for tensor in tensors:
        match = EXPERT_TENSOR.match(tensor.name)
        if match:
            layer = int(match["layer"])
            expert_bytes[layer] = expert_bytes.get(layer, 0) + tensor.nbytes
    if not expert_bytes:
        return ()
    count = max([layers or 0, *(k + 1 for k in expert_bytes)])
    return tuple(expert_bytes.get(i, 0) for i in range(count))


def _content_problem(arch: str | None, tensors: list[TensorEntry]) -> str | None:
    if arch is None:
        return "no general.architecture in the metadata"
    if arch == "clip":
        return "a multimodal projector (mmproj), not a language model"
    if arch not in KNOWN_ARCHITECTURES:
        return f"unknown architecture {arch!r}"
    return None if tensors else "holds no tensors"


def _split_problem(headers: list[tuple[Path, GGUFHeader]]) -> str | None:
    if len(headers) < 2:
        return None
    declared = headers[0][1].metadata.get("split.count")
    if isinstance(declared, int) and declared != len(headers):
        return f"split metadata says {declared} parts, found {len(headers)}"
    return None


def _with_problem(model: ModelInfo, problem: str) -> ModelInfo:
    return ModelInfo(path=model.path, files=model.files, name=model.name,
                     size_bytes=model.size_bytes, problem=problem)


def find_models(dirs: Iterable[str | Path]) -> list[ModelInfo]:
    """Every GGUF model under ``dirs`` (searched recursively; a .gguf file may be named
    directly). Split parts come back as one model. Raises ModelSearchError (one line) for a
    missing folder."""
    seen: set[Path] = set()
    models: list[ModelInfo] = []
    for entry in dirs:
        root = Path(entry).expanduser()
        if root.is_file():
            candidates = [root]
        elif root.is_dir():
            candidates = _gguf_files(root)
        elif root.exists():
            raise ModelSearchError(f"not a folder or file: {root}")
        else:
            raise ModelSearchError(f"no such folder: {root}")
        for candidate in candidates:
            parts, _ = split_parts(candidate)
            # realpath, not resolve(): a link that loops must not raise.
            key = Path(os.path.realpath(parts[0] if parts else candidate))
            group = SPLIT_NAME.match(candidate.name)
            if group:
                key = Path(os.path.realpath(candidate.with_name(f"{group['base']}-of-{group['count']}")))
            if key in seen:
                continue
            seen.add(key)
            models.append(read_model(candidate))
    return models


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

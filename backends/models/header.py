"""The GGUF header (metadata and tensor table), parsed from a read-only memory map."""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import gguf
from gguf import GGMLQuantizationType, GGUFValueType

from backends.models.info import _SCALARS, _U32, _U64, SMALL_ARRAY

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
    metadata: Mapping[str, object]
    tensors: tuple[TensorEntry, ...]
    data_offset: int
    file_size: int


# One metadata value as read: a scalar, a short numeric array, or a long one left unread.
MetaValue = str | int | float | bool | tuple[int | float | bool, ...] | ArrayInfo


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
        value = int(_U32.unpack_from(self.buffer, self.pos)[0])
        self.pos += 4
        return value

    def u64(self) -> int:
        self.need(8)
        value = int(_U64.unpack_from(self.buffer, self.pos)[0])
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

    def value(self, value_type: int) -> MetaValue:
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
        value: int | float | bool = struct.unpack_from(fmt, self.buffer, self.pos)[0]
        self.pos += width
        return value

    def array(self, item_type: int, count: int) -> MetaValue:
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
    metadata: dict[str, object] = {}
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



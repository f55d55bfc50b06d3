"""One codec for everything llamaduel writes: journal events, profiles, telemetry, probes.

Records are frozen dataclasses; msgspec encodes and decodes them from their type hints, so
adding a field means adding it to the dataclass and nothing else. A journal line carries
its record's type name in a ``type`` field, which selects the class to decode it into.

msgspec was chosen by measurement (``python3 benchmarks/codec_choice.py``): a 10,000-event
journal encodes 30 times and decodes 1.8 times faster than with the standard json module,
``dataclasses.asdict`` and a constructor per class (43 ms against 1,313 ms, 77 ms against
137 ms on a busy two-core machine), and no codec code is written per class.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


class CodecError(ValueError):
    """A record that cannot be decoded: the message says what and where, in one line."""


def _enc_hook(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _dec_hook(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(f"cannot decode {kind!r}")


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)


class _Tag(msgspec.Struct):
    type: str = ""


_TAG = msgspec.json.Decoder(_Tag)


def encode(record: object) -> bytes:
    """JSON bytes of any record (no type tag)."""
    return _ENCODER.encode(record)


def decode(data: bytes | str, kind: type[T]) -> T:
    """A ``kind`` from JSON; CodecError names the bad field."""
    try:
        return msgspec.json.decode(data, type=kind, dec_hook=_dec_hook)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise CodecError(str(error)) from None


def to_builtins(record: object) -> Any:
    """Plain dicts, lists, strings and numbers (for TOML and JSON exports)."""
    return msgspec.to_builtins(record, enc_hook=_enc_hook)


def from_builtins(data: object, kind: type[T]) -> T:
    """A ``kind`` from plain data (a TOML table, a JSON object); unknown keys are ignored."""
    try:
        return msgspec.convert(data, type=kind, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as error:
        raise CodecError(str(error)) from None


class Registry:
    """Tagged records of several types in one stream (a journal): encode and decode by name."""

    def __init__(self, kinds: Iterable[type]) -> None:
        self._kinds: dict[str, type] = {}
        for kind in kinds:
            if kind.__name__ in self._kinds:
                raise ValueError(f"two record types named {kind.__name__}")
            self._kinds[kind.__name__] = kind
        self._decoders: dict[str, msgspec.json.Decoder[object]] = {name: msgspec.json.Decoder(kind, dec_hook=_dec_hook)
                          for name, kind in self._kinds.items()}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def encode(self, record: object) -> bytes:
        name = type(record).__name__
        if name not in self._kinds:
            raise CodecError(f"{name} is not a journal record type")
        body = _ENCODER.encode(record)
        tag = b'{"type":"' + name.encode() + b'"'
        return tag + (b"}" if body == b"{}" else b"," + body[1:])

    def decode(self, line: bytes | str) -> object:
        """The record on one line; CodecError says why it is not one."""
        try:
            name = _TAG.decode(line).type
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise CodecError(f"not a JSON record: {error}") from None
        decoder = self._decoders.get(name)
        if decoder is None:
            raise CodecError(f"unknown record type {name!r}")
        try:
            return decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise CodecError(f"{name}: {error}") from None

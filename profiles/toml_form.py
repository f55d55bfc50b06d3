"""Profiles as TOML text: dataclasses to plain data and back, every type checked on the way.

TOML has no null: ``None`` inside free-form tables is written as ``{"$none" = true}`` and
optional typed fields are simply left out (so profiles from older versions, which left
out what they did not know, still load). NaN and infinities use TOML's own ``nan``/``inf``.
The end marker tells a complete file from one cut short.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from typing import Any, Union

import tomli_w

from backends.journal.sweep import BenchResult, PointFailed, TestPoint
from profiles import model as model_module
from profiles import verdict as verdict_module
from profiles.compat import derived_fields
from profiles.model import SCHEMA_VERSION, Profile

MAX_DEPTH = 32
NONE_TAG = "$none"


class ProfileError(Exception):
    """A profile that cannot be read or written; the message is one line."""


# ---------------------------------------------------------------------------------------
# Dataclass <-> plain data


def _encode_any(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise ProfileError("value nested too deeply to save")
    if value is None:
        return {NONE_TAG: True}
    if isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return encode(value)
    if isinstance(value, Mapping):
        return {str(k): _encode_any(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_any(v, depth + 1) for v in value]
    return str(value)


def encode(obj: Any) -> dict[str, Any]:
    """A dataclass as TOML-ready data (optional fields that are None are left out)."""
    out: dict[str, Any] = {}
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None or not f.metadata.get("saved", True):
            continue
        out[f.name] = _encode_typed(value, hints[f.name])
    return out


def _encode_typed(value: Any, hint: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return encode(value)
    if isinstance(value, tuple):
        args = typing.get_args(_strip_optional(hint))
        inner = args[0] if args else Any
        return [_encode_typed(v, inner) for v in value]
    if isinstance(value, Mapping):
        args = typing.get_args(_strip_optional(hint))
        inner = args[1] if len(args) == 2 else Any
        return {str(k): _encode_typed(v, inner) for k, v in value.items()}
    if hint is Any or _strip_optional(hint) is Any:
        return _encode_any(value)
    return value


def _strip_optional(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _decode_any(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise ProfileError("nested too deeply")
    if isinstance(value, dict):
        if value.keys() == {NONE_TAG}:
            return None
        return {k: _decode_any(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_any(v, depth + 1) for v in value]
    return value


def decode(cls: type, data: Any, where: str = "", lacking: list[str] | None = None) -> Any:
    """Rebuild a dataclass from ``encode`` output, checking every type on the way.

    A field an older version did not write takes its default or is derived from the fields
    beside it (``profiles.compat``); each such field's path is added to ``lacking``.
    """
    if not isinstance(data, dict):
        raise ProfileError(f"{where or cls.__name__}: expected a table, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    derived = derived_fields(cls, data)
    data = {**data, **derived}
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        path = f"{where}.{f.name}" if where else f.name
        if not f.metadata.get("saved", True):
            continue
        if lacking is not None and (f.name in derived or (f.name not in data and _always_written(f))):
            lacking.append(path)
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                if _optional(hints[f.name]):
                    values[f.name] = None
                    continue
                raise ProfileError(f"{path}: missing")
            continue
        values[f.name] = _decode_typed(data[f.name], hints[f.name], path, 0, lacking)
    return cls(**values)


def _always_written(f: dataclasses.Field[Any]) -> bool:
    """``encode`` leaves out only None: a field with another default is always in the file."""
    return f.default_factory is not dataclasses.MISSING or f.default not in (dataclasses.MISSING, None)


def _optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(hint)


def _decode_typed(value: Any, hint: Any, path: str, depth: int, lacking: list[str] | None = None) -> Any:
    if depth > MAX_DEPTH:
        raise ProfileError(f"{path}: nested too deeply")
    if hint is Any:
        return _decode_any(value, depth)
    if _optional(hint):
        if isinstance(value, dict) and value.keys() == {NONE_TAG}:
            return None
        return _decode_typed(value, _strip_optional(hint), path, depth, lacking)
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        raise ProfileError(f"{path}: unsupported type")
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return decode(hint, value, path, lacking)
    if origin is tuple:
        if not isinstance(value, list):
            raise ProfileError(f"{path}: expected a list, found {type(value).__name__}")
        inner = typing.get_args(hint)[0]
        return tuple(_decode_typed(v, inner, f"{path}[{i}]", depth + 1, lacking) for i, v in enumerate(value))
    if origin in (collections.abc.Mapping, dict) or hint in (Mapping, dict):
        if not isinstance(value, dict):
            raise ProfileError(f"{path}: expected a table, found {type(value).__name__}")
        args = typing.get_args(hint)
        inner = args[1] if len(args) == 2 else Any
        return {k: _decode_typed(v, inner, f"{path}.{k}", depth + 1, lacking) for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProfileError(f"{path}: expected a number, found {type(value).__name__}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProfileError(f"{path}: expected an integer, found {type(value).__name__}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ProfileError(f"{path}: expected true/false, found {type(value).__name__}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ProfileError(f"{path}: expected text, found {type(value).__name__}")
        return value
    raise ProfileError(f"{path}: unsupported type {hint!r}")


# BenchResult keeps a ``raw`` mapping of Any; the generic codec covers it. The events module
# is imported so type hints such as TestPoint resolve.
_ = (BenchResult, PointFailed, TestPoint, model_module, verdict_module)


# The last line of every saved profile: a file without it was cut short (a copy that
# stopped, a full disk), even when what is left happens to parse as TOML.
END_MARKER = "# end of llamaduel profile"


def profile_to_toml(profile: Profile) -> str:
    return tomli_w.dumps(encode(profile)) + END_MARKER + "\n"


def _check_depth(text: str) -> None:
    """Refuse absurd nesting before tomllib recurses into it."""
    depth = deepest = 0
    in_string: str | None = None
    for ch in text:
        if in_string:
            if ch == in_string:
                in_string = None
            continue
        if ch in "\"'":
            in_string = ch
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH * 4:
                raise ProfileError("nested too deeply")
        elif ch in "]}":
            depth = max(0, depth - 1)
        elif ch == "\n":
            depth = depth if depth > 0 else 0


def profile_from_toml(text: str) -> Profile:
    if text.rstrip().rsplit("\n", 1)[-1].strip() != END_MARKER:
        raise ProfileError("incomplete: the end marker is missing (truncated file?)")
    _check_depth(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProfileError(f"not valid TOML ({str(error).splitlines()[0]})") from None
    except RecursionError:
        raise ProfileError("nested too deeply") from None
    schema = data.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise ProfileError("no schema version")
    if schema > SCHEMA_VERSION:
        raise ProfileError(f"schema {schema} is newer than this llamaduel reads ({SCHEMA_VERSION}); upgrade llamaduel")
    lacking: list[str] = []
    try:
        profile: Profile = decode(Profile, data, lacking=lacking)
        return dataclasses.replace(profile, lacking=tuple(lacking)) if lacking else profile
    except RecursionError:
        raise ProfileError("nested too deeply") from None
    except (TypeError, ValueError) as error:
        raise ProfileError(f"wrong shape ({str(error).splitlines()[0]})") from None



"""Profiles on disk: one TOML file each, written atomically, read defensively.

Writing: a temporary file in the same folder, flushed and fsynced, then ``os.replace`` and
an fsync of the folder, so a crash leaves either the old profile or the new one, never a
mix. Reading: files over 16 MiB are refused before parsing; corrupt, truncated, deeply
nested, wrongly typed or newer-schema files become a one-line ``problem``. Loading only
parses data; it never runs anything.

TOML has no null: ``None`` inside free-form tables is written as ``{"$none" = true}`` and
optional typed fields are simply left out. NaN and infinities use TOML's own ``nan``/``inf``.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import os
import tempfile
from urllib.parse import quote, unquote
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union
from collections.abc import Mapping

import tomli_w

from backends.events import BenchResult, PointFailed, TestPoint
from backends.paths import describe_write_error, profiles_root
from backends.text import printable

from profiles import model as model_module
from profiles import verdict as verdict_module
from profiles.model import SCHEMA_VERSION, Profile

MAX_PROFILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 32
NONE_TAG = "$none"
SUFFIX = ".toml"
MAX_NAME = 100
# File names keep these as they are; anything else (spaces, quotes, '#', '/', non-ASCII) is
# percent-encoded, so every name has its own file and the file name gives the name back.
_SAFE_IN_FILE_NAMES = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+@"


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
        if value is None:
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


def decode(cls: type, data: Any, where: str = "") -> Any:
    """Rebuild a dataclass from ``encode`` output, checking every type on the way."""
    if not isinstance(data, dict):
        raise ProfileError(f"{where or cls.__name__}: expected a table, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        path = f"{where}.{f.name}" if where else f.name
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                if _optional(hints[f.name]):
                    values[f.name] = None
                    continue
                raise ProfileError(f"{path}: missing")
            continue
        values[f.name] = _decode_typed(data[f.name], hints[f.name], path, 0)
    return cls(**values)


def _optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(hint)


def _decode_typed(value: Any, hint: Any, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ProfileError(f"{path}: nested too deeply")
    if hint is Any:
        return _decode_any(value, depth)
    if _optional(hint):
        if isinstance(value, dict) and value.keys() == {NONE_TAG}:
            return None
        return _decode_typed(value, _strip_optional(hint), path, depth)
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        raise ProfileError(f"{path}: unsupported type")
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return decode(hint, value, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise ProfileError(f"{path}: expected a list, found {type(value).__name__}")
        inner = typing.get_args(hint)[0]
        return tuple(_decode_typed(v, inner, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))
    if origin in (collections.abc.Mapping, dict) or hint in (Mapping, dict):
        if not isinstance(value, dict):
            raise ProfileError(f"{path}: expected a table, found {type(value).__name__}")
        args = typing.get_args(hint)
        inner = args[1] if len(args) == 2 else Any
        return {k: _decode_typed(v, inner, f"{path}.{k}", depth + 1) for k, v in value.items()}
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
    try:
        profile: Profile = decode(Profile, data)
        return profile
    except RecursionError:
        raise ProfileError("nested too deeply") from None
    except (TypeError, ValueError) as error:
        raise ProfileError(f"wrong shape ({str(error).splitlines()[0]})") from None


# ---------------------------------------------------------------------------------------
# The store


@dataclass(frozen=True)
class ProfileEntry:
    name: str
    path: Path
    created: str = ""
    model: str = ""
    builds: tuple[str, ...] = ()
    problem: str | None = None


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private; a profile gets the permissions the user's umask gives.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
        _fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        raise


class ProfileStore:
    """Profiles as ``<root>/<file name>.toml``; root defaults to the data dir's profiles folder.

    A profile is found by the name it was saved under (shown as typed, spaces and all);
    its file name is that name made safe (``file_name_for``).
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else profiles_root()

    def path_for(self, name: str) -> Path:
        return self.root / file_name_for(check_name(name))

    def list(self) -> list[ProfileEntry]:
        try:
            paths = sorted(self.root.glob(f"*{SUFFIX}")) if self.root.is_dir() else []
        except OSError as error:
            raise ProfileError(f"cannot list the profiles in {self.root}: {error.strerror}") from None
        entries = []
        for path in paths:
            if path.name.startswith("."):
                continue  # temporary files from a save in progress
            name = name_from_file(path.name)
            try:
                profile = self._read(path)
            except ProfileError as error:
                entries.append(ProfileEntry(name=name, path=path, problem=str(error)))
                continue
            entries.append(ProfileEntry(name=name, path=path, created=profile.created,
                                        model=profile.model.file_name,
                                        builds=tuple(b.name for b in profile.builds)))
        return entries

    def _read(self, path: Path) -> Profile:
        try:
            if not path.is_file():
                raise ProfileError("not a regular file")
            size = path.stat().st_size
        except OSError as error:
            raise ProfileError(f"cannot read ({error.strerror})") from None
        if size > MAX_PROFILE_BYTES:
            raise ProfileError(f"{size / 2**20:.0f} MiB is larger than a profile can be (16 MiB)")
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ProfileError(f"cannot read ({error.strerror})") from None
        if b"\x00" in data:
            raise ProfileError("binary data, not a TOML profile")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ProfileError("not UTF-8 text") from None
        return profile_from_toml(text)

    def load(self, name: str) -> Profile:
        path = self.path_for(name)
        if not path.exists():
            raise ProfileError(f"no profile named {name!r} in {self.root}")
        try:
            profile = self._read(path)
        except ProfileError as error:
            raise ProfileError(f"profile {name!r}: {error}") from None
        return profile if profile.name == name else dataclasses.replace(profile, name=name)

    def save(self, profile: Profile, *, overwrite: bool = True) -> Path:
        path = self.path_for(profile.name)
        if not overwrite and path.exists():
            raise ProfileError(f"a profile named {profile.name!r} already exists")
        try:
            atomic_write_text(path, profile_to_toml(profile))
        except OSError as error:
            raise ProfileError(describe_write_error(error, path, f"profile {profile.name!r}")) from None
        return path

    def rename(self, old: str, new: str) -> Path:
        profile = self.load(old)
        target = self.path_for(new)
        if target.exists():
            raise ProfileError(f"a profile named {new!r} already exists")
        path = self.save(dataclasses.replace(profile, name=new), overwrite=False)
        self._remove(self.path_for(old), old)
        return path

    def delete(self, name: str) -> None:
        path = self.path_for(name)
        if not path.exists():
            raise ProfileError(f"no profile named {name!r} in {self.root}")
        self._remove(path, name)

    def _remove(self, path: Path, name: str) -> None:
        try:
            path.unlink()
        except OSError as error:
            raise ProfileError(describe_write_error(error, path, f"profile {name!r}", "remove")) from None
        _fsync_dir(self.root)


def file_name_for(name: str) -> str:
    """The file a profile named ``name`` lives in: ``tiny duel`` -> ``tiny%20duel.toml``."""
    return quote(name, safe=_SAFE_IN_FILE_NAMES) + SUFFIX


def name_from_file(file_name: str) -> str:
    return unquote(file_name[: -len(SUFFIX)] if file_name.endswith(SUFFIX) else file_name)


def check_name(name: str) -> str:
    """Any name a person can read: not empty, no control characters, up to 100 characters."""
    if not name or not name.strip() or len(name) > MAX_NAME or not name.isprintable():
        raise ProfileError(f"{printable(name)!r} is not a usable profile name (1 to {MAX_NAME} "
                           "printable characters)")
    if name.startswith(".") or name in (".", ".."):
        raise ProfileError(f"{name!r} is not a usable profile name (it may not start with '.')")
    return name


def nan_safe(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

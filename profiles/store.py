"""Profiles on disk: one TOML file each, written atomically, read defensively.

Writing: a temporary file in the same folder, flushed and fsynced, then ``os.replace`` and
an fsync of the folder, so a crash leaves either the old profile or the new one, never a
mix. Reading: files over 16 MiB are refused before parsing; corrupt, truncated, deeply
nested, wrongly typed or newer-schema files become a one-line ``problem``. Loading only
parses data; it never runs anything.

The TOML form of a profile is ``profiles.toml_form``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from backends.paths import describe_write_error, profiles_root
from backends.text import printable
from profiles.model import Profile
from profiles.toml_form import (
    END_MARKER,
    MAX_DEPTH,
    NONE_TAG,
    ProfileError,
    decode,
    encode,
    profile_from_toml,
    profile_to_toml,
)

MAX_PROFILE_BYTES = 16 * 1024 * 1024
SUFFIX = ".toml"
MAX_NAME = 100
# File names keep these as they are; anything else (spaces, quotes, '#', '/', non-ASCII) is
# percent-encoded, so every name has its own file and the file name gives the name back.
_SAFE_IN_FILE_NAMES = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+@"

__all__ = ["END_MARKER", "MAX_DEPTH", "MAX_PROFILE_BYTES", "NONE_TAG", "ProfileEntry", "ProfileError",
           "ProfileStore", "atomic_write_text", "check_name", "decode", "encode", "file_name_for",
           "name_from_file", "nan_safe", "profile_from_toml", "profile_to_toml"]


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
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
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

"""Where llamaduel keeps its files: run journals, profiles and caches.

``LLAMADUEL_DATA_DIR`` moves the data folder (tests and users who want it elsewhere);
otherwise platformdirs picks the platform's user data directory. Nothing is created at
import time.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import platformdirs

APP_NAME = "llamaduel"


def data_dir() -> Path:
    explicit = os.environ.get("LLAMADUEL_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME))


def runs_root() -> Path:
    """Run folders, one per sweep, each holding its ``journal.jsonl``."""
    return data_dir() / "runs"


def profiles_root() -> Path:
    return data_dir() / "profiles"


def cache_dir() -> Path:
    explicit = os.environ.get("LLAMADUEL_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME))


def describe_write_error(error: OSError, path: Path, what: str = "", verb: str = "write") -> str:
    """One line for a write that failed: what could not be written, where and why."""
    if error.errno == errno.ENOSPC:
        why = "no space left on the device"
    elif error.errno == errno.EROFS:
        why = "the file system is read-only"
    elif error.errno in (errno.EACCES, errno.EPERM):
        why = "no permission to write there"
    else:
        why = error.strerror or str(error)
    return f"cannot {verb} {what or 'the file'} at {path}: {why}"

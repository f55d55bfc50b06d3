"""Reading small sysfs files: one call per read, every failure a reason a person can act on."""

from __future__ import annotations

import errno
import os
import re

PCI_ADDRESS = re.compile(r"^[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_DPM_MHZ = re.compile(r"(\d+)\s*mhz", re.IGNORECASE)


class ReadFailure(Exception):
    """A sysfs read that gave no value; the message is the reason shown to the user."""


def _os_error_reason(path: str, error: OSError) -> str:
    if error.errno == errno.EIO:
        return f"I/O error reading {path} (GPU busy or resetting)"
    if error.errno == errno.EISDIR:
        return f"{path} is a directory, not a value"
    return f"cannot read {path}: {error.strerror or error}"


def read_bytes(path: str) -> bytes:
    """Read a small sysfs file in one call; every failure becomes a ReadFailure with a reason."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ReadFailure(f"{path} is missing") from None
    except PermissionError:
        raise ReadFailure(f"no permission to read {path}") from None
    except OSError as error:
        raise ReadFailure(_os_error_reason(path, error)) from None
    try:
        data = os.read(fd, 65536)
    except OSError as error:
        raise ReadFailure(_os_error_reason(path, error)) from None
    finally:
        os.close(fd)
    if not data.strip():
        raise ReadFailure(f"{path} is empty")
    return data


def read_text(path: str) -> str:
    return read_bytes(path).decode("ascii", "replace").strip()


def read_int(path: str) -> int:
    text = read_text(path)
    try:
        return int(text, 0)
    except ValueError:
        raise ReadFailure(f"{path} holds {text[:40]!r}, not a number") from None


def current_dpm_mhz(path: str) -> float:
    """The level marked ``*`` in pp_dpm_sclk / pp_dpm_mclk (``"1: 1725Mhz *"``)."""
    for line in read_text(path).splitlines():
        if line.rstrip().endswith("*"):
            match = _DPM_MHZ.search(line)
            if match:
                return float(match.group(1))
    raise ReadFailure(f"{path} marks no current level")


def normalize_pci(address: str) -> str:
    """``00000000:18:00.0`` (NVML) and ``0000:18:00.0`` (sysfs) become ``0000:18:00.0``."""
    address = address.strip().lower()
    domain, _, rest = address.partition(":")
    if not rest:
        return address
    try:
        return f"{int(domain, 16):04x}:{rest}"
    except ValueError:
        return address

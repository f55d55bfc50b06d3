"""Shared by the amd-smi and rocm-smi sources: running the tool, reading its JSON.

The tools are run from argument lists (never a shell), each in its own process group that
is killed on timeout, and their output is data: a banner line before the JSON (``WARNING:
...``) is skipped, ``"N/A"`` is unknown, ``{"value": 45, "unit": "C"}`` is 45.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Collection, Mapping, Sequence

from backends.json_types import JsonValue
from backends.telemetry.model import DeviceSample

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_MIB = 1024 * 1024


class ToolFailure(Exception):
    """The tool could not give an answer; the message is one line for the user."""


def find_tool(name: str) -> str | None:
    return shutil.which(name)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def run_tool(argv: Sequence[str], timeout_s: float) -> str:
    """stdout of the command, or ToolFailure; the child never outlives the call."""
    name = os.path.basename(argv[0])
    try:
        child = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, errors="replace",
                                 start_new_session=True)
    except OSError as error:
        raise ToolFailure(f"cannot run {name}: {error.strerror or error}") from None
    try:
        out, err = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        raise ToolFailure(f"{name} gave no answer within {timeout_s:g} s") from None
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    if child.returncode != 0:
        why = _first_line(err) or _first_line(out) or "no message"
        raise ToolFailure(f"{name} exited with status {child.returncode}: {why}")
    return out


def load_json(text: str, tool: str) -> JsonValue:
    """The JSON document in a tool's output, skipping banner lines before it."""
    offset, start = 0, None
    for line in text.splitlines(keepends=True):
        if line.lstrip()[:1] in ("{", "["):
            start = offset
            break
        offset += len(line)
    if start is None:
        raise ToolFailure(f"{tool} printed no JSON")
    try:
        value: JsonValue = json.loads(text[start:])
    except json.JSONDecodeError as error:
        raise ToolFailure(f"{tool} printed JSON that does not parse: {error.msg}") from None
    return value


def number(value: JsonValue) -> float | None:
    """45, 45.0, "45.0", "(800Mhz)", {"value": 45, "unit": "C"} -> 45.0; "N/A", None -> None."""
    if isinstance(value, dict):
        return number(value.get("value"))
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = _NUMBER.search(value)
        return float(match.group()) if match and "n/a" not in value.casefold() else None
    return None


def mib_to_bytes(value: JsonValue) -> int | None:
    amount = number(value)
    return None if amount is None else int(amount * _MIB)


def whole(value: JsonValue) -> int | None:
    amount = number(value)
    return None if amount is None else int(amount)


def path(data: JsonValue | Mapping[str, JsonValue], *keys: str) -> JsonValue:
    """data[k1][k2]...; None where a level is missing or not an object."""
    value: JsonValue | Mapping[str, JsonValue] = data
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return None if isinstance(value, Mapping) and not isinstance(value, dict) else value


def can_help(last: Sequence[DeviceSample] | None,
             wanted: Mapping[str, Collection[str]] | None) -> bool:
    """Whether running the tool again could fill a gap: always before its first answer;
    afterwards only if it gave a value last time for a field that is still missing."""
    if last is None or wanted is None:
        return True
    for device in last:
        fields = wanted.get(device.pci_address, ())
        if any(getattr(device, name, None) is not None for name in fields):
            return True
    return False


def first_present(data: Mapping[str, JsonValue], *keys: str) -> JsonValue:
    for key in keys:
        if data.get(key) is not None:
            return data[key]
    return None

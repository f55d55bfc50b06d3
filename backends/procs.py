"""Child processes that never outlive llamaduel.

Every llama.cpp tool starts from an argument list in a process group of its own, so a
time-out or a cancel kills the tool and anything it started. On Linux the child also asks
the kernel to kill it when llamaduel dies (PR_SET_PDEATHSIG), which covers the crash and
SIGKILL cases where no Python code gets to run.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Mapping, Sequence

_PR_SET_PDEATHSIG = 1
_libc = None
# Process groups started and not yet reaped: what ``kill_all`` stops when llamaduel must
# leave at once (its terminal went away).
_live_groups: set[int] = set()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **(extra or {})}


async def spawn(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                cwd: str | None = None, stdin: int | None = asyncio.subprocess.DEVNULL,
                ) -> asyncio.subprocess.Process:
    """Start ``argv`` (no shell) in its own session with stdout and stderr piped."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(env),
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    _live_groups.add(process.pid)
    return process


def kill_group(process: asyncio.subprocess.Process | int) -> None:
    """SIGKILL the whole process group of ``process``; quiet if it is already gone."""
    pid = process if isinstance(process, int) else process.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    _live_groups.discard(pid)


def kill_all() -> None:
    """SIGKILL every process group llamaduel started and has not reaped (safe from any
    thread: used when it must leave at once)."""
    for pid in list(_live_groups):
        kill_group(pid)


async def stop(process: asyncio.subprocess.Process) -> int:
    """Kill the group and reap the process, so no zombie or orphan stays behind."""
    kill_group(process)
    try:
        return await asyncio.shield(process.wait())
    except asyncio.CancelledError:
        # Being cancelled ourselves: the kill is sent; reap without waiting here.
        raise


def describe_exit(returncode: int | None) -> tuple[str, str | None]:
    """A readable exit reason and the signal name, from a returncode (None: no exit status was
    seen, the process was stopped before it exited on its own; never "still running")."""
    if returncode is None:
        return "stopped before it exited on its own", None
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if name == "SIGKILL":
            return f"killed by {name} (often the kernel's out-of-memory killer)", name
        return f"crashed with {name}", name
    return f"exited with code {returncode}", None

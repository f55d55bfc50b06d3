"""The process driver: one running llama.cpp tool, spawned, read, paused, continued, killed.

Every llama.cpp process llamaduel starts (llama-bench for every granularity, the
completion race, the correctness check, llama-server, rpc-server) goes through
``ToolProcess``: it starts from an argument list (never a shell) in a process group of its
own that dies with llamaduel (``backends.procs``), hands its output to the caller line by
line or in chunks, can be paused with SIGSTOP between two pieces of work and continued,
and is always killed and reaped on the way out, also when the caller is cancelled.

A ``Launcher`` turns the tool's argument list into the one that really runs: locally the
same list; on another host, an ``ssh`` command (``backends.remote.ssh``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from backends import procs

STDERR_TAIL_LINES = 40
REAP_TIMEOUT_S = 10.0
STDOUT_HEAD_BYTES = 120


# What a launcher starts: the argv here and the environment to give it.
Command = tuple[list[str], Mapping[str, str] | None]


class Launcher(Protocol):
    """Where a tool runs: the argv and environment to start, and how to stop it for good.

    ``env`` holds the variables to set for the tool (not the whole environment). After the
    start, ``started`` gives the tool's pid where it runs; ``stderr_line`` takes out lines
    the launcher wrote for itself (None) and ``exit_code`` says how the tool itself ended,
    from the exit code of the process started here.
    """

    host: str | None  # None: this machine

    def command(self, argv: Sequence[str], env: Mapping[str, str] | None) -> Command: ...
    async def started(self, process: ToolProcess) -> int: ...
    def stderr_line(self, process: ToolProcess, line: str) -> str | None: ...
    def exit_code(self, process: ToolProcess, code: int | None) -> int | None: ...
    async def cleanup(self, process: ToolProcess) -> None: ...


class LocalLauncher:
    """This machine: the argv as it is."""

    host: str | None = None

    def command(self, argv: Sequence[str], env: Mapping[str, str] | None) -> Command:
        return list(argv), env

    async def started(self, process: ToolProcess) -> int:
        return process.pid

    def stderr_line(self, process: ToolProcess, line: str) -> str | None:
        return line

    def exit_code(self, process: ToolProcess, code: int | None) -> int | None:
        return code

    async def cleanup(self, process: ToolProcess) -> None:
        return None


LOCAL = LocalLauncher()


@dataclass(frozen=True)
class Finished:
    """How a tool run ended: exit code (None when it was still running and got killed)."""

    returncode: int | None
    timed_out: bool
    seconds: float


class ToolProcess:
    """One tool process. Use ``async with ToolProcess(argv) as tool:``; ``start`` raises
    OSError when the program cannot start (missing, not executable, wrong machine)."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                 launcher: Launcher = LOCAL, stdin: int | None = asyncio.subprocess.DEVNULL) -> None:
        self.argv = list(argv)
        self.env = env
        self.launcher = launcher
        self._stdin = stdin
        self.process: asyncio.subprocess.Process | None = None
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self.started_at = 0.0
        self.paused = False
        self.tool_pid: int | None = None  # the tool's pid where it runs (another host's)
        # The first stdout bytes that were not what the caller reads: quoted when a tool
        # ends without its result.
        self.stdout_head = b""

    async def __aenter__(self) -> ToolProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()

    async def start(self) -> None:
        argv, env = self.launcher.command(self.argv, self.env)
        self.started_at = time.monotonic()
        self.process = await procs.spawn(argv, env=env, stdin=self._stdin)
        try:
            self.tool_pid = await self.launcher.started(self)
        except BaseException:
            await self.kill()  # a launcher that gives up leaves nothing running
            raise

    @property
    def remote(self) -> bool:
        return self.launcher.host is not None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """How the tool ended (for a tool on another host, as the launcher learnt it)."""
        if self.process is None:
            return None
        return self.launcher.exit_code(self, self.process.returncode)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def stdout_lines(self) -> AsyncIterator[bytes]:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            yield line

    async def stdout_chunks(self, size: int = 65536) -> AsyncIterator[bytes]:
        assert self.process is not None and self.process.stdout is not None
        while chunk := await self.process.stdout.read(size):
            yield chunk

    async def stderr_lines(self) -> AsyncIterator[str]:
        """Decoded stderr lines; each is also kept in ``stderr_tail`` for failure messages."""
        assert self.process is not None and self.process.stderr is not None
        async for raw in self.process.stderr:
            text = self.launcher.stderr_line(self, raw.decode("utf-8", "replace").rstrip("\r\n"))
            if text is not None:
                yield text

    def remember(self, line: str) -> None:
        if line.strip():
            self.stderr_tail.append(line)

    def note_stdout(self, line: bytes) -> None:
        """Keep a stdout line the caller could not use: in the tail, and its first bytes."""
        self.remember(line.decode("utf-8", "replace").strip())
        room = STDOUT_HEAD_BYTES - len(self.stdout_head)
        if room > 0 and line.strip():
            self.stdout_head += line[:room]

    def pause(self) -> None:
        """SIGSTOP: the tool waits where it is (between two tests) until ``resume``.
        Only for tools on this machine: signals do not travel over ssh."""
        assert not self.remote, "a tool on another host cannot be paused"
        if self.running and not self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.running and self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    async def wait(self, timeout: float | None = None) -> Finished:
        """Wait for the tool to exit; on time-out kill it (``timed_out`` is then True)."""
        assert self.process is not None
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(self.process.wait()), timeout)
        except TimeoutError:
            timed_out = True
            await self.kill()
        return Finished(self.returncode, timed_out, time.monotonic() - self.started_at)

    async def kill(self) -> None:
        """Kill the whole group (a stopped process dies of SIGKILL too) and reap it."""
        if self.process is None:
            return
        procs.kill_group(self.process)
        # Before reaping: an ssh master holds the pipes of a remote tool until it has ended.
        await self.launcher.cleanup(self)
        if self.process.returncode is None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self.process.wait()), REAP_TIMEOUT_S)

    async def communicate(self, timeout: float) -> tuple[str, str, Finished]:
        """Run to the end collecting stdout and stderr as text; kill on time-out or cancel."""
        assert self.process is not None
        try:
            out, err = await asyncio.wait_for(self.process.communicate(), timeout)
        except TimeoutError:
            await self.kill()
            return "", "", Finished(self.returncode, True, time.monotonic() - self.started_at)
        except BaseException:
            await self.kill()
            raise
        lines = [self.launcher.stderr_line(self, line)
                 for line in err.decode("utf-8", "replace").splitlines()]
        kept = "\n".join(line for line in lines if line is not None)
        finished = Finished(self.returncode, False, time.monotonic() - self.started_at)
        return out.decode("utf-8", "replace"), kept, finished


async def run_tool(argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float,
                   launcher: Launcher = LOCAL) -> tuple[str, str, Finished]:
    """Start a tool, collect all of its output and reap it (OSError when it cannot start)."""
    tool = ToolProcess(argv, env=env, launcher=launcher)
    await tool.start()
    try:
        return await tool.communicate(timeout)
    finally:
        await tool.kill()

"""Start and stop one contender's ``llama-server``: argument list, own process group, a free
port on 127.0.0.1, a wait for ``/health`` with a deadline, and nothing left listening.

    server = await start_server(contender, model, settings, slots=4, ctx_size=8192)
    if isinstance(server, StartFailure): ...
    try: ... server.base_url ...
    finally: await server.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from backends import procs

SERVER_TOOL = "llama-server"
HOST = "127.0.0.1"
DEFAULT_START_TIMEOUT_S = 300.0
LOG_LINES = 400
_POLL_S = 0.25  # longest wait between /health checks when the server writes nothing
_LOG_PREFIX = re.compile(r"^\s*\d+\.\d+\.\d+\.\d+\s+[A-Z]\s+(?:\w+\s+)?")
_ABORT = re.compile(r"^\S*/(?=[\w.-]+\.(?:c|cc|cpp|h):\d+: )|^(?=GGML_ASSERT|terminate called|\s*what\(\): )")
_LEVEL = re.compile(r"^\s*\d+\.\d+\.\d+\.\d+\s+([A-Z])\s")
_SPECIFIC = re.compile(r"error loading model:|couldn't bind|out of memory|unable to|"
                       r"invalid argument|unknown argument|error:|failed to open|no such file|"
                       r"insufficient memory|allocation of size .* failed|failed to allocate",
                       re.IGNORECASE)


@dataclass(frozen=True)
class ServedBuild:
    """A build as a server duel sees it: name, folder, the environment its tools need."""

    name: str
    folder: str
    env: dict[str, str] = field(default_factory=dict)
    backend: str = "unknown"
    server: str | None = None  # the llama-server file when known
    port: int | None = None  # a fixed port; None: a free one each start

    def server_path(self) -> Path | None:
        if self.server:
            return Path(self.server)
        return find_server(Path(self.folder))


@dataclass(frozen=True)
class ServerSettings:
    """The flags a profile's launch command uses, plus the duel's own."""

    n_gpu_layers: int = 999
    flash_attn: bool | None = None
    type_k: str | None = None
    type_v: str | None = None
    n_cpu_moe: int | None = None
    no_mmap: bool = False
    n_batch: int | None = None
    n_ubatch: int | None = None
    threads: int | None = None
    cache_reuse: int | None = None
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class StartFailure:
    reason: str
    exit_code: int | None = None
    signal: str | None = None
    log_tail: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()


def find_server(folder: Path) -> Path | None:
    candidate = folder / SERVER_TOOL
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    return None


def port_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on ``host:port`` (a bind succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def server_argv(server: Path | str, model: str, port: int, slots: int, ctx_size: int,
                settings: ServerSettings) -> list[str]:
    """The argument list, flag for flag like a profile's launch command, plus the duel's."""
    argv = [str(server), "-m", model, "--host", HOST, "--port", str(port)]
    if settings.flash_attn is not None:
        argv += ["-fa", "on" if settings.flash_attn else "off"]
    for flag, text in (("-ctk", settings.type_k), ("-ctv", settings.type_v)):
        if text:
            argv += [flag, text]
    argv += ["-ngl", str(settings.n_gpu_layers)]
    if settings.n_cpu_moe:
        argv += ["-ncmoe", str(settings.n_cpu_moe)]
    if settings.no_mmap:
        argv.append("--no-mmap")
    for flag, number in (("-b", settings.n_batch), ("-ub", settings.n_ubatch),
                         ("-t", settings.threads)):
        if number is not None:
            argv += [flag, str(number)]
    argv += ["-c", str(ctx_size), "--parallel", str(slots), "--metrics", "--no-webui"]
    if settings.cache_reuse is not None:
        argv += ["--cache-reuse", str(settings.cache_reuse)]
    return argv + list(settings.extra_args)


def failure_line(lines: Sequence[str], fallback: str, *, errors_only: bool = False) -> str:
    """The one log line that says why the server failed, without llama.cpp's log prefix."""
    errors = [line for line in lines if (m := _LEVEL.match(line)) and m.group(1) == "E"]
    for line in errors:
        if _SPECIFIC.search(line):
            return _clean(line)
    if errors:
        # The first error names the cause; later ones are the callers giving up on it
        # ("failed to create llama_context", "exiting due to model loading error").
        return _clean(errors[0])
    if errors_only:
        return fallback
    for line in reversed(lines):
        if line.strip():
            return _clean(line)
    return fallback


def _clean(line: str) -> str:
    text = _LOG_PREFIX.sub("", line).strip()
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:300]


class ServerProcess:
    """A running llama-server: its process group, port and log."""

    def __init__(self, process: asyncio.subprocess.Process, argv: Sequence[str], port: int,
                 log_path: Path | None = None) -> None:
        self.process = process
        self.argv = tuple(argv)
        self.port = port
        self.started = time.monotonic()
        self.lines: deque[str] = deque(maxlen=LOG_LINES)
        self.changed = asyncio.Event()
        self._log = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
        self._readers = [asyncio.create_task(self._read(stream))
                         for stream in (process.stdout, process.stderr) if stream is not None]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.lines.append(line)
            if self._log is not None:
                self._log.write(line + "\n")
                self._log.flush()
            self.changed.set()

    async def _settled(self, timeout: float) -> None:
        """Wait until the log grows, the process exits, or ``timeout`` passes."""
        self.changed.clear()
        waiters = [asyncio.create_task(self.changed.wait()),
                   asyncio.create_task(self.process.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def failure(self, fallback: str) -> StartFailure:
        code = self.process.returncode
        description, signal_name = procs.describe_exit(code)
        if code is None:  # still running: the deadline passed; say where its log stopped
            last = failure_line(list(self.lines), "")
            reason = f"{fallback}; its last log line: {last}" if last else fallback
        elif code < 0 and not failure_line(list(self.lines), "", errors_only=True):
            # Killed, or it aborted: ggml's own abort line ("ggml-backend.cpp:1081: ...") is
            # the server's reason when there is one.
            abort = next((_ABORT.sub("", line).strip() for line in reversed(self.lines)
                          if _ABORT.search(line)), "")
            reason = f"{fallback}: llama-server {description}" + (f": {_clean(abort)}" if abort else "")
        else:
            reason = f"{failure_line(list(self.lines), fallback)} (llama-server {description})"
        return StartFailure(reason=reason, exit_code=code if code and code > 0 else None,
                            signal=signal_name, log_tail=tuple(list(self.lines)[-20:]),
                            argv=self.argv)

    async def wait_healthy(self, deadline_s: float) -> float | StartFailure:
        """Seconds until ``/health`` said ok, or why it never did within ``deadline_s``."""
        deadline = self.started + deadline_s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while True:
                if not self.alive:
                    await self._drain()
                    return self.failure("llama-server exited before it was ready")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/health")).status_code == 200 and self.alive:
                        return time.monotonic() - self.started
                left = deadline - time.monotonic()
                if left <= 0:
                    return self.failure(f"llama-server was not healthy within {deadline_s:g}s")
                await self._settled(min(_POLL_S, left))

    async def _drain(self) -> None:
        """Let the log readers take what the exited process wrote last."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._readers, return_exceptions=True), 5.0)

    async def stop(self) -> str:
        """Kill the whole group, reap it, close the log; the exit as words."""
        was_running = self.alive
        await procs.stop(self.process)
        await self._drain()
        for reader in self._readers:
            reader.cancel()
        if self._log is not None:
            self._log.close()
            self._log = None
        if was_running:
            return "stopped"
        return procs.describe_exit(self.process.returncode)[0]


async def start_server(contender: ServedBuild, model: str, settings: ServerSettings, *,
                       slots: int, ctx_size: int, port: int | None = None,
                       log_path: Path | None = None) -> ServerProcess | StartFailure:
    """Start the contender's llama-server (not yet waited for): the process, or why not."""
    server = contender.server_path()
    if server is None:
        return StartFailure(f"no {SERVER_TOOL} in {contender.folder}")
    if port is not None and not port_free(port):
        return StartFailure(f"port {port} on {HOST} is already in use")
    chosen = port if port is not None else free_port()
    argv = server_argv(server, model, chosen, slots, ctx_size, settings)
    try:
        process = await procs.spawn(argv, env=contender.env)
    except OSError as error:
        return StartFailure(f"{SERVER_TOOL} cannot start: {error.strerror or error}",
                            argv=tuple(argv))
    return ServerProcess(process, argv, chosen, log_path)


async def launch(contender: ServedBuild, model: str, settings: ServerSettings, *, slots: int,
                 ctx_size: int, port: int | None = None, deadline_s: float = DEFAULT_START_TIMEOUT_S,
                 log_path: Path | None = None, attempts: int = 3,
                 ) -> tuple[ServerProcess, float] | StartFailure:
    """Start and wait for health; a free port lost to someone else is tried again."""
    failure = StartFailure("llama-server did not start")
    for _ in range(attempts):
        server = await start_server(contender, model, settings, slots=slots, ctx_size=ctx_size,
                                    port=port, log_path=log_path)
        if isinstance(server, StartFailure):
            return server
        ready = await server.wait_healthy(deadline_s)
        if not isinstance(ready, StartFailure):
            return server, ready
        await server.stop()
        failure = ready
        if port is not None or "couldn't bind" not in ready.reason:
            break
    return failure

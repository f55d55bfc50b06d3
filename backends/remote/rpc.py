"""llama.cpp's own distributed engine: ``rpc-server`` processes as devices of a contender.

llamaduel can start ``rpc-server`` processes it owns on this machine (``--rpc-local
NAME=DEVICE``: a second card, or the CPU in tests), each in its own process group, killed
with everything else when the sweep ends. Remote RPC servers are used as given; an
endpoint that stops answering turns the failure of a point into "RPC server HOST:PORT
closed the connection".
"""

from __future__ import annotations

import asyncio
import socket
import time

from backends.builds import BuildInfo
from backends.text import printable
from backends.tool import ToolProcess

START_TIMEOUT_S = 30.0


class RpcError(RuntimeError):
    """An RPC server that cannot be started or reached: one line for the user."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def endpoint_alive(endpoint: str, timeout: float = 0.5) -> bool:
    """Whether something accepts connections at ``HOST:PORT``."""
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def describe_rpc_failure(endpoints: tuple[str, ...], reason: str) -> str | None:
    """The reason for a failed point when one of its RPC servers is gone, else None."""
    gone = [e for e in endpoints if not endpoint_alive(e)]
    if not gone:
        return None
    return f"RPC server {', '.join(gone)} closed the connection ({reason})"


class LocalRpcServer:
    """One ``rpc-server`` of ``build`` on this machine, serving ``device``."""

    def __init__(self, build: BuildInfo, device: str, *, host: str = "127.0.0.1",
                 port: int | None = None, threads: int | None = None) -> None:
        self.build, self.device, self.host = build, device, host
        self.port = port or free_port(host)
        self.threads = threads
        self.tool: ToolProcess | None = None
        self._drain: asyncio.Future[tuple[None, None]] | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def argv(self) -> list[str]:
        if self.build.rpc_server is None:
            raise RpcError(f"{self.build.name}: no rpc-server in {self.build.folder} "
                           "(build llama.cpp with -DGGML_RPC=ON)")
        argv = [str(self.build.rpc_server), "-H", self.host, "-p", str(self.port), "-d", self.device]
        return argv + (["-t", str(self.threads)] if self.threads else [])

    async def start(self, timeout: float = START_TIMEOUT_S) -> str:
        """Start it and wait until it accepts connections; its endpoint."""
        if endpoint_alive(self.endpoint, 0.2):
            raise RpcError(f"port {self.endpoint} is already taken: cannot start an rpc-server there")
        tool = ToolProcess(self.argv(), env=self.build.env)
        try:
            await tool.start()
        except OSError as error:
            raise RpcError(f"rpc-server cannot start: {error.strerror or error}") from None
        self.tool = tool
        # Both pipes are read for as long as it runs: a full pipe would stall the server.
        drain = asyncio.gather(self._keep_stderr(tool), self._drop_stdout(tool))
        self._drain = drain
        deadline = time.monotonic() + timeout
        while not endpoint_alive(self.endpoint, 0.2):
            if not tool.running or time.monotonic() > deadline:
                await self.stop()
                why = tool.stderr_tail[-1] if tool.stderr_tail else "no message"
                raise RpcError(f"rpc-server for {self.device} did not start: {printable(why)}")
            await asyncio.sleep(0.05)
        return self.endpoint

    async def _keep_stderr(self, tool: ToolProcess) -> None:
        async for line in tool.stderr_lines():
            tool.remember(line)

    async def _drop_stdout(self, tool: ToolProcess) -> None:
        async for line in tool.stdout_lines():
            tool.remember(line.decode("utf-8", "replace").rstrip())

    async def stop(self) -> None:
        tool, self.tool = self.tool, None
        if tool is not None:
            await tool.kill()
        if self._drain is not None:
            self._drain.cancel()
            await asyncio.gather(self._drain, return_exceptions=True)
            self._drain = None

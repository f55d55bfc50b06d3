"""One kept-alive HTTP/1.1 connection per load slot, for the soak's small JSON requests.

A soak sends a request every few hundred milliseconds per slot for hours; a general HTTP
client spent about 2 ms of CPU on each (its request, transport and pool machinery), most
of what the soak itself cost. Here a request is one write and a response one read of its
status, headers and body (by Content-Length, chunked, or up to the close). The probes and
``/tokenize``, a few a minute, keep the general client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any


class Lost(Exception):
    """The connection failed or the server closed it: the message is one line."""


class Connection:
    """Requests to ``host:port``, one at a time, on one connection kept open between them."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post_json(self, path: str, body: dict[str, Any], timeout_s: float) -> tuple[int, bytes]:
        """Status and body of a POST; TimeoutError when it is not whole within ``timeout_s``,
        Lost when the connection fails. A kept-alive connection the server closed meanwhile
        is opened again once."""
        payload = json.dumps(body, separators=(",", ":")).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
        for attempt in range(2):
            reused = self._writer is not None
            try:
                return await asyncio.wait_for(self._exchange(head + payload), timeout_s)
            except (OSError, asyncio.IncompleteReadError, Lost) as error:
                self.close()
                if reused and attempt == 0:
                    continue  # the server let an idle connection go: a fresh one
                raise Lost(_words(error)) from None
            except BaseException:
                self.close()  # a time-out or a cancel: the answer may still come, on nobody's watch
                raise
        raise Lost("the server closed the connection")

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(request)
        await self._writer.drain()
        status, headers = await _read_head(self._reader)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(self._reader)
        elif "content-length" in headers:
            body = await self._reader.readexactly(int(headers["content-length"]))
        else:
            body = await self._reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._reader = self._writer = None


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise Lost(f"not an HTTP answer: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers are asked for: the closing line
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


def _words(error: BaseException) -> str:
    if isinstance(error, asyncio.IncompleteReadError):
        return "the server closed the connection"
    return " ".join(str(error).split())[:200] or type(error).__name__

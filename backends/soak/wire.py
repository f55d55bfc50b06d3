"""One kept-alive HTTP/1.1 connection per load slot, for the soak's small JSON requests.

A soak sends a request every few hundred milliseconds per slot for hours; a general HTTP
client spent about 2 ms of CPU on each (its request, transport and pool machinery), most
of what the soak itself cost. Here a request is one write and its answer is read through
h11, the HTTP/1.1 state machine httpx itself stands on, with no pool or transport layers
around it. The probes and ``/tokenize``, a few a minute, keep the general client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import h11

_READ_SIZE = 64 * 1024


class Lost(Exception):
    """The connection failed or the server closed it: the message is one line."""


class Connection:
    """Requests to ``host:port``, one at a time, on one connection kept open between them."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._http = h11.Connection(our_role=h11.CLIENT)

    async def post_json(self, path: str, body: dict[str, Any], timeout_s: float) -> tuple[int, bytes]:
        """Status and body of a POST; TimeoutError when it is not whole within ``timeout_s``,
        Lost when the connection fails. A kept-alive connection the server closed meanwhile
        is opened again once."""
        payload = json.dumps(body, separators=(",", ":")).encode()
        headers = [("Host", f"{self.host}:{self.port}"), ("Content-Type", "application/json"),
                   ("Content-Length", str(len(payload)))]
        for attempt in range(2):
            reused = self._writer is not None
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the answer and
                # drops a cancel that lands as the answer comes, and a slot's loop then ran on
                # after its soak had ended.
                async with asyncio.timeout(timeout_s):
                    return await self._exchange(path, headers, payload)
            except TimeoutError:  # an OSError too: told apart first, a hang is no lost connection
                self.close()
                raise
            except (OSError, asyncio.IncompleteReadError, h11.ProtocolError, Lost) as error:
                self.close()
                if reused and attempt == 0:
                    continue  # the server let an idle connection go: a fresh one
                raise Lost(_words(error)) from None
            except BaseException:
                self.close()  # a time-out or a cancel: the answer may still come, on nobody's watch
                raise
        raise Lost("the server closed the connection")

    async def _exchange(self, path: str, headers: list[tuple[str, str]], payload: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self._http = h11.Connection(our_role=h11.CLIENT)
        assert self._reader is not None
        http = self._http
        self._writer.write(http.send(h11.Request(method="POST", target=path, headers=headers))
                           + (http.send(h11.Data(data=payload)) or b"")
                           + (http.send(h11.EndOfMessage()) or b""))
        await self._writer.drain()
        status, body = 0, bytearray()
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(await self._reader.read(_READ_SIZE))  # b"" at the end of the stream
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise Lost("the server closed the connection")
        if http.our_state is h11.DONE and http.their_state is h11.DONE:
            http.start_next_cycle()  # kept alive for the slot's next request
        else:
            self.close()  # the server asked to close, or answered before reading it all
        return status, bytes(body)

    def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._reader = self._writer = None


def _words(error: BaseException) -> str:
    if isinstance(error, asyncio.IncompleteReadError):
        return "the server closed the connection"
    if isinstance(error, h11.RemoteProtocolError):
        return f"not an HTTP answer: {' '.join(str(error).split())[:160]}"
    return " ".join(str(error).split())[:200] or type(error).__name__

"""The soak's kept-alive HTTP/1.1 connection, against a real socket server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from backends.soak.build import _cancelling
from backends.soak.wire import Connection

ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


async def serve(delay_s: float = 0.0):
    """A server answering every request on a connection after ``delay_s``; counts connections."""
    accepted = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                await reader.readexactly(length)
                if delay_s:
                    await asyncio.sleep(delay_s)
                writer.write(ANSWER)
                await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], accepted


async def test_requests_share_one_kept_alive_connection():
    server, port, accepted = await serve()
    async with server:
        connection = Connection("127.0.0.1", port)
        for _ in range(3):
            assert await connection.post_json("/completion", {"prompt": "hi"}, 5.0) == (200, b'{"ok":true}')
        connection.close()
    assert len(accepted) == 1


async def test_an_answer_late_beyond_the_limit_is_a_time_out():
    server, port, _ = await serve(delay_s=1.0)
    async with server:
        connection = Connection("127.0.0.1", port)
        with pytest.raises(TimeoutError):
            await connection.post_json("/completion", {}, 0.2)


async def test_a_cancel_is_never_taken_for_an_answer():
    # A cancel that lands as the answer arrives: asyncio.wait_for on Python 3.11 returned the
    # answer and dropped the cancel, and a soak's slot loop ran on after its soak ended.
    server, port, _ = await serve(delay_s=0.002)
    async with server:
        swallowed = 0
        for attempt in range(400):
            connection = Connection("127.0.0.1", port)
            await connection.post_json("/completion", {}, 5.0)  # connected: only the answer races
            task = asyncio.create_task(connection.post_json("/completion", {}, 5.0))
            await asyncio.sleep(0.0015 + (attempt % 10) * 0.0002)
            asked = task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            else:
                swallowed += asked  # cancelled while pending, yet it returned an answer
            connection.close()
    assert swallowed == 0


async def test_a_loop_sees_a_cancel_a_library_call_swallowed():
    seen = asyncio.Event()

    async def loop() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)  # a call that takes the cancel and returns
        if _cancelling():
            seen.set()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    task.cancel()
    await task
    assert seen.is_set()

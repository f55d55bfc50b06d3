"""Does a launch command work? Start it for real, send one request, stop it.

The command's own ``--port`` (and ``--host``) are replaced by a free port on 127.0.0.1 so
the check never collides with a server the user already runs; every other flag is kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from backends import procs
from backends.server.client import Answer, stream_request
from backends.server.launch import (
    HOST,
    ServerProcess,
    StartFailure,
    free_port,
    port_free,
)
from backends.server.prompts import CHAT, COMPLETION

CHECK_PROMPT = "Write one short sentence about the sea."


@dataclass(frozen=True)
class LaunchCheck:
    ok: bool
    argv: tuple[str, ...]  # as run, with the check's own port
    port: int
    reason: str | None = None  # one line when not ok
    load_s: float | None = None
    endpoint: str | None = None  # which request worked: chat, else completion
    n_gen: int | None = None
    ttft_s: float | None = None
    gen_tps: float | None = None
    port_free_after: bool = True


def with_port(argv: Sequence[str], port: int) -> list[str]:
    """``argv`` listening on ``HOST:port`` instead of wherever it said."""
    out: list[str] = []
    skip = False
    for index, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg in ("--port", "--host") and index + 1 < len(argv):
            skip = True
            continue
        if arg.startswith(("--port=", "--host=")):
            continue
        out.append(arg)
    return [*out[:1], "--host", HOST, "--port", str(port), *out[1:]]


async def _one_request(server: ServerProcess, n_predict: int, stall_s: float) -> tuple[str, Answer] | str:
    reasons = []
    async with httpx.AsyncClient(base_url=server.base_url, timeout=stall_s) as client:
        for endpoint in (CHAT, COMPLETION):  # a model without a chat template can still complete
            result = await stream_request(client, endpoint, CHECK_PROMPT, n_predict, stall_s=stall_s)
            if isinstance(result, Answer):
                return endpoint, result
            reasons.append(f"{endpoint}: {result.reason}")
            if not server.alive:
                break
    return "; ".join(reasons)


async def validate_launch(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                          deadline_s: float = 300.0, stall_s: float = 120.0,
                          n_predict: int = 8) -> LaunchCheck:
    """Start ``argv`` (a llama-server command), wait for health, send one request, stop it."""
    if not argv:
        return LaunchCheck(False, (), 0, "the launch command is empty")
    port = free_port()
    run = with_port(argv, port)
    try:
        process = await procs.spawn(run, env=dict(env or {}))
    except OSError as error:
        return LaunchCheck(False, tuple(run), port, f"{argv[0]} cannot start: {error.strerror or error}")
    server = ServerProcess(process, run, port)
    try:
        check = await _check(server, deadline_s, stall_s, n_predict)
    finally:
        await server.stop()
    return dataclasses.replace(check, port_free_after=port_free(port))


async def _check(server: ServerProcess, deadline_s: float, stall_s: float, n_predict: int) -> LaunchCheck:
    run, port = server.argv, server.port
    ready = await server.wait_healthy(deadline_s)
    if isinstance(ready, StartFailure):
        return LaunchCheck(False, run, port, ready.reason)
    answered = await _one_request(server, n_predict, stall_s)
    if isinstance(answered, str):
        why = server.failure(answered).reason if not server.alive else answered
        return LaunchCheck(False, run, port, f"started but did not answer: {why}", ready)
    endpoint, answer = answered
    return LaunchCheck(True, run, port, None, ready, endpoint, answer.n_gen, answer.ttft_s,
                       answer.gen_tps)

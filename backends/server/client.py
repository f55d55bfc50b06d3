"""One streamed request to a llama-server, timed as a client sees it.

Chat requests go to ``/v1/chat/completions`` (OpenAI-compatible), raw ones to
``/completion``. Every request asks for exactly ``n_gen`` tokens (``ignore_eos``), greedy,
with the server's per-token ``timings`` in each streamed piece so the client knows how
many tokens each piece brought (a piece can carry several when bytes of one character
span tokens).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from backends.server.prompts import CHAT

TICK_S = 0.5  # least time between two progress reports of one stream
# The server's stop reasons (``stop_type`` of /completion, ``finish_reason`` of chat) in words.
STOP_WORDS = {"eos": "end of stream", "word": "stop word", "limit": "token limit",
              "none": "no stop reason given", "stop": "end of stream or stop word",
              "length": "token limit", "": "no stop reason given"}


def short_text(got: int, asked: int, stop: str) -> str:
    """``ended after 4 of 128 tokens (end of stream)``."""
    return f"ended after {got} of {asked} tokens ({STOP_WORDS.get(stop, stop)})"


@dataclass(frozen=True)
class Answer:
    """A finished request: times are seconds since it was sent."""

    ttft_s: float
    e2e_s: float
    n_prompt: int
    n_cached: int | None
    n_gen: int
    chunk_times: tuple[float, ...]
    chunk_tokens: tuple[int, ...]
    timings: dict[str, float] = field(default_factory=dict)
    asked: int = 0  # the tokens asked for (0: not known)
    silent: bool = False  # no token printed text: its times come from the server's timings
    stop: str = ""  # the server's stop reason: eos, word, limit (completion); stop, length (chat)

    @property
    def short_reason(self) -> str | None:
        """Why the answer has fewer tokens than asked, or None when it has them all."""
        if self.n_gen >= self.asked:
            return None
        return short_text(self.n_gen, self.asked, self.stop)

    @property
    def gen_tps(self) -> float | None:
        """Decode rate: tokens after the first piece over the time from first to last piece;
        where every piece came in one read (a busy client sees a short answer arrive at once),
        the server's own decode timing."""
        span = self.chunk_times[-1] - self.chunk_times[0] if len(self.chunk_times) >= 2 else 0.0
        tokens = sum(self.chunk_tokens[1:])
        if span > 0 and tokens > 0:
            return tokens / span
        server = self.timings.get("predicted_per_second")
        return float(server) if self.n_gen > 1 and server and server > 0 else None

    @property
    def prompt_tps(self) -> float | None:
        processed = self.timings.get("prompt_n")
        if processed is None or self.ttft_s <= 0:
            return None
        return processed / self.ttft_s


@dataclass(frozen=True)
class Failure:
    """A request that gave no usable answer: the reason is one line (``HTTP 500: body``,
    ``no answer for 60s: the server stalled``, ``connection refused ...``)."""

    reason: str
    elapsed_s: float
    stalled: bool = False
    status: int | None = None  # the HTTP status when the server answered with an error
    short: bool = False  # the answer ended before it had any token


Progress = Callable[[int, float, float | None], Awaitable[None]]  # tokens, elapsed, decode t/s


def payload(endpoint: str, text: str, n_gen: int, *, cache_prompt: bool = True,
            seed: int = 42, slot: int | None = None) -> tuple[str, dict[str, object]]:
    """The request's path and body; ``slot``: llama-server's slot to use (``id_slot``)."""
    common: dict[str, object] = {"stream": True, "ignore_eos": True, "temperature": 0.0,
                                 "seed": seed, "timings_per_token": True,
                                 "cache_prompt": cache_prompt}
    if slot is not None:
        common["id_slot"] = slot
    if endpoint == CHAT:
        return "/v1/chat/completions", {
            **common, "messages": [{"role": "user", "content": text}], "max_tokens": n_gen,
            "stream_options": {"include_usage": True}}
    return "/completion", {**common, "prompt": text, "n_predict": n_gen}


class _Reader:
    """Folds the streamed pieces of one answer."""

    def __init__(self, endpoint: str, sent: float, asked: int) -> None:
        self.endpoint = endpoint
        self.sent = sent
        self.asked = asked
        self.stop = ""
        self.times: list[float] = []
        self.tokens: list[int] = []
        self.counted = 0  # tokens the server had reported when the last text piece came
        self.timings: dict[str, float] = {}
        self.usage: dict[str, Any] = {}
        self.done = False

    def take(self, data: dict[str, Any], at: float) -> bool:
        """Read one piece; True when it carried tokens (text, or /completion's token ids)."""
        timings = data.get("timings")
        if isinstance(timings, dict):
            self.timings = {k: float(v) for k, v in timings.items() if isinstance(v, (int, float))}
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]
        if self.endpoint == CHAT:
            choices = data.get("choices") or []
            delta = choices[0].get("delta", {}) if choices else {}
            text = delta.get("content") or delta.get("reasoning_content") or ""
            if choices and choices[0].get("finish_reason"):
                self.done = True
                self.stop = str(choices[0]["finish_reason"])
            fallback = 1
        else:
            # A token without text still comes as a piece of its own, with its id.
            text = data.get("content") or ("(no text)" if data.get("tokens") else "")
            fallback = len(data.get("tokens") or ()) or 1
            if data.get("stop"):
                self.done = True
                self.stop = str(data.get("stop_type") or "")
        if not text:
            return False
        reported = int(self.timings.get("predicted_n", 0))
        brought = reported - self.counted if reported > self.counted else fallback
        self.counted = max(reported, self.counted + brought)
        self.times.append(at - self.sent)
        self.tokens.append(brought)
        return True

    def answer(self, ended: float) -> Answer | Failure:
        n_gen = int(self.timings.get("predicted_n") or self.usage.get("completion_tokens")
                    or sum(self.tokens))
        if not self.times:
            if n_gen < self.asked:
                return Failure(short_text(n_gen, self.asked, self.stop), ended - self.sent, short=True)
            return _placed(self, n_gen, ended)
        processed = int(self.timings.get("prompt_n", 0))
        cached = self.timings.get("cache_n")
        return Answer(ttft_s=self.times[0], e2e_s=ended - self.sent,
                      n_prompt=processed + int(cached or 0),
                      n_cached=None if cached is None else int(cached), n_gen=n_gen,
                      chunk_times=tuple(self.times), chunk_tokens=tuple(self.tokens),
                      timings=self.timings, asked=self.asked, stop=self.stop)


async def stream_request(client: httpx.AsyncClient, endpoint: str, text: str, n_gen: int, *,
                         stall_s: float, progress: Progress | None = None,
                         cache_prompt: bool = True, slot: int | None = None) -> Answer | Failure:
    """Send one request and read its stream; a silence of ``stall_s`` ends it as stalled.

    A kept-alive connection the server closed just before the request went out (it never
    answered, nothing was counted) is tried once more on a fresh connection.
    """
    lost = _Unanswered("the server closed the connection", 0.0)
    for _ in range(2):
        result = await _stream_once(client, endpoint, text, n_gen, stall_s, progress, cache_prompt, slot)
        if not isinstance(result, _Unanswered):
            return result
        lost = result
    return Failure(f"connection lost: {lost.reason}", lost.elapsed_s)


@dataclass(frozen=True)
class _Unanswered:
    reason: str
    elapsed_s: float


async def _stream_once(client: httpx.AsyncClient, endpoint: str, text: str, n_gen: int,
                       stall_s: float, progress: Progress | None,
                       cache_prompt: bool, slot: int | None) -> Answer | Failure | _Unanswered:
    path, body = payload(endpoint, text, n_gen, cache_prompt=cache_prompt, slot=slot)
    sent = time.monotonic()
    reader = _Reader(endpoint, sent, n_gen)
    timeout = httpx.Timeout(stall_s, connect=min(stall_s, 10.0))
    last_tick = 0.0
    answered = False
    try:
        async with client.stream("POST", path, json=body, timeout=timeout) as response:
            answered = True
            if response.status_code != 200:
                detail = (await response.aread()).decode("utf-8", "replace")[:4000]
                return Failure(f"HTTP {response.status_code}: {_error_body(detail)}",
                               time.monotonic() - sent, status=response.status_code)
            async for line in response.aiter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                now = time.monotonic()
                try:
                    data = json.loads(line[5:])
                except ValueError:
                    continue
                due = now - last_tick >= TICK_S
                if isinstance(data, dict) and reader.take(data, now) and progress is not None and (
                        due or len(reader.times) == 1):
                    last_tick = now
                    await progress(reader.counted, now - sent, _decode_rate(reader))
    except httpx.TimeoutException:
        return Failure(f"no answer for {stall_s:g}s: the server stalled",
                       time.monotonic() - sent, stalled=True)
    except httpx.ConnectError as error:
        return Failure(f"cannot connect to {client.base_url}: {_os_reason(error)}",
                       time.monotonic() - sent)
    except httpx.HTTPError as error:
        reason = _one_line(str(error)) or type(error).__name__
        if isinstance(error, httpx.RemoteProtocolError) and not answered:
            return _Unanswered(reason, time.monotonic() - sent)
        return Failure(f"connection lost: {reason}", time.monotonic() - sent)
    ended = time.monotonic()
    if not reader.done:
        return Failure(f"the stream ended without a stop after {reader.counted} of {n_gen} tokens",
                       ended - sent)
    return reader.answer(ended)


def _placed(reader: _Reader, n_gen: int, ended: float) -> Answer | Failure:
    """An answer whose tokens printed no text (chat streams none of them): its first token
    placed where the server's generation time says, the rest at the end."""
    e2e = ended - reader.sent
    predicted_ms = reader.timings.get("predicted_ms")
    if not n_gen or predicted_ms is None:
        return Failure(f"the answer had no text and no timings for its {n_gen} tokens", e2e)
    first = min(e2e, max(0.0, e2e - predicted_ms / 1000))
    times, tokens = ((first, e2e), (1, n_gen - 1)) if n_gen > 1 else ((first,), (1,))
    processed, cached = int(reader.timings.get("prompt_n", 0)), reader.timings.get("cache_n")
    return Answer(ttft_s=first, e2e_s=e2e, n_prompt=processed + int(cached or 0),
                  n_cached=None if cached is None else int(cached), n_gen=n_gen, chunk_times=times,
                  chunk_tokens=tokens, timings=reader.timings, asked=reader.asked, silent=True,
                  stop=reader.stop)


def _decode_rate(reader: _Reader) -> float | None:
    if len(reader.times) < 2:
        return None
    span = reader.times[-1] - reader.times[0]
    return sum(reader.tokens[1:]) / span if span > 0 else None


def _os_reason(error: BaseException) -> str:
    """The operating system's words (``Connection refused``) under httpx's summary."""
    seen: BaseException | None = error
    while seen is not None:
        for candidate in (seen, *getattr(seen, "exceptions", ())):  # a group: one per address
            if isinstance(candidate, OSError) and candidate.errno:
                return os.strerror(candidate.errno)
        seen = seen.__cause__ or seen.__context__
    return _one_line(str(error)) or type(error).__name__


def _error_body(text: str) -> str:
    """llama-server's ``{"error": {"message": ...}}`` as its message; any other body as it is."""
    try:
        data = json.loads(text)
    except ValueError:
        return _one_line(text) or "(no body)"
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return _one_line(str(message)) if message else _one_line(text)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]

"""The mixed load one slot sends: chat turns that grow, long documents, short questions,
idle gaps. Nothing is kept per request: the window's counters only.

Sizes are in tokens, turned into words by the model's own words-per-token ratio
(measured once per server with ``/tokenize``), with a margin, so a prompt never runs past
the slot's context (that would be the soak's fault, not the build's).

Requests are not streamed, and go on each slot's own kept-alive connection
(``backends.soak.wire``): the soak needs each answer's token count and the server's own
decode time (its ``timings``), not when each token arrived, and reading a stream piece by
piece through a general HTTP client was most of the soak's own CPU time. A hang is then an
answer not whole within the hang limit, as for the probes.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass

import httpx

from backends.server.client import Failure
from backends.server.prompts import WORDS
from backends.soak.wire import Connection, Lost

MARGIN = 0.8  # of the slot's context a prompt may take, after the ratio's estimate
KINDS = ("chat", "chat", "chat", "document", "short", "idle")


@dataclass(frozen=True)
class Served:
    """One answered request: its generated tokens and the server's time generating them."""

    n_gen: int
    gen_s: float


@dataclass
class Window:
    """A build's counters since the last journalled window."""

    requests: int = 0
    errors: int = 0
    tokens: int = 0
    gen_s: float = 0.0

    def add(self, result: Served | Failure) -> None:
        self.requests += 1
        if isinstance(result, Failure):
            self.errors += 1
            return
        if result.gen_s > 0:  # an answer without the server's timings adds no speed
            self.tokens += result.n_gen
            self.gen_s += result.gen_s

    def take(self) -> Window:
        taken = Window(self.requests, self.errors, self.tokens, self.gen_s)
        self.requests, self.errors, self.tokens, self.gen_s = 0, 0, 0, 0.0
        return taken


async def tokens_per_word(client: httpx.AsyncClient) -> float:
    """How many tokens the server's model makes of the load's words, on average."""
    text = " ".join(WORDS)
    response = await client.post("/tokenize", json={"content": text, "add_special": False})
    response.raise_for_status()
    return max(1.0, len(response.json()["tokens"]) / len(WORDS))


class Slot:
    """One stream of mixed work; ``next_request`` says what to send next (or an idle gap)."""

    def __init__(self, seed: int, slot_ctx: int, n_gen: int, ratio: float, idle_s: float) -> None:
        self.rng = random.Random(seed)
        self.budget = int(slot_ctx * MARGIN / ratio) - n_gen  # words a prompt may have
        self.n_gen = n_gen
        self.idle_s = idle_s
        self.chat: list[str] = []
        self.chat_words = 0

    def _words(self, count: int) -> str:
        return " ".join(self.rng.choices(WORDS, k=count))

    def next_request(self) -> str | float:
        """A prompt to send, or seconds to stay idle."""
        kind = self.rng.choice(KINDS)
        if kind == "idle":
            return self.rng.uniform(0.0, self.idle_s)
        if kind == "document":
            count = self.rng.randint(max(1, self.budget // 2), max(1, self.budget))
            return f"Summarise this document.\n\n{self._words(count)}\n\nSummary:"
        if kind == "short":
            return f"Question: {self._words(self.rng.randint(4, 16))}?\nAnswer:"
        turn = self.rng.randint(8, 40)
        if self.chat_words + turn + self.n_gen > self.budget:
            self.chat, self.chat_words = [], 0  # the conversation filled the slot: a new one
        self.chat.append(f"User: {self._words(turn)}\nAssistant: {self._words(self.n_gen // 2)}")
        self.chat_words += turn + self.n_gen // 2 + 4
        return "\n".join(self.chat) + "\nUser: and then?\nAssistant:"


def request_body(prompt: str, n_gen: int, slot: int) -> dict[str, object]:
    return {"prompt": prompt, "n_predict": n_gen, "ignore_eos": True, "temperature": 0.0,
            "seed": 42, "cache_prompt": True, "id_slot": slot, "stream": False}


async def send(connection: Connection, prompt: str, n_gen: int, hang_s: float,
               slot: int) -> Served | Failure:
    """One request on the slot's own connection, read whole."""
    sent = time.monotonic()
    try:
        status, body = await connection.post_json("/completion", request_body(prompt, n_gen, slot),
                                                  hang_s)
    except TimeoutError:
        return Failure(f"no answer for {hang_s:g}s: the server hung", time.monotonic() - sent,
                       stalled=True)
    except Lost as error:
        return Failure(f"connection lost: {error}", time.monotonic() - sent)
    return _read(status, body, time.monotonic() - sent)


def _read(status: int, body: bytes, elapsed_s: float) -> Served | Failure:
    if status != 200:
        text = _one_line(body.decode("utf-8", "replace")) or "(no body)"
        return Failure(f"HTTP {status}: {text}", elapsed_s, status=status)
    try:
        data = json.loads(body)
        timings = data.get("timings") or {}
        n_gen = int(timings.get("predicted_n") or data.get("tokens_predicted") or 0)
        gen_s = float(timings.get("predicted_ms") or 0.0) / 1000.0
    except (ValueError, TypeError, AttributeError) as error:  # JSON, or not the fields asked for
        return Failure(f"an answer that cannot be read: {error}", elapsed_s)
    return Served(n_gen, gen_s)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]

"""The mixed load one slot sends: chat turns that grow, long documents, short questions,
idle gaps. Nothing is kept per request: the window's counters only.

Sizes are in tokens, turned into words by the model's own words-per-token ratio
(measured once per server with ``/tokenize``), with a margin, so a prompt never runs past
the slot's context (that would be the soak's fault, not the build's).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

from backends.server.client import Answer, Failure, stream_request
from backends.server.prompts import COMPLETION, WORDS

MARGIN = 0.8  # of the slot's context a prompt may take, after the ratio's estimate
KINDS = ("chat", "chat", "chat", "document", "short", "idle")


@dataclass
class Window:
    """A build's counters since the last journalled window."""

    requests: int = 0
    errors: int = 0
    tokens: int = 0
    gen_s: float = 0.0

    def add(self, result: Answer | Failure) -> None:
        self.requests += 1
        if isinstance(result, Failure):
            self.errors += 1
            return
        self.tokens += result.n_gen
        if result.n_gen > 1 and len(result.chunk_times) > 1:
            self.gen_s += result.chunk_times[-1] - result.chunk_times[0]

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
        return " ".join(self.rng.choice(WORDS) for _ in range(count))

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


async def send(client: httpx.AsyncClient, prompt: str, n_gen: int, hang_s: float,
               slot: int) -> Answer | Failure:
    return await stream_request(client, COMPLETION, prompt, n_gen, stall_s=hang_s, slot=slot)

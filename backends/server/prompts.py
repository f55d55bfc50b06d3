"""Prompts of an exact token length, counted by the server's own ``/tokenize``.

A prompt is ``prefix + body``: the prefix (the depth) is the same text for every request
of a level, so the server's prompt cache keeps it like llama-bench's ``-d`` keeps its
depth in the KV cache; the body is made of words drawn per request, so no two requests
share more than the prefix and the template's first tokens (unless the cache-reuse study
asks for the same body every time). For chat requests the count includes the chat
template the server applies (``/apply-template``), so the rendered prompt is exact.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

WORDS = ["time", "person", "year", "way", "day", "thing", "man", "world", "life", "hand", "part", "child", "eye", "woman", "place", "work", "week", "case", "point", "number", "group", "problem", "fact", "river", "stone", "light", "window", "garden", "table", "letter", "music", "story", "morning", "evening", "mountain", "valley", "harbor", "engine", "signal", "bridge", "market", "winter", "summer", "autumn", "spring", "forest", "meadow", "lantern", "castle", "village", "teacher", "doctor", "farmer", "sailor", "painter", "writer", "singer", "runner", "keeper", "builder", "reader", "silver", "golden", "quiet", "bright", "heavy", "gentle", "rapid", "narrow", "distant", "hidden", "ancient", "modern", "simple", "careful", "curious", "patient", "honest", "clever", "proud", "brave", "calm", "warm", "cold", "early", "late", "slowly", "often", "always", "never", "before", "after", "above", "below", "across", "behind", "beyond", "during", "inside", "walks", "talks", "reads", "writes", "builds", "carries", "follows", "watches", "opens", "closes", "finds", "keeps", "brings", "holds", "turns", "leaves", "moves", "plays", "sings", "draws", "paints", "counts", "measures"]  # noqa: E501 (a word list)
PADS = (".", " a", "\n", " 1", ",", " the", "!", " x")
CHAT = "chat"
COMPLETION = "completion"
ENDPOINTS = (CHAT, COMPLETION)
Measure = Callable[[str], Awaitable[int]]
_MARK = "\u2063MARK\u2063"


class PromptError(ValueError):
    """A prompt of the asked length cannot be made: one line for the user."""


def words_for(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(WORDS) for _ in range(count)]


@dataclass(frozen=True)
class Prompt:
    text: str  # the content sent: a chat message or a raw completion prompt
    tokens: int  # the rendered prompt's length, template and special tokens included
    prefix_tokens: int


class PromptBuilder:
    """Builds prompts for one server; remembers word counts so later fits are quick."""

    def __init__(self, client: httpx.AsyncClient, endpoint: str = CHAT) -> None:
        if endpoint not in ENDPOINTS:
            raise PromptError(f"unknown endpoint {endpoint!r}; choose {' or '.join(ENDPOINTS)}")
        self.client = client
        self.endpoint = endpoint
        self._header: str | None = None
        self._hints: dict[tuple[str, int], int] = {}

    async def _post(self, path: str, body: dict[str, object]) -> Any:
        try:
            response = await self.client.post(path, json=body)
        except httpx.RemoteProtocolError:  # a kept-alive connection the server had closed
            response = await self.client.post(path, json=body)
        if response.status_code != 200:
            raise PromptError(f"{path} answered HTTP {response.status_code}: {response.text[:200]}")
        return response.json()

    async def render(self, content: str) -> str:
        if self.endpoint == COMPLETION:
            return content
        data = await self._post("/apply-template",
                                {"messages": [{"role": "user", "content": content}]})
        return str(data["prompt"])

    async def count_text(self, text: str) -> int:
        data = await self._post("/tokenize", {"content": text, "add_special": True,
                                              "parse_special": self.endpoint == CHAT})
        return len(data["tokens"])

    async def count(self, content: str) -> int:
        """Tokens of the whole prompt the server will process for ``content``."""
        return await self.count_text(await self.render(content))

    async def header(self) -> str:
        """What the template puts before the user's text (empty for raw completions)."""
        if self._header is None:
            rendered = await self.render(_MARK)
            self._header = rendered.split(_MARK, 1)[0] if _MARK in rendered else ""
        return self._header

    async def prefix(self, depth: int, seed: int = 1) -> str:
        """Text whose rendered start (template header included) is exactly ``depth`` tokens."""
        if depth <= 0:
            return ""
        header = await self.header()

        async def measure(text: str) -> int:
            return await self.count_text(header + text)

        base = await measure("")
        if depth <= base:
            raise PromptError(f"a depth of {depth} tokens is shorter than the template's own "
                              f"{base}: use 0 or at least {base + 1}")
        text = await self._fit(measure, "", words_for(seed, depth), depth, ("prefix", depth))
        return text + "\n"  # the body starts on a line of its own: no merge across the seam

    async def prompt(self, prefix: str, n_prompt: int, depth: int, seed: int) -> Prompt:
        """``prefix`` plus a body drawn from ``seed``: ``depth + n_prompt`` tokens in all."""
        target = depth + n_prompt
        base = await self.count(prefix)
        if target <= base:
            raise PromptError(f"a prompt of {n_prompt} tokens leaves no room after the "
                              f"template and depth ({base} tokens): ask for more")
        text = await self._fit(self.count, prefix, words_for(seed, target), target,
                               ("body", target))
        return Prompt(text=text, tokens=target, prefix_tokens=depth)

    async def _fit(self, measure: Measure, stem: str, words: list[str], target: int,
                   hint_key: tuple[str, int]) -> str:
        def make(k: int) -> str:
            return stem + " ".join(words[:k])

        k = await self._largest_within(measure, make, len(words), target,
                                       self._hints.get(hint_key))
        self._hints[hint_key] = k
        text = make(k)
        return await self._pad(measure, text, target)

    @staticmethod
    async def _largest_within(measure: Measure, make: Callable[[int], str], most: int, target: int,
                              hint: int | None) -> int:
        """The largest word count whose prompt is at most ``target`` tokens."""
        low, high = 0, most  # measure(make(low)) <= target is assumed for low = 0
        if hint is not None and 0 < hint < most:
            if await measure(make(hint)) <= target:
                low, step = hint, 4
                while low + step < most and await measure(make(low + step)) <= target:
                    low, step = low + step, step * 2
                high = min(most, low + step)
            else:
                high = hint
        while high - low > 1:
            middle = (low + high) // 2
            if await measure(make(middle)) <= target:
                low = middle
            else:
                high = middle
        if high == most and await measure(make(most)) <= target:
            return most
        return low

    @staticmethod
    async def _pad(measure: Measure, text: str, target: int) -> str:
        current = await measure(text)
        for piece in PADS:  # most tokenizers give one token for each of these
            if current == target:
                return text
            trial = text + piece * (target - current)
            if await measure(trial) == target:
                return trial
        for _ in range(4 * (target - current) + 8):  # one token at a time
            if current == target:
                return text
            for piece in PADS:
                count = await measure(text + piece)
                if count == current + 1:
                    text, current = text + piece, count
                    break
            else:
                break
        if current == target:
            return text
        raise PromptError(f"cannot build a prompt of exactly {target} tokens with this "
                          f"model's tokenizer (closest: {current})")

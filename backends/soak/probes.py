"""Correctness probes: fixed prompts answered greedily, compared token by token.

A probe is a fixed question, alone or after a filler of words (its depth), sent to
``/completion`` as token ids at temperature 0 with a fixed seed, asking for the top
``n_probs`` token probabilities at every generated position. The answer is compared with
the reference's answer to the same ids, position by position, with the correctness
check's own measure: mean KL divergence of the reference's distribution from the
build's, and top-1 agreement. Both distributions must be taken after the same tokens, so
where the answers part, the build is fed the reference's answer one token at a time
(teacher forcing, as ``llama-perplexity --kl-divergence`` does over its text).

Top-1 agreement counts a flip between two tokens the reference rated within ``TIE_NATS``
of each other as agreement: a probe shares its batch with the load, and batch sizes move
the last bits of the arithmetic. The KL divergence is over the reference's top tokens
plus one bucket for the rest of the vocabulary; a token missing from the build's top list
is given the smallest probability the build listed, an upper bound, so the divergence is
never overstated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from backends.server.prompts import words_for

QUESTIONS = (
    "The capital city of France is",
    "Water freezes at a temperature of zero degrees",
    "The first five prime numbers are 2, 3,",
    "Once upon a time, in a small village by the sea, there lived",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "The three primary colours of light are",
)
_TINY = 1e-12
# A top-1 "disagreement" where the reference itself rated both tokens within this many nats
# is a tie the batch's arithmetic may break either way (a probe shares its batch with the
# load), not a wrong answer: it counts as agreement.
TIE_NATS = 0.01


@dataclass(frozen=True)
class ProbePrompt:
    index: int
    question: str
    filler_words: int  # words of filler before the question (0: none)

    @property
    def text(self) -> str:
        if not self.filler_words:
            return self.question
        filler = " ".join(words_for(1000 + self.index, self.filler_words))
        return f"Notes: {filler}.\n\n{self.question}"


@dataclass(frozen=True)
class Distribution:
    """The top tokens at one generated position: ids and log probabilities, best first."""

    ids: tuple[int, ...]
    logprobs: tuple[float, ...]

    @property
    def top1(self) -> int | None:
        return self.ids[0] if self.ids else None


@dataclass(frozen=True)
class ProbeAnswer:
    ids: tuple[int, ...]
    text: str
    tops: tuple[Distribution, ...]


class ProbeFailed(Exception):
    """A probe the server did not answer: ``hang`` when it fell silent."""

    def __init__(self, reason: str, *, hang: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hang = hang


def probe_prompts(count: int, slot_ctx: int, n_gen: int) -> tuple[ProbePrompt, ...]:
    """``count`` probes: the questions alone, then after a filler half a slot deep."""
    deep = max(0, (slot_ctx - n_gen) // 3)  # words; most are one or two tokens
    out = []
    for index in range(count):
        question = QUESTIONS[index % len(QUESTIONS)]
        out.append(ProbePrompt(index, question, deep if index % 2 else 0))
    return tuple(out)


def body(prompt_ids: Sequence[int], n_predict: int, n_probs: int, seed: int,
         slot: int | None) -> dict[str, Any]:
    sent: dict[str, Any] = {"prompt": list(prompt_ids), "n_predict": n_predict, "n_probs": n_probs,
                            "temperature": 0.0, "seed": seed, "stream": True, "cache_prompt": True}
    if slot is not None:
        sent["id_slot"] = slot
    return sent


def distribution(entry: dict[str, Any]) -> Distribution:
    """One position of ``completion_probabilities`` (ids with log probabilities)."""
    tops = entry.get("top_logprobs")
    if isinstance(tops, list):
        pairs = [(int(t["id"]), float(t["logprob"])) for t in tops
                 if isinstance(t, dict) and "id" in t and "logprob" in t]
    else:  # an older server: probabilities, not logs
        pairs = [(int(t["id"]), math.log(max(float(t["prob"]), _TINY)))
                 for t in entry.get("top_probs") or entry.get("probs") or []
                 if isinstance(t, dict) and "id" in t and "prob" in t]
    pairs.sort(key=lambda pair: -pair[1])
    return Distribution(tuple(i for i, _ in pairs), tuple(lp for _, lp in pairs))


async def answer(client: httpx.AsyncClient, prompt_ids: Sequence[int], n_predict: int,
                 n_probs: int, seed: int, hang_s: float, slot: int | None = None) -> ProbeAnswer:
    """The build's greedy answer with its top tokens at each position; ProbeFailed if not."""
    timeout = httpx.Timeout(hang_s, connect=min(hang_s, 10.0))
    ids: list[int] = []
    text: list[str] = []
    tops: list[Distribution] = []
    try:
        async with client.stream("POST", "/completion", json=body(prompt_ids, n_predict, n_probs, seed, slot),
                                 timeout=timeout) as response:
            if response.status_code != 200:
                detail = (await response.aread()).decode("utf-8", "replace")
                raise ProbeFailed(f"HTTP {response.status_code}: {' '.join(detail.split())[:200]}")
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                try:
                    data = json.loads(line[5:])
                except ValueError:
                    continue
                text.append(str(data.get("content") or ""))
                for entry in data.get("completion_probabilities") or ():
                    ids.append(int(entry.get("id", -1)))
                    tops.append(distribution(entry))
    except httpx.TimeoutException:
        raise ProbeFailed(f"no token for {hang_s:g}s: the server hung", hang=True) from None
    except httpx.HTTPError as error:
        raise ProbeFailed(f"connection lost: {' '.join(str(error).split())[:200] or type(error).__name__}") from None
    return ProbeAnswer(tuple(ids), "".join(text), tuple(tops))


def position_kld(ref: Distribution, got: Distribution) -> float:
    """KL(reference || build) over the reference's top tokens plus the rest's mass."""
    p = [math.exp(lp) for lp in ref.logprobs]
    listed = {i: math.exp(lp) for i, lp in zip(got.ids, got.logprobs)}
    floor = min(listed.values()) if listed else _TINY
    q = [listed.get(i, floor) for i in ref.ids]
    kld = sum(pi * math.log(pi / max(qi, _TINY)) for pi, qi in zip(p, q) if pi > 0)
    p_rest, q_rest = 1.0 - sum(p), 1.0 - sum(q)
    if p_rest > 1e-9:
        kld += p_rest * math.log(p_rest / max(q_rest, _TINY))
    return max(0.0, kld)


def first_difference(ref_ids: Sequence[int], ids: Sequence[int]) -> int:
    """The first position where the answers part (the shorter length when one is a prefix)."""
    for position, (a, b) in enumerate(zip(ref_ids, ids)):
        if a != b:
            return position
    return min(len(ref_ids), len(ids))


def _same_top(ref: Distribution, got: Distribution) -> bool:
    if ref.top1 == got.top1:
        return True
    rated = dict(zip(ref.ids, ref.logprobs))
    pick = rated.get(got.top1) if got.top1 is not None else None
    return pick is not None and bool(ref.logprobs) and ref.logprobs[0] - pick <= TIE_NATS


def compare(ref_tops: Sequence[Distribution], tops: Sequence[Distribution]) -> tuple[float, float]:
    """Mean KL divergence and top-1 agreement (a fraction) over the reference's positions;
    a position the build gave nothing for counts as a disagreement of unknown divergence."""
    if not ref_tops:
        return 0.0, 1.0
    klds = [position_kld(r, g) for r, g in zip(ref_tops, tops) if g.ids]
    agree = sum(1 for r, g in zip(ref_tops, tops) if g.ids and _same_top(r, g))
    mean = sum(klds) / len(klds) if klds else math.inf
    return mean, agree / len(ref_tops)

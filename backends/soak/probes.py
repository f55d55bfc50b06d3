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
# (5 %) is a tie the batch's arithmetic may break either way (a probe shares its batch with
# the load), not a wrong answer: it counts as agreement. Measured: Gemma 3 270M Q4_K_M on the
# CPU build against its own answers taken alone, mean KLD up to 0.0055 and one flip in six
# tokens when the probe shared its batch with a long document.
TIE_NATS = 0.05


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
         slot: int | None) -> dict[str, object]:
    # ignore_eos: every answer runs its full length, and every position has its
    # probabilities (the server reports none for an end-of-text token it stops at).
    sent: dict[str, object] = {"prompt": list(prompt_ids), "n_predict": n_predict, "n_probs": n_probs,
                               "temperature": 0.0, "seed": seed, "stream": True, "cache_prompt": True,
                               "ignore_eos": True}
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
    """The build's greedy answer, every token of it, with its top tokens where the server
    gave them; ProbeFailed if not.

    Not streamed: a stream holds back tokens that end inside a UTF-8 character and may never
    send them, and the server gives no probabilities for such tokens either; the whole
    answer's ``tokens`` always come, and each probability list is matched to its token.
    """
    sent = {**body(prompt_ids, n_predict, n_probs, seed, slot), "stream": False, "return_tokens": True}
    try:
        response = await client.post("/completion", json=sent,
                                     timeout=httpx.Timeout(hang_s, connect=min(hang_s, 10.0)))
    except httpx.TimeoutException:
        raise ProbeFailed(f"no answer for {hang_s:g}s: the server hung", hang=True) from None
    except httpx.HTTPError as error:
        raise ProbeFailed(f"connection lost: {' '.join(str(error).split())[:200] or type(error).__name__}") from None
    if response.status_code != 200:
        raise ProbeFailed(f"HTTP {response.status_code}: {' '.join(response.text.split())[:200]}")
    try:
        data = response.json()
        ids = tuple(int(t) for t in data.get("tokens") or ())
        entries = [e for e in data.get("completion_probabilities") or () if isinstance(e, dict)]
    except (ValueError, TypeError) as error:
        raise ProbeFailed(f"an answer that cannot be read: {error}") from None
    return ProbeAnswer(ids, str(data.get("content") or ""), align(ids, entries))


def align(ids: Sequence[int], entries: Sequence[dict[str, Any]]) -> tuple[Distribution, ...]:
    """One distribution per token, in order; empty where the server gave none."""
    tops: list[Distribution] = []
    pending = list(entries)
    for token in ids:
        if pending and int(pending[0].get("id", -1)) == token:
            tops.append(distribution(pending.pop(0)))
        else:
            tops.append(Distribution((), ()))
    return tuple(tops)


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


def _same_pick(ref: Distribution, ref_pick: int, pick: int | None) -> bool:
    """The build's greedy pick is the reference's, or one the reference rated as a tie."""
    if pick is None:
        return False
    if pick == ref_pick:
        return True
    rated = dict(zip(ref.ids, ref.logprobs))
    return pick in rated and bool(ref.logprobs) and ref.logprobs[0] - rated[pick] <= TIE_NATS


def compare(ref_ids: Sequence[int], ref_tops: Sequence[Distribution], picks: Sequence[int],
            tops: Sequence[Distribution]) -> tuple[float, float]:
    """Mean KL divergence over the positions where both gave probabilities, and top-1
    agreement (a fraction) over the reference's positions: the build's greedy pick against
    the reference's; a position the build gave nothing for counts as a disagreement."""
    if not ref_ids:
        return 0.0, 1.0
    klds = [position_kld(r, g) for r, g in zip(ref_tops, tops) if r.ids and g.ids]
    agree = sum(1 for n, (ref_pick, r) in enumerate(zip(ref_ids, ref_tops))
                if _same_pick(r, ref_pick, picks[n] if n < len(picks) else None))
    mean = sum(klds) / len(klds) if klds else 0.0
    return mean, agree / len(ref_ids)

"""What a server duel measures: load levels, request counts, the servers' settings."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from backends.journal.serve import Level
from backends.server.launch import ServerSettings
from backends.server.prompts import CHAT, ENDPOINTS

CONTEXT_MARGIN = 64  # tokens each slot gets beyond its largest prompt and answer
CONTEXT_STEP = 256
T = TypeVar("T")


class DuelError(ValueError):
    """A duel that cannot start as asked: the message is one line for the user."""


@dataclass(frozen=True)
class DuelSpec:
    """Load levels are every (depth, prompt length, concurrency), in that nesting order.

    Server conditions are axes too: ``ctx_sizes`` (the context the server allocates, ``-c``,
    whatever the prompt), ``cache_types`` (``-ctk``/``-ctv`` together) and ``parallel``
    (``--parallel`` slots, whatever the concurrency sent); empty: one level sized by the
    duel (context for the largest shape in every slot, a slot per stream of the highest
    concurrency, the settings' cache types). Levels nest depth, prompt, context, cache
    type, slots, concurrency.

    Each level runs ``requests`` requests in all (default: three per stream), or as many
    as start within ``duration_s`` seconds. Contenders serve each level in ``turns`` turns
    in A B, B A, A B ... order, the requests (or the time) shared out between them, so a
    slow spell of the machine falls on one turn and the verdict can tell it from a slow
    build. ``cache_reuse`` turns the cache study on: the servers get ``--cache-reuse N``
    and every request repeats the same prompt.
    """

    concurrency: tuple[int, ...] = (1, 2, 4, 8)
    prompts: tuple[int, ...] = (512,)
    n_gen: int = 128
    depths: tuple[int, ...] = (0,)
    requests: int | None = None
    duration_s: float | None = None
    endpoint: str = CHAT
    settings: ServerSettings = field(default_factory=ServerSettings)
    start_timeout_s: float = 300.0
    stall_s: float = 120.0
    warmup: bool = True
    resident: bool = False  # keep every contender's server up for the whole duel
    gap: bool = True  # run llama-bench for each shape at concurrency 1
    gap_repetitions: int = 3
    seed: int = 0  # prompts' words; 0: a new seed per duel, the same for every contender
    turns: int = 2
    ctx_sizes: tuple[int, ...] = ()
    cache_types: tuple[str, ...] = ()
    parallel: tuple[int, ...] = ()

    @property
    def cache_study(self) -> bool:
        return self.settings.cache_reuse is not None

    @property
    def slots(self) -> int:
        return max(self.concurrency)

    @property
    def ctx_size(self) -> int:
        """Context for every slot's largest prompt and answer, times the slots."""
        per_slot = max(self.depths) + max(self.prompts) + self.n_gen + CONTEXT_MARGIN
        per_slot = math.ceil(per_slot / CONTEXT_STEP) * CONTEXT_STEP
        return per_slot * self.slots

    def slots_for(self, level: Level) -> int:
        return level.slots or self.slots

    def ctx_for(self, level: Level) -> int:
        """The level's allocated context; the duel's size for its slots when it sets none."""
        if level.ctx_size:
            return level.ctx_size
        return self.ctx_size // self.slots * self.slots_for(level)

    def settings_for(self, level: Level) -> ServerSettings:
        if not level.cache_type:
            return self.settings
        return dataclasses.replace(self.settings, type_k=level.cache_type, type_v=level.cache_type)

    def requests_for(self, level: Level) -> int | None:
        if self.duration_s is not None:
            return self.requests
        return self.requests if self.requests is not None else 3 * level.concurrency

    def turns_for(self, level: Level) -> int:
        """The level's turns: never more than it has requests."""
        total = self.requests_for(level)
        return self.turns if total is None else max(1, min(self.turns, total))

    def turn_share(self, level: Level, turn: int) -> tuple[int | None, float | None]:
        """Requests and seconds of turn ``turn`` (1, 2, ...): the first turns take the remainder."""
        turns = self.turns_for(level)
        duration = self.duration_s / turns if self.duration_s is not None else None
        total = self.requests_for(level)
        if total is None:
            return None, duration
        return total // turns + (1 if turn <= total % turns else 0), duration

    def turn_order(self, turn: int, names: Sequence[T]) -> list[T]:
        """A B at odd turns, B A at even ones."""
        return list(names) if turn % 2 else list(reversed(names))

    def levels(self) -> tuple[Level, ...]:
        axes = (self.depths, self.prompts, self.ctx_sizes or (0,), self.cache_types or ("",),
                self.parallel or (0,), self.concurrency)
        return tuple(Level(concurrency=c, n_prompt=p, n_gen=self.n_gen, depth=d, ctx_size=x,
                           slots=s, cache_type=k)
                     for d, p, x, k, s, c in itertools.product(*axes))

    def problem(self) -> str | None:
        """Why this spec cannot run, in one line, or None."""
        if not self.concurrency or min(self.concurrency) < 1:
            return "concurrency levels must be 1 or more"
        if not self.prompts or min(self.prompts) < 1:
            return "prompt lengths must be 1 token or more"
        if self.n_gen < 1:
            return f"tokens to generate must be at least 1, not {self.n_gen}"
        if not self.depths or min(self.depths) < 0:
            return "depths must be 0 or more"
        if self.requests is not None and self.requests < 1:
            return f"requests per level must be at least 1, not {self.requests}"
        if self.duration_s is not None and not self.duration_s > 0:
            return f"the duration must be positive, not {self.duration_s}"
        if self.endpoint not in ENDPOINTS:
            return f"unknown endpoint {self.endpoint!r}; choose {' or '.join(ENDPOINTS)}"
        if self.turns < 1:
            return f"turns per level must be at least 1, not {self.turns}"
        if self.stall_s <= 0 or self.start_timeout_s <= 0:
            return "time-outs must be positive"
        if self.ctx_sizes and min(self.ctx_sizes) < 1:
            return "context sizes must be 1 token or more"
        if self.parallel and min(self.parallel) < 1:
            return "slots (--parallel) must be 1 or more"
        if any(not t.replace("_", "").isalnum() for t in self.cache_types):
            return f"cache types are names like f16, q8_0, q4_0, not {', '.join(self.cache_types)}"
        return None

    def to_settings(self) -> dict[str, str | int | float | bool | None]:
        """Flat, JSON-friendly settings for the journal's first event."""
        flat: dict[str, str | int | float | bool | None] = {
            "concurrency": ",".join(map(str, self.concurrency)),
            "prompts": ",".join(map(str, self.prompts)), "n_gen": self.n_gen,
            "depths": ",".join(map(str, self.depths)), "requests": self.requests,
            "duration_s": self.duration_s, "endpoint": self.endpoint, "slots": self.slots,
            "ctx_size": self.ctx_size, "resident": self.resident, "warmup": self.warmup,
            "stall_s": self.stall_s, "seed": self.seed, "turns": self.turns,
            "ctx_sizes": ",".join(map(str, self.ctx_sizes)), "cache_types": ",".join(self.cache_types),
            "parallel": ",".join(map(str, self.parallel)),
        }
        for key, value in dataclasses.asdict(self.settings).items():
            flat[key] = " ".join(value) if isinstance(value, (list, tuple)) else value
        return flat


# Where llama-bench and a server part ways: the context a server allocates, its KV cache
# type and its slots, swept at one short prompt and one stream (one user of a big server).
SERVER_CLIFFS = DuelSpec(concurrency=(1,), prompts=(128,), n_gen=64, requests=2,
                         ctx_sizes=(4096, 16384, 32768), cache_types=("f16", "q8_0", "q4_0"),
                         parallel=(1, 2, 4))
PRESETS: dict[str, DuelSpec] = {"server-cliffs": SERVER_CLIFFS}


def preset(name: str) -> DuelSpec:
    """A named duel (``server-cliffs``); DuelError names the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise DuelError(f"unknown preset {name!r}; choose {', '.join(PRESETS)}") from None

"""What a soak does: how long, how hard, how often it checks the answers, and when a silence
is a hang."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from backends.correctness import CorrectnessThresholds
from backends.server.launch import ServerSettings

HOUR_S = 3600.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*$", re.IGNORECASE)
_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": HOUR_S, "d": 24 * HOUR_S}


class SoakError(ValueError):
    """A soak that cannot start as asked: the message is one line for the user."""


def parse_duration(text: str) -> float:
    """``8h``, ``30m``, ``90s``, ``1.5h`` or plain seconds -> seconds."""
    match = _DURATION.match(text or "")
    if not match:
        raise SoakError(f"{text!r} is not a duration: write 8h, 30m, 90s or a number of seconds")
    seconds = float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    if seconds <= 0:
        raise SoakError(f"the duration must be positive, not {text!r}")
    return seconds


def duration_words(seconds: float) -> str:
    """``8 h``, ``25 min``, ``40 s``: the shortest unit that reads well."""
    if seconds >= HOUR_S:
        return f"{seconds / HOUR_S:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"


@dataclass(frozen=True)
class SoakSpec:
    """One soak. Each build serves ``slots`` streams of mixed work for ``duration_s``:

    chat turns that grow until the slot's context is full, long documents up to the
    slot's context (``ctx_size`` is shared by the load's slots; the probes get a slot of
    the same size of their own), short questions, and idle gaps of up to ``idle_s``. Every
    ``probe_every_s`` one fixed probe (temperature 0, fixed seed, the top ``n_probs``
    token probabilities) is compared with the reference's answer to it by mean KL
    divergence and top-1 agreement against ``thresholds`` (the correctness check's own).
    A request or probe with no token for ``hang_s`` is a hang: the server is killed and
    started again, as it is after a crash. Memory and throughput are journalled every
    ``window_s``.
    """

    duration_s: float
    slots: int = 2
    ctx_size: int = 4096
    n_gen: int = 64
    probe_every_s: float = 30.0
    probe_tokens: int = 24
    n_probs: int = 10
    idle_s: float = 2.0
    hang_s: float = 120.0
    start_timeout_s: float = 300.0
    window_s: float = 60.0
    seed: int = 1
    settings: ServerSettings = field(default_factory=ServerSettings)
    thresholds: CorrectnessThresholds = field(default_factory=CorrectnessThresholds)

    @property
    def slot_ctx(self) -> int:
        """Each slot's share of the allocated context (llama-server splits it evenly)."""
        return self.ctx_size // self.slots

    @property
    def server_slots(self) -> int:
        """The load's slots and one more of the same size for the probes, so a probe never
        waits behind a long document (and its prompt stays cached between positions)."""
        return self.slots + 1

    @property
    def server_ctx(self) -> int:
        return self.slot_ctx * self.server_slots

    def problem(self) -> str | None:
        """Why this soak cannot run, in one line, or None."""
        if not self.duration_s > 0:
            return f"the duration must be positive, not {self.duration_s}"
        if self.slots < 1:
            return f"slots must be 1 or more, not {self.slots}"
        if self.n_gen < 1 or self.probe_tokens < 1:
            return "tokens to generate must be at least 1"
        if self.slot_ctx < 4 * self.n_gen + 64:
            return (f"a context of {self.ctx_size} over {self.slots} slots leaves {self.slot_ctx} "
                    f"tokens a slot: give at least {self.slots * (4 * self.n_gen + 64)}")
        if not 1 <= self.n_probs <= 100:
            return f"token probabilities to compare must be 1 to 100, not {self.n_probs}"
        for name in ("probe_every_s", "hang_s", "start_timeout_s", "window_s"):
            if not getattr(self, name) > 0:
                return f"{name.removesuffix('_s').replace('_', ' ')} must be positive"
        if self.idle_s < 0:
            return "idle gaps cannot be negative"
        return None

    def to_settings(self) -> dict[str, Any]:
        """Every field as JSON-friendly values, for the journal (and resume)."""
        from backends.journal import codec

        return dict(codec.to_builtins(self))

    @classmethod
    def from_settings(cls, data: object) -> SoakSpec:
        from backends.journal import codec

        return codec.from_builtins(data, cls)

    def remaining(self, elapsed_s: float) -> SoakSpec:
        return dataclasses.replace(self, duration_s=max(0.0, self.duration_s - elapsed_s))

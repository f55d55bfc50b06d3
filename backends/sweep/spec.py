"""Sweep specs and the presets from the MI50 study.

A spec is a grid: every prompt size and every generation size at every depth, plus how
each point is measured (repetitions, fixed or adaptive; the thermal guard). It turns into
llama-bench argument lists in ``backends.sweep.argv``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from backends.journal import codec
from backends.journal.sweep import TestPoint
from backends.sweep.adaptive import FIRST_BLOCK

CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
# The study's split point between short and long context.
LONG_CONTEXT_DEPTH = 16384


class SweepError(ValueError):
    """A spec that cannot run as asked: the message is one line for the user."""


@dataclass(frozen=True)
class SweepSpec:
    """A grid of llama-bench test points plus the settings shared by all of them."""

    name: str = "custom"
    prompts: tuple[int, ...] = (512,)
    gens: tuple[int, ...] = (128,)
    depths: tuple[int, ...] = (0,)
    flash_attn: bool | None = True  # None leaves the build's own default
    type_k: str = "f16"
    type_v: str = "f16"
    n_gpu_layers: int | None = None  # None: llama-bench's default (all layers)
    n_cpu_moe: int | None = None
    auto_ncmoe: bool = False  # take -ncmoe from the model's fit in the device's VRAM
    mmap: bool | None = None  # None: the build's default load mode
    threads: int | None = None
    batch: int | None = None
    ubatch: int | None = None
    repetitions: int = 5  # counted repetitions per point; with ``adaptive``, the first block's
    extra_args: tuple[str, ...] = ()
    # Seconds allowed per test point before it counts as hung; None scales with the work.
    timeout: float | None = None
    # -r auto: start with ``repetitions`` (FIRST_BLOCK, 2) per contender, add blocks until the point is
    # decided or ``max_repetitions`` is reached (backends.sweep.adaptive).
    adaptive: bool = False
    max_repetitions: int = 10
    # Thermal guard: "auto" (wait until near the idle baseline), "off", or seconds to wait
    # at most; ``max_temp`` (°C) is the hottest a block may start at (None: from the limits).
    cooldown: str = "auto"
    max_temp: float | None = None

    def points(self) -> tuple[TestPoint, ...]:
        """Test points in run order: by depth, prompt tests before generation tests."""
        ordered = []
        for depth in self.depths:
            ordered += [TestPoint(n_prompt=p, n_gen=0, depth=depth) for p in self.prompts]
            ordered += [TestPoint(n_prompt=0, n_gen=g, depth=depth) for g in self.gens]
        return tuple(ordered)

    def validate(self) -> None:
        """Raise SweepError with one line naming the first bad value."""
        if not self.prompts and not self.gens:
            raise SweepError("the sweep has no tests: give at least one prompt or generation size")
        for label, values in (("prompt size", self.prompts), ("generation size", self.gens)):
            for value in values:
                if value <= 0:
                    raise SweepError(f"{label} must be positive, got {value}")
        if not self.depths:
            raise SweepError("the sweep has no depths: use 0 for an empty context")
        for depth in self.depths:
            if depth < 0:
                raise SweepError(f"depth must be 0 or more, got {depth}")
        if len(set(self.depths)) != len(self.depths):
            raise SweepError("depths repeat: give each depth once")
        for label, cache in (("K cache type", self.type_k), ("V cache type", self.type_v)):
            if cache not in CACHE_TYPES:
                raise SweepError(f"{label} {cache!r} is not one of {', '.join(CACHE_TYPES)}")
        if self.repetitions < 1:
            raise SweepError(f"repetitions must be at least 1, got {self.repetitions}")
        for label, count in (("threads", self.threads), ("batch", self.batch), ("ubatch", self.ubatch)):
            if count is not None and count < 1:
                raise SweepError(f"{label} must be at least 1, got {count}")
        if self.n_cpu_moe is not None and self.n_cpu_moe < 0:
            raise SweepError(f"-ncmoe must be 0 or more, got {self.n_cpu_moe}")
        if self.timeout is not None and self.timeout <= 0:
            raise SweepError(f"timeout must be positive, got {self.timeout}")
        self._validate_measurement()

    def _validate_measurement(self) -> None:
        if self.adaptive and self.max_repetitions < self.repetitions:
            raise SweepError(f"--max-repetitions ({self.max_repetitions}) must be at least the "
                             f"first block's {self.repetitions} repetitions")
        if self.cooldown not in ("auto", "off"):
            try:
                seconds = float(self.cooldown)
            except ValueError:
                raise SweepError(f"cooldown must be auto, off or seconds, got {self.cooldown!r}") from None
            if not seconds >= 0:
                raise SweepError(f"cooldown seconds must be 0 or more, got {self.cooldown}")
        if self.max_temp is not None and not 20 <= self.max_temp <= 120:
            raise SweepError(f"--max-temp must be between 20 and 120 °C, got {self.max_temp:g}")

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in codec.to_builtins(self).items() if v is not None}

    @classmethod
    def from_json(cls, payload: Mapping[str, object]) -> SweepSpec:
        """Back from ``to_json``; keys written by a newer llamaduel are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            return codec.from_builtins({k: v for k, v in payload.items() if k in known}, cls)
        except codec.CodecError as error:
            raise SweepError(f"a sweep spec that cannot be read: {error}") from None

    def with_changes(self, **changes: Any) -> SweepSpec:
        return dataclasses.replace(self, **changes)


def _preset_seed_sweep() -> SweepSpec:
    # The MI50 study: -fa 1, f16 KV cache, pp512 and tg256 at growing depths.
    return SweepSpec(name="seed-sweep", prompts=(512,), gens=(256,),
                     depths=(0, 4096, 8192, 16384, 32768), flash_attn=True,
                     type_k="f16", type_v="f16", repetitions=FIRST_BLOCK, adaptive=True)


def _preset_chat() -> SweepSpec:
    return SweepSpec(name="chat", prompts=(128, 512), gens=(128,), depths=(0, 2048),
                     flash_attn=True, repetitions=FIRST_BLOCK, adaptive=True)


def _preset_long_doc() -> SweepSpec:
    return SweepSpec(name="long-doc", prompts=(512,), gens=(128,),
                     depths=(0, 8192, 16384, 32768, 65536), flash_attn=True, repetitions=FIRST_BLOCK,
                     adaptive=True)


def _preset_moe_split() -> SweepSpec:
    # Split GPU/CPU inference as in the study: expert layers on the CPU, mmap off.
    return SweepSpec(name="moe-split", prompts=(512,), gens=(128,), depths=(0, 4096),
                     flash_attn=True, auto_ncmoe=True, mmap=False, repetitions=FIRST_BLOCK, adaptive=True)


PRESETS: dict[str, Callable[[], SweepSpec]] = {
    "seed-sweep": _preset_seed_sweep,
    "chat": _preset_chat,
    "long-doc": _preset_long_doc,
    "moe-split": _preset_moe_split,
}

PRESET_DESCRIPTIONS = {
    "seed-sweep": "the MI50 study: -fa 1, f16 cache, pp512 + tg256 at depths 0-32K",
    "chat": "short context: pp128/pp512 + tg128 at depths 0 and 2K",
    "long-doc": "long documents: pp512 + tg128 at depths to 64K",
    "moe-split": "MoE split GPU/CPU: -ncmoe from the model's fit, mmap off",
}


def preset(name: str) -> SweepSpec:
    try:
        return PRESETS[name]()
    except KeyError:
        raise SweepError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}") from None


def parse_int_list(text: str, label: str) -> tuple[int, ...]:
    """``"0,4096,8192"`` or ``"4k,16k"`` -> ints; SweepError names the bad item."""
    values = []
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        scale = 1
        if item[-1] in "kK":
            scale, item = 1024, item[:-1]
        try:
            values.append(int(item) * scale)
        except ValueError:
            raise SweepError(f"{label}: {item!r} is not a whole number") from None
    return tuple(values)



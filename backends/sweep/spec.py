"""Sweep specs, the presets from the MI50 study, and their llama-bench argument lists.

A spec is a grid: every prompt size and every generation size at every depth. It turns
into argv lists per build and test point (never a shell string), mapped onto the flags
that build's version of llama-bench supports.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from backends.events import TestPoint

CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
# The study's split point between short and long context.
LONG_CONTEXT_DEPTH = 16384


class SweepError(ValueError):
    """A spec that cannot run as asked: the message is one line for the user."""


class BenchBuild(Protocol):
    """What argv building needs from a build (backends.builds.BuildInfo satisfies it)."""

    name: str
    bench: Path | None
    flags: frozenset[str]


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
    repetitions: int = 5
    extra_args: tuple[str, ...] = ()
    # Seconds allowed per test point before it counts as hung; None scales with the work.
    timeout: float | None = None

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
        for label, value in (("K cache type", self.type_k), ("V cache type", self.type_v)):
            if value not in CACHE_TYPES:
                raise SweepError(f"{label} {value!r} is not one of {', '.join(CACHE_TYPES)}")
        if self.repetitions < 1:
            raise SweepError(f"repetitions must be at least 1, got {self.repetitions}")
        for label, value in (("threads", self.threads), ("batch", self.batch), ("ubatch", self.ubatch)):
            if value is not None and value < 1:
                raise SweepError(f"{label} must be at least 1, got {value}")
        if self.n_cpu_moe is not None and self.n_cpu_moe < 0:
            raise SweepError(f"-ncmoe must be 0 or more, got {self.n_cpu_moe}")
        if self.timeout is not None and self.timeout <= 0:
            raise SweepError(f"timeout must be positive, got {self.timeout}")

    def to_json(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> "SweepSpec":
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in payload.items():
            if key not in known:
                continue  # written by a newer llamaduel: ignore what we do not know
            values[key] = tuple(value) if isinstance(value, list) else value
        return cls(**values)

    def with_changes(self, **changes: Any) -> "SweepSpec":
        return dataclasses.replace(self, **changes)


def _preset_seed_sweep() -> SweepSpec:
    # The MI50 study: -fa 1, f16 KV cache, pp512 and tg256 at growing depths.
    return SweepSpec(name="seed-sweep", prompts=(512,), gens=(256,),
                     depths=(0, 4096, 8192, 16384, 32768), flash_attn=True,
                     type_k="f16", type_v="f16", repetitions=5)


def _preset_chat() -> SweepSpec:
    return SweepSpec(name="chat", prompts=(128, 512), gens=(128,), depths=(0, 2048),
                     flash_attn=True, repetitions=5)


def _preset_long_doc() -> SweepSpec:
    return SweepSpec(name="long-doc", prompts=(512,), gens=(128,),
                     depths=(0, 8192, 16384, 32768, 65536), flash_attn=True, repetitions=3)


def _preset_moe_split() -> SweepSpec:
    # Split GPU/CPU inference as in the study: expert layers on the CPU, mmap off.
    return SweepSpec(name="moe-split", prompts=(512,), gens=(128,), depths=(0, 4096),
                     flash_attn=True, auto_ncmoe=True, mmap=False, repetitions=3)


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


def has_flag(build: BenchBuild, *names: str) -> bool:
    return any(name in build.flags for name in names)


def bench_argv(build: BenchBuild, model: Path | str, spec: SweepSpec,
               points: Sequence[TestPoint] | TestPoint) -> list[str]:
    """The llama-bench argument list that runs ``points`` (all of one grid) on ``build``.

    Several points go into one process only when they form a grid (prompts x gens x depths),
    which is how ``run_sweep`` groups them (see ``grid_prefix``).
    """
    if isinstance(points, TestPoint):
        points = (points,)
    if build.bench is None:
        raise SweepError(f"build {build.name!r} has no llama-bench")
    # In the points' own order: llama-bench runs depth by depth, prompts then generations,
    # each in the order given, which is the order of SweepSpec.points().
    prompts = list(dict.fromkeys(p.n_prompt for p in points if p.kind == "pp"))
    gens = list(dict.fromkeys(p.n_gen for p in points if p.kind == "tg"))
    depths = list(dict.fromkeys(p.depth for p in points))
    argv = [str(build.bench), "-m", str(model),
            "-p", _join(prompts or [0]), "-n", _join(gens or [0])]
    if any(depths):
        if not has_flag(build, "-d", "--n-depth"):
            raise SweepError(f"build {build.name!r} is too old for depths (-d): use depth 0 only")
        argv += ["-d", _join(depths)]
    argv += ["-r", str(spec.repetitions), "-o", "jsonl"]
    if has_flag(build, "--progress"):
        argv.append("--progress")
    if spec.flash_attn is not None:
        argv += ["-fa", "1" if spec.flash_attn else "0"]
    argv += ["-ctk", spec.type_k, "-ctv", spec.type_v]
    if spec.n_gpu_layers is not None:
        argv += ["-ngl", str(spec.n_gpu_layers)]
    if spec.n_cpu_moe:
        if not has_flag(build, "-ncmoe", "--n-cpu-moe"):
            raise SweepError(f"build {build.name!r} has no -ncmoe: it cannot split MoE experts")
        argv += ["-ncmoe", str(spec.n_cpu_moe)]
    if spec.mmap is not None:
        argv += _load_mode_args(build, spec.mmap)
    if spec.threads is not None:
        argv += ["-t", str(spec.threads)]
    if spec.batch is not None:
        argv += ["-b", str(spec.batch)]
    if spec.ubatch is not None:
        argv += ["-ub", str(spec.ubatch)]
    argv += list(spec.extra_args)
    return argv


def grid_prefix(points: Sequence[TestPoint]) -> list[TestPoint]:
    """The longest run of ``points`` from the first that one llama-bench can run as a grid.

    The first depth's points, then each following depth while it holds exactly the same
    tests: after a failed or resumed point, the rest may not be a full grid any more.
    """
    if not points:
        return []
    first = points[0].depth
    head = [p for p in points if p.depth == first]
    tests = [(p.n_prompt, p.n_gen) for p in head]
    chosen = list(head)
    for depth in dict.fromkeys(p.depth for p in points if p.depth != first):
        group = [(p.n_prompt, p.n_gen) for p in points if p.depth == depth]
        if group != tests:
            break
        chosen += [p for p in points if p.depth == depth]
    return chosen


def _load_mode_args(build: BenchBuild, mmap: bool) -> list[str]:
    # Newer builds replaced -mmp 0|1 with -lm/--load-mode none|mmap.
    if has_flag(build, "-lm", "--load-mode"):
        return ["-lm", "mmap" if mmap else "none"]
    if has_flag(build, "-mmp", "--mmap"):
        return ["-mmp", "1" if mmap else "0"]
    raise SweepError(f"build {build.name!r} has neither -lm nor -mmp: cannot set the load mode")


def _join(values: Iterable[int]) -> str:
    return ",".join(str(v) for v in values)


def resolve_auto_ncmoe(spec: SweepSpec, model: Any, free_bytes: int | None) -> tuple[SweepSpec, str]:
    """Fill ``n_cpu_moe`` for specs that ask for it from the model's fit; returns a note.

    When the model fits entirely, half of its layers keep their experts on the CPU so the
    split path is still what gets measured.
    """
    if not spec.auto_ncmoe or spec.n_cpu_moe is not None:
        return spec, ""
    layers = getattr(model, "layers", None) or 0
    if not getattr(model, "is_moe", False):
        return spec.with_changes(n_cpu_moe=0), "dense model: no experts to split (-ncmoe 0)"
    if free_bytes is None:
        chosen = max(1, layers // 2)
        return spec.with_changes(n_cpu_moe=chosen), (
            f"free VRAM unknown: -ncmoe {chosen} (half of {layers} layers)")
    from backends.models import estimate_fit

    context = max(spec.depths) + max(spec.prompts + spec.gens)
    fit = estimate_fit(model, free_bytes, context, type_k=spec.type_k, type_v=spec.type_v)
    if fit.suggested_ncmoe:
        return spec.with_changes(n_cpu_moe=fit.suggested_ncmoe), (
            f"-ncmoe {fit.suggested_ncmoe} keeps the model within free VRAM")
    if fit.fits:
        chosen = max(1, layers // 2)
        return spec.with_changes(n_cpu_moe=chosen), (
            f"the model fits in VRAM; -ncmoe {chosen} (half of {layers} layers) to measure split inference")
    return spec.with_changes(n_cpu_moe=layers), f"-ncmoe {layers}: {fit.reason}"


class TimeoutPolicy:
    """How long a group of test points may run before it counts as hung.

    Speeds differ a thousandfold between a CPU and a GPU, so a build's first process gets
    a generous allowance and later ones are judged against the rate that build has shown
    (tokens of work, depth prefill included, per second of wall time), with a wide margin.
    """

    def __init__(self, first_s: float = 900.0, minimum_s: float = 60.0, margin: float = 10.0):
        self.first_s = first_s
        self.minimum_s = minimum_s
        self.margin = margin
        self._rates: dict[str, float] = {}

    @staticmethod
    def work(points: Sequence[TestPoint], repetitions: int) -> int:
        # Each repetition re-fills the depth, plus one warm-up run.
        return sum((p.depth + p.tokens) * (repetitions + 1) for p in points)

    def seconds(self, build: str, points: Sequence[TestPoint], repetitions: int,
                fixed: float | None = None) -> float:
        if fixed is not None:
            return fixed * len(points)
        rate = self._rates.get(build)
        if not rate:
            return self.first_s * len(points)
        return max(self.minimum_s, self.margin * self.work(points, repetitions) / rate)

    def observe(self, build: str, points: Sequence[TestPoint], repetitions: int,
                elapsed_s: float) -> None:
        if elapsed_s > 0:
            rate = self.work(points, repetitions) / elapsed_s
            # Keep the slowest rate seen: generation at depth is the slow case.
            self._rates[build] = min(rate, self._rates.get(build, rate))

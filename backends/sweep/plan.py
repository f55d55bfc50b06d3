"""The plan of a sweep, as pure functions: which points go into which llama-bench process,
in which order contenders take their turns, and how long a process may run.

Granularities (how test points map onto processes):

* ``point``: a process per point and block of repetitions;
* ``depth`` / ``build``: one process per depth / per contender for a round's points;
* ``resident``: one loaded process per contender for a round, paused (SIGSTOP) between
  its points while the others take their turn;
* ``auto``: each contender's first point runs alone and measures loading against
  running; ``resident`` when the models fit in memory together and every contender runs
  here (signals do not travel over ssh), else a process per point while loading costs at
  most AUTO_MAX_LOAD_SHARE of a point, else ``depth``. On an H100 a process per depth cost
  23-67 % more wall time than bare llama-bench (README "Measured").

Order: within a round, contenders take turns per point, reversing at every point and
every round (A B, B A, A B ...), so drift and heat hit them alike (ABBA).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from backends.journal.sweep import TestPoint
from backends.models import ModelInfo, estimate_fit
from backends.sweep.spec import SweepError, SweepSpec

GRANULARITIES = ("auto", "point", "resident", "depth", "build")
DEFAULT_GRANULARITY = "auto"
AUTO_MAX_LOAD_SHARE = 0.05

C = TypeVar("C")


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


def split_into_grids(points: Sequence[TestPoint]) -> list[tuple[TestPoint, ...]]:
    """``points`` in order, cut into pieces that each run as one llama-bench grid."""
    pieces, todo = [], list(points)
    while todo:
        piece = grid_prefix(todo)
        pieces.append(tuple(piece))
        todo = todo[len(piece):]
    return pieces


def chunk_points(points: Sequence[TestPoint], granularity: str) -> list[tuple[TestPoint, ...]]:
    """Group test points into llama-bench processes."""
    if granularity in ("point", "resident"):
        return [(p,) for p in points]
    if granularity == "build":
        return split_into_grids(points)
    if granularity == "depth":
        by_depth: dict[int, list[TestPoint]] = {}
        for p in points:
            by_depth.setdefault(p.depth, []).append(p)
        return [piece for group in by_depth.values() for piece in split_into_grids(group)]
    raise SweepError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")


def turn_order(contenders: Sequence[C], index: int, round_number: int = 0) -> list[C]:
    """Who goes first at the ``index``-th group of a round: reversed every other group and
    every other round, so the contenders alternate A B, B A (ABBA)."""
    forward = (index + round_number) % 2 == 0
    return list(contenders) if forward else list(reversed(contenders))


def schedule(contenders: Sequence[C], chunks: Sequence[tuple[TestPoint, ...]], interleave: bool,
             round_number: int = 0) -> list[tuple[C, tuple[TestPoint, ...]]]:
    """Turn order of a round: ABBA per chunk when interleaving, else all of A then all of B."""
    if not interleave:
        return [(c, chunk) for c in contenders for chunk in chunks]
    return [(c, chunk) for index, chunk in enumerate(chunks)
            for c in turn_order(contenders, index, round_number)]


@dataclass(frozen=True)
class ChunkTiming:
    """Where one llama-bench process spent its time: loading, then running its points."""

    load_s: float
    work_s: float
    points: int


def choose_granularity(timings: Sequence[ChunkTiming], resident_fits: bool = True,
                       why_not_resident: str = "") -> tuple[str, str]:
    """The grouping for the rest of a run from its first processes, and why, in words.

    Where the models fit loaded side by side, one paused process per build: a process per
    point pays the load again, and the depth prefill, which llama-bench does once per
    depth in a process (it keeps the last depth's state), once per point.
    """
    shares = [t.load_s / (t.work_s / t.points) for t in timings if t.work_s > 0 and t.points]
    share = max(shares) if shares else None
    load = max(t.load_s for t in timings) if shares else None
    measured = (f"loading takes {load:.2f} s, {share:.0%} of a point" if share is not None and load is not None
                else "load time not measurable")
    if resident_fits:
        return "resident", f"one loaded llama-bench per build, paused between its points: {measured}"
    if share is None or share <= AUTO_MAX_LOAD_SHARE:
        return "point", f"one llama-bench per test point: {measured}"
    return "depth", f"one llama-bench per depth: {measured}, and {why_not_resident}"


def resident_fits(gpu_contenders: int, free_bytes: int | None, model: ModelInfo,
                  spec: SweepSpec) -> tuple[bool, str]:
    """Whether ``gpu_contenders`` loaded copies of the model fit in the memory they share.

    Paused processes hold their weights but no KV cache (llama-bench frees each test's
    context before starting the next), so the need is one model per contender plus one
    test's cache.
    """
    if gpu_contenders < 2 or free_bytes is None:
        return True, ""
    if not model.runnable:
        return False, "the model's size is unknown"
    context = max(spec.depths) + max(spec.prompts + spec.gens)
    one = estimate_fit(model, free_bytes, context, type_k=spec.type_k, type_v=spec.type_v)
    need = one.needed_bytes + model.tensor_bytes * (gpu_contenders - 1)
    if need <= free_bytes:
        return True, ""
    return False, (f"{gpu_contenders} loaded copies need {need / 2**30:.1f} GiB of "
                   f"{free_bytes / 2**30:.1f} GiB free")


def resolve_auto_ncmoe(spec: SweepSpec, model: ModelInfo, free_bytes: int | None) -> tuple[SweepSpec, str]:
    """Fill ``n_cpu_moe`` for specs that ask for it from the model's fit; returns a note.

    When the model fits entirely, half of its layers keep their experts on the CPU so the
    split path is still what gets measured.
    """
    if not spec.auto_ncmoe or spec.n_cpu_moe is not None:
        return spec, ""
    layers = model.layers or 0
    if not model.is_moe:
        return spec.with_changes(n_cpu_moe=0), "dense model: no experts to split (-ncmoe 0)"
    if free_bytes is None:
        chosen = max(1, layers // 2)
        return spec.with_changes(n_cpu_moe=chosen), (
            f"free VRAM unknown: -ncmoe {chosen} (half of {layers} layers)")
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


def free_vram_bytes(free_mib: Iterable[int | None]) -> int | None:
    """The least free memory among the devices (the one that limits), in bytes."""
    known = [m for m in free_mib if m]
    return min(known) * 1024 * 1024 if known else None


class TimeoutPolicy:
    """How long a group of test points may run before it counts as hung.

    Speeds differ a thousandfold between a CPU and a GPU, so a contender's first process
    gets a generous allowance and later ones are judged against the rate it has shown
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

    def seconds(self, contender: str, points: Sequence[TestPoint], repetitions: int,
                fixed: float | None = None) -> float:
        if fixed is not None:
            return fixed * len(points)
        rate = self._rates.get(contender)
        if not rate:
            return self.first_s * len(points)
        return max(self.minimum_s, self.margin * self.work(points, repetitions) / rate)

    def observe(self, contender: str, points: Sequence[TestPoint], repetitions: int,
                elapsed_s: float) -> None:
        if elapsed_s > 0:
            rate = self.work(points, repetitions) / elapsed_s
            # Keep the slowest rate seen: generation at depth is the slow case.
            self._rates[contender] = min(rate, self._rates.get(contender, rate))

"""How long a sweep or a correctness check will take, from rates a build has shown.

Pure functions over measured rates (from an earlier run or a quick probe of the same
build and model): no processes, no files. The figures are estimates to plan by ("about
4 minutes"), not promises: deep contexts slow every build down by an amount only the run
itself measures, so the run's own pace replaces them as it goes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from backends.journal.sweep import TestPoint

# Attention makes each token dearer as the context fills; with nothing measured, a
# token at this depth is taken to cost twice one at depth 0.
DOUBLING_DEPTH = 16384
# The runner loads the model once per process; it keeps one process per build when a
# load costs more than this share of a test point (the runner's own rule).
RESIDENT_LOAD_SHARE = 0.05
# The correctness check: every scored token computes the whole output layer.
CHECK_CONTEXTS = (512, 256, 128, 64)
CHECK_CHUNKS = (None, 16, 8, 4, 2)  # None: the whole shipped text
SHIPPED_TEXT_TOKENS = 3000  # backends/data/reference.txt, about
DEFAULT_CHECK_BUDGET_S = 90.0
SOFTWARE_CHECK = (64, 2)  # a software renderer with nothing measured: two short chunks


@dataclass(frozen=True)
class Rates:
    """What one build did on one model: tokens/s at depth 0, and its load time."""

    pp: float
    tg: float
    load_s: float = 0.0
    basis: str = ""  # where the figures come from, in words ("a quick probe")

    @property
    def usable(self) -> bool:
        return self.pp > 0 and self.tg > 0


@dataclass(frozen=True)
class Estimate:
    """Seconds for the whole run, and per build; ``unknown`` names builds without rates."""

    seconds: float | None
    per_build: Mapping[str, float] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()
    basis: tuple[str, ...] = ()


def _slowdown(depth: float) -> float:
    return 1.0 + max(0.0, depth) / DOUBLING_DEPTH


def point_seconds(point: TestPoint, repetitions: int, rates: Rates) -> float:
    """One test point as llama-bench runs it: its warm-up (the prompt and one generated
    token), the context filled to the depth once (later repetitions restore the filled
    state), then ``repetitions`` timed runs, every one of them counted."""
    fill = point.depth / rates.pp * _slowdown(point.depth / 2) if point.depth else 0.0
    prompt = point.n_prompt / rates.pp * _slowdown(point.depth)
    gen = point.n_gen / rates.tg * _slowdown(point.depth)
    warmup = prompt + (1 / rates.tg * _slowdown(point.depth) if point.n_gen else 0.0)
    return warmup + fill + repetitions * (prompt + gen)


def build_seconds(points: Sequence[TestPoint], repetitions: int, rates: Rates) -> float:
    """Every point of one build, with the model loads its processes need."""
    work = [point_seconds(p, repetitions, rates) for p in points]
    if not work:
        return 0.0
    # A fresh process per point, or one kept loaded.
    loads = rates.load_s * len(work) if rates.load_s <= RESIDENT_LOAD_SHARE * min(work) else rates.load_s
    return sum(work) + loads


def sweep_seconds(points: Sequence[TestPoint], repetitions: int,
                  rates: Mapping[str, Rates | None], builds: Iterable[str]) -> Estimate:
    """The sweep's duration when its builds take turns on one device."""
    per_build: dict[str, float] = {}
    unknown: list[str] = []
    basis: list[str] = []
    for name in builds:
        measured = rates.get(name)
        if measured is None or not measured.usable:
            unknown.append(name)
            continue
        per_build[name] = build_seconds(points, repetitions, measured)
        if measured.basis and measured.basis not in basis:
            basis.append(measured.basis)
    total = None if unknown or not per_build else sum(per_build.values())
    return Estimate(total, per_build, tuple(unknown), tuple(basis))


def logits_factor(parameters: int | None, vocab: int | None, embedding: int | None) -> float:
    """How much dearer a token is when its logits are all computed (the check) than in
    llama-bench's prompt test (only the last token's): the output layer's share."""
    if not parameters or not vocab or not embedding:
        return 2.0
    output = vocab * embedding
    rest = max(parameters - output, output / 4)
    return min(6.0, max(1.0, (rest + output) / rest))


def check_seconds(context: int, chunks: int | None, rates: Rates, factor: float) -> float:
    """One build's llama-perplexity run over ``chunks`` chunks of ``context`` tokens."""
    tokens = context * (chunks or max(2, SHIPPED_TEXT_TOKENS // context))
    return rates.load_s + tokens * factor / rates.pp


def check_size(rates: Sequence[Rates | None], factor: float, *, software: bool,
               budget_s: float = DEFAULT_CHECK_BUDGET_S) -> tuple[int | None, int | None]:
    """The check's (context, chunks) for these builds: the largest that the slowest build
    reads within ``budget_s``; (None, None) keeps the check's own defaults."""
    known = [r for r in rates if r is not None and r.usable]
    if len(known) < len(rates) or not known:
        return SOFTWARE_CHECK if software else (None, None)
    slowest = min(known, key=lambda r: r.pp)
    for context in CHECK_CONTEXTS:
        for chunks in CHECK_CHUNKS:
            if check_seconds(context, chunks, slowest, factor) <= budget_s:
                return (None, None) if (context, chunks) == (512, None) else (context, chunks)
    return SOFTWARE_CHECK


def context_problem(points: Sequence[TestPoint], trained: int | None) -> str | None:
    """One line when the deepest test needs more context than the model was trained on."""
    if not trained or not points:
        return None
    deepest = max(points, key=lambda p: p.depth + p.n_prompt + p.n_gen)
    needed = deepest.depth + deepest.n_prompt + deepest.n_gen
    if needed <= trained:
        return None
    beyond = sorted({p.depth for p in points if p.depth + p.n_prompt + p.n_gen > trained})
    shown = _tokens(beyond[0]) if len(beyond) == 1 else f"{_tokens(beyond[0])}-{_tokens(beyond[-1])}"
    return (f"depth {shown} goes past the model's {trained:,}-token context ({needed:,} "
            "needed): results there say little")


def _tokens(value: int) -> str:
    return f"{value // 1024}K" if value and value % 1024 == 0 else str(value)

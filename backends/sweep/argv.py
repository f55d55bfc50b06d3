"""llama-bench argument lists for a contender and a group of test points (never a shell string).

Flags are mapped onto what that build's version of llama-bench supports: newer builds
replaced ``-mmp 0|1`` with ``-lm/--load-mode``; depths (``-d``) and ``-ncmoe`` exist only
in newer ones. A flag the build lacks is a SweepError before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from backends.journal.sweep import TestPoint
from backends.sweep.grid import has_flag, setting_args
from backends.sweep.spec import SweepError, SweepSpec


class BenchBuild(Protocol):
    """What argv building needs from a contender (backends.builds.BuildInfo satisfies it)."""

    @property
    def name(self) -> str: ...
    @property
    def bench(self) -> Path | None: ...
    @property
    def flags(self) -> frozenset[str]: ...
    @property
    def env(self) -> Mapping[str, str]: ...
    @property
    def host(self) -> str | None: ...  # the ssh destination it runs on; None: here
    def contender_args(self) -> list[str]: ...


def bench_argv(build: BenchBuild, model: Path | str, spec: SweepSpec,
               points: Sequence[TestPoint] | TestPoint, repetitions: int | None = None) -> list[str]:
    """The llama-bench argument list that runs ``points`` (all of one grid) on ``build``.

    Several points go into one process only when they form a grid (prompts x gens x depths),
    which is how the runner groups them (``backends.sweep.plan.grid_prefix``).
    ``repetitions`` is the count asked of llama-bench (default: the spec's).
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
    argv += ["-r", str(repetitions or spec.repetitions), "-o", "jsonl"]
    if has_flag(build, "--progress"):
        argv.append("--progress")
    own = build.contender_args()
    argv += _overridden(setting_args(build, spec), own)
    argv += own
    argv += list(spec.extra_args)
    return argv


# Settings a contender may give itself (``--set``, a tuned ubatch): llama-bench would run
# both values of a repeated flag, so the contender's own replaces the sweep's.
_ALIASES = {"--flash-attn": "-fa", "--cache-type-k": "-ctk", "--cache-type-v": "-ctv",
            "--n-gpu-layers": "-ngl", "--n-cpu-moe": "-ncmoe", "--threads": "-t",
            "--batch-size": "-b", "--ubatch-size": "-ub", "--mmap": "-mmp", "--load-mode": "-lm"}


def _overridden(settings: list[str], own: Sequence[str]) -> list[str]:
    """``settings`` (flag value pairs) without the flags ``own`` sets again."""
    taken = {_ALIASES.get(a, a) for a in own if a.startswith("-")}
    kept: list[str] = []
    for flag, value in zip(settings[::2], settings[1::2], strict=True):
        if _ALIASES.get(flag, flag) not in taken:
            kept += [flag, value]
    return kept


def _join(values: Iterable[int]) -> str:
    return ",".join(str(v) for v in values)

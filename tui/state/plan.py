"""What a run set up on the Setup screen will do and how long it should take.

A pure function of the chosen builds, model and sweep, and of the rates the builds have
shown: the check's size (small on a software renderer), estimates for the check and the
sweep, and warnings (depths past the model's context).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from backends.estimate import Estimate, Rates, check_seconds, check_size, context_problem, logits_factor, sweep_seconds
from backends.tune.estimate import tune_seconds
from tui.state.format import format_eta, size_text

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.correctness import CheckOptions
    from backends.journal.tune import TuneSpec
    from backends.models import ModelInfo
    from backends.sweep import SweepSpec

# The check's own default when nothing sizes it: 512-token chunks over the whole text.
DEFAULT_CHECK_CONTEXT = 512


@dataclass(frozen=True)
class Plan:
    builds: tuple[str, ...]
    points: int
    repetitions: int
    estimate: Estimate
    check: CheckOptions | None = None  # None: no check
    check_estimates: Mapping[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    tune: Estimate | None = None  # the tune phase before the duel; None: no tune

    @property
    def check_seconds(self) -> float | None:
        if self.check is None:
            return 0.0
        if len(self.check_estimates) < len(self.builds):
            return None
        return sum(self.check_estimates.values())

    @property
    def seconds(self) -> float | None:
        """The whole run, the check and the tune included; None when a build has no rates yet."""
        check = self.check_seconds
        tune = 0.0 if self.tune is None else self.tune.seconds
        if self.estimate.seconds is None or check is None or tune is None:
            return None
        return self.estimate.seconds + check + tune

    def line(self, timing: Collection[str] = ()) -> str:
        """``2 builds × 4 points × 2 reps · about 3 min (from a quick probe) · check: ...``;
        ``timing``: the builds a quick probe is timing now, for the estimate."""
        size = (f"{len(self.builds)} build{'s' if len(self.builds) != 1 else ''} × "
                f"{self.points} points × {self.repetitions} reps")
        if timing:
            how_long = f"how long: timing {', '.join(sorted(timing))} (pp32, tg8)…"
        elif self.seconds is not None:
            basis = f" (from {', '.join(self.estimate.basis)})" if self.estimate.basis else ""
            tuned = " with the tune first" if self.tune is not None else ""
            how_long = f"about {format_eta(self.seconds)[1:]}{tuned}{basis}"
        elif self.estimate.unknown:
            how_long = f"how long: t times {', '.join(self.estimate.unknown)}"
        else:
            how_long = ""
        check = ""
        if self.check is not None:
            chunks = self.check.chunks
            context = self.check.context or DEFAULT_CHECK_CONTEXT
            check = (f"check: {chunks}×{context} tokens" if chunks
                     else f"check: the text in {context}-token chunks")
        return " · ".join(p for p in (size, how_long, check) if p)


def is_software(build: BuildInfo) -> bool:
    return bool(build.devices) and all(d.is_software for d in build.devices)


def make_plan(builds: Sequence[BuildInfo], model: ModelInfo, spec: SweepSpec,
              rates: Mapping[str, Rates | None], *, check: bool,
              check_options: CheckOptions | None = None, tune: TuneSpec | None = None) -> Plan:
    points = spec.points()
    names = tuple(b.name for b in builds)
    estimate = sweep_seconds(points, spec.repetitions, rates, names)
    tuned = None if tune is None else tune_seconds(spec, tune, rates, names)
    fallbacks = tuple(f"{b.name} was {b.fallback} (you will be asked before it runs)"
                      for b in builds if b.fallback)
    warnings = tuple(w for w in (context_problem(points, model.context_length),) if w) + fallbacks
    if not check:
        return Plan(names, len(points), spec.repetitions, estimate, None, {}, warnings, tuned)
    factor = logits_factor(model.parameters, model.vocab_size, model.embedding_length)
    from backends.correctness import CheckOptions

    options = check_options or CheckOptions()
    software = any(is_software(b) for b in builds)
    if options.context is None and options.chunks is None:
        context, chunks = check_size([rates.get(n) for n in names], factor, software=software)
        if context is not None:
            options = dataclasses.replace(options, context=context, chunks=chunks)
    if software and options.chunks:
        # The check's warm-up decode alone takes tens of seconds on a software renderer.
        extra = {n: tuple(a) for n, a in options.extra_args.items()}
        for build in builds:
            if build.perplexity is not None:
                extra[build.name] = (*extra.get(build.name, ()), "--no-warmup")
        options = dataclasses.replace(options, extra_args=extra)
    context = options.context or DEFAULT_CHECK_CONTEXT
    chunks = options.chunks
    estimates = {n: check_seconds(context, chunks, r, factor)
                 for n in names if (r := rates.get(n)) is not None and r.usable}
    return Plan(names, len(points), spec.repetitions, estimate, options, estimates, warnings, tuned)


def fit_text(model: ModelInfo, builds: Sequence[BuildInfo], spec: SweepSpec | None) -> str:
    """Whether ``model`` fits the chosen builds' smallest GPU at the sweep's largest context."""
    from backends.models import estimate_fit

    if model.problem:
        return model.problem
    free = [d.free_mib for b in builds for d in b.devices if not d.is_software]
    if not free:
        return "CPU only"
    context = max((p.depth + p.n_prompt + p.n_gen for p in spec.points()),
                  default=4096) if spec else 4096
    try:
        fit = estimate_fit(model, min(free) * 1024**2, context)
    except Exception as error:
        return f"unknown ({error})"
    if fit.fits:
        return f"fits ({size_text(fit.needed_bytes)})"
    if fit.suggested_ncmoe:
        return f"too big: try -ncmoe {fit.suggested_ncmoe}"
    return f"too big ({size_text(fit.needed_bytes)})"

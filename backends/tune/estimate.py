"""How long the tune phase adds to a run, for a plan's estimate (pure: no processes).

The search stops when its budget is spent (a probe running then may go ``BUDGET_SLACK``
past it before it is cut); a contender that finishes early passes its share on, so the
budget is the search's time. After the choice, a contender whose choice is not its defaults
is measured at its defaults too, at the sweep's points of its middle depth: which
contenders will need that is not known before the tune, so every one is counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from backends.estimate import Estimate, Rates, sweep_seconds
from backends.journal.tune import TuneSpec
from backends.sweep.spec import SweepSpec
from backends.tune.grid import defaults_points

BUDGET_SLACK = 0.05  # a probe may run this share of a contender's share past it before it is cut


def tune_seconds(spec: SweepSpec, tune: TuneSpec, rates: Mapping[str, Rates | None],
                 builds: Sequence[str]) -> Estimate:
    """The tune phase's seconds, per contender (its share of the budget, the slack, and its
    defaults block) and in all; ``seconds`` is None while a contender's rates are unknown
    (the budget alone is then ``tune.budget_s``)."""
    share = tune.budget_s / max(len(builds), 1) * (1 + BUDGET_SLACK)
    # Each contender's defaults block is a sweep of its own points: the sweep's estimate.
    defaults = sweep_seconds(defaults_points(spec), spec.repetitions, rates, builds)
    per_build = {name: share + seconds for name, seconds in defaults.per_build.items()}
    total = None if defaults.seconds is None else sum(per_build.values())
    return Estimate(total, per_build, defaults.unknown)

"""One real CPU build under two names (an A/A test): no winner and no crossover.

The real llama-bench on a busy two-core machine: repetitions stall, whole points drift. What
the sweep measures is noise, and the verdict must say so. The same run also checks the one
verdict path: the Results screen's verdict and the saved profile's are the same object.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.builds import probe_build
from backends.journal.sweep import PointDecided
from backends.sweep import RunRequest, SweepSpec, read_journal, run_sweep
from backends.sweep.adaptive import FIRST_BLOCK
from profiles.model import profile_from_journal
from profiles.records import records_from_events
from profiles.verdict import recommend_run

pytestmark = pytest.mark.toolchain

AA = SweepSpec(name="aa", prompts=(32,), gens=(8,), depths=(0, 64, 128, 256), repetitions=5,
               flash_attn=True, threads=1)


async def test_one_build_under_two_names_has_no_winner_and_no_crossover(cpu_bin, tiny_llama, tmp_path: Path):
    a, b = probe_build(cpu_bin, "cpu-a"), probe_build(cpu_bin, "cpu-b")
    events = [e async for e in run_sweep(RunRequest([a, b], tiny_llama, AA, run_dir=tmp_path))]
    rec = recommend_run(records_from_events(events))
    assert {v.phase for v in rec.verdicts} == {"pp", "tg"}
    for v in rec.verdicts:
        assert v.status in ("tie", "no clear winner"), v.summary
        assert v.winner is None and v.confidence in ("none", "low"), v.summary
        assert all(c.reps == "5:5" or ":" in c.reps for c in v.comparisons[0].cells)
    assert rec.crossovers == ()
    assert not any("Crossover" in line or "passes from" in line for line in rec.summary)

    # One verdict path: the screen's card and the saved profile say the same thing.
    from tui.screens.results import recommendation_for
    from tui.state.run import fold_all
    from tui.widgets.verdict_card import describe_class

    state = fold_all(read_journal(tmp_path))
    on_screen = recommendation_for(state)
    saved = profile_from_journal(read_journal(tmp_path), name="aa").recommendation
    assert on_screen == saved == rec
    cards = [describe_class([v for v in r.verdicts if v.workload == "short_dense"], r.stability)
             for r in (on_screen, saved)]
    assert cards[0] == cards[1] and "stability: every build ran clean" in cards[0]


async def test_under_adaptive_repetitions_one_build_under_two_names_has_no_winner(cpu_bin, tiny_llama,
                                                                                  tmp_path: Path):
    """``-r auto`` stops a point as soon as its gap is decided: noise must never look decided
    after the first two repetitions, and the verdict stays without a winner or a crossover."""
    a, b = probe_build(cpu_bin, "cpu-a"), probe_build(cpu_bin, "cpu-b")
    spec = AA.with_changes(repetitions=FIRST_BLOCK, adaptive=True)
    events = [e async for e in run_sweep(RunRequest([a, b], tiny_llama, spec, run_dir=tmp_path))]
    decided = [e for e in events if isinstance(e, PointDecided)]
    assert len(decided) == len(spec.points())
    assert not any(d.outcome == "decided" and d.reason == "decided after 2" for d in decided), decided
    # Nor beside neighbours: alike builds never give a point neighbours decided by 4x.
    assert not any("beside neighbours" in d.reason for d in decided), decided
    rec = recommend_run(records_from_events(events))
    assert {v.phase for v in rec.verdicts} == {"pp", "tg"}
    for v in rec.verdicts:
        assert v.status in ("tie", "no clear winner") and v.winner is None, v.summary
    assert rec.crossovers == ()

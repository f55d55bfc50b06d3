"""When `-r auto` stops measuring a point: two repetitions a side for a wide, separated gap,
more for anything closer, and an error rate held across every look of the run."""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from pathlib import Path

import pytest

from backends import stats
from backends.journal.sweep import TestPoint
from backends.sweep import adaptive

RUNS = Path(__file__).parent / "data" / "aa-cpu-busy-2core" / "runs.jsonl"


def _recorded_aa_points() -> list[dict[str, list[float]]]:
    """Every point of the thirty recorded A/A runs: one CPU build under two names, five
    repetitions each, on two busy cores."""
    points: dict[tuple[int, int, int, int], dict[str, list[float]]] = defaultdict(dict)
    for line in RUNS.read_text().splitlines():
        item = json.loads(line)
        record = item["record"]
        key = (item["run"], record["n_prompt"], record["n_gen"], record["n_depth"])
        points[key][item["build"]] = record["samples_ts"]
    return list(points.values())


def test_a_wide_separated_pair_stops_after_two():
    outcome = adaptive.decide({"cpu": [82_000.0, 64_000.0], "vulkan": [104.0, 98.0]}, cap=10)
    assert (outcome.outcome, outcome.leader) == ("decided", "cpu")
    assert outcome.reason == "decided after 2"


def test_an_overlapping_pair_goes_on():
    outcome = adaptive.decide({"a": [100.0, 120.0], "b": [110.0, 95.0]}, cap=10)
    assert outcome.outcome == "open" and outcome.reason == "open after 2"


def test_a_separated_but_narrow_pair_at_two_goes_on():
    # Separated (each group far narrower than the 2x gap) and beyond the tie band, yet a
    # busy machine shifts a whole block this far: two repetitions a side are not enough.
    samples = {"a": [200.0, 204.0], "b": [100.0, 101.0]}
    fast, slow = samples["a"], samples["b"]
    assert stats.separated(fast, slow, stats.TIE_FRACTION)
    assert adaptive.decide(samples, cap=10).outcome == "open"


def test_the_same_gap_with_more_repetitions_is_decided_by_the_test():
    samples = {"a": [200.0, 204.0, 199.0, 202.0], "b": [100.0, 101.0, 99.0, 102.0]}
    outcome = adaptive.decide(samples, cap=10)
    assert (outcome.outcome, outcome.leader, outcome.reason) == ("decided", "a", "decided after 4")


def test_a_t_test_on_two_repetitions_never_decides():
    # Welch's test alone would call this significant (p < 0.05); the rule does not use it.
    a, b = [110.0, 110.5], [100.0, 100.4]
    gap = adaptive.compare(a, b)
    assert gap is not None and gap.p_value is not None and gap.p_value < stats.ALPHA
    assert adaptive.judge(gap) == "open"


def test_the_recorded_aa_noise_never_stops_as_decided_after_two():
    points = _recorded_aa_points()
    assert len(points) == 240
    for samples in points:
        first_block = {name: values[:2] for name, values in samples.items()}
        assert adaptive.decide(first_block, cap=10).outcome == "open", samples


def test_the_recorded_aa_noise_rarely_stops_at_later_looks():
    """At four and five repetitions a side the busy machine's shifted points may pass the
    test, within the share of the error rate the looks were given."""
    points = _recorded_aa_points()
    for n in (4, 5):
        decided = sum(adaptive.decide({k: v[:n] for k, v in s.items()}, cap=10).outcome == "decided"
                      for s in points)
        assert decided / len(points) <= stats.ALPHA, (n, decided)


def test_the_looks_split_the_error_rate():
    assert adaptive.looks(10) == 5  # after 2, 4, 6, 8 and 10 repetitions
    assert adaptive.looks(7) == 4  # 2, 4, 6 and the cap
    # The first look (two a side) runs no t-test: the other four share alpha.
    assert adaptive.look_alpha(10) == pytest.approx(stats.ALPHA / 4)
    assert adaptive.look_alpha(7, first=3) == pytest.approx(stats.ALPHA / 3)


def test_aa_noise_through_every_look_stays_within_the_error_rate():
    """Simulated A/A runs, each block shifted as a busy machine shifts it: looks after every
    block up to the cap, as the runner makes them. False leads stay under alpha."""
    rng = random.Random(27)
    runs, false_leads, stopped_at_two = 400, 0, 0
    for _ in range(runs):
        samples: dict[str, list[float]] = {"a": [], "b": []}
        for block in range(5):
            for name in samples:
                shift = rng.gauss(0.0, 0.10)  # the whole block
                samples[name] += [1000.0 * math.exp(shift + rng.gauss(0.0, 0.03)) for _ in range(2)]
            outcome = adaptive.decide(samples, cap=10)
            if outcome.outcome != "open":
                false_leads += outcome.outcome == "decided"
                stopped_at_two += block == 0 and outcome.outcome == "decided"
                break
    assert stopped_at_two == 0
    assert false_leads / runs <= stats.ALPHA, false_leads


def test_a_point_between_neighbours_decided_wide_is_decided_by_them():
    # A 3.3x lead, separated, yet inside the wide margin: open by itself...
    samples = {"cpu": [33_000.0, 36_000.0], "vulkan": [10_000.0, 10_500.0]}
    assert adaptive.decide(samples, cap=10).outcome == "open"
    wide = {"cpu": [80_000.0, 82_000.0], "vulkan": [1_000.0, 1_100.0]}
    # ...decided beside neighbours that the wide margin decided for the same build.
    outcome = adaptive.by_neighbours(samples, [wide, wide])
    assert outcome is not None and (outcome.outcome, outcome.leader) == ("decided", "cpu")
    assert outcome.reason == "decided after 2, beside neighbours decided by 4x"
    # Not when a neighbour is led by the other build, or is not wide, or is missing.
    reversed_lead = {"cpu": [1_000.0, 1_100.0], "vulkan": [80_000.0, 82_000.0]}
    assert adaptive.by_neighbours(samples, [wide, reversed_lead]) is None
    assert adaptive.by_neighbours(samples, [wide, samples]) is None
    assert adaptive.by_neighbours(samples, []) is None
    # Nor when the point's own lead is narrower than NEIGHBOUR_RATIO or not separated.
    narrow = {"cpu": [25_000.0, 26_000.0], "vulkan": [10_000.0, 10_500.0]}
    assert adaptive.by_neighbours(narrow, [wide, wide]) is None
    mixed = {"cpu": [33_000.0, 9_000.0], "vulkan": [10_000.0, 10_500.0]}
    assert adaptive.by_neighbours(mixed, [wide, wide]) is None


def test_the_neighbours_rule_never_fires_on_the_recorded_aa_noise():
    """Neither of the rule's two conditions ever held for one build under two names on two
    busy cores: no point's own lead is separated by NEIGHBOUR_RATIO, no neighbour's by
    WIDE_RATIO, at two repetitions a side nor at four."""
    for samples in _recorded_aa_points():
        for n in (2, 4):
            block = {name: values[:n] for name, values in samples.items()}
            assert adaptive.wide_leader(block, adaptive.NEIGHBOUR_RATIO) is None, block
            assert adaptive.by_neighbours(block, [block]) is None


def test_series_neighbours_are_the_same_test_at_the_depths_beside():
    points = [TestPoint(n_prompt=64, n_gen=0, depth=d) for d in (0, 256, 1024)]
    points += [TestPoint(n_prompt=0, n_gen=16, depth=d) for d in (0, 256, 1024)]
    assert adaptive.series_neighbours(points[1], points) == [points[0], points[2]]
    assert adaptive.series_neighbours(points[3], points) == [points[4]]
    assert adaptive.series_neighbours(points[5], points) == [points[4]]
    assert adaptive.series_neighbours(TestPoint(n_prompt=8, n_gen=0, depth=0), points) == []

"""The time estimate follows how this llama-bench spends a point's time (read from its
source: tools/llama-bench/llama-bench.cpp): one warm-up, the depth filled once and its
state restored for later repetitions, every timed repetition counted."""

from __future__ import annotations

import pytest

from backends.estimate import Rates, point_seconds
from backends.journal.sweep import TestPoint

RATES = Rates(pp=1000.0, tg=50.0, load_s=1.0)


def test_more_repetitions_add_only_timed_work_and_the_depth_is_filled_once():
    deep = TestPoint(n_prompt=512, n_gen=0, depth=4096)
    one_run = 512 / 1000.0 * (1 + 4096 / 16384)  # the prompt at depth 4096 (twice as slow at 16K)
    assert point_seconds(deep, 5, RATES) - point_seconds(deep, 2, RATES) == pytest.approx(3 * one_run)
    fill = 4096 / 1000.0 * (1 + 2048 / 16384)
    assert point_seconds(deep, 2, RATES) == pytest.approx(one_run + fill + 2 * one_run)  # warm-up, fill, runs


def test_a_generation_point_warms_up_on_one_token():
    gen = TestPoint(n_prompt=0, n_gen=128, depth=0)
    assert point_seconds(gen, 3, RATES) == pytest.approx(1 / 50.0 + 3 * 128 / 50.0)

"""The tune phase's pure parts: the grid, the halving, settings that replace the sweep's."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.builds import BuildInfo, Device
from backends.journal.sweep import TestPoint
from backends.journal.tune import Candidate, TuneSpec
from backends.models import ModelInfo
from backends.sweep import SweepError, SweepSpec, bench_argv
from backends.tune.candidates import make_grid
from backends.tune.grid import defaults_points, middle_depth, parse_budget, parse_free, probe_points, ubatch_values
from backends.tune.search import Search
from backends.tune.settings import merged, with_candidate

GIB = 1 << 30


def _build(name: str = "gpu", free_mib: int = 8192, **changes: object) -> BuildInfo:
    build = BuildInfo(name=name, folder=Path("/opt/llama"), bench=Path("/opt/llama/llama-bench"),
                      backend="vulkan", devices=(Device("Vulkan0", "a card", 16384, free_mib),),
                      flags=frozenset({"-ub", "-b", "-fa", "-ncmoe", "-fitt", "-d", "--progress"}))
    return BuildInfo(**{**build.__dict__, **changes})  # type: ignore[arg-type]


def _model(**changes: object) -> ModelInfo:
    base = dict(path=Path("/m.gguf"), files=(Path("/m.gguf"),), name="m", layers=48, head_count_kv=4,
                key_length=128, value_length=128, vocab_size=150000, tensor_bytes=20 * GIB,
                expert_count=128, experts_used=8, expert_bytes_by_layer=(400 << 20,) * 48)
    base.update(changes)
    return ModelInfo(**base)  # type: ignore[arg-type]


def test_budget_and_free_settings_parse_or_say_why() -> None:
    assert parse_budget("5m") == 300 and parse_budget("90") == 90 and parse_budget("1.5h") == 5400
    assert parse_free("ub, fa,ub") == ("ub", "fa")
    for bad in ("five", "0", "-3m"):
        with pytest.raises(SweepError, match="--tune-budget"):
            parse_budget(bad)
    with pytest.raises(SweepError, match="--tune-free: speed is not one of"):
        parse_free("ub,speed")
    with pytest.raises(ValueError, match="positive"):
        TuneSpec(budget_s=0).validate()


def test_probe_is_the_largest_prompt_and_a_short_generation_at_the_middle_depth() -> None:
    spec = SweepSpec(prompts=(128, 512), gens=(256,), depths=(0, 4096, 8192, 16384, 32768))
    assert middle_depth(spec) == 8192
    assert probe_points(spec, ("ub", "fa")) == (TestPoint(512, 0, 8192), TestPoint(0, 32, 8192))
    # -ub alone cannot change generation (one token per step): only the prompt is probed.
    assert probe_points(spec, ("ub",)) == (TestPoint(512, 0, 8192),)
    assert defaults_points(spec) == (TestPoint(128, 0, 8192), TestPoint(512, 0, 8192),
                                     TestPoint(0, 256, 8192))


def test_ubatch_values_stop_at_the_first_that_holds_the_prompt() -> None:
    assert ubatch_values(SweepSpec(prompts=(512,))) == (32, 64, 128, 256, 512)
    assert ubatch_values(SweepSpec(prompts=(2048,))) == (32, 64, 128, 256, 512, 1024, 2048)
    # Every ubatch that holds the prompt whole does the same work: the defaults stand for them.
    assert ubatch_values(SweepSpec(prompts=(64,))) == (32, 512)
    assert ubatch_values(SweepSpec(prompts=(32,))) == (512,)
    assert ubatch_values(SweepSpec(prompts=(128,), ubatch=64)) == (32, 64, 128)
    grid = make_grid(SweepSpec(prompts=(32,), gens=(8,), depths=(0, 256)), TuneSpec(), _build(),
                     _model(tensor_bytes=1 << 20, expert_count=0, expert_bytes_by_layer=()))
    assert grid.candidates == (grid.default,)
    lone = Search(grid.candidates, (TestPoint(32, 0, 0),), 40.0, default=grid.default)
    assert lone.next_probe() is None and lone.choice() == (grid.default, "the defaults, the only candidate")
    assert any("-ub 32 to 512 hold the 32-token prompt whole" in n for n in grid.notes)


def test_grid_starts_with_the_defaults_and_b_follows_ub() -> None:
    spec = SweepSpec(prompts=(2048,), gens=(128,), depths=(0,))
    grid = make_grid(spec, TuneSpec(), _build(), _model(tensor_bytes=1 * GIB, expert_count=0,
                                                         expert_bytes_by_layer=()))
    assert grid.default == Candidate(ubatch=512, batch=2048) == grid.candidates[0]
    assert {c.ubatch for c in grid.candidates} == {32, 64, 128, 256, 512, 1024, 2048}
    assert all(c.batch == max(2048, c.ubatch or 0) for c in grid.candidates)
    assert grid.fit is None  # the model fits: nothing for llama.cpp's fit to do


def test_candidates_that_cannot_fit_are_skipped_with_the_reason() -> None:
    spec = SweepSpec(prompts=(4096,), gens=(128,), depths=(0, 65536), ubatch=4096, batch=4096)
    grid = make_grid(spec, TuneSpec(), _build(free_mib=2048),
                     _model(tensor_bytes=1 * GIB, expert_count=0, expert_bytes_by_layer=()))
    assert grid.skipped and not grid.candidates
    assert "cannot fit" in grid.skipped[0].reason and "GiB free" in grid.skipped[0].reason


def test_without_flash_attention_a_big_ubatchs_attention_scores_cannot_fit() -> None:
    spec = SweepSpec(prompts=(4096,), gens=(16,), depths=(0,), flash_attn=False)
    model = _model(tensor_bytes=1 << 20, expert_count=0, expert_bytes_by_layer=(), head_count=32,
                   vocab_size=384)
    grid = make_grid(spec, TuneSpec(), _build(free_mib=1024), model)
    # 4096 x 4112 x 32 heads x 4 bytes = 2.0 GiB of scores; 2048 needs 1.0 GiB plus the rest.
    assert {s.candidate.ubatch for s in grid.skipped} == {2048, 4096}
    assert "scores" in grid.skipped[0].reason
    assert not make_grid(spec.with_changes(flash_attn=True), TuneSpec(), _build(free_mib=1024), model).skipped


def test_ncmoe_is_searched_from_the_fit_estimate_downwards_with_llamacpp_fit_as_baseline() -> None:
    spec = SweepSpec(prompts=(512,), gens=(128,), depths=(0, 8192))
    model = _model(tensor_bytes=6 * GIB, expert_bytes_by_layer=(100 << 20,) * 48)
    grid = make_grid(spec, TuneSpec(free=("ncmoe",)), _build(free_mib=3 * 1024), model)
    values = [c.n_cpu_moe for c in grid.candidates if c.fit_target is None]
    assert values == sorted(values, reverse=True) and len(values) >= 2
    assert grid.default.n_cpu_moe == values[0]  # the estimate itself
    # Further down the estimate's margin is used up: set aside, with the reason.
    assert all("cannot fit" in s.reason for s in grid.skipped)
    assert any("downwards" in n for n in grid.notes)
    assert grid.fit is not None and grid.fit.fit_target and grid.fit in grid.candidates


def test_a_quantized_v_cache_without_flash_attention_is_skipped() -> None:
    spec = SweepSpec(prompts=(64,), gens=(16,), depths=(0,))
    grid = make_grid(spec, TuneSpec(free=("fa", "kv")), _build(),
                     _model(tensor_bytes=1 << 20, expert_count=0, expert_bytes_by_layer=()))
    reasons = {s.candidate.label: s.reason for s in grid.skipped}
    assert "fa=0 kv=q8_0" in reasons and "flash attention" in reasons["fa=0 kv=q8_0"]


def test_a_contenders_own_setting_replaces_the_sweeps_in_the_argv() -> None:
    spec = SweepSpec(prompts=(512,), gens=(0,), ubatch=512, batch=1024, flash_attn=True)
    tuned = with_candidate(_build(settings=("-ub", "256", "-sm", "none")), Candidate(ubatch=2048, batch=2048))
    argv = bench_argv(tuned, "/m.gguf", spec, TestPoint(512, 0))
    assert argv.count("-ub") == 1 and argv[argv.index("-ub") + 1] == "2048"
    assert argv.count("-b") == 1 and argv[argv.index("-b") + 1] == "2048"
    assert "-fa" in argv and argv[argv.index("-sm"):argv.index("-sm") + 2] == ["-sm", "none"]
    assert merged(("--ubatch-size", "64", "-ts", "-1"), ("-ub", "128")) == ("-ts", "-1", "-ub", "128")


def _halving(rates: dict[int, float], budget: float = 100.0) -> Search:
    """A search over ubatch candidates whose probes take 1 s and measure ``rates``."""
    candidates = tuple(Candidate(ubatch=u) for u in rates)
    points = (TestPoint(512, 0, 0), TestPoint(0, 32, 0))
    search = Search(candidates, points, budget, default=candidates[0])
    while True:
        while (probe := search.next_probe()) is not None:
            for candidate in probe.candidates:
                for point in points:
                    rate = rates[candidate.ubatch or 0] if point.kind == "pp" else 50.0
                    search.measured(candidate, point, [rate] * probe.repetitions)
                search.finished(candidate, 1.0 / len(probe.candidates), 0.2 / len(probe.candidates),
                                probe.repetitions + 1, len(probe.candidates))
        plan = search.plan_next_round()
        if plan is None:
            return search
        search.start_round(search.round + 1, plan[0], plan[1])


def test_halving_keeps_the_better_half_each_round_and_picks_the_best() -> None:
    search = _halving({512: 100.0, 128: 60.0, 256: 90.0, 1024: 130.0, 2048: 125.0})
    best, reason = search.choice()
    assert best == Candidate(ubatch=1024) and "pp512 +30% (+30% to +30%), tg32 +0%" in reason
    # The defaults stayed to the end: the choice is judged against them.
    assert Candidate(ubatch=512) in search.survivors
    # Fewer probes than every candidate in both passes of every round.
    assert search.round >= 2 and search.probes < 2 * 5 * (search.round + 1)


def test_a_round_runs_its_candidates_in_order_and_back() -> None:
    """Candidates that differ only in -ub share one process per pass (in order, then back);
    others run one process each, in the same order."""
    candidates = tuple(Candidate(ubatch=u) for u in (512, 64, 128))
    search = Search(candidates, (TestPoint(512, 0, 0),), 100.0, default=candidates[0])
    search.start_round(1, candidates, 5)
    order = []
    while (probe := search.next_probe()) is not None:
        order.append(([c.ubatch for c in probe.candidates], probe.repetitions))
        for candidate in probe.candidates:
            search.finished(candidate, 0.1, 0.01, probe.repetitions + 1, len(probe.candidates))
    assert order == [([512, 64, 128], 3), ([128, 64, 512], 2)]
    threads = (Candidate(ubatch=512, threads=1), Candidate(ubatch=512, threads=2), Candidate(ubatch=64, threads=1))
    search = Search(threads, (TestPoint(512, 0, 0),), 100.0, default=threads[0])
    order = []
    while (probe := search.next_probe()) is not None:
        order.append([c.label for c in probe.candidates])
        for candidate in probe.candidates:
            search.finished(candidate, 0.1, 0.01, probe.repetitions + 1)
    assert order == [["ub=512 t=1", "ub=64 t=1"], ["ub=512 t=2"],
                     ["ub=64 t=1", "ub=512 t=1"], ["ub=512 t=2"]]


def test_a_candidate_not_yet_clearly_behind_the_leader_stays() -> None:
    """Beyond the better half, a candidate whose repetitions the leader's do not yet clearly
    beat (Welch's test) stays for the next round; one clearly behind is dropped."""
    rates = {512: [100.0, 101.0], 256: [104.0, 105.0], 128: [102.0, 103.0], 64: [60.0, 150.0, 105.0],
             32: [40.0, 41.0]}
    search = _measured(rates)
    for candidate in search.candidates:
        search.finished(candidate, 0.5, 0.1, 2)
    plan = search.plan_next_round()
    assert plan is not None
    kept, _, why = plan
    assert [c.ubatch for c in kept] == [256, 128, 64, 512]  # the better half, 64, the defaults
    assert "kept the best 3 of 5, 1 more not yet clearly behind (dropped 1)" in why


def test_the_choice_is_among_the_last_rounds_candidates() -> None:
    """ub=256 was dropped after round 0 on two lucky repetitions; ub=64 and the defaults ran
    on. The choice weighs the finalists, not an early score on fewer repetitions."""
    candidates = tuple(Candidate(ubatch=u) for u in (512, 256, 64))
    search = Search(candidates, (PP32,), 40.0, default=candidates[0])
    search.measured(candidates[1], PP32, [130.0, 131.0])
    search.start_round(1, (candidates[2], candidates[0]), 8)
    search.measured(candidates[2], PP32, [110.0, 111.0, 110.5] * 4)
    search.measured(candidates[0], PP32, [100.0, 100.5, 101.0] * 4)
    best, reason = search.choice()
    assert best == candidates[2] and reason.startswith("the best of the 2 left in round 1, +10% (")


def test_a_best_within_a_hair_of_the_defaults_keeps_the_defaults() -> None:
    best, reason = _halving({512: 100.0, 1024: 102.5}).choice()
    assert best == Candidate(ubatch=512) and reason.startswith("the defaults")


def test_a_failed_candidate_is_out_and_the_search_goes_on() -> None:
    candidates = (Candidate(ubatch=512), Candidate(ubatch=4096))
    search = Search(candidates, (TestPoint(512, 0, 0),), 60.0, default=candidates[0])
    search.failed_with(candidates[1], "out of memory")
    assert search.next_probe() == search.next_probe() and search.next_probe().candidate == candidates[0]  # type: ignore[union-attr]
    search.measured(candidates[0], TestPoint(512, 0, 0), [10.0])
    assert search.choice()[0] == candidates[0]


def test_the_budget_stops_the_halving() -> None:
    search = _halving({u: float(u) for u in (32, 64, 128, 256, 512, 1024)}, budget=7.0)
    assert search.stopped and "budget" in search.stopped
    assert search.spent_s <= 7.0 + 1.0


PP32 = TestPoint(32, 0, 0)


def _measured(rates: dict[int, list[float]]) -> Search:
    """A search whose ubatch candidates measured ``rates`` on pp32, one repetition a probe."""
    candidates = tuple(Candidate(ubatch=u, batch=2048) for u in rates)
    search = Search(candidates, (PP32,), 40.0, default=candidates[0])
    for candidate, values in zip(candidates, rates.values()):
        for value in values:
            search.measured(candidate, PP32, [value])
    return search


def test_one_wild_repetition_keeps_the_defaults_and_claims_no_gain() -> None:
    # A real tune on a loaded two-core machine: the same setting once at 67,840 t/s and once
    # at 33.8 t/s (one process ran, the next waited on its other thread at every step).
    search = _measured({512: [29.8, 32.9], 32: [67840.0, 33.8]})
    best, reason = search.choice()
    assert best == Candidate(ubatch=512, batch=2048)
    assert reason.startswith("the defaults: no setting beat the defaults clearly (spread too wide: ")
    assert "ub=32 b=2048 33.8-67,840 t/s" in reason and "the defaults 29.8-32.9 t/s" in reason
    assert "%" not in reason  # no gain stated


def test_a_gain_is_the_ratio_of_geometric_means_with_its_interval_starved_runs_set_aside() -> None:
    search = _measured({512: [100.0, 102.0, 98.0, 101.0, 3.0], 32: [120.0, 123.0, 118.0, 121.0, 119.0]})
    best, reason = search.choice()
    assert best == Candidate(ubatch=32, batch=2048)
    # 120.2 / 100.2 by the geometric means: the starved 3.0 is set aside, never a +3900%.
    assert "the best of 2 measured, +20% (+" in reason and "over the defaults on the probe" in reason
    assert "wobble" not in reason


def test_a_gap_inside_a_wide_spread_keeps_the_defaults_and_a_significant_one_says_the_wobble() -> None:
    slow = [100.0, 60.0, 140.0, 90.0, 110.0, 70.0, 130.0, 100.0] * 3
    best, reason = _measured({512: slow, 32: [v * 1.25 for v in slow[1:] + slow[:1]]}).choice()
    assert best == Candidate(ubatch=512, batch=2048)
    assert "no setting beat the defaults clearly (spread too wide: ub=32 b=2048 75-175 t/s (24 runs)" in reason
    # Many tight repetitions and one fast one: +20% is significant, yet one setting's own
    # repetitions lie further apart than the gain, and the reason says so.
    best, reason = _measured({512: [100.0] * 30 + [150.0], 32: [120.0] * 30 + [121.0]}).choice()
    assert best == Candidate(ubatch=32, batch=2048)
    assert "+18% (+2% to +37%)" in reason and "wobble wider than the gain: " in reason
    assert "the defaults 100-150 t/s (31 runs)" in reason


def test_the_plan_counts_the_tune_its_budget_and_each_contenders_defaults_block() -> None:
    from backends.estimate import Rates, build_seconds
    from backends.tune.estimate import tune_seconds
    from tui.state.plan import make_plan

    spec = SweepSpec(prompts=(512,), gens=(128,), depths=(0, 4096, 8192), repetitions=3)
    rates: dict[str, Rates | None] = {"a": Rates(pp=1000.0, tg=50.0, load_s=2.0), "b": None}
    block = build_seconds(defaults_points(spec), 3, Rates(pp=1000.0, tg=50.0, load_s=2.0))
    unknown = tune_seconds(spec, TuneSpec(budget_s=300.0), rates, ["a", "b"])
    assert unknown.seconds is None and unknown.unknown == ("b",)
    # Each contender's share of the budget, the 5 % a last probe may run past it, its defaults.
    assert unknown.per_build["a"] == pytest.approx(150.0 * 1.05 + block)
    rates["b"] = rates["a"]
    known = tune_seconds(spec, TuneSpec(budget_s=300.0), rates, ["a", "b"])
    assert known.seconds == pytest.approx(2 * (157.5 + block))
    builds = [_build("a"), _build("b")]
    model = _model(tensor_bytes=1 << 20, expert_count=0, expert_bytes_by_layer=())
    plain = make_plan(builds, model, spec, rates, check=False)
    tuned = make_plan(builds, model, spec, rates, check=False, tune=TuneSpec(budget_s=300.0))
    assert plain.seconds is not None and tuned.seconds == pytest.approx(plain.seconds + known.seconds)
    assert "with the tune first" in tuned.line() and "tune" not in plain.line()


def test_candidates_that_shared_processes_are_judged_pairwise_within_each() -> None:
    """Each process ran the defaults and ub=64 one after the other; whole processes ran up to
    five times slower than others (a busy machine), ub=64 10 % faster within every one.
    Pooled, the spread hides the gain; paired by process it is decided, with its interval."""
    candidates = (Candidate(ubatch=512, batch=2048), Candidate(ubatch=64, batch=2048))
    search = Search(candidates, (PP32,), 40.0, default=candidates[0])
    for process, slowdown in enumerate((1.0, 5.0, 2.0, 1.3, 3.5, 1.1)):
        for candidate, rate in zip(candidates, (100.0, 110.0)):
            wobble = 1.0 + 0.01 * ((process + len(candidate.label)) % 3)
            search.measured(candidate, PP32, [rate * wobble / slowdown] * 2, process)
    best, reason = search.choice()
    assert best == candidates[1], reason
    assert reason == ("the best of 2 measured, +10% (+8% to +12%) over the defaults on the probe "
                      "(paired within 6 processes, geometric means, 95% interval)")
    pooled = Search(candidates, (PP32,), 40.0, default=candidates[0])
    for candidate in candidates:
        pooled.measured(candidate, PP32, search.samples[candidate][PP32.key])
    assert pooled.choice()[0] == candidates[0]  # the same repetitions, pooled: not decided


def test_the_last_candidate_undecided_against_the_defaults_gets_more_rounds_until_the_budget() -> None:
    """Two candidates 2 % apart under a wobble of a tenth: neither decided better, worse nor
    a tie, so the rest of the share buys more rounds of the two, until it is spent."""
    candidates = (Candidate(ubatch=512), Candidate(ubatch=64))
    search = Search(candidates, (PP32,), 30.0, default=candidates[0])
    wobble = (0.9, 1.1, 1.0, 0.95, 1.05)
    reasons = []
    while True:
        while (probe := search.next_probe()) is not None:
            for index, candidate in enumerate(probe.candidates):
                rate = 100.0 if candidate == candidates[0] else 102.0
                values = [rate * wobble[(search.processes + index + n) % 5] for n in range(probe.repetitions)]
                search.measured(candidate, PP32, values)
                search.finished(candidate, 0.5, 0.1, probe.repetitions + 1, 2)
            search.processes += 1
        plan = search.plan_next_round()
        if plan is None:
            break
        reasons.append(plan[2])
        search.start_round(search.round + 1, plan[0], plan[1])
    assert search.round >= 2 and "not yet decided against the defaults" in reasons[-1]
    assert search.stopped is not None and "budget" in search.stopped

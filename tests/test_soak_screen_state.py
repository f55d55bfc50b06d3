"""The Soak screen's figures, folded from a soak's events, and the require-stable box's effect
on the saved profile: pure functions over real event types and published llama-bench data."""

from __future__ import annotations

from backends.journal.journal import Journal
from backends.soak import (
    SoakBuild,
    SoakCrashed,
    SoakFinished,
    SoakHang,
    SoakHttpError,
    SoakProbe,
    SoakServerUp,
    SoakStarted,
    SoakWindow,
    SoakWrongAnswer,
)
from profiles.importers import import_files
from profiles.model import profile_from_import
from profiles.soak import REQUIRE_STABLE_RULE
from profiles.store import ProfileStore
from tui.state.soak import SoakView, build_lines, fold, header_text, save_soak, spec_from_fields

MIB = 2**20


def started(*names: str) -> SoakStarted:
    return SoakStarted(tuple(SoakBuild(n, f"/opt/{n}") for n in names), "/m/tiny.gguf", names[0],
                       {"duration_s": 600.0}, "/runs/soak-tiny/journal.jsonl")


def window(build: str, at: float, requests: int, tokens: int, gen_s: float, rss: int) -> SoakWindow:
    return SoakWindow(build, 60.0, requests, 0, tokens, gen_s, rss_bytes=rss * MIB, at_s=at)


def soak_events() -> list[object]:
    return [started("cpu", "rocm"),
            SoakServerUp("cpu", 11, 8080, 1.5, False, at_s=0.0),
            SoakServerUp("rocm", 12, 8081, 2.5, False, at_s=0.0),
            window("cpu", 60.0, 10, 640, 8.0, 500), window("rocm", 60.0, 12, 640, 4.0, 700),
            SoakProbe("cpu", 0, 10, 0.0, 1.0, 8, True, at_s=70.0),
            SoakProbe("rocm", 0, 10, 0.9, 0.2, 8, False, at_s=71.0),
            SoakWrongAnswer("rocm", 0, 10, "p", "a", "b", "cpu", "top-1 agreement 20% < 90%", at_s=71.0),
            SoakHttpError("rocm", "HTTP 500 from /completion", at_s=80.0),
            SoakCrashed("rocm", "exited with SIGABRT: [red]HIP error[/red]: illegal memory access",
                        signal="SIGABRT", at_s=90.0),
            SoakServerUp("rocm", 13, 8081, 2.0, True, at_s=95.0),
            window("cpu", 120.0, 8, 640, 10.0, 520), window("rocm", 120.0, 5, 320, 2.5, 650),
            window("rocm", 180.0, 6, 320, 4.0, 690),
            SoakHang("cpu", "no token for 120s", "request", at_s=200.0),
            SoakServerUp("cpu", 14, 8080, 1.0, True, at_s=210.0)]


def test_the_fold_counts_each_builds_trouble_memory_and_throughput():
    view = SoakView()
    for event in soak_events():
        view = fold(view, event)
    cpu, rocm = view.build("cpu"), view.build("rocm")
    assert view.status == "running" and view.reference == "cpu" and view.at_s == 210.0
    assert (rocm.requests, rocm.crashes, rocm.restarts, rocm.http_errors, rocm.probes, rocm.wrong) == (
        23, 1, 1, 1, 1, 1)
    assert "HIP error" in rocm.last_error and rocm.state == "up" and rocm.up_at_s == 95.0
    assert rocm.rss_growth == 40 * MIB  # within one server's life, not across a restart
    assert rocm.first_tps == 160.0 and rocm.last_tps == 80.0
    assert (cpu.requests, cpu.hangs, cpu.restarts, cpu.crashes, cpu.probes) == (18, 1, 1, 0, 1)
    assert cpu.rss_growth == 20 * MIB and cpu.up_at_s == 210.0
    assert cpu.first_tps == 80.0 and cpu.last_tps == 64.0

    text = "\n".join(build_lines(rocm, view))
    assert "requests 23" in text and "crashes 1" in text and "wrong 1" in text
    assert "memory +40.0 MiB" in text and "t/s now 80.0 vs first 160" in text
    assert r"\[red]HIP error\[/red]" in text  # a log line is never markup
    assert all(len(line) < 78 for line in text.splitlines()[:3])
    assert "0:03:30 of 0:10:00" in header_text(view)
    view = fold(view, SoakFinished(cancelled=True, at_s=215.0))
    assert view.status == "cancelled" and "cancelled" in header_text(view)


def test_the_form_gives_a_soak_that_shows_figures_even_when_short():
    spec = spec_from_fields({"duration": "30s", "threads": "1"})
    assert spec.duration_s == 30 and spec.window_s == 3 and spec.probe_every_s == 3
    assert spec.settings.threads == 1
    hours = spec_from_fields({})
    assert hours.duration_s == 3600 and hours.window_s == 60 and hours.probe_every_s == 30
    for bad in ({"duration": "soon"}, {"threads": "two"}):
        try:
            spec_from_fields(bad)
        except ValueError as error:
            assert "\n" not in str(error)
        else:
            raise AssertionError(bad)


def test_the_require_stable_box_changes_the_saved_recommendation(realdata, tmp_path):
    store = ProfileStore(tmp_path / "profiles")
    files = sorted((realdata / "h100-cuda-vs-vulkan").glob("*.jsonl"))
    store.save(profile_from_import(import_files(files).machines()[0], name="h100"))
    cuda_wins = store.load("h100").recommendation
    assert cuda_wins is not None and all(v.recommended.startswith("CUDA") for v in cuda_wins.verdicts)

    journal = tmp_path / "run" / "journal.jsonl"
    journal.parent.mkdir()
    kept = Journal(journal)  # CUDA crashed in the soak, Vulkan ran clean
    for event in [SoakStarted((SoakBuild("CUDA", "/c"), SoakBuild("Vulkan", "/v")), "m.gguf",
                              "Vulkan", {"duration_s": 3600.0}, str(journal)),
                  SoakServerUp("CUDA", 1, 1, 1.0, False), SoakServerUp("Vulkan", 2, 2, 1.0, False),
                  SoakCrashed("CUDA", "exited with SIGSEGV: CUDA error: an illegal memory access",
                              at_s=600.0),
                  window("CUDA", 900.0, 5, 100, 1.0, 100), window("Vulkan", 900.0, 5, 100, 1.0, 100),
                  SoakFinished(at_s=3600.0)]:
        kept.append(event)
    kept.close()

    save_soak(store, "h100", journal, require_stable=False)
    warned = store.load("h100")
    assert warned.soak["require_stable"] is False
    assert all(v.recommended.startswith("CUDA") for v in warned.recommendation.verdicts)
    assert any("CUDA crashed once" in v.summary for v in warned.recommendation.verdicts)

    save_soak(store, "h100", journal, require_stable=True)
    stable = store.load("h100")
    assert stable.soak["require_stable"] is True and REQUIRE_STABLE_RULE in stable.recommendation.rule
    measured = [v for v in stable.recommendation.verdicts if v.typical_ts]
    assert measured and all(v.recommended.startswith("Vulkan") for v in measured)
    assert any("lost the recommendation" in c for v in stable.recommendation.verdicts for c in v.caveats)

"""Soak mode in the real app, driven with Pilot: the CPU build's llama-server under two names
on the generated tiny model, chosen in Setup's soak mode, watched on the Soak screen at 80x24,
finished or stopped (c, q) with no llama-server left."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from server_helpers import group_alive, port_free
from soak_helpers import of
from test_soak_cli import llamaduel, wait_for_line

from backends.builds import probe_build
from backends.journal.journal import new_run_dir, read_journal
from backends.models import read_model
from backends.soak import ProbeReference, SoakFinished, SoakServerUp, SoakStarted, summarize
from profiles.importers import import_files
from profiles.model import profile_from_import
from profiles.soak import REQUIRE_STABLE_RULE
from profiles.store import ProfileStore
from tests.test_app import until
from tui.app import LlamaduelApp

pytestmark = pytest.mark.toolchain
NAMES = ("cpu", "cpu-again")


def soak_app(tmp_path: Path, cpu_bin: Path, tiny_llama: Path) -> LlamaduelApp:
    builds = [probe_build(cpu_bin, name) for name in NAMES]
    assert all(b.runnable for b in builds)
    return LlamaduelApp(builds, [read_model(tiny_llama)], store=ProfileStore(tmp_path / "profiles"),
                        runs_root=tmp_path / "runs", offer_resume=False, telemetry=None)


def panel_text(app: LlamaduelApp, index: int) -> str:
    return str(app.screen.query_one(f"#soak-build-{index}").render())


async def start_soak(pilot, app: LlamaduelApp, **fields: str) -> None:
    await until(pilot, lambda: app.screen.body_ready and app.sources.ready, "the Setup form")
    await pilot.press("m", "m")  # the mode key: sweep, server, soak
    await until(pilot, lambda: app.screen.mode == "soak", "soak mode")
    assert app.screen.query_one("#soak-section").has_class("-shown")
    assert not app.screen.query_one("#serve-section").has_class("-shown")
    # One thread a server: two servers on two shared cores must not fight for them.
    for key, value in {"threads": "1", **fields}.items():
        app.screen.query_one(f"#soak-{key}").value = value
    app.screen.query_one("#builds-table").focus()
    await until(pilot, lambda: "soak: 2 builds" in str(app.screen.query_one("#setup-status").render()),
                "the soak's plan line")
    await pilot.press("r")
    await until(pilot, lambda: app.current_mode == "soak", "the Soak screen")


def assert_no_server_left(journal: Path) -> None:
    events = list(read_journal(journal))
    ups = of(events, SoakServerUp)
    assert ups
    for up in ups:
        assert not group_alive(up.pid), f"{up.build}'s server (pid {up.pid}) is alive"
        assert port_free(up.port)


async def test_a_short_soak_shows_each_builds_counters_and_saves_with_require_stable(
        tmp_path, cpu_bin, tiny_llama, realdata, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = soak_app(tmp_path, cpu_bin, tiny_llama)
    files = sorted((realdata / "h100-cuda-vs-vulkan").glob("*.jsonl"))
    app.sources.store.save(profile_from_import(import_files(files).machines()[0], name="h100"))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.screen.chosen_builds == set(NAMES), "builds chosen")
        await until(pilot, lambda: app.screen.body_ready, "the Setup form")
        app.screen.query_one("#soak-require-stable").value = True
        await start_soak(pilot, app, duration="20s", reference="cpu-again", profile="h100")
        soak = app.screen
        await until(pilot, lambda: "requests 0" not in panel_text(app, 0)
                    and "requests" in panel_text(app, 0), "live requests", steps=1800)
        await until(pilot, lambda: soak.view.status == "finished", "the soak finished", steps=1800)
        await until(pilot, lambda: soak.saved is not None, "the profile saved")
        await pilot.pause()
        header = str(soak.query_one("#soak-summary").render())
        assert "reference cpu-again" in header and "finished" in header
        journal = Path(soak.journal)
        assert journal.parent.parent == tmp_path / "runs"
        summary = summarize(read_journal(journal))
        assert summary is not None and summary.finished and summary.reference == "cpu-again"
        for index, name in enumerate(NAMES):
            text, figures = panel_text(app, index), summary.build(name)
            assert text.startswith(f"{name} ok")
            assert figures.requests > 0 and f"requests {figures.requests} " in text
            assert figures.probes > 0 and f"probes {figures.probes} " in text
            assert f"crashes {figures.crashes} " in text and f"hangs {figures.hangs} " in text
            assert f"HTTP errors {figures.http_errors} " in text and f"wrong {figures.wrong}" in text
            assert f"restarts {figures.restarts}" in text and "memory +" in text
            assert "t/s now " in text and " vs first " in text and "t/s now -" not in text
    saved = ProfileStore(tmp_path / "profiles").load("h100")
    assert saved.soak["require_stable"] is True and REQUIRE_STABLE_RULE in saved.recommendation.rule
    assert {b["build"] for b in saved.soak["builds"]} == set(NAMES)
    assert_no_server_left(journal)


async def stop_after_a_window(pilot, app, *, duration: str):
    """Start a soak from Setup, wait for its first window with requests, then stop it with
    c and a yes: the Soak screen."""
    await start_soak(pilot, app, duration=duration)
    soak = app.screen
    await until(pilot, lambda: (b := soak.view.build("cpu")) is not None and b.requests > 0,
                "a first window with requests", steps=1800)
    await pilot.press("c")
    await until(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", "the question")
    await pilot.press("y")
    return soak


async def test_c_stops_a_soak_and_no_server_is_left(tmp_path, cpu_bin, tiny_llama):
    app = soak_app(tmp_path, cpu_bin, tiny_llama)
    async with app.run_test(size=(80, 24)) as pilot:
        soak = await stop_after_a_window(pilot, app, duration="2m")  # a window every 12 s
        await until(pilot, lambda: not soak.running, "the soak stopped", steps=600)
        await until(pilot, lambda: "cancelled" in str(soak.query_one("#soak-summary").render()),
                    "the header says cancelled")
        journal = Path(soak.journal)
    events = list(read_journal(journal))
    assert isinstance(events[0], SoakStarted) and isinstance(events[-1], SoakFinished)
    assert events[-1].cancelled
    assert_no_server_left(journal)


async def test_q_quits_during_a_soak_and_no_server_is_left(tmp_path, cpu_bin, tiny_llama):
    app = soak_app(tmp_path, cpu_bin, tiny_llama)
    async with app.run_test(size=(80, 24)) as pilot:
        await start_soak(pilot, app, duration="1h")
        soak = app.screen
        await until(pilot, lambda: soak.view.status == "running", "the servers up", steps=1800)
        journal = Path(soak.journal)
        await pilot.press("q")
        await until(pilot, lambda: not soak.running, "the soak stopped", steps=600)
    events = list(read_journal(journal))
    assert isinstance(events[-1], SoakFinished) and events[-1].cancelled
    assert_no_server_left(journal)


def resume_text(app: LlamaduelApp) -> str:
    return str(app.screen.query_one("#soak-resume").render())


def assert_resumed_to_the_end(journal: Path) -> None:
    events = list(read_journal(journal))
    starts = of(events, SoakStarted)
    assert [s.resumed for s in starts] == [False, True]
    assert not of(events[events.index(starts[1]):], ProbeReference)  # the same reference answers
    assert isinstance(events[-1], SoakFinished) and not events[-1].cancelled
    summary = summarize(events)
    assert summary is not None and summary.parts == 2 and summary.finished
    assert_no_server_left(journal)


async def test_a_stopped_soak_goes_on_with_u_its_figures_counting_on(tmp_path, cpu_bin, tiny_llama):
    app = soak_app(tmp_path, cpu_bin, tiny_llama)
    async with app.run_test(size=(80, 24)) as pilot:
        soak = await stop_after_a_window(pilot, app, duration="30s")  # a window every 3 s
        await until(pilot, lambda: "u resumes it" in resume_text(app), "the offer to resume", steps=600)
        stopped = soak.view.build("cpu")
        assert stopped is not None and "cancelled" in str(soak.query_one("#soak-summary").render())
        journal = Path(soak.journal)
        await pilot.press("u")
        await until(pilot, lambda: soak.view.status == "finished", "the soak finished", steps=1800)
        await until(pilot, lambda: not soak.running, "the soak's worker done", steps=600)
        figures = soak.view.build("cpu")
        assert figures is not None and figures.requests > stopped.requests  # counted on, not anew
        assert soak.journal == str(journal) and resume_text(app) == ""
        assert "0:00:30 of 0:00:30" in str(soak.query_one("#soak-summary").render())
    assert_resumed_to_the_end(journal)


async def test_a_soak_hung_up_in_an_earlier_session_is_offered_and_resumed(tmp_path, cpu_bin, tiny_llama):
    # `llamaduel soak` hung up half-way, as a closed SSH session leaves it, in the app's runs folder.
    _, folder = new_run_dir(tmp_path / "runs", Path(f"soak-{tiny_llama.stem}"))
    journal = folder / "journal.jsonl"
    first = llamaduel("soak", "--build", f"cpu={cpu_bin}", "--build", f"cpu-again={cpu_bin}",
                      "--model", str(tiny_llama), "--duration", "20s", "--probe-every", "1",
                      "--window", "2", "--slots", "1", "-c", "1024", "-n", "16", "-t", "1",
                      "--journal", str(journal))
    wait_for_line(journal, '"SoakWindow"', first)
    first.send_signal(signal.SIGHUP)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err

    app = soak_app(tmp_path, cpu_bin, tiny_llama)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.screen.body_ready, "the Setup form")
        await pilot.press("7")
        await until(pilot, lambda: app.current_mode == "soak", "the Soak screen")
        soak = app.screen
        await until(pilot, lambda: "u resumes it" in resume_text(app), "the offer to resume")
        assert "cpu, cpu-again stopped at 0:00:" in resume_text(app)
        await pilot.press("u")
        await until(pilot, lambda: soak.view.status == "finished", "the soak finished", steps=1800)
        await until(pilot, lambda: not soak.running, "the soak's worker done", steps=600)
        assert soak.journal == str(journal)
        for index, name in enumerate(NAMES):
            assert panel_text(app, index).startswith(f"{name} ok")
    assert_resumed_to_the_end(journal)

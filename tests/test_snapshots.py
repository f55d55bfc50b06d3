"""SVG snapshots of every screen at 80x24 and 160x48, from a recorded journal.

The journal (tests/data/tiny-cpu-vs-vulkan.jsonl) is a real CPU vs Vulkan (lavapipe) run
recorded by ``scripts/screenshots.py --record-journal``; replaying it starts no process, so
the pictures hold no times, host names or machine paths. Update them after a deliberate
change with ``pytest tests/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from backends.builds import probe_build
from backends.models import read_model
from backends.sweep import read_journal
from profiles.model import HostFingerprint, profile_from_journal
from profiles.store import ProfileStore
from tui.app import LlamaduelApp

JOURNAL = Path(__file__).parent / "data" / "tiny-cpu-vs-vulkan.jsonl"
SIZES = {"80x24": (80, 24), "160x48": (160, 48)}
HOST = HostFingerprint(hostname="bench-host", os="Linux", cpu="AMD EPYC", cpu_count=2)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Relative paths (the profile store's) read the same on every machine."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)


def store_with_profiles() -> ProfileStore:
    store = ProfileStore(Path("profiles"))
    events = read_journal(JOURNAL)
    for name, when in (("tiny cpu vs vulkan", "2026-05-01T10:00:00+00:00"),
                       ("tiny rerun", "2026-05-02T09:30:00+00:00")):
        profile = profile_from_journal(events, name=name, host=HOST)
        store.save(dataclasses.replace(profile, created=when))
    return store


def replay_app(screen: str) -> LlamaduelApp:
    return LlamaduelApp([], [], store=store_with_profiles(), journal=JOURNAL,
                        start_screen=screen, telemetry=None)


async def settle(pilot) -> None:
    await pilot.pause(0.3)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", ["run", "results"])
def test_replayed_run_screens(snap_compare, screen, size):
    assert snap_compare(replay_app(screen), terminal_size=SIZES[size], run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_profiles_screen(snap_compare, size):
    assert snap_compare(replay_app("profiles"), terminal_size=SIZES[size], run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_compare_two_profiles(snap_compare, size):
    async def compare(pilot) -> None:
        await settle(pilot)
        pilot.app.screen.query_one("#profiles-table").focus()
        await pilot.press("m", "down", "m")
        await settle(pilot)
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(replay_app("profiles"), terminal_size=SIZES[size], run_before=compare)


@pytest.mark.parametrize("size", SIZES)
def test_help_screen(snap_compare, size):
    assert snap_compare(replay_app("run"), terminal_size=SIZES[size], press=["question_mark"],
                        run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_setup_with_nothing_found_offers_the_demo(snap_compare, size):
    app = LlamaduelApp([], [], store=ProfileStore(Path("profiles")), offer_resume=False,
                       telemetry=None)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=settle)


@pytest.mark.toolchain
@pytest.mark.parametrize("size", SIZES)
def test_setup_with_real_builds_and_model(snap_compare, size, cpu_bin, vulkan_bin, tiny_llama):
    builds = [probe_build(cpu_bin, "cpu"), probe_build(vulkan_bin, "vulkan")]
    app = LlamaduelApp(builds, [read_model(tiny_llama)], store=ProfileStore(Path("profiles")),
                       offer_resume=False, telemetry=None)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=settle)

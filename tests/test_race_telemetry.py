"""The Race screen's telemetry strip: real races, the real Telemetry (host source here)."""

from __future__ import annotations

import time
from dataclasses import replace as dataclasses_replace

import psutil

from tests.test_race import PROMPT, our_children, until, write_script


def telemetry_workers(screen) -> list:
    return [w for w in screen.workers if w.group == "race-telemetry" and w.is_running]


def shown_line(screen) -> str:
    return str(screen.query_one("#race-telemetry #telemetry-now").render())


async def test_race_strip_shows_host_telemetry_during_a_real_cpu_race_and_stops_after(
        cpu_bin, tiny_llama, tmp_path):
    from textual.widgets import Input, SelectionList

    from backends.builds import probe_build
    from backends.models import read_model
    from backends.telemetry import Telemetry
    from profiles.store import ProfileStore
    from tui.app import LlamaduelApp
    from tui.screens.race import RaceScreen
    from tui.widgets.telemetry_panel import TelemetryPanel

    with Telemetry() as telemetry:
        app = LlamaduelApp([probe_build(cpu_bin, "cpu")], [read_model(tiny_llama)],
                           store=ProfileStore(tmp_path / "p"), runs_root=tmp_path / "runs",
                           offer_resume=False, start_screen="race", telemetry=telemetry)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RaceScreen), "the Race screen")
            screen = app.screen
            panel = screen.query_one(TelemetryPanel)
            assert panel.display and not screen.query_one("#race-telemetry-off").display
            assert not telemetry_workers(screen)  # nothing samples before a race
            await until(pilot, lambda: screen.query_one("#race-builds", SelectionList).selected == ["cpu"],
                        "the build chosen")
            screen.query_one("#race-prompt", Input).value = PROMPT
            screen.query_one("#race-n", Input).value = "32"
            started = time.time()
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.board.status == "finished", "the race finished")
            await until(pilot, lambda: not telemetry_workers(screen), "the telemetry worker stopped")
            await until(pilot, lambda: panel.history.readings, "a reading on the strip")

            readings = panel.history.readings
            assert readings == screen.history.readings
            assert all(r.at >= started for r in readings)  # this race's ticks, not older ones
            assert readings[-1].host_cpu_percent >= 0 and readings[-1].host_ram_total > 0
            line = shown_line(screen)
            assert "host CPU" in line and "RAM" in line and "GiB" in line
            # 80x24: the strip keeps to its values line; the lanes keep the room.
            assert screen.has_class("-short")
            assert not screen.query_one("#race-telemetry #telemetry-plots").display
            assert panel.outer_size.height <= 5
            # The tool is no longer followed once the race is over.
            assert telemetry.sample().host.watched_pids == ()
        assert not our_children()


async def test_race_strip_follows_the_running_tool_and_stops_when_left_or_stopped(
        cpu_bin, tiny_llama, tmp_path):
    from textual.widgets import Input

    from backends.builds import probe_build
    from backends.models import read_model
    from backends.race import BuildStarted
    from backends.telemetry import Telemetry
    from profiles.store import ProfileStore
    from tui.app import LlamaduelApp
    from tui.screens.race import RaceScreen

    real = cpu_bin / "llama-completion"
    hang = write_script(tmp_path / "hang", (
        f'if [ "$1" = "--help" ]; then exec "{real}" --help; fi\n'
        "printf 'still going'\n"
        "exec sleep 6017\n"))
    hanging = dataclasses_replace(probe_build(cpu_bin, "cpu"), name="hang", folder=hang,
                                  completion=hang / "llama-completion")
    with Telemetry() as telemetry:
        app = LlamaduelApp([hanging], [read_model(tiny_llama)], store=ProfileStore(tmp_path / "p"),
                           runs_root=tmp_path / "runs", offer_resume=False, start_screen="race",
                           telemetry=telemetry)
        async with app.run_test(size=(120, 44)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RaceScreen), "the Race screen")
            screen = app.screen
            screen.query_one("#race-prompt", Input).value = PROMPT
            await until(pilot, lambda: screen.query_one("#race-builds").selected == ["hang"],
                        "the build chosen")
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.board.lanes and screen.board.lanes[0].text == "still going",
                        "the hanging build's words")
            (started,) = [e for e in screen.events if isinstance(e, BuildStarted)]
            # The tool's process group leader is watched while it runs.
            assert started.pid in telemetry.sample().host.watched_pids
            await until(pilot, lambda: len(screen.history.readings) >= 3, "ticks while the race runs")
            assert telemetry_workers(screen)
            assert screen.has_class("-tall") and screen.query_one("#race-telemetry #telemetry-plots").display

            # Another screen: the strip stops sampling; the race goes on; back again, it resumes.
            await app.switch_mode("setup")
            await until(pilot, lambda: app.screen is not screen, "the Setup screen")
            await until(pilot, lambda: not telemetry_workers(screen), "sampling stopped while away")
            assert any("sleep" in " ".join(p.cmdline()) for p in our_children())
            await app.switch_mode("race")
            await until(pilot, lambda: app.screen is screen, "back on the Race screen")
            before = len(screen.history.readings)
            await until(pilot, lambda: len(screen.history.readings) > before, "sampling again")

            await pilot.press("ctrl+b")
            await until(pilot, lambda: screen.board.status == "cancelled", "the race cancelled")
            await until(pilot, lambda: not telemetry_workers(screen), "the telemetry worker stopped")
            assert telemetry.sample().host.watched_pids == ()
            await until(pilot, lambda: not [p for p in our_children() if p.status() != psutil.STATUS_ZOMBIE],
                        "the hanging tool killed")


async def test_race_strip_says_in_one_line_when_there_is_no_telemetry_source(cpu_bin, tiny_llama, tmp_path):
    from textual.widgets import Input

    from backends.builds import probe_build
    from backends.models import read_model
    from profiles.store import ProfileStore
    from tui.app import LlamaduelApp
    from tui.screens.race import NO_TELEMETRY, RaceScreen
    from tui.widgets.telemetry_panel import TelemetryPanel

    app = LlamaduelApp([probe_build(cpu_bin, "cpu")], [read_model(tiny_llama)],
                       store=ProfileStore(tmp_path / "p"), runs_root=tmp_path / "runs",
                       offer_resume=False, start_screen="race", telemetry=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RaceScreen), "the Race screen")
        screen = app.screen
        await until(pilot, lambda: screen.query_one("#race-builds").selected == ["cpu"], "the build chosen")
        screen.query_one("#race-prompt", Input).value = PROMPT
        await pilot.press("ctrl+r")
        await until(pilot, lambda: screen.board.status == "finished", "the race finished")
        off = screen.query_one("#race-telemetry-off")
        assert off.display and off.outer_size.height == 1
        assert str(off.render()) == NO_TELEMETRY
        assert not screen.query_one(TelemetryPanel).display
        assert not screen.history.readings
        assert not [w for w in screen.workers if w.group == "race-telemetry"]
    assert not our_children()

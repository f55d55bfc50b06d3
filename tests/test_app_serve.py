"""Server mode in the real app, driven with Pilot: the CPU build's llama-server under two
names on the generated tiny model, at concurrency 1 and 2, at 80x24 without colour."""

from __future__ import annotations

from pathlib import Path

import pytest
from server_helpers import assert_nothing_left

from backends.builds import probe_build
from backends.journal.serve import DuelFinished, DuelStarted, FirstContentToken, RequestFinished
from backends.models import read_model
from backends.server import read_journal
from profiles.store import ProfileStore
from tests.test_app import until
from tui.app import LlamaduelApp

pytestmark = pytest.mark.toolchain


def serve_app(tmp_path: Path, cpu_bin: Path, tiny_llama: Path) -> LlamaduelApp:
    builds = [probe_build(cpu_bin, "cpu"), probe_build(cpu_bin, "cpu-again")]
    assert all(b.runnable for b in builds)
    return LlamaduelApp(builds, [read_model(tiny_llama)], store=ProfileStore(tmp_path / "profiles"),
                        runs_root=tmp_path / "runs", offer_resume=False, telemetry=None)


def screen_text(app: LlamaduelApp) -> str:
    return "\n".join(str(w.render()) for w in app.screen.query("Static") if w.display)


async def test_server_mode_runs_a_real_duel_and_shows_panels_and_the_serving_verdict(
        tmp_path, cpu_bin, tiny_llama, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = serve_app(tmp_path, cpu_bin, tiny_llama)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.screen.chosen_builds == {"cpu", "cpu-again"}, "builds chosen")
        await until(pilot, lambda: app.screen.body_ready, "the Setup form")
        await pilot.press("m")  # the mode key: a llama-server duel instead of a sweep
        await until(pilot, lambda: app.screen.serve_mode, "server mode")
        form = app.screen.query_one("#serve-section")
        assert form.has_class("-shown") and not app.screen.query_one("#workload-section").display
        for key, value in {"concurrency": "1,2", "prompt": "96", "gen": "16", "requests": "4"}.items():
            app.screen.query_one(f"#serve-{key}").value = value
        app.screen.query_one("#serve-gap").value = False
        app.screen.query_one("#builds-table").focus()
        await until(pilot, lambda: "server duel: 2 builds × 2 levels"
                    in str(app.screen.query_one("#setup-status").render()), "the plan line")
        await pilot.press("r")
        await until(pilot, lambda: app.current_mode == "serve", "the Serve screen")
        serve = app.screen
        # Live: both panels fill in while the duel runs.
        await until(pilot, lambda: len(serve.query("ServePanel")) == 2, "a panel per contender")
        await until(pilot, lambda: "TTFT" in screen_text(app) and serve.duel_state.contender("cpu")
                    and serve.duel_state.contender("cpu").requests > 0, "live figures", steps=1200)
        await until(pilot, lambda: serve.status == "finished", "the duel finished", steps=1800)
        await pilot.pause()

        text = screen_text(app)
        for name in ("cpu", "cpu-again"):
            mine = serve.duel_state.contender(name)
            assert [s.level.concurrency for s in mine.summaries] == [1, 2]
            assert all(s.requests == 4 and s.errors == 0 for s in mine.summaries)
        assert "c1: " in text and "c2: " in text and "(pp96+tg16)" in text
        assert "t/s total" in text and "per stream" in text and "ITL" in text
        assert "Serving verdict" in text
        assert "2/2 levels · finished" in text  # levels, not levels times contenders
        # The verdict per level, as the profile would keep it (that one build under two names
        # is no winner is tests/test_serving_verdict.py's, with one thread per server).
        assert [v.workload for v in serve.verdicts] == ["serving c=1", "serving c=2"]
        for verdict in serve.verdicts:
            assert verdict.sentence.splitlines()[0] in text
        journal = Path(serve.journal)
        assert journal.is_file() and journal.parent.parent == tmp_path / "runs"
    events = read_journal(journal)
    assert isinstance(events[0], DuelStarted) and isinstance(events[-1], DuelFinished)
    assert not events[-1].cancelled and not events[-1].failures
    finished = [e for e in events if isinstance(e, RequestFinished)]
    assert len(finished) == 2 * (4 + 4)
    assert {e.stream for e in finished if e.level.startswith("c2")} == {0, 1}
    assert len([e for e in events if isinstance(e, FirstContentToken)]) == len(finished)
    # What the screen showed as totals is what the journal's summaries say.
    shown = {(s.contender, s.level.key, s.total_tps) for c in serve.duel_state.contenders
             for s in c.summaries}
    assert shown == {(s.contender, s.level.key, s.total_tps) for s in events[-1].summaries}
    assert_nothing_left(events)


async def test_stopping_a_duel_stops_its_servers_and_the_journal_says_so(tmp_path, cpu_bin,
                                                                         tiny_llama):
    app = serve_app(tmp_path, cpu_bin, tiny_llama)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.screen.body_ready and app.sources.ready, "the Setup form")
        await pilot.press("m")
        await until(pilot, lambda: app.screen.serve_mode, "server mode")
        for key, value in {"concurrency": "1,2", "prompt": "96", "gen": "64", "duration": "60"}.items():
            app.screen.query_one(f"#serve-{key}").value = value
        app.screen.query_one("#builds-table").focus()
        await pilot.pause()
        await pilot.press("r")
        await until(pilot, lambda: app.current_mode == "serve", "the Serve screen")
        serve = app.screen
        await until(pilot, lambda: (c := serve.duel_state.contender("cpu")) is not None
                    and c.requests >= 1, "a first request finished")
        await pilot.press("c")
        await until(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", "the question")
        await pilot.press("y")
        await until(pilot, lambda: not serve.running, "the duel stopped", steps=600)
        assert "cancelled" in str(serve.query_one("#serve-summary").render())
        journal = Path(serve.journal)
    events = read_journal(journal)
    assert isinstance(events[-1], DuelFinished) and events[-1].cancelled
    assert_nothing_left(events)

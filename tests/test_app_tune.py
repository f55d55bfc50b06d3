"""The tune in the app, on the real CPU build: the Setup box (off by default), a Tune panel
per contender while it runs, and what tuning was worth on the Results screen."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from backends.builds import probe_build
from backends.journal.tune import TuneChosen
from backends.models import read_model
from backends.sweep import read_journal
from profiles.store import ProfileStore
from tui.app import LlamaduelApp
from tui.screens.results import ResultsScreen
from tui.widgets.tune_panel import TunePanel
from tui.widgets.verdict_card import TuningCard

SIZE = (160, 48)


@pytest.mark.toolchain
async def test_tune_first_shows_a_panel_per_contender_and_the_worth_on_results(tmp_path, cpu_bin, tiny_llama):
    cpu = probe_build(cpu_bin, "cpu")
    assert cpu.runnable, cpu.problem
    one = dataclasses.replace(cpu, name="one", settings=("-t", "1"))
    app = LlamaduelApp([cpu, one], [read_model(tiny_llama)], store=ProfileStore(tmp_path / "profiles"),
                       runs_root=tmp_path / "runs", telemetry=None)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        for _ in range(600):
            if screen.chosen_builds == {"cpu", "one"}:
                break
            await pilot.pause(0.1)
        box = screen.query_one("#tune-first")
        assert box.value is False  # off by default
        box.value = True
        screen.query_one("#check-correctness").value = False
        for key, value in {"prompts": "128", "gens": "4", "depths": "0", "reps": "1"}.items():
            screen.query_one(f"#field-{key}").value = value
        await pilot.pause()
        screen.query_one("#builds-table").focus()
        await pilot.pause()
        await pilot.press("r")
        run = app.get_screen("run")
        seen: dict[str, str] = {}
        for _ in range(6000):
            for panel in run.query(TunePanel):
                seen[panel.build_name] = str(panel.render())
            if isinstance(app.screen, ResultsScreen) and app.screen.run_state.status == "finished":
                break
            await pilot.pause(0.1)
        else:
            raise AssertionError("the run never finished")
        assert set(seen) == {"cpu", "one"}
        assert all("candidates tried" in text and "chosen:" in text for text in seen.values()), seen
        await pilot.pause()
        card = app.screen.query(TuningCard).last()
        text = str(card.render())
        journal = read_journal(Path(app.screen.run_state.run_dir))
        chosen = {e.build: e for e in journal if isinstance(e, TuneChosen)}
        assert set(chosen) == {"cpu", "one"}
        for name, pick in chosen.items():
            assert name in text and (pick.chosen.label.split()[0] in text)
        assert "tune:" in text and "of 300 s" in text

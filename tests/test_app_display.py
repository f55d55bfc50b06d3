"""What the app shows, checked with Pilot and on the pure state: NO_COLOR state in the text,
the ETA and the check's progress, the grid's placeholders, plots (round ticks, legend
outside the data, one scale per run), the Run screen at 80x24, profile names, the race's
default model and "same text", launch commands only where llama-server is, and Setup's
estimate and context warning. No llama.cpp process runs here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from backends.builds import BuildInfo, Device
from backends.estimate import Rates, context_problem, sweep_seconds
from backends.journal.sweep import BenchResult, ResultReceived, SweepStarted, TestPoint
from backends.journal.tune import TuneSpec
from backends.models import read_model
from backends.race import BuildFinished, RaceFinished, RaceStarted
from profiles.store import ProfileStore
from tests.test_app_keys import JOURNAL, shown_keys, until
from tui.app import LlamaduelApp
from tui.sources import RateBook
from tui.state.format import format_eta
from tui.state.grid import fields_from_spec
from tui.state.plan import make_plan
from tui.state.race import fold as race_fold_one
from tui.state.race import fold_all as race_fold
from tui.state.run import CheckPlanned, RunState, eta_seconds, fold_all, fold_check
from tui.widgets.axes import nice_ticks, tick_label, time_label, time_ticks
from tui.widgets.race_lane import stats_line

SOFTWARE = Device("Vulkan0", "llvmpipe (LLVM 15.0.6, 256 bits)", 0, 0)


def fake_build(name: str, tmp_path: Path, *, note: str | None = None, software: bool = False,
               server: bool = False) -> BuildInfo:
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    for tool in ("llama-bench", "llama-completion") + (("llama-server",) if server else ()):
        (folder / tool).write_text("#!/bin/sh\n")
        (folder / tool).chmod(0o755)
    return BuildInfo(name=name, folder=folder, bench=folder / "llama-bench",
                     completion=folder / "llama-completion", backend="Vulkan" if software else "CPU",
                     devices=(SOFTWARE,) if software else (), note=note)


# ---------------------------------------------------------------- NO_COLOR
async def test_without_colour_boxes_and_the_cursor_row_show_in_the_text(
        tmp_path, monkeypatch, tiny_llama):
    monkeypatch.setenv("NO_COLOR", "1")
    builds = [fake_build("alpha", tmp_path), fake_build("beta", tmp_path)]
    app = LlamaduelApp(builds, [read_model(tiny_llama)], store=ProfileStore(tmp_path / "p"),
                       offer_resume=False, telemetry=None)
    async with app.run_test(size=(120, 40)) as pilot:
        setup = app.screen
        await until(pilot, lambda: setup.chosen_builds == {"alpha", "beta"}, "builds chosen")
        table = setup.query_one("#builds-table")
        assert app.no_color
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert rows[0][:3] == [">", "[x]", "alpha"] and rows[1][:3] == [" ", "[x]", "beta"]
        await pilot.press("down", "space")
        await until(pilot, lambda: setup.chosen_builds == {"alpha"}, "beta left out")
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert rows[0][:2] == [" ", "[x]"] and rows[1][:2] == [">", "[ ]"]
        assert table.get_component_rich_style("datatable--cursor").reverse
        box = setup.query_one("#check-correctness")
        assert str(box.render()).startswith("[x] ")
        box.value = False
        await pilot.pause()
        assert str(box.render()).startswith("[ ] ")
        await pilot.press("5")
        await until(pilot, lambda: app.current_mode == "race", "the Race screen")
        chooser = app.screen.query_one("#race-builds")
        await until(pilot, lambda: chooser.option_count == 2, "the builds listed")
        chooser.deselect("beta")
        await pilot.pause()
        lines = [chooser.render_line(y).text for y in range(2)]
        assert lines[0].startswith("[x] alpha") and lines[1].startswith("[ ] beta")


# ---------------------------------------------------------------- waits that say what for
def point(n_prompt: int, n_gen: int, depth: int = 0) -> TestPoint:
    return TestPoint(n_prompt, n_gen, depth)


def result(p: TestPoint, rate: float) -> BenchResult:
    return BenchResult(p, rate, 1.0, (rate,), {})


def test_eta_from_the_plan_then_from_the_run_own_pace():
    points = (point(16, 0), point(0, 4), point(16, 0, 256), point(0, 4, 256))
    started = SweepStarted("r", "/runs/r", "m.gguf", ("a", "b"), points, at=1000.0)
    planned = fold_check(RunState(), CheckPlanned("m.gguf", ("a", "b"), sweep_estimate=80.0,
                                                  estimates={"a": 5.0, "b": 15.0}, at=990.0),
                         now=990.0)
    assert eta_seconds(planned, 990.0) == pytest.approx(5 + 15 + 80)  # check, then sweep
    state = fold_all([started], planned)
    assert state.estimate == 80.0
    assert eta_seconds(state, 1010.0) == pytest.approx(70.0)  # before the first result
    state = fold_all([ResultReceived("a", result(points[0], 100.0))], state)
    # One of eight points in 20 s: 140 s at that pace, weighed 1/8 against the plan's 70.
    assert eta_seconds(state, 1020.0) == pytest.approx(140 / 8 + 70 * 7 / 8)
    assert format_eta(59) == "~60 s" and format_eta(61) == "~2 min" and format_eta(3) == "~5 s"


def test_the_check_says_which_build_it_reads_how_far_and_how_long():
    from backends.correctness import BuildChecked, CheckStarted, CorrectnessResult

    state = fold_check(RunState(), CheckPlanned("m.gguf", ("cpu", "vulkan"), chunks=2,
                                                estimates={"cpu": 4.0, "vulkan": 40.0},
                                                sweep_estimate=60.0, at=100.0), now=100.0)
    state = fold_check(state, CheckStarted(("cpu", "vulkan"), "cpu", "m.gguf", "t.txt", 64),
                       now=100.0)
    line = state.check.line(102.0)
    assert line == "check 1/2: reading the text with cpu (reference) · 2 chunks of 64 tokens · 2 s of ~5 s"
    state = fold_check(state, BuildChecked(CorrectnessResult("cpu", "cpu", ppl=9.0, ppl_ref=9.0,
                                                             status="reference")), now=104.0)
    assert state.check.line(114.0).startswith("check 2/2: comparing vulkan with cpu")
    assert eta_seconds(state, 114.0) == pytest.approx(30.0 + 60.0)


# ---------------------------------------------------------------- the grid
def bare_app(tmp_path) -> LlamaduelApp:
    """The app with no builds and no models: Setup's form alone."""
    return LlamaduelApp([], [], store=ProfileStore(tmp_path / "p"), offer_resume=False,
                        telemetry=None)


async def preset_field(pilot, name: str, attribute: str):
    """Setup's workload form and its field ``name`` once the preset has filled ``attribute``."""
    screen = pilot.app.screen
    await until(pilot, lambda: screen.query(f"#field-{name}") and getattr(
        screen.query_one(f"#field-{name}"), attribute), f"the Setup form with the preset's {attribute}")
    return screen.query_one("#workload-section"), screen.query_one(f"#field-{name}")


async def test_a_cleared_grid_field_counts_as_its_placeholder(tmp_path):
    app = bare_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        form, depths = await preset_field(pilot, "depths", "placeholder")
        assert depths.placeholder == "0,4k,8k,16k,32k"
        depths.value = ""
        await pilot.pause()
        assert form.spec().depths == (0, 4096, 8192, 16384, 32768)
        assert str(app.screen.query_one("#preset").value) == "seed-sweep"  # nothing changed
        app.screen.query_one("#preset").value = "chat"
        await until(pilot, lambda: depths.placeholder == "0,2k", "chat's placeholders")
        depths.value = ""
        await pilot.pause()
        assert form.spec().depths == (0, 2048)
        assert fields_from_spec(form.spec())["depths"] == "0,2k"


async def test_an_adaptive_preset_stays_adaptive_when_another_field_is_edited(tmp_path):
    app = bare_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        form, reps = await preset_field(pilot, "reps", "value")
        assert reps.value == "auto" and form.spec().adaptive  # the seed sweep adapts, as -r auto
        app.screen.query_one("#field-depths").value = "0,4096"  # edited: no longer the preset
        await pilot.pause()
        edited = form.spec()
        assert edited.depths == (0, 4096) and edited.adaptive and edited.repetitions == 2
        reps.value = "5"
        await pilot.pause()
        assert not form.spec().adaptive and form.spec().repetitions == 5


async def test_an_edit_made_while_a_preset_is_being_applied_reads_custom(tmp_path):
    # A field typed into before the preset's own edits have settled (a loaded machine's slow
    # refresh) is still the user's: the form must not keep calling it the preset.
    app = bare_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        form, depths = await preset_field(pilot, "depths", "placeholder")
        form.apply_preset("seed-sweep")
        depths.value = "0,4096"  # in the same tick, before the form's refresh
        preset = app.screen.query_one("#preset")
        await until(pilot, lambda: str(preset.value) == "custom", "the preset to read custom")
        assert form.spec().depths == (0, 4096)


# ---------------------------------------------------------------- plots
def test_ticks_are_round_and_short():
    assert [tick_label(t) for t in nice_ticks(0, 85050, 4)] == ["0", "20K", "40K", "60K", "80K",
                                                                "100K"]
    assert all(t % 5000 == 0 for t in nice_ticks(0, 16392.7))
    assert tick_label(6815.5) == "6.8K" and tick_label(0.05) == "0.05"
    assert [time_label(t) for t in time_ticks(75)] == ["0s", "15s", "30s", "45s", "1:00", "1:15"]


async def test_replayed_plots_keep_the_legend_out_of_the_data_and_one_scale(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = LlamaduelApp([], [], store=ProfileStore(tmp_path / "p"), journal=JOURNAL,
                       start_screen="run", telemetry=None)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.current_mode == "run", "run")
        plot = app.screen.query_one("#plot-pp")
        await until(pilot, lambda: plot.size.width > 0, "the plot laid out")
        await pilot.pause(0.6)
        title = plot.render().plain.splitlines()[0] if hasattr(plot.render(), "plain") else ""
        assert "o cpu" in title and "x vulkan" in title and "(log)" in title
        assert plot.logarithmic()
        # The scale stays as chosen when later results would have asked for another.
        state = plot.run_state
        slow = state.build("vulkan")
        fast_again = dataclasses.replace(slow, results=tuple(
            dataclasses.replace(r, avg_ts=r.avg_ts * 1000) for r in slow.results))
        plot.run_state = dataclasses.replace(state, builds=(state.builds[0], fast_again))
        assert plot.logarithmic()


# ---------------------------------------------------------------- Run at 80x24
async def test_run_at_80x24_shows_panels_and_both_plots_without_scrolling(tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = LlamaduelApp([], [], store=ProfileStore(tmp_path / "p"), journal=JOURNAL,
                       start_screen="run", telemetry=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.current_mode == "run", "run")
        run = app.screen
        await until(pilot, lambda: run.query("BuildPanel"), "panels")
        await pilot.pause(0.3)
        assert run.query_one("#run-body").max_scroll_y == 0
        footer_top = run.query_one("Footer").region.y
        for widget in [*run.query("BuildPanel"), run.query_one("#plot-pp"),
                       run.query_one("#plot-tg"), run.query_one("#telemetry")]:
            assert widget.region.bottom <= footer_top, widget
        assert run.query_one("#plot-pp").region.height >= 8
        assert run.query_one("#telemetry").region.height == 1


# ---------------------------------------------------------------- names, race, launch
def test_suggested_profile_names_have_no_spaces():
    from tui.screens.profile_actions import default_profile_name
    from tui.state.run import BuildProgress

    state = RunState(model="/m/Gemma 3 270M q4.gguf",
                     builds=(BuildProgress("cpu"), BuildProgress("vulkan 2")))
    name = default_profile_name(state)
    assert " " not in name and name == "Gemma-3-270M-q4-cpu-vs-vulkan-2"


async def test_race_defaults_to_setup_model_and_never_to_a_broken_one(tmp_path):
    from backends.tooling.synth import write_tiny_llama

    broken = tmp_path / "a-broken.gguf"
    broken.write_bytes(b"GGUF but not really")
    first = write_tiny_llama(tmp_path / "b-first.gguf")
    second = write_tiny_llama(tmp_path / "c-second.gguf")
    models = [read_model(broken), read_model(first), read_model(second)]
    assert not models[0].runnable
    app = LlamaduelApp([fake_build("cpu", tmp_path)], models,
                       store=ProfileStore(tmp_path / "p"), offer_resume=False, telemetry=None)
    async with app.run_test(size=(120, 40)) as pilot:
        setup = app.screen
        await until(pilot, lambda: setup.chosen_model == str(first), "the first good model")
        setup.chosen_model = str(second)
        await pilot.press("5")
        await until(pilot, lambda: app.current_mode == "race", "race")
        select = app.screen.query_one("#race-model")
        await until(pilot, lambda: select.value == str(second), "Setup's model chosen")
        assert str(broken) not in [value for _, value in select._options if value]


def test_the_lanes_say_same_text_when_the_texts_match():
    from backends.race import RaceSpec

    finished = {name: BuildFinished(name, "Paris.", 0.1, 0.3, 50.0, 20.0, 4, 2, 80.0, 100.0,
                                    10.0, True) for name in ("cpu", "vulkan")}
    spec = RaceSpec(prompt="The capital of France is")
    board = race_fold([RaceStarted(("cpu", "vulkan"), "m.gguf", spec, True),
                       *finished.values(),
                       RaceFinished(tuple(finished.values()), (), (), "cpu", ("cpu", "vulkan"))])
    vulkan = board.lane("vulkan")
    assert vulkan.matches == "cpu" and board.same_text
    assert "same text as cpu" in stats_line(vulkan)
    assert "reference" in stats_line(board.lane("cpu"))
    assert race_fold_one(board, RaceStarted(("cpu",), "m.gguf", spec, True)).lane("cpu").matches == ""


async def test_launch_command_offered_only_where_llama_server_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = LlamaduelApp([], [], store=ProfileStore(tmp_path / "p"), journal=JOURNAL,
                       start_screen="results", telemetry=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.current_mode == "results"
                    and app.screen.run_state.builds, "results")
        # The recorded run's builds were in /opt/llama.cpp/...: no llama-server here.
        assert "y" not in shown_keys(app) and "w" in shown_keys(app)


# ---------------------------------------------------------------- estimate and warnings
def test_plan_estimates_from_rates_and_warns_past_the_context(tmp_path, tiny_llama):
    from backends.sweep import preset

    model = read_model(tiny_llama)
    builds = [fake_build("cpu", tmp_path), fake_build("vulkan", tmp_path, software=True)]
    spec = preset("chat")
    unknown = make_plan(builds, model, spec, {}, check=True)
    assert unknown.seconds is None and "t times cpu, vulkan" in unknown.line()
    assert unknown.check.chunks == 2 and unknown.check.context == 64  # software
    rates = {"cpu": Rates(1000.0, 100.0, 0.2, "a quick probe"),
             "vulkan": Rates(100.0, 10.0, 1.0, "a quick probe")}
    plan = make_plan(builds, model, spec, rates, check=True)
    assert plan.seconds and plan.seconds > plan.estimate.seconds > 0
    assert "about" in plan.line() and "from a quick probe" in plan.line()
    assert "how long: timing vulkan (pp32, tg8)…" in plan.line({"vulkan"})  # a probe under way
    # Tuning first: the estimate counts the tune phase, which its budget caps.
    tuned = make_plan(builds, model, spec, rates, check=True, tune=TuneSpec(budget_s=120.0))
    assert tuned.seconds >= plan.seconds + 120.0 and "tune" not in plan.line()
    assert f"about {format_eta(tuned.seconds)[1:]} with the tune first (from a quick probe)" \
        in tuned.line()
    assert sweep_seconds(spec.points(), 5, rates, ["cpu"]).seconds < plan.estimate.seconds
    deep = make_plan(builds, model, preset("seed-sweep"), rates, check=False)
    assert deep.warnings and "2,048-token context" in deep.warnings[0]
    assert context_problem(spec.points(), 2048) == "depth 2K goes past the model's 2,048-token " \
        "context (2,560 needed): results there say little"


async def test_setup_shows_the_estimate_once_rates_are_known(tmp_path, tiny_llama):
    model = read_model(tiny_llama)
    builds = [fake_build("cpu", tmp_path)]
    book = RateBook(tmp_path / "rates.json")
    book.put(builds[0], model, Rates(2000.0, 200.0, 0.1, "the run of 2026-05-01 10:00"))
    app = LlamaduelApp(builds, [model], store=ProfileStore(tmp_path / "p"), rates=book,
                       offer_resume=False, telemetry=None)
    async with app.run_test(size=(160, 48)) as pilot:
        status = lambda: str(app.screen.query_one("#setup-status").render())  # noqa: E731
        await until(pilot, lambda: "Ready" in status(), "the plan")
        assert "about" in status() and "the run of 2026-05-01 10:00" in status()
        assert RateBook(tmp_path / "rates.json").get(builds[0], model).pp == 2000.0


async def test_text_is_not_cut_when_there_is_room(tmp_path, tiny_llama):
    note = "software renderer (Vulkan0 llvmpipe (LLVM 15.0.6, 256 bits)): runs on the CPU, slow"
    builds = [fake_build("cpu", tmp_path), fake_build("vulkan", tmp_path, note=note,
                                                       software=True)]
    app = LlamaduelApp(builds, [read_model(tiny_llama)], store=ProfileStore(tmp_path / "p"),
                       offer_resume=False, telemetry=None)
    async with app.run_test(size=(200, 50)) as pilot:
        await until(pilot, lambda: app.screen.query("#builds-table")
                    and app.screen.query_one("#builds-table").row_count == 2, "builds listed")
        await pilot.pause(0.3)
        table = app.screen.query_one("#builds-table")
        assert str(table.get_row_at(1)[-1]) == note


def test_the_check_fits_the_slowest_build():
    from backends.estimate import SOFTWARE_CHECK, check_seconds, check_size, logits_factor

    factor = logits_factor(268_000_000, 262_144, 640)  # Gemma 3 270M: the output layer weighs
    assert 2.0 < factor < 3.5
    fast, lavapipe = Rates(5000.0, 100.0, 0.5), Rates(6.7, 2.9, 2.0)
    assert check_size([fast, fast], factor, software=False) == (None, None)  # the default
    context, chunks = check_size([fast, lavapipe], factor, software=True)
    assert check_seconds(context, chunks, lavapipe, factor) <= 90
    assert check_size([fast, None], factor, software=True) == SOFTWARE_CHECK
    assert check_size([fast, None], factor, software=False) == (None, None)

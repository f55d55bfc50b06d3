"""The completion race against the real llama.cpp completion tools on a generated model."""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
import tomllib
from dataclasses import replace as dataclasses_replace
from pathlib import Path

import psutil
import pytest
import tomli_w

from backends.race import (
    BuildFailed,
    BuildFinished,
    BuildRetrying,
    BuildStarted,
    Divergence,
    FirstToken,
    RaceBuild,
    RaceError,
    RaceFinished,
    RaceSpec,
    RaceStarted,
    TokenReceived,
    collect_race,
    first_difference,
    long_document,
    parse_timings,
    race_summary,
    run_race,
)

VULKAN_ENV = {"GGML_VK_VISIBLE_DEVICES": "0"}
PROMPT = "Once upon a time there was a"


@pytest.fixture
def cpu(cpu_bin: Path) -> RaceBuild:
    return RaceBuild("cpu", cpu_bin)


@pytest.fixture
def vulkan(vulkan_bin: Path) -> RaceBuild:
    return RaceBuild("vulkan", vulkan_bin, env=VULKAN_ENV)


def race(builds: list, model: Path, spec: RaceSpec, **kwargs) -> list:
    # This llama.cpp's log thread can lose a quick run's last lines at exit on a busy
    # machine (its logger is never flushed, by design); the race runs such a build again,
    # and tests allow it plenty of tries. With ggml's default two threads on two busy
    # cores about two runs in three lost their timing lines (12 of 30 kept them beside a
    # compiler), with one thread about one in four (28 of 40), so tests race on one thread.
    if spec.threads is None:
        spec = dataclasses_replace(spec, threads=1)
    kwargs.setdefault("attempts", 10)
    return asyncio.run(collect_race(builds, model, spec, **kwargs))


def of(events: list, kind: type, build: str | None = None) -> list:
    return [e for e in events if isinstance(e, kind) and (build is None or e.build == build)]


def our_children() -> list[psutil.Process]:
    return psutil.Process().children(recursive=True)


def write_script(folder: Path, body: str) -> Path:
    """A tiny real program called llama-completion, for the tool-misbehaves cases."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "llama-completion"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


def check_stream(events: list, build: str) -> BuildFinished:
    """Pieces arrive in order, before the finish, and add up to the final text."""
    (finished,) = of(events, BuildFinished, build)
    assert finished.complete
    started = of(events, BuildStarted, build)[-1]  # the last attempt
    assert started.attempt == finished.attempts == len(of(events, BuildStarted, build))
    assert len(of(events, BuildRetrying, build)) == finished.attempts - 1
    events = events[events.index(started):]
    positions = {id(e): i for i, e in enumerate(events)}
    pieces = of(events, TokenReceived, build)
    assert pieces, f"{build} streamed no text"
    assert positions[id(started)] < positions[id(pieces[0])]
    assert all(positions[id(p)] < positions[id(finished)] for p in pieces)
    assert [p.index for p in pieces] == list(range(len(pieces)))
    times = [p.at for p in pieces]
    assert times == sorted(times) and times[0] >= 0
    (first,) = of(events, FirstToken, build)
    assert positions[id(first)] < positions[id(pieces[0])]
    assert first.seconds == pieces[0].at == finished.ttft
    assert "".join(p.text for p in pieces) == finished.text
    assert tuple((p.at, p.text) for p in pieces) == tuple((p.at, p.text) for p in finished.pieces)
    assert finished.wall_s >= times[-1]
    return finished


def test_cpu_and_vulkan_race_streams_text_and_reads_the_tools_timings(cpu, vulkan, tiny_llama):
    spec = RaceSpec(PROMPT, n_predict=24)
    events = race([cpu, vulkan], tiny_llama, spec)

    assert isinstance(events[0], RaceStarted) and events[0].builds == ("cpu", "vulkan")
    assert isinstance(events[-1], RaceFinished)
    # Sequential: the Vulkan build starts only after the CPU build is done.
    cpu_done = events.index(of(events, BuildFinished, "cpu")[0])
    assert events.index(of(events, BuildStarted, "vulkan")[0]) > cpu_done
    for name in ("cpu", "vulkan"):
        finished = check_stream(events, name)
        assert finished.n_prompt and finished.n_prompt > 1
        assert finished.prompt_tps and finished.prompt_tps > 0
        assert finished.gen_tps and finished.gen_tps > 0
        assert finished.load_ms and finished.load_ms > 0
        # The tool counts generation runs after the first token, which comes from the prompt.
        assert finished.n_gen is not None and 0 < finished.n_gen <= spec.n_predict
        if not finished.stopped_at_eos:
            assert finished.n_gen == spec.n_predict - 1
        assert "[end of text]" not in finished.text and not finished.text.endswith("\n\n")

    reference, other = (of(events, BuildFinished, n)[0] for n in ("cpu", "vulkan"))
    final = events[-1]
    assert final.reference == "cpu" and set(final.results) == {"cpu", "vulkan"}
    offset = first_difference(reference.text, other.text)
    if offset is None:
        assert not of(events, Divergence)
    else:  # two backends' rounding may pick another greedy token: that is flagged, loudly
        (divergence,) = of(events, Divergence)
        assert divergence.char_offset == offset and divergence.unexpected


def test_same_build_twice_greedy_gives_the_same_text(cpu, tiny_llama):
    twin = RaceBuild("cpu-again", cpu.folder)
    events = race([cpu, twin], tiny_llama, RaceSpec(PROMPT, n_predict=16))
    texts = [e.text for e in of(events, BuildFinished)]
    assert len(texts) == 2 and texts[0] == texts[1] and texts[0]
    assert not of(events, Divergence)
    assert events[-1].divergences == ()


def test_a_different_seed_at_temperature_one_is_flagged_from_the_first_difference(cpu, tiny_llama):
    twin = RaceBuild("cpu-seed-2", cpu.folder)
    spec = RaceSpec(PROMPT, n_predict=32, temperature=1.0, seed=1)
    events = race([cpu, twin], tiny_llama, spec, overrides={"cpu-seed-2": {"seed": 2}})

    reference, other = (of(events, BuildFinished, n)[0] for n in ("cpu", "cpu-seed-2"))
    assert "-s" in of(events, BuildStarted, "cpu-seed-2")[0].argv
    assert reference.text != other.text
    (divergence,) = of(events, Divergence)
    offset = first_difference(reference.text, other.text)
    assert divergence.build == "cpu-seed-2" and divergence.reference_build == "cpu"
    assert divergence.char_offset == offset
    assert reference.text[:offset] == other.text[:offset]
    assert divergence.build_excerpt == other.text[offset:offset + len(divergence.build_excerpt)]
    assert not divergence.unexpected  # sampling at temperature 1 with another seed: expected
    # The marked piece is the one holding the first differing character.
    before = sum(len(p.text) for p in other.pieces[:divergence.piece_index])
    assert before <= offset < before + len(other.pieces[divergence.piece_index].text)
    # Divergence follows the build's finish and precedes the race's end.
    assert events.index(divergence) > events.index(other)
    assert events[-1].divergences == (divergence,)


def test_a_greedy_build_with_another_seed_and_same_text_is_not_flagged(cpu, tiny_llama):
    # At temperature 0 the seed does not matter: the same text, no divergence.
    twin = RaceBuild("cpu-seed-9", cpu.folder)
    events = race([cpu, twin], tiny_llama, RaceSpec(PROMPT, n_predict=12),
                  overrides={"cpu-seed-9": {"seed": 9}})
    assert len(of(events, BuildFinished)) == 2
    assert not of(events, Divergence)


def test_a_crashing_and_a_hanging_tool_are_reported_while_the_real_build_finishes(
        cpu, tiny_llama, tmp_path):
    # The crash: the real tool, given a copy of the model cut off after its header.
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_llama.read_bytes()[:20_000])
    real = cpu.folder / "llama-completion"
    crash = write_script(tmp_path / "crash", f'exec "{real}" "$@" -m "{truncated}"\n')
    # The hang: answers --help like the real tool, then writes a little and sleeps forever,
    # with a grandchild in its process group that must die too.
    hang = write_script(tmp_path / "hang", (
        f'if [ "$1" = "--help" ]; then exec "{real}" --help; fi\n'
        "sleep 6007 &\n"
        "printf 'partial'\n"
        "exec sleep 6008\n"))
    builds = [RaceBuild("crash", crash), RaceBuild("hang", hang), cpu,
              RaceBuild("empty", tmp_path / "nothing-here")]
    (tmp_path / "nothing-here").mkdir()

    # Long enough for the real build on a busy machine; the hanging one waits it out.
    events = race(builds, tiny_llama, RaceSpec(PROMPT, n_predict=8), timeout=15)

    (crashed,) = of(events, BuildFailed, "crash")
    assert crashed.exit_code not in (None, 0) or crashed.signal
    assert not crashed.timed_out and "llama-completion" in crashed.reason
    (hung,) = of(events, BuildFailed, "hang")
    assert hung.timed_out and "did not finish within 15s" in hung.reason
    assert hung.text == "partial"  # what it wrote before hanging was streamed
    assert [p.text for p in of(events, TokenReceived, "hang")] == ["partial"]
    (missing,) = of(events, BuildFailed, "empty")
    assert "no llama-completion or llama-cli" in missing.reason
    check_stream(events, "cpu")
    final = events[-1]
    assert final.reference == "cpu"
    assert {name: type(r).__name__ for name, r in final.results.items()} == {
        "crash": "BuildFailed", "hang": "BuildFailed", "cpu": "BuildFinished", "empty": "BuildFailed"}
    for reason in (crashed.reason, hung.reason, missing.reason):
        assert "\n" not in reason
    assert not our_children()
    leftovers = [p for p in psutil.process_iter(["cmdline"])
                 if (p.info["cmdline"] or [])[-1:] in (["6007"], ["6008"])]
    assert not leftovers


def test_cancelling_a_race_kills_the_running_tool(cpu, tiny_llama, tmp_path):
    real = cpu.folder / "llama-completion"
    hang = write_script(tmp_path / "hang", (
        f'if [ "$1" = "--help" ]; then exec "{real}" --help; fi\n'
        "printf 'first words'\n"
        "exec sleep 6009\n"))

    async def stop_after_first_piece() -> tuple[int, list]:
        seen = []
        async with contextlib.aclosing(run_race([RaceBuild("hang", hang), cpu], tiny_llama,
                                                RaceSpec(PROMPT, n_predict=8))) as stream:
            async for event in stream:
                seen.append(event)
                if isinstance(event, TokenReceived):
                    break
        (started,) = of(seen, BuildStarted)
        return started.pid, seen

    pid, seen = asyncio.run(stop_after_first_piece())
    assert seen[-1].text == "first words"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not our_children()


def test_parallel_race_runs_both_builds_and_keeps_each_timeline(cpu, vulkan, tiny_llama):
    events = race([cpu, vulkan], tiny_llama, RaceSpec(PROMPT, n_predict=12), sequential=False)
    assert events[0].sequential is False
    for name in ("cpu", "vulkan"):
        check_stream(events, name)
    assert set(events[-1].results) == {"cpu", "vulkan"}
    assert not our_children()


def test_a_prompt_longer_than_the_context_gets_one_clear_line(cpu, tiny_llama):
    events = race([cpu], tiny_llama, RaceSpec(long_document(400), n_predict=4, ctx_size=64))
    (failed,) = of(events, BuildFailed)
    assert "longer than the context allows" in failed.reason and "-c" in failed.reason
    assert "\n" not in failed.reason
    assert events[-1].reference is None


def test_bad_input_is_refused_before_anything_starts(cpu, tiny_llama, tmp_path):
    cases = [
        ([cpu], tiny_llama, RaceSpec("   "), {}, "prompt is empty"),
        ([], tiny_llama, RaceSpec(PROMPT), {}, "no builds"),
        ([cpu, cpu], tiny_llama, RaceSpec(PROMPT), {}, "given twice"),
        ([cpu], tmp_path / "absent.gguf", RaceSpec(PROMPT), {}, "model file not found"),
        ([cpu], tiny_llama, RaceSpec(PROMPT, n_predict=0), {}, "at least 1"),
        ([cpu], tiny_llama, RaceSpec(PROMPT), {"other": {"seed": 1}}, "not in the race"),
        ([cpu], tiny_llama, RaceSpec(PROMPT), {"cpu": {"colour": 1}}, "bad setting for cpu"),
    ]
    for builds, model, spec, overrides, message in cases:
        with pytest.raises(RaceError, match=message):
            race(builds, model, spec, overrides=overrides)
    assert not our_children()


def test_a_prompt_from_a_long_document_reaches_the_tool_literally(cpu, tiny_llama):
    # Backslashes and newlines stay as written (no escape processing); the count of prompt
    # tokens the tool reports grows with the document.
    short = race([cpu], tiny_llama, RaceSpec("a\\nb " + long_document(20), n_predict=2, ctx_size=2048))
    longer = race([cpu], tiny_llama, RaceSpec("a\\nb " + long_document(200), n_predict=2, ctx_size=2048))
    (a,) = of(short, BuildFinished)
    (b,) = of(longer, BuildFinished)
    assert a.n_prompt and b.n_prompt and b.n_prompt > a.n_prompt * 5


def test_a_run_whose_output_was_cut_runs_again_and_is_marked_incomplete(cpu, tiny_llama, tmp_path):
    # The real tool with its log lines (timings included) thrown away, as when its log
    # thread loses them at exit: every attempt looks cut short.
    real = cpu.folder / "llama-completion"
    quiet = write_script(tmp_path / "quiet", (
        f'if [ "$1" = "--help" ]; then exec "{real}" --help; fi\n'
        f'exec "{real}" "$@" 2>/dev/null\n'))
    events = race([cpu, RaceBuild("quiet", quiet)], tiny_llama, RaceSpec(PROMPT, n_predict=12), attempts=3)
    retries = of(events, BuildRetrying, "quiet")
    assert [r.attempt for r in retries] == [1, 2]
    assert [s.attempt for s in of(events, BuildStarted, "quiet")] == [1, 2, 3]
    (quiet_result,) = of(events, BuildFinished, "quiet")
    assert not quiet_result.complete and quiet_result.attempts == 3 and quiet_result.gen_tps is None
    reference = of(events, BuildFinished, "cpu")[0]
    # Its text is still the real completion (or a cut-short start of it), never flagged as such.
    assert reference.text.startswith(quiet_result.text)
    assert not of(events, Divergence)
    summary = race_summary(events)
    assert summary["builds"]["quiet"]["complete"] is False and summary["builds"]["quiet"]["attempts"] == 3


def test_timing_lines_of_older_versions_parse_too():
    lines = [
        "llama_print_timings:        load time =     812.40 ms",
        "llama_print_timings: prompt eval time =     105.30 ms /    12 tokens (    8.78 ms per token,   113.96 tokens per second)",
        "llama_print_timings:        eval time =    2310.55 ms /    63 runs   (   36.68 ms per token,    27.27 tokens per second)",
    ]
    timings = parse_timings(lines)
    assert (timings.n_prompt, timings.prompt_tps, timings.n_gen, timings.gen_tps, timings.load_ms) == (
        12, 113.96, 63, 27.27, 812.40)


def test_race_summary_is_plain_data_a_profile_can_keep(cpu, tiny_llama, tmp_path):
    twin = RaceBuild("cpu-seed-2", cpu.folder)
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    events = race([cpu, twin, RaceBuild("none", nothing)], tiny_llama,
                  RaceSpec(PROMPT, n_predict=16, temperature=1.0, seed=1),
                  overrides={"cpu-seed-2": {"seed": 2}})
    summary = race_summary(events)
    assert tomllib.loads(tomli_w.dumps(summary)) == summary
    assert json.loads(json.dumps(summary)) == summary
    finished = of(events, BuildFinished, "cpu")[0]
    assert summary["reference"] == "cpu"
    assert summary["builds"]["cpu"]["gen_tps"] == round(finished.gen_tps, 2)
    assert summary["builds"]["cpu"]["n_gen"] == finished.n_gen
    assert summary["builds"]["none"]["status"] == "failed"
    assert summary["settings"]["temperature"] == 1.0 and "prompt" not in summary["settings"]
    assert [d["build"] for d in summary["divergences"]] == ["cpu-seed-2"]


def test_cli_race_prints_json_summary_and_refuses_bad_input(cpu_bin, tiny_llama, tmp_path, capsys):
    from tui.cli import main

    code = main(["race", "--build", f"a={cpu_bin}", "--build", f"b={cpu_bin / 'llama-completion'}",
                 "--model", str(tiny_llama), "--prompt", PROMPT, "-n", "8", "--json"])
    out = capsys.readouterr().out
    summary = json.loads(out)
    assert code == 0
    assert set(summary["builds"]) == {"a", "b"}
    assert all(entry["status"] == "finished" for entry in summary["builds"].values())
    assert summary["divergences"] == []

    code = main(["race", "--build", f"a={cpu_bin}", "--model", str(tiny_llama), "--prompt", PROMPT, "-n", "6"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("--- a\n") and "gen t/s" in out and "reference" in out

    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text("")
    for argv, message in [
        (["--prompt-file", str(prompt_file)], "prompt is empty"),
        (["--prompt-file", str(tmp_path / "absent.txt")], "cannot read prompt file"),
        (["--prompt", PROMPT, "--build", f"x={tmp_path / 'absent'}"], "no such folder"),
        (["--prompt", PROMPT, "--build", f"={cpu_bin}"], "empty name"),
    ]:
        base = ["race", "--model", str(tiny_llama)]
        if "--build" not in argv:
            base += ["--build", f"a={cpu_bin}"]
        code = main(base + argv)
        err = capsys.readouterr().err
        assert code == 2, argv
        assert message in err and err.count("\n") == 1, err
    assert not our_children()


# ------------------------------------------------------------------ the Race screen


async def until(pilot, condition, what: str, steps: int = 1200) -> None:
    """Wait for the screen to reach a state (a step is 0.1 s; no timing is asserted)."""
    for _ in range(steps):
        if condition():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"the screen never got to: {what}")


async def test_race_screen_streams_both_builds_marks_divergence_replays_and_saves(
        cpu_bin, vulkan_bin, tiny_llama, tmp_path):
    from textual.widgets import Input, SelectionList

    from backends.builds import probe_build
    from backends.models import read_model
    from profiles.store import ProfileStore
    from tui.app import LlamaduelApp
    from tui.screens.race import RaceScreen
    from tui.state.race import FINISHED
    from tui.widgets.race_lane import RaceLane, stats_line

    builds = [probe_build(cpu_bin, "cpu"), probe_build(vulkan_bin, "vulkan")]
    store = ProfileStore(tmp_path / "profiles")
    app = LlamaduelApp(builds, [read_model(tiny_llama)], store=store, runs_root=tmp_path / "runs",
                       offer_resume=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("5")  # the Race screen's key
        await until(pilot, lambda: isinstance(app.screen, RaceScreen), "the Race screen")
        screen = app.screen
        await until(pilot, lambda: len(screen.query_one("#race-builds", SelectionList).options) == 2,
                    "the builds listed")
        screen.query_one("#race-builds", SelectionList).select_all()
        screen.query_one("#race-temp", Input).value = "1.0"  # sampling: texts may differ
        screen.query_one("#race-n", Input).value = "24"
        screen.query_one("#race-prompt", Input).focus()
        await pilot.press(*PROMPT, "enter")
        await until(pilot, lambda: screen.board.status == "finished", "the race finished")

        board = screen.board
        assert [lane.build for lane in board.lanes] == ["cpu", "vulkan"]
        assert all(lane.status == FINISHED and lane.text and lane.gen_tps for lane in board.lanes)
        lanes = {lane.build: lane for lane in board.lanes}
        shown = {widget.build: widget for widget in screen.query(RaceLane)}
        assert set(shown) == {"cpu", "vulkan"}
        for name, widget in shown.items():
            assert widget.lane == lanes[name]
            assert "tg " in stats_line(widget.lane)
        # The events the screen folded are the race's own, in order.
        assert isinstance(screen.events[0], RaceStarted) and isinstance(screen.events[-1], RaceFinished)
        finished = {e.build: e for e in of(screen.events, BuildFinished)}
        offset = first_difference(finished["cpu"].text, finished["vulkan"].text)
        assert lanes["vulkan"].divergence_offset == offset
        if offset is not None:
            assert "differs" in stats_line(lanes["vulkan"]) and shown["vulkan"].has_class("-diverged")
            assert lanes["cpu"].is_reference

        await pilot.press("ctrl+l")  # replay on the common clock
        await until(pilot, lambda: screen.board.replay_at is not None, "the replay started")
        await until(pilot, lambda: screen.board.replay_at is None, "the replay ended", steps=200)
        assert screen.board == board

        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is not screen, "the profile question")
        dialog_input = app.screen.query_one(Input)
        dialog_input.value = "races"
        await pilot.press("enter")
        await until(pilot, lambda: [e.name for e in store.list()] == ["races"], "the profile saved")
        saved = store.load("races")
        assert len(saved.races) == 1
        assert saved.races[0]["builds"]["cpu"]["n_gen"] == finished["cpu"].n_gen
        assert saved.races[0]["settings"]["temperature"] == 1.0
        assert saved.races[0]["builds"]["vulkan"]["backend"] == builds[1].backend

        # Racing again and adding to the same profile appends.
        await pilot.press("ctrl+r")
        await until(pilot, lambda: screen.board.status == "finished" and len(screen.events) > 2,
                    "the second race finished")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is not screen, "the profile question again")
        app.screen.query_one(Input).value = "races"
        await pilot.press("enter")
        await until(pilot, lambda: len(store.load("races").races) == 2, "the race appended")
    assert not our_children()


async def test_race_screen_refuses_bad_input_with_one_line_and_stops_a_hanging_build(
        cpu_bin, tiny_llama, tmp_path):
    from textual.widgets import Input, SelectionList

    from backends.builds import probe_build
    from backends.models import read_model
    from profiles.store import ProfileStore
    from tui.app import LlamaduelApp
    from tui.screens.race import RaceScreen

    real = cpu_bin / "llama-completion"
    hang = write_script(tmp_path / "hang", (
        f'if [ "$1" = "--help" ]; then exec "{real}" --help; fi\n'
        "printf 'stuck here'\n"
        "exec sleep 6011\n"))
    hanging = dataclasses_replace(probe_build(cpu_bin, "cpu"), name="hang", folder=hang,
                                  completion=hang / "llama-completion")
    app = LlamaduelApp([hanging], [read_model(tiny_llama)], store=ProfileStore(tmp_path / "p"),
                       runs_root=tmp_path / "runs", offer_resume=False, start_screen="race")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RaceScreen), "the Race screen")
        screen = app.screen
        await until(pilot, lambda: len(screen.query_one("#race-builds", SelectionList).options) == 1,
                    "the build listed")
        await pilot.press("ctrl+r")  # nothing selected, no prompt
        await until(pilot, lambda: len(app._notifications) > 0, "a message")
        messages = [n.message for n in app._notifications]
        assert any("prompt is empty" in m for m in messages)
        assert all("\n" not in m for m in messages)

        screen.query_one("#race-prompt", Input).value = PROMPT
        screen.query_one("#race-builds", SelectionList).deselect_all()  # usable ones start selected
        await pilot.press("ctrl+r")
        await until(pilot, lambda: any("Select at least one build" in n.message for n in app._notifications),
                    "the no-build message")

        screen.query_one("#race-builds", SelectionList).select_all()
        await pilot.press("ctrl+r")
        await until(pilot, lambda: screen.board.lanes and screen.board.lanes[0].text == "stuck here",
                    "the hanging build's first words")
        assert any("sleep" in " ".join(p.cmdline()) for p in our_children())
        await pilot.press("ctrl+b")
        await until(pilot, lambda: screen.board.status == "cancelled", "the race cancelled")
        await until(pilot, lambda: not our_children(), "the hanging tool killed")


async def test_quitting_the_app_mid_race_leaves_no_process(cpu_bin, tiny_llama, tmp_path):
    from textual.widgets import Input

    from backends.builds import probe_build
    from backends.models import read_model
    from profiles.store import ProfileStore
    from tui.app import LlamaduelApp
    from tui.screens.race import RaceScreen

    real = cpu_bin / "llama-completion"
    hang = write_script(tmp_path / "hang", (
        f'if [ "$1" = "--help" ]; then exec "{real}" --help; fi\n'
        "printf 'never ends'\n"
        "exec sleep 6013\n"))
    hanging = dataclasses_replace(probe_build(cpu_bin, "cpu"), name="hang", folder=hang,
                                  completion=hang / "llama-completion")
    app = LlamaduelApp([hanging], [read_model(tiny_llama)], store=ProfileStore(tmp_path / "p"),
                       runs_root=tmp_path / "runs", offer_resume=False, start_screen="race")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RaceScreen), "the Race screen")
        screen = app.screen
        screen.query_one("#race-prompt", Input).value = PROMPT
        await until(pilot, lambda: screen.query_one("#race-builds").selected == ["hang"], "the build chosen")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: screen.board.lanes and screen.board.lanes[0].text == "never ends",
                    "the hanging build's words")
        screen.query_one("#race-builds").focus()
        await pilot.press("q")
        await pilot.pause(0.5)
    alive = [p for p in our_children() if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive

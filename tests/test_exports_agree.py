"""Every export format honours the same --workload/--build choice, on a profile from a real
CPU against Vulkan sweep: a choice that works for one format works for all of them, and one
that cannot work is the same one line from each."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import pytest

from backends.builds import probe_build
from backends.sweep import RunRequest, SweepSpec, read_journal, run_sweep
from profiles.model import profile_from_journal
from profiles.store import ProfileStore
from tui.cli import main

pytestmark = pytest.mark.toolchain

FORMATS = ("md", "csv", "json", "launch", "llama-swap")
SPEC = SweepSpec(name="tiny", prompts=(32,), gens=(8,), depths=(0,), repetitions=2, threads=1)


@pytest.fixture(scope="module")
def store(cpu_bin, vulkan_bin, tiny_llama, tmp_path_factory):
    builds = [probe_build(cpu_bin, "cpu"), probe_build(vulkan_bin, "vulkan")]
    root = tmp_path_factory.mktemp("exports")

    async def sweep() -> None:
        async for _ in run_sweep(RunRequest(builds, tiny_llama, SPEC, run_dir=root / "run")):
            pass

    asyncio.run(sweep())
    profile = profile_from_journal(read_journal(root / "run"), name="duel", builds=builds)
    assert profile.recommendation is not None
    ProfileStore(root / "store").save(profile)
    return root / "store"


def export(store, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["profiles", "--store", str(store), "export", "duel", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("build", ["cpu", "vulkan"])
def test_every_format_launches_the_chosen_build_for_the_chosen_workload(store, capsys, vulkan_bin,
                                                                      cpu_bin, build):
    folder = {"cpu": cpu_bin, "vulkan": vulkan_bin}[build]
    server = str(folder / "llama-server")
    found = {}
    for fmt in FORMATS:
        code, out, err = export(store, capsys, "--format", fmt, "--workload", "short_dense", "--build", build)
        assert code == 0, (fmt, err)
        found[fmt] = out
    launch = found["launch"].strip()
    assert launch.startswith(server + " ")
    swap = found["llama-swap"]
    assert swap.startswith("models:\n") and swap.count("cmd: ") == 1 and f"# dense, short context: {build}" in swap
    assert json.loads(swap.split("cmd: ", 1)[1].splitlines()[0]) == launch.replace("--port 8080", "--port ${PORT}")
    assert f"`{launch}`" in found["md"] and f"Launch {build} for " in found["md"]
    rows = list(csv.DictReader(io.StringIO(found["csv"])))
    assert rows and {r["workload"] for r in rows} == {"short_dense"}
    assert {r["build"] for r in rows if r["launch_command"]} == {build}
    assert all(r["launch_command"] == launch for r in rows if r["launch_command"])
    document = json.loads(found["json"])
    assert document["launch"]["build"] == build and " ".join(document["launch"]["argv"]).startswith(server)
    assert {v["workload"] for v in document["recommendation"]["verdicts"]} == {"short_dense"}


def test_a_choice_the_profile_cannot_meet_is_the_same_line_from_every_format(store, capsys):
    for args, line in ((("--build", "rocm"), "llamaduel: no build named 'rocm' in the profile (it has cpu, vulkan)"),
                       (("--workload", "moe"), "llamaduel: the profile has no results for the MoE workload")):
        for fmt in FORMATS:
            code, out, err = export(store, capsys, "--format", fmt, *args)
            assert (code, out, err.strip()) == (2, "", line), fmt


def test_without_a_choice_every_format_still_exports(store, capsys):
    for fmt in FORMATS:
        code, out, err = export(store, capsys, "--format", fmt)
        assert code == 0 and out.strip(), (fmt, err)

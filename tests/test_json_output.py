"""Every JSON output of the command line is exactly one JSON document: ``json.loads`` reads
the whole of stdout. A stream of events comes only behind an explicit ``--jsonl``.

The verbs are read from the argument parser itself, so a new verb with a JSON option and no
case here fails ``test_every_json_option_has_a_case``. Every case runs the real command on
the real llama.cpp tools (the CPU build, twice under two names where two are needed) and a
generated model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tui.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.toolchain


def json_options(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> set[tuple[str, str]]:
    """(verb, option) for every JSON output option of every verb and sub-verb:
    ``("bench", "--json")``, ``("profiles export", "--format json")``."""
    found: set[tuple[str, str]] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= json_options(sub, (*prefix, name))
            continue
        verb = " ".join(prefix)
        for option in ("--json", "--jsonl"):
            if option in action.option_strings:
                found.add((verb, option))
        if "--format" in action.option_strings and "json" in (action.choices or ()):
            found.add((verb, "--format json"))
    return found


@dataclass(frozen=True)
class World:
    """What the cases run on: builds, a model, a finished run and a saved profile."""

    cpu: Path
    model: Path
    data: Path
    store: Path
    run_dir: Path
    tmp: Path
    realdata: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(REPO), "LLAMADUEL_DATA_DIR": str(self.data)}

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=REPO, env=self.env(),
                              capture_output=True, text=True, timeout=timeout, check=False)


def bench_args(w: World) -> list[str]:
    return ["bench", "--build", f"cpu={w.cpu}", "--build", f"cpu-again={w.cpu}", "--model",
            str(w.model), "-p", "16", "-n", "4", "-d", "0", "-r", "2", "-t", "1",
            "--telemetry", "off"]


def check_args(w: World) -> list[str]:
    return ["check", "--build", f"cpu={w.cpu}", "--build", f"cpu-again={w.cpu}", "--model",
            str(w.model), "-c", "64", "--chunks", "2"]


def serve_args(w: World) -> list[str]:
    return ["serve-bench", "--build", f"cpu={w.cpu}", "--model", str(w.model), "--concurrency", "1",
            "-p", "64", "-n", "4", "--requests", "2", "--turns", "1", "--no-gap", "-t", "1",
            "--journal", str(w.tmp / "serve" / "journal.jsonl")]


Args = Callable[["World"], list[str]]
Holds = Callable[["World", object], bool]
TWO_MACHINES = "tiry-strixhalo-rocm-vulkan-and-rtx4070ti-cuda-vulkan"  # a Strix Halo and an RTX 4070 Ti

# (verb, option) -> command lines, each with what its document must hold.
CASES: dict[tuple[str, str], list[tuple[Args, Holds]]] = {
    ("bench", "--json"): [(
        lambda w: [*bench_args(w), "--json", "--save", "from-json", "--store", str(w.tmp / "json-store")],
        lambda w, d: isinstance(d, dict) and d["state"] == "finished"
        and d["events"][0]["type"] == "SweepStarted")],
    ("bench", "--jsonl"): [(lambda w: [*bench_args(w), "--jsonl"],
                            lambda w, d: isinstance(d, list) and d[0]["type"] == "SweepStarted")],
    ("resume", "--json"): [(lambda w: ["resume", str(w.run_dir), "--json"],
                            lambda w, d: isinstance(d, dict) and d["run_dir"] == str(w.run_dir))],
    ("resume", "--jsonl"): [(lambda w: ["resume", str(w.run_dir), "--jsonl"],
                             lambda w, d: isinstance(d, list) and len(d) >= 1)],
    ("runs", "--json"): [(lambda w: ["runs", "--json"],
                          lambda w, d: isinstance(d, list) and str(w.run_dir) in [r["run_dir"] for r in d])],
    ("profiles export", "--format json"): [(
        lambda w: ["profiles", "--store", str(w.store), "export", "duel", "--format", "json"],
        lambda w, d: isinstance(d, dict) and d["name"] == "duel")],
    ("recommend", "--format json"): [
        (lambda w: ["recommend", str(w.run_dir / "journal.jsonl"), "--format", "json"],
         lambda w, d: isinstance(d, (dict, list))),
        (lambda w: ["recommend", str(w.realdata / TWO_MACHINES / "benchmarks.csv"), "--format", "json"],
         lambda w, d: isinstance(d, dict) and len(d["machines"]) == 2),
    ],
    ("race", "--json"): [(lambda w: ["race", "--build", f"cpu={w.cpu}", "--model", str(w.model),
                                     "--prompt", "Once upon a time", "-n", "4", "-t", "1", "--json"],
                          lambda w, d: isinstance(d, dict) and "cpu" in d["builds"])],
    ("check", "--json"): [(lambda w: [*check_args(w), "--json"],
                           lambda w, d: isinstance(d, dict) and d["reference"] == "cpu"
                           and sorted(b["build"] for b in d["builds"]) == ["cpu", "cpu-again"])],
    ("check", "--jsonl"): [(lambda w: [*check_args(w), "--jsonl"],
                            lambda w, d: isinstance(d, list) and len(d) == 2)],
    ("telemetry", "--json"): [(lambda w: ["telemetry", "--count", "2", "--interval", "0.05", "--json"],
                               lambda w, d: isinstance(d, dict) and len(d["ticks"]) == 2)],
    ("telemetry", "--jsonl"): [(lambda w: ["telemetry", "--count", "2", "--interval", "0.05", "--jsonl"],
                                lambda w, d: isinstance(d, list) and len(d) == 2)],
    ("builds", "--json"): [(lambda w: ["builds", "--no-search", "--build", f"cpu={w.cpu}", "--json"],
                            lambda w, d: isinstance(d, list) and [b["name"] for b in d] == ["cpu"])],
    ("models", "--json"): [(lambda w: ["models", str(w.model), "--json"],
                            lambda w, d: isinstance(d, list) and len(d) == 1)],
    ("serve-bench", "--json"): [(lambda w: [*serve_args(w), "--json"],
                                 lambda w, d: isinstance(d, dict) and "serving_verdicts" in d)],
    ("soak", "--json"): [(lambda w: ["soak", "--build", f"cpu={w.cpu}", "--model", str(w.model),
                                     "--duration", "4s", "--probe-every", "1", "--window", "2",
                                     "--slots", "1", "-c", "1024", "-n", "8", "-t", "1",
                                     "--journal", str(w.tmp / "soak" / "journal.jsonl"), "--json"],
                          lambda w, d: isinstance(d, dict) and d["reference"] == "cpu")],
}
RUNS = [(key, index) for key in sorted(CASES) for index in range(len(CASES[key]))]


@pytest.fixture(scope="module")
def world(cpu_bin, tiny_llama, realdata, tmp_path_factory) -> World:
    tmp = tmp_path_factory.mktemp("json")
    w = World(cpu=cpu_bin, model=tiny_llama, data=tmp / "data",
              store=tmp / "profiles", run_dir=tmp / "no run yet", tmp=tmp, realdata=realdata)
    done = w.run(*bench_args(w), "--json", "--save", "duel", "--store", str(w.store))
    assert done.returncode == 0, done.stderr
    return dataclasses.replace(w, run_dir=Path(json.loads(done.stdout)["run_dir"]))


def test_every_json_option_has_a_case():
    assert json_options(build_parser()) == set(CASES)


@pytest.mark.parametrize("case", RUNS, ids=lambda c: f"{c[0][0]} {c[0][1]} {c[1]}")
def test_json_output_is_one_document(world, case):
    (verb, option), index = case
    make_args, holds = CASES[verb, option][index]
    done = world.run(*make_args(world))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    if option == "--jsonl":
        lines = done.stdout.splitlines()
        document: object = [json.loads(line) for line in lines]
        assert len(lines) >= 1
    else:
        document = json.loads(done.stdout)  # the whole of stdout, one document
    assert holds(world, document), done.stdout[:2000]

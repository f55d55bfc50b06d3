"""A build compiled for a GPU backend whose backend finds no device runs on the CPU under a
GPU name. It is flagged by the probe, in ``builds`` (text and JSON), refused by every verb
that runs builds unless ``--allow-cpu-fallback``, and named in the verdict.

Real throughout: the Vulkan build (and the combined one) with a Vulkan loader pointed at a
driver file that does not exist finds no Vulkan device; with lavapipe visible it is a
Vulkan build like any other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backends.builds import clear_memory_cache, probe_build
from backends.builds.linked import backends_without_device, gpu_backends_built, needed_libraries

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
pytestmark = pytest.mark.toolchain

MISSING_DRIVER = "/nonexistent/vulkan-driver.json"
NO_DEVICE = {"VK_ICD_FILENAMES": MISSING_DRIVER, "VK_DRIVER_FILES": MISSING_DRIVER}
FLAG = "built for Vulkan but found no Vulkan device; it runs on the CPU"
VERDICT_LINE = "vulkan: built for Vulkan but found no Vulkan device; it ran on the CPU"


@pytest.fixture
def no_vulkan_device(monkeypatch):
    for key, value in NO_DEVICE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GGML_VK_VISIBLE_DEVICES", raising=False)
    clear_memory_cache()
    yield
    clear_memory_cache()


def cli(*args: str, data: Path, no_device: bool, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LLAMADUEL_DATA_DIR": str(data),
           "XDG_CACHE_HOME": str(data / "cache")}
    env.pop("GGML_VK_VISIBLE_DEVICES", None)
    if no_device:
        env.update(NO_DEVICE)
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


# --- what a build was compiled for ----------------------------------------------------------

def test_the_gpu_runtime_a_binary_links_names_its_backend(vulkan_bin, cpu_bin):
    # libggml-vulkan links the Vulkan loader itself: a llama-bench with ggml linked in
    # statically links it the same way, and is read the same way.
    linked = needed_libraries(vulkan_bin / "libggml-vulkan.so")
    assert "libvulkan.so.1" in linked
    assert gpu_backends_built(linked) == ("Vulkan",)
    assert gpu_backends_built(needed_libraries(cpu_bin / "llama-bench")) == ()
    assert gpu_backends_built(p.name for p in vulkan_bin.glob("libggml-*")) == ("Vulkan",)
    assert gpu_backends_built(p.name for p in cpu_bin.glob("libggml-*")) == ()
    assert needed_libraries(DATA / "tiny-cpu-vs-vulkan.jsonl") == ()  # not an ELF file


def test_a_build_with_any_gpu_device_or_no_gpu_backend_is_not_flagged(vulkan_bin):
    vulkan = probe_build(vulkan_bin, "vulkan", use_cache=False)
    assert backends_without_device(("Vulkan",), vulkan.devices) is None
    assert backends_without_device((), ()) is None
    assert backends_without_device(("CUDA", "Vulkan"), ()) == "CUDA,Vulkan"


# --- the probe ------------------------------------------------------------------------------

def test_the_vulkan_build_without_a_device_is_flagged(vulkan_bin, no_vulkan_device):
    build = probe_build(vulkan_bin, "vulkan", use_cache=False)
    assert build.runnable and build.devices == () and build.backend == "CPU"
    assert build.cpu_fallback == "Vulkan"
    assert build.fallback == FLAG
    assert build.contender_json()["cpu_fallback"] == "Vulkan"


def test_with_lavapipe_visible_the_builds_are_not_flagged(vulkan_bin, cpu_bin):
    build = probe_build(vulkan_bin, "vulkan", use_cache=False)
    assert build.devices and build.devices[0].name == "Vulkan0", build
    assert build.cpu_fallback is None and build.fallback is None
    assert "cpu_fallback" not in build.contender_json()
    assert probe_build(cpu_bin, "cpu", use_cache=False).cpu_fallback is None


# --- the command line -----------------------------------------------------------------------

def test_builds_flags_it_in_the_table_and_in_json(vulkan_bin, tmp_path):
    args = ("builds", "--no-search", "--build", f"vulkan={vulkan_bin}")
    table = cli(*args, data=tmp_path, no_device=True)
    assert table.returncode == 0, table.stderr
    assert f"FLAGGED: {FLAG}" in " ".join(table.stdout.split())
    (record,) = json.loads(cli(*args, "--json", data=tmp_path, no_device=True).stdout)
    assert record["cpu_fallback"] == "Vulkan" and record["flagged"] == FLAG

    seen = cli(*args, data=tmp_path, no_device=False)
    assert "FLAGGED" not in seen.stdout and "Vulkan0" in seen.stdout
    (record,) = json.loads(cli(*args, "--json", data=tmp_path, no_device=False).stdout)
    assert record["cpu_fallback"] is None and record["flagged"] is None


@pytest.mark.parametrize("verb", ["bench", "race", "check", "serve-bench"])
def test_every_verb_that_runs_builds_refuses_it_in_one_line(verb, cpu_bin, vulkan_bin,
                                                            tiny_llama, tmp_path):
    args = [verb, "--build", f"cpu={cpu_bin}", "--build", f"vulkan={vulkan_bin}",
            "--model", str(tiny_llama)]
    if verb == "race":
        args += ["--prompt", "Once upon a time"]
    done = cli(*args, data=tmp_path, no_device=True)
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line == (f"llamaduel: build 'vulkan' ({vulkan_bin}) was {FLAG}; refused "
                    "(--allow-cpu-fallback runs it anyway)")


def test_allowed_it_runs_and_the_verdict_says_it_ran_on_the_cpu(cpu_bin, vulkan_bin, tiny_llama,
                                                                tmp_path):
    store = tmp_path / "profiles"
    done = cli("bench", "--build", f"cpu={cpu_bin}", "--build", f"vulkan={vulkan_bin}",
               "--model", str(tiny_llama), "-p", "16", "-n", "4", "-d", "0", "-r", "2", "-t", "1",
               "--telemetry", "off", "--run-dir", str(tmp_path / "run"), "--save", "fallback",
               "--store", str(store), "--allow-cpu-fallback", "--json",
               data=tmp_path, no_device=True)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    started = run["events"][0]
    assert started["contenders"]["vulkan"]["cpu_fallback"] == "Vulkan"
    assert "cpu_fallback" not in started["contenders"]["cpu"]
    results = [e for e in run["events"] if e["type"] == "ResultReceived" and e["build"] == "vulkan"]
    assert results and all(r["result"]["raw"]["gpu_info"] == "" for r in results)

    journal = str(tmp_path / "run" / "journal.jsonl")
    recommended = cli("recommend", journal, data=tmp_path, no_device=False)
    assert f"- {VERDICT_LINE}" in recommended.stdout.splitlines()
    as_json = json.loads(cli("recommend", journal, "--format", "json", data=tmp_path,
                             no_device=False).stdout)
    documents = as_json if isinstance(as_json, list) else [as_json]
    assert any(VERDICT_LINE in json.dumps(d) for d in documents)
    shown = cli("profiles", "--store", str(store), "show", "fallback", data=tmp_path, no_device=False)
    assert f"- {VERDICT_LINE}" in shown.stdout.splitlines()

    # Going on with the run asks the same: refused, then allowed.
    refused = cli("resume", str(tmp_path / "run"), data=tmp_path, no_device=True)
    assert refused.returncode == 2 and "--allow-cpu-fallback" in refused.stderr
    allowed = cli("resume", str(tmp_path / "run"), "--allow-cpu-fallback", data=tmp_path, no_device=True)
    assert allowed.returncode == 0, allowed.stderr


def test_a_run_on_lavapipe_is_judged_as_vulkan_without_a_flag(tmp_path):
    # A recorded run of the CPU build against the Vulkan build on lavapipe.
    done = cli("recommend", str(DATA / "tiny-cpu-vs-vulkan.jsonl"), data=tmp_path, no_device=False)
    assert done.returncode == 0, done.stderr
    assert "found no" not in done.stdout and "vulkan" in done.stdout


def test_llama_bench_output_of_a_gpu_build_that_found_no_gpu_says_so(cpu_bin, vulkan_bin,
                                                                     tiny_llama, tmp_path):
    # ggml hides a CPU-type Vulkan device (lavapipe) unless it is asked for by index: the
    # Vulkan backend loads with no device, and llama-bench writes "backends": "Vulkan" and an
    # empty "gpu_info" into every result. Plain llama-bench output, read by recommend.
    env = {k: v for k, v in os.environ.items() if k != "GGML_VK_VISIBLE_DEVICES"}
    files = []
    for name, folder in (("cpu", cpu_bin), ("vulkan", vulkan_bin)):
        done = subprocess.run([str(folder / "llama-bench"), "-m", str(tiny_llama), "-p", "16",
                               "-n", "4", "-r", "2", "-t", "1", "-o", "jsonl"],
                              env=env, capture_output=True, text=True, timeout=300, check=True)
        files.append(tmp_path / f"{name}.jsonl")
        files[-1].write_text(done.stdout)
    raw = json.loads(files[1].read_text().splitlines()[0])
    assert raw["backends"] == "Vulkan" and raw["gpu_info"] == ""
    recommended = cli("recommend", *map(str, files), data=tmp_path, no_device=False)
    assert recommended.returncode == 0, recommended.stderr
    lines = [line for line in recommended.stdout.splitlines()
             if line.endswith("built for Vulkan but found no Vulkan device; it ran on the CPU")]
    assert len(lines) == 1 and "cpu" not in lines[0].lower().split(":")[0]

"""Exit codes a script can act on, from the real command line on the real CPU and Vulkan
builds: compared, a contender failing some points, one failing every point (a stand-in
build that prints garbage and exits 0), cancelled, bad input; and the one table every
verb's help and the README show."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from backends.builds import probe_build
from backends.journal.sweep import PointFailed
from backends.sweep import read_journal
from tui.cli import build_parser, exits

pytestmark = pytest.mark.toolchain

REPO = Path(__file__).resolve().parent.parent
GRID = ("-p", "32", "-n", "8", "-d", "0", "-r", "2", "-t", "1", "--telemetry", "off")


def llamaduel(*args: str, tmp: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLAMADUEL_DATA_DIR": str(tmp / "data"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=REPO, capture_output=True,
                          text=True, env=env, timeout=600, **kwargs)


def stand_in(folder: Path, real: Path, body: str) -> Path:
    """A build folder whose llama-bench answers the probe as the real one does and runs
    ``body`` (Python, with ``args`` and ``real``) for a benchmark."""
    folder.mkdir()
    script = folder / "llama-bench"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, os, subprocess, sys
        real = {str(real / 'llama-bench')!r}
        args = sys.argv[1:]
        if "-m" not in args:
            os.execv(real, [real, *args])
        """) + textwrap.dedent(body))
    script.chmod(0o755)
    return folder


GARBAGE = """\
sys.stdout.buffer.write(b"\\x00\\xff\\xfeGARBAGE \\x1b[31mnot a result\\n{half a line")
sys.stdout.flush()
sys.exit(0)
"""

# Runs the real llama-bench and drops the result lines of generation tests.
NO_TG = """\
child = subprocess.Popen([real, *args], stdout=subprocess.PIPE, text=True)
for line in child.stdout:
    if line.startswith("{") and json.loads(line).get("n_gen"):
        continue
    sys.stdout.write(line)
    sys.stdout.flush()
sys.exit(child.wait())
"""


@pytest.fixture(scope="module")
def cpu(cpu_bin):
    assert probe_build(cpu_bin, "cpu").problem is None
    return cpu_bin


@pytest.fixture(scope="module")
def builds(cpu, vulkan_bin):
    assert probe_build(vulkan_bin, "vulkan").problem is None
    return {"cpu": cpu, "vulkan": vulkan_bin}


def journal_of(stdout: str) -> Path:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("journal: "))
    return Path(line.removeprefix("journal: ").strip())


def test_cpu_against_vulkan_compares_with_0(builds, tiny_llama, tmp_path):
    done = llamaduel("bench", "--build", f"cpu={builds['cpu']}", "--build", f"vulkan={builds['vulkan']}",
                     "--model", str(tiny_llama), *GRID, "--save", "duel", "--store", str(tmp_path / "store"),
                     tmp=tmp_path)
    assert done.returncode == exits.COMPARED, done.stderr
    assert "| pp32 " in done.stdout and "| tg8 " in done.stdout
    taken = done.stdout.split("how these figures were taken:\n", 1)[1].splitlines()
    assert taken[0].startswith("- warm-up: ")
    assert taken[1] == ("- cool starts: none (thermal guard off: no telemetry attached); each block "
                        "started when the last one ended")
    shown = llamaduel("profiles", "--store", str(tmp_path / "store"), "show", "duel", tmp=tmp_path)
    assert shown.returncode == 0 and "\nhow these figures were taken:\n- warm-up: " in shown.stdout


def test_a_garbage_printing_contender_fails_every_point_with_4_and_says_what_happened(
        cpu, tiny_llama, tmp_path):
    builds = {"cpu": cpu}
    garbage = stand_in(tmp_path / "garbage", builds["cpu"], GARBAGE)
    done = llamaduel("bench", "--build", f"cpu={builds['cpu']}", "--build", f"garbage={garbage}",
                     "--model", str(tiny_llama), *GRID, tmp=tmp_path)
    assert done.returncode == exits.NO_COMPARISON, done.stderr
    failures = [e for e in read_journal(journal_of(done.stdout)) if isinstance(e, PointFailed)]
    assert {f.point.name for f in failures} == {"pp32", "tg8"}
    for failure in failures:
        assert failure.build == "garbage" and failure.exit_code == 0
        assert failure.reason.startswith("exited 0 without a result line; first bytes: "), failure.reason
        assert "GARBAGE" in failure.reason and "\\x1b" in failure.reason  # escaped, never raw
    assert "still running" not in done.stderr and "\x1b" not in done.stderr
    assert "garbage: 2 of 2 points failed (exited 0 without a result line" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_contender_failing_some_points_is_3(builds, tiny_llama, tmp_path):
    no_tg = stand_in(tmp_path / "no-tg", builds["vulkan"], NO_TG)
    done = llamaduel("bench", "--build", f"cpu={builds['cpu']}", "--build", f"no-tg={no_tg}",
                     "--model", str(tiny_llama), *GRID, "--granularity", "point", tmp=tmp_path)
    assert done.returncode == exits.PARTIAL, done.stderr
    assert "no-tg: 1 of 2 points failed (exited 0 without a result line" in done.stderr


def test_a_cancelled_run_is_130_and_a_bad_model_path_is_2(cpu, tiny_llama, tmp_path):
    builds = {"cpu": cpu}
    env = {**os.environ, "LLAMADUEL_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)}
    run = subprocess.Popen([sys.executable, "-m", "tui.cli", "bench", "--build", f"cpu={builds['cpu']}",
                            "--model", str(tiny_llama), "-p", "32", "-n", "64", "-d", "8192", "-r", "5",
                            "-t", "1", "--telemetry", "off", "--jsonl"],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert run.stdout is not None
    for line in run.stdout:
        if json.loads(line)["type"] == "PointStarted":
            break
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == exits.CANCELLED
    missing = llamaduel("bench", "--build", f"cpu={builds['cpu']}", "--model", str(tmp_path / "nope.gguf"),
                        *GRID, tmp=tmp_path)
    assert missing.returncode == exits.BAD_INPUT
    assert missing.stderr.strip().splitlines() == [f"llamaduel: model not found: {tmp_path / 'nope.gguf'}"]


def working_child(parent: int, name: str) -> psutil.Process:
    """``parent``'s child tool ``name`` once it runs, held there (SIGSTOP) so that a signal to
    ``parent`` finds it mid-run however fast the tiny model is."""
    for _ in range(30000):
        for child in psutil.Process(parent).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.name() == name:
                    child.suspend()
                    return child
    raise AssertionError(f"{name} never started")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize(("verb", "tool", "extra"), [
    ("race", "llama-completion", ["--prompt", "Once upon a time", "-t", "1"]),
    ("check", "llama-perplexity", ["-c", "64", "--chunks", "2"]),
    ("serve-bench", "llama-server", ["--concurrency", "1", "-p", "64", "-n", "4", "-t", "1"]),
])
def test_race_check_and_serve_bench_stop_on_sigterm_or_a_hang_up_as_on_ctrl_c(
        verb, tool, extra, signum, cpu, tiny_llama, tmp_path):
    env = {**os.environ, "LLAMADUEL_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)}
    run = subprocess.Popen([sys.executable, "-m", "tui.cli", verb, "--build", f"cpu={cpu}",
                            "--model", str(tiny_llama), *extra], cwd=REPO, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child = working_child(run.pid, tool)
    run.send_signal(signum)
    _, err = run.communicate(timeout=60)
    assert run.returncode == exits.CANCELLED, err
    assert err.strip().splitlines()[-1] == "llamaduel: interrupted" and "Traceback" not in err
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_one_table_in_every_help_and_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert exits.readme_table() in readme
    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"bench", "resume", "race", "check", "serve-bench", "profiles", "recommend"} <= set(verbs)
    for name, verb in verbs.items():
        text = verb.format_help()
        assert "exit codes:" in text, name
        for code, _ in exits.EXIT_CODES:
            assert f"\n  {code:>3}  " in text, (name, code)

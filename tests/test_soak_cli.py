"""``llamaduel soak`` as a user runs it: hung up half-way, resumed, summed up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from soak_helpers import summary_of

from backends.journal.journal import read_journal
from backends.soak import ProbeReference, SoakFinished, SoakStarted

pytestmark = pytest.mark.toolchain
REPO = Path(__file__).resolve().parent.parent


STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _stop_what_a_test_left():
    """A test that fails mid-way (a time-out) leaves no soak and no server behind: SIGTERM
    lets the CLI stop its servers, SIGKILL follows where it does not."""
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.terminate()
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def llamaduel(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "tui.cli", *args], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]
    STARTED.append(process)
    return process


def wait_for_line(path: Path, word: str, process: subprocess.Popen[str], limit_s: float = 300.0) -> None:
    """Until the journal holds ``word`` (or the process ended, or the limit passed)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and process.poll() is None:
        if path.is_file() and word in path.read_text(encoding="utf-8"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{word} never reached {path}; rc {process.poll()}")


def test_a_soak_hung_up_half_way_resumes_where_it_stopped(cpu_bin, tiny_llama, tmp_path):
    journal = tmp_path / "run" / "journal.jsonl"
    first = llamaduel("soak", "--build", f"cpu={cpu_bin}", "--model", str(tiny_llama),
                      "--duration", "20s", "--probe-every", "1", "--window", "2", "--slots", "1",
                      "-c", "1024", "-n", "16", "--journal", str(journal))
    wait_for_line(journal, '"SoakProbe"', first)
    first.send_signal(signal.SIGHUP)  # the SSH connection went away
    out, err = first.communicate(timeout=120)
    assert first.returncode == 130, err  # cancelled (tui.cli.exits)
    assert "soak cancelled" in err and "not finished" in out and "--resume" in out
    events = list(read_journal(journal))
    assert isinstance(events[-1], SoakFinished) and events[-1].cancelled
    stopped_at = events[-1].at_s
    assert 0 < stopped_at < 20

    second = llamaduel("soak", "--resume", str(journal.parent))
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert "soak resumed" in err and out.startswith("cpu: ") and "not finished" not in out
    events = list(read_journal(journal))
    starts = [e for e in events if isinstance(e, SoakStarted)]
    assert [s.resumed for s in starts] == [False, True] and starts[1].at_s >= stopped_at
    after = events[events.index(starts[1]):]
    assert not any(isinstance(e, ProbeReference) for e in after)  # the same reference answers
    assert isinstance(events[-1], SoakFinished) and events[-1].at_s >= 20
    summary = summary_of(journal)
    assert summary.parts == 2 and summary.finished and summary.builds[0].stable

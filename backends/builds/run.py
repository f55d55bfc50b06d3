"""Running a probe command: in its own process group, with a time-out, as one line on failure."""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from backends.builds.model import _MISSING_LIBRARY, BENCH, ELF_MACHINES
from backends.builds.parse import parse_flags

# --- running the probe -------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeRun:
    stdout: str
    stderr: str
    returncode: int | None  # None: timed out
    problem: str | None


def probe_outcome(what: str, out: str, err: str, code: int) -> ProbeRun:
    """A finished probe command: a crash (negative code: the signal) or a missing library
    is its problem."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return ProbeRun(out, err, code, f"{what} crashed ({name})")
    missing = _MISSING_LIBRARY.search(err) or _MISSING_LIBRARY.search(out)
    if missing:
        return ProbeRun(out, err, code, f"missing shared library {missing[1]} "
                                        f"(error while loading shared libraries)")
    return ProbeRun(out, err, code, None)


class ProbeHost(Protocol):
    """Where a probe runs its commands and looks for files: this machine, or another one
    over ssh (``backends.remote.probe``)."""

    environ: Mapping[str, str]  # the environment tools start with there, as far as known

    def run(self, argv: list[str], extra_env: Mapping[str, str], timeout: float) -> ProbeRun: ...
    def is_tool(self, path: Path) -> bool: ...
    def library_names(self, folder: Path) -> list[str]: ...


class LocalProbeHost:
    environ: Mapping[str, str] = os.environ

    def run(self, argv: list[str], extra_env: Mapping[str, str], timeout: float) -> ProbeRun:
        return _run(argv, {**os.environ, **extra_env}, timeout)

    def is_tool(self, path: Path) -> bool:
        return path.is_file() and os.access(path, os.X_OK)

    def library_names(self, folder: Path) -> list[str]:
        return sorted(p.name for p in folder.glob("libggml-*"))


LOCAL_PROBE = LocalProbeHost()


def _elf_machine(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return ELF_MACHINES.get(machine, f"machine type {machine:#x}")


def _exec_problem(path: Path, error: OSError) -> str:
    if error.errno == errno.ENOEXEC:
        machine = _elf_machine(path)
        here = platform.machine()
        if machine:
            return f"{path.name} is built for {machine}, this machine is {here} (exec format error)"
        return f"{path.name} is not a program this machine can run (exec format error)"
    if error.errno == errno.EACCES:
        return f"{path.name} is not executable (permission denied)"
    if error.errno == errno.ENOENT:
        return f"{path.name} is missing or its program loader is ({error.strerror})"
    return f"{path.name} could not start: {error.strerror or error}"


def _run(argv: list[str], env: Mapping[str, str], timeout: float) -> ProbeRun:
    """Run a probe command in its own process group; kill the group on time-out."""
    binary = Path(argv[0])
    what = " ".join([binary.name, *argv[1:]])
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(env), start_new_session=True,
        )
    except OSError as error:
        return ProbeRun("", "", None, _exec_problem(binary, error))
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.communicate()
        return ProbeRun("", "", None, f"{what} did not answer within {timeout:g} s (killed)")
    return probe_outcome(what, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"),
                         process.returncode)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _last_line(*texts: str) -> str:
    for text in texts:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1][:160]
    return "no output"


def find_bench(path: Path) -> Path | None:
    """``llama-bench`` in a folder (or its ``bin``), or the path itself if it names one.
    Another tool of the build (``llama-completion``) stands for its folder."""
    if path.name.startswith(BENCH) and (path.is_file() or path.is_symlink()):
        return path
    if path.is_file():
        path = path.parent
    for candidate in (path / BENCH, path / "bin" / BENCH, path / f"{BENCH}.exe"):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return None


def _find_completion(where: ProbeHost, folder: Path, env: Mapping[str, str],
                     timeout: float) -> Path | None:
    completion = folder / "llama-completion"
    if where.is_tool(completion):
        return completion
    # Before llama-completion existed, llama-cli was the plain completion tool; the newer
    # llama-cli is chat-only. The completion one lists the conversation switch.
    cli = folder / "llama-cli"
    if where.is_tool(cli):
        run = where.run([str(cli), "--help"], env, timeout)
        if run.problem is None and {"-no-cnv", "--no-conversation", "--prompt-cache"} & \
                parse_flags(run.stdout + "\n" + run.stderr):
            return cli
    return None


def _tool(where: ProbeHost, folder: Path, name: str) -> Path | None:
    path = folder / name
    return path if where.is_tool(path) else None



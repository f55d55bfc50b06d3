"""Contenders on other machines, through the system OpenSSH client and the user's own config.

``SshHost`` runs commands on one ssh destination (``user@host`` or a ``~/.ssh/config``
alias, with its jump hosts, keys and ports) in batch mode (never a password prompt). All
connections to a host share one master connection (ControlMaster) whose socket lives
under llamaduel's cache folder, so a test point costs a new channel, not a new handshake;
the master of this process is closed when it ends (``close_hosts``) and otherwise times
out by itself (ControlPersist). ``LLAMADUEL_SSH_CONFIG`` names a config file to use
instead of ``~/.ssh/config``.

``SshLauncher`` runs one llama.cpp tool on the host for the process driver
(``backends.tool``): ssh starts from an argument list here; on the host the tool runs in a
session and process group of its own (``setsid``), its environment passed as ``env K=V``
and every argument quoted. The wrapper reports the group's id as its first stderr line
and the tool's exit status as its last; both are taken out before anyone reads stderr.
When the tool is killed, times out or the connection drops, ``cleanup`` kills the remote
group from a second connection, so nothing is left running there.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import os
import re
import secrets
import shlex
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from backends.paths import cache_dir
from backends.text import printable
from backends.tool import Command, ToolProcess, run_tool

DEFAULT_CONNECT_TIMEOUT_S = 10
CONTROL_PERSIST_S = 60
START_SLACK_S = 20.0  # beyond the connect time-out, for the host to start the wrapper
CLEANUP_TIMEOUT_S = 15.0
CONNECTION_LOST = 255  # what ssh exits with when the connection fails or drops
# ssh appends 17 characters to ControlPath while creating the socket; a socket path must
# fit in sun_path (108 bytes on Linux, 104 on the BSDs).
SOCKET_PATH_MAX = 100 - 17
_MARK = "@@llamaduel"
_PID_LINE = re.compile(rf"^{_MARK} pid (\d+) (\d+)$")
_EXIT_LINE = re.compile(rf"^{_MARK} exit (\d+)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Runs on the host as ``sh -c WRAPPER TOKEN env K=V tool args``, leading its own process
# group (setsid): the group's id goes into a file named by TOKEN for the cleanup, which may
# come first (then a stop file is there and the tool never starts); the tool's pid and the
# group's go to stderr, then the tool's exit status.
_WRAPPER = """t="${TMPDIR:-/tmp}/$0"
echo "$$" > "$t.pid" || exit 125
if [ -e "$t.stop" ]; then rm -f "$t.pid" "$t.stop"; exit 125; fi
"$@" &
c=$!
printf 'MARK pid %s %s\\n' "$c" "$$" >&2
wait "$c"
rc=$?
rm -f "$t.pid"
printf 'MARK exit %s\\n' "$rc" >&2
exit "$rc"
""".replace("MARK", _MARK)
_SESSION = ('if command -v setsid >/dev/null 2>&1; then exec setsid -w sh -c "$0" "$@"; fi; '
            'exec sh -c "$0" "$@"')
# The cleanup before the wrapper said which group is its: stop it from starting, or kill it.
_STOP = ('t="${TMPDIR:-/tmp}/$0"; : > "$t.stop"; '
         'if [ -f "$t.pid" ]; then kill -s KILL -- "-$(cat "$t.pid")" 2>/dev/null; '
         'rm -f "$t.pid" "$t.stop"; fi')
# The cleanup of a known group ($1), if it is still the wrapper's.
_KILL = ('t="${TMPDIR:-/tmp}/$0"; if [ -f "$t.pid" ] && [ "$(cat "$t.pid")" = "$1" ]; then '
         'kill -s KILL -- "-$1" 2>/dev/null; fi; rm -f "$t.pid"')


class SshError(RuntimeError):
    """A host that cannot be used: one line for the user."""


class RemoteStartError(OSError):
    """The tool did not start on the host (the connection failed first)."""


@dataclass(frozen=True)
class SshResult:
    returncode: int | None  # None: it ran past its time-out and was killed
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def check_destination(text: str) -> str:
    """An ssh destination as given (``gpu2``, ``me@10.0.0.2``); ValueError when it cannot be one."""
    value = text.strip()
    if not value:
        raise ValueError("empty ssh destination")
    if value.startswith("-") or any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError(f"{printable(value)!r} is not an ssh destination")
    return value


def remote_path(path: str) -> str:
    """A path for the host's shell: quoted, with a leading ``~`` expanded there."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def shell_words(words: Sequence[str]) -> str:
    return " ".join(shlex.quote(word) for word in words)


def _control_dir() -> Path:
    """Where the master sockets live: under the cache folder, or a short private folder in
    /tmp when that path is too long for a socket."""
    preferred = cache_dir() / "ssh"
    folder = preferred if len(str(preferred)) + 1 + 24 <= SOCKET_PATH_MAX else (
        Path(tempfile.gettempdir()) / f"llamaduel-ssh-{os.getuid()}")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid != os.getuid():
        raise SshError(f"{folder} belongs to another user: not using it for ssh sockets")
    return folder


class SshHost:
    """One ssh destination and this process's master connection to it."""

    def __init__(self, destination: str, *, config_file: str | Path | None = None,
                 connect_timeout: float | None = None,
                 llamaduel: Sequence[str] | None = None, share: bool = True) -> None:
        self.destination = check_destination(destination)
        config = config_file or os.environ.get("LLAMADUEL_SSH_CONFIG") or None
        self.config_file = str(Path(config).expanduser()) if config else None
        self.connect_timeout = connect_timeout
        # How to run llamaduel there (None: ``llamaduel`` if the host has it).
        self.llamaduel = tuple(llamaduel) if llamaduel else None
        self.share = share  # False: a new connection (and handshake) for every command
        key = f"{self.destination}\0{self.config_file or ''}".encode()
        self._name = f"{hashlib.sha256(key).hexdigest()[:14]}-{os.getpid()}"
        self._control_path: Path | None = None
        self._settings: dict[str, str] | None = None
        self.machine: str | None = None  # the host's own name (uname -n), once connected

    def __repr__(self) -> str:
        return f"SshHost({self.destination!r})"

    @property
    def control_path(self) -> Path:
        if self._control_path is None:
            self._control_path = _control_dir() / self._name
        return self._control_path

    @property
    def timeout(self) -> float:
        """The connect time-out in force (the user's own, else ours)."""
        if self.connect_timeout is not None:
            return self.connect_timeout
        configured = self.settings().get("connecttimeout", "none")
        return float(configured) if configured.isdigit() else DEFAULT_CONNECT_TIMEOUT_S

    def settings(self) -> dict[str, str]:
        """The user's effective ssh settings for this destination (``ssh -G``, no network)."""
        if self._settings is None:
            argv = ["ssh", *self._config_args(), "-G", "--", self.destination]
            try:
                done = subprocess.run(argv, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
            except FileNotFoundError:
                raise SshError("no ssh client on this machine (install OpenSSH)") from None
            except subprocess.TimeoutExpired:
                raise SshError(f"ssh -G {self.destination} did not answer") from None
            if done.returncode != 0:
                why = _last_line(done.stderr.decode("utf-8", "replace"))
                raise SshError(f"ssh {self.destination}: {why}")
            pairs = (line.split(" ", 1) for line in done.stdout.decode("utf-8", "replace").splitlines())
            self._settings = {p[0].lower(): p[1] for p in pairs if len(p) == 2}
        return self._settings

    def _config_args(self) -> list[str]:
        return ["-F", self.config_file] if self.config_file else []

    def ssh_argv(self, remote_command: str, *, share: bool | None = None) -> list[str]:
        """ssh that runs ``remote_command`` (one string, for the host's shell) on the host."""
        argv = ["ssh", *self._config_args(), "-T", "-o", "BatchMode=yes"]
        if self.share if share is None else share:
            argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self.control_path}",
                     "-o", f"ControlPersist={CONTROL_PERSIST_S}"]
        else:
            argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        settings = self.settings()
        if self.connect_timeout is not None or settings.get("connecttimeout", "none") == "none":
            argv += ["-o", f"ConnectTimeout={max(1, round(self.timeout))}"]
        if settings.get("serveraliveinterval", "0") == "0":
            argv += ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        return [*argv, "--", self.destination, remote_command]

    def run_sync(self, remote_command: str, timeout: float, *, share: bool | None = None) -> SshResult:
        """Run a command on the host and wait (blocking); killed after ``timeout`` seconds."""
        process = subprocess.Popen(self.ssh_argv(remote_command, share=share), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)
        try:
            out, err = process.communicate(timeout=timeout + self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            return SshResult(None, out, err.decode("utf-8", "replace"))
        finally:
            if process.poll() is None:  # interrupted: never leave ssh behind
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return SshResult(process.returncode, out, err.decode("utf-8", "replace"))

    async def run(self, remote_command: str, timeout: float) -> SshResult:
        """Run a command on the host from the event loop."""
        out, err, finished = await run_tool(self.ssh_argv(remote_command), timeout=timeout + self.timeout)
        return SshResult(None if finished.timed_out else finished.returncode, out.encode(), err)

    def failure(self, result: SshResult) -> str:
        """One line for a command that ssh could not run on the host."""
        if result.returncode is None:
            return f"ssh {self.destination}: no answer within {self.timeout:g} s"
        return f"ssh {self.destination}: {_last_line(result.stderr) or f'exit code {result.returncode}'}"

    def connect(self) -> str:
        """Open (or check) the master connection; the host's name. SshError when it cannot."""
        result = self.run_sync("uname -n", timeout=15)
        if result.returncode != 0:
            raise SshError(self.failure(result))
        self.machine = result.text.strip() or self.destination
        return self.machine

    def close(self) -> None:
        """Close this process's master connection, if one is open."""
        if self._control_path is None or not self._control_path.exists():
            return
        argv = ["ssh", *self._config_args(), "-o", f"ControlPath={self._control_path}", "-O", "exit",
                "--", self.destination]
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(argv, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)


def _last_line(text: str) -> str:
    """ssh's message: the last line that is not a warning, else the last line."""
    lines = [printable(line.strip()) for line in text.splitlines() if line.strip()]
    telling = [line for line in lines if not line.lower().startswith("warning:")]
    chosen = telling or lines
    return chosen[-1][:200] if chosen else ""


_hosts: dict[tuple[str, str], SshHost] = {}
_hosts_lock = threading.Lock()


def ssh_host(destination: str) -> SshHost:
    """The shared ``SshHost`` of this process for a destination (one master per host)."""
    key = (destination, os.environ.get("LLAMADUEL_SSH_CONFIG", ""))
    with _hosts_lock:
        host = _hosts.get(key)
        if host is None:
            host = _hosts[key] = SshHost(destination)
        return host


def close_hosts() -> None:
    """Close every master connection this process opened."""
    with _hosts_lock:
        hosts = list(_hosts.values())
    for host in hosts:
        host.close()


atexit.register(close_hosts)


class SshLauncher:
    """Runs one tool process on ``host`` (make one launcher per process)."""

    def __init__(self, host: SshHost) -> None:
        self.ssh = host
        self.host: str | None = host.destination
        self.token: str | None = None
        self.pid: int | None = None  # the tool's pid on the host
        self.group: int | None = None  # its process group there
        self.exit_status: int | None = None
        self.never_started = False  # ssh ended before the host started the tool
        self.cleaned = False

    def command(self, argv: Sequence[str], env: Mapping[str, str] | None) -> Command:
        if self.token is not None:
            raise RuntimeError("an SshLauncher starts one process")
        self.token = f"llamaduel-{secrets.token_hex(8)}"
        assignments = []
        for name, value in (env or {}).items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            assignments.append(f"{name}={value}")
        remote = (f"exec sh -c {shlex.quote(_SESSION)} {shlex.quote(_WRAPPER)} "
                  f"{self.token} {shell_words(['env', *assignments, *argv])}")
        return self.ssh.ssh_argv(remote), None

    async def started(self, process: ToolProcess) -> int:
        """Wait for the wrapper's pid line; RemoteStartError when ssh ends first."""
        assert process.process is not None and process.process.stderr is not None
        stream = process.process.stderr
        try:
            async with asyncio.timeout(self.ssh.timeout + START_SLACK_S):
                while raw := await stream.readline():
                    text = raw.decode("utf-8", "replace").rstrip("\r\n")
                    match = _PID_LINE.match(text)
                    if match:
                        self.pid, self.group = int(match.group(1)), int(match.group(2))
                        return self.pid
                    process.remember(text)
                code = await process.process.wait()
        except TimeoutError:
            raise RemoteStartError(f"ssh {self.ssh.destination}: the tool did not start within "
                                   f"{self.ssh.timeout + START_SLACK_S:g} s") from None
        self.never_started = True
        tail = "\n".join(process.stderr_tail)
        raise RemoteStartError(self.ssh.failure(SshResult(code, b"", tail)))

    def stderr_line(self, process: ToolProcess, line: str) -> str | None:
        match = _EXIT_LINE.match(line)
        if match:
            self.exit_status = int(match.group(1))
            return None
        return line

    def exit_code(self, process: ToolProcess, code: int | None) -> int | None:
        """The tool's own exit (a signal as its negative number, as locally), from the
        wrapper's last line or else ssh's exit code; CONNECTION_LOST when ssh itself ended
        (255, or killed here) without the tool's exit status: the connection closed."""
        if self.exit_status is None and (code is None or code < 0 or code == CONNECTION_LOST):
            return None if code is None else CONNECTION_LOST
        status = self.exit_status if self.exit_status is not None else code
        assert status is not None
        if status > 128 and status - 128 in signal.valid_signals():
            return -(status - 128)
        return status

    async def cleanup(self, process: ToolProcess) -> None:
        """Kill the tool's process group on the host from a second connection."""
        code = process.process.returncode if process.process is not None else None
        ended = self.exit_status is not None or (code is not None and 0 <= code < CONNECTION_LOST)
        if self.cleaned or self.token is None or ended or self.never_started:
            return  # the tool ended there and said so: its group is gone
        self.cleaned = True
        if self.group is not None:
            command = f"exec sh -c {shlex.quote(_KILL)} {self.token} {self.group}"
        else:
            command = f"exec sh -c {shlex.quote(_STOP)} {self.token}"
        task = asyncio.ensure_future(self.ssh.run(command, timeout=CLEANUP_TIMEOUT_S))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.gather(task, return_exceptions=True)  # finish the kill, then go
            raise

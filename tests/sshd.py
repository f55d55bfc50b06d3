"""A real OpenSSH server on 127.0.0.1 for tests: throwaway host and user keys, its own
config, nothing of the system's changed (beyond the privilege separation folder sshd
needs, /run/sshd, which the package's service would create).

``SshServer.start()`` returns once sshd answers with its banner (a state, not a delay).
``client_config`` writes an ssh client config with aliases: ``box`` (the right key),
``badkey`` (a key the server does not know), ``silent`` (a port that accepts the TCP
connection but never says anything, so only ConnectTimeout ends the wait), ``closed`` (a
port nothing listens on) and ``blackhole`` (an address that should not answer).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
CONNECT_TIMEOUT_S = 2


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "llamaduel-test",
                    "-f", str(path)], check=True, stdin=subprocess.DEVNULL)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def banner(port: int, timeout: float = 1.0) -> bytes:
    """The first bytes the server at ``port`` sends (b"" when none)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            return conn.recv(64)
    except OSError:
        return b""


class SshServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / "sshd.log"

    def start(self, within: float = 30.0) -> SshServer:
        if not SSHD.exists():
            raise RuntimeError(f"{SSHD} is missing: install openssh-server "
                               "(python3 scripts/run_tests.py does)")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        folder = self.folder
        host_key = _keygen(folder / "host_key")
        self.user_key = _keygen(folder / "user_key")
        self.other_key = _keygen(folder / "other_key")
        shutil.copy(self.user_key.with_suffix(".pub"), folder / "authorized_keys")
        (folder / "known_hosts").write_text(
            f"[127.0.0.1]:{self.port} {' '.join(host_key.with_suffix('.pub').read_text().split()[:2])}\n")
        config = folder / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
            f"AuthorizedKeysFile {folder / 'authorized_keys'}", f"PidFile {folder / 'sshd.pid'}",
            "StrictModes no",  # the throwaway files live in a temporary folder
            "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password", "MaxSessions 50", "MaxStartups 50",
            "AcceptEnv TMPDIR", "LogLevel VERBOSE", "",
        ]))
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            start_new_session=True)
        deadline = time.monotonic() + within
        while not banner(self.port).startswith(b"SSH-"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sshd did not start: {self.log.read_text()[-500:]}")
            time.sleep(0.05)
        return self

    def client_config(self, silent_port: int) -> Path:
        """An ssh client config with the aliases ``box``, ``badkey``, ``silent``, ``closed``
        and ``blackhole``."""
        # The "host" keeps its temporary files (the wrapper's) in a folder of this server's.
        self.tmpdir = self.folder / "tmp"
        self.tmpdir.mkdir(exist_ok=True)
        common = ["  User root", "  IdentitiesOnly yes", "  BatchMode yes", f"  SetEnv TMPDIR={self.tmpdir}",
                  f"  UserKnownHostsFile {self.folder / 'known_hosts'}", "  StrictHostKeyChecking yes",
                  f"  ConnectTimeout {CONNECT_TIMEOUT_S}"]
        lines = ["Host box", "  HostName 127.0.0.1", f"  Port {self.port}",
                 f"  IdentityFile {self.user_key}", *common,
                 "Host badkey", "  HostName 127.0.0.1", f"  Port {self.port}",
                 f"  IdentityFile {self.other_key}", *common,
                 "Host silent", "  HostName 127.0.0.1", f"  Port {silent_port}",
                 f"  IdentityFile {self.user_key}", *common,
                 "Host closed", "  HostName 127.0.0.1", f"  Port {free_port()}",
                 f"  IdentityFile {self.user_key}", *common,
                 "Host blackhole", "  HostName 10.255.255.1", "  Port 22",
                 f"  IdentityFile {self.user_key}", *common, ""]
        path = self.folder / "ssh_config"
        path.write_text("\n".join(lines))
        return path

    def sessions(self) -> list[int]:
        """The per-connection sshd processes (not the listener)."""
        import psutil

        if self.process is None:
            return []
        try:
            listener = psutil.Process(self.process.pid)
            return [p.pid for p in listener.children(recursive=True) if p.name() == "sshd"]
        except psutil.Error:
            return []

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        for pid in self._session_pids(process.pid):
            _kill(pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _session_pids(self, pid: int) -> list[int]:
        import psutil

        try:
            return [p.pid for p in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class SilentPort:
    """A TCP port that accepts connections into its backlog and never answers."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.port = int(self.socket.getsockname()[1])

    def close(self) -> None:
        self.socket.close()

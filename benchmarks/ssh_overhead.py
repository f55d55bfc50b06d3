"""What running a contender on another host costs per test point, over a real sshd.

Starts the tests' throwaway sshd on 127.0.0.1 (tests/sshd.py) and times, with the shared
master connection (ControlMaster, what llamaduel uses) and with a new connection per
command (``SshHost(share=False)``):

* ``ssh HOST true``: one command's round trip;
* a tool through ``SshLauncher`` (wrapper, pid line, exit line), from start to reaped;
* the same over a simulated network: a relay here that delays every chunk by ``--delay-ms``
  each way (a LAN or VPN hop), where a new connection pays the key exchange's round trips;
* the same tool started locally, for the floor;
* with ``--bench BIN_DIR``: one real test point (llama-bench pp32, one repetition, on a
  tiny generated model) here and through ssh.

Every ssh session also pays for the remote user's shell start-up (``bash -c`` sources
``~/.bashrc`` under sshd); on the test machine root's ``.bashrc`` runs ``pyenv init``,
about 0.2 s of the figures here.

    python3 benchmarks/ssh_overhead.py [--runs 20] [--delay-ms 10] [--bench BIN_DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from sshd import SilentPort, SshServer  # noqa: E402

from backends.remote.ssh import SshHost, SshLauncher  # noqa: E402
from backends.tool import ToolProcess  # noqa: E402


async def relay(listen_port: int, target_port: int, delay_s: float) -> asyncio.Server:
    """A TCP relay that holds every chunk ``delay_s`` before passing it on, both ways."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        while data := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay_s, data))
        queue.put_nowait((time.monotonic() + delay_s, b""))
        await sender

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        with contextlib.suppress(asyncio.CancelledError):  # the relay closes with the run
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    return await asyncio.start_server(handle, "127.0.0.1", listen_port)


async def timed(runs: int, step: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """(median, min) milliseconds of ``step`` after one warm-up."""
    await step()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await step()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), min(times)


def point_argv(bench: Path | None, model: Path) -> list[str] | None:
    if bench is None:
        return None
    return [str(bench / "llama-bench"), "-m", str(model), "-p", "32", "-n", "0", "-r", "1", "-t", "1",
            "-o", "jsonl"]


async def run_point(argv: list[str], host: SshHost | None) -> None:
    process = ToolProcess(argv, launcher=SshLauncher(host)) if host else ToolProcess(argv)
    await process.start()
    out, _, _ = await process.communicate(120)
    assert process.returncode == 0 and '"avg_ts"' in out


async def measure(host: SshHost, runs: int, point: list[str] | None) -> dict[str, tuple[float, float]]:
    async def command() -> None:
        result = await host.run("true", timeout=30)
        assert result.returncode == 0, result.stderr

    async def tool() -> None:
        process = ToolProcess(["true"], launcher=SshLauncher(host))
        await process.start()
        await process.communicate(30)
        assert process.returncode == 0

    found = {"ssh HOST true": await timed(runs, command),
             "tool through SshLauncher": await timed(runs, tool)}
    if point is not None:
        found["llama-bench point"] = await timed(max(3, runs // 3), lambda: run_point(point, host))
    return found


async def main(runs: int, delay_ms: float, bench: Path | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="llamaduel-ssh-bench-"))
    if bench is not None:
        from backends.tooling.synth import write_tiny_llama

        write_tiny_llama(folder / "tiny.gguf")
    point = point_argv(bench, folder / "tiny.gguf")
    server = SshServer(folder).start()
    silent = SilentPort()
    config = server.client_config(silent.port)
    far_port = _free()
    config.write_text(config.read_text() + f"Host far\n  HostName 127.0.0.1\n  Port {far_port}\n"
                      f"  IdentityFile {server.user_key}\n  User root\n  IdentitiesOnly yes\n"
                      f"  UserKnownHostsFile {folder / 'known_hosts_far'}\n  StrictHostKeyChecking yes\n")
    key = (folder / "known_hosts").read_text().split(" ", 1)[1]
    (folder / "known_hosts_far").write_text(f"[127.0.0.1]:{far_port} {key}")
    os.environ["LLAMADUEL_SSH_CONFIG"] = str(config)
    proxy = await relay(far_port, server.port, delay_ms / 1000)
    rows: list[tuple[str, str, float, float]] = []
    try:
        local = await timed(runs, _local_true)
        rows.append(("this machine", "tool started locally", *local))
        if point is not None:
            here = await timed(max(3, runs // 3), lambda: run_point(point, None))
            rows.append(("this machine", "llama-bench point", *here))
        for alias, where in (("box", "127.0.0.1"), ("far", f"127.0.0.1 + {delay_ms:g} ms each way")):
            for share in (True, False):
                host = SshHost(alias, share=share)
                label = f"{where}, {'shared master' if share else 'new connection'}"
                for what, (median, best) in (await measure(host, runs, point)).items():
                    rows.append((label, what, median, best))
                host.close()
    finally:
        proxy.close()
        server.stop()
        silent.close()
    print(f"{'connection':<44} {'what':<26} {'median ms':>9} {'min ms':>7}")
    for label, what, median, best in rows:
        print(f"{label:<44} {what:<26} {median:>9.1f} {best:>7.1f}")


def _free() -> int:
    from sshd import free_port

    return free_port()


async def _local_true() -> None:
    process = ToolProcess(["true"])
    await process.start()
    await process.communicate(30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--delay-ms", type=float, default=10.0)
    parser.add_argument("--bench", type=Path, help="a llama.cpp build folder to time a real point")
    options = parser.parse_args()
    asyncio.run(main(options.runs, options.delay_ms, options.bench))

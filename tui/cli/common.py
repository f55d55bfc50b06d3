"""What the headless verbs share: loading builds and models, contender options, and
driving a run while printing its progress."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from backends.builds import BuildInfo
from backends.models import ModelInfo
from backends.text import printable
from tui.cli import CommandError

# What each verb module registers itself on (``register(subparsers)``).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
E = TypeVar("E")
T = TypeVar("T")


if TYPE_CHECKING:
    from backends.remote.rpc import LocalRpcServer


def load_builds(arguments: Sequence[str], needs: str | None = "bench",
                hosts: Sequence[str] = (), *, allow_cpu_fallback: bool = False) -> list[BuildInfo]:
    """Probe each ``--build NAME=PATH`` (or ``NAME=HOST:PATH``, or a NAME on a ``--host
    NAME=HOST``: a build on another machine, probed there over ssh); one-line CommandError
    for the first that cannot serve.

    ``needs`` names the tool the command runs: ``bench`` (llama-bench), ``completion``,
    ``perplexity`` or ``server``; None takes every build that exists, for commands that
    report a build's missing tool themselves. A build whose GPU backend found no device is
    refused unless ``allow_cpu_fallback``.
    """
    from backends.builds import probe_build
    from backends.remote.probe import parse_build_target

    if not arguments:
        raise CommandError("give at least one --build NAME=PATH")
    on_host = parse_hosts(hosts)
    builds = []
    for argument in arguments:
        try:
            name, host, raw = parse_build_target(argument, on_host)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if host is not None:
            build = _probe_remote(name, host, raw, needs)
        else:
            path = Path(raw)
            folder = path.parent if path.is_file() else path
            if not folder.is_dir():
                raise CommandError(f"build {name!r}: no such folder {folder}")
            build = probe_build(path, name)
        where = f"{host}:{raw}" if host else raw
        if needs == "bench" and build.problem:
            raise CommandError(f"build {name!r} ({where}): {build.problem}")
        if needs not in (None, "bench") and getattr(build, needs) is None:
            why = f" ({build.problem})" if build.problem else ""
            raise CommandError(f"build {name!r}: no llama-{needs} in {build.folder}{why}")
        if not allow_cpu_fallback:
            refuse_cpu_fallback(build, where)
        builds.append(build)
    if len({b.name for b in builds}) != len(builds):
        raise CommandError("each --build needs its own NAME")
    unknown = set(on_host) - {b.name for b in builds}
    if unknown:
        raise CommandError(f"--host {sorted(unknown)[0]}=...: no --build with that NAME")
    return builds


def refuse_cpu_fallback(build: BuildInfo, where: str | None = None) -> None:
    """One line for a build that would run on the CPU while its name says GPU."""
    if build.fallback:
        place = f" ({where})" if where else ""
        raise CommandError(f"build {build.name!r}{place} was {build.fallback}; refused "
                           "(--allow-cpu-fallback runs it anyway)")


def add_fallback_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-cpu-fallback", action="store_true",
                        help="run a build whose GPU backend found no device (it runs on the "
                        "CPU) instead of refusing it")


def parse_hosts(texts: Sequence[str]) -> dict[str, str]:
    """``--host NAME=user@host`` -> {NAME: destination}."""
    from backends.remote.ssh import check_destination

    hosts = {}
    for text in texts:
        name, sep, destination = text.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError(f"--host {text!r}: use --host NAME=HOST")
            hosts[name.strip()] = check_destination(destination)
        except ValueError as error:
            raise CommandError(str(error)) from None
    return hosts


def _probe_remote(name: str, host: str, path: str, needs: str | None) -> BuildInfo:
    from backends.remote.probe import probe_remote_build
    from backends.remote.ssh import SshError, ssh_host

    if needs != "bench":
        tool = f"llama-{needs}" if needs else "this command"
        raise CommandError(f"build {name!r} is on {host}: {tool} runs on this machine only")
    try:
        ssh_host(host).settings()
    except SshError as error:
        raise CommandError(str(error)) from None
    return probe_remote_build(host, path, name)


def load_model(path: Path) -> ModelInfo:
    from backends.models import read_model

    if not path.exists():
        raise CommandError(f"model not found: {path}")
    model = read_model(path)
    if model.problem:
        raise CommandError(f"{path.name}: {model.problem}")
    return model


def add_contender_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("contenders (a build with its devices and settings)")
    group.add_argument("--device", action="append", default=[], metavar="NAME=DEV[/DEV]",
                       help="llama.cpp devices for a contender (as --list-devices names them), "
                       "or none for the CPU only; a new NAME makes a contender of the only --build")
    group.add_argument("--rpc", action="append", default=[], metavar="NAME=HOST:PORT[,HOST:PORT]",
                       help="rpc-server endpoints a contender uses as devices")
    group.add_argument("--rpc-local", action="append", default=[], metavar="NAME=DEVICE",
                       help="start an rpc-server of NAME's build on this machine serving DEVICE "
                       "(e.g. CPU or Vulkan1), stopped with the sweep")
    group.add_argument("--set", action="append", default=[], metavar="NAME=ARGS",
                       help="llama-bench settings of one contender, e.g. 'row=-sm row -ts 1/1'")
    group.add_argument("--split", metavar="DEV/DEV[/...]",
                       help="the multi-GPU preset for identical cards: one card against all of "
                       "them by layer, row and tensor split, evenly and 3:1")


def make_contenders(builds: list[BuildInfo],
                    options: argparse.Namespace) -> tuple[list[BuildInfo], list[LocalRpcServer]]:
    """The contenders and the local RPC servers they need."""
    from backends.contenders import ContenderError, parse_device_arg, parse_rpc_arg, parse_set_arg, split_variants
    from backends.contenders import make_contenders as combine
    from backends.remote.rpc import LocalRpcServer

    try:
        devices = dict(parse_device_arg(t) for t in options.device)
        rpc = dict(parse_rpc_arg(t) for t in options.rpc)
        settings = dict(parse_set_arg(t) for t in options.set)
        if options.split:
            if len(builds) != 1:
                raise ContenderError("--split makes contenders of one --build: give exactly one")
            for name, (cards, own) in split_variants(builds[0], options.split.split("/")).items():
                devices.setdefault(name, cards)
                settings.setdefault(name, own)
        servers = []
        by_name = {b.name: b for b in builds}
        for text in options.rpc_local:
            name, _, device = text.partition("=")
            base = by_name.get(name) or (builds[0] if len(builds) == 1 else None)
            if base is None or not device:
                raise ContenderError(f"--rpc-local {text!r}: use NAME=DEVICE with NAME a contender")
            server = LocalRpcServer(base, device)
            servers.append(server)
            rpc[name] = (*rpc.get(name, ()), server.endpoint)
        return combine(builds, devices=devices, rpc=rpc, settings=settings), servers
    except ContenderError as error:
        raise CommandError(str(error)) from None


_transient_open = False


def say(text: str, transient: bool = False) -> None:
    """Progress on stderr; transient lines overwrite each other on a terminal."""
    global _transient_open
    stream = sys.stderr
    text = "\n".join(printable(line) for line in text.split("\n"))
    if stream.isatty():
        if _transient_open:
            stream.write("\r\033[K")
        stream.write(text if transient else text + "\n")
        _transient_open = transient
    elif not transient:
        stream.write(text + "\n")
    stream.flush()


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def cancelled_by_signals() -> Iterator[list[int]]:
    """Within it, Ctrl-C, SIGTERM and SIGHUP cancel the current task (through the event loop,
    also where SIGINT was inherited ignored); yields the signals caught."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    caught: list[int] = []

    def stop(signum: int) -> None:
        caught.append(signum)
        task.cancel()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop, signum)
    try:
        yield caught
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def cancellable(events: AsyncIterator[E], handle: Callable[[E], object]) -> bool:
    """Feed every event to ``handle``; Ctrl-C, SIGTERM and SIGHUP cancel the run (its
    children are killed by the runner). False when it was cancelled."""
    try:
        with cancelled_by_signals():
            async for event in events:
                handle(event)
    except asyncio.CancelledError:
        return False
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    return True


async def stoppable(work: Awaitable[T]) -> T:
    """Await a command's whole run; SIGTERM and a hang-up stop it as Ctrl-C does (one line
    and the cancelled exit, ``tui.cli.exits``), after its own clean-up killed its children."""
    try:
        with cancelled_by_signals() as caught:
            return await work
    except asyncio.CancelledError:
        if caught:
            raise KeyboardInterrupt from None  # the command line's "interrupted"
        raise

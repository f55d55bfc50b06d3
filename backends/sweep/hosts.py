"""Contenders on several machines: where each one's tools run, which machine measures
what at the same time, and failures that come from a dropped ssh connection."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import TypeVar

from backends.builds import BuildInfo
from backends.journal.sweep import PointFailed
from backends.models import ModelInfo
from backends.remote.rpc import describe_rpc_failure
from backends.remote.ssh import CONNECTION_LOST
from backends.sweep.argv import BenchBuild
from backends.sweep.plan import free_vram_bytes, resident_fits
from backends.sweep.spec import SweepSpec
from backends.tool import LOCAL, Launcher

T = TypeVar("T")
C = TypeVar("C", bound=BenchBuild)  # a contender: where it runs is its host


def launcher_for(contender: BenchBuild) -> Launcher:
    """Where a contender's tools run: here, or on its host over ssh (one launcher per process)."""
    if not contender.host:
        return LOCAL
    from backends.remote.ssh import SshLauncher, ssh_host

    return SshLauncher(ssh_host(contender.host))


def by_machine(turns: Iterable[tuple[C, T]]) -> list[list[tuple[C, T]]]:
    """The turns of a round split per host, each host's in their order: hosts share no GPU,
    so each takes its own turns while the others take theirs."""
    lanes: dict[str | None, list[tuple[C, T]]] = {}
    for contender, work in turns:
        lanes.setdefault(contender.host, []).append((contender, work))
    return list(lanes.values())


async def together(steps: Iterable[Awaitable[None]]) -> None:
    """Run ``steps`` at once; when one fails or this is cancelled, the others are cancelled
    and waited for (their own ``finally`` kills their processes)."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def machines_note(contenders: Mapping[str, Mapping[str, object]]) -> str | None:
    """A note when the contenders (as journalled) run on more than one machine."""
    machines = {data.get("machine") for data in contenders.values()}
    if len(machines) < 2:
        return None
    where = ", ".join(f"{name} on {data.get('machine')}" for name, data in contenders.items())
    return (f"the builds run on {len(machines)} machines ({where}): "
            "results compare machines as well as builds")


def connection_failure(contender: BenchBuild, failure: PointFailed) -> PointFailed | None:
    """The failure as "ssh: connection to HOST closed" when ssh lost the connection."""
    if contender.host and failure.exit_code == CONNECTION_LOST and not failure.timed_out:
        return dataclasses.replace(failure, reason=f"ssh: connection to {contender.host} closed")
    return None


def explain_failure(contender: BuildInfo, failure: PointFailed) -> PointFailed:
    """Name the ssh connection or RPC server that went away when a contender's point failed."""
    lost = connection_failure(contender, failure)
    if lost is not None or not contender.rpc:
        return lost or failure
    reason = describe_rpc_failure(contender.rpc, failure.reason)
    return failure if reason is None else dataclasses.replace(failure, reason=reason)


def remote_names(contenders: Sequence[BenchBuild]) -> list[str]:
    return [c.name for c in contenders if c.host]


async def cancel_all(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel ``tasks`` and wait until each has ended."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def resident_group_fits(group: Sequence[BuildInfo], parallel: bool, model: ModelInfo,
                        spec: SweepSpec) -> tuple[bool, str]:
    """Whether one paused llama-bench per contender can stay loaded for the whole sweep."""
    if remote := remote_names(group):
        return False, (f"{', '.join(remote)} on another host: a llama-bench there cannot be "
                       "paused between points (signals do not travel over ssh)")
    if parallel or len(group) < 2:
        return True, ""
    gpu = [c for c in group if any(d.free_mib for d in c.devices)]
    free = free_vram_bytes(d.free_mib for c in gpu for d in c.devices)
    return resident_fits(len(gpu), free, model, spec)

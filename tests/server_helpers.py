"""Shared helpers for the server duel tests: run a duel for real, check nothing is left."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from backends.journal.serve import ServerStarting
from backends.server import DuelSpec, ServedBuild, run_serve_duel
from backends.server.launch import port_free

VULKAN_ENV = {"GGML_VK_VISIBLE_DEVICES": "0"}


def cpu(cpu_bin: Path, name: str = "cpu", **kwargs: Any) -> ServedBuild:
    return ServedBuild(name, str(cpu_bin), **kwargs)


def vulkan(vulkan_bin: Path) -> ServedBuild:
    return ServedBuild("vulkan", str(vulkan_bin), env=dict(VULKAN_ENV), backend="vulkan")


def run_duel(contenders: Sequence[ServedBuild], model: Path, spec: DuelSpec, journal: Path, *,
             on_event: Callable[[Any], None] | None = None) -> list[Any]:
    """Every event of a real duel, in order; ``on_event`` sees each as it arrives."""

    async def collect() -> list[Any]:
        events: list[Any] = []
        stream = run_serve_duel(contenders, model, spec, journal_path=journal,
                                log_dir=journal.parent / "logs")
        async with contextlib.aclosing(stream) as duel:
            async for event in duel:
                events.append(event)
                if on_event is not None:
                    on_event(event)
        return events

    return asyncio.run(collect())


def of(events: Sequence[Any], kind: type, contender: str | None = None) -> list[Any]:
    return [e for e in events if isinstance(e, kind)
            and (contender is None or getattr(e, "contender", None) == contender)]


def group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` runs (a zombie waiting for its reaper does not)."""
    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def assert_nothing_left(events: Sequence[Any]) -> None:
    """No server's process group alive, no port still listening, no child of ours."""
    for started in of(events, ServerStarting):
        assert not group_alive(started.pid), f"{started.contender}'s server group is alive"
        assert port_free(started.port), f"port {started.port} still listens"
    assert not psutil.Process().children(recursive=True)

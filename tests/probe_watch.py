"""Watching for the quick timing probes' llama-bench processes: which ran, and how many at once.

``SpawnLog`` sees every process this Python process starts (the app runs in the test's own
event loop), so even a probe too short for any poll is counted. ``ProbeWatch`` looks at
another process's tree every few milliseconds, for an app running in a real terminal."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from tui.engine import PROBE_GEN, PROBE_PROMPT

LOOK_EVERY_S = 0.005


def is_probe(argv: list[str]) -> bool:
    """A probe's llama-bench: pp32 and tg8 in one process at depth 0 (no ``-d``); a sweep
    runs its prompts and generations as separate points, or a grid over its depths."""
    def value(flag: str) -> str | None:
        return argv[argv.index(flag) + 1] if flag in argv[:-1] else None

    return (bool(argv) and Path(argv[0]).name == "llama-bench" and "-d" not in argv
            and value("-p") == str(PROBE_PROMPT) and value("-n") == str(PROBE_GEN))


@dataclass
class Spawned:
    argv: list[str]
    started: float
    ended: float | None = None


class SpawnLog:
    """Every child started through asyncio while installed: its argv, when it was up and when
    the event loop saw it exit. Install with ``monkeypatch`` (``install``)."""

    def __init__(self) -> None:
        self.spawned: list[Spawned] = []
        self._waiters: set[asyncio.Task[None]] = set()

    def install(self, monkeypatch) -> SpawnLog:  # type: ignore[no-untyped-def]
        real = asyncio.create_subprocess_exec

        async def logged(*argv, **kwargs):  # type: ignore[no-untyped-def]
            process = await real(*argv, **kwargs)
            entry = Spawned([str(a) for a in argv], time.monotonic())
            self.spawned.append(entry)

            async def note_exit() -> None:
                await process.wait()
                entry.ended = time.monotonic()

            waiter = asyncio.get_running_loop().create_task(note_exit())
            self._waiters.add(waiter)
            waiter.add_done_callback(self._waiters.discard)
            return process

        monkeypatch.setattr(asyncio, "create_subprocess_exec", logged)
        return self

    def probes(self) -> list[Spawned]:
        return [s for s in self.spawned if is_probe(s.argv)]

    def probes_of(self, folder: Path) -> list[Spawned]:
        return [s for s in self.probes() if Path(s.argv[0]).resolve().parent == folder.resolve()]

    def most_probes_at_once(self) -> int:
        """The most probes up at one moment (one still running counts up to now)."""
        edges = sorted([(s.started, 1) for s in self.probes()]
                       + [(s.ended if s.ended is not None else time.monotonic(), -1)
                          for s in self.probes()], key=lambda edge: (edge[0], edge[1]))
        most = alive = 0
        for _, step in edges:
            alive += step
            most = max(most, alive)
        return most


class ProbeWatch:
    """Probe processes under ``root`` (a pid): each one's folder (which build), and the most
    that were alive (not ended, not stopped) at one look."""

    def __init__(self, root: int) -> None:
        self.root = psutil.Process(root)
        self.seen: dict[int, Path] = {}  # pid -> the folder of its llama-bench
        self.most_at_once = 0
        self.looks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ProbeWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def probes_of(self, folder: Path) -> list[int]:
        return [pid for pid, where in self.seen.items() if where == folder.resolve()]

    def _watch(self) -> None:
        while not self._stop.wait(LOOK_EVERY_S):
            alive = 0
            try:
                children = self.root.children(recursive=True)
            except psutil.Error:
                return  # the watched program has ended
            for process in children:
                try:
                    if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_STOPPED):
                        continue
                    argv = process.cmdline()
                except psutil.Error:
                    continue
                if is_probe(argv):
                    alive += 1
                    self.seen.setdefault(process.pid, Path(argv[0]).resolve().parent)
            self.most_at_once = max(self.most_at_once, alive)
            self.looks += 1

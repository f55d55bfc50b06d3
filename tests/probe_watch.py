"""Watching a process tree for the quick timing probes' llama-bench processes, from a thread
that looks every few milliseconds: which ran, and how many at once."""

from __future__ import annotations

import threading
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

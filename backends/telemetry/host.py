"""The host: system CPU and RAM, and the CPU and RSS of the watched benchmark process tree.

One ``psutil.Process`` is kept per process for the whole run, because ``cpu_percent`` is
measured between two calls on the same object (the first call on a new object says 0.0).
Descendants are found through ``/proc/<pid>/task/<tid>/children`` where the kernel has it
(cheap), every ``TREE_REFRESH_S`` seconds; otherwise psutil walks all of /proc (several
milliseconds), so that is done only every ``SLOW_TREE_REFRESH_S`` seconds.
"""

from __future__ import annotations

import os
import time
from typing import Iterable

from backends.telemetry.model import HostSample

SOURCE_NAME = "host"
TREE_REFRESH_S = 2.0
SLOW_TREE_REFRESH_S = 10.0
MIN_CPU_WINDOW_S = 0.05


class HostSampler:
    name = SOURCE_NAME

    def __init__(self, proc_root: str = "/proc") -> None:
        self.proc_root = proc_root
        self.unavailable_reason: str | None = None
        try:
            import psutil
        except ImportError:
            self._psutil = None
            self.unavailable_reason = "psutil is not installed"
            return
        self._psutil = psutil
        self.cpu_count = psutil.cpu_count() or os.cpu_count() or 1
        psutil.cpu_percent(None)  # start the system-wide interval
        self._cpu_started_at = time.monotonic()
        self._roots: dict[int, object] = {}
        self._tree: dict[int, object] = {}
        self._tree_read_at = -SLOW_TREE_REFRESH_S
        self._children_files: bool | None = None  # does this kernel list children per task?

    @property
    def available(self) -> bool:
        return self._psutil is not None

    def watch(self, pids: Iterable[int]) -> None:
        """Follow these processes and their descendants from now on."""
        if self._psutil is None:
            return
        for pid in pids:
            if pid in self._roots:
                continue
            try:
                process = self._psutil.Process(pid)
                process.cpu_percent(None)
            except self._psutil.Error:
                continue  # already gone
            self._roots[pid] = process
            self._tree[pid] = process
        self._tree_read_at = -SLOW_TREE_REFRESH_S  # pick up children at the next tick

    def unwatch_all(self) -> None:
        self._roots.clear()
        self._tree.clear()

    def tree_pids(self) -> tuple[int, ...]:
        """The live watched processes and their descendants (refreshed every few seconds)."""
        if self._psutil is None or not self._roots:
            return ()
        now = time.monotonic()
        every = TREE_REFRESH_S if self._children_files is not False else SLOW_TREE_REFRESH_S
        if now - self._tree_read_at >= every:
            self._tree_read_at = now
            self._refresh_tree()
        return tuple(self._tree)

    def _descendants(self, root: object) -> list[int] | None:
        """Descendant pids from the kernel's per-task children lists; None if it has none."""
        if self._children_files is False:
            return None
        found: list[int] = []
        pending = [root.pid]
        while pending:
            pid = pending.pop()
            task_dir = os.path.join(self.proc_root, str(pid), "task")
            try:
                tasks = os.listdir(task_dir)
            except OSError:
                continue  # exited meanwhile
            for task in tasks:
                try:
                    with open(os.path.join(task_dir, task, "children"), "rb") as handle:
                        children = [int(c) for c in handle.read().split()]
                except FileNotFoundError:
                    if self._children_files is None and pid == root.pid:
                        self._children_files = False
                        return None
                    continue
                except (OSError, ValueError):
                    continue
                self._children_files = True
                found.extend(children)
                pending.extend(children)
        return found

    def _refresh_tree(self) -> None:
        psutil = self._psutil
        alive: dict[int, object] = {}
        for pid, root in list(self._roots.items()):
            try:
                if not root.is_running():
                    raise psutil.NoSuchProcess(pid)
                children = self._descendants(root)
                if children is None:
                    children = [c.pid for c in root.children(recursive=True)]
            except psutil.Error:
                self._roots.pop(pid, None)
                continue
            alive[pid] = root
            for child_pid in children:
                if child_pid in self._tree:
                    alive[child_pid] = self._tree[child_pid]  # keep its cpu_percent history
                    continue
                try:
                    child = psutil.Process(child_pid)
                    child.cpu_percent(None)
                except psutil.Error:
                    continue
                alive[child_pid] = child
        self._tree = alive

    def sample(self, at: float | None = None) -> HostSample:
        at = time.time() if at is None else at
        psutil = self._psutil
        if psutil is None:
            reason = self.unavailable_reason or "psutil is not installed"
            return HostSample(at=at, cpu_count=os.cpu_count() or 1,
                              missing={k: reason for k in (
                                  "cpu_percent", "process_cpu_percent", "process_rss_bytes",
                                  "ram_used_bytes", "ram_total_bytes")})
        missing: dict[str, str] = {}
        memory = psutil.virtual_memory()
        cpu = psutil.cpu_percent(None)
        if self._cpu_started_at is not None:
            if time.monotonic() - self._cpu_started_at < MIN_CPU_WINDOW_S:
                cpu = None  # a percentage over a few microseconds says nothing
                missing["cpu_percent"] = "CPU use needs a second tick"
            self._cpu_started_at = None
        process_cpu = rss = None
        pids = self.tree_pids()
        if not self._roots:
            reason = "no benchmark process watched"
            missing["process_cpu_percent"] = missing["process_rss_bytes"] = reason
        else:
            process_cpu, rss = 0.0, 0
            gone = []
            for pid, process in self._tree.items():
                try:
                    with process.oneshot():
                        if process.status() == psutil.STATUS_ZOMBIE:
                            gone.append(pid)  # exited, waiting to be reaped
                            continue
                        process_cpu += process.cpu_percent(None)
                        rss += process.memory_info().rss
                except psutil.Error:
                    gone.append(pid)
            for pid in gone:
                self._tree.pop(pid, None)
                self._roots.pop(pid, None)
            if not self._tree:
                process_cpu = rss = None
                reason = "the watched processes have exited"
                missing["process_cpu_percent"] = missing["process_rss_bytes"] = reason
            pids = tuple(self._tree)
        return HostSample(
            at=at,
            cpu_count=self.cpu_count,
            cpu_percent=cpu,
            process_cpu_percent=process_cpu,
            process_rss_bytes=rss,
            ram_used_bytes=int(memory.total - memory.available),
            ram_total_bytes=int(memory.total),
            watched_pids=pids,
            missing=missing,
        )

    def close(self) -> None:
        if self._psutil is not None:
            self.unwatch_all()

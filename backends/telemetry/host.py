"""The host: system CPU and RAM, and the CPU and RSS of the watched benchmark process tree.

One ``psutil.Process`` is kept per process for the whole run, because ``cpu_percent`` is
measured between two calls on the same object (the first call on a new object says 0.0).
Descendants are found through ``/proc/<pid>/task/<tid>/children`` where the kernel has it
(cheap), every ``TREE_REFRESH_S`` seconds; otherwise psutil walks all of /proc (several
milliseconds), so that is done only every ``SLOW_TREE_REFRESH_S`` seconds.

System-wide CPU and RAM come straight from ``<proc>/stat`` and ``<proc>/meminfo``, kept open
and re-read with ``pread`` (psutil's calls cost several times more on sandboxed kernels);
where those files are absent (not Linux) psutil answers instead, with the same definitions.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from backends.telemetry.model import HostSample

SOURCE_NAME = "host"
TREE_REFRESH_S = 2.0
SLOW_TREE_REFRESH_S = 10.0
MIN_CPU_WINDOW_S = 0.05
PROC_READ_BYTES = 8192  # /proc/stat's first line and meminfo's first lines fit easily
# /proc/stat "cpu" columns: user nice system idle iowait irq softirq steal guest guest_nice
_IDLE, _IOWAIT, _GUEST, _GUEST_NICE = 3, 4, 8, 9


def _open_proc_file(path: str) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        os.pread(fd, 1, 0)
    except OSError:
        os.close(fd)
        return None
    return fd


def parse_cpu_ticks(stat: bytes) -> tuple[int, ...]:
    """The aggregate ``cpu`` line of /proc/stat as ticks (at most the ten columns psutil uses)."""
    line = stat.split(b"\n", 1)[0].split()
    if not line or line[0] != b"cpu":
        raise ValueError("no aggregate cpu line")
    return tuple(int(value) for value in line[1:11])


def cpu_busy_percent(before: tuple[int, ...], after: tuple[int, ...]) -> float:
    """Busy share of all CPU time between two readings, exactly as psutil.cpu_percent computes
    it on Linux: guest time is already inside user/nice, iowait counts as idle, a counter that
    went backwards counts as zero, rounded to 0.1."""
    deltas = [max(0, b - a) for a, b in zip(before, after)]
    total = sum(deltas) - sum(deltas[i] for i in (_GUEST, _GUEST_NICE) if i < len(deltas))
    busy = total - sum(deltas[i] for i in (_IDLE, _IOWAIT) if i < len(deltas))
    if total <= 0:
        return 0.0
    return round(busy / total * 100, 1)


def parse_meminfo(meminfo: bytes) -> tuple[int, int] | None:
    """(used, total) bytes with used = MemTotal - MemAvailable, as psutil's ``total -
    available``; None when MemAvailable is missing or 0 (psutil then estimates it)."""
    wanted = {b"MemTotal:": 0, b"MemFree:": 0, b"MemAvailable:": 0}
    found = 0
    for line in meminfo.splitlines():
        key, _, rest = line.partition(b" ")
        if key in wanted:
            wanted[key] = int(rest.split()[0]) * 1024
            found += 1
            if found == len(wanted):
                break
    total, free, available = wanted[b"MemTotal:"], wanted[b"MemFree:"], wanted[b"MemAvailable:"]
    if not total or not available:
        return None
    if available > total:
        available = free  # a container showing the host's numbers; psutil does the same
    return total - available, total


class _Memory(Protocol):
    @property
    def rss(self) -> int: ...


class _Process(Protocol):
    """What is used of a psutil.Process (psutil ships no type information)."""

    @property
    def pid(self) -> int: ...

    def cpu_percent(self, interval: float | None) -> float: ...

    def memory_info(self) -> _Memory: ...

    def status(self) -> str: ...

    def children(self, recursive: bool = False) -> list[_Process]: ...

    def oneshot(self) -> AbstractContextManager[None]: ...


class HostSampler:
    name = SOURCE_NAME

    def __init__(self, proc_root: str = "/proc") -> None:
        self.proc_root = proc_root
        self.unavailable_reason: str | None = None
        self._psutil: Any = None  # psutil ships no type information
        try:
            psutil = importlib.import_module("psutil")
        except ImportError:
            self.unavailable_reason = "psutil is not installed"
            return
        self._psutil = psutil
        self.cpu_count = psutil.cpu_count() or os.cpu_count() or 1
        self._stat_fd = _open_proc_file(os.path.join(proc_root, "stat"))
        self._meminfo_fd = _open_proc_file(os.path.join(proc_root, "meminfo"))
        self._cpu_ticks = self._read_cpu_ticks()
        if self._cpu_ticks is None:
            psutil.cpu_percent(None)  # start the system-wide interval
        self._cpu_started_at: float | None = time.monotonic()
        self._roots: dict[int, _Process] = {}
        self._tree: dict[int, _Process] = {}
        self._tree_read_at = -SLOW_TREE_REFRESH_S
        self._children_files: bool | None = None  # does this kernel list children per task?

    def _read_cpu_ticks(self) -> tuple[int, ...] | None:
        if self._stat_fd is None:
            return None
        try:
            return parse_cpu_ticks(os.pread(self._stat_fd, PROC_READ_BYTES, 0))
        except (OSError, ValueError):
            return None

    def _system_cpu_percent(self) -> float:
        ticks = self._read_cpu_ticks()
        if ticks is None or self._cpu_ticks is None or len(ticks) != len(self._cpu_ticks):
            self._cpu_ticks = ticks
            return float(self._psutil.cpu_percent(None))
        before, self._cpu_ticks = self._cpu_ticks, ticks
        return cpu_busy_percent(before, ticks)

    def _system_memory(self) -> tuple[int, int]:
        """(used, total) bytes of RAM."""
        if self._meminfo_fd is not None:
            try:
                memory = parse_meminfo(os.pread(self._meminfo_fd, PROC_READ_BYTES, 0))
            except (OSError, ValueError, IndexError):
                memory = None
            if memory is not None:
                return memory
        memory = self._psutil.virtual_memory()
        return int(memory.total - memory.available), int(memory.total)

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

    def _descendants(self, root: _Process) -> list[int] | None:
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
        alive: dict[int, _Process] = {}
        for pid, root in list(self._roots.items()):
            try:
                # No is_running() here (it builds a second Process, ~50 µs): a root that has
                # exited lists no children, and the next sample drops it; psutil's children()
                # checks for a reused pid itself.
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
        ram_used, ram_total = self._system_memory()
        cpu: float | None = self._system_cpu_percent()
        if self._cpu_started_at is not None:
            if time.monotonic() - self._cpu_started_at < MIN_CPU_WINDOW_S:
                cpu = None  # a percentage over a few microseconds says nothing
                missing["cpu_percent"] = "CPU use needs a second tick"
            self._cpu_started_at = None
        process_cpu: float | None = None
        rss: int | None = None
        pids = self.tree_pids()
        if not self._roots:
            reason = "no benchmark process watched"
            missing["process_cpu_percent"] = missing["process_rss_bytes"] = reason
        else:
            cpu_total, rss_total = 0.0, 0
            gone = []
            for pid, process in self._tree.items():
                try:
                    with process.oneshot():
                        if process.status() == psutil.STATUS_ZOMBIE:
                            gone.append(pid)  # exited, waiting to be reaped
                            continue
                        cpu_total += process.cpu_percent(None)
                        rss_total += process.memory_info().rss
                except psutil.Error:
                    gone.append(pid)
            for pid in gone:
                self._tree.pop(pid, None)
                self._roots.pop(pid, None)
            if self._tree:
                process_cpu, rss = cpu_total, rss_total
            else:
                reason = "the watched processes have exited"
                missing["process_cpu_percent"] = missing["process_rss_bytes"] = reason
            pids = tuple(self._tree)
        return HostSample(
            at=at,
            cpu_count=self.cpu_count,
            cpu_percent=cpu,
            process_cpu_percent=process_cpu,
            process_rss_bytes=rss,
            ram_used_bytes=ram_used,
            ram_total_bytes=ram_total,
            watched_pids=pids,
            missing=missing,
        )

    def close(self) -> None:
        if self._psutil is not None:
            self.unwatch_all()
        for fd in (getattr(self, "_stat_fd", None), getattr(self, "_meminfo_fd", None)):
            if fd is not None:
                os.close(fd)
        self._stat_fd = self._meminfo_fd = None

    def __del__(self) -> None:
        for fd in (getattr(self, "_stat_fd", None), getattr(self, "_meminfo_fd", None)):
            if fd is not None:
                os.close(fd)

"""VRAM held by given processes, per GPU: ROCm's KFD files, then DRM fdinfo."""

from __future__ import annotations

import os
from collections.abc import Sequence

from backends.telemetry.sysfs_read import (
    ReadFailure,
    normalize_pci,
    read_bytes,
    read_int,
    read_text,
)

# (bytes per PCI address, reason per address where unknown, reason for all devices)
ProcessVramReading = tuple[dict[str, int], dict[str, str], str | None]


class ProcessVram:
    """VRAM held by given processes, per PCI address: ROCm's KFD files, then DRM fdinfo.

    fdinfo is scanned in full only when a process's set of open files changes; otherwise
    only the DRM file descriptors found last time are read again.
    """

    def __init__(self, root: str = "/", proc_root: str = "/proc") -> None:
        self.root = root
        self.proc_root = proc_root
        self._kfd_proc = os.path.join(root, "sys/class/kfd/kfd/proc")
        self._kfd_gpu_ids: dict[int, str] | None = None
        # pid -> (fd names seen, fd names that are DRM clients)
        self._fd_cache: dict[int, tuple[frozenset[str], tuple[str, ...]]] = {}

    def kfd_gpu_ids(self) -> dict[int, str]:
        """KFD gpu_id -> PCI address, from the KFD topology (location_id = bus<<8 | devfn)."""
        if self._kfd_gpu_ids is None:
            self._kfd_gpu_ids = {}
            nodes = os.path.join(self.root, "sys/class/kfd/kfd/topology/nodes")
            try:
                entries = os.listdir(nodes)
            except OSError:
                entries = []
            for node in entries:
                try:
                    gpu_id = read_int(os.path.join(nodes, node, "gpu_id"))
                    props = read_text(os.path.join(nodes, node, "properties"))
                except ReadFailure:
                    continue
                if not gpu_id:
                    continue  # CPU node
                fields = dict(line.split(None, 1) for line in props.splitlines() if " " in line)
                try:
                    location = int(fields["location_id"])
                    domain = int(fields.get("domain", "0"))
                except (KeyError, ValueError):
                    continue
                bus, devfn = location >> 8, location & 0xFF
                self._kfd_gpu_ids[gpu_id] = f"{domain:04x}:{bus:02x}:{devfn >> 3:02x}.{devfn & 7}"
        return self._kfd_gpu_ids

    def sample(self, pids: Sequence[int]) -> tuple[dict[str, int], dict[str, str], str | None]:
        """(bytes per PCI address, reason per address where unknown, reason for all devices).

        A device with neither a total nor a reason holds none of these processes' VRAM:
        their open files show no client on it (a measured zero).
        """
        totals: dict[str, int] = {}
        reasons: dict[str, str] = {}
        general: str | None = None
        kfd_seen: set[str] = set()
        gpu_ids = self.kfd_gpu_ids()
        for pid in pids:
            folder = os.path.join(self._kfd_proc, str(pid))
            if not gpu_ids or not os.path.isdir(folder):
                continue
            for gpu_id, pci in gpu_ids.items():
                path = os.path.join(folder, f"vram_{gpu_id}")
                if not os.path.exists(path):
                    continue
                try:
                    totals[pci] = totals.get(pci, 0) + read_int(path)
                    kfd_seen.add(pci)
                except ReadFailure as failure:
                    reasons[pci] = str(failure)

        fd_totals: dict[str, int] = {}
        for pid in pids:
            result = self._fdinfo(pid)
            if result is None:
                continue  # exited: holds nothing any more
            if isinstance(result, str):
                general = general or result
                continue
            for pci, (amount, has_memory_keys) in result.items():
                if not has_memory_keys:
                    reasons.setdefault(pci, "this kernel's DRM fdinfo has no drm-memory-vram "
                                            "(needs Linux 6.x)")
                    continue
                fd_totals[pci] = fd_totals.get(pci, 0) + amount
        for pci, amount in fd_totals.items():
            if pci not in kfd_seen:  # ROCm: KFD counts its own allocations; prefer it
                totals[pci] = totals.get(pci, 0) + amount
        return totals, reasons, general

    def _fdinfo(self, pid: int) -> dict[str, tuple[int, bool]] | str | None:
        """VRAM per device of one process's DRM clients; a reason string; None if it exited."""
        folder = os.path.join(self.proc_root, str(pid), "fdinfo")
        try:
            names = frozenset(os.listdir(folder))
        except FileNotFoundError:
            self._fd_cache.pop(pid, None)
            return None
        except PermissionError:
            return f"no permission to read {folder}"
        except OSError as error:
            return f"cannot list {folder}: {error.strerror or error}"
        cached = self._fd_cache.get(pid)
        scan = cached[1] if cached and cached[0] == names else tuple(sorted(names))
        clients: dict[tuple[str, str], tuple[int, bool]] = {}
        drm_fds = []
        for name in scan:
            try:
                text = read_bytes(os.path.join(folder, name)).decode("ascii", "replace")
            except ReadFailure:
                continue
            if "drm-" not in text:
                continue
            parsed = _parse_drm_fdinfo(text)
            if parsed is None:
                continue
            drm_fds.append(name)
            pdev, client, amount, has_keys = parsed
            # Duplicated descriptors share one DRM client: count each client once.
            clients[(pdev, client or name)] = (amount, has_keys)
        self._fd_cache[pid] = (names, tuple(drm_fds))
        per_device: dict[str, tuple[int, bool]] = {}
        for (pdev, _), (amount, has_keys) in clients.items():
            total, keys = per_device.get(pdev, (0, True))
            per_device[pdev] = (total + amount, keys and has_keys)
        return per_device


_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3}


def _parse_drm_fdinfo(text: str) -> tuple[str, str, int, bool] | None:
    """(pdev, client id, vram bytes, whether vram keys were present) or None if not DRM."""
    pdev = client = None
    amount = 0
    has_keys = False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "drm-pdev":
            pdev = normalize_pci(value)
        elif key == "drm-client-id":
            client = value
        elif key in ("drm-memory-vram", "drm-total-vram"):
            if has_keys and key == "drm-total-vram":
                continue  # same memory, newer name: count once
            number, _, unit = value.partition(" ")
            try:
                amount = int(number) * _UNITS.get(unit.strip().lower(), 1)
                has_keys = True
            except ValueError:
                continue
    if pdev is None:
        return None
    return pdev, client or "", amount, has_keys

"""One build's soak: its llama-server under the mixed load, probed, watched and restarted.

The server serves until the soak's end, a crash (the process exits) or a hang (a request
or probe with no token for the hang limit); after a crash or a hang it is killed and
started again and the soak goes on. Only counters of the current window live in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from backends.journal.soak import (
    ProbeReference,
    SoakBuild,
    SoakCrashed,
    SoakEvent,
    SoakHang,
    SoakHttpError,
    SoakProbe,
    SoakServerUp,
    SoakStartFailed,
    SoakWindow,
    SoakWrongAnswer,
)
from backends.server.client import Failure
from backends.server.launch import ServedBuild, ServerProcess, StartFailure, launch
from backends.soak import probes
from backends.soak.load import Slot, Window, send, tokens_per_word
from backends.soak.spec import SoakSpec
from backends.soak.wire import Connection
from backends.telemetry.process_vram import ProcessVram

Put = Callable[[SoakEvent], Awaitable[None]]
START_ATTEMPTS = 3  # failed starts in a row before a build is given up
EXIT_GRACE_S = 3.0  # a lost connection waits this long to see whether the server exited


class Clock:
    """The soak's own clock: seconds soaked, carried on across a resume. It stands still
    until ``start`` (the reference answers are not part of the soak's time)."""

    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s
        self.started: float | None = None

    def now(self) -> float:
        if self.started is None:
            return self.offset_s
        return self.offset_s + time.monotonic() - self.started

    def start(self) -> None:
        self.started = time.monotonic()


def contender(build: SoakBuild) -> ServedBuild:
    return ServedBuild(build.name, build.folder, env=dict(build.env), backend=build.backend)


def memory(pid: int, vram: ProcessVram) -> tuple[int | None, int | None]:
    """Resident host memory of the server and its children; VRAM where the driver tells."""
    try:
        root = psutil.Process(pid)
        group = [root, *root.children(recursive=True)]
        rss = sum(p.memory_info().rss for p in group)
    except psutil.Error:
        return None, None
    found, _, _ = vram.sample([p.pid for p in group])
    return rss, (sum(found.values()) if found else None)


@dataclass
class BuildSoak:
    build: SoakBuild
    model: str
    spec: SoakSpec
    refs: Mapping[int, ProbeReference]
    clock: Clock
    put: Put
    log_dir: Path | None = None
    window: Window = field(default_factory=Window)
    probes_sent: int = 0
    starts: int = 0
    vram: ProcessVram = field(default_factory=ProcessVram)
    server: ServerProcess | None = None  # the one serving now, for a kill on the way out

    def left_s(self) -> float:
        return self.spec.duration_s - self.clock.now()

    async def run(self) -> None:
        failed_starts = 0
        restart = False
        while self.left_s() > 0:
            server = await self.start(restart)
            if isinstance(server, StartFailure):
                failed_starts += 1
                if failed_starts >= START_ATTEMPTS:
                    return  # each failed start was journalled: the summary says the build gave up
                await asyncio.sleep(min(5.0 * failed_starts, max(0.0, self.left_s())))
                continue
            failed_starts = 0
            self.server = server
            try:
                restart = await self.serve(server)
                await self.flush_window(server.pid)  # while its memory can still be read
            finally:
                await server.stop()
                self.server = None

    async def start(self, restart: bool) -> ServerProcess | StartFailure:
        self.starts += 1
        log = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = self.log_dir / f"{self.build.name}-{self.starts:03d}.log"
        started = await launch(contender(self.build), self.model, self.spec.settings,
                               slots=self.spec.server_slots, ctx_size=self.spec.server_ctx,
                               deadline_s=self.spec.start_timeout_s, log_path=log)
        if isinstance(started, StartFailure):
            await self.put(SoakStartFailed(self.build.name, started.reason, self.clock.now()))
            return started
        server, load_s = started
        await self.put(SoakServerUp(self.build.name, server.pid, server.port, load_s, restart,
                                    self.clock.now()))
        return server

    async def serve(self, server: ServerProcess) -> bool:
        """Serve until the end (False) or a crash or a hang (True: start again)."""
        hang: asyncio.Future[SoakHang] = asyncio.get_running_loop().create_future()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=None) as client:
            ratio = await self._ratio(client)
            tasks = [asyncio.create_task(self.slot_loop(client, server, n, ratio, hang))
                     for n in range(self.spec.slots)]
            tasks += [asyncio.create_task(self.probe_loop(client, server, hang)),
                      asyncio.create_task(self.window_loop(server))]
            exited = asyncio.create_task(server.process.wait())
            waiters: list[asyncio.Future[Any]] = [exited, hang]
            try:
                await asyncio.wait(waiters, timeout=max(0.0, self.left_s()),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (*tasks, exited):
                    task.cancel()
                await asyncio.gather(*tasks, exited, return_exceptions=True)
        if hang.done():
            await self.put(hang.result())
            return True
        if not server.alive:
            await server.stop()  # reaps it and reads the last of its log
            failure = server.failure("llama-server exited while serving")
            await self.put(SoakCrashed(self.build.name, failure.reason, failure.exit_code,
                                       failure.signal, failure.log_tail, self.clock.now()))
            return True
        return False

    async def _ratio(self, client: httpx.AsyncClient) -> float:
        try:
            return await tokens_per_word(client)
        except (httpx.HTTPError, KeyError, ValueError):
            return 4.0  # a cautious guess: prompts stay short rather than overflow

    def _hung(self, hang: asyncio.Future[SoakHang], reason: str, what: str) -> None:
        if not hang.done():
            hang.set_result(SoakHang(self.build.name, reason, what, self.clock.now()))

    async def _exited(self, server: ServerProcess) -> bool:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(server.process.wait()), EXIT_GRACE_S)
        return not server.alive

    async def slot_loop(self, client: httpx.AsyncClient, server: ServerProcess, number: int,
                        ratio: float, hang: asyncio.Future[SoakHang]) -> None:
        slot = Slot(self.spec.seed * 1000 + self.starts * 10 + number, self.spec.slot_ctx,
                    self.spec.n_gen, ratio, self.spec.idle_s)
        connection = Connection(client.base_url.host, server.port)
        try:
            await self._load(server, slot, connection, number, hang)
        finally:
            connection.close()

    async def _load(self, server: ServerProcess, slot: Slot, connection: Connection, number: int,
                    hang: asyncio.Future[SoakHang]) -> None:
        while not _cancelling():
            work = slot.next_request()
            if isinstance(work, float):
                await asyncio.sleep(work)
                continue
            result = await send(connection, work, self.spec.n_gen, self.spec.hang_s, number)
            if isinstance(result, Failure):
                if result.stalled:
                    self._hung(hang, result.reason, "request")
                    return
                if await self._exited(server):
                    return  # a crash: the supervisor journals it once
                await self.put(SoakHttpError(self.build.name, result.reason, self.clock.now()))
            self.window.add(result)

    async def window_loop(self, server: ServerProcess) -> None:
        while True:
            await asyncio.sleep(self.spec.window_s)
            await self.flush_window(server.pid)

    async def flush_window(self, pid: int) -> None:
        taken = self.window.take()
        rss, vram = memory(pid, self.vram)
        await self.put(SoakWindow(self.build.name, self.spec.window_s, taken.requests,
                                  taken.errors, taken.tokens, round(taken.gen_s, 4), rss, vram,
                                  self.clock.now()))

    async def probe_loop(self, client: httpx.AsyncClient, server: ServerProcess,
                         hang: asyncio.Future[SoakHang]) -> None:
        order = sorted(self.refs)
        while order and not _cancelling():
            ref = self.refs[order[self.probes_sent % len(order)]]
            self.probes_sent += 1
            try:
                await self.probe(client, ref)
            except probes.ProbeFailed as failed:
                if failed.hang:
                    self._hung(hang, failed.reason, "probe")
                    return
                if await self._exited(server):
                    return
                await self.put(SoakHttpError(self.build.name, f"probe: {failed.reason}",
                                             self.clock.now()))
            await asyncio.sleep(self.spec.probe_every_s)

    async def probe(self, client: httpx.AsyncClient, ref: ProbeReference) -> None:
        spec = self.spec
        got = await probes.answer(client, ref.prompt_ids, len(ref.answer_ids), spec.n_probs,
                                  spec.seed, spec.hang_s, slot=spec.slots)
        # Up to and at the first difference both answers followed the same tokens; after
        # it, the build is fed the reference's tokens one position at a time.
        start = min(probes.first_difference(ref.answer_ids, got.ids) + 1, len(got.ids))
        picks, tops = list(got.ids[:start]), list(got.tops[:start])
        for position in range(start, len(ref.answer_ids)):
            forced = await probes.answer(client, (*ref.prompt_ids, *ref.answer_ids[:position]), 1,
                                         spec.n_probs, spec.seed, spec.hang_s, slot=spec.slots)
            picks.append(forced.ids[0] if forced.ids else -1)
            tops.append(forced.tops[0] if forced.tops else probes.Distribution((), ()))
        ref_tops = [probes.Distribution(i, lp) for i, lp in zip(ref.top_ids, ref.top_logprobs)]
        kld, top1 = probes.compare(ref.answer_ids, ref_tops, picks, tops)
        ok = kld <= spec.thresholds.max_mean_kld and top1 >= spec.thresholds.min_top1_agreement
        finite: float | None = kld
        await self.put(SoakProbe(self.build.name, ref.probe, ref.depth, finite, top1,
                                 len(got.ids), ok, self.clock.now()))
        if not ok:
            reason = probe_reason(finite, top1, spec)
            await self.put(SoakWrongAnswer(self.build.name, ref.probe, ref.depth, ref.prompt,
                                           got.text, ref.answer, ref.build, reason, finite, top1,
                                           self.clock.now()))


def _cancelling() -> bool:
    """Whether this task was asked to stop: a loop that must end with its soak checks it too,
    in case a library call took the cancel and returned normally."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def probe_reason(kld: float | None, top1: float, spec: SoakSpec) -> str:
    limits = spec.thresholds
    parts = []
    if kld is None:
        parts.append("no token probabilities to compare")
    elif kld > limits.max_mean_kld:
        parts.append(f"mean KLD {kld:.3g} > {limits.max_mean_kld:g}")
    if top1 < limits.min_top1_agreement:
        parts.append(f"top-1 agreement {top1 * 100:.1f}% < {limits.min_top1_agreement * 100:g}%")
    return "; ".join(parts)

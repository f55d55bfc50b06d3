"""Run a soak: the reference answers first, then every build served at once until the end.

    async with contextlib.aclosing(run_soak(builds, model, spec)) as events:
        async for event in events: ...

Every event is journalled (``journal.jsonl`` in the run folder, the servers' logs beside
it) before it is yielded. Closing the iterator stops every server; ``resume_soak`` goes
on from a journal for the time that was left, with the same reference answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from backends import paths, procs
from backends.correctness import REFERENCE_PREFERENCE
from backends.journal.soak import (
    ProbeReference,
    SoakBuild,
    SoakEvent,
    SoakFinished,
    SoakStarted,
)
from backends.server.launch import StartFailure, launch
from backends.soak import probes
from backends.soak.build import BuildSoak, Clock, Put, contender
from backends.soak.spec import SoakError, SoakSpec

if TYPE_CHECKING:
    from backends.journal.journal import Journal


def choose_reference(builds: Sequence[SoakBuild], name: str | None) -> SoakBuild:
    """The named build, else the most trusted backend (CPU first), the user's order on ties."""
    if name is not None:
        for build in builds:
            if build.name == name:
                return build
        raise SoakError(f"reference {name!r} is not among the builds "
                        f"({', '.join(b.name for b in builds)})")

    def rank(build: SoakBuild) -> int:
        backend = build.backend.lower()
        return next((n for n, word in enumerate(REFERENCE_PREFERENCE) if word in backend),
                    len(REFERENCE_PREFERENCE))

    return min(builds, key=rank)


def check(builds: Sequence[SoakBuild], model: str, spec: SoakSpec) -> None:
    if not builds:
        raise SoakError("no builds: give at least one --build NAME=PATH")
    names = [b.name for b in builds]
    if len(set(names)) != len(names):
        raise SoakError("each build needs its own name")
    if problem := spec.problem():
        raise SoakError(problem)
    if not Path(model).is_file():
        raise SoakError(f"model file not found: {model}")
    for build in builds:
        if contender(build).server_path() is None:
            raise SoakError(f"build {build.name!r}: no llama-server in {build.folder}")


async def _tokenize(client: httpx.AsyncClient, text: str, special: bool) -> list[int]:
    response = await client.post("/tokenize", json={"content": text, "add_special": special})
    response.raise_for_status()
    return [int(t) for t in response.json()["tokens"]]


async def take_references(build: SoakBuild, model: str, spec: SoakSpec,
                          put: Put) -> dict[int, ProbeReference] | str:
    """The reference build's answer to every probe (journalled), or why it gave none."""
    started = await launch(contender(build), model, spec.settings, slots=spec.server_slots,
                           ctx_size=spec.server_ctx, deadline_s=spec.start_timeout_s)
    if isinstance(started, StartFailure):
        return f"the reference build {build.name} did not start: {started.reason}"
    server, _ = started
    refs: dict[int, ProbeReference] = {}
    limit = spec.slot_ctx - spec.probe_tokens - 16
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=spec.hang_s) as client:
            for prompt in probes.probe_prompts(len(probes.QUESTIONS), spec.slot_ctx, spec.probe_tokens):
                question = await _tokenize(client, prompt.question, False)
                ids = await _tokenize(client, prompt.text, True)
                if len(ids) > limit:  # a deep filler cut to the slot, the question kept whole
                    ids = ids[:limit - len(question)] + question
                got = await probes.answer(client, ids, spec.probe_tokens, spec.n_probs, spec.seed,
                                          spec.hang_s, slot=spec.slots)
                ref = ProbeReference(
                    prompt.index, len(ids) - len(question), prompt.text, tuple(ids), got.ids,
                    got.text, tuple(t.ids for t in got.tops), tuple(t.logprobs for t in got.tops),
                    build.name, 0.0)  # before the soak's clock starts
                refs[ref.probe] = ref
                await put(ref)
    except (probes.ProbeFailed, httpx.HTTPError, KeyError, ValueError) as error:
        return f"the reference build {build.name} could not answer the probes: {error}"
    finally:
        await server.stop()
    return refs


def _open_journal(model: str, journal_path: str | Path | None) -> Journal:
    from backends.journal.journal import JournalError, open_run_journal

    try:
        return open_run_journal(paths.runs_root(), "soak", model, journal_path)
    except JournalError as error:
        raise SoakError(str(error)) from None


async def run_soak(builds: Sequence[SoakBuild], model: str | Path, spec: SoakSpec, *,
                   reference: str | None = None, journal_path: str | Path | None = None,
                   ) -> AsyncGenerator[SoakEvent, None]:
    """A new soak's events as they happen (SoakError before it starts when it cannot run)."""
    model = str(model)
    check(builds, model, spec)
    ref = choose_reference(builds, reference)
    journal = _open_journal(model, journal_path)
    started = SoakStarted(tuple(builds), model, ref.name, spec.to_settings(), str(journal.path),
                          False, 0.0, time.time())
    async for event in _soak(journal, started, spec, {}):
        yield event


async def resume_soak(run: str | Path) -> AsyncGenerator[SoakEvent, None]:
    """Go on with the soak journalled at ``run`` (its folder or journal) for the time left."""
    from backends.journal.journal import JOURNAL_NAME, read_journal

    path = Path(run)
    path = path / JOURNAL_NAME if path.is_dir() else path
    if not path.is_file():
        raise SoakError(f"no soak journal at {run}")
    events = list(read_journal(path))
    first = next((e for e in events if isinstance(e, SoakStarted)), None)
    if first is None:
        raise SoakError(f"{path} is not a soak's journal")
    spec = SoakSpec.from_settings(first.settings)
    soaked = max((float(getattr(e, "at_s", 0.0)) for e in events), default=0.0)
    if soaked >= spec.duration_s:
        raise SoakError(f"the soak in {path.parent} already ran its {spec.duration_s:g} s")
    check(first.builds, first.model, spec)
    refs = {e.probe: e for e in events if isinstance(e, ProbeReference)}
    journal = _open_journal(first.model, path)
    started = SoakStarted(first.builds, first.model, first.reference, first.settings,
                          str(journal.path), True, soaked, time.time())
    async for event in _soak(journal, started, spec, refs):
        yield event


@dataclass(frozen=True)
class Unfinished:
    """A soak that stopped with time left: where its journal is, how far it got."""

    journal: Path
    soaked_s: float
    duration_s: float
    builds: tuple[str, ...]


def last_unfinished(root: Path | None = None) -> Unfinished | None:
    """The newest soak under ``root`` (default: the data folder's runs) when it stopped with
    time left: cancelled, or cut off before it could journal its end (a hang-up, a kill).
    None when the newest soak finished (or stopped on a problem), or there is none."""
    from backends.journal.journal import JOURNAL_NAME, read_journal

    root = root or paths.runs_root()
    if not root.is_dir():
        return None
    for folder in sorted((d for d in root.iterdir() if "-soak-" in d.name), reverse=True):
        journal = folder / JOURNAL_NAME
        try:
            events = list(read_journal(journal))
        except OSError:
            continue
        first = next((e for e in events if isinstance(e, SoakStarted)), None)
        if first is None:
            continue
        last = events[-1]
        duration = float(first.settings.get("duration_s") or 0.0)
        soaked = max((float(getattr(e, "at_s", 0.0)) for e in events), default=0.0)
        ended = isinstance(last, SoakFinished) and not last.cancelled
        if ended or soaked >= duration:
            return None
        return Unfinished(journal, soaked, duration, tuple(b.name for b in first.builds))
    return None


async def _soak(journal: Journal, started: SoakStarted, spec: SoakSpec,
                refs: dict[int, ProbeReference]) -> AsyncGenerator[SoakEvent, None]:
    queue: asyncio.Queue[SoakEvent | None] = asyncio.Queue()
    clock = Clock(started.at_s)

    async def put(event: SoakEvent) -> None:
        journal.append(event)
        queue.put_nowait(event)

    soaks = [BuildSoak(b, started.model, spec, refs, clock, put, Path(journal.path).parent / "logs")
             for b in started.builds]
    problem: list[str] = []
    producer = asyncio.create_task(_produce(started, spec, refs, clock, put, soaks, problem, queue))
    cancelled = True
    try:
        while (event := await queue.get()) is not None:
            yield event
        await producer
        cancelled = False
    finally:
        if not producer.done():
            producer.cancel()
        for soak in soaks:
            if soak.server is not None:
                procs.kill_group(soak.server.process)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await producer
        finished = SoakFinished(cancelled, problem[0] if problem else None, clock.now())
        journal.append(finished)
        journal.close()
    yield finished


async def _produce(started: SoakStarted, spec: SoakSpec, refs: dict[int, ProbeReference],
                   clock: Clock, put: Put, soaks: list[BuildSoak], problem: list[str],
                   queue: asyncio.Queue[SoakEvent | None]) -> None:
    try:
        await put(started)
        if not refs:
            ref_build = next(b for b in started.builds if b.name == started.reference)
            taken = await take_references(ref_build, started.model, spec, put)
            if isinstance(taken, str):
                problem.append(taken)
                return
            refs.update(taken)
        clock.start()
        await asyncio.gather(*(soak.run() for soak in soaks))
    finally:
        queue.put_nowait(None)

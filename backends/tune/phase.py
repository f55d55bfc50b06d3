"""The tune phase: each contender's candidates measured on the probe, halved round by round.

It runs inside a sweep (``backends.sweep.runner``) after the start, so the telemetry, the
thermal guard and the pause switch are the sweep's, and every event goes into the sweep's
journal first. Contenders take turns per probe (A B, B A), each within its equal share of
the budget. Each probe is one llama-bench process (``backends.sweep.bench.run_chunk``) that
runs a pass's candidates one after the other, when they differ only in ``-ub`` (llama-bench
takes a list and keeps the model loaded: one start per pass instead of one per candidate).
Cancelling kills it; a crash or out-of-memory ends only that candidate (the ones after it
run again in a process of their own).

After the choice, the contenders whose choice is not their defaults are also measured at
their defaults, at the sweep's own points of its middle depth, so the verdict can say what
the defaults would have called.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any, Protocol

from backends.builds import BuildInfo
from backends.journal.sweep import PointFailed, ResultReceived, SweepNote, TestPoint
from backends.journal.tune import (
    Candidate,
    Phase,
    ProbeFailed,
    ProbeFinished,
    ProbeMeasured,
    TuneChosen,
    TuneFinished,
    TuneGrid,
    TuneRound,
    TuneShareMoved,
    TuneSpec,
    TuneStarted,
)
from backends.models import ModelInfo
from backends.sweep.bench import WARMUP_REPETITIONS, BenchContext, Block, run_chunk
from backends.sweep.plan import TimeoutPolicy
from backends.sweep.spec import SweepSpec
from backends.tune.candidates import make_grid
from backends.tune.estimate import BUDGET_SLACK
from backends.tune.grid import defaults_points, probe_points
from backends.tune.judging import against_text
from backends.tune.search import FIRST_ROUND_REPETITIONS, NOTHING_TO_PROBE, Probe, Search, scores_by_label
from backends.tune.settings import merged, with_candidate


class TuneHost(Protocol):
    """What the tune phase needs from the sweep it runs in (``backends.sweep.runner.Sweep``)."""

    contenders: list[BuildInfo]
    model: ModelInfo
    spec: SweepSpec
    ctx: BenchContext
    history: tuple[Any, ...]

    def emit(self, event: Any) -> None: ...
    async def before_block(self, contender: BuildInfo, point: TestPoint) -> None: ...


class _Budgeted:
    """The sweep's time-outs for a process of ``shared`` candidates (each as much work as
    one), cut to what is left of a contender's share."""

    def __init__(self, policy: TimeoutPolicy, limit: float | None, shared: int = 1) -> None:
        self.policy, self.limit, self.cut, self.shared = policy, limit, False, max(shared, 1)

    def seconds(self, name: str, points: Sequence[TestPoint], asked: int, fixed: float | None) -> float:
        usual = self.policy.seconds(name, points, asked, fixed) * self.shared
        if self.limit is not None and self.limit < usual:
            self.cut = True
            return self.limit
        return usual

    def observe(self, name: str, points: Sequence[TestPoint], asked: int, seconds: float) -> None:
        self.policy.observe(name, points, asked, seconds / self.shared)


def _with_probe(contender: BuildInfo, probe: Probe) -> BuildInfo:
    """The contender with the probe's settings: its candidates' ubatches as one list."""
    if len(probe.candidates) == 1:
        return with_candidate(contender, probe.candidate)
    ubatches = ",".join(str(c.ubatch) for c in probe.candidates)
    rest = dataclasses.replace(probe.candidate, ubatch=None).args()
    return dataclasses.replace(contender, settings=merged(contender.settings, (*rest, "-ub", ubatches)))


class TunePhase:
    def __init__(self, host: TuneHost, tune: TuneSpec) -> None:
        self.host, self.tune = host, tune
        self.points = probe_points(host.spec, tune.free)
        self.share = tune.budget_s / max(len(host.contenders), 1)
        self.history = list(host.history)
        self.chosen: dict[str, TuneChosen] = {e.build: e for e in self.history if isinstance(e, TuneChosen)}
        self.searches: dict[str, Search] = {}
        self.started = time.monotonic()

    async def run(self) -> list[BuildInfo]:
        """Tune every contender; the contenders with their chosen settings."""
        contenders = self.host.contenders
        todo = [c for c in contenders if c.name not in self.chosen]
        if todo:
            if not any(isinstance(e, TuneStarted) for e in self.history):
                self.host.emit(TuneStarted(
                    builds=tuple(c.name for c in contenders), budget_s=self.tune.budget_s,
                    free=self.tune.free, points=self.points, at=time.time(),
                    shares_s={c.name: round(self.share, 1) for c in contenders}))
            for contender in todo:
                self.searches[contender.name] = self._search(contender)
            await self._halve(todo)
            for contender in todo:
                self._choose(contender)
            self.host.emit(TuneFinished(seconds=round(time.monotonic() - self.started, 1),
                                        budget_s=self.tune.budget_s, at=time.time()))
        await self._measure_defaults(contenders)
        tuned = [with_candidate(c, self.chosen[c.name].chosen) for c in contenders]
        self.host.emit(SweepNote("tuned: " + "; ".join(
            f"{c.name} {self.chosen[c.name].chosen.label}" for c in contenders), time.time()))
        return tuned

    # --- the search ------------------------------------------------------------------------

    def _search(self, contender: BuildInfo) -> Search:
        """The contender's search, its grid journalled once, its probes so far replayed."""
        mine = [e for e in self.history if getattr(e, "build", None) == contender.name]
        grid = next((e for e in mine if isinstance(e, TuneGrid)), None)
        if grid is None:
            made = make_grid(self.host.spec, self.tune, contender, self.host.model)
            grid = TuneGrid(build=contender.name, default=made.default, candidates=made.candidates,
                            skipped=made.skipped, fit=made.fit, notes=made.notes, at=time.time())
            self.host.emit(grid)
        search = Search(grid.candidates, self.points, self.share, default=grid.default, fit=grid.fit)
        rounds = [e for e in mine if isinstance(e, TuneRound)]
        if not rounds:
            self._start_round(search, contender.name, 0, grid.candidates, FIRST_ROUND_REPETITIONS,
                              f"round 0: all {len(grid.candidates)} candidates, in order and back"
                              + (f" ({len(grid.skipped)} cannot fit)" if grid.skipped else ""))
        for event in mine:
            _replay(search, event)
        return search

    def _start_round(self, search: Search, name: str, number: int, survivors: Sequence[Candidate],
                     repetitions: int, reason: str) -> None:
        search.start_round(number, survivors, repetitions)
        self.host.emit(TuneRound(build=name, round=number, survivors=tuple(survivors),
                                 repetitions=repetitions, reason=reason, at=time.time()))

    async def _halve(self, todo: Sequence[BuildInfo]) -> None:
        """Rounds for all contenders, taking turns per probe, until every search ends."""
        live, turn = list(todo), 0
        while live:
            order = live if turn % 2 == 0 else live[::-1]
            ran = False
            for contender in order:
                search = self.searches[contender.name]
                probe = search.next_probe()
                if probe is not None:
                    await self._probe(contender, search, probe)
                    ran = True
            turn += 1
            if ran:
                continue
            for contender in list(live):
                search = self.searches[contender.name]
                plan = search.plan_next_round()
                if plan is None:
                    live.remove(contender)
                    self._pass_on(contender.name, search, live)
                else:
                    self._start_round(search, contender.name, search.round + 1, *plan)

    def _pass_on(self, name: str, search: Search, live: Sequence[BuildInfo]) -> None:
        """What a contender that finished early left of its share goes to those still tuning,
        in equal parts, so the tune as a whole spends its budget. (A resumed tune replays the
        same searches, which end the same way and pass on the same time.)"""
        left = search.left_s
        if left < 1.0 or not live:
            return
        search.budget_s -= left
        for other in live:
            self.searches[other.name].budget_s += left / len(live)
        self.host.emit(TuneShareMoved(build=name, given={c.name: round(left / len(live), 1) for c in live},
                                      at=time.time()))

    async def _probe(self, contender: BuildInfo, search: Search, probe: Probe) -> None:
        """One llama-bench process for the probe's candidates, one after the other."""
        began = time.monotonic()
        await self.host.before_block(contender, self.points[0])
        limit = max(search.left_s - (time.monotonic() - began), 1.0) + BUDGET_SLACK * self.share
        shared = len(probe.candidates)
        timings = _Budgeted(self.host.ctx.timeouts, limit, shared)
        events = _Translator(self.host, contender.name, probe, search, timings, process=search.processes)
        search.processes += 1
        block = Block(self.points, probe.repetitions)
        timing = await run_chunk(self._context(events, timings), _with_probe(contender, probe), block)
        seconds = time.monotonic() - began
        spent = search.left_s - seconds <= 0
        # A candidate the process ended before (one after it failed) runs again in a
        # process of its own; every candidate is done when the budget is spent.
        progressed = bool(events.measured) or any(c in search.failed for c in probe.candidates)
        done = [c for c in probe.candidates
                if spent or not progressed or c in events.measured or c in search.failed]
        load = timing.load_s / shared if timing else None
        for candidate in done:
            self.host.emit(ProbeFinished(build=contender.name, candidate=candidate,
                                         seconds=round(seconds / len(done), 3),
                                         repetitions=probe.repetitions, round=probe.round,
                                         load_s=load, shared=shared, at=time.time()))
            search.finished(candidate, seconds / len(done), load, block.asked, shared)

    def _context(self, translator: _Translator, timeouts: Any, spec: SweepSpec | None = None) -> BenchContext:
        ctx = self.host.ctx
        probe_spec = spec or self.host.spec.with_changes(adaptive=False)
        return BenchContext(ctx.model_path, probe_spec, translator.emit, ctx.summary, timeouts,
                            ctx.watch, launcher_for=ctx.launcher_for, model_for=ctx.model_for)

    def _choose(self, contender: BuildInfo) -> None:
        search = self.searches[contender.name]
        best, reason = search.choice()
        if search.stopped and search.stopped != NOTHING_TO_PROBE:
            reason += f"; {search.stopped}"
        fit = search.fit
        if best is not None and fit is not None and best != fit and search.score(fit) is not None:
            reason += f"; {against_text(search.against(best, fit), 'llama.cpp own fit')}"
        chosen = TuneChosen(build=contender.name, best=best, default=search.default or Candidate(),
                            reason=reason, scores=dict(scores_by_label(search)), fit=fit,
                            probes=search.probes, seconds=round(search.spent_s, 1), at=time.time())
        self.chosen[contender.name] = chosen
        self.host.emit(chosen)

    # --- the defaults at the middle depth ------------------------------------------------------

    async def _measure_defaults(self, contenders: Sequence[BuildInfo]) -> None:
        """The sweep's middle-depth points at the defaults, for each contender whose choice is
        not its defaults (the others' sweep results are their defaults)."""
        done = {e.build for e in self.history if isinstance(e, ProbeFinished) and e.phase == "defaults"}
        wanted = [c for c in contenders if self.chosen[c.name].changed and c.name not in done]
        points = defaults_points(self.host.spec)
        spec = self.host.spec.with_changes(adaptive=False)
        for contender in wanted:
            default = self.chosen[contender.name].default
            probe = Probe((default,), -1, spec.repetitions)
            began = time.monotonic()
            await self.host.before_block(contender, points[0])
            translator = _Translator(self.host, contender.name, probe, None, None, phase="defaults")
            ctx = self._context(translator, self.host.ctx.timeouts, spec)
            await run_chunk(ctx, with_candidate(contender, default), Block(points, spec.repetitions))
            self.host.emit(ProbeFinished(build=contender.name, candidate=default, phase="defaults",
                                         seconds=round(time.monotonic() - began, 3),
                                         repetitions=spec.repetitions, round=-1, at=time.time()))


class _Translator:
    """A probe's llama-bench events as tune events (never as sweep results)."""

    def __init__(self, host: TuneHost, name: str, probe: Probe, search: Search | None,
                 timings: _Budgeted | None, phase: Phase = "search", process: int = -1) -> None:
        self.host, self.name, self.probe, self.search = host, name, probe, search
        self.timings, self.phase, self.process = timings, phase, process
        self.measured: set[Candidate] = set()

    def _candidate(self, event: Any) -> Candidate:
        """Whose result it is: llama-bench writes the ubatch it ran with into each."""
        if isinstance(event, ResultReceived) and len(self.probe.candidates) > 1:
            ubatch = event.result.raw.get("n_ubatch")
            return next((c for c in self.probe.candidates if c.ubatch == ubatch), self.probe.candidate)
        return self.probe.candidate

    def emit(self, event: Any) -> None:
        candidate, number = self._candidate(event), self.probe.round
        if isinstance(event, ResultReceived):
            self.measured.add(candidate)
            self.host.emit(ProbeMeasured(build=self.name, candidate=candidate, result=event.result,
                                         round=number, phase=self.phase, process=self.process,
                                         throttled=event.throttled, at=event.at))
            if self.search is not None:
                self.search.measured(candidate, event.result.point, event.result.samples_ts, self.process)
        elif isinstance(event, PointFailed):
            budget = bool(event.timed_out and self.timings is not None and self.timings.cut)
            reason = "the tune budget ran out during this probe" if budget else event.reason
            self.host.emit(ProbeFailed(build=self.name, candidate=candidate, point=event.point,
                                       reason=reason, round=number, phase=self.phase,
                                       budget=budget, at=event.at))
            if self.search is not None and not budget:
                self.search.failed_with(candidate, reason)


def _replay(search: Search, event: Any) -> None:
    """One journalled event of an interrupted tune into its search."""
    if isinstance(event, TuneRound):
        search.start_round(event.round, event.survivors, event.repetitions)
    elif isinstance(event, ProbeMeasured) and event.phase == "search":
        search.measured(event.candidate, event.result.point, event.result.samples_ts, event.process)
    elif isinstance(event, ProbeFailed) and event.phase == "search" and not event.budget:
        search.failed_with(event.candidate, event.reason)
    elif isinstance(event, ProbeFinished) and event.phase == "search":
        search.finished(event.candidate, event.seconds, event.load_s, event.repetitions + WARMUP_REPETITIONS,
                        event.shared)


async def run_tune_phase(host: TuneHost, tune: TuneSpec) -> list[BuildInfo]:
    return await TunePhase(host, tune).run()

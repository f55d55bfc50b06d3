"""The tune phase: each contender's candidates measured on the probe, halved round by round.

It runs inside a sweep (``backends.sweep.runner``) after the start, so the telemetry, the
thermal guard and the pause switch are the sweep's, and every event goes into the sweep's
journal first. Contenders take turns per probe (A B, B A), each within its equal share of
the budget. Each probe is one llama-bench process (``backends.sweep.bench.run_chunk``):
cancelling kills it, and a crash or out-of-memory ends only that candidate.

After the choice, the contenders whose choice is not their defaults are also measured at
their defaults, at the sweep's own points of its middle depth, so the verdict can say what
the defaults would have called.
"""

from __future__ import annotations

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
    TuneSpec,
    TuneStarted,
)
from backends.models import ModelInfo
from backends.sweep.bench import BenchContext, Block, run_chunk
from backends.sweep.plan import TimeoutPolicy
from backends.sweep.spec import SweepSpec
from backends.tune.candidates import make_grid
from backends.tune.grid import defaults_points, probe_points
from backends.tune.judging import against_text
from backends.tune.search import FIRST_ROUND_REPETITIONS, NOTHING_TO_PROBE, Probe, Search, scores_by_label
from backends.tune.settings import with_candidate

BUDGET_SLACK = 0.05  # a probe may run this share of the budget past it before it is cut


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
    """The sweep's time-outs, cut to what is left of a contender's share."""

    def __init__(self, policy: TimeoutPolicy, limit: float | None) -> None:
        self.policy, self.limit, self.cut = policy, limit, False

    def seconds(self, name: str, points: Sequence[TestPoint], asked: int, fixed: float | None) -> float:
        usual = self.policy.seconds(name, points, asked, fixed)
        if self.limit is not None and self.limit < usual:
            self.cut = True
            return self.limit
        return usual

    def observe(self, name: str, points: Sequence[TestPoint], asked: int, seconds: float) -> None:
        self.policy.observe(name, points, asked, seconds)


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
                else:
                    self._start_round(search, contender.name, search.round + 1, *plan)

    async def _probe(self, contender: BuildInfo, search: Search, probe: Probe) -> None:
        began = time.monotonic()
        await self.host.before_block(contender, self.points[0])
        limit = max(search.left_s - (time.monotonic() - began), 1.0) + BUDGET_SLACK * self.share
        timings = _Budgeted(self.host.ctx.timeouts, limit)
        events = _Translator(self.host, contender.name, probe, search, timings)
        block = Block(self.points, probe.repetitions)
        timing = await run_chunk(self._context(events, timings), with_candidate(contender, probe.candidate), block)
        seconds = time.monotonic() - began
        self.host.emit(ProbeFinished(build=contender.name, candidate=probe.candidate,
                                     seconds=round(seconds, 3), repetitions=probe.repetitions,
                                     round=probe.round, load_s=timing.load_s if timing else None,
                                     at=time.time()))
        search.finished(probe.candidate, seconds, timing.load_s if timing else None, block.asked)

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
            probe = Probe(default, -1, spec.repetitions)
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
                 timings: _Budgeted | None, phase: Phase = "search") -> None:
        self.host, self.name, self.probe, self.search = host, name, probe, search
        self.timings, self.phase = timings, phase

    def emit(self, event: Any) -> None:
        candidate, number = self.probe.candidate, self.probe.round
        if isinstance(event, ResultReceived):
            self.host.emit(ProbeMeasured(build=self.name, candidate=candidate, result=event.result,
                                         round=number, phase=self.phase,
                                         throttled=event.throttled, at=event.at))
            if self.search is not None:
                self.search.measured(candidate, event.result.point, event.result.samples_ts)
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
        search.measured(event.candidate, event.result.point, event.result.samples_ts)
    elif isinstance(event, ProbeFailed) and event.phase == "search" and not event.budget:
        search.failed_with(event.candidate, event.reason)
    elif isinstance(event, ProbeFinished) and event.phase == "search":
        search.finished(event.candidate, event.seconds, event.load_s, event.repetitions + 1)


async def run_tune_phase(host: TuneHost, tune: TuneSpec) -> list[BuildInfo]:
    return await TunePhase(host, tune).run()

"""Successive halving for one contender, as a state machine over its journalled probes.

Round 0 measures every candidate twice; each later round keeps the better half, and any
other candidate the leader is not yet clearly ahead of, and measures them again with more
repetitions (as many as the contender's share of the budget allows), until one is left or
the share would run out. A round runs in two passes, the survivors in order and then in
reverse (A B C, C B A), so drift and foreign load hit them alike; candidates that differ
only in ``-ub`` share one process per pass. A candidate's score is the sum over the probe
points of the mean log tokens/s of its repetitions so far, starved ones set aside (the
verdict's geometric mean). The defaults stay in every round: they are the baseline the
choice is judged against, and a best replaces them only when it is decided better
(``backends.tune.judging``: paired within the processes both ran in, when there are
enough). A candidate that fails (out of memory, crash) is out; one cut by the budget is
not measured further but keeps what it had.

The state is rebuilt from events alone, so a resumed tune continues where it stopped."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from backends import stats
from backends.journal.sweep import TestPoint
from backends.journal.tune import Candidate
from backends.sweep.adaptive import kept
from backends.tune.judging import Against, against, against_text, paired

MAX_REPETITIONS = 24  # per candidate and round (in two passes)
FIRST_ROUND_REPETITIONS = 2  # one per pass: a single slow moment cannot drop a candidate alone
# A best this close to the defaults keeps the defaults: the verdict's own tie band.
TIE_FRACTION = stats.TIE_FRACTION
NOTHING_TO_PROBE = "nothing to probe"
DEFAULT_LOAD_S = 1.0  # a guess until the first probe of a contender has run


@dataclass(frozen=True)
class Probe:
    """One llama-bench process to run: the probe points of ``candidates`` (one after the
    other, in this order, in the same process), ``repetitions`` counted each."""

    candidates: tuple[Candidate, ...]
    round: int
    repetitions: int

    @property
    def candidate(self) -> Candidate:
        return self.candidates[0]


def _shared_key(candidate: Candidate) -> Candidate | None:
    """What candidates must have in common to share a process: everything but the ubatch
    (llama-bench takes a list of -ub values, and keeps the model loaded between them)."""
    return dataclasses.replace(candidate, ubatch=None) if candidate.ubatch is not None else None


def sharing(pending: Sequence[Candidate]) -> tuple[Candidate, ...]:
    """The first of ``pending`` and those after it that can run in its process, in order."""
    first = _shared_key(pending[0])
    if first is None:
        return (pending[0],)
    return tuple(c for c in pending if _shared_key(c) == first)


@dataclass
class Cost:
    """What a probe process costs this contender: a fixed part (starting and loading) and
    a part per repetition, from every probe it ran so far. A process that ``shared`` its
    load among several candidates is observed once per candidate, each with its share."""

    load_s: float = DEFAULT_LOAD_S  # one process's
    work_s: float = 0.0
    repetitions: int = 0

    def observe(self, seconds: float, load_s: float | None, asked: int, shared: int = 1) -> None:
        shared = max(shared, 1)
        if load_s is not None and 0 <= load_s <= seconds:
            self.load_s = load_s * shared
        self.work_s += max(seconds - self.load_s / shared, 0.0)
        self.repetitions += max(asked, 1)

    @property
    def per_repetition_s(self) -> float | None:
        return self.work_s / self.repetitions if self.repetitions else None

    def predict(self, repetitions: int, candidates: int = 1, warmup: int = 1) -> float:
        """One process running ``candidates`` with ``repetitions`` counted each."""
        per = self.per_repetition_s if self.per_repetition_s is not None else 1.0
        return self.load_s + per * candidates * (repetitions + warmup)


@dataclass
class Search:
    """The halving state of one contender."""

    candidates: tuple[Candidate, ...]
    points: tuple[TestPoint, ...]
    budget_s: float
    default: Candidate | None = None
    fit: Candidate | None = None  # llama.cpp's own fit, the baseline to beat
    spent_s: float = 0.0
    round: int = 0
    survivors: list[Candidate] = field(default_factory=list)
    repetitions: int = FIRST_ROUND_REPETITIONS
    samples: dict[Candidate, dict[str, list[float]]] = field(default_factory=dict)
    # The same by process: candidates that share one are compared pairwise within it.
    by_process: dict[Candidate, dict[str, dict[int, list[float]]]] = field(default_factory=dict)
    processes: int = 0  # probe processes started so far (the next one's number)
    failed: dict[Candidate, str] = field(default_factory=dict)
    done_this_round: dict[Candidate, int] = field(default_factory=dict)  # probes per candidate
    cost: Cost = field(default_factory=Cost)
    stopped: str | None = None  # why the search ended early (the budget)
    probes: int = 0

    def __post_init__(self) -> None:
        if not self.survivors:
            self.survivors = list(self.candidates)
        if self.default is not None and self.candidates == (self.default,) and not self.stopped:
            self.stopped = NOTHING_TO_PROBE  # the defaults alone: no choice to make

    # --- facts in --------------------------------------------------------------------------

    def measured(self, candidate: Candidate, point: TestPoint, samples: Sequence[float],
                 process: int = -1) -> None:
        self.samples.setdefault(candidate, {}).setdefault(point.key, []).extend(samples)
        if process >= 0:
            by_point = self.by_process.setdefault(candidate, {}).setdefault(point.key, {})
            by_point.setdefault(process, []).extend(samples)
            self.processes = max(self.processes, process + 1)

    def failed_with(self, candidate: Candidate, reason: str) -> None:
        self.failed[candidate] = reason
        if candidate in self.survivors:
            self.survivors.remove(candidate)

    def finished(self, candidate: Candidate, seconds: float, load_s: float | None, asked: int,
                 shared: int = 1) -> None:
        """A candidate's probe ended (measured, failed or cut): its time counts (its share of
        the process's, when ``shared`` candidates ran in it)."""
        self.spent_s += seconds
        self.probes += 1
        self.done_this_round[candidate] = self.done_this_round.get(candidate, 0) + 1
        if candidate not in self.failed:
            self.cost.observe(seconds, load_s, asked, shared)

    def start_round(self, number: int, survivors: Sequence[Candidate], repetitions: int) -> None:
        self.round, self.survivors, self.repetitions = number, list(survivors), repetitions
        self.done_this_round = {}

    # --- decisions -------------------------------------------------------------------------

    def score(self, candidate: Candidate) -> float | None:
        """Sum over the probe points of the mean log tokens/s of the kept repetitions; None
        until every point has one."""
        by_point = self.samples.get(candidate, {})
        if any(not kept(by_point.get(p.key, ()))[0] for p in self.points):
            return None
        return sum(stats.log_moments(kept(by_point[p.key])[0])[0] for p in self.points)

    def ranked(self) -> list[Candidate]:
        """Measured candidates, best first (ties in the grid's order)."""
        scored = [(c, self.score(c)) for c in self.candidates if c not in self.failed]
        order = {c: i for i, c in enumerate(self.candidates)}
        return [c for c, s in sorted(((c, s) for c, s in scored if s is not None),
                                     key=lambda cs: (-cs[1], order[cs[0]]))]

    @property
    def left_s(self) -> float:
        return self.budget_s - self.spent_s

    def next_probe(self) -> Probe | None:
        """The next candidate to measure in this round, or None when the round is over."""
        if self.stopped:
            return None
        if self.left_s <= 0:
            self.stopped = f"stopped in round {self.round}: the budget was spent"
            return None
        for number, (order, repetitions) in enumerate(self.passes()):
            pending = [c for c in order
                       if self.done_this_round.get(c, 0) == number and c not in self.failed]
            if not pending:
                continue
            group = sharing(pending)
            if self.round > 0 and self.cost.predict(repetitions, len(group)) > self.left_s:
                self.stopped = (f"stopped in round {self.round}: {self.left_s:.0f} s of the "
                                "budget left, too little for another probe")
                return None
            return Probe(group, self.round, repetitions)
        return None

    def passes(self) -> list[tuple[list[Candidate], int]]:
        """The round's passes: the survivors in order, then reversed, the repetitions split."""
        first = math.ceil(self.repetitions / 2)
        second = self.repetitions - first
        out = [(list(self.survivors), first)]
        if second:
            out.append((self.survivors[::-1], second))
        return out

    def plan_next_round(self) -> tuple[list[Candidate], int, str] | None:
        """After a round: the better half and its repetitions, or None when the search ends."""
        ranked = [c for c in self.ranked() if c in self.survivors]
        if self.stopped or len(ranked) <= 1:
            return None
        # The defaults stay to the end: the choice is judged against them.
        baseline = [c for c in ranked if c == self.default]
        others = [c for c in ranked if c != self.default]
        half = math.ceil(len(others) / 2)
        # Beyond the better half, whoever the leader is not yet clearly ahead of stays: on a
        # busy machine a few repetitions cannot tell a best from its neighbours.
        close = [c for c in others[half:] if self.could_lead(c, ranked[0])]
        keep = others[:half] + close + baseline
        if len(others) == 1 and (not baseline or self.round > 0) and self._settled(others[0]):
            return None  # the last one has had its round beside the defaults
        rounds_left = max(1, math.ceil(math.log2(len(keep))))
        share = self.left_s / rounds_left / len(keep)
        per = self.cost.per_repetition_s or 1.0
        # Two passes: two starts (shared by the candidates of one process) and two warm-ups.
        starts = 2 * self.cost.load_s * len({_shared_key(c) or c for c in keep}) / len(keep)
        repetitions = min(MAX_REPETITIONS, int((share - starts) / per) - 2)
        if repetitions < 1:
            self.stopped = (f"stopped after round {self.round}: {self.left_s:.0f} s of the budget "
                            f"left, too little for {len(keep)} more probes")
            return None
        dropped = len(ranked) - len(keep)
        also = f", {len(close)} more not yet clearly behind" if close else ""
        why = (f"round {self.round + 1}: kept the best {half + len(baseline)} of {len(ranked)}{also} "
               f"(dropped {dropped}), {repetitions} repetitions each")
        if len(others) == 1 and baseline and self.round > 0:
            why = (f"round {self.round + 1}: {others[0].label} not yet decided against the defaults, "
                   f"{repetitions} repetitions each")
        return keep, repetitions, why

    def _settled(self, last: Candidate) -> bool:
        """Whether the last candidate beside the defaults is decided against them (better,
        worse or a tie); while it is not, what is left of the share buys more rounds."""
        if self.default is None or self.score(self.default) is None:
            return True
        result = self.against(last, self.default)
        return result is None or result.decided

    def could_lead(self, candidate: Candidate, leader: Candidate) -> bool:
        """Whether ``leader`` is not yet clearly ahead of ``candidate``: significantly faster
        at some probe point and slower at none (Welch's test on the mean log speed of the
        repetitions so far)."""
        mine, theirs = self.samples.get(candidate, {}), self.samples.get(leader, {})
        signs = set()
        for point in self.points:
            a, b = kept(mine.get(point.key, ()))[0], kept(theirs.get(point.key, ()))[0]
            test = stats.welch_from_samples([math.log(v) for v in a], [math.log(v) for v in b])
            if test is not None and test.p_value < stats.ALPHA and test.t != 0:
                signs.add(test.t > 0)
        return signs != {True}

    def choice(self) -> tuple[Candidate | None, str]:
        """The chosen candidate and why: the best of the last round's candidates (a candidate
        dropped earlier had fewer repetitions: its score is not comparable), only when it is
        decided better than the defaults, beyond the tie band; else the defaults."""
        measured = self.ranked()
        if self.default is not None and self.candidates == (self.default,):
            return self.default, "the defaults, the only candidate"
        if not measured:
            reasons = "; ".join(f"{c.label}: {r}" for c, r in list(self.failed.items())[:3])
            return None, f"no candidate measured ({reasons or 'no probes ran'})"
        ranked = [c for c in measured if c in self.survivors] or measured
        among = (f"the best of {len(ranked)} measured" if len(ranked) == len(measured)
                 else f"the best of the {len(ranked)} left in round {self.round}")
        best = ranked[0]
        default = self.default
        if best == default:
            return best, f"the defaults, {among}"
        if default is None or self.score(default) is None:
            return best, among
        result = self.against(best, default)
        if result is not None and result.better:
            return best, f"{among}, {against_text(result, 'the defaults')}"
        if result is not None and result.tie:
            return default, f"the defaults: {best.label} was within {TIE_FRACTION:.0%} of them on the probe"
        why = result.reason if result is not None else "no probe point measured on both"
        return default, f"the defaults: no setting beat the defaults clearly ({why})"

    def against(self, candidate: Candidate, baseline: Candidate) -> Against | None:
        """``candidate`` against ``baseline`` (``judging.Against``): paired by process where
        they ran side by side in enough processes, else on all their repetitions pooled."""
        pooled = against(self.samples.get(candidate, {}), self.samples.get(baseline, {}), self.points,
                         (candidate.label, "the defaults" if baseline == self.default else baseline.label))
        return paired(self.by_process.get(candidate, {}), self.by_process.get(baseline, {}),
                      self.points, pooled) or pooled


def scores_by_label(search: Search) -> Mapping[str, float]:
    return {c.label: s for c in search.candidates if (s := search.score(c)) is not None}

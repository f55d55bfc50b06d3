"""Which build to serve with: a "serving" verdict per concurrency level of a server duel.

    verdicts = serving_verdicts(duel_summary(events))   # one ServingVerdict per level

The input is the plain duel summary a profile keeps (``backends.server.duel_summary``),
so a saved profile, the app and the command line judge the same data the same way.

A class is one concurrency level (``serving c=4``) over every shape run at it. The winner
delivers the most tokens/s in total (every generated token over the level's wall time,
what a shared server gives its clients); its median time to first token and inter-token
latency are given beside it. The confidence comes from the per-request samples: each
request's delivered rate (its tokens over its end-to-end time) on the log scale. With two
or more turns per level (A B, B A, ...) the turns are the replicates: the log ratio of the
two contenders' total tok/s in each turn, paired by turn, its mean tested against the
spread between the turns plus the spread of requests within a turn (not shrunk by
sqrt(n): requests of a turn share the machine's state), so one slow turn is a wide
spread, not a lead. With one turn, ``backends.stats.run_p_value`` tests the requests
(their spread as the uncertainty of the run, and a turn-to-turn drift of ``TURN_DRIFT``
added to it). Shapes combine with
Stouffer's method and the classes are corrected together (Benjamini-Hochberg), as for
llama-bench classes. Words are ``profiles.wording``'s: ``decisive``, ``high``,
``moderate``, ``low`` (ahead, not significant: no clear winner), ``none`` and ``one run``.
One build under two names comes out a tie or no clear winner.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from backends import stats
from backends.journal.serve import setting_text
from backends.json_types import JsonValue, items_of, table_of
from profiles.wording import margin_text, plural, speed_text

PREFIX = "serving"
# When each contender serves a level in one turn, every request of it shares that turn's
# machine state: a shift of the whole turn (another process woke up) looks like a faster
# build. A lead must then beat this much turn-to-turn drift, in the test (added to the
# spread) and for "decisive" (the groups apart by more than it). With two turns or more
# the turns themselves measure the drift, and this allowance is not used.
TURN_DRIFT = 0.10


@dataclass(frozen=True)
class ServingFigures:
    """One contender at one concurrency level (the first shape it ran there)."""

    contender: str
    total_tps: float | None = None
    ttft_p50_s: float | None = None
    itl_p50_s: float | None = None
    requests: int = 0
    errors: int = 0


@dataclass(frozen=True)
class ServingVerdict:
    """``status``: winner, tie, no clear winner, lead (single requests: a point estimate),
    one contender (the others failed or sat out) or no results."""

    workload: str  # "serving c=4", "serving c=1 · 32K context, q4_0 cache, 4 slots"
    concurrency: int
    shapes: tuple[str, ...]
    status: str
    confidence: str
    winner: str | None = None
    runner_up: str | None = None
    ratio: float | None = None  # the winner's total tok/s over the runner-up's (geometric mean)
    p_value: float | None = None  # Stouffer over the shapes, before the correction
    q_value: float | None = None
    headline: str = ""
    sentence: str = ""
    figures: tuple[ServingFigures, ...] = ()
    failures: tuple[str, ...] = ()  # the first reason of each contender that lost requests
    setting: str = ""  # the servers' own conditions ("32K context, q4_0 cache, 4 slots")

    @property
    def recommended(self) -> str | None:
        return self.winner if self.status in ("winner", "one contender") else None


@dataclass(frozen=True)
class _Level:
    contender: str
    shape: str
    total_tps: float | None
    rates: tuple[float, ...]  # per-request delivered tokens/s
    figures: ServingFigures
    reason: str | None
    rate_turns: tuple[int, ...] = ()  # the turn of each of ``rates`` (empty: not known)
    turns: tuple[tuple[int, float], ...] = ()  # (turn, total tok/s) of each turn that served


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _p50(entry: Mapping[str, JsonValue], key: str) -> float | None:
    dist = entry.get(key)
    return _number(dist.get("p50")) if isinstance(dist, Mapping) else None


def _shape(entry: Mapping[str, JsonValue]) -> str:
    base = f"pp{entry.get('n_prompt')}+tg{entry.get('n_gen')}"
    return f"{base} @ d{entry['depth']}" if entry.get("depth") else base


def setting_of(entry: Mapping[str, JsonValue]) -> str:
    """A level entry's server conditions in words ("" when the duel sized them)."""
    ctx, slots = _number(entry.get("ctx_size")), _number(entry.get("slots"))
    kind = entry.get("cache_type")
    return setting_text(int(ctx or 0), kind if isinstance(kind, str) else "", int(slots or 0))


def _level(name: str, entry: Mapping[str, JsonValue]) -> _Level:
    requests = int(_number(entry.get("requests")) or 0)
    errors = int(_number(entry.get("errors")) or 0)
    short = int(_number(entry.get("short")) or 0)
    tokens = _number(entry.get("total_tokens")) or 0.0
    per_request = tokens / requests if requests else 0.0
    samples = [_number(x) for x in items_of(entry.get("e2e_samples"))]
    of_turn = [int(_number(t) or 0) for t in items_of(entry.get("e2e_turns"))]
    if len(of_turn) != len(samples):
        of_turn = []
    e2e = [(v, of_turn[i] if of_turn else 0) for i, v in enumerate(samples) if v and v > 0]
    rates = tuple(per_request / e for e, _ in e2e) if per_request > 0 else ()
    rate_turns = tuple(int(t) for _, t in e2e) if of_turn and rates else ()
    total = _number(entry.get("total_tps"))
    figures = ServingFigures(name, total, _p50(entry, "ttft_s"), _p50(entry, "itl_s"), requests, errors)
    reasons = [str(r) for r in items_of(entry.get("error_reasons"))]
    reason = None
    where = ", ".join(filter(None, (_shape(entry), setting_of(entry))))
    if not requests or total is None:
        reason = f"{name} at {where}: failed ({reasons[0] if reasons else 'no request finished'})"
    elif errors or short:
        why = f" ({reasons[0]})" if reasons else ""
        total = requests + errors + short
        lost = (f"{errors} failed and {short} short of {total} requests" if errors and short else
                f"{errors or short} of {total} requests {'failed' if errors else 'short'}")
        reason = f"{name} at {where}: {lost}{why}"
    return _Level(name, _shape(entry), total if requests else None, rates, figures, reason,
                  rate_turns, _turns(entry))


def _turns(entry: Mapping[str, JsonValue]) -> tuple[tuple[int, float], ...]:
    out = []
    for turn in items_of(entry.get("turns")):
        data = table_of(turn)
        rate, number = _number(data.get("total_tps")), data.get("turn")
        if rate and rate > 0 and isinstance(number, int):
            out.append((int(number), rate))
    return tuple(out)


def _levels(duel: Mapping[str, JsonValue]) -> dict[tuple[int, str], list[_Level]]:
    """Levels by class: concurrency and the servers' conditions, in the duel's order."""
    by_c: dict[tuple[int, str], list[_Level]] = {}
    for name, data in table_of(duel.get("contenders")).items():
        for entry in items_of(table_of(data).get("levels")):
            concurrency = entry.get("concurrency") if isinstance(entry, Mapping) else None
            if isinstance(entry, Mapping) and isinstance(concurrency, int):
                key = (int(concurrency), setting_of(entry))
                by_c.setdefault(key, []).append(_level(str(name), entry))
    return dict(sorted(by_c.items(), key=lambda item: item[0][0]))


@dataclass(frozen=True)
class _Pair:
    leader: str
    other: str
    ratio: float
    p_value: float | None  # None: no shape had two requests a side
    against: bool  # some shape's requests lean the other way
    separated: bool


def _score(levels: Sequence[_Level], name: str, shapes: Sequence[str]) -> float:
    rates = [lv.total_tps for lv in levels if lv.contender == name and lv.shape in shapes]
    good = [r for r in rates if r]
    return stats.geometric_mean(good) if len(good) == len(shapes) and good else 0.0


def _one_turn_test(a: _Level, b: _Level) -> float | None:
    """Requests of one turn a side: their spread, plus the ``TURN_DRIFT`` allowance."""
    if len(a.rates) < 2 or len(b.rates) < 2:
        return None
    (mean_a, sd_a), (mean_b, sd_b) = stats.log_moments(a.rates), stats.log_moments(b.rates)
    drift = math.log1p(TURN_DRIFT) / math.sqrt(2)  # shared out between the two turns
    return stats.run_p_value(mean_a - mean_b, math.hypot(sd_a, drift), len(a.rates),
                             math.hypot(sd_b, drift), len(b.rates))


def _within(level: _Level) -> tuple[float, int]:
    """The spread of log request rates within a turn (pooled over turns), and its df."""
    by_turn: dict[int, list[float]] = {}
    for rate, turn in zip(level.rates, level.rate_turns):
        by_turn.setdefault(turn, []).append(math.log(rate))
    squares = math.fsum((x - math.fsum(xs) / len(xs)) ** 2 for xs in by_turn.values() for x in xs)
    df = len(level.rates) - len(by_turn)
    return (squares / df, df) if df > 0 else (0.0, 0)


def _turn_gaps(a: _Level, b: _Level) -> list[float]:
    """log(a / b) of total tok/s in each turn both served, paired by turn."""
    mine, theirs = dict(a.turns), dict(b.turns)
    return [math.log(mine[t] / theirs[t]) for t in sorted(mine) if t in theirs]


def _turns_test(a: _Level, b: _Level) -> float | None:
    """Two turns or more a side: the mean of the per-turn log ratios against the spread
    between turns plus the spread within one (Satterthwaite's degrees of freedom)."""
    gaps = _turn_gaps(a, b)
    n = len(gaps)
    if n < 2:
        return None
    mean = math.fsum(gaps) / n
    between = math.fsum((g - mean) ** 2 for g in gaps) / (n - 1) / n
    (var_a, df_a), (var_b, df_b) = _within(a), _within(b)
    within = (var_a + var_b) / n
    spread = math.sqrt(between + within)
    if spread == 0.0:
        return 0.0 if mean else 1.0
    parts = (between * between / (n - 1) if between else 0.0) + (
        within * within / (df_a + df_b) if within and df_a + df_b else 0.0)
    df = (between + within) ** 2 / parts if parts else float(n - 1)
    return stats.student_t_two_sided_p(mean / spread, max(df, 1.0))


def _pair(levels: Sequence[_Level], leader: str, other: str, tie: float) -> _Pair:
    mine = {lv.shape: lv for lv in levels if lv.contender == leader and lv.total_tps}
    theirs = {lv.shape: lv for lv in levels if lv.contender == other and lv.total_tps}
    shared = [s for s in mine if s in theirs]
    ratio = stats.geometric_mean([mine[s].total_tps / theirs[s].total_tps for s in shared])  # type: ignore[operator]
    signed: list[tuple[float, float]] = []
    separated = bool(shared)
    for shape in shared:
        a, b = mine[shape], theirs[shape]
        gaps = _turn_gaps(a, b)
        if len(gaps) >= 2:
            p = _turns_test(a, b)
            gap = math.fsum(gaps)
            apart = stats.separated(a.rates, b.rates, tie) and all(g > math.log1p(tie) for g in gaps)
        else:
            p = _one_turn_test(a, b)
            gap = stats.log_moments(a.rates)[0] - stats.log_moments(b.rates)[0] if a.rates and b.rates else 0.0
            apart = stats.separated(a.rates, b.rates, max(tie, TURN_DRIFT))
        separated = separated and apart
        if p is not None:
            signed.append((1.0 if gap >= 0 else -1.0, p))
    return _Pair(leader, other, ratio, stats.stouffer(signed), any(d < 0 for d, _ in signed), separated)


def _call(pair: _Pair, q: float | None, tie: float, alpha: float) -> tuple[str, str]:
    beyond_tie = pair.ratio >= 1.0 + tie
    if pair.p_value is None:
        return ("lead" if beyond_tie else "tie"), "one run"
    if beyond_tie and pair.separated:
        return "winner", "decisive"
    if not beyond_tie:
        return "tie", "none"
    if q is not None and q < alpha and not pair.against:
        return "winner", "high" if q < alpha / 5 else "moderate"
    return "no clear winner", "low"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    value = seconds * 1000
    return f"{value:.{0 if value >= 100 else 1 if value >= 1 else 3}f} ms"


def figures_text(f: ServingFigures) -> str:
    """``cpu 812 t/s in total, TTFT p50 12.3 ms, ITL p50 1.1 ms``."""
    return (f"{f.contender} {speed_text(f.total_tps)} in total, TTFT p50 {_ms(f.ttft_p50_s)}, "
            f"ITL p50 {_ms(f.itl_p50_s)}")


def _words(v: ServingVerdict) -> tuple[str, str]:
    """The headline and the sentence of a verdict."""
    shapes = plural(len(v.shapes), "shape")
    if v.status == "winner" and v.winner:
        head = f"{v.winner} {margin_text(v.ratio)} ({v.confidence})"
        text = (f"{v.workload}: {v.winner} delivers {margin_text(v.ratio)} more tokens/s in total "
                f"than {v.runner_up} ({v.confidence} confidence, {shapes}).")
    elif v.status == "lead" and v.winner:
        head = f"{v.winner} {margin_text(v.ratio)} (one run)"
        text = f"{v.workload}: {v.winner} leads by {margin_text(v.ratio)} on single requests (nothing to test)."
    elif v.status == "tie":
        head = f"tie: {v.winner}, {v.runner_up}"
        text = (f"{v.workload}: no clear winner: {v.winner} and {v.runner_up} deliver the same "
                f"within the tie band ({margin_text(v.ratio)}).")
    elif v.status == "no clear winner":
        head = "no clear winner"
        p = f"p={v.q_value:.2g}" if v.q_value is not None else "untested"
        text = (f"{v.workload}: no clear winner: {v.winner}'s {margin_text(v.ratio)} lead over "
                f"{v.runner_up} is not significant ({p}).")
    elif v.status == "one contender" and v.winner:
        head = f"{v.winner} (the only one that served)"
        text = f"{v.workload}: only {v.winner} served this level."
    else:
        head, text = "no results", f"{v.workload}: no contender served this level."
    lines = [figures_text(f) for f in v.figures if f.total_tps is not None]
    return head, text + ("\n  " + "; ".join(lines) if lines else "")


def _class(key: tuple[int, str], levels: Sequence[_Level], tie: float) -> tuple[ServingVerdict, _Pair | None]:
    c, setting = key
    shapes = tuple(dict.fromkeys(lv.shape for lv in levels))
    names = list(dict.fromkeys(lv.contender for lv in levels))
    figures = tuple(next(lv.figures for lv in levels if lv.contender == n) for n in names)
    failures = tuple(lv.reason for lv in levels if lv.reason)
    served = [n for n in names if any(lv.contender == n and lv.total_tps for lv in levels)]
    common = [s for s in shapes if all(any(lv.contender == n and lv.shape == s and lv.total_tps
                                           for lv in levels) for n in served)]
    workload = f"{PREFIX} c={c}" + (f" · {setting}" if setting else "")
    base = ServingVerdict(workload, c, shapes, "no results", "none", figures=figures,
                          failures=failures, setting=setting)
    if len(served) < 2:
        return replace(base, status="one contender" if served else "no results",
                       winner=served[0] if served else None), None
    ranked = sorted(served, key=lambda n: _score(levels, n, common or shapes), reverse=True)
    pair = _pair(levels, ranked[0], ranked[1], tie)
    return replace(base, winner=ranked[0], runner_up=ranked[1], ratio=pair.ratio,
                   p_value=pair.p_value), pair


def serving_verdicts(duel: Mapping[str, JsonValue], *, tie_pct: float = stats.TIE_FRACTION * 100,
                     alpha: float = stats.ALPHA) -> tuple[ServingVerdict, ...]:
    """One verdict per concurrency level of a duel summary, lowest concurrency first."""
    tie = tie_pct / 100.0
    cases = [_class(key, levels, tie) for key, levels in _levels(duel).items()]
    tested = [i for i, (_, pair) in enumerate(cases) if pair is not None and pair.p_value is not None]
    q_values = dict(zip(tested, stats.benjamini_hochberg([cases[i][1].p_value for i in tested])))  # type: ignore[misc, union-attr]
    out = []
    for index, (verdict, pair) in enumerate(cases):
        if pair is not None:
            q = q_values.get(index)
            status, confidence = _call(pair, q, tie, alpha)
            verdict = replace(verdict, status=status, confidence=confidence, q_value=q)
        head, sentence = _words(verdict)
        out.append(replace(verdict, headline=head, sentence=sentence))
    return tuple(out)


def serving_rows(verdicts: Sequence[ServingVerdict]) -> list[list[str]]:
    """Header and a row per class, for the text and Markdown tables."""
    rows = [["workload", "winner", "total tok/s", "TTFT p50", "ITL p50", "shapes"]]
    for v in verdicts:
        rows.append([v.workload, v.headline or v.status,
                     " / ".join(f"{f.contender} {speed_text(f.total_tps)}" for f in v.figures),
                     " / ".join(_ms(f.ttft_p50_s) for f in v.figures),
                     " / ".join(_ms(f.itl_p50_s) for f in v.figures),
                     ", ".join(v.shapes)])
    return rows

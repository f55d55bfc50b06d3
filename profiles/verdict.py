"""Which build to use for which workload: one pure function over a run's records.

``recommend_run(records, settings)`` is the one verdict path: the Results screen, ``llamaduel
recommend``, ``profiles show/compare/export`` and the saved profile all come from it.

Workload classes: dense at short and long context, MoE and split GPU/CPU each at short and
long context (long: ``long_context_tokens`` or more in the cache), each judged for prompt
processing (pp), generation (tg) and combined ``-pg`` rows (pg) apart. Every point test of
the recommendation is corrected together (Benjamini-Hochberg) and every class test too, so
one build under two names comes out a tie with no crossover. See ``profiles.judge`` for how
a class is called and ``profiles.wording`` for the confidence vocabulary.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends import stats
from backends.journal.sweep import BenchResult, PointFailed
from profiles.by_model import across_models
from profiles.contenders import Field, Measure, PointKey, build_field, is_moe_model_type, model_key, settings_of
from profiles.crossover import find, in_range, point_sides
from profiles.fallback import with_fallback_lines
from profiles.judge import (
    PairResult,
    TestBook,
    backend_map,
    call,
    group_measures,
    opponents,
    pair,
    rank,
)
from profiles.outcome import (
    CLASS_LABELS,
    PG_POLICY,
    PHASE_LABELS,
    PHASE_ORDER,
    STABILITY_RULE,
    BuildStability,
    ClassVerdict,
    Contender,
    Crossover,
    Outlier,
    PairComparison,
    Recommendation,
)
from profiles.records import Correctness, FailureRecord, ModelFacts, ProfileResult, RunRecords, records_from_builds
from profiles.settings_pairs import LikePair, like_pairs
from profiles.stability import PlacedFailure, failure_lines, place
from profiles.stability import build_stability as stability_of
from profiles.verdict_text import choose_lines, class_verdict, summary_lines

if TYPE_CHECKING:
    from backends.models import ModelInfo

__all__ = [
    "CLASS_LABELS",
    "PG_POLICY",
    "PHASE_LABELS",
    "STABILITY_RULE",
    "ClassVerdict",
    "Recommendation",
    "VerdictSettings",
    "is_moe_model_type",
    "recommend",
    "recommend_run",
]

WORKLOAD_ORDER = (("short_dense", "short"), ("long_dense", "long"), ("moe", "short"), ("moe", "long"),
                  ("split", "short"), ("split", "long"))


@dataclass(frozen=True)
class VerdictSettings:
    long_context_tokens: int = 16384
    tie_pct: float = stats.TIE_FRACTION * 100
    alpha: float = stats.ALPHA


ClassKey = tuple[str, str, str]  # (workload, context, phase)


def class_of(m: Measure, long_tokens: int) -> ClassKey:
    context = "long" if m.context >= long_tokens else "short"
    workload = f"{context}_dense" if m.workload == "dense" else m.workload
    return workload, context, m.point.kind


@dataclass
class _Case:
    key: ClassKey
    grouped: dict[str, dict[PointKey, Measure]]
    ranked: list[str]
    opponents: list[str]
    pairs: list[PairResult]
    model: str = ""  # "" where the class measured one model
    like: list[LikePair] = dataclasses.field(default_factory=list)  # like with like, other backends
    like_results: list[PairResult] = dataclasses.field(default_factory=list)


def _units(by_class: Mapping[ClassKey, list[Measure]]) -> list[tuple[ClassKey, str, list[Measure]]]:
    """Each class, or each class's model where it measured several: speeds of different
    models are never pooled."""
    out: list[tuple[ClassKey, str, list[Measure]]] = []
    for key, ms in _ordered(by_class):
        per_model: dict[str, list[Measure]] = defaultdict(list)
        for m in ms:  # one pass: a database of thousands of models is not read once per model
            per_model[m.model].append(m)
        if len(per_model) <= 1:
            out.append((key, "", ms))
        else:
            out.extend((key, model, per_model[model]) for model in sorted(per_model))
    return out


def _plan(key: ClassKey, measures: Sequence[Measure], book: TestBook, backends: Mapping[str, str],
          model: str = "", contenders: Mapping[str, Contender] | None = None) -> _Case:
    grouped = group_measures(measures)
    ranked = rank(grouped)
    opp = opponents(ranked[0], ranked, backends) if len(ranked) > 1 else []
    opp = [o for o in opp if any(k in grouped[o] for k in grouped[ranked[0]])]
    here = {n: dataclasses.replace(contenders[n], known_settings=settings_of(grouped[n].values()))
            for n in grouped if contenders and n in contenders}
    like = like_pairs(ranked[0], opp, ranked, here, grouped) if here and opp else []
    for a, b in [(ranked[0], o) for o in opp] + [(p.a, p.b) for p in like]:
        for k, m in grouped[a].items():
            if k in grouped[b]:
                book.get(m, grouped[b][k])
    return _Case(key, grouped, ranked, opp, [], model, like)


def _series(field: Field, book: TestBook, backends: Mapping[str, str]) -> list[_Case]:
    """One model, phase and workload over every context: where crossovers are looked for."""
    by_series: dict[tuple[str, str, str], list[Measure]] = defaultdict(list)
    for m in field.measures:
        by_series[(m.model, m.point.kind, m.workload)].append(m)
    return [_plan((model, workload, phase), ms, book, backends)
            for (model, phase, workload), ms in by_series.items() if len({x.context for x in ms}) > 1]


def _crossovers(series: Sequence[_Case], book: TestBook, several: Mapping[str, bool]) -> list[Crossover]:
    out: list[Crossover] = []
    for case in series:
        _, workload, phase = case.key
        for o in case.opponents:
            result = pair(book, case.grouped[case.ranked[0]], case.grouped[o])
            order = sorted(range(len(result.tests)), key=lambda i: result.tests[i].a.context)
            tests = [result.tests[i] for i in order]
            sides, tested = point_sides(tests, [result.sides[i] for i in order], book.tie_fraction)
            out.extend(find(tests, sides, phase, workload,
                            several.get(case.ranked[0], False) or several.get(o, False), tested))
    return out


def recommend_run(records: RunRecords, settings: VerdictSettings = VerdictSettings()) -> Recommendation:
    """The recommendation for one run on one machine: pure, deterministic, from records alone.

    Results measured while the GPU throttled stay in (they are what the card did), and each
    class that has some says which, and whether the winner is the same without them.
    """
    recommendation = with_fallback_lines(_recommend(records, settings), records)
    throttled = [r for r in records.results if r.telemetry and r.telemetry.get("throttled")]
    if not throttled:
        return recommendation
    cool = dataclasses.replace(records, results=tuple(r for r in records.results if r not in throttled))
    return with_throttle_caveats(recommendation, _recommend(cool, settings), throttled)


def with_throttle_caveats(rec: Recommendation, cool: Recommendation,
                          throttled: Sequence[ProfileResult]) -> Recommendation:
    """Each class's caveat about its throttled results: which, and whether they change the winner."""
    verdicts = []
    for verdict in rec.verdicts:
        mine = [r for r in throttled if r.result.point.kind == verdict.phase
                and _in_context(r.result.point.context, verdict.context, rec.long_context_tokens)
                and (not verdict.model or model_key(r.result.raw) == verdict.model)]
        if not mine:
            verdicts.append(verdict)
            continue
        names = ", ".join(f"{r.build} {r.result.point.name}" for r in mine[:4])
        more = f" and {len(mine) - 4} more" if len(mine) > 4 else ""
        other = cool.verdict(verdict.workload, verdict.phase, verdict.context, verdict.model or None)
        same = other is not None and other.recommended == verdict.recommended
        effect = ("without them the winner is the same" if same else
                  f"without them: {other.recommended or other.status}" if other is not None else
                  "without them nothing is left to judge")
        caveat = f"measured while the GPU throttled: {names}{more}; {effect}"
        verdicts.append(dataclasses.replace(verdict, caveats=(*verdict.caveats, caveat)))
    return dataclasses.replace(rec, verdicts=tuple(verdicts))


def _in_context(tokens: int, context: str, long_tokens: int) -> bool:
    return (tokens >= long_tokens) == (context == "long")


def _recommend(records: RunRecords, settings: VerdictSettings) -> Recommendation:
    tie = settings.tie_pct / 100.0
    field = build_field(records.results, records.model)
    backends = backend_map(field.contenders)
    models = sorted({m.model for m in field.measures})
    placed = place(records.failures, field.contenders, models, records.model)
    book = TestBook(tie_fraction=tie, alpha=settings.alpha)
    by_class: dict[ClassKey, list[Measure]] = defaultdict(list)
    for m in field.measures:
        by_class[class_of(m, settings.long_context_tokens)].append(m)
    for p in placed:
        for phase in p.phases:
            key = class_of_failure(p, phase, settings.long_context_tokens)
            by_class.setdefault(key, [])
    units = _units(by_class)
    by_label = {c.label: c for c in field.contenders}
    cases = [_plan(k, ms, book, backends, model, by_label) for k, model, ms in units if ms]
    series = _series(field, book, backends)
    book.correct()
    for case in cases:
        case.pairs = [pair(book, case.grouped[case.ranked[0]], case.grouped[o]) for o in case.opponents]
        case.like_results = [pair(book, case.grouped[p.a], case.grouped[p.b]) for p in case.like]
    class_q = _class_q(cases)
    several = {c.label: bool(c.settings) for c in field.contenders}
    crossovers = _crossovers(series, book, several)
    names = _names(field, placed)
    stability = stability_of(names, _result_counts(field), placed, records.correctness,
                                {c.label: c.build for c in field.contenders})
    verdicts: list[ClassVerdict] = []
    case_of, units_of, q_of = _lookups(cases, units, class_q)
    for key, _ in _ordered(by_class):
        in_class = [p for p in placed if key[2] in p.phases
                    and class_of_failure(p, key[2], settings.long_context_tokens) == key]
        models = [model for model, _ in units_of[key]]
        per_model = []
        for model, mine in units_of[key]:
            found = case_of.get((key, model))
            failed = [p for p in in_class if _for_model(p, model, models)]
            qs = dict(q_of[(key, model)])
            per_model.append(class_verdict(
                key, found.grouped if found else {}, found.ranked if found else [], found.pairs if found else [],
                qs, failed, _class_crossovers(crossovers, key, mine, settings), stability, field,
                settings.tie_pct, settings.alpha, model, _like(found, qs, settings) if found else ()))
        if len(per_model) > 1:
            verdicts.extend([across_models(per_model, failure_lines(in_class)), *per_model])
        else:
            verdicts.extend(per_model)
    devices = {c.label: _devices(c.known_settings.get("devices")) for c in field.contenders}
    verdicts = [_with_devices(v, devices) for v in verdicts]
    all_outliers = tuple(dict.fromkeys(o for v in verdicts for o in v.outliers))
    return Recommendation(
        builds=tuple(names), verdicts=tuple(verdicts), stability=tuple(stability.values()),
        crossovers=tuple(crossovers), summary=tuple(summary_lines(verdicts, stability, crossovers)),
        choose=tuple(choose_lines(verdicts)), rule=STABILITY_RULE, pg_policy=PG_POLICY,
        long_context_tokens=settings.long_context_tokens,
        contenders=tuple(field.contenders),
        outliers=all_outliers, machine=records.machine, tie_pct=settings.tie_pct)


def _lookups(cases: list[_Case], units: list[tuple[ClassKey, str, list[Measure]]],
             class_q: dict[tuple[ClassKey, str, str], float]
             ) -> tuple[dict[tuple[ClassKey, str], _Case], dict[ClassKey, list[tuple[str, list[Measure]]]],
                        dict[tuple[ClassKey, str], dict[str, float]]]:
    """Cases, units and q-values by class and model: looked up, not searched per model, so
    thousands of models stay linear."""
    case_of = {(c.key, c.model): c for c in reversed(cases)}
    units_of: dict[ClassKey, list[tuple[str, list[Measure]]]] = defaultdict(list)
    for k, model, unit in units:
        units_of[k].append((model, unit))
    q_of: dict[tuple[ClassKey, str], dict[str, float]] = defaultdict(dict)
    for (k, model, other), q in class_q.items():
        q_of[(k, model)][other] = q
    return case_of, units_of, q_of


_GPU_DEVICES = ("CUDA", "ROCm", "HIP", "Vulkan", "Metal", "SYCL", "MUSA", "CANN", "OpenCL")


def _devices(devices: object) -> list[str]:
    """The devices a contender split the model across (``CUDA0/CUDA1``)."""
    return [d for d in str(devices or "").replace(",", "/").split("/")
            if d and d.lower() not in ("none", "auto", "-", "?")]


def _with_devices(verdict: ClassVerdict, devices: Mapping[str, list[str]]) -> ClassVerdict:
    """A class where some contender split the model over several devices says so."""
    names = [n for n in {verdict.winner, verdict.runner_up, *verdict.typical_ts} if n]
    widest = max((devices.get(n, []) for n in names), key=len, default=[])
    if len(widest) < 2:
        return verdict
    kind = "GPUs" if all(d.startswith(_GPU_DEVICES) for d in widest) else "devices"
    return dataclasses.replace(verdict, gpus=len(widest), split_kind=kind)


def class_of_failure(p: PlacedFailure, phase: str, long_tokens: int) -> ClassKey:
    context = "long" if p.context >= long_tokens else "short"
    workload = f"{context}_dense" if p.workload == "dense" else p.workload
    return workload, context, phase


def _ordered(by_class: Mapping[ClassKey, list[Measure]]) -> list[tuple[ClassKey, list[Measure]]]:
    order = {(w, c, p): i for i, (w, c, p) in enumerate(
        (w, c, p) for w, c in WORKLOAD_ORDER for p in PHASE_ORDER)}
    return sorted(by_class.items(), key=lambda kv: order.get(kv[0], 99))


def _for_model(p: PlacedFailure, model: str, models: Sequence[str]) -> bool:
    """A failure belongs to its model's verdict; one whose model is not known, to each."""
    return not model or not p.record.model or p.record.model == model


def _like(case: _Case, qs: Mapping[str, float], settings: VerdictSettings) -> list[tuple[LikePair, str, str, float]]:
    """Each like-with-like pair's call: status, confidence and ratio."""
    out = []
    for p, result in zip(case.like, case.like_results):
        own = p.a == case.ranked[0] and p.b in case.opponents  # the class's own pair: its own test
        made = call(result, qs.get(p.b if own else f"{p.a}\t{p.b}"), settings.tie_pct / 100, settings.alpha)
        out.append((p, made.status, made.confidence, result.comparison.ratio))
    return out


def _class_q(cases: Sequence[_Case]) -> dict[tuple[ClassKey, str, str], float]:
    """Every class-level test corrected together: each class's pairs and its like-with-like pairs."""
    found = [((c.key, c.model, r.comparison.other), r.class_p) for c in cases for r in c.pairs]
    found += [((c.key, c.model, f"{p.a}\t{p.b}"), r.class_p) for c in cases for p, r in zip(c.like, c.like_results)
              if not (p.a == c.ranked[0] and p.b in c.opponents)]
    keys = [k for k, p in found if p is not None]
    ps = [p for _, p in found if p is not None]
    return dict(zip(keys, stats.benjamini_hochberg(ps)))


def _class_crossovers(crossovers: Sequence[Crossover], key: ClassKey, measures: Sequence[Measure],
                      settings: VerdictSettings) -> tuple[Crossover, ...]:
    workload, context, phase = key
    kind = "dense" if workload.endswith("dense") else workload
    low, high = (settings.long_context_tokens, 2**62) if context == "long" else (0, settings.long_context_tokens)
    models = {m.model for m in measures}
    return tuple(x for x in crossovers if x.phase == phase and x.workload == kind and x.model in models
                 and in_range(x, low, high))


def _names(field: Field, placed: Sequence[PlacedFailure]) -> list[str]:
    names = [c.label for c in field.contenders]
    for p in placed:
        if p.contender not in names:
            names.append(p.contender)
    return names


def _result_counts(field: Field) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for m in field.measures:
        counts[m.contender] += 1
    return counts


# ---------------------------------------------------------------------------------------
# The old entry point: per-build results, kept as a thin adapter over recommend_run.


def recommend(results_by_build: Mapping[str, Sequence[BenchResult]],
              failures_by_build: Mapping[str, Sequence[PointFailed | FailureRecord]] | None = None,
              *, model_info: ModelFacts | ModelInfo | None = None,
              correctness: Correctness | None = None,
              settings: VerdictSettings = VerdictSettings()) -> Recommendation:
    """``recommend_run`` on records made from per-build results (no telemetry)."""
    facts = model_info if isinstance(model_info, ModelFacts) or model_info is None else ModelFacts(
        is_moe=getattr(model_info, "is_moe", None), layers=getattr(model_info, "layers", None))
    return recommend_run(records_from_builds(results_by_build, failures_by_build, correctness=correctness,
                                             model=facts), settings)


def build_stability(results_by_build: Mapping[str, Sequence[BenchResult]],
                    failures_by_build: Mapping[str, Sequence[PointFailed | FailureRecord]],
                    correctness: Correctness | None) -> dict[str, BuildStability]:
    """Stability per build as the recommendation states it (by build name)."""
    rec = recommend(results_by_build, failures_by_build, correctness=correctness)
    by_name = {s.build: s for s in rec.stability}
    names = list(dict.fromkeys([*results_by_build, *failures_by_build, *(correctness or {})]))
    out = {}
    for name in names:
        out[name] = by_name.get(name) or build_stability_of(name, correctness)
    return out


def build_stability_of(name: str, correctness: Correctness | None) -> BuildStability:
    """A build with no results and no failures: only its correctness check speaks."""
    return stability_of([name], {}, [], dict(correctness or {}), {})[name]


_ = (Outlier, PairComparison, math)

"""Which build to use for which workload: pure functions over llama-bench results.

Workload classes follow the MI50 study: dense model at short context, dense at long
context, MoE at any context, and split GPU/CPU inference. Each is judged separately for
prompt processing (pp) and generation (tg); combined ``-pg`` rows form their own phase
("pg") rather than being mixed into either.

How a class is judged:

* Results are matched per test cell: same model, same test (prompt/gen size and depth),
  same split and cache types. Tuning knobs (batch, ubatch, threads, flash attention)
  are left out of the match: each build is judged at its best measured setting.
* The margin is the geometric mean of the per-cell speed ratios, so a 2x lead at one
  depth and a 2x loss at another cancel out.
* Confidence comes from the per-repetition samples: Welch's t-test per cell, combined
  over cells with Stouffer's method (a lead that flips with depth cancels itself out).
  Without samples, llama-bench's reported standard deviation is used with
  ``assumed_repetitions``; with no spread at all the data cannot tell.
* "tie" when the gap is below ``negligible_pct`` or below ``tie_pct`` and not significant;
  "no clear winner" when the data cannot tell (no spread, not significant, or the lead
  changes with significant wins on both sides and a small average gap).

Stability rule: a build that crashed, timed out or had no result on any test point, or
whose correctness check came back 'suspect' or 'failed', is unstable. An unstable build
may still be the fastest (the table says so), but the recommendation for a class goes to
the fastest stable build when one was measured there, with a caveat naming the faster
one. If every build in a class is unstable, the fastest is recommended with a caveat.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from backends.events import BenchResult, PointFailed, TestPoint

from profiles import stats

CLASS_LABELS = {
    "short_dense": "dense, short context",
    "long_dense": "dense, long context",
    "moe": "MoE, any context",
    "split": "split GPU/CPU",
}
CLASS_ORDER = tuple(CLASS_LABELS)
PHASE_LABELS = {"pp": "prompt processing", "tg": "generation", "pg": "prompt+generation"}
PHASE_ORDER = ("pp", "tg", "pg")
PG_POLICY = "pg (-pg pp+tg) rows are judged as their own phase, never mixed into pp or tg"

STABILITY_RULE = (
    "A build that crashed, timed out or gave no result on any test point, or whose "
    "correctness check was suspect or failed, is unstable: the fastest stable build is "
    "recommended instead, with a caveat naming the faster one; if every build is unstable, "
    "the fastest is recommended with a caveat."
)

# Architectures llama.cpp runs as mixture-of-experts, as they appear in model_type strings.
_MOE_WORDS = ("moe", "gpt-oss", "mixtral", "deepseek2", "deepseek3", "llama4", "dbrx", "grok",
              "arctic", "jamba", "olmoe", "phimoe", "granitemoe", "hunyuan-moe", "bailingmoe",
              "ernie4_5-moe", "glm4moe", "dots1", "minimax")
_MOE_SIZE = re.compile(r"\d+x\d+(\.\d+)?[BMK]\b|\d+(\.\d+)?B[.-]A\d+(\.\d+)?B", re.IGNORECASE)


@dataclass(frozen=True)
class VerdictSettings:
    long_context_tokens: int = 16384
    tie_pct: float = 2.5
    negligible_pct: float = 1.0
    alpha: float = 0.05
    assumed_repetitions: int = 5
    # Every repetition of one build beats every repetition of the other by this much:
    # decisive even when two or three repetitions leave a t-test without power.
    decisive_pct: float = 10.0


@dataclass(frozen=True)
class CellComparison:
    """One matched test cell for a pair of builds."""

    model: str
    test: str
    context: int
    baseline_ts: float
    challenger_ts: float
    ratio: float
    p_value: float | None


@dataclass(frozen=True)
class PairComparison:
    """The class leader (``leader``) against one other build over their common cells."""

    leader: str
    other: str
    margin_pct: float
    p_value: float | None
    cells: tuple[CellComparison, ...]
    significant_for: int
    significant_against: int
    separated_for: int = 0
    # True when some cell had no samples and its test used ``assumed_repetitions``.
    assumed_counts: bool = False


@dataclass(frozen=True)
class Crossover:
    """The lead between two builds changes between two neighbouring points of a series."""

    model: str
    phase: str
    axis: str
    low: int
    high: int
    at: float
    leader_before: str
    leader_after: str
    significant: bool
    tested: bool = True


@dataclass(frozen=True)
class ClassVerdict:
    workload: str
    phase: str
    status: str  # 'winner' | 'tie' | 'no clear winner' | 'single build'
    winner: str | None
    recommended: str | None
    margin_pct: float | None
    p_value: float | None
    confidence: str
    typical_ts: Mapping[str, float]
    comparisons: tuple[PairComparison, ...]
    crossovers: tuple[Crossover, ...]
    caveats: tuple[str, ...]
    summary: str
    tied: tuple[str, ...] = ()
    best_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{CLASS_LABELS[self.workload]} — {PHASE_LABELS[self.phase]}"


@dataclass(frozen=True)
class BuildStability:
    build: str
    results: int
    failures: int
    timeouts: int
    crashes: int
    correctness: str | None
    stable: bool
    note: str


@dataclass(frozen=True)
class Recommendation:
    builds: tuple[str, ...]
    verdicts: tuple[ClassVerdict, ...]
    stability: tuple[BuildStability, ...]
    crossovers: tuple[Crossover, ...]
    summary: tuple[str, ...]
    choose: tuple[str, ...]
    rule: str = STABILITY_RULE
    pg_policy: str = PG_POLICY
    long_context_tokens: int = 16384

    def verdict(self, workload: str, phase: str) -> ClassVerdict | None:
        for verdict in self.verdicts:
            if verdict.workload == workload and verdict.phase == phase:
                return verdict
        return None

    def recommended_build(self, workload: str) -> str | None:
        """The build for a workload: the pp and tg recommendations if they agree, else tg's
        (generation is what a chat user waits on), else pp's."""
        picks = {v.phase: v.recommended for v in self.verdicts if v.workload == workload}
        return picks.get("tg") or picks.get("pp") or picks.get("pg")


# ---------------------------------------------------------------------------------------
# Reading facts out of a llama-bench record


def is_moe_model_type(model_type: str) -> bool:
    text = model_type.lower()
    return any(word in text for word in _MOE_WORDS) or bool(_MOE_SIZE.search(model_type))


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return default


def model_key(raw: Mapping[str, Any]) -> str:
    filename = str(raw.get("model_filename") or "").replace("\\", "/").rsplit("/", 1)[-1]
    return filename or str(raw.get("model_type") or "model")


def offload_of(raw: Mapping[str, Any], layers: int | None) -> str:
    """'full', 'cpu' (-ngl 0) or 'partial:N' (fewer layers than the model has)."""
    ngl = _int(raw.get("n_gpu_layers"), -1)
    if ngl == 0:
        return "cpu"
    if ngl > 0 and layers and ngl < layers:
        return f"partial:{ngl}"
    return "full"


def point_context(point: TestPoint) -> int:
    """Tokens in the KV cache by the end of the test: depth plus what the test adds."""
    return point.depth + point.n_prompt + point.n_gen


@dataclass(frozen=True)
class _Cell:
    model: str
    n_prompt: int
    n_gen: int
    depth: int
    n_cpu_moe: int
    offload: str
    type_k: str
    type_v: str

    @property
    def point(self) -> TestPoint:
        return TestPoint(self.n_prompt, self.n_gen, self.depth)


def _cell_of(result: BenchResult, layers: int | None) -> _Cell:
    raw = result.raw
    return _Cell(model=model_key(raw), n_prompt=result.point.n_prompt, n_gen=result.point.n_gen,
                 depth=result.point.depth, n_cpu_moe=_int(raw.get("n_cpu_moe")),
                 offload=offload_of(raw, layers), type_k=str(raw.get("type_k") or "f16"),
                 type_v=str(raw.get("type_v") or "f16"))


def _usable(result: BenchResult) -> bool:
    return not math.isnan(result.avg_ts) and result.avg_ts > 0


def _workload_of(cell: _Cell, raw: Mapping[str, Any], model_info: Any, settings: VerdictSettings) -> str:
    if cell.n_cpu_moe > 0 or cell.offload != "full":
        return "split"
    moe = getattr(model_info, "is_moe", None) if model_info is not None else None
    if moe is None:
        moe = is_moe_model_type(str(raw.get("model_type") or "")) or is_moe_model_type(cell.model)
    if moe:
        return "moe"
    return "long_dense" if point_context(cell.point) > settings.long_context_tokens else "short_dense"


# ---------------------------------------------------------------------------------------
# Stability


def build_stability(results_by_build: Mapping[str, Sequence[BenchResult]],
                    failures_by_build: Mapping[str, Sequence[PointFailed]],
                    correctness: Mapping[str, Mapping[str, Any]] | None) -> dict[str, BuildStability]:
    names = list(dict.fromkeys([*results_by_build, *failures_by_build]))
    out: dict[str, BuildStability] = {}
    for name in names:
        fails = list(failures_by_build.get(name, ()))
        timeouts = sum(1 for f in fails if f.timed_out)
        crashes = sum(1 for f in fails if not f.timed_out and (f.signal or (f.exit_code or 0) != 0))
        check = (correctness or {}).get(name) or {}
        status = check.get("status")
        parts = []
        if timeouts:
            parts.append(f"timed out on {timeouts}")
        if crashes:
            parts.append(f"crashed on {crashes}")
        other = len(fails) - timeouts - crashes
        if other:
            parts.append(f"no result on {other}")
        total = len(results_by_build.get(name, ())) + len(fails)
        note = ""
        if parts:
            note = f"{', '.join(parts)} of {total} test points"
        if status in ("suspect", "failed"):
            reason = check.get("reason") or ""
            kld = check.get("mean_kld")
            detail = f"; mean KLD {kld:.4g}" if isinstance(kld, (int, float)) and not math.isnan(kld) else ""
            text = f"output {status}{detail}" + (f" ({reason})" if reason else "")
            note = f"{note}; {text}" if note else text
        out[name] = BuildStability(
            build=name, results=len(results_by_build.get(name, ())), failures=len(fails),
            timeouts=timeouts, crashes=crashes, correctness=status,
            stable=not fails and status not in ("suspect", "failed"), note=note or "no failures")
    return out


# ---------------------------------------------------------------------------------------
# Comparing two builds


def _cell_test(a: BenchResult, b: BenchResult, settings: VerdictSettings) -> float | None:
    test = stats.welch_from_samples(a.samples_ts, b.samples_ts)
    if test is None:
        # A known single repetition cannot be tested; the assumed count is only for
        # formats that print a spread but no samples (markdown, CSV).
        n_a = len(a.samples_ts) or settings.assumed_repetitions
        n_b = len(b.samples_ts) or settings.assumed_repetitions
        test = stats.welch_from_summary(a.avg_ts, a.stddev_ts, n_a, b.avg_ts, b.stddev_ts, n_b)
    return None if test is None or math.isnan(test.p_value) else test.p_value


def _compare(leader: str, other: str, cells: Sequence[_Cell],
             best: Mapping[str, Mapping[_Cell, BenchResult]], settings: VerdictSettings) -> PairComparison:
    """Leader's speed relative to ``other`` (margin > 0 means the leader is faster)."""
    rows, signed, log_ratios = [], [], []
    sig_for = sig_against = separated = 0
    assumed = False
    for cell in cells:
        a, b = best[other][cell], best[leader][cell]
        assumed = assumed or not a.samples_ts or not b.samples_ts
        ratio = b.avg_ts / a.avg_ts
        if len(a.samples_ts) >= 2 and len(b.samples_ts) >= 2 and min(b.samples_ts) > max(a.samples_ts):
            separated += 1
        p = _cell_test(a, b, settings)
        rows.append(CellComparison(model=cell.model, test=cell.point.name, context=point_context(cell.point),
                                   baseline_ts=a.avg_ts, challenger_ts=b.avg_ts, ratio=ratio, p_value=p))
        log_ratios.append(math.log(ratio))
        if p is not None:
            direction = 1.0 if ratio >= 1 else -1.0
            signed.append((direction, p))
            if p < settings.alpha:
                if ratio > 1:
                    sig_for += 1
                elif ratio < 1:
                    sig_against += 1
    margin = (math.exp(math.fsum(log_ratios) / len(log_ratios)) - 1.0) * 100.0
    combined = stats.stouffer(signed) if signed else None
    # Stouffer is two-sided: significance only counts for the side the average favours.
    return PairComparison(leader=leader, other=other, margin_pct=margin, p_value=combined,
                          cells=tuple(rows), significant_for=sig_for, significant_against=sig_against,
                          separated_for=separated, assumed_counts=assumed)


def _confidence(p: float | None) -> str:
    if p is None:
        return "unknown (no repetition spread)"
    if p < 0.01:
        return "high"
    if p < 0.05:
        return "moderate"
    return "low"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "no spread data"
    if p < 0.001:
        return "p<0.001"
    return f"p={p:.3f}"


# ---------------------------------------------------------------------------------------
# Crossovers


def _series_crossovers(builds: Sequence[str], cells: Iterable[_Cell],
                       best: Mapping[str, Mapping[_Cell, BenchResult]], phase: str,
                       settings: VerdictSettings) -> list[Crossover]:
    """Lead changes between consecutive points of each series, for every pair of builds.

    A series is one model and configuration with the depth varying; where every point is at
    depth 0 and the prompt (or generation) length varies instead, that length is the axis.
    """
    by_setup: dict[tuple, list[_Cell]] = defaultdict(list)
    for cell in cells:
        by_setup[(cell.model, cell.n_cpu_moe, cell.offload, cell.type_k, cell.type_v)].append(cell)
    found: list[Crossover] = []
    for setup_cells in by_setup.values():
        by_size: dict[tuple[int, int], list[_Cell]] = defaultdict(list)
        for cell in setup_cells:
            by_size[(cell.n_prompt, cell.n_gen)].append(cell)
        depth_sweep = any(len({c.depth for c in group}) > 1 for group in by_size.values())
        if depth_sweep:
            series = [(sorted(group, key=lambda c: c.depth), "depth") for group in by_size.values()]
            axis_of = lambda c: c.depth  # noqa: E731
        else:
            axis_name = "prompt length" if phase == "pp" else ("generation length" if phase == "tg" else "test size")
            series = [(sorted(setup_cells, key=lambda c: (c.n_prompt, c.n_gen)), axis_name)]
            axis_of = lambda c: c.n_prompt if phase == "pp" else c.n_gen  # noqa: E731
        for ordered, axis in series:
            for i, a_name in enumerate(builds):
                for b_name in builds[i + 1:]:
                    pts = [c for c in ordered if c in best[a_name] and c in best[b_name]]
                    for left, right in zip(pts, pts[1:]):
                        r1 = best[b_name][left].avg_ts / best[a_name][left].avg_ts
                        r2 = best[b_name][right].avg_ts / best[a_name][right].avg_ts
                        if (r1 - 1.0) * (r2 - 1.0) >= 0:
                            continue
                        x1, x2 = axis_of(left), axis_of(right)
                        at = x1 + (x2 - x1) * (r1 - 1.0) / (r1 - r2)
                        p1 = _cell_test(best[a_name][left], best[b_name][left], settings)
                        p2 = _cell_test(best[a_name][right], best[b_name][right], settings)
                        significant = all(p is not None and p < settings.alpha for p in (p1, p2))
                        tested = p1 is not None and p2 is not None
                        found.append(Crossover(
                            model=left.model, phase=phase, axis=axis, low=x1, high=x2, at=at,
                            leader_before=b_name if r1 > 1 else a_name,
                            leader_after=b_name if r2 > 1 else a_name, significant=significant,
                            tested=tested))
    return found


# ---------------------------------------------------------------------------------------
# The recommendation


def recommend(results_by_build: Mapping[str, Sequence[BenchResult]],
              failures_by_build: Mapping[str, Sequence[PointFailed]] | None = None,
              *, model_info: Any = None,
              correctness: Mapping[str, Mapping[str, Any]] | None = None,
              settings: VerdictSettings = VerdictSettings()) -> Recommendation:
    """Judge every workload class and phase present in the results (2 or more builds)."""
    failures_by_build = failures_by_build or {}
    builds = tuple(dict.fromkeys([*results_by_build, *failures_by_build]))
    layers = getattr(model_info, "layers", None) if model_info is not None else None
    stability = build_stability(results_by_build, failures_by_build, correctness)

    # Best result per build and cell, and which class/phase each cell belongs to.
    best: dict[str, dict[_Cell, BenchResult]] = {name: {} for name in builds}
    cell_class: dict[_Cell, tuple[str, str]] = {}
    for name, results in results_by_build.items():
        for result in results:
            if not _usable(result):
                continue
            cell = _cell_of(result, layers)
            current = best[name].get(cell)
            if current is None or result.avg_ts > current.avg_ts:
                best[name][cell] = result
            cell_class.setdefault(cell, (_workload_of(cell, result.raw, model_info, settings),
                                         result.point.kind))

    crossovers: list[Crossover] = []
    for phase in PHASE_ORDER:
        phase_cells = [c for c, (_, ph) in cell_class.items() if ph == phase]
        crossovers.extend(_series_crossovers(builds, phase_cells, best, phase, settings))

    verdicts = []
    for workload in CLASS_ORDER:
        for phase in PHASE_ORDER:
            cells = [c for c, key in cell_class.items() if key == (workload, phase)]
            if not cells:
                continue
            verdicts.append(_judge_class(workload, phase, cells, builds, best, stability,
                                         crossovers, settings))
    verdicts_t = tuple(verdicts)
    return Recommendation(
        builds=builds, verdicts=verdicts_t, stability=tuple(stability.values()),
        crossovers=tuple(crossovers), summary=tuple(_summary_lines(verdicts_t, stability)),
        choose=tuple(_choose_lines(verdicts_t)), long_context_tokens=settings.long_context_tokens)


def _judge_class(workload: str, phase: str, cells: Sequence[_Cell], builds: Sequence[str],
                 best: Mapping[str, Mapping[_Cell, BenchResult]], stability: Mapping[str, BuildStability],
                 crossovers: Sequence[Crossover], settings: VerdictSettings) -> ClassVerdict:
    present = [b for b in builds if any(c in best[b] for c in cells)]
    label = f"{CLASS_LABELS[workload]} — {PHASE_LABELS[phase]}"
    common = [c for c in cells if all(c in best[b] for b in present)]
    typical = {b: stats.geometric_mean([best[b][c].avg_ts for c in (common or [c for c in cells if c in best[b]])])
               for b in present}
    settings_of = {b: _settings_used(best[b], cells) for b in present}
    if len(present) < 2:
        only = present[0] if present else None
        caveats = tuple(_instability_caveats([only], stability)) if only else ()
        return ClassVerdict(workload=workload, phase=phase, status="single build", winner=only,
                            recommended=only, margin_pct=None, p_value=None,
                            confidence="unknown (one build measured)", typical_ts=typical,
                            comparisons=(), crossovers=(), caveats=caveats,
                            summary=f"{label}: only {only} has results here; nothing to compare.",
                            best_settings=settings_of)

    # Leader: the build with the best average log-speed against every other build.
    def pair_cells(a: str, b: str) -> list[_Cell]:
        return [c for c in cells if c in best[a] and c in best[b]]

    scores = {}
    for b in present:
        logs = []
        for o in present:
            if o == b:
                continue
            shared = pair_cells(b, o)
            if shared:
                logs.append(math.fsum(math.log(best[b][c].avg_ts / best[o][c].avg_ts) for c in shared) / len(shared))
        scores[b] = math.fsum(logs) / len(logs) if logs else -math.inf
    ranked = sorted(present, key=lambda b: scores[b], reverse=True)
    leader = ranked[0]
    comparisons = tuple(_compare(leader, o, pair_cells(leader, o), best, settings)
                        for o in ranked[1:] if pair_cells(leader, o))
    if not comparisons:
        return ClassVerdict(workload=workload, phase=phase, status="no clear winner", winner=None,
                            recommended=None, margin_pct=None, p_value=None,
                            confidence="unknown (no test measured on both builds)", typical_ts=typical,
                            comparisons=(), crossovers=(), caveats=(),
                            summary=f"{label}: the builds ran different tests; nothing to compare.",
                            best_settings=settings_of)
    closest = min(comparisons, key=lambda c: c.margin_pct)
    margin, p = closest.margin_pct, closest.p_value
    significant = p is not None and p < settings.alpha

    def tied_with_leader(c: PairComparison) -> bool:
        small = c.margin_pct < settings.negligible_pct
        # Under tie_pct a lead needs real samples: significance resting on an assumed
        # repetition count (markdown, CSV) is not enough to call a winner.
        inside_noise = c.margin_pct < settings.tie_pct and (
            c.assumed_counts or not (c.p_value is not None and c.p_value < settings.alpha))
        return small or inside_noise

    conflicting = closest.significant_for > 0 and closest.significant_against > 0
    decisive = all(c.separated_for == len(c.cells) and c.margin_pct >= settings.decisive_pct
                   for c in comparisons)
    confidence = _confidence(p)
    if tied_with_leader(closest):
        status = "tie"
    elif decisive and not significant:
        status = "winner"
        confidence = "decisive gap (every repetition faster; too few repetitions for a t-test)"
    elif p is None:
        status = "no clear winner"
    elif not significant or (conflicting and margin < settings.tie_pct):
        status = "no clear winner"
    else:
        status = "winner"
    tied = tuple([leader] + [c.other for c in comparisons if tied_with_leader(c)]) if status == "tie" else ()

    models = {c.model for c in cells}
    pair = {leader, closest.other}
    relevant = tuple(x for x in crossovers if x.phase == phase and x.model in models
                     and {x.leader_before, x.leader_after} == pair and _crossover_in_class(x, cells))

    caveats: list[str] = []
    if conflicting and status == "winner":
        caveats.append(f"{closest.other} is significantly ahead at {closest.significant_against} of "
                       f"{len(closest.cells)} test points")
    winner = leader if status == "winner" else None
    recommended: str | None
    if status == "winner":
        recommended = _stable_choice(ranked, stability, leader, caveats, margin, label_of=leader)
    elif status == "tie":
        stable_tied = [b for b in tied if stability[b].stable]
        recommended = (stable_tied or list(tied))[0]
        if recommended != leader:
            caveats.append(f"tie on speed; {recommended} chosen for stability")
        caveats.extend(_instability_caveats([recommended], stability))
    else:
        recommended = None
    summary = _class_summary(label, status, leader, closest, tied, relevant, confidence)
    return ClassVerdict(workload=workload, phase=phase, status=status, winner=winner,
                        recommended=recommended, margin_pct=margin, p_value=p,
                        confidence=confidence, typical_ts=typical, comparisons=comparisons,
                        crossovers=relevant, caveats=tuple(caveats), summary=summary, tied=tied,
                        best_settings=settings_of)


def _crossover_in_class(crossover: Crossover, cells: Sequence[_Cell]) -> bool:
    for c in cells:
        if c.model != crossover.model:
            continue
        x = c.depth if crossover.axis == "depth" else (c.n_prompt if crossover.phase == "pp" else c.n_gen)
        if x in (crossover.low, crossover.high):
            return True
    return False


def _settings_used(best: Mapping[_Cell, BenchResult], cells: Sequence[_Cell]) -> dict[str, Any]:
    """The llama-bench settings of this build's best results in the class (most common)."""
    keys = ("flash_attn", "n_batch", "n_ubatch", "n_threads", "type_k", "type_v", "n_gpu_layers",
            "n_cpu_moe", "use_mmap", "load_mode")
    counts: dict[str, dict[Any, int]] = defaultdict(lambda: defaultdict(int))
    for c in cells:
        result = best.get(c)
        if result is None:
            continue
        for k in keys:
            if k in result.raw and isinstance(result.raw[k], (int, float, str, bool)):
                counts[k][result.raw[k]] += 1
    return {k: max(v.items(), key=lambda kv: kv[1])[0] for k, v in counts.items()}


def _instability_caveats(names: Sequence[str | None], stability: Mapping[str, BuildStability]) -> list[str]:
    return [f"{n} is unstable: {stability[n].note}" for n in names if n and not stability[n].stable]


def _stable_choice(ranked: Sequence[str], stability: Mapping[str, BuildStability], leader: str,
                   caveats: list[str], margin: float, label_of: str) -> str:
    if stability[leader].stable:
        return leader
    stable = [b for b in ranked if stability[b].stable]
    if stable:
        choice = stable[0]
        caveats.append(f"{leader} is faster (+{margin:.1f}% over the closest) but unstable "
                       f"({stability[leader].note}); {choice} recommended instead")
        return choice
    caveats.append(f"every build here is unstable; {leader} is fastest ({stability[leader].note})")
    return leader


def _class_summary(label: str, status: str, leader: str, closest: PairComparison,
                   tied: Sequence[str], crossovers: Sequence[Crossover], confidence: str) -> str:
    if status == "winner":
        text = (f"{label}: {leader} is {closest.margin_pct:.1f}% faster than {closest.other} "
                f"({confidence} confidence, {_fmt_p(closest.p_value)}).")
    elif status == "tie":
        text = (f"{label}: tie between {', '.join(tied)} (within {closest.margin_pct:.1f}%, "
                f"{_fmt_p(closest.p_value)}; too small to matter).")
    else:
        why = ("no repetition spread to judge the gap" if closest.p_value is None
               else "the lead changes between test points" if closest.significant_for and closest.significant_against
               else "the gap is not significant")
        text = (f"{label}: no clear winner ({leader} ahead by {closest.margin_pct:.1f}% on average, "
                f"but {why}, {_fmt_p(closest.p_value)}).")
    for x in crossovers:
        noise = "" if x.significant else (", within the noise" if x.tested else ", untested: no repetition spread")
        text += (f" The lead passes from {x.leader_before} to {x.leader_after} at {x.axis} "
                 f"≈{x.at:,.0f} (between {x.low:,} and {x.high:,}{noise}; {x.model}).")
    return text


def _summary_lines(verdicts: Sequence[ClassVerdict], stability: Mapping[str, BuildStability]) -> list[str]:
    lines = [v.summary for v in verdicts]
    for s in stability.values():
        if not s.stable:
            lines.append(f"Stability: {s.build} {s.note}.")
    for v in verdicts:
        for caveat in v.caveats:
            lines.append(f"Caveat ({v.label}): {caveat}.")
    return lines


def _choose_lines(verdicts: Sequence[ClassVerdict]) -> list[str]:
    picks: dict[str, list[str]] = defaultdict(list)
    for v in verdicts:
        if v.recommended and v.status in ("winner", "tie") and not (v.status == "tie" and len(v.tied) > 1 and not v.caveats):
            picks[v.recommended].append(f"{CLASS_LABELS[v.workload]} ({v.phase})")
    return [f"Choose {build} if you run: {'; '.join(items)}." for build, items in picks.items()]

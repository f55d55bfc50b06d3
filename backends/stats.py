"""Small statistics with the standard library alone: Welch's t-test and Stouffer's method.

Kept free of scipy so profiles stay a light, pure-Python package. The Student-t tail comes
from the regularized incomplete beta function (continued fraction, as in Numerical Recipes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()


# Gaps within ±3 % are ties: wider than the run-to-run wobble of a quiet machine, narrower
# than any difference worth switching builds for.
TIE_FRACTION = 0.03
ALPHA = 0.05


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    front = math.exp(log_front)
    # The continued fraction converges fast only on one side of the mean; use symmetry.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    if df <= 0 or math.isnan(t) or math.isnan(df):
        return math.nan
    return regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


@dataclass(frozen=True)
class WelchTest:
    t: float
    df: float
    p_value: float


def welch_from_summary(mean_a: float, sd_a: float, n_a: int,
                       mean_b: float, sd_b: float, n_b: int) -> WelchTest | None:
    """Welch's unequal-variance t-test from means, standard deviations and counts.

    Returns None when the data cannot carry a test (fewer than two repetitions a side, or
    missing spread).
    """
    if n_a < 2 or n_b < 2 or any(math.isnan(v) for v in (mean_a, sd_a, mean_b, sd_b)):
        return None
    var_a, var_b = sd_a * sd_a / n_a, sd_b * sd_b / n_b
    pooled = var_a + var_b
    diff = mean_b - mean_a
    if pooled == 0.0:
        # Identical repetitions on both sides: any difference is exact, none is none.
        return WelchTest(t=math.copysign(math.inf, diff) if diff else 0.0, df=float(n_a + n_b - 2),
                         p_value=0.0 if diff else 1.0)
    t = diff / math.sqrt(pooled)
    denominator = 0.0
    if var_a:
        denominator += var_a * var_a / (n_a - 1)
    if var_b:
        denominator += var_b * var_b / (n_b - 1)
    df = pooled * pooled / denominator
    return WelchTest(t=t, df=df, p_value=student_t_two_sided_p(t, df))


def welch_from_samples(a: Sequence[float], b: Sequence[float]) -> WelchTest | None:
    if len(a) < 2 or len(b) < 2:
        return None
    mean_a, mean_b = math.fsum(a) / len(a), math.fsum(b) / len(b)
    sd_a = math.sqrt(math.fsum((x - mean_a) ** 2 for x in a) / (len(a) - 1))
    sd_b = math.sqrt(math.fsum((x - mean_b) ** 2 for x in b) / (len(b) - 1))
    return welch_from_summary(mean_a, sd_a, len(a), mean_b, sd_b, len(b))


def stouffer(signed_p_values: Sequence[tuple[float, float]]) -> float | None:
    """Combine two-sided p-values that each carry a direction (+1 or -1) into one p-value.

    Each pair is (direction, p). Points that disagree in direction cancel out, so a lead
    that changes with depth does not add up to confidence.
    """
    if not signed_p_values:
        return None
    total = 0.0
    for direction, p in signed_p_values:
        p = min(max(p, 1e-15), 1.0)
        total += math.copysign(_NORMAL.inv_cdf(1.0 - p / 2.0), direction)
    z = total / math.sqrt(len(signed_p_values))
    return max(0.0, min(1.0, 2.0 * (1.0 - _NORMAL.cdf(abs(z)))))


def geometric_mean(values: Sequence[float]) -> float:
    if not values:
        return math.nan
    return math.exp(math.fsum(math.log(v) for v in values) / len(values))


# ---------------------------------------------------------------------------------------
# On the log scale: speeds are judged as ratios


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return math.nan
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def starved(values: Sequence[float], *, min_drop: float = math.log(1.25), spread_factor: float = 5.0) -> list[int]:
    """Indices of repetitions far below their siblings (a stalled run on a busy machine).

    Only low values count (a starved run is slow, never fast), only with three or more
    repetitions, and at most a minority of them: a value whose log is more than
    ``max(min_drop, spread_factor x robust spread)`` below the median of the logs.
    """
    if len(values) < 3 or any(v <= 0 for v in values):
        return []
    logs = [math.log(v) for v in values]
    mid = median(logs)
    spread = 1.4826 * median([abs(x - mid) for x in logs])
    limit = max(min_drop, spread_factor * spread)
    low = sorted((i for i, x in enumerate(logs) if mid - x > limit), key=lambda i: logs[i])
    return low[: (len(values) - 1) // 2]


def log_moments(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the logs (sd 0 for one value)."""
    logs = [math.log(v) for v in values]
    mean = math.fsum(logs) / len(logs)
    if len(logs) < 2:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in logs) / (len(logs) - 1))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the order given."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    q = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        q[i] = min(1.0, running)
    return q


def t_quantile(df: float, alpha: float = 0.05) -> float:
    """The two-sided ``1 - alpha`` quantile of Student's t (bisection on the p-value)."""
    low, high = 0.0, 1000.0
    for _ in range(80):
        mid = (low + high) / 2
        if student_t_two_sided_p(mid, df) > alpha:
            low = mid
        else:
            high = mid
    return high


def run_p_value(log_gap: float, sd_a: float, n_a: int, sd_b: float, n_b: int) -> float:
    """Is a gap between two contenders' mean log speeds larger than one run's wobble?
    t = gap / sqrt(sd_a² + sd_b²), degrees of freedom as Welch's.

    Repetitions of one point run back to back and share the machine's state (a busy
    machine shifts all of them at once), so their spread is taken as the uncertainty of
    one run rather than shrunk by sqrt(n) as if they were independent: a conservative test
    that keeps one build under two names from "winning" on a loaded machine. The same test
    stops the measuring of a point (``backends.sweep.adaptive``) and judges it afterwards
    (``profiles.compare``).
    """
    spread = math.hypot(sd_a, sd_b)
    if spread == 0.0:
        return 0.0 if log_gap else 1.0
    return student_t_two_sided_p(log_gap / spread, run_df(sd_a, n_a, sd_b, n_b))


def run_df(sd_a: float, n_a: int, sd_b: float, n_b: int) -> float:
    welch = welch_from_summary(0.0, sd_b, n_b, 0.0, sd_a, n_a)
    return welch.df if welch is not None and math.isfinite(welch.df) else float(n_a + n_b - 2)


# Samuelson: no one of n values lies further than sd*(n-1)/sqrt(n) from their mean (sample sd).
# Up to ten repetitions (llama-bench's default is five) that is at most 2.85 sd.
MAX_PLAUSIBLE_REPS = 10


def max_deviation(n: int | None) -> float:
    """How many sample standard deviations any one of ``n`` values can lie from their mean;
    with ``n`` unknown, the most any count up to ``MAX_PLAUSIBLE_REPS`` allows."""
    count = n if n is not None and n >= 2 else MAX_PLAUSIBLE_REPS
    return (count - 1) / math.sqrt(count)


def separated(fast: Sequence[float], slow: Sequence[float], tie_fraction: float) -> bool:
    """Every repetition of ``fast`` beats every one of ``slow`` by more than the tie band and
    by more than either group is wide: the two groups lie further apart than either is wide."""
    if len(fast) < 2 or len(slow) < 2:
        return False
    gap = math.log(min(fast)) - math.log(max(slow))
    width = max(math.log(max(v)) - math.log(min(v)) for v in (fast, slow))
    return gap > max(math.log1p(tie_fraction), width)

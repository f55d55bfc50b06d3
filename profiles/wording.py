"""How verdicts are said: one vocabulary for confidence, margins and context sizes.

Confidence is one of ``decisive`` (every repetition of the winner beat every repetition of
the other by more than the tie band), ``high`` and ``moderate`` (significant after the
false-discovery correction, at 1% and 5%), ``low`` (ahead, but not significant), ``none``
(a tie, or leads that change sides) and ``one run`` (single repetitions: a point estimate,
nothing to test). Margins above 2x are ratios (``x3.1``), smaller ones percentages (``+12%``).
"""

from __future__ import annotations

import math

CONFIDENCE_WORDS = ("decisive", "high", "moderate", "low", "none", "one run")


def margin_text(ratio: float | None) -> str:
    """``x150``, ``x3.1``, ``+45%``, ``+4.1%`` for a ratio of at least 1."""
    if ratio is None or not math.isfinite(ratio):
        return "?"
    if ratio >= 100:
        return f"x{ratio:.0f}"
    if ratio >= 2:
        return f"x{ratio:.1f}"
    percent = (ratio - 1.0) * 100.0
    return f"+{percent:.1f}%" if percent < 10 else f"+{percent:.0f}%"


def tokens_text(tokens: float) -> str:
    """Whole multiples of 4K as "4K", "32K"; anything else exactly: 34816 -> "34,816"."""
    n = round(tokens)
    if n >= 4096 and n % 4096 == 0:
        return f"{n // 1024}K"
    return f"{n:,}"


def between_text(low: int, high: int) -> str:
    return f"between {tokens_text(low)} and {tokens_text(high)} tokens of context"


def speed_text(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.1f} t/s" if value < 100 else f"{value:,.0f} t/s"


def bytes_text(value: int | None) -> str:
    if value is None:
        return "-"
    gib = value / 2**30
    if gib >= 1:
        return f"{gib:.1f} GiB"
    return f"{value / 2**20:.0f} MiB" if value >= 2**20 else f"{value:,} B"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"

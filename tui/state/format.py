"""How the app writes what only it shows: durations, waits, cut text, sizes (tokens/s and
depths read as everywhere else: ``profiles.format``)."""

from __future__ import annotations

import math


def format_duration(seconds: float) -> str:
    """A duration in s under a minute, else m:ss, else h:mm:ss."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return "?"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def format_eta(seconds: float) -> str:
    """A time still to wait, rounded so it does not tick every second: ~45 s, ~3 min."""
    if seconds is None or math.isnan(seconds):
        return "?"
    if seconds < 60:
        return f"~{max(5, math.ceil(seconds / 5.0) * 5)} s"
    if seconds < 3600:
        return f"~{math.ceil(seconds / 60.0)} min"
    hours, minutes = divmod(math.ceil(seconds / 60.0), 60)
    return f"~{hours} h {minutes:02d} min"


def short(text: str, width: int) -> str:
    """One line of at most ``width`` characters; an ellipsis marks a cut."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


GIB = 1024**3


def size_text(value: float) -> str:
    """A model's size: ``4.7 GiB``, ``312 MiB``, ``96 KiB``."""
    if value >= GIB / 10:
        return f"{value / GIB:.1f} GiB"
    return f"{value / 1024**2:.0f} MiB" if value >= 1024**2 else f"{value / 1024:.0f} KiB"

"""A contender with a candidate's settings: its own settings that the candidate sets again
are replaced (llama-bench would run both values of a repeated flag)."""

from __future__ import annotations

import dataclasses

from backends.builds import BuildInfo
from backends.journal.tune import Candidate

_ALIASES = {"--flash-attn": "-fa", "--cache-type-k": "-ctk", "--cache-type-v": "-ctv",
            "--n-gpu-layers": "-ngl", "--n-cpu-moe": "-ncmoe", "--threads": "-t",
            "--batch-size": "-b", "--ubatch-size": "-ub", "--fit-target": "-fitt"}


def _flag(text: str) -> str:
    return _ALIASES.get(text, text)


def _is_flag(text: str) -> bool:
    if not text.startswith("-"):
        return False
    try:
        float(text)
    except ValueError:
        return True
    return False


def merged(settings: tuple[str, ...], extra: tuple[str, ...]) -> tuple[str, ...]:
    """``settings`` without the flags (and their values) ``extra`` sets, then ``extra``."""
    taken = {_flag(a) for a in extra if _is_flag(a)}
    kept: list[str] = []
    skip = False
    for index, arg in enumerate(settings):
        if skip:
            skip = False
            continue
        if _is_flag(arg) and _flag(arg) in taken:
            skip = index + 1 < len(settings) and not _is_flag(settings[index + 1])
            continue
        kept.append(arg)
    return (*kept, *extra)


def with_candidate(contender: BuildInfo, candidate: Candidate) -> BuildInfo:
    return dataclasses.replace(contender, settings=merged(contender.settings, candidate.args()))

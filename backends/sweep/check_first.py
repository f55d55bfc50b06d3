"""The correctness check a sweep runs before measuring (``--check``)."""
from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from backends.builds import BuildInfo
from backends.correctness import CheckFinished, CheckInputError, CheckOptions, run_check_with
from backends.journal.journal import RunEvent
from backends.journal.sweep import SweepNote
from backends.sweep.hosts import remote_names


async def check_before_sweep(contenders: Sequence[BuildInfo], model: Path,
                             options: CheckOptions) -> AsyncIterator[RunEvent]:
    """The check's events, for the builds on this machine that have llama-perplexity."""
    if remote := remote_names(contenders):
        yield SweepNote(f"correctness check runs on this machine only: not for {', '.join(remote)}", time.time())
    checkable = [c for c in contenders if c.perplexity is not None and not c.host]
    if not checkable:
        yield SweepNote("correctness check skipped: no build has llama-perplexity", time.time())
        return
    try:
        async for event in run_check_with(checkable, model, options):
            yield event
    except CheckInputError as error:  # bad check options: say so and measure anyway
        yield CheckFinished((), problem=f"correctness check not run: {error}")

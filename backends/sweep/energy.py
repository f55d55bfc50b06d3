"""Energy per counted repetition, from llama-bench's own progress lines.

``prompt run k/N`` / ``generation run k/N`` are printed as repetition k's timed work begins
(after its depth prefill, which has a ``depth run`` line of its own); the next progress line
or the result ends it. A window opens there and closes at the next line, so load, warm-up
(llama-bench's own, and any timed repetition set aside as warm-up), depth prefill,
pauses and cooling are never in it. Each counted repetition gives its joules; the figures
are the mean tok/J and J/token with their spread across repetitions.
"""

from __future__ import annotations

import re
import statistics

from backends.journal.sweep import TestPoint
from backends.telemetry.energy import EnergyMeter, Window

_TIMED = re.compile(r"^(?:prompt|generation) run (\d+)/(\d+)")
TOO_SHORT = "too short to measure"
# A point's energy figures as journalled beside its telemetry: tok/J and J/token with their
# spreads, the method, its notes (None: not measured).
EnergyFigures = dict[str, str | int | float | None]


class RepetitionTracker:
    """One llama-bench's progress lines: a window per counted repetition, kept per test
    (its index in the process), so a test that runs on before the last one's result was
    read never lends that one its windows."""

    def __init__(self, meter: EnergyMeter | None, warmup: int) -> None:
        self.meter, self.warmup = meter, warmup
        self.current: int | None = None  # the repetition whose timed work is running
        self.test = 0  # the test it belongs to
        self.windows: list[tuple[int, Window]] = []

    def progress(self, message: str, test: int = 0) -> None:
        """Every progress line of the process, in order, with its test's index."""
        if self.meter is None:
            return
        match = _TIMED.match(message)
        repetition = int(match.group(1)) if match else None
        if repetition is not None and repetition == self.current and test == self.test:
            return  # a pg test's generation continues the same repetition
        self._close()
        self.current, self.test = repetition, test
        if repetition is not None and repetition > self.warmup:
            self.meter.open()

    def _close(self) -> None:
        if self.meter is not None and (window := self.meter.close()) is not None:
            self.windows.append((self.test, window))
        self.current = None

    def abandon(self) -> None:
        """The process ended or was stopped: an open window is dropped (its sampler stops)."""
        if self.meter is not None:
            self.meter.close()
        self.current, self.windows = None, []

    def finish(self, point: TestPoint, test: int = 0) -> EnergyFigures | None:
        """The result of test ``test`` arrived: its energy figures (None without a meter)."""
        if self.meter is None:
            return None
        if self.test == test:
            self._close()
        windows = [w for t, w in self.windows if t == test]
        self.windows = [(t, w) for t, w in self.windows if t != test]
        figures = energy_figures(windows, point.tokens, self.meter.method)
        figures["idle_power_w"] = self.meter.idle_w
        return figures


def energy_figures(windows: list[Window], tokens: int, method: str) -> EnergyFigures:
    """tok/J and J/token over the counted repetitions, each with its spread (sample stdev)."""
    figures: EnergyFigures = {"energy_method": method, "energy_windows": len(windows)}
    joules = [w.joules for w in windows]
    if not windows or any(j is None or j <= 0 for j in joules):
        short = sum(1 for j in joules if j is None)
        figures.update(tokens_per_joule=None, energy_note=TOO_SHORT + (
            f" ({short} of {len(windows)} repetitions shorter than the counter or sampler resolves)"
            if windows else " (no counted repetition was seen)"))
        return figures
    measured = [float(j) for j in joules if j is not None]
    per_joule = [tokens / j for j in measured]
    per_token = [j / tokens for j in measured]
    powers = [j / w.seconds for j, w in zip(measured, windows) if w.seconds > 0]
    figures.update(
        tokens_per_joule=statistics.fmean(per_joule),
        tokens_per_joule_sd=statistics.stdev(per_joule) if len(per_joule) > 1 else None,
        joules_per_token=statistics.fmean(per_token),
        joules_per_token_sd=statistics.stdev(per_token) if len(per_token) > 1 else None,
        measured_power_w=statistics.fmean(powers) if powers else None,
        energy_samples=sum(w.samples for w in windows))
    return figures

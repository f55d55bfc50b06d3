"""What the Run screen writes: the request it runs, its header line, its progress bar,
and whether host figures matter (part of the model on the CPU). Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tui.state.format import format_eta
from tui.state.run import CANCELLED, FINISHED, PAUSED, RUNNING, RunState, eta_seconds

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.models import ModelInfo
    from backends.sweep import RunRequest, SweepSpec
    from tui.state.plan import Plan


@dataclass(frozen=True)
class SweepStart:
    """What the Run screen starts: a new run (its ``RunRequest``, built once by Setup) or
    the rest of the interrupted run in ``resume_dir``; ``plan``: Setup's estimate, for the ETA."""

    request: RunRequest | None = None
    resume_dir: Path | None = None
    plan: Plan | None = field(default=None, hash=False, compare=False)

    @property
    def builds(self) -> tuple[BuildInfo, ...]:
        return tuple(self.request.builds) if self.request else ()

    @property
    def model(self) -> ModelInfo | Path | str | None:
        return self.request.model if self.request else None

    @property
    def spec(self) -> SweepSpec | None:
        return self.request.spec if self.request else None


def describe(sources_line: str, name: str, state: RunState) -> str:
    """One line about a build: what the sources know, else what its first result says."""
    if sources_line:
        return sources_line
    progress = state.build(name)
    if progress and progress.results:
        raw = progress.results[0].raw
        device = raw.get("gpu_info") or raw.get("cpu_info") or ""
        return " · ".join(str(p) for p in (raw.get("backends"), device,
                                            progress.results[0].build_label) if p)
    return ""


def progress_bar(done: int, total: int, width: int = 20) -> str:
    """``[#######-------------]  35%``: plain characters, readable without colour."""
    fraction = done / total if total else 0.0
    filled = round(fraction * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {fraction * 100:3.0f}%"


def header_text(state: RunState, now: float) -> str:
    """``model · cpu vs vulkan · 3/8 done · ETA ~2 min`` (or paused, finished...)."""
    status = {RUNNING: "running", PAUSED: "paused (p resumes)", FINISHED: "finished",
              CANCELLED: "cancelled"}.get(state.status, state.status)
    failures = sum(len(b.failures) for b in state.builds)
    progress = f"{state.done}/{state.total} done" + (f", {failures} failed" if failures else "")
    if state.active and (state.check is not None or not state.run_id):
        progress, status = "checking correctness first", ""
    eta = eta_seconds(state, now) if state.status == RUNNING else None
    if eta is not None:
        status = f"ETA {format_eta(eta)}"
    parts = [Path(state.model).name, " vs ".join(b.name for b in state.builds), progress,
             status]
    return " · ".join(p for p in parts if p)


def spec_splits(spec: SweepSpec | None) -> bool:
    """Host CPU and RAM matter when part of the model runs on the CPU."""
    if spec is None:
        return False
    ngl = spec.n_gpu_layers
    return bool(spec.n_cpu_moe or spec.auto_ncmoe or (ngl is not None and 0 <= ngl < 99))


def journal_splits(events: Sequence[object]) -> bool:
    from backends.journal.sweep import SweepStarted

    for event in events:
        if isinstance(event, SweepStarted):
            spec = event.spec or {}
            ngl = spec.get("n_gpu_layers")
            return bool(spec.get("n_cpu_moe") or spec.get("auto_ncmoe")
                        or (ngl is not None and 0 <= ngl < 99))
    return False

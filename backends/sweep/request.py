"""One sweep, as asked: built once (by the command line, by Setup, or from a journal to
resume), validated once (by ``run_sweep``, before anything starts), carried whole to the
runner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backends.builds import BuildInfo
from backends.correctness import CheckOptions
from backends.journal.journal import RunEvent
from backends.journal.tune import TuneSpec
from backends.models import ModelInfo
from backends.remote.rpc import LocalRpcServer
from backends.sweep.hosts import remote_names
from backends.sweep.plan import DEFAULT_GRANULARITY, GRANULARITIES, TimeoutPolicy
from backends.sweep.spec import SweepError, SweepSpec


@dataclass(frozen=True)
class RunRequest:
    """What to run, where its journal goes, how the contenders take turns.

    ``model``: a ModelInfo, or a path (read here, or on the contenders' host when every one
    is remote; ``model_paths`` gives it per host). ``run_dir``: the run's folder (default a
    new one under ``runs_root``, itself defaulting to the data folder's runs). ``check``: the
    correctness check to run first; None runs none. ``local_rpc``: rpc-server processes
    started before the sweep measures and stopped when it ends. ``history``: the events of
    the interrupted run this one resumes.
    """

    builds: Sequence[BuildInfo]
    model: ModelInfo | Path | str
    spec: SweepSpec
    run_dir: Path | None = None
    runs_root: Path | None = None
    run_id: str | None = None
    interleave: bool = True
    parallel: bool = False
    granularity: str = DEFAULT_GRANULARITY
    telemetry_interval: float = 0.5
    timeouts: TimeoutPolicy | None = None  # None: a fresh default policy for the run
    check: CheckOptions | None = None
    model_paths: Mapping[str, str] = field(default_factory=dict)
    local_rpc: Sequence[LocalRpcServer] = ()
    history: Sequence[RunEvent] = ()
    tune: TuneSpec | None = None  # calibrate each contender before the first point

    def __post_init__(self) -> None:
        # Frozen means frozen: lists handed in are kept as tuples.
        object.__setattr__(self, "builds", tuple(self.builds))
        object.__setattr__(self, "local_rpc", tuple(self.local_rpc))
        object.__setattr__(self, "history", tuple(self.history))
        object.__setattr__(self, "model_paths", dict(self.model_paths))
        if self.run_dir is not None:
            object.__setattr__(self, "run_dir", Path(self.run_dir))

    @property
    def model_path(self) -> Path:
        return self.model.path if isinstance(self.model, ModelInfo) else Path(self.model)

    def validate(self) -> None:
        """Raise SweepError (one line) for what is wrong without reading the model."""
        self.spec.validate()
        if not self.builds:
            raise SweepError("no builds to run: add at least one llama.cpp build")
        names = [c.name for c in self.builds]
        if len(set(names)) != len(names):
            raise SweepError(f"build names must differ: {', '.join(names)}")
        for contender in self.builds:
            if contender.problem:
                raise SweepError(f"build {contender.name!r} cannot run: {contender.problem}")
            if contender.bench is None:
                raise SweepError(f"build {contender.name!r} has no llama-bench")
        if self.granularity not in GRANULARITIES:
            raise SweepError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {self.granularity!r}")
        if self.granularity == "resident" and (remote := remote_names(self.builds)):
            raise SweepError(f"--granularity resident pauses llama-bench with signals, which do not "
                             f"travel over ssh ({', '.join(remote)} on another host): use auto, point or depth")

"""Everything the app reads, in one object handed to it: builds, models, the profile
store, telemetry, where runs go, and the rates builds have shown (for estimates).

Screens ask the sources and tell them what the user added; they never keep their own
lists. ``version`` grows with every change, so a screen can tell whether what it shows
is current. Nothing here imports Textual.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from backends.estimate import Rates
from tui.probes import ProbeQueue

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.correctness import CheckOptions
    from backends.models import ModelInfo
    from backends.telemetry.model import TelemetrySource
    from profiles.store import ProfileStore
    from tui.state.run import RunState


TelemetryOption: TypeAlias = "TelemetrySource | Callable[[], TelemetrySource] | None"


class RateBook:
    """Rates each build showed on each model, kept in a small JSON file between starts."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._rates: dict[str, dict[str, Any]] = {}
        self._loaded = path is None

    @staticmethod
    def key(build: BuildInfo, model: ModelInfo) -> str:
        return "|".join((build.name, str(build.folder), build.version, str(model.path),
                         str(model.size_bytes)))

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            data = json.loads(self.path.read_text(encoding="utf-8")) if self.path else {}
        except (OSError, ValueError):
            data = {}  # a missing or damaged file: estimates start afresh
        self._rates = {k: v for k, v in data.items() if isinstance(v, dict)}

    def get(self, build: BuildInfo, model: ModelInfo) -> Rates | None:
        self._load()
        entry = self._rates.get(self.key(build, model))
        try:
            return Rates(float(entry["pp"]), float(entry["tg"]), float(entry.get("load_s", 0)),
                         str(entry.get("basis", ""))) if entry else None
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, build: BuildInfo, model: ModelInfo, rates: Rates) -> None:
        self._load()
        self._rates[self.key(build, model)] = {
            "pp": rates.pp, "tg": rates.tg, "load_s": rates.load_s, "basis": rates.basis,
            "at": time.time()}
        if self.path is None:
            return
        try:
            from profiles.store import atomic_write_text

            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self._rates, indent=1))
        except OSError:
            pass  # estimates are a convenience: a read-only folder costs only them

    def learn(self, state: RunState, builds: Sequence[BuildInfo],
              model: ModelInfo) -> None:
        """Keep the depth-0 rates a finished run measured, for the next estimate."""
        when = time.strftime("%Y-%m-%d %H:%M")
        for progress in state.builds:
            build = next((b for b in builds if b.name == progress.name), None)
            rates = {kind: [r.avg_ts for r in progress.results if r.point.kind == kind
                            and r.point.depth == 0 and not math.isnan(r.avg_ts)]
                     for kind in ("pp", "tg")}
            if build is None or not rates["pp"] or not rates["tg"]:
                continue
            known = self.get(build, model)
            self.put(build, model, Rates(max(rates["pp"]), min(rates["tg"]),
                                         known.load_s if known else 0.0,
                                         f"the run of {when}"))


class Sources:
    """What the app reads. ``builds``/``models`` None: not found yet (discovery fills them)."""

    def __init__(self, builds: Sequence[BuildInfo] | None = None,
                 models: Sequence[ModelInfo] | None = None, *,
                 store: ProfileStore | None = None, telemetry: TelemetryOption = None,
                 runs_root: Path | None = None, build_paths: Mapping[str, Path] | None = None,
                 model_dirs: Sequence[Path] = (), rates: RateBook | None = None,
                 check_options: CheckOptions | Mapping[str, Any] | None = None) -> None:
        self.builds: list[BuildInfo] | None = list(builds) if builds is not None else None
        self.models: list[ModelInfo] | None = list(models) if models is not None else None
        self._store = store
        self._telemetry = telemetry
        self.telemetry_problem: str | None = None
        self.runs_root = runs_root
        self.build_paths = dict(build_paths or {})
        self.model_dirs = list(model_dirs)
        self.rates = rates or RateBook(_rates_path(runs_root))
        self.probes = ProbeQueue(self.rates)  # every timing probe, one at a time
        from backends.correctness import CheckOptions

        # The correctness check's settings (tests give a few as a mapping).
        self.check_options = (check_options if isinstance(check_options, CheckOptions)
                              else CheckOptions(**dict(check_options or {})))
        self.chosen_model = ""  # the model chosen on the Setup screen (the race's default)
        self.version = 0

    # Lazily opened parts: the first frame does not wait for them.
    @property
    def store(self) -> ProfileStore:
        if self._store is None:
            from profiles import ProfileStore

            self._store = ProfileStore()
        return self._store

    @property
    def telemetry(self) -> TelemetrySource | None:
        """The telemetry source; a factory given to the constructor is called on first use."""
        option = self._telemetry
        if callable(option) and not hasattr(option, "stream"):
            try:
                self._telemetry = option()
            except Exception as error:
                self.telemetry_problem = f"Telemetry is off: {error}"
                self._telemetry = None
        return self._telemetry  # type: ignore[return-value]

    @property
    def ready(self) -> bool:
        return self.builds is not None and self.models is not None

    # Finding and adding.
    def discover(self) -> None:
        """Look for builds and models not given (probes start processes: call in a thread)."""
        if self.builds is None:
            from backends.builds import discover_builds

            self.add_builds(discover_builds(extra=self.build_paths))
        if self.models is None:
            from backends.models import find_models

            self.add_models(find_models(self.model_dirs))

    def add_builds(self, found: Iterable[BuildInfo]) -> list[BuildInfo]:
        """Add builds whose names are new; returns those added."""
        known = {b.name for b in self.builds or ()}
        fresh = [b for b in found if b.name not in known]
        self.builds = [*(self.builds or ()), *fresh]
        self.version += 1
        return fresh

    def add_models(self, found: Iterable[ModelInfo], folder: Path | None = None,
                   ) -> list[ModelInfo]:
        """Add models whose paths are new; returns those added."""
        known = {str(m.path) for m in self.models or ()}
        fresh = [m for m in found if str(m.path) not in known]
        self.models = [*(self.models or ()), *fresh]
        if folder is not None and folder not in self.model_dirs:
            self.model_dirs.append(folder)
        self.version += 1
        return fresh

    def remove_build(self, name: str) -> None:
        self.builds = [b for b in self.builds or () if b.name != name]
        self.version += 1

    def build(self, name: str) -> BuildInfo | None:
        return next((b for b in self.builds or () if b.name == name), None)

    def model(self, path: str) -> ModelInfo | None:
        return next((m for m in self.models or () if str(m.path) == path), None)

    def describe_build(self, name: str) -> str:
        """One line about a build: backend, device and version ("" when unknown)."""
        info = self.build(name)
        if info is None:
            return ""
        device = info.devices[0].description if info.devices else ""
        return " · ".join(p for p in (info.backend, device, info.version) if p)


def _rates_path(runs_root: Path | None) -> Path:
    """Beside the runs: a test's own folder when it gives one, else the user data folder."""
    if runs_root is not None:
        return runs_root.parent / "rates.json"
    from backends.paths import data_dir

    return data_dir() / "rates.json"

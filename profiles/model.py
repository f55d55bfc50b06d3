"""The saved verdict of a run: hardware, model, builds, every result and the recommendation.

Everything is a frozen dataclass; ``profiles.store`` turns a Profile into TOML and back.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends.journal.sweep import BenchResult, PointFailed, SweepStarted

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.journal.journal import RunEvent
    from backends.models import ModelInfo
    from backends.server import ServedBuild, ServeEvent
    from profiles.verdict import VerdictSettings
from backends.sweep.conditions import conditions
from backends.sweep.outcomes import point_failures
from profiles.confounds import confounds
from profiles.outcome import Recommendation
from profiles.records import (
    Correctness,
    FailureRecord,
    ModelFacts,
    ProfileResult,
    RunRecords,
    failure_record,
    records_from_events,
)
from profiles.serving import ServingVerdict, serving_verdicts
from profiles.tuning import Tuning, tuning_from_events

SCHEMA_VERSION = 1
IDENTITY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class HostFingerprint:
    hostname: str = ""
    os: str = ""
    kernel: str = ""
    cpu: str = ""
    cpu_count: int | None = None
    gpu_name: str | None = None
    vbios: str | None = None
    driver: str | None = None
    rocm_version: str | None = None
    vulkan_version: str | None = None
    cuda_version: str | None = None


@dataclass(frozen=True)
class BuildRecord:
    name: str
    backend: str = ""
    build_number: int | None = None
    commit: str | None = None
    path: str | None = None
    gpu: str | None = None
    rpc: tuple[str, ...] = ()  # RPC servers this contender used as devices
    cpu_fallback: str | None = None  # built for this GPU backend ("Vulkan"), found no device


@dataclass(frozen=True)
class Profile:
    name: str
    created: str
    host: HostFingerprint
    model: ModelFacts
    builds: tuple[BuildRecord, ...]
    sweep_spec: Mapping[str, Any] = field(default_factory=dict, hash=False)
    results: tuple[ProfileResult, ...] = ()
    failures: tuple[PointFailed, ...] = ()
    correctness: Mapping[str, Mapping[str, Any]] | None = field(default=None, hash=False)
    races: tuple[Mapping[str, Any], ...] = ()
    recommendation: Recommendation | None = None
    schema: int = SCHEMA_VERSION
    # Failures of imported files that name no test point (a crashed log): kept as found.
    failure_records: tuple[FailureRecord, ...] = ()
    # A server duel (``backends.server.duel_summary``: levels with their per-request samples)
    # and the serving verdict per concurrency level made from it.
    serving: Mapping[str, Any] | None = field(default=None, hash=False)
    serving_verdicts: tuple[ServingVerdict, ...] = ()
    # Where the server disagrees with llama-bench, in one sentence ("" when they agree).
    serving_disagreement: str = ""
    # A tuned run: each contender's chosen settings and what they were worth (profiles.tuning),
    # and every difference between the contenders besides the backend (profiles.confounds).
    tuning: Tuning | None = None
    confounds: tuple[str, ...] = ()
    # How the figures were taken (``backends.sweep.conditions``): warm-up, cool starts, ...
    conditions: tuple[str, ...] = ()
    # A soak's figures (``backends.soak.SoakSummary.to_json()``) and the nightly gate's runs.
    soak: Mapping[str, Any] | None = field(default=None, hash=False)
    gates: tuple[Mapping[str, Any], ...] = ()
    # Read, never saved: the fields this version writes that the file lacked (saved by an
    # older version; ``profiles.compat`` filled them in).
    lacking: tuple[str, ...] = field(default=(), compare=False, metadata={"saved": False})

    def results_by_build(self) -> dict[str, list[BenchResult]]:
        out: dict[str, list[BenchResult]] = {b.name: [] for b in self.builds}
        for entry in self.results:
            out.setdefault(entry.build, []).append(entry.result)
        return out

    def failures_by_build(self) -> dict[str, list[PointFailed]]:
        out: dict[str, list[PointFailed]] = {}
        for failure in self.failures:
            out.setdefault(failure.build, []).append(failure)
        for record in self.failure_records:
            if record.point is not None:
                out.setdefault(record.build, []).append(PointFailed(
                    build=record.build, point=record.point, reason=record.reason,
                    exit_code=record.exit_code, signal=record.signal, timed_out=record.timed_out))
        return out

    def records(self, machine: str = "") -> RunRecords:
        """The profile's own records: what ``recommend_run`` made its recommendation from."""
        model = self.model.file_name or None
        failures = (*(failure_record(f, model) for f in self.failures), *self.failure_records)
        facts = self.model if self.model.is_moe is not None or self.model.layers else None
        return RunRecords(results=self.results, failures=tuple(failures),
                          correctness={k: dict(v) for k, v in (self.correctness or {}).items()},
                          model=facts, machine=machine, builds=tuple(b.name for b in self.builds),
                          fallbacks={b.name: b.cpu_fallback for b in self.builds if b.cpu_fallback})

    def build(self, name: str) -> BuildRecord | None:
        return next((b for b in self.builds if b.name == name), None)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _read_small(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(4096).strip() or None
    except OSError:
        return None


def _cpu_name() -> str:
    text = _read_small("/proc/cpuinfo") or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or text[:0] or platform.machine()


def host_fingerprint(*, gpu_name: str | None = None, vbios: str | None = None, driver: str | None = None,
                     rocm_version: str | None = None, vulkan_version: str | None = None,
                     cuda_version: str | None = None) -> HostFingerprint:
    """Cheap facts about this machine; GPU facts come from whoever probed the GPU.

    Reads only the platform module and a few small files (no subprocesses). The ROCm
    version is taken from /opt/rocm/.info/version when not given.
    """
    if rocm_version is None:
        rocm_version = _read_small("/opt/rocm/.info/version")
    if driver is None:
        nvidia = _read_small("/proc/driver/nvidia/version")
        if nvidia:
            driver = nvidia.splitlines()[0][:200]
    return HostFingerprint(hostname=socket.gethostname(), os=platform.system(), kernel=platform.release(),
                           cpu=_cpu_name(), cpu_count=os.cpu_count(), gpu_name=gpu_name, vbios=vbios,
                           driver=driver, rocm_version=rocm_version, vulkan_version=vulkan_version,
                           cuda_version=cuda_version)


def model_identity(path: str | Path) -> str:
    """SHA-256 of a GGUF file's first MiB (its header and metadata) and its size.

    Cheap on a 100 GB model, and it changes whenever the metadata or quantization does. For
    a split model give the first part.
    """
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(IDENTITY_BYTES))
    digest.update(str(path.stat().st_size).encode())
    return "sha256-1m:" + digest.hexdigest()


def model_facts_from(info: ModelInfo) -> ModelFacts:
    """From a backends.models.ModelInfo (or anything with the same attributes)."""
    path = getattr(info, "path", None)
    identity = None
    if path:
        try:
            identity = model_identity(path)
        except OSError:
            identity = None
    return ModelFacts(
        file_name=Path(str(path)).name if path else str(getattr(info, "name", "") or ""),
        architecture=getattr(info, "architecture", None), parameters=getattr(info, "parameters", None),
        quant=getattr(info, "quant", None), size_bytes=getattr(info, "size_bytes", None),
        is_moe=getattr(info, "is_moe", None), layers=getattr(info, "layers", None),
        expert_count=getattr(info, "expert_count", None), identity=identity,
        path=str(path) if path else None)


def model_facts_from_results(results: Iterable[BenchResult]) -> ModelFacts:
    from profiles.contenders import is_moe_model_type

    for result in results:
        raw = result.raw
        model_type = str(raw.get("model_type") or "")
        name = str(raw.get("model_filename") or "").replace("\\", "/").rsplit("/", 1)[-1]
        size = raw.get("model_size")
        params = raw.get("model_n_params")
        return ModelFacts(file_name=name or model_type, architecture=model_type.split(" ")[0] or None,
                          parameters=params if isinstance(params, int) else None,
                          quant=model_type.rsplit(" ", 1)[-1] if " " in model_type else None,
                          size_bytes=size if isinstance(size, int) else None,
                          is_moe=is_moe_model_type(model_type) if model_type else None,
                          model_type=model_type or None)
    return ModelFacts()


def _build_records(names: Sequence[str], results: Sequence[ProfileResult], builds: Iterable[BuildInfo] | None,
                   started: SweepStarted | None) -> tuple[BuildRecord, ...]:
    info_by_name = {getattr(b, "name", None): b for b in (builds or ())}
    out = []
    for build_name in names:
        info = info_by_name.get(build_name)
        sample = next((r.result for r in results if r.build == build_name), None)
        raw = sample.raw if sample else {}
        folder = (str(getattr(info, "folder", "")) if info is not None else "") or (
            started.build_paths.get(build_name) if started else None)
        number = getattr(info, "build_number", None) if info is not None else raw.get("build_number")
        backend = (getattr(info, "backend", None) if info is not None else None) or raw.get("backends") or ""
        commit = (getattr(info, "commit", None) if info is not None else None) or (
            str(raw["build_commit"]) if raw.get("build_commit") else None)
        contender = started.contenders.get(build_name, {}) if started else {}
        out.append(BuildRecord(name=build_name, backend=str(backend),
                               build_number=number if isinstance(number, int) else None,
                               commit=commit, path=folder or None,
                               gpu=str(raw.get("gpu_info")) if raw.get("gpu_info") else None,
                               rpc=tuple(str(e) for e in contender.get("rpc") or ()),
                               cpu_fallback=_fallback_of(info, contender)))
    return tuple(out)


def _fallback_of(info: BuildInfo | None, contender: Mapping[str, object]) -> str | None:
    """The GPU backends a contender was built for and found no device for, if any."""
    found = contender.get("cpu_fallback") or (info.cpu_fallback if info is not None else None)
    return str(found) if found else None


def profile_from_journal(events: Iterable[RunEvent], *, name: str, model_info: ModelInfo | None = None,
                         builds: Iterable[BuildInfo] | None = None, host: HostFingerprint | None = None,
                         correctness: Correctness | None = None,
                         races: Iterable[Mapping[str, object]] = (),
                         settings: VerdictSettings | None = None) -> Profile:
    """Build a Profile (with its recommendation) from a run journal's events.

    ``builds`` may be backends.builds.BuildInfo objects for richer build records; otherwise
    the names and folders come from SweepStarted and the results' own build fields. The
    recommendation is ``recommend_run`` on the same records the journal gives everyone.
    """
    events = list(events)
    started = next((e for e in events if isinstance(e, SweepStarted)), None)
    base = records_from_events(events, correctness=correctness)
    failures = tuple(point_failures(events))  # a point measured again after a failure has no failure
    correctness = correctness if correctness is not None else (base.correctness or None)
    facts = model_facts_from(model_info) if model_info is not None else model_facts_from_results(
        r.result for r in base.results)
    if started and started.model:
        # The sweep's own model path beats what llama-bench echoed back.
        facts = replace(facts, file_name=Path(started.model).name, path=str(started.model))
    profile = Profile(name=name, created=now_iso(), host=host or host_fingerprint(), model=facts,
                      builds=_build_records(base.build_names(), base.results, builds, started),
                      sweep_spec=dict(started.spec) if started else {},
                      results=base.results, failures=failures,
                      correctness={k: dict(v) for k, v in correctness.items()} if correctness else None,
                      races=tuple(dict(r) for r in races),
                      tuning=tuning_from_events(events), confounds=confounds(events),
                      conditions=conditions(events))
    return with_recommendation(profile, settings)


def with_recommendation(profile: Profile, settings: VerdictSettings | None = None) -> Profile:
    """The profile with the recommendation ``recommend_run`` makes from its own records."""
    from profiles.verdict import VerdictSettings, recommend_run

    if not profile.results and not profile.failures and not profile.failure_records:
        return replace(profile, recommendation=None)
    return replace(profile, recommendation=recommend_run(profile.records(), settings or VerdictSettings()))


def profile_from_serve_duel(events: Iterable[ServeEvent], *, name: str, builds: Iterable[BuildInfo | ServedBuild] = (),
                            model_info: ModelInfo | None = None, host: HostFingerprint | None = None) -> Profile:
    """A Profile from a server duel's events (a journal's too): the duel summary and its
    serving verdicts. ``builds`` (BuildInfo or ServedBuild objects) name the folders."""
    from backends.server.summary import duel_summary
    from profiles.disagreement import disagreement

    duel = duel_summary(events)
    model_path = str(duel.get("model") or "")
    facts = model_facts_from(model_info) if model_info is not None else ModelFacts(
        file_name=Path(model_path).name, path=model_path or None)
    info = {str(getattr(b, "name", "")): b for b in builds}
    verdicts = serving_verdicts(duel)
    records = tuple(BuildRecord(name=n, backend=str(getattr(info.get(n), "backend", "") or ""),
                                path=str(getattr(info.get(n), "folder", "") or "") or None)
                    for n in duel.get("contenders", {}))
    return Profile(name=name, created=now_iso(), host=host or host_fingerprint(), model=facts,
                   builds=records, serving=duel, serving_verdicts=verdicts,
                   serving_disagreement=disagreement(duel, verdicts))


def profile_from_import(run: Any, *, name: str, host: HostFingerprint | None = None, settings: Any = None) -> Profile:
    """A Profile from ``profiles.importers.ImportedRun`` (published or old llama-bench output)."""
    records = run.records()
    builds = tuple(BuildRecord(name=b.name, backend=b.backend, build_number=b.build_number,
                               commit=b.commit, path=None, gpu=b.gpu) for b in run.builds)
    facts = model_facts_from_results(r.result for r in records.results)
    named = any(b.machine for b in run.builds)
    gpu = next((b.gpu for b in run.builds if b.gpu), None)
    fallback = HostFingerprint(hostname=run.machine if named else "", gpu_name=gpu)
    profile = Profile(name=name, created=now_iso(), host=host or fallback,
                      model=facts, builds=builds,
                      sweep_spec={"imported_from": list(run.files), "machine": run.machine},
                      results=records.results, failure_records=records.failures)
    return with_recommendation(profile, settings)

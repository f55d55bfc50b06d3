"""The saved verdict of a run: hardware, model, builds, every result and the recommendation.

Everything is a frozen dataclass; ``profiles.store`` turns a Profile into TOML and back.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from backends.events import BenchResult, PointFailed, ResultReceived, SweepStarted

from profiles.verdict import Recommendation

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
class ModelFacts:
    file_name: str = ""
    architecture: str | None = None
    parameters: int | None = None
    quant: str | None = None
    size_bytes: int | None = None
    is_moe: bool | None = None
    layers: int | None = None
    expert_count: int | None = None
    identity: str | None = None
    model_type: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class BuildRecord:
    name: str
    backend: str = ""
    build_number: int | None = None
    commit: str | None = None
    path: str | None = None
    gpu: str | None = None


@dataclass(frozen=True)
class ProfileResult:
    build: str
    result: BenchResult
    telemetry: Mapping[str, Any] | None = field(default=None, compare=True, hash=False)


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

    def results_by_build(self) -> dict[str, list[BenchResult]]:
        out: dict[str, list[BenchResult]] = {b.name: [] for b in self.builds}
        for entry in self.results:
            out.setdefault(entry.build, []).append(entry.result)
        return out

    def failures_by_build(self) -> dict[str, list[PointFailed]]:
        out: dict[str, list[PointFailed]] = {}
        for failure in self.failures:
            out.setdefault(failure.build, []).append(failure)
        return out

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


def model_facts_from(info: Any) -> ModelFacts:
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
    from profiles.verdict import is_moe_model_type

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


def profile_from_journal(events: Iterable[Any], *, name: str, model_info: Any = None,
                         builds: Iterable[Any] | None = None, host: HostFingerprint | None = None,
                         correctness: Mapping[str, Mapping[str, Any]] | None = None,
                         races: Iterable[Mapping[str, Any]] = (), settings: Any = None) -> Profile:
    """Build a Profile (with its recommendation) from a run journal's events.

    ``builds`` may be backends.builds.BuildInfo objects for richer build records; otherwise
    the names and folders come from SweepStarted and the results' own build fields.
    """
    from profiles.verdict import VerdictSettings, recommend

    started: SweepStarted | None = None
    results: list[ProfileResult] = []
    failures: list[PointFailed] = []
    for event in events:
        if isinstance(event, SweepStarted) and started is None:
            started = event
        elif isinstance(event, ResultReceived):
            results.append(ProfileResult(build=event.build, result=event.result,
                                         telemetry=dict(event.telemetry) if event.telemetry else None))
        elif isinstance(event, PointFailed):
            failures.append(event)
    names: list[str] = list(started.builds) if started else []
    for item in (*results, *failures):
        if item.build not in names:
            names.append(item.build)
    info_by_name = {getattr(b, "name", None): b for b in (builds or ())}
    records = []
    for build_name in names:
        info = info_by_name.get(build_name)
        sample = next((r.result for r in results if r.build == build_name), None)
        raw = sample.raw if sample else {}
        folder = (str(getattr(info, "folder", "")) if info is not None else "") or (
            started.build_paths.get(build_name) if started else None)
        number = getattr(info, "build_number", None) if info is not None else raw.get("build_number")
        records.append(BuildRecord(
            name=build_name,
            backend=str((getattr(info, "backend", None) if info is not None else None) or raw.get("backends") or ""),
            build_number=number if isinstance(number, int) else None,
            commit=(getattr(info, "commit", None) if info is not None else None) or (str(raw["build_commit"]) if raw.get("build_commit") else None),
            path=folder or None, gpu=str(raw.get("gpu_info")) if raw.get("gpu_info") else None))
    if model_info is not None:
        facts = model_facts_from(model_info)
    else:
        facts = model_facts_from_results(r.result for r in results)
    if started and started.model:
        # The sweep's own model path beats what llama-bench echoed back.
        facts = replace(facts, file_name=Path(started.model).name, path=str(started.model))
    profile = Profile(name=name, created=now_iso(), host=host or host_fingerprint(), model=facts,
                      builds=tuple(records), sweep_spec=dict(started.spec) if started else {},
                      results=tuple(results), failures=tuple(failures),
                      correctness={k: dict(v) for k, v in correctness.items()} if correctness else None,
                      races=tuple(dict(r) for r in races))
    by_build = profile.results_by_build()
    recommendation = recommend(by_build, profile.failures_by_build(),
                               model_info=facts if facts.is_moe is not None or facts.layers else None,
                               correctness=profile.correctness,
                               settings=settings or VerdictSettings()) if by_build else None
    return _with_recommendation(profile, recommendation)


def _with_recommendation(profile: Profile, recommendation: Recommendation | None) -> Profile:
    from dataclasses import replace

    return replace(profile, recommendation=recommendation)


def profile_from_import(run: Any, *, name: str, host: HostFingerprint | None = None, settings: Any = None) -> Profile:
    """A Profile from ``profiles.importers.ImportedRun`` (published or old llama-bench output)."""
    from profiles.verdict import VerdictSettings, recommend

    results = tuple(ProfileResult(build=b, result=r) for b, rs in run.results.items() for r in rs)
    failures = tuple(f for fs in run.failures.values() for f in fs)
    builds = tuple(BuildRecord(name=b.name, backend=b.backend, build_number=b.build_number,
                               commit=b.commit, path=None, gpu=b.gpu) for b in run.builds)
    facts = model_facts_from_results(r.result for r in results)
    recommendation = recommend(run.results, run.failures, settings=settings or VerdictSettings())
    return Profile(name=name, created=now_iso(), host=host or HostFingerprint(), model=facts,
                   builds=builds, sweep_spec={"imported_from": list(run.files)}, results=results,
                   failures=failures, recommendation=recommendation)

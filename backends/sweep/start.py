"""Starting a sweep: check the input, start local RPC servers, open the journal, run."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from pathlib import Path

from backends.journal.journal import JOURNAL_NAME, Journal, RunEvent, new_run_dir
from backends.journal.tune import tune_from_history
from backends.models import ModelInfo, read_model
from backends.paths import runs_root as default_runs_root
from backends.remote.rpc import LocalRpcServer, RpcError
from backends.sweep.argv import bench_argv
from backends.sweep.control import SweepControl
from backends.sweep.plan import chunk_points, free_vram_bytes, resolve_auto_ncmoe
from backends.sweep.request import RunRequest
from backends.sweep.runner import Sweep
from backends.sweep.spec import SweepError, SweepSpec
from backends.telemetry.model import TelemetrySource


def _check_model(request: RunRequest, model: ModelInfo) -> None:
    """What needs the model: its file (here) and every argument list, checked before anything
    starts, so a build that cannot run the spec fails now, not midway."""
    # A remote contender's model is a path on its host: the caller checked it there.
    if any(not c.host for c in request.builds) and not model.path.is_file():
        raise SweepError(f"model file not found: {model.path}")
    for contender in request.builds:
        for chunk in chunk_points(request.spec.points(), "depth"):
            bench_argv(contender, model.path, request.spec, chunk)


def _read_model(request: RunRequest) -> ModelInfo:
    model, builds = request.model, request.builds
    if isinstance(model, ModelInfo):
        if model.problem:  # a model the user picked from a list that said it cannot run
            raise SweepError(f"model {model.path.name} cannot run: {model.problem}")
        return model
    if builds and all(b.host for b in builds):
        from backends.remote.probe import read_remote_model

        host = builds[0].host or ""
        return read_remote_model(host, request.model_paths.get(host, str(model)))
    return read_model(Path(model))  # for its size; llama-bench itself says if it cannot load


async def run_sweep(request: RunRequest, *, telemetry: TelemetrySource | None = None,
                    host_telemetry: Mapping[str, TelemetrySource] | None = None,
                    control: SweepControl | None = None) -> AsyncGenerator[RunEvent, None]:
    """Run ``request``; yield events as they are journalled.

    Raises SweepError (one line) before anything starts for bad input, JournalError when
    the run folder cannot be written or another process holds its journal. ``telemetry``
    samples this machine; contenders with a ``host`` run there over ssh
    (``backends.remote.ssh``) with that host's telemetry from ``host_telemetry[host]``;
    machines measure at the same time, contenders on one machine take turns. ``control``
    pauses and resumes between test points. A resumed run that was tuned continues its
    tune from the journal (``backends.tune``).
    """
    request.validate()
    tune = request.tune or tune_from_history(request.history)  # a tuned run resumes its tune
    if tune is not None:
        try:
            tune.validate()
        except ValueError as error:
            raise SweepError(str(error)) from None
        request = dataclasses.replace(request, tune=tune)
    info = _read_model(request)
    _check_model(request, info)
    spec, notes = request.spec, []
    if spec.auto_ncmoe and spec.n_cpu_moe is None:
        spec, note = resolve_auto_ncmoe(spec, info, free_vram_bytes(
            d.free_mib for b in request.builds for d in b.devices))
        notes.append(note)
    async with _serving(request.local_rpc), contextlib.aclosing(_run(
            request, info, spec, notes, telemetry, dict(host_telemetry or {}), control)) as events:
        async for event in events:
            yield event


@contextlib.asynccontextmanager
async def _serving(servers: Sequence[LocalRpcServer]) -> AsyncIterator[None]:
    try:
        for server in servers:
            try:
                await server.start()
            except RpcError as error:
                raise SweepError(str(error)) from None
        yield
    finally:
        for server in servers:
            await server.stop()


async def _run(request: RunRequest, info: ModelInfo, spec: SweepSpec, notes: list[str],
               telemetry: TelemetrySource | None, host_telemetry: dict[str, TelemetrySource],
               control: SweepControl | None) -> AsyncGenerator[RunEvent, None]:
    run_id, run_dir = request.run_id, request.run_dir
    if run_dir is None:
        run_id, run_dir = new_run_dir(request.runs_root or default_runs_root(), info.path)
    journal = Journal(run_dir / JOURNAL_NAME)
    sweep = Sweep(request, info, spec, run_dir=run_dir, run_id=run_id or run_dir.name, journal=journal,
                  telemetry=telemetry, host_telemetry=host_telemetry, control=control or SweepControl(),
                  notes=[n for n in notes if n])
    # Closing this iterator closes the sweep's at once, which kills its processes.
    async with contextlib.aclosing(sweep.events()) as events:
        async for event in events:
            yield event

"""Starting a sweep: check the input, start local RPC servers, open the journal, run."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence

from backends.builds import BuildInfo
from backends.models import ModelInfo, read_model
from backends.paths import runs_root as default_runs_root
from backends.rpc import LocalRpcServer, RpcError
from backends.journal.tune import TuneSpec, tune_from_history
from backends.sweep.argv import bench_argv
from backends.sweep.hosts import (remote_names)
from backends.journal.journal import JOURNAL_NAME, Journal, RunEvent, new_run_dir
from backends.sweep.monitors import TelemetrySource
from backends.sweep.plan import (DEFAULT_GRANULARITY, GRANULARITIES, TimeoutPolicy,
                                 chunk_points, free_vram_bytes,
                                 resolve_auto_ncmoe)
from backends.sweep.spec import SweepError, SweepSpec
from backends.telemetry import Telemetry
from backends.sweep.control import SweepControl, SweepOptions
from backends.sweep.runner import Sweep




def _validate(contenders: Sequence[BuildInfo], model: ModelInfo, spec: SweepSpec,
              granularity: str) -> None:
    spec.validate()
    if not contenders:
        raise SweepError("no builds to run: add at least one llama.cpp build")
    names = [c.name for c in contenders]
    if len(set(names)) != len(names):
        raise SweepError(f"build names must differ: {', '.join(names)}")
    for contender in contenders:
        if contender.problem:
            raise SweepError(f"build {contender.name!r} cannot run: {contender.problem}")
        if contender.bench is None:
            raise SweepError(f"build {contender.name!r} has no llama-bench")
    # A remote contender's model is a path on its host: the caller checked it there.
    if any(not c.host for c in contenders) and not model.path.is_file():
        raise SweepError(f"model file not found: {model.path}")
    if granularity not in GRANULARITIES:
        raise SweepError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    if granularity == "resident" and (remote := remote_names(contenders)):
        raise SweepError(f"--granularity resident pauses llama-bench with signals, which do not "
                         f"travel over ssh ({', '.join(remote)} on another host): use auto, point or depth")
    # Check every argv before starting: a build that cannot run the spec fails now, not midway.
    for contender in contenders:
        for chunk in chunk_points(spec.points(), "depth"):
            bench_argv(contender, model.path, spec, chunk)


async def run_sweep(
    builds: Sequence[BuildInfo],
    model: ModelInfo | Path | str,
    spec: SweepSpec,
    *,
    run_dir: Path | None = None,
    runs_root: Path | None = None,
    telemetry: Telemetry | None = None,
    telemetry_interval: float = 0.5,
    interleave: bool = True,
    parallel: bool = False,
    granularity: str = DEFAULT_GRANULARITY,
    control: SweepControl | None = None,
    run_id: str | None = None,
    timeouts: TimeoutPolicy | None = None,
    check: dict[str, Any] | None = None,
    history: Sequence[Any] = (),
    local_rpc: Sequence[LocalRpcServer] = (),
    host_telemetry: Mapping[str, TelemetrySource] | None = None,
    model_paths: Mapping[str, str] | None = None,
    tune: TuneSpec | None = None,
) -> AsyncGenerator[RunEvent, None]:
    """Run ``spec`` for every contender on ``model``; yield events as they are journalled.

    The run goes into ``run_dir``, or a new folder under ``runs_root`` (default: the data
    folder's runs). Raises SweepError (one line) before anything starts for bad input,
    JournalError when the run folder cannot be written or another process holds its
    journal. ``history``:
    the events of an interrupted run of this journal (see ``resume``). ``local_rpc``:
    rpc-server processes this sweep starts before it measures and stops when it ends.

    Contenders with a ``host`` run there over ssh (``backends.remote``), with the model at
    ``model_paths[host]`` on it (default: the same path) and that host's telemetry from
    ``host_telemetry[host]``; machines measure at the same time, contenders on one machine
    take turns. When every contender is remote, a model given as a path is read there.
    ``tune``: calibrate each contender first (``backends.tune``); a resumed run that was
    tuned continues its tune from the journal.
    """
    if isinstance(model, ModelInfo):
        info = model
        if info.problem:  # a model the user picked from a list that said it cannot run
            raise SweepError(f"model {info.path.name} cannot run: {info.problem}")
    elif builds and all(b.host for b in builds):
        from backends.remote_probe import read_remote_model

        host = builds[0].host or ""
        info = read_remote_model(host, (model_paths or {}).get(host, str(model)))
    else:
        info = read_model(Path(model))  # for its size; llama-bench itself says if it cannot load
    _validate(builds, info, spec, granularity)
    notes = []
    if spec.auto_ncmoe and spec.n_cpu_moe is None:
        spec, note = resolve_auto_ncmoe(spec, info, free_vram_bytes(
            d.free_mib for b in builds for d in b.devices))
        notes.append(note)
    tune = tune or tune_from_history(history)
    if tune is not None:
        try:
            tune.validate()
        except ValueError as error:
            raise SweepError(str(error)) from None
    options = SweepOptions(interleave, parallel, granularity, telemetry_interval, check,
                           dict(host_telemetry or {}), dict(model_paths or {}), tune)
    async with _serving(local_rpc), contextlib.aclosing(_run(
            builds, info, spec, notes, run_dir, runs_root, run_id, telemetry, options, control,
            timeouts, history)) as events:
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


async def _run(builds: Sequence[BuildInfo], info: ModelInfo, spec: SweepSpec, notes: list[str],
               run_dir: Path | None, runs_root: Path | None, run_id: str | None,
               telemetry: Telemetry | None, options: SweepOptions, control: SweepControl | None,
               timeouts: TimeoutPolicy | None, history: Sequence[Any]) -> AsyncGenerator[RunEvent, None]:
    if run_dir is None:
        run_id, run_dir = new_run_dir(runs_root or default_runs_root(), info.path)
    run_dir = Path(run_dir)
    journal = Journal(run_dir / JOURNAL_NAME)
    sweep = Sweep(builds, info, spec, run_dir=run_dir, run_id=run_id or run_dir.name,
                  journal=journal, telemetry=telemetry, options=options,
                  control=control or SweepControl(), timeouts=timeouts or TimeoutPolicy(),
                  history=history, notes=[n for n in notes if n])
    # Closing this iterator closes the sweep's at once, which kills its processes.
    async with contextlib.aclosing(sweep.events()) as events:
        async for event in events:
            yield event

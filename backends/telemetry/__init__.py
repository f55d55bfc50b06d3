"""GPU and host telemetry: VRAM, temperatures, power, busy, clocks, throttling, CPU and RAM.

Sources, each optional and chosen automatically, merged by PCI address in this order (a
later source only fills what earlier ones could not give):

* ``amdgpu-sysfs``: the amdgpu driver's files (hwmon temperatures edge/junction/memory found
  by label, with their critical and emergency limits; power and cap, clocks, fan, VRAM/GTT,
  busy; ``gpu_metrics`` of every fixed revision for throttle reasons and gaps; per-process
  VRAM from ROCm's KFD files and DRM fdinfo). Needs no library; the root is configurable.
* ``pyamdgpuinfo``: libdrm queries.
* ``amd-smi``: the amdsmi library, else the ``amd-smi`` command (limits, readings).
* ``rocm-smi``: ``rocm-smi --json``.
* ``nvml``: NVIDIA GPUs through nvidia-ml-py.
* ``host``: psutil; system CPU and RAM, and the CPU and RSS of the watched process tree.

For the panels and the thermal guard: ``temperature_headroom(device)`` /
``closest_to_limit(device)`` say how far each temperature is below its critical limit, and
``aggregate_devices(devices, in_use)`` gives the totals across the GPUs a run uses.

A value a source cannot give is None and ``sample.missing[field]`` says why; never 0.

Using it from the runner::

    from backends.telemetry import Telemetry, summarize, device_names_from_builds

    telemetry = Telemetry(device_names=device_names_from_builds(builds))
    for source, reason in telemetry.unavailable:   # say once why a source is off
        ...
    async for snapshot in telemetry.stream(interval=0.5):   # one TelemetrySnapshot a tick
        journal(TelemetryRecorded(sample=snapshot_to_json(snapshot), at=snapshot.at))
    # when a llama-bench child starts:
    telemetry.watch_pids([process.pid])     # its children are followed too
    # when its test point ends:
    summary = summarize(snapshots_since_point_started)
    ResultReceived(..., telemetry=summary.to_json())
    telemetry.unwatch_all()
    telemetry.close()                       # or use ``with Telemetry() as telemetry:``

``stream`` samples on one dedicated thread and never blocks the event loop; it keeps its
own schedule on the monotonic clock. Stop it by leaving the ``async for`` (or cancelling
the task that iterates it). ``sample()`` can also be called directly (blocking, well
under a millisecond on sysfs and psutil).
"""

from backends.telemetry.core import (
    DEFAULT_INTERVAL_S,
    MAX_INTERVAL_S,
    MIN_INTERVAL_S,
    SOURCE_ORDER,
    Telemetry,
    TelemetryError,
    device_names_from_builds,
    match_backend_names,
    merge_device_samples,
    validate_interval,
)
from backends.telemetry.devices import (
    DeviceTotals,
    TemperatureHeadroom,
    aggregate_devices,
    closest_to_limit,
    temperature_headroom,
)
from backends.telemetry.model import (
    DeviceSample,
    HostSample,
    TelemetrySnapshot,
    TelemetrySummary,
    snapshot_from_json,
    snapshot_to_json,
    summarize,
    tokens_per_joule,
)

__all__ = [
    "DEFAULT_INTERVAL_S",
    "MAX_INTERVAL_S",
    "MIN_INTERVAL_S",
    "SOURCE_ORDER",
    "DeviceSample",
    "DeviceTotals",
    "HostSample",
    "Telemetry",
    "TelemetryError",
    "TelemetrySnapshot",
    "TelemetrySummary",
    "TemperatureHeadroom",
    "aggregate_devices",
    "closest_to_limit",
    "device_names_from_builds",
    "match_backend_names",
    "merge_device_samples",
    "snapshot_from_json",
    "snapshot_to_json",
    "summarize",
    "temperature_headroom",
    "tokens_per_joule",
    "validate_interval",
]

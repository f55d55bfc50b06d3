"""Sweeps: the grid, the plan, the llama-bench processes and the runner (its journal and
events: ``backends.journal``).

    spec.py      SweepSpec, presets, SweepError
    grid.py      the grid's settings, each described once (flag, option, help, read, argv)
    argv.py      llama-bench argument lists for a contender
    request.py   RunRequest: one sweep as asked, validated once, carried whole to the runner
    plan.py      pure scheduling: chunks, ABBA order, granularity, time-outs
    adaptive.py  when a point's comparison is decided (log-ratio, tie band, outliers)
    records.py   llama-bench's result and progress lines, read strictly; failures
    bench.py     llama-bench processes on the process driver (backends.tool)
    guard.py     the thermal guard
    monitors.py  telemetry per machine: ticks, block summaries, a guard each
    hosts.py     contenders on several machines: launchers, lanes, dropped connections
    runs.py      listing runs
    runner.py    the Sweep and run_sweep
    resume.py    resume
"""

from backends.journal.journal import (
                                    JOURNAL_NAME,
                                    Journal,
                                    JournalBusy,
                                    JournalError,
                                    JournalRead,
                                    finished_points,
                                    new_run_dir,
                                    read_journal,
)
from backends.sweep.argv import BenchBuild, bench_argv
from backends.sweep.control import SweepControl
from backends.sweep.grid import GRID, GridField, has_flag
from backends.sweep.plan import (
                                    DEFAULT_GRANULARITY,
                                    GRANULARITIES,
                                    TimeoutPolicy,
                                    choose_granularity,
                                    chunk_points,
                                    grid_prefix,
                                    resolve_auto_ncmoe,
                                    schedule,
)
from backends.sweep.request import RunRequest
from backends.sweep.resume import resume, resume_request
from backends.sweep.runs import RunSummary, list_runs, summarize_run
from backends.sweep.spec import (
                                    CACHE_TYPES,
                                    LONG_CONTEXT_DEPTH,
                                    PRESET_DESCRIPTIONS,
                                    PRESETS,
                                    SweepError,
                                    SweepSpec,
                                    parse_int_list,
                                    preset,
)
from backends.sweep.start import run_sweep

__all__ = [
                                    "CACHE_TYPES",
                                    "DEFAULT_GRANULARITY",
                                    "GRANULARITIES",
                                    "GRID",
                                    "JOURNAL_NAME",
                                    "LONG_CONTEXT_DEPTH",
                                    "PRESETS",
                                    "PRESET_DESCRIPTIONS",
                                    "BenchBuild",
                                    "GridField",
                                    "Journal",
                                    "JournalBusy",
                                    "JournalError",
                                    "JournalRead",
                                    "RunRequest",
                                    "RunSummary",
                                    "SweepControl",
                                    "SweepError",
                                    "SweepSpec",
                                    "TimeoutPolicy",
                                    "bench_argv",
                                    "choose_granularity",
                                    "chunk_points",
                                    "finished_points",
                                    "grid_prefix",
                                    "has_flag",
                                    "list_runs",
                                    "new_run_dir",
                                    "parse_int_list",
                                    "preset",
                                    "read_journal",
                                    "resolve_auto_ncmoe",
                                    "resume",
                                    "resume_request",
                                    "run_sweep",
                                    "schedule",
                                    "summarize_run",
]

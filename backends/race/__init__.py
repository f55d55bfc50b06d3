"""The completion race: one prompt streamed through each build's completion tool.

    spec.py     the builds, each tool's flags and argument list
    (its spec and events are records of the run: backends/journal/race.py)
    output.py   reading a tool's output: timings, errors, the generated text
    run.py      running it: one build after the other (one GPU) or all at once
    summary.py  a race as plain data for a profile
"""

from backends.journal.race import (
                                  RACE_EVENT_TYPES,
                                  BuildFailed,
                                  BuildFinished,
                                  BuildRetrying,
                                  BuildStarted,
                                  Divergence,
                                  FirstToken,
                                  RaceEvent,
                                  RaceFinished,
                                  RaceSpec,
                                  RaceStarted,
                                  TimedPiece,
                                  TokenReceived,
)
from backends.race.output import (
                                  ToolTimings,
                                  compare_outputs,
                                  failure_reason,
                                  first_difference,
                                  output_was_cut,
                                  parse_timings,
)
from backends.race.run import collect_race, run_race
from backends.race.spec import (
                                  COMPLETION_TOOLS,
                                  DEFAULT_ATTEMPTS,
                                  DEFAULT_TIMEOUT_S,
                                  HELP_TIMEOUT_S,
                                  RaceBuild,
                                  RaceError,
                                  ToolFlags,
                                  as_race_build,
                                  completion_argv,
                                  find_completion_tool,
                                  long_document,
                                  tool_flags,
)
from backends.race.summary import printable, race_summary

__all__ = [
    "COMPLETION_TOOLS", "DEFAULT_ATTEMPTS", "DEFAULT_TIMEOUT_S", "HELP_TIMEOUT_S",
    "RACE_EVENT_TYPES", "BuildFailed", "BuildFinished", "BuildRetrying", "BuildStarted",
    "Divergence", "FirstToken", "RaceBuild", "RaceError", "RaceEvent", "RaceFinished",
    "RaceSpec", "RaceStarted", "TimedPiece", "TokenReceived", "ToolFlags", "ToolTimings",
    "as_race_build", "collect_race", "compare_outputs", "completion_argv", "failure_reason",
    "find_completion_tool", "first_difference", "long_document", "output_was_cut",
    "parse_timings", "printable", "race_summary", "run_race", "tool_flags",
]

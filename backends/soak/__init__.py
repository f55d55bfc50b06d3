"""The soak: builds as llama-server under hours of mixed load, their answers checked
(its events live with every other kind's, in ``backends.journal.soak``).

    spec.py    SoakSpec, durations, SoakError
    probes.py  fixed prompts, token probabilities, the KL divergence and top-1 measure
    load.py    the mixed load of one slot, the window's counters
    build.py   one build's server: serve, probe, watch memory, restart after a crash or hang
    run.py     the reference answers, every build at once, resume
    summary.py per build and per hour: crashes, hangs, errors, wrong answers, memory, drift
"""

from backends.journal.soak import (
                                  SOAK_DURABLE,
                                  SOAK_EVENT_TYPES,
                                  ProbeReference,
                                  SoakBuild,
                                  SoakCrashed,
                                  SoakEvent,
                                  SoakFinished,
                                  SoakHang,
                                  SoakHttpError,
                                  SoakProbe,
                                  SoakServerUp,
                                  SoakStarted,
                                  SoakStartFailed,
                                  SoakWindow,
                                  SoakWrongAnswer,
)
from backends.soak.run import Unfinished, last_unfinished, resume_soak, run_soak
from backends.soak.spec import SoakError, SoakSpec, duration_words, parse_duration
from backends.soak.summary import BuildSoakSummary, SoakSummary, summarize, summary_lines

__all__ = [
                                  "SOAK_DURABLE",
                                  "SOAK_EVENT_TYPES",
                                  "BuildSoakSummary",
                                  "ProbeReference",
                                  "SoakBuild",
                                  "SoakCrashed",
                                  "SoakError",
                                  "SoakEvent",
                                  "SoakFinished",
                                  "SoakHang",
                                  "SoakHttpError",
                                  "SoakProbe",
                                  "SoakServerUp",
                                  "SoakSpec",
                                  "SoakStartFailed",
                                  "SoakStarted",
                                  "SoakSummary",
                                  "SoakWindow",
                                  "SoakWrongAnswer",
                                  "Unfinished",
                                  "duration_words",
                                  "last_unfinished",
                                  "parse_duration",
                                  "resume_soak",
                                  "run_soak",
                                  "summarize",
                                  "summary_lines",
]

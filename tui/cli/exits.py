"""The exit codes every verb shares: one table, shown by every ``--help`` and the README.

A script tells "compared", "one side failed some points", "no comparison", "cancelled" and
"bad input" apart by the code alone; what happened is on stderr.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

COMPARED = 0
STOPPED = 1
BAD_INPUT = 2
PARTIAL = 3
NO_COMPARISON = 4
SLOWER = 5  # gate
WRONG = 6  # gate and soak
UNSTABLE = 7  # gate and soak: crashed, hung or gave no result
CANCELLED = 130
CLOSED_PIPE = 141

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (COMPARED, "done: every contender measured every point (a tie is a verdict too); "
               "for other commands, done"),
    (STOPPED, "stopped: the run could not go on (its journal could not be written); "
              "`resume` continues it"),
    (BAD_INPUT, "bad input: an option, path, model, build or profile that cannot be used"),
    (PARTIAL, "partial: a contender failed some points (or races, load levels); "
              "the rest was compared"),
    (NO_COMPARISON, "no comparison: a contender failed every point, or nothing could be compared"),
    (SLOWER, "slower (gate): the new build is slower beyond the threshold, significantly, at the "
             "points the line names"),
    (WRONG, "wrong (gate, soak): the correctness check or a soak's probes found wrong output"),
    (UNSTABLE, "failed (gate, soak): a build crashed, hung or gave no result"),
    (CANCELLED, "cancelled: Ctrl-C, SIGTERM or SIGHUP, or a question answered no; "
                "what finished is kept"),
    (CLOSED_PIPE, "the output's reader went away (piped into head)"),
)

EPILOG = "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES)


def comparison_status(measured: Mapping[str, int], failed: Mapping[str, int]) -> int:
    """The code for a comparison from what each contender measured and failed (counts of
    points, races, levels...): COMPARED, PARTIAL or NO_COMPARISON. A contender named in
    either that measured nothing leaves nothing to compare."""
    names = set(measured) | set(failed)
    if not names or any(not measured.get(n, 0) for n in names):
        return NO_COMPARISON
    return PARTIAL if any(failed.get(n, 0) for n in names) else COMPARED


def counts(pairs: Iterable[str]) -> dict[str, int]:
    """How often each contender name occurs."""
    found: dict[str, int] = {}
    for name in pairs:
        found[name] = found.get(name, 0) + 1
    return found


def readme_table() -> str:
    """The table as the README shows it (a test keeps the two equal)."""
    rows = "\n".join(f"| {code} | {text} |" for code, text in EXIT_CODES)
    return "| code | meaning |\n|---|---|\n" + rows

"""The server duel: builds as users run them, under llama-server and concurrent load.

    from backends.server import ServedBuild, DuelSpec, DuelState, fold, run_serve_duel

``run_serve_duel`` yields frozen events (``backends.journal.serve``); ``fold`` turns them
into a frozen ``DuelState`` snapshot; ``LevelSummary`` is the verdict-ready result of one
contender at one load level; ``validate_launch`` checks a launch command for real.
"""

from backends.journal.serve import BenchGap, Level, LevelSummary, ServeEvent
from backends.server.duel import run_serve_duel
from backends.server.fold import ContenderState, DuelState, StreamState, fold
from backends.server.journal import EventSink, MemoryJournal, read_journal
from backends.server.launch import ServedBuild, ServerSettings
from backends.server.spec import DuelError, DuelSpec
from backends.server.summary import duel_summary

__all__ = [
    "BenchGap",
    "ContenderState",
    "DuelError",
    "DuelSpec",
    "DuelState",
    "EventSink",
    "Level",
    "LevelSummary",
    "MemoryJournal",
    "ServeEvent",
    "ServedBuild",
    "ServerSettings",
    "StreamState",
    "duel_summary",
    "fold",
    "read_journal",
    "run_serve_duel",
]

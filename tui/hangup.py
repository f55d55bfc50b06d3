"""When the terminal goes away (a closed SSH connection, a killed tmux session), leave.

SIGHUP stops the app's work the way q does: the sweep is cancelled, which kills its
llama.cpp processes and journals the cancellation. Then the process leaves at once,
without Textual's shutdown: there is no terminal left to restore, and Textual's writes to
a dead one block (seen: its output thread gone after a write failed, the main thread
waiting for ever to queue the "mouse off" sequence). The standard streams are pointed at
/dev/null first, so nothing else blocks on them, and a watchdog makes sure the process
is gone within ``GRACE_S`` even if stopping hangs: it kills every child process group
that is left and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Awaitable, Callable

from backends import procs

GRACE_S = 5.0
EXIT_CODE = 128 + signal.SIGHUP


def _silence_terminal() -> None:
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)


def _watchdog(grace_s: float) -> None:
    timer = threading.Timer(grace_s, _leave)
    timer.daemon = True
    timer.start()


def _leave() -> None:
    procs.kill_all()
    os._exit(EXIT_CODE)


def install(stop_work: Callable[[], Awaitable[None]], grace_s: float = GRACE_S) -> None:
    """On SIGHUP: silence the dead terminal, stop the app's work, and leave (within ``grace_s``)."""
    stopping: list[asyncio.Task[None]] = []  # held, so the task is not collected midway

    async def stop_and_leave() -> None:
        try:
            await stop_work()
        finally:
            _leave()

    def hung_up() -> None:
        if stopping:
            return
        _silence_terminal()
        _watchdog(grace_s)
        stopping.append(asyncio.get_running_loop().create_task(stop_and_leave()))

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hung_up)

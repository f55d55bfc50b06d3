"""When the terminal goes away (a closed SSH connection, a killed tmux session), leave.

SIGHUP quits the app the way q does: the sweep is cancelled, which kills its llama.cpp
processes and journals the cancellation. But the terminal is gone, and Textual's last
writes to it can block its output thread for ever (seen: every thread waiting on a lock,
the process re-parented and alive for hours). So first the standard streams are pointed
at /dev/null (writes succeed and go nowhere), and a watchdog makes sure the process is
gone within ``GRACE_S``: it kills every child process group that is left and exits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable

from backends import procs

GRACE_S = 5.0
EXIT_CODE = 128 + signal.SIGHUP


def _silence_terminal() -> None:
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for fd in (0, 1, 2):
        try:
            os.dup2(devnull, fd)
        except OSError:
            pass


def _watchdog(grace_s: float) -> None:
    def leave() -> None:
        procs.kill_all()
        os._exit(EXIT_CODE)

    timer = threading.Timer(grace_s, leave)
    timer.daemon = True
    timer.start()


def install(quit_app: Callable[[], None], grace_s: float = GRACE_S) -> None:
    """On SIGHUP: silence the dead terminal, quit the app, and leave within ``grace_s``."""

    def hung_up() -> None:
        _silence_terminal()
        _watchdog(grace_s)
        quit_app()

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hung_up)

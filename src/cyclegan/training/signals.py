"""A run that outlives its terminal: SIGINT / SIGTERM ask the loop to stop after the current step (it
then saves), SIGHUP (a closed SSH session) keeps it training with the terminal output sent to /dev/null."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("cyclegan.train")


@contextlib.contextmanager
def stop_requests(request_stop: Callable[[str], None], follow: Path) -> Iterator[None]:
    """While inside: SIGINT / SIGTERM call ``request_stop(signal name)``; SIGHUP detaches the terminal
    and logs where to ``follow`` the run. The previous handlers come back on exit. Signals can only
    be caught on the main thread: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_stop(signum, frame) -> None:
        request_stop(signal.Signals(signum).name)

    def terminal_closed(signum, frame) -> None:
        # The SSH session is gone: writing to its terminal would fail (EIO) or block. Point
        # stdout / stderr at /dev/null and keep training; the log files keep being written.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
        log.info("SIGHUP: terminal closed, training continues; follow %s", follow)

    wanted = {signal.SIGINT: on_stop, signal.SIGTERM: on_stop}
    if hasattr(signal, "SIGHUP"):
        wanted[signal.SIGHUP] = terminal_closed
    previous = {sig: signal.signal(sig, handler) for sig, handler in wanted.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

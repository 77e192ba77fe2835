"""Ctrl-C at safe points: hold SIGINT while a unit of work that must be all-or-nothing runs."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends, then deliver it to the handler that was in place.

    Off the main thread (where Python delivers no signals) the block runs as is. A handler installed
    outside Python (unknown to `signal.getsignal`) comes back as Python's default, KeyboardInterrupt.

    Example:
        >>> with deferred_interrupt():
        ...     frames, lines = 1, 1  # a Ctrl-C here lands after both are written
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
        if received:
            signal.raise_signal(signal.SIGINT)

"""Ctrl-C at safe points: hold SIGINT while a unit of work that must be all-or-nothing runs; SIGTERM and
SIGHUP treated as Ctrl-C where outputs must be finalised."""

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


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP (`kill`, `docker stop`, a closed terminal) act as Ctrl-C.

    They raise SIGINT, so they reach whatever handles Ctrl-C at that moment (deferred_interrupt included)
    and a long run stopped either way finalises its outputs. Off the main thread the block runs as is.

    Example:
        >>> with terminate_as_interrupt():
        ...     pass  # `kill <pid>` here raises KeyboardInterrupt
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signums = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {
        s: signal.signal(s, lambda signum, frame: signal.raise_signal(signal.SIGINT)) for s in signums
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

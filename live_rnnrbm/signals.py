"""The signals that stop a long run cleanly: Ctrl-C, SIGTERM and SIGHUP (the terminal was closed).
``live-rnnrbm play`` stops on them with every note off first, ``train`` after its current step
with a checkpoint written.

    old = catch_stop_signals(lambda signum, reason: stop_because(reason))
    ...
    restore(old)
"""
from __future__ import annotations

import signal
from typing import Any, Callable

# the signals that stop cleanly, with the reason the instrument prints
STOP_SIGNALS = {"SIGINT": "interrupted", "SIGTERM": "terminated", "SIGHUP": "hung up"}


def catch_stop_signals(handler: Callable[[int, str], None]) -> dict[int, Any]:
    """Send each stop signal this system has (Windows has no SIGHUP) to ``handler(signum, reason)``;
    returns the handlers they had, by signal number, for ``restore``."""
    old = {}
    for name, reason in STOP_SIGNALS.items():
        if hasattr(signal, name):
            s = getattr(signal, name)
            old[s] = signal.signal(s, lambda signum, frame, reason=reason: handler(signum, reason))
    return old


def restore(old: dict[int, Any]) -> None:
    """Give the signals back the handlers ``catch_stop_signals`` returned."""
    for s, h in old.items():
        signal.signal(s, h)

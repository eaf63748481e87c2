"""Real-time scheduling for the instrument's own threads (the clock and the frame worker).

    from live_rnnrbm.live.realtime import promote
    ok = promote(CLOCK_PRIORITY)    # call from the thread itself; False if the OS says no

On a busy machine (a DAW, a training run on every core) an ordinary thread can wait several
milliseconds for a core; a note played just before a tick then misses it. SCHED_FIFO threads run as
soon as they are ready. The priorities sit below JACK's own (its server runs at 10 by default, its
clients' process threads just under it), so the audio graph still comes first. It needs the right
to real-time scheduling (root, or a user in the `audio` group with an `rtprio` limit, as JACK
users usually are); without it the instrument runs as before and says so.
"""
from __future__ import annotations

import os

CLOCK_PRIORITY = 6    # the internal clock: sends each frame on its deadline
WORKER_PRIORITY = 5   # the frame worker: computes the next frame between ticks


def promote(priority: int) -> bool:
    """Make the calling thread SCHED_FIFO at ``priority``; True if the OS allowed it."""
    if not hasattr(os, "sched_setscheduler"):   # macOS, Windows: the OS's own MIDI timing applies
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # 0: this thread (Linux)
        return True
    except (OSError, ValueError):
        return False


def is_realtime() -> bool:
    """Whether the calling thread runs under a real-time policy."""
    if not hasattr(os, "sched_getscheduler"):
        return False
    return os.sched_getscheduler(0) in (os.SCHED_FIFO, os.SCHED_RR)

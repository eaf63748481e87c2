"""Running a kernel over many frames in chunks: a progress bar that moves between chunks, and a
stop request (the trainer's Ctrl-C) answered between two of them.

    in_chunks(N, "log-likelihood (AIS)", progress, lambda s, e: kernel(..., V[s:e], ...))
"""
from __future__ import annotations

import sys
import time
from typing import Callable

import numba

from ..errors import Stopped

CHUNK_FRAMES = 256  # frames per kernel call: progress updates often, threads stay busy
STOP_CHUNK_SECONDS = 0.25  # with a stop to honour, a chunk lasts about this long: Ctrl-C is answered at once


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="frame", smoothing=0.1, leave=False, file=sys.stderr,
                dynamic_ncols=True)


def in_chunks(N: int, desc: str, progress: bool, step: Callable[[int, int], None], chunk: int = CHUNK_FRAMES,
              should_stop: Callable[[], bool] | None = None) -> None:
    """step(s, e) over frames [0, N) in chunks, with a progress bar when asked: threads stay
    busy within a chunk, and the bar moves between them. With ``should_stop``, it is asked before
    every chunk and ``errors.Stopped`` raised when it says so; the chunks are then sized to last
    about ``STOP_CHUNK_SECONDS`` (a kernel call cannot be interrupted, and a full chunk of AIS can
    take seconds). Every frame draws from its own stream, so chunking never changes a result."""
    bar = _progress(N, desc, progress)
    # with a stop to honour, start with one frame per thread: a frame's cost is unknown until measured
    size = min(chunk, numba.get_num_threads()) if should_stop is not None else chunk
    try:
        s = 0
        while s < N:
            if should_stop is not None and should_stop():
                raise Stopped(desc)
            e = min(N, s + size)
            t0 = time.perf_counter()
            step(s, e)
            if should_stop is not None:  # aim the next chunk at the time budget, growing at most 4×
                took = max(time.perf_counter() - t0, 1e-4)
                size = int(min(chunk, 4 * size, max(1, size * STOP_CHUNK_SECONDS / took)))
            if bar is not None:
                bar.update(e - s)
            s = e
    finally:
        if bar is not None:
            bar.close()


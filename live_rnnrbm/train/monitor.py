"""The cheap validation monitor: the generation procedure on every validation frame given its true
history, scored by cross-entropy and frame accuracy (the AIS log-likelihood is ``eval.loglik``'s).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..eval.chunks import in_chunks
from ..kernels import bptt, gibbs
from ..kernels.rng import new_states
from ..model import RnnRbm


def predictive_monitor(model: RnnRbm, arrays: list[np.ndarray], k: int = 25, samples: int = 1,
                       seed: int = 0, progress: bool = False, progress_label: str = "",
                       should_stop: Callable[[], bool] | None = None) -> dict[str, float]:
    """The cheap validation monitor: for every frame, given the true history, a k-step Gibbs
    chain from silence (the generation procedure). Returns the frame-level cross-entropy of the
    chain's mean p(v|h) against the true frame (nats per frame, the tutorial's measure; lower is
    better) and the frame-level accuracy TP/(TP+FP+FN) of the sampled frames (pooled counts).
    The chains run in chunks of frames (``eval.chunks.in_chunks``: a progress bar, and
    ``should_stop`` asked between chunks, ``errors.Stopped`` when it says so); the figures are
    those of ``model.sample_frames`` on all frames at once."""
    runs = [model.run(V) for V in arrays]
    BV = np.ascontiguousarray(np.concatenate([r[1] for r in runs]), model.dtype)
    BH = np.ascontiguousarray(np.concatenate([r[2] for r in runs]), model.dtype)
    Vt = np.concatenate(arrays).astype(model.dtype)
    N = len(Vt)
    xent, tp, fp, fn = 0.0, 0.0, 0.0, 0.0
    for s in range(samples):
        S = np.zeros((N, model.n_visible), model.dtype)  # chains from silence
        PV = np.empty_like(S)
        states = new_states(seed * 7919 + s, N)

        def chains(a: int, b: int) -> None:
            gibbs.gibbs_batch(model.params["W"], model.WT, BV[a:b], BH[a:b], S[a:b], int(k),
                                model.dtype.type(1.0), states[a:b], PV[a:b])

        in_chunks(N, f"{progress_label}cross-entropy" + (f" ({s + 1}/{samples})" if samples > 1 else ""),
                  progress, chains, should_stop=should_stop)
        xent += bptt.cross_entropy(Vt, PV) / samples
        tp += float((S * Vt).sum())
        fp += float((S * (1 - Vt)).sum())
        fn += float(((1 - S) * Vt).sum())
    return {"xent": float(xent), "accuracy": tp / max(1.0, tp + fp + fn)}

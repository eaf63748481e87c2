"""Kernels over every frame's RBM given the true history, beside the AIS log Z: the exact free
energy of the true frame, and the expected frame-level accuracy of the frames sampled from it.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..kernels.gibbs import chain_scratch, gibbs_chain
from ..kernels.jit import JIT
from ..kernels.simd import softplus


@njit(parallel=True, **JIT)
def free_energies(V, W, BV, BH, out):
    """out[n] = F_n(V[n]) = −V[n]·BV[n] − Σ_j softplus((V[n]·W + BH[n])_j), in float64."""
    n_v, n_h = W.shape
    for n in prange(V.shape[0]):
        x = np.empty(n_h)
        for j in range(n_h):
            x[j] = BH[n, j]
        f = 0.0
        for i in range(n_v):
            vi = V[n, i]
            if vi != 0.0:
                f -= vi * BV[n, i]
                for j in range(n_h):
                    x[j] += vi * W[i, j]
        for j in range(n_h):
            f -= softplus(x[j])
        out[n] = f


@njit(parallel=True, **JIT)
def frame_accuracy(W, WT, BV, BH, V, n_samples, k, beta, states, acc, counts):
    """Expected frame-level accuracy of Bay et al. (2009) given the true history.

    For frame n, ``n_samples`` k-step Gibbs chains from silence with biases BV[n], BH[n] (as in
    generation); each sample s scores TP/(TP+FP+FN) against the true frame V[n] — 1 when both
    are silent. acc[n] gets the mean over the samples; counts[n] the summed TP, FP, FN."""
    n_v = W.shape[0]
    for n in prange(V.shape[0]):
        clamp, s_v, pv, work, idx = chain_scratch(W)
        total = 0.0
        tp_all = 0
        fp_all = 0
        fn_all = 0
        for s in range(n_samples):
            s_v[:] = 0.0
            gibbs_chain(W, WT, BV[n], BH[n], s_v, k, beta, clamp, states[n], pv, work, idx)
            tp = 0
            fp = 0
            fn = 0
            for i in range(n_v):
                t_on = V[n, i] != 0.0
                s_on = s_v[i] != 0.0
                if t_on and s_on:
                    tp += 1
                elif s_on:
                    fp += 1
                elif t_on:
                    fn += 1
            d = tp + fp + fn
            total += 1.0 if d == 0 else tp / d
            tp_all += tp
            fp_all += fp
            fn_all += fn
        acc[n] = total / n_samples
        counts[n, 0] = tp_all
        counts[n, 1] = fp_all
        counts[n, 2] = fn_all

"""The negative phase of a teacher-forced subsequence: a k-step chain for every frame, all the
frames in lockstep (``lockstep_chains``).

Under teacher forcing the biases bv_t, bh_t of every frame come from the data before any chain
runs, so the frames' chains are independent and can step together, as the matrix products of
the tutorial's Theano code do. Each half-step then updates every frame's inputs in the cheaper
of two ways: where few units flipped (a trained model), by ± the rows of the flipped units as
``gibbs.gibbs_chain`` does; where many flipped (early training: every unit p ≈ 0.5, half of
them flip at every step), afresh as one matrix product over all the frames (``add_products``),
which loads each weight row once for eight frames instead of once per flip and frame. The chain
of frame t is the CD chain ``gibbs.gibbs_chain`` runs, with its draws taken in another order.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .gibbs import decide, list_flips
from .jit import JIT
from .rng import LANES, fill_draws
from .simd import add_products, add_rows, approx_sigmoid, sigmoid

# Sampling a layer of 100 frames and updating the other layer's inputs by the flipped rows costs
# about twice as much at half the units flipping as at a twentieth; sampling it and recomputing
# the inputs as a product costs about the same at any flip rate: they cross at about 0.4 for the
# hidden layer, 0.5 for the visible (measured at 88 × 150). Dense while more than this share
# flipped at the last step.
DENSE_SHARE = 0.4


@njit(**JIT)
def padded(M):
    """M with its rows padded with zeros to whole 64-byte vectors: a row of 150 floats would end
    every pass over it with a scalar tail (measured: a chain step on 88 × 150 costs a quarter
    more than on 96 × 160)."""
    n, m = M.shape
    out = np.zeros((n, (m + 15) // 16 * 16), M.dtype)
    out[:, :m] = M
    return out


@njit(**JIT)
def set_inputs(A, B, X, Mp):
    """A = B + X·Mp afresh, A's rows padded as Mp's (the padding gets 0)."""
    n = B.shape[1]
    for t in range(A.shape[0]):
        A[t, :n] = B[t]
        A[t, n:] = 0.0
    add_products(X, Mp, A)


@njit(**JIT)
def sample_sparse(state, A, P, units, draws, flipped, Mp, A_other, few_flips):
    """Sample one layer (``units``) of every frame from its inputs A (P and draws: scratch) and
    update the other layer's inputs A_other (= its biases + units·Mp) by the rows of the units
    that flipped. Returns the number of flips."""
    T, m = A.shape
    one = np.ones(1, A.dtype)[0]
    fill_draws(state, draws, T * m)
    total = 0
    for t in range(T):
        approx_sigmoid(A[t], one, P[t])
        decide(A[t], one, P[t], draws[t * m:(t + 1) * m], units.shape[1])
        c = list_flips(P[t], units[t], flipped, few_flips)
        add_rows(Mp, flipped, P[t], c, A_other[t])
        total += c
    return total


@njit(**JIT)
def sample_dense(state, A, P, units, draws):
    """Sample one layer (``units``) of every frame from its inputs A (P and draws: scratch),
    without listing the flips: the caller recomputes the other layer's inputs afresh. Returns
    the number of flips."""
    T, m = A.shape
    n = units.shape[1]
    one = np.ones(1, A.dtype)[0]
    fill_draws(state, draws, T * m)
    total = 0
    for t in range(T):
        p = P[t]
        approx_sigmoid(A[t], one, p)
        decide(A[t], one, p, draws[t * m:(t + 1) * m], n)
        for j in range(n):
            total += p[j] != units[t, j]
            units[t, j] = p[j]
    return total


@njit(**JIT)
def lockstep_chains(W, WT, BV, BH, V, k, state, PV):
    """k steps of block Gibbs sampling v → h → v for every frame of a subsequence at once, in
    place on V (T × n_v, the start states); frame t has the biases BV[t], BH[t]. PV gets each
    frame's p(v=1|h) of the last step (the chain's mean). Draws come from the stream ``state``,
    a layer of every frame at a time.

    Each layer is sampled densely (``sample_dense``, then the other layer's inputs afresh) while
    more than ``DENSE_SHARE`` of its units flipped at the previous step, else sparsely
    (``sample_sparse``); the first step is dense (the hidden layer starts all off).
    """
    T, n_v = V.shape
    n_h = W.shape[1]
    dt = W.dtype
    Wp = padded(W)
    WTp = padded(WT)
    AH = np.empty((T, Wp.shape[1]), dt)  # the hidden inputs v·W + bh_t
    AV = np.empty((T, WTp.shape[1]), dt)  # the visible inputs h·Wᵀ + bv_t
    PH = np.empty_like(AH)
    PVp = np.empty_like(AV)
    H = np.zeros((T, n_h), dt)
    flipped = np.empty(max(n_v, n_h), np.int64)  # a frame's flipped units
    draws = np.empty((T * max(AH.shape[1], AV.shape[1]) + LANES - 1) // LANES * LANES, np.int64)
    set_inputs(AH, BH, V, Wp)
    set_inputs(AV, BV, H, WTp)
    dense_h = dense_v = True
    few = False
    for step in range(k):
        if dense_h:
            flips = sample_dense(state, AH, PH, H, draws)
            set_inputs(AV, BV, H, WTp)
        else:
            flips = sample_sparse(state, AH, PH, H, draws, flipped, WTp, AV, False)
        dense_h = flips > DENSE_SHARE * T * n_h
        if dense_v:
            flips = sample_dense(state, AV, PVp, V, draws)
            if step < k - 1:  # the last sample's hidden inputs are not needed
                set_inputs(AH, BH, V, Wp)
        else:
            flips = sample_sparse(state, AV, PVp, V, draws, flipped, Wp, AH, few)
        dense_v = flips > DENSE_SHARE * T * n_v
        few = 16 * flips < T * n_v  # a trained model's notes rarely flip: a branch per note is cheaper
    one = np.ones(1, dt)[0]
    for t in range(T):
        if PV.itemsize == 4:  # float32 (training): the vectorised σ, within 2e-7
            approx_sigmoid(AV[t, :n_v], one, PV[t])
        else:  # float64 (the tests): exactly
            for i in range(n_v):
                PV[t, i] = sigmoid(AV[t, i])

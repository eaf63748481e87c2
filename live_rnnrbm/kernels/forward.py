"""The deterministic forward computations: the RNN step over a frame or a whole sequence, the
player's trace, the biases of each frame's RBM, its hidden input and free energy.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .jit import JIT
from .simd import add_all_rows, add_rows_on, approx_tanh, softplus


@njit(**JIT)
def rbm_biases(u_prev, bv, bh, Wuv, Wuh, bv_t, bh_t):
    """bv_t = bv + u_{t-1}·Wuv and bh_t = bh + u_{t-1}·Wuh, written into bv_t, bh_t."""
    bv_t[:] = bv
    bh_t[:] = bh
    add_all_rows(Wuv, u_prev, bv_t)
    add_all_rows(Wuh, u_prev, bh_t)


@njit(**JIT)
def rnn_step(v, p, u_prev, bu, Wvu, Wpu, Wuu, u_out):
    """u_t = tanh(bu + v_t·Wvu + p_t·Wpu + u_{t-1}·Wuu), written into u_out (which must not alias
    u_prev); p_t, the player's notes, is zero when nobody plays (the paper's step)."""
    u_out[:] = bu
    add_rows_on(Wvu, v, u_out)
    add_rows_on(Wpu, p, u_out)
    add_all_rows(Wuu, u_prev, u_out)
    if u_out.itemsize == 4:  # float32 (the instrument, training): the vectorised tanh, within 3e-7
        approx_tanh(u_out, u_out)
    else:  # float64 (the tests against finite differences): exactly
        for b in range(u_out.shape[0]):
            u_out[b] = math.tanh(u_out[b])


# The player's trace q_t: what the player has played lately, by pitch class, at a few time scales
# (in frames). Its dynamics are fixed, so that it is a pure function of the player's notes: the
# model's own guesses never reach it, and live it sees exactly what training showed it, however far
# the accompaniment has wandered. Frame t hears q_{t-1} through Wqv, Wqh (the RNN's u_{t-1} likewise).
TRACE_TAUS = (2.0, 8.0, 32.0, 128.0)
N_TRACE = 12 * len(TRACE_TAUS)
TRACE_DECAY = np.exp(-1.0 / np.array(TRACE_TAUS))


@njit(**JIT)
def trace_step(p, q_prev, pc_of, q_out):
    """q_t = a ⊙ q_{t-1} + (1 − a) ⊙ (p_t folded to pitch classes), one block of 12 per time
    scale τ (a = e^{−1/τ}); pc_of[i] is note i's pitch class. q_out may be q_prev."""
    for s in range(TRACE_DECAY.shape[0]):
        for c in range(12):
            q_out[12 * s + c] = TRACE_DECAY[s] * q_prev[12 * s + c]
    for i in range(p.shape[0]):
        if p[i] != 0.0:
            for s in range(TRACE_DECAY.shape[0]):
                q_out[12 * s + pc_of[i]] += (1.0 - TRACE_DECAY[s]) * p[i]


@njit(**JIT)
def player_trace(Pl, pc_of, Q):
    """Q[0] = q_0 = 0, Q[t+1] = q_t over the player's notes Pl (T × n_v): Q[t] is what frame t hears."""
    Q[0] = 0.0
    for t in range(Pl.shape[0]):
        trace_step(Pl[t], Q[t], pc_of, Q[t + 1])


@njit(**JIT)
def state_step(v, p, s_prev, bu, Wvu, Wpu, Wuu, pc_of, s_out):
    """The live recurrent state s = [u | q] one frame on: u_t by ``rnn_step``, and when s has room
    for it (``N_TRACE`` more entries), the player's trace q_t by ``trace_step``."""
    n_u = bu.shape[0]
    rnn_step(v, p, s_prev[:n_u], bu, Wvu, Wpu, Wuu, s_out[:n_u])
    if s_prev.shape[0] > n_u:
        trace_step(p, s_prev[n_u:], pc_of, s_out[n_u:])


@njit(**JIT)
def rnn_forward(V, Pl, u0, bv, bh, Wuv, Wuh, bu, Wvu, Wpu, Wuu, U, BV, BH):
    """Run the RNN over a whole sequence V (T × n_v), with the player's notes Pl (T × n_v, or 0
    rows: nobody plays) heard through Wpu.

    Writes U[0] = u0, U[t+1] = u_t (so U[t] is u_{t-1} for frame t), and the biases of every
    frame's RBM, BV[t] = bv_t, BH[t] = bh_t (without the player path's p_t·Wpv, p_t·Wph).
    """
    U[0] = u0
    nobody = np.zeros(V.shape[1], V.dtype)
    for t in range(V.shape[0]):
        rbm_biases(U[t], bv, bh, Wuv, Wuh, BV[t], BH[t])
        rnn_step(V[t], Pl[t] if Pl.shape[0] != 0 else nobody, U[t], bu, Wvu, Wpu, Wuu, U[t + 1])


@njit(**JIT)
def hidden_input(v, W, bh_t, out):
    """out = v·W + bh_t."""
    out[:] = bh_t
    add_rows_on(W, v, out)


@njit(**JIT)
def free_energy(v, W, bv_t, bh_t, work):
    """F_t(v) = −v·bv_t − Σ_j softplus((v·W + bh_t)_j); ``work`` has n_h entries."""
    hidden_input(v, W, bh_t, work)
    f = 0.0
    for i in range(v.shape[0]):
        f -= v[i] * bv_t[i]
    for j in range(work.shape[0]):
        f -= softplus(work[j])
    return f


"""Block Gibbs sampling v → h → v in the RBM of a frame: one chain (``gibbs_chain``), the live
instrument's frame from silence (``sample_frame``), the consensus of several chains
(``sample_consensus``), a whole generated sequence (``generate_sequence``) and many frames in
parallel (``gibbs_batch``).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .forward import hidden_input, rnn_step
from .jit import JIT
from .packed import chain_work_size, new_index, unpack, work_layout
from .register import biased_bv, register_bias, register_hear
from .rng import fill_draws
from .simd import SURE, add_all_rows, add_rows, add_rows_on, approx_sigmoid, sigmoid


_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53


@njit(**JIT)
def decide(inputs, beta, probs, draws, n):
    """Decide units from their inputs, probs ≈ σ(beta · inputs) (see SURE) and their draws:
    probs[j] becomes the new value, 1.0 or 0.0, over all of probs (a padded row has no scalar
    tail: measured a quarter faster in training's chains),
    exactly — the draws within SURE of the approximation are settled with the exact σ, for the
    first n (the real units). Two passes, so that the hot one does not branch on a draw (a third
    of a trained model's hidden units are unsure at every step: branches on them mispredict): mark
    (2.0) while deciding, in SIMD; then settle the marked ones (rare)."""
    unsure = 0
    for j in range(probs.shape[0]):
        u = draws[j] * _TWO_M53
        p = probs[j]
        close = abs(u - p) <= SURE
        unsure += close
        probs[j] = 2.0 if close else (1.0 if u < p else 0.0)
    if unsure:
        for j in range(n):
            if probs[j] == 2.0:
                probs[j] = 1.0 if draws[j] * _TWO_M53 < sigmoid(beta * inputs[j]) else 0.0


@njit(**JIT)
def list_flips(probs, units, idx, few_flips):
    """Set units to their new values probs[:len(units)] (from ``decide``); the indices of the
    units that changed go to idx, the signs of their changes to probs' first entries (each already
    read when overwritten). Returns how many. A branch per unit only when ``few_flips`` says the
    layer rarely flips (a trained model's notes): then the branch is predictable."""
    n_changed = 0
    if few_flips:
        for j in range(units.shape[0]):
            new = probs[j]
            if new != units[j]:
                idx[n_changed] = j
                probs[n_changed] = new - units[j]
                units[j] = new
                n_changed += 1
        return n_changed
    for j in range(units.shape[0]):  # the same without branches, for layers whose flips are unpredictable
        new = probs[j]
        idx[n_changed] = j
        probs[n_changed] = new - units[j]
        n_changed += new != units[j]
        units[j] = new
    return n_changed


@njit(**JIT)
def bernoulli_layer(state, probs, inputs, beta, units, clamp, idx, few_flips=False):
    """Sample every unit: units[j] = 1 with probability σ(beta · inputs[j]), given ``probs`` ≈
    that σ (see SURE); probs is overwritten. Units with clamp[j] != 0 keep their value (clamp
    may be empty: none). Writes the indices of the units that changed into idx and returns how
    many there are; the tail of idx (``new_index``) holds the layer's draws.

    Three passes (``decide``, then ``list_flips``), so that nothing in the hot ones branches on a
    draw.
    """
    n = units.shape[0]
    lanes = state.shape[1]
    draws = idx[idx.shape[0] - (n + lanes - 1) // lanes * lanes:]
    fill_draws(state, draws, n)
    decide(inputs, beta, probs[:n], draws, n)
    if clamp.shape[0] != 0:
        for j in range(n):
            if clamp[j] != 0:
                probs[j] = units[j]
    return list_flips(probs, units, idx, few_flips)


@njit(**JIT)
def gibbs_chain(W, WT, bv_t, bh_t, v, k, beta, clamp, state, pv, work, idx):
    """k steps of block Gibbs sampling v → h → v, in place on v.

    v: the start state (binary), left holding the sample after k steps. clamp: int8 mask of
    visible units held at their start value (``harmonize`` mode; empty or all zeros otherwise).
    beta: 1/temperature, of v's dtype. pv: receives p(v=1|h) of the last step (the chain's
    mean). work (``chain_work_size`` floats or more) and idx (``new_index``) are scratch space, from
    ``workspace``. Draws come from the xoroshiro stream ``state``.

    Between steps only a few units change, so the inputs ah = v·W + bh_t and av = h·Wᵀ + bv_t
    are updated by ± the rows of the units that flipped instead of being summed afresh.
    """
    n_v, n_h = W.shape
    h = work[:n_h]
    ah = work[n_h:2 * n_h]
    ph = work[2 * n_h:3 * n_h]
    av = work[3 * n_h:3 * n_h + n_v]
    no_clamp = clamp[:0]
    hidden_input(v, W, bh_t, ah)
    av[:] = bv_t
    h[:] = 0.0
    few = True
    for _ in range(k):
        approx_sigmoid(ah, beta, ph)
        n = bernoulli_layer(state, ph, ah, beta, h, no_clamp, idx)
        add_rows(WT, idx, ph, n, av)
        approx_sigmoid(av, beta, pv)
        n = bernoulli_layer(state, pv, av, beta, v, clamp, idx, few)
        few = 16 * n < n_v  # a trained model's notes rarely flip: then a branch per note is cheaper
        add_rows(W, idx, pv, n, ah)
    if pv.itemsize == 4:  # float32 (the instrument): the vectorised σ, within 2e-7
        approx_sigmoid(av, beta, pv)
    else:  # float64 (the tests): the mean of the last step, exactly
        for i in range(n_v):
            pv[i] = sigmoid(beta * av[i])



@njit(**JIT)
def chain_scratch(W):
    """The arrays a kernel that runs ``gibbs_chain`` on W's RBM from a frame of its own needs:
    clamp (no note clamped), the frame v and its means pv (n_v, W's float type), work and idx."""
    n_v, n_h = W.shape
    return (np.zeros(n_v, np.int8), np.empty(n_v, W.dtype), np.empty(n_v, W.dtype),
            np.zeros(chain_work_size(n_v, n_h), W.dtype), new_index(n_v, n_h))


@njit(**JIT)
def sample_frame(u_prev, P, k, beta, clamp, v_clamp, state, v_out, pv_out, work, idx):
    """The generation step of one frame, allocation-free: the biases bv_t, bh_t from u_{t-1} and
    the player's notes ``v_clamp`` (through the player path, Wpv and Wph), then a k-step chain
    started from silence (the tutorial's start state) with the notes where ``clamp`` is set held
    at their value in ``v_clamp``. v_out gets the sample v_t, pv_out its mean. P is ``pack``'s;
    work and idx come from ``workspace``."""
    bv_t, bh_t = frame_biases(u_prev, P, v_clamp, work)
    _chain_from_silence(P, bv_t, bh_t, k, beta, clamp, v_clamp, state, v_out, pv_out, work, idx)


@njit(**JIT)
def frame_biases(u_prev, P, v_clamp, work):
    """bv_t, bh_t from u_{t-1} and the player's notes ``v_clamp`` (the player path: Wpv, Wph),
    written into ``work`` after the chain's scratch; returns views of the two. ``u_prev`` is u_{t-1},
    or the live state [u_{t-1} | q_{t-1}] with the player's trace (heard through Wqv, Wqh)."""
    W, _, Wuvh, bvh, _, _, _, Wpvh, _, o_h = unpack(P)
    n_v, n_h = W.shape
    o_b, _ = work_layout(n_v, n_h)
    b_t = work[o_b:o_b + bvh.shape[0]]      # bv_t | bh_t, laid out as bvh
    b_t[:] = bvh
    add_all_rows(Wuvh[:u_prev.shape[0]], u_prev, b_t)
    add_rows_on(Wpvh, v_clamp, b_t)
    return b_t[:n_v], b_t[o_h:o_h + n_h]


@njit(**JIT)
def _chain_from_silence(P, bv_t, bh_t, k, beta, clamp, v_clamp, state, v_out, pv_out, work, idx):
    """A k-step chain from silence, the clamped notes held at their value in ``v_clamp``."""
    W, WT, _, _, _, _, _, _, _, _ = unpack(P)
    for i in range(v_out.shape[0]):
        v_out[i] = v_clamp[i] if clamp[i] != 0 else 0.0
    gibbs_chain(W, WT, bv_t, bh_t, v_out, k, beta, clamp, state, pv_out, work, idx)


@njit(**JIT)
def pitch_class_sets(V, clamp, pc_of, sets):
    """sets[c] = the pitch classes of V[c]'s notes that are not clamped, as 12 bits."""
    for c in range(V.shape[0]):
        m = 0
        for i in range(V.shape[1]):
            if V[c, i] != 0.0 and (clamp.shape[0] == 0 or clamp[i] == 0):
                m |= 1 << pc_of[i]
        sets[c] = m


@njit(**JIT)
def _bits(m):
    n = 0
    while m:
        m &= m - 1
        n += 1
    return n


@njit(**JIT)
def consensus(sets):
    """The index of the set that agrees most with all the others: the largest sum of Jaccard
    similarities |a ∩ b| / |a ∪ b| (two empty sets agree fully); the first such on a tie. Choosing
    it is the minimum-Bayes-risk decision for the pitch-class accuracy when the sets are samples
    of the model's distribution: the harmony the chains agree on, not one chain's draw."""
    best, best_score = 0, -1.0
    for a in range(sets.shape[0]):
        score = 0.0
        for b in range(sets.shape[0]):
            union = _bits(sets[a] | sets[b])
            score += 1.0 if union == 0 else _bits(sets[a] & sets[b]) / union
        if score > best_score:
            best, best_score = a, score
    return best


@njit(**JIT)
def sample_consensus(u_prev, P, k, beta, clamp, v_clamp, state, V_c, PV_c, pc_of, sets, v_out, pv_out, work, idx):
    """``sample_frame`` with len(V_c) chains instead of one, each its own draw from the same
    stream; v_out, pv_out get the sample of the chain whose pitch classes (the notes not clamped)
    agree most with the others' (``consensus``). V_c, PV_c (chains × n_v) and sets (chains, int64)
    are scratch; pc_of[i] is note i's pitch class. Allocation-free; the biases are computed once."""
    bv_t, bh_t = frame_biases(u_prev, P, v_clamp, work)
    for c in range(V_c.shape[0]):
        _chain_from_silence(P, bv_t, bh_t, k, beta, clamp, v_clamp, state, V_c[c], PV_c[c], work, idx)
    pitch_class_sets(V_c, clamp, pc_of, sets)
    best = consensus(sets)
    v_out[:] = V_c[best]
    pv_out[:] = PV_c[best]


@njit(**JIT)
def generate_sequence(u0, P, k, beta, state, V_out, PV_out, u_end, bv, log_density, width, held):
    """Generate len(V_out) frames from state u0 with the packed parameters P (``pack``): V_out
    gets the frames, PV_out their means, u_end the RNN state after the last frame. Every note's
    visible bias is P's bv = ``bv`` + log_density (the density) + the register hold of ``width``
    semitones (0: none) from the register state ``held``, which hears every frame (``register``)."""
    W, _, _, bvh, bu, Wvu, Wuu, _, Wpu, _ = unpack(P)
    n_v, n_h = W.shape
    u = u0.copy()
    u_next = np.empty_like(u0)
    work = np.zeros(work_layout(n_v, n_h)[1], W.dtype)
    idx = new_index(n_v, n_h)
    clamp = np.zeros(n_v, np.int8)
    nobody = np.zeros(n_v, W.dtype)  # no player: the paper's model
    bias = np.zeros(n_v, W.dtype)
    for t in range(V_out.shape[0]):
        register_bias(held, width, bias)
        biased_bv(bv, log_density, bias, bvh[:n_v])
        sample_frame(u, P, k, beta, clamp, nobody, state, V_out[t], PV_out[t], work, idx)
        register_hear(V_out[t], held)
        rnn_step(V_out[t], nobody, u, bu, Wvu, Wpu, Wuu, u_next)
        u[:] = u_next
    u_end[:] = u


@njit(parallel=True, **JIT)
def gibbs_batch(W, WT, BV, BH, V, k, beta, states, PV_out):
    """Independent k-step chains for many frames at once, in place on V (N × n_v), frame n with
    biases BV[n], BH[n] and its own stream states[n]; PV_out[n] gets the last step's p(v|h)."""
    n_v, n_h = W.shape
    dt = W.dtype
    clamp = np.zeros(0, np.int8)
    for n in prange(V.shape[0]):
        work = np.zeros(chain_work_size(n_v, n_h), dt)
        idx = new_index(n_v, n_h)
        gibbs_chain(W, WT, BV[n], BH[n], V[n], k, beta, clamp, states[n], PV_out[n], work, idx)


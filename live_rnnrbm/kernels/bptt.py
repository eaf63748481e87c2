"""The training gradients: CD-k over a subsequence, then the gradient of
mean_t [F_t(v_t) − F_t(ṽ_t)] with respect to every parameter, by backpropagation through time
(``subsequence_grad``; ``batch_grad`` for a mini-batch in parallel).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .chains import lockstep_chains
from .forward import N_TRACE, player_trace, rbm_biases, rnn_step
from .gibbs import gibbs_chain
from .jit import JIT, SIMD
from .packed import chain_work_size, new_index
from .simd import (add, add_all_rows, add_frame_outer, add_frame_products, add_products, add_rows_on,
                   approx_softplus_sigmoid, approx_tanh, axpy, is_sparse)


@njit(**JIT)
def softplus_and_sigmoid(x):
    """(softplus(x), σ(x)) from one exp: e = e^{−|x|}, softplus = max(x, 0) + log1p(e)."""
    e = math.exp(-abs(x))
    r = 1.0 / (1.0 + e)
    if x >= 0.0:
        return x + math.log1p(e), r
    return math.log1p(e), e * r


@njit(fastmath=SIMD, **JIT)
def cost_and_grad(V, Vt, X, U, BV, BH, W, Wuv, Wuh, Wvu, Wuu,
                  gW, gbv, gbh, gWuh, gWuv, gWvu, gWuu, gbu, Pl, Q, gWpv, gWph, gWpu, gWqv, gWqh):
    """cost = mean_t [F_t(v_t) − F_t(ṽ_t)] with the CD samples Vt held constant, and its gradient
    with respect to all eight parameters, *added* into the g* arrays (BPTT through bv_t and bh_t
    into the RNN). X holds the RNN's inputs, U, BV, BH come from ``rnn_forward`` over X: X is V
    (teacher forcing), or V with some frames replaced by the model's own (``subsequence_grad``'s
    ``mix``), held constant like Vt. Pl (T × n_v, or 0 rows: nobody plays) holds the player's
    notes, whose path BV, BH and U already carry (p_t·Wpv, p_t·Wph, and p_t·Wpu inside u_t); its
    gradient goes into gWpv, gWph, gWpu. Q (T+1 × N_TRACE, or 0 rows) holds the player's trace,
    Q[t] = q_{t-1}, whose terms q_{t-1}·Wqv, q_{t-1}·Wqh BV and BH carry too; it is a function of
    the player's notes alone, so its gradient (into gWqv, gWqh) needs no backpropagation through
    time. Returns the cost.

    The backward pass over time only carries dcost/du_t through Wuu (a vector-matrix product per
    frame, the part that must be sequential); everything else — the hidden inputs, W's gradient,
    the part of dcost/du_{t-1} through bv_t and bh_t, the RNN's weight gradients — is a matrix
    product over all the frames at once (``add_products``: each weight row loaded once for eight
    frames). It is one kernel on purpose: the passes share their per-frame scratch, which smaller
    Numba functions would have to allocate or hand across calls once per frame of every update.
    """
    T, n_v = V.shape
    n_h = W.shape[1]
    n_u = U.shape[1]
    dt = W.dtype
    s = 1.0 / T
    SD = np.empty((T, n_h), dt)  # the hidden inputs of the data, then their σ
    SM = np.empty((T, n_h), dt)  # and of the CD samples
    for t in range(T):
        SD[t] = BH[t]
        SM[t] = BH[t]
    rows = np.empty(max(T, n_v), np.int64)  # scratch of the products with frames
    coefs = np.empty(max(T, n_v), dt)
    v_sparse, vt_sparse = is_sparse(V), is_sparse(Vt)  # decided once for both products of each
    add_frame_products(V, W, SD, v_sparse, rows, coefs)
    add_frame_products(Vt, W, SM, vt_sparse, rows, coefs)
    dBV = np.empty((T, n_v), dt)
    dBH = np.empty((T, n_h), dt)
    cost = 0.0
    for t in range(T):
        sig_d = SD[t]
        sig_m = SM[t]
        f_d = 0.0
        f_m = 0.0
        for i in range(n_v):
            f_d -= V[t, i] * BV[t, i]
            f_m -= Vt[t, i] * BV[t, i]
            dBV[t, i] = s * (Vt[t, i] - V[t, i])
        if sig_d.itemsize == 4:  # float32 training: vectorised, within 6e-7 per unit
            f_d -= approx_softplus_sigmoid(sig_d)
            f_m -= approx_softplus_sigmoid(sig_m)
        else:  # float64 (the tests against finite differences): exactly
            for j in range(n_h):
                sp, sg = softplus_and_sigmoid(sig_d[j])
                f_d -= sp
                sig_d[j] = sg
                sp, sg = softplus_and_sigmoid(sig_m[j])
                f_m -= sp
                sig_m[j] = sg
        for j in range(n_h):
            dBH[t, j] = s * (sig_m[j] - sig_d[j])
        cost += s * (f_d - f_m)
    # gW += Σ_t s·(ṽ_t ⊗ σ_m,t − v_t ⊗ σ_d,t)
    add_frame_outer(Vt, s, SM, gW, vt_sparse, rows, coefs)
    add_frame_outer(V, -s, SD, gW, v_sparse, rows, coefs)
    # backpropagation through time: du holds dcost/du_t for the frame being processed; DA[t] gets
    # dcost/da_t, where u_t = tanh(a_t). The part of dcost/du_{t-1} through bv_t and bh_t,
    # G[t] = dBV[t]·Wuvᵀ + dBH[t]·Wuhᵀ, does not depend on later frames: one product before the
    # loop, which is left with the sequential du·Wuuᵀ
    G = np.zeros((T, n_u), dt)
    add_products(dBV, np.ascontiguousarray(Wuv.T), G)
    add_products(dBH, np.ascontiguousarray(Wuh.T), G)
    WuuT = np.ascontiguousarray(Wuu.T)
    DA = np.empty((T, n_u), dt)
    du = np.zeros(n_u, dt)
    for t in range(T - 1, -1, -1):
        # u_t = U[t+1] = tanh(a_t); it feeds bv_{t+1}, bh_{t+1} and u_{t+1} (all in du)
        da = DA[t]
        for b in range(n_u):
            ub = U[t + 1, b]
            da[b] = du[b] * (1.0 - ub * ub)
        du[:] = G[t]
        add_all_rows(WuuT, da, du)
    # the weight gradients: g += Uᵀ·X for X = DA, dBV, dBH (U[t] = u_{t-1})
    UT = np.ascontiguousarray(U[:T].T)
    add_products(UT, DA, gWuu)
    add_products(UT, dBV, gWuv)
    add_products(UT, dBH, gWuh)
    for t in range(T):
        add(DA[t], gbu)
        add(dBV[t], gbv)
        add(dBH[t], gbh)
        for i in range(n_v):
            if X[t, i] != 0.0:
                axpy(X[t, i], DA[t], gWvu[i])
    if Pl.shape[0] != 0:  # the player path: bv_t, bh_t += p_t·Wpv, p_t·Wph; a_t += p_t·Wpu
        for t in range(T):
            for i in range(n_v):
                if Pl[t, i] != 0.0:
                    axpy(Pl[t, i], dBV[t], gWpv[i])
                    axpy(Pl[t, i], dBH[t], gWph[i])
                    axpy(Pl[t, i], DA[t], gWpu[i])
    if Q.shape[0] != 0:  # the player's trace: bv_t, bh_t += q_{t-1}·Wqv, q_{t-1}·Wqh
        for t in range(T):
            for a in range(Q.shape[1]):
                if Q[t, a] != 0.0:
                    axpy(Q[t, a], dBV[t], gWqv[a])
                    axpy(Q[t, a], dBH[t], gWqh[a])
    return cost


@njit(**JIT)
def cross_entropy(V, PV):
    """Frame-level cross-entropy −Σ_i [v log p + (1−v) log(1−p)], averaged over frames (the
    tutorial's monitor, with PV the chain's mean after CD-k). The probabilities of 16 notes are
    multiplied before one log is taken (each is at least 1e-7, so the product stays far above
    float64's smallest number): a log per note cost a twentieth of a trained model's update."""
    total = 0.0
    eps = 1e-7
    n = V.shape[1]
    for t in range(V.shape[0]):
        for i0 in range(0, n, 16):
            prod = 1.0
            for i in range(i0, min(i0 + 16, n)):
                p = min(max(float(PV[t, i]), eps), 1.0 - eps)
                prod *= p if V[t, i] != 0.0 else 1.0 - p
            total -= math.log(prod)
    return total / V.shape[0]


@njit(**JIT)
def teacher_forced_forward(V, u0, bv, bh, Wuv, Wuh, bu, Wvu, Wuu, U, BV, BH):
    """``forward.rnn_forward`` with nobody playing (U, BV, BH as it writes them), its sums that do
    not wait for the previous frame done as matrix products over all the frames
    (``add_products``): V·Wvu before the loop over time, which is left with u_{t-1}·Wuu, and the
    biases U·Wuv, U·Wuh after it. The same values up to the order of the sums."""
    T = V.shape[0]
    for t in range(T):
        U[t + 1] = bu
        BV[t] = bv
        BH[t] = bh
    add_products(V, Wvu, U[1:])
    U[0] = u0
    for t in range(T):
        u = U[t + 1]
        add_all_rows(Wuu, U[t], u)
        if u.itemsize == 4:  # float32 (training): the vectorised tanh, within 3e-7
            approx_tanh(u, u)
        else:  # float64 (the tests against finite differences): exactly
            for b in range(u.shape[0]):
                u[b] = math.tanh(u[b])
    add_products(U[:T], Wuv, BV)
    add_products(U[:T], Wuh, BH)


CHAIN_STARTS = ("data", "silence", "previous")  # where the negative phase's chain of frame t starts
NO_CLAMP = np.zeros((0, 0), np.int8)  # subsequence_grad's C when nobody plays along
NO_MIX = np.zeros(0, np.int8)  # and its mix when the RNN hears only the true frames


@njit(**JIT)
def subsequence_grad(V, u0, W, WT, bv, bh, Wuh, Wuv, Wvu, Wuu, bu, k, state,
                     gW, gbv, gbh, gWuh, gWuv, gWvu, gWuu, gbu, u_end, start, C, mix, k_own, own_neg, pc_of,
                     Wpv, Wph, Wpu, Wqv, Wqh, gWpv, gWph, gWpu, gWqv, gWqh):
    """One CD-k training step on a subsequence V (T × n_v) starting from RNN state u0: forward
    pass, a k-step chain for every frame, then ``cost_and_grad``. Gradients are added into g*;
    u_end gets u_T (to carry into the next subsequence of the same piece). Returns
    (cost, cross-entropy). One fused kernel, as ``cost_and_grad``: its buffers are made once per
    subsequence and shared by the forward pass, the chains and the own-history mix.

    ``start`` (an index into CHAIN_STARTS) is where frame t's chain starts: 0, at v_t (CD-k, the
    tutorial); 1, at silence, as generation starts it, so that training meets the states a
    short chain from silence visits; 2, at v_{t-1} (silence for the first frame).

    Listening (the player's notes): C (T × n_v int8, or 0 rows: none) marks, per frame, the notes
    the player holds. Where C is 1 they are clamped at their true value in the negative chain, so
    that CD follows the gradient of log p(rest_t | player_t, history) — the conditional the live
    ``harmonize`` mode samples from; where C is 2 they are heard but not clamped, as in ``follow``
    (the RNN's own frame then hears them with the model's notes). The player's notes also reach frame t's biases through the player path (Wpv,
    Wph), the RNN state u_t (Wpu; gradients into gWpv, gWph, gWpu) and the player's trace q_t
    (``forward.trace_step``, from q_0 = 0 at the subsequence's start; pc_of[i] is note i's pitch
    class), which frame t+1 hears through Wqv, Wqh (gradients into gWqv, gWqh). mix (T int8, or empty: none) marks the frames whose RNN
    input is the model's own frame instead of v_t: the model's own accompaniment around the
    player's notes, as the live instrument's RNN hears it (scheduled sampling), treated as data,
    not differentiated through. With k_own > 0 it is sampled as the instrument samples it: a k_own-step chain from
    silence with the player's notes clamped, given the history so far (itself partly the model's
    own); with k_own = 0 it is the negative sample of the CD chain. With own_neg (and k_own > 0)
    the own frame is the negative sample too, instead of a CD chain from the data: the gradient of
    the conditional likelihood with the instrument's own sampler as the negative phase, which
    pushes down the harmonies the instrument would play where they are wrong. With neither C nor
    mix (absent or all zero: plain teacher forcing, most of training) the frames' chains step
    together (``chains.lockstep_chains``); else they run frame by frame, since a frame's chain may
    feed the RNN, and draw in another order.
    """
    T, n_v = V.shape
    n_h = W.shape[1]
    n_u = u0.shape[0]
    dt = W.dtype
    U = np.empty((T + 1, n_u), dt)
    BV = np.empty((T, n_v), dt)
    BH = np.empty((T, n_h), dt)
    Vt = V.copy()
    if start == 1:
        Vt[:] = 0.0
    elif start == 2:
        Vt[0] = 0.0
        Vt[1:] = V[:-1]
    clamped = C.shape[0] != 0 and C.any()  # a subsequence nobody plays in is plain teacher forcing
    Pl = np.zeros((T if clamped else 0, n_v), dt)  # the player's notes
    if clamped:  # a chain started off the data still holds the player's true notes
        for t in range(T):
            for i in range(n_v):
                if C[t, i] != 0:
                    Pl[t, i] = V[t, i]
                if C[t, i] == 1:
                    Vt[t, i] = V[t, i]
    Q = np.zeros((T + 1 if clamped else 0, N_TRACE), dt)  # Q[t] = q_{t-1}, the player's trace
    if clamped:
        player_trace(Pl, pc_of, Q)
    mixing = mix.shape[0] != 0 and mix.any()
    X = V.copy() if mixing else V  # the RNN's input: written only where the model's own frames go
    PV = np.empty((T, n_v), dt)  # the chains' means, for the cross-entropy
    if not (clamped or mixing):  # teacher forcing: the biases come from the data alone, so the
        # frames' chains are independent and step together
        teacher_forced_forward(V, u0, bv, bh, Wuv, Wuh, bu, Wvu, Wuu, U, BV, BH)
        lockstep_chains(W, WT, BV, BH, Vt, k, state, PV)
    else:
        work = np.zeros(chain_work_size(n_v, n_h), dt)
        idx = new_index(n_v, n_h)
        no_clamp = np.zeros(0, np.int8)
        cl = np.zeros(n_v, np.int8)  # the notes clamped in frame t's chains (C == 1)
        nobody = np.zeros(n_v, dt)
        one = np.ones(1, dt)[0]  # beta = 1 in the parameters' float type
        # frame by frame, as rnn_forward steps (the same arithmetic): the RNN's input may be a chain's
        U[0] = u0
        for t in range(T):
            rbm_biases(U[t], bv, bh, Wuv, Wuh, BV[t], BH[t])
            if clamped:
                add_rows_on(Wpv, Pl[t], BV[t])
                add_rows_on(Wph, Pl[t], BH[t])
                add_all_rows(Wqv, Q[t], BV[t])
                add_all_rows(Wqh, Q[t], BH[t])
            if clamped:
                for i in range(n_v):
                    cl[i] = 1 if C[t, i] == 1 else 0
            ct = cl if clamped else no_clamp
            own = mixing and mix[t] != 0 and k_own > 0
            if not (own and own_neg):
                gibbs_chain(W, WT, BV[t], BH[t], Vt[t], k, one, ct, state, PV[t], work, idx)
            if own:
                for i in range(n_v):
                    X[t, i] = V[t, i] if clamped and C[t, i] == 1 else 0.0
                gibbs_chain(W, WT, BV[t], BH[t], X[t], k_own, one, ct, state, PV[t], work, idx)
                if own_neg:
                    Vt[t] = X[t]
                if clamped:  # follow: the RNN hears the player's notes with the model's
                    for i in range(n_v):
                        if C[t, i] == 2 and V[t, i] != 0.0:
                            X[t, i] = V[t, i]
            elif mixing and mix[t] != 0:
                X[t] = Vt[t]
            rnn_step(X[t], Pl[t] if clamped else nobody, U[t], bu, Wvu, Wpu, Wuu, U[t + 1])
    cost = cost_and_grad(V, Vt, X, U, BV, BH, W, Wuv, Wuh, Wvu, Wuu,
                         gW, gbv, gbh, gWuh, gWuv, gWvu, gWuu, gbu, Pl, Q, gWpv, gWph, gWpu, gWqv, gWqh)
    u_end[:] = U[T]
    return cost, cross_entropy(V, PV)


@njit(parallel=True, **JIT)
def batch_grad(Vcat, starts, lengths, U0, W, WT, bv, bh, Wuh, Wuv, Wvu, Wuu, bu, k, states,
               gW, gbv, gbh, gWuh, gWuv, gWvu, gWuu, gbu, U_end, costs, xents, start, Ccat, mixcat, k_own,
               own_neg, pc_of, Wpv, Wph, Wpu, Wqv, Wqh, gWpv, gWph, gWpu, gWqv, gWqh):
    """``subsequence_grad`` for a mini-batch of B subsequences in parallel (one per thread).

    Subsequence b is Vcat[starts[b] : starts[b] + lengths[b]], starting from U0[b], drawing from
    states[b]. The g* arrays carry a leading batch axis (B, ...) so threads never share a
    buffer; the caller sums over it. U_end[b], costs[b], xents[b] get each subsequence's results;
    ``start``, ``k_own``, ``own_neg``, ``pc_of`` as in ``subsequence_grad``; Ccat and mixcat are its C and
    mix for the frames of Vcat (0 rows / empty: none).
    """
    for b in prange(starts.shape[0]):
        s0, s1 = starts[b], starts[b] + lengths[b]
        V = Vcat[s0:s1]
        C = Ccat[s0:s1] if Ccat.shape[0] != 0 else Ccat
        mix = mixcat[s0:s1] if mixcat.shape[0] != 0 else mixcat
        c, x = subsequence_grad(V, U0[b], W, WT, bv, bh, Wuh, Wuv, Wvu, Wuu, bu, k, states[b],
                                gW[b], gbv[b], gbh[b], gWuh[b], gWuv[b], gWvu[b], gWuu[b], gbu[b],
                                U_end[b], start, C, mix, k_own, own_neg, pc_of, Wpv, Wph, Wpu, Wqv, Wqh,
                                gWpv[b], gWph[b], gWpu[b], gWqv[b], gWqh[b])
        costs[b] = c
        xents[b] = x

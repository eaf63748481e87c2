"""The RNN-RBM's numerical kernels, compiled with Numba.

Every kernel is ``cache=True`` (a warm start loads machine code from ``__pycache__``) and
``nogil=True`` (the live instrument computes frames on a worker thread while rtmidi's callback
thread needs the GIL). Kernels take their output and work arrays from the caller, so the ones on
the live path never allocate. They are generic in the float type: float32 for speed, float64 for
the tests against finite differences and enumeration.

Names follow the paper's tutorial: v (visible frame), h (hidden), u (RNN state), W, bv, bh, Wuh,
Wuv, Wvu, Wuu, bu, and bv_t / bh_t the biases of the RBM at time t given u_{t-1}.

Two facts about the data make the Gibbs chain cheap: a frame has few notes on, so ``v·W`` is the
sum of a few rows of W; and ``h·Wᵀ`` is the sum of the rows of ``WT`` (W transposed, contiguous)
for the hidden units that are on. Temperature scales every energy by ``beta = 1/T``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .rng import uniform

_JIT = dict(cache=True, nogil=True)


@njit(**_JIT)
def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


@njit(**_JIT)
def softplus(x):
    # log(1 + e^x) without overflow for large x
    if x > 0.0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@njit(**_JIT)
def add(x, y):
    """y += x, as a plain loop: Numba's array expressions would allocate a temporary."""
    for i in range(y.shape[0]):
        y[i] += x[i]


@njit(**_JIT)
def sub(x, y):
    """y -= x."""
    for i in range(y.shape[0]):
        y[i] -= x[i]


@njit(**_JIT)
def axpy(a, x, y):
    """y += a·x, without a temporary."""
    for i in range(y.shape[0]):
        y[i] += a * x[i]


# --------------------------------------------------------------------------- RNN


@njit(**_JIT)
def rbm_biases(u_prev, bv, bh, Wuv, Wuh, bv_t, bh_t):
    """bv_t = bv + u_{t-1}·Wuv and bh_t = bh + u_{t-1}·Wuh, written into bv_t, bh_t."""
    bv_t[:] = bv
    bh_t[:] = bh
    for a in range(u_prev.shape[0]):
        ua = u_prev[a]
        if ua != 0.0:
            axpy(ua, Wuv[a], bv_t)
            axpy(ua, Wuh[a], bh_t)


@njit(**_JIT)
def rnn_step(v, u_prev, bu, Wvu, Wuu, u_out):
    """u_t = tanh(bu + v_t·Wvu + u_{t-1}·Wuu), written into u_out (which must not alias u_prev)."""
    u_out[:] = bu
    for i in range(v.shape[0]):
        vi = v[i]
        if vi != 0.0:
            axpy(vi, Wvu[i], u_out)
    for a in range(u_prev.shape[0]):
        ua = u_prev[a]
        if ua != 0.0:
            axpy(ua, Wuu[a], u_out)
    for b in range(u_out.shape[0]):
        u_out[b] = math.tanh(u_out[b])


@njit(**_JIT)
def rnn_forward(V, u0, bv, bh, Wuv, Wuh, bu, Wvu, Wuu, U, BV, BH):
    """Run the RNN over a whole sequence V (T × n_v).

    Writes U[0] = u0, U[t+1] = u_t (so U[t] is u_{t-1} for frame t), and the biases of every
    frame's RBM, BV[t] = bv_t, BH[t] = bh_t.
    """
    U[0] = u0
    for t in range(V.shape[0]):
        rbm_biases(U[t], bv, bh, Wuv, Wuh, BV[t], BH[t])
        rnn_step(V[t], U[t], bu, Wvu, Wuu, U[t + 1])


# --------------------------------------------------------------------------- RBM


@njit(**_JIT)
def hidden_input(v, W, bh_t, out):
    """out = v·W + bh_t."""
    out[:] = bh_t
    for i in range(v.shape[0]):
        vi = v[i]
        if vi != 0.0:
            if vi == 1.0:
                add(W[i], out)
            else:
                axpy(vi, W[i], out)


@njit(**_JIT)
def free_energy(v, W, bv_t, bh_t, work):
    """F_t(v) = −v·bv_t − Σ_j softplus((v·W + bh_t)_j); ``work`` has n_h entries."""
    hidden_input(v, W, bh_t, work)
    f = 0.0
    for i in range(v.shape[0]):
        f -= v[i] * bv_t[i]
    for j in range(work.shape[0]):
        f -= softplus(work[j])
    return f


@njit(**_JIT)
def gibbs_chain(W, WT, bv_t, bh_t, v, k, beta, clamp, state, pv, h, ah, av):
    """k steps of block Gibbs sampling v → h → v, in place on v.

    v: the start state (binary), left holding the sample after k steps. clamp: int8 mask of
    visible units held at their start value (``harmonize`` mode; all zeros otherwise). beta:
    1/temperature, of v's dtype. pv: receives p(v=1|h) of the last step (the chain's mean). h, ah
    (n_h) and av (n_v) are work arrays. Draws come from the xoroshiro stream ``state``.

    Between steps only a few units change, so the inputs ah = v·W + bh_t and av = h·Wᵀ + bv_t
    are updated by the rows of the units that flipped instead of being summed afresh: the same
    chain, several times fewer additions once the model is trained (and confident).
    """
    n_v = v.shape[0]
    n_h = h.shape[0]
    hidden_input(v, W, bh_t, ah)
    av[:] = bv_t
    h[:] = 0.0
    for _ in range(k):
        for j in range(n_h):
            on = uniform(state) < sigmoid(beta * ah[j])
            if on != (h[j] != 0.0):
                if on:
                    h[j] = 1.0
                    add(WT[j], av)
                else:
                    h[j] = 0.0
                    sub(WT[j], av)
        for i in range(n_v):
            p = sigmoid(beta * av[i])
            pv[i] = p
            if clamp[i] == 0:
                on = uniform(state) < p
                if on != (v[i] != 0.0):
                    if on:
                        v[i] = 1.0
                        add(W[i], ah)
                    else:
                        v[i] = 0.0
                        sub(W[i], ah)


@njit(**_JIT)
def next_frame(u_prev, W, WT, bv, bh, Wuv, Wuh, k, beta, clamp, v_clamp, state,
               v_out, pv_out, bv_t, bh_t, h, ah, av):
    """The generation step of one frame, allocation-free (the live path).

    Biases from u_{t-1}, then a k-step chain started from silence (the tutorial's start state)
    with the clamped notes set to ``v_clamp``. v_out gets the sample v_t, pv_out its mean;
    bv_t, bh_t receive the frame's biases; h, ah (n_h) and av (n_v) are work arrays.
    """
    rbm_biases(u_prev, bv, bh, Wuv, Wuh, bv_t, bh_t)
    for i in range(v_out.shape[0]):
        v_out[i] = v_clamp[i] if clamp[i] != 0 else 0.0
    gibbs_chain(W, WT, bv_t, bh_t, v_out, k, beta, clamp, state, pv_out, h, ah, av)


@njit(**_JIT)
def generate_sequence(u0, W, WT, bv, bh, Wuv, Wuh, bu, Wvu, Wuu, k, beta, state, V_out, P_out, u_end):
    """Generate len(V_out) frames from state u0; V_out gets the frames, P_out their means, u_end
    the RNN state after the last frame."""
    n_v, n_h = W.shape
    dt = W.dtype
    u = u0.copy()
    u_next = np.empty_like(u0)
    bv_t = np.empty(n_v, dt)
    bh_t = np.empty(n_h, dt)
    h = np.empty(n_h, dt)
    ah = np.empty(n_h, dt)
    av = np.empty(n_v, dt)
    clamp = np.zeros(n_v, np.int8)
    for t in range(V_out.shape[0]):
        next_frame(u, W, WT, bv, bh, Wuv, Wuh, k, beta, clamp, V_out[t], state,
                   V_out[t], P_out[t], bv_t, bh_t, h, ah, av)
        rnn_step(V_out[t], u, bu, Wvu, Wuu, u_next)
        u[:] = u_next
    u_end[:] = u


@njit(parallel=True, **_JIT)
def gibbs_batch(W, WT, BV, BH, V, k, beta, states, P_out):
    """Independent k-step chains for many frames at once, in place on V (N × n_v), frame n with
    biases BV[n], BH[n] and its own stream states[n]; P_out[n] gets the last step's p(v|h)."""
    n_v, n_h = W.shape
    dt = W.dtype
    clamp = np.zeros(n_v, np.int8)
    for n in prange(V.shape[0]):
        h = np.empty(n_h, dt)
        ah = np.empty(n_h, dt)
        av = np.empty(n_v, dt)
        gibbs_chain(W, WT, BV[n], BH[n], V[n], k, beta, clamp, states[n], P_out[n], h, ah, av)


# --------------------------------------------------------------------------- training


@njit(**_JIT)
def cost_and_grad(V, Vt, U, BV, BH, W, Wuv, Wuh, Wvu, Wuu,
                  gW, gbv, gbh, gWuh, gWuv, gWvu, gWuu, gbu):
    """cost = mean_t [F_t(v_t) − F_t(ṽ_t)] with the CD samples Vt held constant, and its gradient
    with respect to all eight parameters, *added* into the g* arrays (BPTT through bv_t and bh_t
    into the RNN). U, BV, BH come from ``rnn_forward`` over V. Returns the cost."""
    T, n_v = V.shape
    n_h = W.shape[1]
    n_u = U.shape[1]
    dt = W.dtype
    s = 1.0 / T
    sig_d = np.empty(n_h, dt)
    sig_m = np.empty(n_h, dt)
    dBV = np.empty((T, n_v), dt)
    dBH = np.empty((T, n_h), dt)
    cost = 0.0
    for t in range(T):
        hidden_input(V[t], W, BH[t], sig_d)
        hidden_input(Vt[t], W, BH[t], sig_m)
        f_d = 0.0
        f_m = 0.0
        for i in range(n_v):
            f_d -= V[t, i] * BV[t, i]
            f_m -= Vt[t, i] * BV[t, i]
            dBV[t, i] = s * (Vt[t, i] - V[t, i])
        for j in range(n_h):
            f_d -= softplus(sig_d[j])
            f_m -= softplus(sig_m[j])
            sig_d[j] = sigmoid(sig_d[j])
            sig_m[j] = sigmoid(sig_m[j])
            dBH[t, j] = s * (sig_m[j] - sig_d[j])
        cost += s * (f_d - f_m)
        for i in range(n_v):
            if Vt[t, i] != 0.0:
                axpy(s * Vt[t, i], sig_m, gW[i])
            if V[t, i] != 0.0:
                axpy(-s * V[t, i], sig_d, gW[i])
    # backpropagation through time: du holds dcost/du_t for the frame being processed
    du = np.zeros(n_u, dt)
    du_prev = np.empty(n_u, dt)
    da = np.empty(n_u, dt)
    for t in range(T - 1, -1, -1):
        # u_t = U[t+1] = tanh(a_t); it feeds bv_{t+1}, bh_{t+1} and u_{t+1} (all in du)
        for b in range(n_u):
            ub = U[t + 1, b]
            da[b] = du[b] * (1.0 - ub * ub)
        add(da, gbu)
        add(dBV[t], gbv)
        add(dBH[t], gbh)
        for i in range(n_v):
            if V[t, i] != 0.0:
                axpy(V[t, i], da, gWvu[i])
        for a in range(n_u):
            ua = U[t, a]
            axpy(ua, da, gWuu[a])
            axpy(ua, dBV[t], gWuv[a])
            axpy(ua, dBH[t], gWuh[a])
            acc = 0.0
            row_uu = Wuu[a]
            for b in range(n_u):
                acc += row_uu[b] * da[b]
            row_uv = Wuv[a]
            for i in range(n_v):
                acc += row_uv[i] * dBV[t, i]
            row_uh = Wuh[a]
            for j in range(n_h):
                acc += row_uh[j] * dBH[t, j]
            du_prev[a] = acc
        du[:] = du_prev
    return cost


@njit(**_JIT)
def cross_entropy(V, P):
    """Frame-level cross-entropy −Σ_i [v log p + (1−v) log(1−p)], averaged over frames (the
    tutorial's monitor, with P the chain's mean after CD-k)."""
    total = 0.0
    eps = 1e-7
    for t in range(V.shape[0]):
        for i in range(V.shape[1]):
            p = min(max(P[t, i], eps), 1.0 - eps)
            if V[t, i] != 0.0:
                total -= math.log(p)
            else:
                total -= math.log1p(-p)
    return total / V.shape[0]


@njit(**_JIT)
def subsequence_grad(V, u0, W, WT, bv, bh, Wuh, Wuv, Wvu, Wuu, bu, k, state,
                     gW, gbv, gbh, gWuh, gWuv, gWvu, gWuu, gbu, u_end):
    """One CD-k training step on a subsequence V (T × n_v) starting from RNN state u0: forward
    pass, a k-step chain from every v_t, then ``cost_and_grad``. Gradients are added into g*;
    u_end gets u_T (to carry into the next subsequence of the same piece). Returns
    (cost, cross-entropy)."""
    T, n_v = V.shape
    n_h = W.shape[1]
    n_u = u0.shape[0]
    dt = W.dtype
    U = np.empty((T + 1, n_u), dt)
    BV = np.empty((T, n_v), dt)
    BH = np.empty((T, n_h), dt)
    rnn_forward(V, u0, bv, bh, Wuv, Wuh, bu, Wvu, Wuu, U, BV, BH)
    Vt = V.copy()
    P = np.empty((T, n_v), dt)
    h = np.empty(n_h, dt)
    ah = np.empty(n_h, dt)
    av = np.empty(n_v, dt)
    clamp = np.zeros(n_v, np.int8)
    one = np.ones(1, dt)[0]  # beta = 1 in the parameters' float type
    for t in range(T):
        gibbs_chain(W, WT, BV[t], BH[t], Vt[t], k, one, clamp, state, P[t], h, ah, av)
    cost = cost_and_grad(V, Vt, U, BV, BH, W, Wuv, Wuh, Wvu, Wuu,
                         gW, gbv, gbh, gWuh, gWuv, gWvu, gWuu, gbu)
    u_end[:] = U[T]
    return cost, cross_entropy(V, P)


@njit(parallel=True, **_JIT)
def batch_grad(Vcat, starts, lengths, U0, W, WT, bv, bh, Wuh, Wuv, Wvu, Wuu, bu, k, states,
               gW, gbv, gbh, gWuh, gWuv, gWvu, gWuu, gbu, U_end, costs, xents):
    """``subsequence_grad`` for a mini-batch of B subsequences in parallel (one per thread).

    Subsequence b is Vcat[starts[b] : starts[b] + lengths[b]], starting from U0[b], drawing from
    states[b]. The g* arrays carry a leading batch axis (B, ...) so threads never share a
    buffer; the caller sums over it. U_end[b], costs[b], xents[b] get each subsequence's results.
    """
    for b in prange(starts.shape[0]):
        V = Vcat[starts[b]:starts[b] + lengths[b]]
        c, x = subsequence_grad(V, U0[b], W, WT, bv, bh, Wuh, Wuv, Wvu, Wuu, bu, k, states[b],
                                gW[b], gbv[b], gbh[b], gWuh[b], gWuv[b], gWvu[b], gWuu[b], gbu[b],
                                U_end[b])
        costs[b] = c
        xents[b] = x

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

from .rng import step, to_unit

_JIT = dict(cache=True, nogil=True, error_model="numpy")
# Reassociation lets LLVM vectorise reductions and fuse multiply-adds; unlike fastmath=True it keeps
# infinities meaningful (sigmoid relies on 1/(1+inf) = 0 for very negative inputs).
_SIMD = {"reassoc", "contract", "nsz"}


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


# σ(x) = 1/2 + tanh(x/2)/2 with tanh as Eigen's float rational approximation (clamped): plain
# arithmetic, so the loop below compiles to SIMD, with |error| < 2e-7 everywhere (a test checks).
_A = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
      -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16)
_B = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)
A1, A3, A5, A7, A9, A11, A13 = (np.float32(a) for a in _A)
B0, B2, B4, B6 = (np.float32(b) for b in _B)
CLAMP = np.float32(7.99881172180175781)
HALF = np.float32(0.5)
# a draw u decides "on" by u < σ; when u lies within SURE of the approximation, σ is computed
# exactly, so every decision is the one the exact σ would make: the sampler is exact, not close
SURE = 1e-6


@njit(fastmath=_SIMD, **_JIT)
def approx_sigmoid(a, beta, out):
    """out = σ(beta · a) to within 2e-7, vectorised."""
    for j in range(a.shape[0]):
        x = beta * a[j] * HALF
        x = CLAMP if x > CLAMP else x
        x = -CLAMP if x < -CLAMP else x
        x2 = x * x
        p = x * (A1 + x2 * (A3 + x2 * (A5 + x2 * (A7 + x2 * (A9 + x2 * (A11 + x2 * A13))))))
        q = B0 + x2 * (B2 + x2 * (B4 + x2 * B6))
        out[j] = HALF + HALF * (p / q)


@njit(**_JIT)
def bernoulli_layer(state, probs, inputs, beta, units, clamp, idx):
    """Sample every unit: units[j] = 1 with probability σ(beta · inputs[j]), given ``probs`` ≈
    that σ (see SURE). Units with clamp[j] != 0 keep their value (clamp may be empty: none).
    Writes the indices of the units that changed into idx and returns how many there are."""
    n_changed = 0
    has_clamp = clamp.shape[0] != 0
    s0 = state[0]
    s1 = state[1]
    for j in range(units.shape[0]):
        draw, s0, s1 = step(s0, s1)
        u = to_unit(draw)
        p = probs[j]
        on = u < p
        if abs(u - p) <= SURE:  # rare: decide with the exact σ
            on = u < sigmoid(beta * inputs[j])
        new = 1.0 if on else 0.0
        if has_clamp and clamp[j] != 0:
            new = units[j]
        idx[n_changed] = j
        n_changed += new != units[j]  # branch-free: flips are unpredictable
        units[j] = new
    state[0] = s0
    state[1] = s1
    return n_changed


@njit(**_JIT)
def gibbs_chain(W, WT, bv_t, bh_t, v, k, beta, clamp, state, pv, work, idx):
    """k steps of block Gibbs sampling v → h → v, in place on v.

    v: the start state (binary), left holding the sample after k steps. clamp: int8 mask of
    visible units held at their start value (``harmonize`` mode; empty or all zeros otherwise).
    beta: 1/temperature, of v's dtype. pv: receives p(v=1|h) of the last step (the chain's
    mean). work (≥ 3·n_h + n_v floats) and idx (≥ max(n_v, n_h) int64) are scratch space, from
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
    for _ in range(k):
        approx_sigmoid(ah, beta, ph)
        n = bernoulli_layer(state, ph, ah, beta, h, no_clamp, idx)
        for f in range(n):
            j = idx[f]
            axpy(2.0 * h[j] - 1.0, WT[j], av)
        approx_sigmoid(av, beta, pv)
        n = bernoulli_layer(state, pv, av, beta, v, clamp, idx)
        for f in range(n):
            i = idx[f]
            axpy(2.0 * v[i] - 1.0, W[i], ah)
    for i in range(n_v):  # the mean of the last step, exactly
        pv[i] = sigmoid(beta * av[i])


def workspace(n_visible: int, n_hidden: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Scratch arrays (work, idx) for ``gibbs_chain`` / ``next_frame``: allocate once, reuse."""
    return np.zeros(3 * n_hidden + n_visible, dtype), np.zeros(max(n_visible, n_hidden), np.int64)


@njit(**_JIT)
def next_frame(u_prev, W, WT, bv, bh, Wuv, Wuh, k, beta, clamp, v_clamp, state,
               v_out, pv_out, bv_t, bh_t, work, idx):
    """The generation step of one frame, allocation-free (the live path).

    Biases from u_{t-1}, then a k-step chain started from silence (the tutorial's start state)
    with the clamped notes set to ``v_clamp``. v_out gets the sample v_t, pv_out its mean;
    bv_t, bh_t receive the frame's biases; work and idx come from ``workspace``.
    """
    rbm_biases(u_prev, bv, bh, Wuv, Wuh, bv_t, bh_t)
    for i in range(v_out.shape[0]):
        v_out[i] = v_clamp[i] if clamp[i] != 0 else 0.0
    gibbs_chain(W, WT, bv_t, bh_t, v_out, k, beta, clamp, state, pv_out, work, idx)


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
    work = np.zeros(3 * n_h + n_v, dt)
    idx = np.zeros(max(n_v, n_h), np.int64)
    clamp = np.zeros(n_v, np.int8)
    for t in range(V_out.shape[0]):
        next_frame(u, W, WT, bv, bh, Wuv, Wuh, k, beta, clamp, V_out[t], state,
                   V_out[t], P_out[t], bv_t, bh_t, work, idx)
        rnn_step(V_out[t], u, bu, Wvu, Wuu, u_next)
        u[:] = u_next
    u_end[:] = u


@njit(parallel=True, **_JIT)
def gibbs_batch(W, WT, BV, BH, V, k, beta, states, P_out):
    """Independent k-step chains for many frames at once, in place on V (N × n_v), frame n with
    biases BV[n], BH[n] and its own stream states[n]; P_out[n] gets the last step's p(v|h)."""
    n_v, n_h = W.shape
    dt = W.dtype
    clamp = np.zeros(0, np.int8)
    for n in prange(V.shape[0]):
        work = np.zeros(3 * n_h + n_v, dt)
        idx = np.zeros(max(n_v, n_h), np.int64)
        gibbs_chain(W, WT, BV[n], BH[n], V[n], k, beta, clamp, states[n], P_out[n], work, idx)


# --------------------------------------------------------------------------- training


@njit(fastmath=_SIMD, **_JIT)
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
    work = np.zeros(3 * n_h + n_v, dt)
    idx = np.zeros(max(n_v, n_h), np.int64)
    clamp = np.zeros(0, np.int8)
    one = np.ones(1, dt)[0]  # beta = 1 in the parameters' float type
    for t in range(T):
        gibbs_chain(W, WT, BV[t], BH[t], Vt[t], k, one, clamp, state, P[t], work, idx)
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

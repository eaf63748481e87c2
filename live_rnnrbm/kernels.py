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

from .rng import LANES, fill_draws

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


@njit(fastmath=_SIMD, **_JIT)
def add_rows(M, rows, coefs, n, y):
    """y += Σ_{f<n} coefs[f]·M[rows[f]], four rows per pass over y.

    Indexing M[r, i] directly, not through row views: with five separate arrays (four rows and y)
    LLVM must prove they do not overlap before it vectorises, and the checks cost more than the
    rows (measured 1.6× slower)."""
    m = y.shape[0]
    f = 0
    while f + 4 <= n:
        r0, r1, r2, r3 = rows[f], rows[f + 1], rows[f + 2], rows[f + 3]
        c0, c1, c2, c3 = coefs[f], coefs[f + 1], coefs[f + 2], coefs[f + 3]
        for i in range(m):
            y[i] += (c0 * M[r0, i] + c1 * M[r1, i]) + (c2 * M[r2, i] + c3 * M[r3, i])
        f += 4
    while f < n:
        r0, c0 = rows[f], coefs[f]
        for i in range(m):
            y[i] += c0 * M[r0, i]
        f += 1


@njit(fastmath=_SIMD, **_JIT)
def add_all_rows(M, coefs, y):
    """y += coefs·M = Σ_a coefs[a]·M[a] (a dense vector times a matrix), four rows per pass."""
    n, m = M.shape
    a = 0
    while a + 4 <= n:
        c0, c1, c2, c3 = coefs[a], coefs[a + 1], coefs[a + 2], coefs[a + 3]
        for i in range(m):
            y[i] += (c0 * M[a, i] + c1 * M[a + 1, i]) + (c2 * M[a + 2, i] + c3 * M[a + 3, i])
        a += 4
    while a < n:
        c0 = coefs[a]
        for i in range(m):
            y[i] += c0 * M[a, i]
        a += 1


@njit(**_JIT)
def add_rows_on(M, v, y):
    """y += v·M for a sparse v (a frame: few notes on), by rows."""
    m = y.shape[0]
    for r in range(v.shape[0]):
        c = v[r]
        if c != 0.0:
            for i in range(m):
                y[i] += c * M[r, i]


# --------------------------------------------------------------------------- RNN


@njit(**_JIT)
def rbm_biases(u_prev, bv, bh, Wuv, Wuh, bv_t, bh_t):
    """bv_t = bv + u_{t-1}·Wuv and bh_t = bh + u_{t-1}·Wuh, written into bv_t, bh_t."""
    bv_t[:] = bv
    bh_t[:] = bh
    add_all_rows(Wuv, u_prev, bv_t)
    add_all_rows(Wuh, u_prev, bh_t)


@njit(**_JIT)
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


@njit(**_JIT)
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


# --------------------------------------------------------------------------- RBM


@njit(**_JIT)
def hidden_input(v, W, bh_t, out):
    """out = v·W + bh_t."""
    out[:] = bh_t
    add_rows_on(W, v, out)


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
ZERO, ONE, TWO = np.float32(0.0), np.float32(1.0), np.float32(2.0)
THIRD, FIFTH, SEVENTH, NINTH, ELEVENTH, THIRTEENTH = (np.float32(1.0 / n) for n in (3, 5, 7, 9, 11, 13))
# a draw u decides "on" by u < σ; when u lies within SURE of the approximation, σ is computed
# exactly, so every decision is the one the exact σ would make: the sampler is exact, not close
SURE = 1e-6


@njit(fastmath=_SIMD, **_JIT)
def rational_tanh(x):
    """tanh(x) to within 3e-7 as plain arithmetic (so that loops calling it compile to SIMD)."""
    x = CLAMP if x > CLAMP else x
    x = -CLAMP if x < -CLAMP else x
    x2 = x * x
    p = x * (A1 + x2 * (A3 + x2 * (A5 + x2 * (A7 + x2 * (A9 + x2 * (A11 + x2 * A13))))))
    q = B0 + x2 * (B2 + x2 * (B4 + x2 * B6))
    return p / q


@njit(fastmath=_SIMD, **_JIT)
def approx_sigmoid(a, beta, out):
    """out = σ(beta · a) to within 2e-7, vectorised."""
    for j in range(a.shape[0]):
        out[j] = HALF + HALF * rational_tanh(beta * a[j] * HALF)


@njit(fastmath=_SIMD, **_JIT)
def approx_softplus_sigmoid(x):
    """Σ_j softplus(x_j), and x_j replaced by σ(x_j), vectorised (float32 training).

    softplus(x) = max(x, 0) + log1p(e^{−|x|}) = max(x, 0) − log(1 − t) with t = σ(−|x|) ≤ 1/2
    (from the vectorised σ, within 2e-7), and −log(1 − t) = 2·atanh(z), z = t/(2 − t) ≤ 1/3,
    summed as its series to z¹³ (the rest < 1e-8): within 6e-7 per unit.
    """
    total = 0.0
    for j in range(x.shape[0]):
        xj = x[j]
        s = HALF + HALF * rational_tanh(xj * HALF)
        t = min(s, ONE - s)
        z = t / (TWO - t)
        z2 = z * z
        atanh = z * (ONE + z2 * (THIRD + z2 * (FIFTH + z2 * (SEVENTH + z2 * (NINTH + z2 * (ELEVENTH + z2 * THIRTEENTH))))))
        total += max(xj, ZERO) + TWO * atanh
        x[j] = s
    return total


@njit(fastmath=_SIMD, **_JIT)
def approx_tanh(a, out):
    """out = tanh(a) to within 3e-7 (float32's own rounding is 6e-8 near 1), vectorised; in place
    is fine. BPTT's 1 − u² is then the derivative to the same precision."""
    for j in range(a.shape[0]):
        out[j] = rational_tanh(a[j])


_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53


@njit(**_JIT)
def bernoulli_layer(state, probs, inputs, beta, units, clamp, idx, few_flips=False):
    """Sample every unit: units[j] = 1 with probability σ(beta · inputs[j]), given ``probs`` ≈
    that σ (see SURE); probs is overwritten. Units with clamp[j] != 0 keep their value (clamp
    may be empty: none). Writes the indices of the units that changed into idx and returns how
    many there are; the tail of idx (``new_index``) holds the layer's draws.

    Three passes, so that nothing in the hot ones branches on a draw (a third of a trained
    model's hidden units are unsure at every step: branches on them mispredict): decide every
    unit into probs (SIMD; 2 marks a draw within SURE of the approximation), settle the marked
    ones with the exact σ (rare), then apply the decisions and list the flips — with a branch
    per unit only when ``few_flips`` says the layer rarely flips (the visible layer).
    """
    n = units.shape[0]
    lanes = state.shape[1]
    draws = idx[idx.shape[0] - (n + lanes - 1) // lanes * lanes:]
    fill_draws(state, draws, n)
    unsure = 0
    for j in range(n):
        u = draws[j] * _TWO_M53
        p = probs[j]
        close = abs(u - p) <= SURE
        unsure += close
        probs[j] = 2.0 if close else (1.0 if u < p else 0.0)
    if unsure:
        for j in range(n):
            if probs[j] == 2.0:
                probs[j] = 1.0 if draws[j] * _TWO_M53 < sigmoid(beta * inputs[j]) else 0.0
    if clamp.shape[0] != 0:
        for j in range(n):
            if clamp[j] != 0:
                probs[j] = units[j]
    n_changed = 0
    if few_flips:  # a trained model's visible units rarely flip: this branch is predictable
        for j in range(n):
            new = probs[j]
            if new != units[j]:
                idx[n_changed] = j
                probs[n_changed] = new - units[j]  # already read (n_changed <= j): the flip's sign
                units[j] = new
                n_changed += 1
        return n_changed
    for j in range(n):  # the same without branches, for layers whose flips are unpredictable
        new = probs[j]
        idx[n_changed] = j
        probs[n_changed] = new - units[j]
        n_changed += new != units[j]
        units[j] = new
    return n_changed


@njit(**_JIT)
def new_index(n_visible, n_hidden):
    """The int64 scratch ``idx`` of ``gibbs_chain``: room for the flipped units' indices, then
    for a layer's draws (whole rounds of the stream's lanes)."""
    m = max(n_visible, n_hidden)
    return np.zeros(m + (m + LANES - 1) // LANES * LANES, np.int64)


@njit(**_JIT)
def gibbs_chain(W, WT, bv_t, bh_t, v, k, beta, clamp, state, pv, work, idx):
    """k steps of block Gibbs sampling v → h → v, in place on v.

    v: the start state (binary), left holding the sample after k steps. clamp: int8 mask of
    visible units held at their start value (``harmonize`` mode; empty or all zeros otherwise).
    beta: 1/temperature, of v's dtype. pv: receives p(v=1|h) of the last step (the chain's
    mean). work (≥ 3·n_h + n_v floats) and idx (``new_index``) are scratch space, from
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


def aligned(a: np.ndarray, align: int = 64) -> np.ndarray:
    """A C-contiguous copy of ``a`` whose data starts on a cache line: a row that straddles two
    lines costs the Gibbs chain two loads (measured ≈ 10 % of the flip updates)."""
    a = np.asarray(a)
    buf = np.empty(a.nbytes + align, np.uint8)
    start = -buf.ctypes.data % align
    out = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def workspace(n_visible: int, n_hidden: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Scratch arrays (work, idx) for ``gibbs_chain`` and ``sample_frame``: allocate once, reuse. work holds the chain's vectors, then (from a
    cache line on) the frame's biases bv_t | bh_t."""
    return (aligned(np.zeros(work_layout(n_visible, n_hidden)[1], dtype)),
            aligned(new_index(n_visible, n_hidden)))


# --------------------------------------------------------------------------- the live tick
# The instrument samples a frame with one kernel (after ``rnn_step``), and each argument costs
# the call ~0.06 µs of type checks and unboxing (23 arguments: 1.5 µs of a 25 µs frame): so the
# parameters travel as one packed array (11 arguments).
# Packing also puts Wuv and Wuh side by side, so bv_t | bh_t = [bv | bh] + u·[Wuv | Wuh] is one
# pass over u's rows instead of two.


@njit(**_JIT)
def _line(n):
    """n rounded up to whole 64-byte cache lines of float32 (16 floats)."""
    return (n + 15) // 16 * 16


@njit(**_JIT)
def live_layout(n_v, n_h, n_u):
    """Where things are in a packed parameter array (after a 16-float header holding n_v, n_h,
    n_u): offsets of W, WT, Wuvh, bvh, bu, Wvu, Wuu, Wpvh (the player path [Wpv | Wph], rows laid
    out as bvh), Wpu (the player path into u), the array's length, and Wuvh's row length and where bh starts in it. Wuvh's rows
    are [Wuv | Wuh] and bvh is [bv | bh], each bh from a cache line on and the row padded with
    zeros to a multiple of 8 floats (a 238-float row costs the pass over u's rows a quarter more
    than a 248-float one: the vector loop's tail)."""
    o_h = _line(n_v)
    row = (o_h + n_h + 7) // 8 * 8
    o_W = 16
    o_WT = o_W + _line(n_v * n_h)
    o_Wuvh = o_WT + _line(n_h * n_v)
    o_bvh = o_Wuvh + _line(n_u * row)
    o_bu = o_bvh + _line(row)
    o_Wvu = o_bu + _line(n_u)
    o_Wuu = o_Wvu + _line(n_v * n_u)
    o_Wpvh = o_Wuu + _line(n_u * n_u)
    o_Wpu = o_Wpvh + _line(n_v * row)
    return o_W, o_WT, o_Wuvh, o_bvh, o_bu, o_Wvu, o_Wuu, o_Wpvh, o_Wpu, o_Wpu + _line(n_v * n_u), row, o_h


@njit(**_JIT)
def work_layout(n_v, n_h):
    """Where the frame's biases bv_t | bh_t (laid out as bvh) start in the scratch ``work``, after
    the chain's 3·n_h + n_v floats, and the length of ``work``."""
    o_b = _line(3 * n_h + n_v)
    return o_b, o_b + live_layout(n_v, n_h, 1)[10]


@njit(**_JIT)
def unpack(P):
    """Views (W, WT, Wuvh, bvh, bu, Wvu, Wuu, Wpvh, Wpu) into a packed parameter array (``pack``),
    and where bh starts in the rows of Wuvh, Wpvh and bvh; no copy."""
    n_v, n_h, n_u = int(P[0]), int(P[1]), int(P[2])
    o_W, o_WT, o_Wuvh, o_bvh, o_bu, o_Wvu, o_Wuu, o_Wpvh, o_Wpu, _, row, o_h = live_layout(n_v, n_h, n_u)
    return (P[o_W:o_W + n_v * n_h].reshape((n_v, n_h)),
            P[o_WT:o_WT + n_h * n_v].reshape((n_h, n_v)),
            P[o_Wuvh:o_Wuvh + n_u * row].reshape((n_u, row)),
            P[o_bvh:o_bvh + row],
            P[o_bu:o_bu + n_u],
            P[o_Wvu:o_Wvu + n_v * n_u].reshape((n_v, n_u)),
            P[o_Wuu:o_Wuu + n_u * n_u].reshape((n_u, n_u)),
            P[o_Wpvh:o_Wpvh + n_v * row].reshape((n_v, row)),
            P[o_Wpu:o_Wpu + n_v * n_u].reshape((n_v, n_u)),
            o_h)


def pack(params: dict, dtype=None) -> np.ndarray:
    """The parameters (the eight and the player path) in one cache-line-aligned array, for
    ``sample_frame``. A copy: write ``views(P)["bv"]`` to shift the notes' biases (density).

    >>> P = pack(model.params)
    >>> views(P)["bv"][:] += math.log(2.0)      # every note twice as likely
    """
    W = np.asarray(params["W"])
    dtype = np.dtype(dtype or W.dtype)
    n_v, n_h = W.shape
    n_u = np.asarray(params["bu"]).shape[0]
    size = live_layout(n_v, n_h, n_u)[9]
    P = aligned(np.zeros(size, dtype))
    P[:3] = n_v, n_h, n_u
    v = views(P)
    v["W"][...] = W
    v["WT"][...] = W.T
    for name in ("Wuv", "Wuh", "bv", "bh", "bu", "Wvu", "Wuu", "Wpv", "Wph", "Wpu"):
        if name in params:  # the player path may be absent (zero)
            v[name][...] = params[name]
    return P


def views(P: np.ndarray) -> dict[str, np.ndarray]:
    """Named views into a packed parameter array: the eight parameters and WT (Wuv, Wuh, bv and
    bh are slices of the concatenated Wuvh and bvh)."""
    W, WT, Wuvh, bvh, bu, Wvu, Wuu, Wpvh, Wpu, o_h = unpack(P)
    n_v, n_h = W.shape
    return dict(W=W, WT=WT, Wuv=Wuvh[:, :n_v], Wuh=Wuvh[:, o_h:o_h + n_h], bv=bvh[:n_v],
                bh=bvh[o_h:o_h + n_h], bu=bu, Wvu=Wvu, Wuu=Wuu, Wpv=Wpvh[:, :n_v], Wph=Wpvh[:, o_h:o_h + n_h],
                Wpu=Wpu)


@njit(**_JIT)
def sample_frame(u_prev, P, k, beta, clamp, v_clamp, state, v_out, pv_out, work, idx):
    """The generation step of one frame, allocation-free: the biases bv_t, bh_t from u_{t-1} and
    the player's notes ``v_clamp`` (through the player path, Wpv and Wph), then a k-step chain
    started from silence (the tutorial's start state) with the notes where ``clamp`` is set held
    at their value in ``v_clamp``. v_out gets the sample v_t, pv_out its mean. P is ``pack``'s;
    work and idx come from ``workspace``."""
    bv_t, bh_t = frame_biases(u_prev, P, v_clamp, work)
    _chain_from_silence(P, bv_t, bh_t, k, beta, clamp, v_clamp, state, v_out, pv_out, work, idx)


@njit(**_JIT)
def frame_biases(u_prev, P, v_clamp, work):
    """bv_t, bh_t from u_{t-1} and the player's notes ``v_clamp`` (the player path: Wpv, Wph),
    written into ``work`` after the chain's scratch; returns views of the two."""
    W, _, Wuvh, bvh, _, _, _, Wpvh, _, o_h = unpack(P)
    n_v, n_h = W.shape
    o_b, _ = work_layout(n_v, n_h)
    b_t = work[o_b:o_b + bvh.shape[0]]      # bv_t | bh_t, laid out as bvh
    b_t[:] = bvh
    add_all_rows(Wuvh, u_prev, b_t)
    add_rows_on(Wpvh, v_clamp, b_t)
    return b_t[:n_v], b_t[o_h:o_h + n_h]


@njit(**_JIT)
def _chain_from_silence(P, bv_t, bh_t, k, beta, clamp, v_clamp, state, v_out, pv_out, work, idx):
    """A k-step chain from silence, the clamped notes held at their value in ``v_clamp``."""
    W, WT, _, _, _, _, _, _, _, _ = unpack(P)
    for i in range(v_out.shape[0]):
        v_out[i] = v_clamp[i] if clamp[i] != 0 else 0.0
    gibbs_chain(W, WT, bv_t, bh_t, v_out, k, beta, clamp, state, pv_out, work, idx)


@njit(**_JIT)
def pitch_class_sets(V, clamp, pc_of, sets):
    """sets[c] = the pitch classes of V[c]'s notes that are not clamped, as 12 bits."""
    for c in range(V.shape[0]):
        m = 0
        for i in range(V.shape[1]):
            if V[c, i] != 0.0 and (clamp.shape[0] == 0 or clamp[i] == 0):
                m |= 1 << pc_of[i]
        sets[c] = m


@njit(**_JIT)
def _bits(m):
    n = 0
    while m:
        m &= m - 1
        n += 1
    return n


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
def generate_sequence(u0, P, k, beta, state, V_out, PV_out, u_end):
    """Generate len(V_out) frames from state u0 with the packed parameters P (``pack``): V_out
    gets the frames, PV_out their means, u_end the RNN state after the last frame."""
    W, _, _, _, bu, Wvu, Wuu, _, Wpu, _ = unpack(P)
    n_v, n_h = W.shape
    u = u0.copy()
    u_next = np.empty_like(u0)
    work = np.zeros(work_layout(n_v, n_h)[1], W.dtype)
    idx = new_index(n_v, n_h)
    clamp = np.zeros(n_v, np.int8)
    nobody = np.zeros(n_v, W.dtype)  # no player: the paper's model
    for t in range(V_out.shape[0]):
        sample_frame(u, P, k, beta, clamp, nobody, state, V_out[t], PV_out[t], work, idx)
        rnn_step(V_out[t], nobody, u, bu, Wvu, Wpu, Wuu, u_next)
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
        idx = new_index(n_v, n_h)
        gibbs_chain(W, WT, BV[n], BH[n], V[n], k, beta, clamp, states[n], P_out[n], work, idx)


# --------------------------------------------------------------------------- training


@njit(**_JIT)
def softplus_and_sigmoid(x):
    """(softplus(x), σ(x)) from one exp: e = e^{−|x|}, softplus = max(x, 0) + log1p(e)."""
    e = math.exp(-abs(x))
    r = 1.0 / (1.0 + e)
    if x >= 0.0:
        return x + math.log1p(e), r
    return math.log1p(e), e * r


@njit(fastmath=_SIMD, **_JIT)
def cost_and_grad(V, Vt, X, U, BV, BH, W, Wuv, Wuh, Wvu, Wuu,
                  gW, gbv, gbh, gWuh, gWuv, gWvu, gWuu, gbu, Pl, gWpv, gWph, gWpu):
    """cost = mean_t [F_t(v_t) − F_t(ṽ_t)] with the CD samples Vt held constant, and its gradient
    with respect to all eight parameters, *added* into the g* arrays (BPTT through bv_t and bh_t
    into the RNN). X holds the RNN's inputs, U, BV, BH come from ``rnn_forward`` over X: X is V
    (teacher forcing), or V with some frames replaced by the model's own (``subsequence_grad``'s
    ``mix``), held constant like Vt. Pl (T × n_v, or 0 rows: nobody plays) holds the player's
    notes, whose path BV, BH and U already carry (p_t·Wpv, p_t·Wph, and p_t·Wpu inside u_t); its
    gradient goes into gWpv, gWph, gWpu. Returns the cost.

    The backward pass over time only carries dcost/du_t (a matrix-vector product per frame, the
    part that must be sequential); the weight gradients of the RNN are sums over frames of outer
    products, accumulated afterwards four frames per pass over each gradient row.
    """
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
        for i in range(n_v):
            if Vt[t, i] != 0.0:
                axpy(s * Vt[t, i], sig_m, gW[i])
            if V[t, i] != 0.0:
                axpy(-s * V[t, i], sig_d, gW[i])
    # backpropagation through time: du holds dcost/du_t for the frame being processed; DA[t] gets
    # dcost/da_t, where u_t = tanh(a_t)
    DA = np.empty((T, n_u), dt)
    du = np.zeros(n_u, dt)
    for t in range(T - 1, -1, -1):
        # u_t = U[t+1] = tanh(a_t); it feeds bv_{t+1}, bh_{t+1} and u_{t+1} (all in du)
        da = DA[t]
        for b in range(n_u):
            ub = U[t + 1, b]
            da[b] = du[b] * (1.0 - ub * ub)
        for a in range(n_u):
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
            du[a] = acc
    # the weight gradients: g[a] += Σ_t U[t, a]·X[t] for X = DA, dBV, dBH (U[t] = u_{t-1})
    UT = np.ascontiguousarray(U[:T].T)
    for a in range(n_u):
        add_all_rows(DA, UT[a], gWuu[a])
        add_all_rows(dBV, UT[a], gWuv[a])
        add_all_rows(dBH, UT[a], gWuh[a])
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


CHAIN_STARTS = ("data", "silence", "previous")  # where the negative phase's chain of frame t starts
NO_CLAMP = np.zeros((0, 0), np.int8)  # subsequence_grad's C when nobody plays along
NO_MIX = np.zeros(0, np.int8)  # and its mix when the RNN hears only the true frames


@njit(**_JIT)
def subsequence_grad(V, u0, W, WT, bv, bh, Wuh, Wuv, Wvu, Wuu, bu, k, state,
                     gW, gbv, gbh, gWuh, gWuv, gWvu, gWuu, gbu, u_end, start, C, mix, k_own, own_neg,
                     Wpv, Wph, Wpu, gWpv, gWph, gWpu):
    """One CD-k training step on a subsequence V (T × n_v) starting from RNN state u0: forward
    pass, a k-step chain for every frame, then ``cost_and_grad``. Gradients are added into g*;
    u_end gets u_T (to carry into the next subsequence of the same piece). Returns
    (cost, cross-entropy).

    ``start`` (an index into CHAIN_STARTS) is where frame t's chain starts: 0, at v_t (CD-k, the
    tutorial); 1, at silence, as generation starts it, so that training meets the states a
    short chain from silence visits; 2, at v_{t-1} (silence for the first frame).

    Listening (the player's notes): C (T × n_v int8, or 0 rows: none) marks, per frame, the notes
    the player holds. Where C is 1 they are clamped at their true value in the negative chain, so
    that CD follows the gradient of log p(rest_t | player_t, history) — the conditional the live
    ``harmonize`` mode samples from; where C is 2 they are heard but not clamped, as in ``follow``
    (the RNN's own frame then hears them with the model's notes). The player's notes also reach frame t's biases through the player path (Wpv,
    Wph) and the RNN state u_t (Wpu; gradients into gWpv, gWph, gWpu). mix (T int8, or empty: none) marks the frames whose RNN
    input is the model's own frame instead of v_t: the model's own accompaniment around the
    player's notes, as the live instrument's RNN hears it (scheduled sampling), treated as data,
    not differentiated through. With k_own > 0 it is sampled as the instrument samples it: a k_own-step chain from
    silence with the player's notes clamped, given the history so far (itself partly the model's
    own); with k_own = 0 it is the negative sample of the CD chain. With own_neg (and k_own > 0)
    the own frame is the negative sample too, instead of a CD chain from the data: the gradient of
    the conditional likelihood with the instrument's own sampler as the negative phase, which
    pushes down the harmonies the instrument would play where they are wrong. Chains run in frame
    order either way, so with neither C nor mix the draws and the result are those of the
    teacher-forced step.
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
    clamped = C.shape[0] != 0
    Pl = np.zeros((T if clamped else 0, n_v), dt)  # the player's notes
    if clamped:  # a chain started off the data still holds the player's true notes
        for t in range(T):
            for i in range(n_v):
                if C[t, i] != 0:
                    Pl[t, i] = V[t, i]
                if C[t, i] == 1:
                    Vt[t, i] = V[t, i]
    mixing = mix.shape[0] != 0
    X = V.copy() if mixing else V  # the RNN's input: written only where the model's own frames go
    P = np.empty((T, n_v), dt)
    work = np.zeros(3 * n_h + n_v, dt)
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
        if clamped:
            for i in range(n_v):
                cl[i] = 1 if C[t, i] == 1 else 0
        ct = cl if clamped else no_clamp
        own = mixing and mix[t] != 0 and k_own > 0
        if not (own and own_neg):
            gibbs_chain(W, WT, BV[t], BH[t], Vt[t], k, one, ct, state, P[t], work, idx)
        if own:
            for i in range(n_v):
                X[t, i] = V[t, i] if clamped and C[t, i] == 1 else 0.0
            gibbs_chain(W, WT, BV[t], BH[t], X[t], k_own, one, ct, state, P[t], work, idx)
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
                         gW, gbv, gbh, gWuh, gWuv, gWvu, gWuu, gbu, Pl, gWpv, gWph, gWpu)
    u_end[:] = U[T]
    return cost, cross_entropy(V, P)


@njit(parallel=True, **_JIT)
def batch_grad(Vcat, starts, lengths, U0, W, WT, bv, bh, Wuh, Wuv, Wvu, Wuu, bu, k, states,
               gW, gbv, gbh, gWuh, gWuv, gWvu, gWuu, gbu, U_end, costs, xents, start, Ccat, mixcat, k_own,
               own_neg, Wpv, Wph, Wpu, gWpv, gWph, gWpu):
    """``subsequence_grad`` for a mini-batch of B subsequences in parallel (one per thread).

    Subsequence b is Vcat[starts[b] : starts[b] + lengths[b]], starting from U0[b], drawing from
    states[b]. The g* arrays carry a leading batch axis (B, ...) so threads never share a
    buffer; the caller sums over it. U_end[b], costs[b], xents[b] get each subsequence's results;
    ``start``, ``k_own``, ``own_neg`` as in ``subsequence_grad``; Ccat and mixcat are its C and
    mix for the frames of Vcat (0 rows / empty: none).
    """
    for b in prange(starts.shape[0]):
        s0, s1 = starts[b], starts[b] + lengths[b]
        V = Vcat[s0:s1]
        C = Ccat[s0:s1] if Ccat.shape[0] != 0 else Ccat
        mix = mixcat[s0:s1] if mixcat.shape[0] != 0 else mixcat
        c, x = subsequence_grad(V, U0[b], W, WT, bv, bh, Wuh, Wuv, Wvu, Wuu, bu, k, states[b],
                                gW[b], gbv[b], gbh[b], gWuh[b], gWuv[b], gWvu[b], gWuu[b], gbu[b],
                                U_end[b], start, C, mix, k_own, own_neg, Wpv, Wph, Wpu, gWpv[b], gWph[b],
                                gWpu[b])
        costs[b] = c
        xents[b] = x

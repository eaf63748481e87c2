"""The pieces of an annealing chain that AIS (``ais``) and RAISE (``reverse_ais``) share: the
schedule of inverse temperatures β, the hidden pass and the Gibbs sweep at β, a chain's start from
a visible v, the work arrays, and the log of the mean of the importance weights.

Why it is cheap enough for 45,000 frames: v is sparse and changes rarely in a trained model,
so a = v·W is kept up to date by adding or subtracting the rows of W of the notes that flip,
and Σ_j softplus(x_j) is computed as Σ_j max(x_j, 0) + log Π_j (1 + e^{−|x_j|}): one exp per
hidden unit (shared with the σ that samples h) and a single log per step. When v did not
change in a sweep, the next step's "before" term is the term just computed. h·Wᵀ is kept up to
date the same way from the hidden units that flip.

Every kernel takes one rng stream per frame (``kernels.rng.new_states``), so results do not depend on
how frames meet threads.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..kernels.jit import JIT
from ..kernels.rng import uniform


def beta_schedule(n_steps: int, kind: str = "sm") -> np.ndarray:
    """The inverse temperatures β_0 = 0 < β_1 < … < β_K = 1 (K = ``n_steps``).

    ``"sm"``: Salakhutdinov & Murray (2008)'s piecewise-linear schedule scaled to K steps — of
    their 14,500 steps, 500 cover [0, 0.5], 4,000 cover [0.5, 0.9] and 10,000 cover [0.9, 1]
    (the distributions change fastest near β = 1, where the weights matter). ``"linear"``: even
    steps.

    >>> beta_schedule(4, "linear")
    array([0.  , 0.25, 0.5 , 0.75, 1.  ])
    """
    if n_steps < 1:
        raise ValueError(f"AIS needs at least 1 step, got {n_steps}")
    if kind == "linear":
        return np.linspace(0.0, 1.0, n_steps + 1)
    if kind != "sm":
        raise ValueError(f"unknown AIS schedule {kind!r} (use 'sm' or 'linear')")
    n1 = max(1, round(n_steps * 500 / 14500))
    n2 = max(1, round(n_steps * 4000 / 14500))
    n3 = n_steps - n1 - n2
    if n3 < 1:
        return np.linspace(0.0, 1.0, n_steps + 1)
    return np.concatenate([np.linspace(0.0, 0.5, n1 + 1)[:-1], np.linspace(0.5, 0.9, n2 + 1)[:-1],
                           np.linspace(0.9, 1.0, n3 + 1)])


@njit(**JIT)
def _bernoulli_logit(y, u):
    """u < σ(y) for a uniform u, mostly without an exp: e^{|y|} ≥ 1 + |y| + y²/2 bounds σ away
    from the far side, and most notes sit far off (y ≪ 0) in a trained model, so the bound
    settles the draw without computing σ exactly. The result is exactly u < σ(y)."""
    ay = abs(y)
    tail = 1.0 / (2.0 + ay + 0.5 * ay * ay)  # ≥ σ(−|y|)
    if y <= 0.0:
        if u >= tail:
            return False
    elif u < 1.0 - tail:
        return True
    return u < 1.0 / (1.0 + math.exp(-y))


@njit(**JIT)
def hidden_pass(beta, a, bh, ph):
    """x_j = β·a_j + bh_j: writes σ(x_j) into ph and returns Σ_j softplus(x_j), with one exp
    per unit and one log in all (the product of the (1 + e^{−|x|}) ≤ 2 stays far from overflow
    for any realistic n_h; it is flushed into the log every 512 units to be safe)."""
    pos = 0.0
    prod = 1.0
    logsum = 0.0
    for j in range(a.shape[0]):
        x = beta * a[j] + bh[j]
        e = math.exp(np.float32(-abs(x)))  # single precision: half the cost, ample for a weight
        if x >= 0.0:
            pos += x
            ph[j] = 1.0 / (1.0 + e)
        else:
            ph[j] = e / (1.0 + e)
        prod *= 1.0 + e
        if (j & 511) == 511:
            logsum += math.log(prod)
            prod = 1.0
    return pos + logsum + math.log(prod)


@njit(**JIT)
def softplus_sum(beta, a, bh):
    """Σ_j softplus(β·a_j + bh_j), as in ``hidden_pass`` but without the σ."""
    pos = 0.0
    prod = 1.0
    logsum = 0.0
    for j in range(a.shape[0]):
        x = beta * a[j] + bh[j]
        if x >= 0.0:
            pos += x
        prod *= 1.0 + math.exp(np.float32(-abs(x)))
        if (j & 511) == 511:
            logsum += math.log(prod)
            prod = 1.0
    return pos + logsum + math.log(prod)


@njit(**JIT)
def gibbs_sweep(beta, W, WT, bv, c, ph, h, hw, v, a, state):
    """One Gibbs sweep at β: h ~ ph (σ of the hidden input, from ``hidden_pass``), then
    v ~ σ(β·h·Wᵀ + bv + (1−β)·c). hw = h·Wᵀ and a (v·W − d) are kept up to date from the units
    that flip. Returns (whether v changed, the change of v·c, the change of v·bv)."""
    n_v, n_h = W.shape
    for j in range(n_h):
        on = uniform(state) < ph[j]
        if on != (h[j] != 0.0):
            if on:
                h[j] = 1.0
                for i in range(n_v):
                    hw[i] += WT[j, i]
            else:
                h[j] = 0.0
                for i in range(n_v):
                    hw[i] -= WT[j, i]
    changed = False
    dvc = 0.0
    dvb = 0.0
    for i in range(n_v):
        y = beta * hw[i] + bv[i] + (1.0 - beta) * c[i]
        on = _bernoulli_logit(y, uniform(state))
        if on != (v[i] != 0.0):
            changed = True
            if on:
                dvc += c[i]
                dvb += bv[i]
                v[i] = 1.0
                for j in range(n_h):
                    a[j] += W[i, j]
            else:
                dvc -= c[i]
                dvb -= bv[i]
                v[i] = 0.0
                for j in range(n_h):
                    a[j] -= W[i, j]
    return changed, dvc, dvb


@njit(**JIT)
def start_chain(v, W, bv, c, d, a, h, hw):
    """A chain's state for the visible v: a = v·W − d (so that the hidden input along the path
    is x = β·a + bh + d), h and hw = h·Wᵀ zero. Returns (v·c, v·bv)."""
    n_v, n_h = W.shape
    for j in range(n_h):
        a[j] = -d[j]
    vc = 0.0
    vb = 0.0
    for i in range(n_v):
        if v[i] != 0.0:
            vc += c[i]
            vb += bv[i]
            for j in range(n_h):
                a[j] += W[i, j]
    h[:] = 0.0
    hw[:] = 0.0
    return vc, vb


@njit(**JIT)
def chain_work(n_v, n_h):
    """The float64 work arrays of ``ais_frame`` and ``raise_frame``: a, ph, h, hw, v, bhd."""
    return np.empty(n_h), np.empty(n_h), np.empty(n_h), np.empty(n_v), np.empty(n_v), np.empty(n_h)


@njit(**JIT)
def logmeanexp_and_var(log_w):
    """(log mean exp(log_w), delta-method variance of that estimate: Var(w)/(M·mean(w)²), and the
    effective sample size (Σw)²/Σw²)."""
    M = log_w.shape[0]
    m = log_w[0]
    for c in range(1, M):
        if log_w[c] > m:
            m = log_w[c]
    s = 0.0
    s2 = 0.0
    for c in range(M):
        r = math.exp(log_w[c] - m)
        s += r
        s2 += r * r
    mean = s / M
    var = s2 / M - mean * mean
    if var < 0.0:
        var = 0.0
    return m + math.log(mean), var / (M * mean * mean) if M > 1 else 0.0, s * s / s2

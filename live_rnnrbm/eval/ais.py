"""Numba kernels for evaluation: log Z of every frame's RBM by annealed importance sampling (AIS),
the exact free energy of the true frames, and the expected frame-level accuracy.

AIS (Neal 2001; for RBMs Salakhutdinov & Murray 2008). Frame t's RBM has the energy
E(v, h) = −v·bv_t − h·bh_t − v·W·h. The base is the same RBM with W scaled to 0 and its biases
shifted by c (visible) and d (hidden); the path scales W by β and the shifts by 1 − β:

    p_β(v, h) ∝ exp(v·(bv_t + (1−β)c) + h·(bh_t + (1−β)d) + β·v·W·h)
    p*_β(v)   = exp(v·(bv_t + (1−β)c)) · Π_j (1 + exp(bh_j + d_j + β·((v·W)_j − d_j)))   (h summed out)

At β = 0 the units are independent: log Z_0 = Σ_i softplus(bv_i + c_i) + Σ_j softplus(bh_j + d_j)
exactly, and v is drawn exactly from Π σ(bv_i + c_i). With c = d = 0 this is literally "the RBM
with W scaled to 0"; ``fitted_base`` picks c, d per frame so that the base already plays the
frame's likely notes, which a trained model needs (docs/evaluation.md, "Convergence: more AIS
steps and chains": with c = d = 0 the estimate is still far off after thousands of steps). A
chain draws v_1 from the base, then for k = 1..K adds log p*_{β_k}(v_k) − log p*_{β_{k−1}}(v_k)
to its log weight and moves v_k → v_{k+1} by one Gibbs sweep v → h → v that leaves p_{β_k}
invariant. The mean of the weights estimates Z/Z_0
without bias, so log Z ≈ log Z_0 + logmeanexp(log w) — a slight under-estimate in log Z
(Jensen), so a log-likelihood from it errs on the optimistic side by about Var/2 per frame,
which ``log_z_var`` lets the caller check.

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
from numba import njit, prange

from ..kernels.gibbs import gibbs_chain
from ..kernels.jit import JIT
from ..kernels.packed import chain_work_size, new_index
from ..kernels.rng import uniform
from ..kernels.simd import softplus


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
def _hidden_pass(beta, a, bh, ph):
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
def _softplus_sum(beta, a, bh):
    """Σ_j softplus(β·a_j + bh_j), as in ``_hidden_pass`` but without the σ."""
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
def _gibbs_sweep(beta, W, WT, bv, c, ph, h, hw, v, a, state):
    """One Gibbs sweep at β: h ~ ph (σ of the hidden input, from ``_hidden_pass``), then
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
def _start_chain(v, W, bv, c, d, a, h, hw):
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
def ais_frame(W, WT, bv, bh, c, d, betas, log_w, state, a, ph, h, hw, v, bhd):
    """AIS for one RBM (biases bv, bh; base shifts c, d): fills log_w (one entry per chain)
    with the chains' log importance weights, each an estimate of log(Z/Z_0). a, ph, h, bhd (n_h)
    and hw, v (n_v) are float64 work arrays. Returns log Z_0."""
    n_v, n_h = W.shape
    K = betas.shape[0] - 1
    log_z0 = 0.0
    for i in range(n_v):
        log_z0 += softplus(bv[i] + c[i])
    for j in range(n_h):
        bhd[j] = bh[j] + d[j]
        log_z0 += softplus(bhd[j])
    s0 = 0.0  # Σ_j softplus(bh_j + d_j): the hidden term of log p*_0(v), whatever v is
    for j in range(n_h):
        s0 += softplus(bhd[j])
    for chain in range(log_w.shape[0]):
        # an exact draw from the base: independent v_i ~ σ(bv_i + c_i)
        for i in range(n_v):
            v[i] = 1.0 if uniform(state) < 1.0 / (1.0 + math.exp(-(bv[i] + c[i]))) else 0.0
        vc, _ = _start_chain(v, W, bv, c, d, a, h, hw)  # v·c: the base's extra visible bias term
        lw = 0.0
        s_prev = s0  # Σ_j softplus(β_{k−1}·a_j + bh_j + d_j) for the current v
        for k in range(1, K + 1):
            beta = betas[k]
            s_k = _hidden_pass(beta, a, bhd, ph)
            lw += s_k - s_prev - (beta - betas[k - 1]) * vc
            if k == K:
                break
            changed, dvc, _ = _gibbs_sweep(beta, W, WT, bv, c, ph, h, hw, v, a, state)
            vc += dvc
            s_prev = _softplus_sum(beta, a, bhd) if changed else s_k
        log_w[chain] = lw
    return log_z0


@njit(**JIT)
def raise_frame(W, WT, bv, bh, c, d, betas, v_data, log_w, state, a, ph, h, hw, v, bhd):
    """RAISE for one RBM (Burda, Grosse & Salakhutdinov 2015): the conservative twin of
    ``ais_frame``. The forward AIS chain, read as a generative model — v_0 from the base, then
    one Gibbs sweep at each β_1 … β_K — defines an *annealed model* p_ann, which tends to the
    RBM as K grows. Its probability of the true frame is estimated by running the chain
    backwards from it: x_K = v_data, x_{k−1} = one sweep at β_k from x_k (a v → h → v sweep is
    reversible, so it is its own reversal), with the weight

        w = p_0(x_0) · Π_k p*_{β_k}(x_k) / p*_{β_k}(x_{k−1}),   E[w] = p_ann(v_data).

    The mean of the weights is unbiased for p_ann(v_data), so its log errs low (Jensen): where
    AIS's log Z is too low when it misses modes and its log-likelihood too good, RAISE's is too
    bad. Between the two lies the truth, once the annealed model is close to the RBM. The base
    (c, d) must not depend on v_data itself, or p_ann would not be a model of it. Fills log_w
    with the chains' log weights (each an estimate of log p_ann(v_data))."""
    n_v, n_h = W.shape
    K = betas.shape[0] - 1
    for j in range(n_h):
        bhd[j] = bh[j] + d[j]
    for chain in range(log_w.shape[0]):
        v[:] = v_data
        vc, vb = _start_chain(v, W, bv, c, d, a, h, hw)  # v·c, v·bv
        lw = 0.0
        for k in range(K, 0, -1):
            beta = betas[k]
            s_k = _hidden_pass(beta, a, bhd, ph)
            before = vb + (1.0 - beta) * vc + s_k  # log p*_{β_k}(x_k)
            changed, dvc, dvb = _gibbs_sweep(beta, W, WT, bv, c, ph, h, hw, v, a, state)
            vc += dvc
            vb += dvb
            if changed:  # unchanged, x_{k−1} = x_k and the ratio is 1
                lw += before - (vb + (1.0 - beta) * vc + _softplus_sum(beta, a, bhd))
        # log p_0(x_0): the base's units are independent, v_i ~ σ(bv_i + c_i)
        for i in range(n_v):
            x = bv[i] + c[i]
            lw += (x if v[i] != 0.0 else 0.0) - softplus(x)
        log_w[chain] = lw


@njit(**JIT)
def _chain_work(n_v, n_h):
    """The float64 work arrays of ``ais_frame`` and ``raise_frame``: a, ph, h, hw, v, bhd."""
    return np.empty(n_h), np.empty(n_h), np.empty(n_h), np.empty(n_v), np.empty(n_v), np.empty(n_h)


@njit(parallel=True, **JIT)
def raise_log_p(W, WT, BV, BH, C, D, betas, V, n_chains, states, log_p, log_p_var):
    """RAISE estimates of log p(V[n]) under the RBMs with biases BV[n], BH[n] and base shifts
    C[n], D[n], in parallel over n: log_p[n] = log mean of the chains' weights (no jackknife:
    its small-sample bias points the conservative way, and stays), log_p_var[n] its
    delta-method variance."""
    n_v, n_h = W.shape
    for n in prange(BV.shape[0]):
        a, ph, h, hw, v, bhd = _chain_work(n_v, n_h)
        log_w = np.empty(n_chains)
        raise_frame(W, WT, BV[n], BH[n], C[n], D[n], betas, V[n], log_w, states[n], a, ph, h, hw, v, bhd)
        lme, var, _ = _logmeanexp_and_var(log_w)
        log_p[n] = lme
        log_p_var[n] = var


@njit(**JIT)
def _logmeanexp_and_var(log_w):
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


@njit(parallel=True, **JIT)
def ais_log_z(W, WT, BV, BH, C, D, betas, n_chains, states, log_z, log_z_var, ess, log_z_jack):
    """log Z of the RBMs with biases BV[n], BH[n] (n = 0..N−1), in parallel over n, frame n
    drawing from states[n]. Writes log_z[n], log_z_var[n] (the estimate's variance from the
    spread of the weights, delta method), ess[n] (the chains' effective sample size) and
    log_z_jack[n], the jackknife bias-corrected estimate M·L − (M−1)·mean_i L_(−i), where L_(−i)
    is logmeanexp without chain i: log of a mean is biased low by O(1/M), the jackknife removes
    that leading term."""
    n_v, n_h = W.shape
    for n in prange(BV.shape[0]):
        a, ph, h, hw, v, bhd = _chain_work(n_v, n_h)
        log_w = np.empty(n_chains)
        log_z0 = ais_frame(W, WT, BV[n], BH[n], C[n], D[n], betas, log_w, states[n], a, ph, h, hw, v, bhd)
        lme, var, ess_n = _logmeanexp_and_var(log_w)
        log_z[n] = log_z0 + lme
        log_z_var[n] = var
        ess[n] = ess_n
        log_z_jack[n] = log_z[n]
        if n_chains > 1:
            m = log_w.max()
            loo = 0.0  # mean over i of logmeanexp without chain i (sum of the others, not S − w_i: no cancellation)
            for i in range(n_chains):
                t = 0.0
                for c2 in range(n_chains):
                    if c2 != i:
                        t += math.exp(log_w[c2] - m)
                loo += m + math.log(t / (n_chains - 1))
            loo /= n_chains
            log_z_jack[n] = log_z0 + n_chains * lme - (n_chains - 1) * loo


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
    n_v, n_h = W.shape
    dt = W.dtype
    for n in prange(V.shape[0]):
        clamp = np.zeros(n_v, np.int8)
        s_v = np.empty(n_v, dt)
        pv = np.empty(n_v, dt)
        work = np.zeros(chain_work_size(n_v, n_h), dt)
        idx = new_index(n_v, n_h)
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


@njit(parallel=True, **JIT)
def fitted_base(W, WT, BV, BH, V, n_chains, k, prior, states, C, D):
    """The AIS base for each frame n: shifts C[n] (visible) and D[n] (hidden) of the biases of
    frame n's RBM with W scaled to 0, so that the base's note probabilities μ match those of
    ``n_chains`` k-step Gibbs chains of the frame's RBM (Rao-Blackwellised: the mean of
    p(v|h)), mixed with ``prior`` of an even coin so that no note is ruled out: C = logit(μ) − BV,
    and D = μ·W (the mean-field hidden input, which the W-scaled path then only has to correct).

    Half the chains start from silence (as generation does), half from the true frame V[n]: a
    trained RBM's Gibbs chain mixes slowly between chords, and the mode at the true frame is the
    one whose mass AIS must not miss (missing it makes log Z too low and the log-likelihood too
    good). Any fixed base keeps the AIS estimate of Z unbiased; this only lowers its variance."""
    n_v, n_h = W.shape
    dt = W.dtype
    one = np.ones(1, dt)[0]
    for n in prange(BV.shape[0]):
        clamp = np.zeros(n_v, np.int8)
        v = np.empty(n_v, dt)
        pv = np.empty(n_v, dt)
        work = np.zeros(chain_work_size(n_v, n_h), dt)
        idx = new_index(n_v, n_h)
        mu = np.zeros(n_v)
        for s in range(n_chains):
            if s % 2 == 0:
                v[:] = 0.0
            else:
                v[:] = V[n]
            gibbs_chain(W, WT, BV[n], BH[n], v, k, one, clamp, states[n], pv, work, idx)
            for i in range(n_v):
                mu[i] += pv[i]
        D[n, :] = 0.0
        for i in range(n_v):
            mi = mu[i] / n_chains
            for j in range(n_h):
                D[n, j] += mi * W[i, j]
            m = (1.0 - prior) * mi + prior * 0.5
            C[n, i] = math.log(m) - math.log1p(-m) - BV[n, i]

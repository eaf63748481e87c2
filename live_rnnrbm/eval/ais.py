"""log Z of every frame's RBM by annealed importance sampling (AIS), in Numba, and the base it
anneals from, fitted to each frame.

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

``reverse_ais`` is RAISE, the conservative twin; ``anneal`` holds the pieces of a chain the two
share, ``frame_measures`` the exact free energies and the accuracy.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..kernels.gibbs import chain_scratch, gibbs_chain
from ..kernels.jit import JIT
from ..kernels.rng import uniform
from ..kernels.simd import softplus
from .anneal import chain_work, gibbs_sweep, hidden_pass, logmeanexp_and_var, softplus_sum, start_chain


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
        vc, _ = start_chain(v, W, bv, c, d, a, h, hw)  # v·c: the base's extra visible bias term
        lw = 0.0
        s_prev = s0  # Σ_j softplus(β_{k−1}·a_j + bh_j + d_j) for the current v
        for k in range(1, K + 1):
            beta = betas[k]
            s_k = hidden_pass(beta, a, bhd, ph)
            lw += s_k - s_prev - (beta - betas[k - 1]) * vc
            if k == K:
                break
            changed, dvc, _ = gibbs_sweep(beta, W, WT, bv, c, ph, h, hw, v, a, state)
            vc += dvc
            s_prev = softplus_sum(beta, a, bhd) if changed else s_k
        log_w[chain] = lw
    return log_z0


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
        a, ph, h, hw, v, bhd = chain_work(n_v, n_h)
        log_w = np.empty(n_chains)
        log_z0 = ais_frame(W, WT, BV[n], BH[n], C[n], D[n], betas, log_w, states[n], a, ph, h, hw, v, bhd)
        lme, var, ess_n = logmeanexp_and_var(log_w)
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
        clamp, v, pv, work, idx = chain_scratch(W)
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

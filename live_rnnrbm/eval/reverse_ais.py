"""RAISE (Burda, Grosse & Salakhutdinov 2015): the conservative twin of AIS (``ais``), which
anneals along the same path (``anneal``) backwards from the true frame, so that its
log-likelihood errs low where AIS's errs high.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..kernels.jit import JIT
from ..kernels.simd import softplus
from .anneal import chain_work, gibbs_sweep, hidden_pass, logmeanexp_and_var, softplus_sum, start_chain


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
        vc, vb = start_chain(v, W, bv, c, d, a, h, hw)  # v·c, v·bv
        lw = 0.0
        for k in range(K, 0, -1):
            beta = betas[k]
            s_k = hidden_pass(beta, a, bhd, ph)
            before = vb + (1.0 - beta) * vc + s_k  # log p*_{β_k}(x_k)
            changed, dvc, dvb = gibbs_sweep(beta, W, WT, bv, c, ph, h, hw, v, a, state)
            vc += dvc
            vb += dvb
            if changed:  # unchanged, x_{k−1} = x_k and the ratio is 1
                lw += before - (vb + (1.0 - beta) * vc + softplus_sum(beta, a, bhd))
        # log p_0(x_0): the base's units are independent, v_i ~ σ(bv_i + c_i)
        for i in range(n_v):
            x = bv[i] + c[i]
            lw += (x if v[i] != 0.0 else 0.0) - softplus(x)
        log_w[chain] = lw


@njit(parallel=True, **JIT)
def raise_log_p(W, WT, BV, BH, C, D, betas, V, n_chains, states, log_p, log_p_var):
    """RAISE estimates of log p(V[n]) under the RBMs with biases BV[n], BH[n] and base shifts
    C[n], D[n], in parallel over n: log_p[n] = log mean of the chains' weights (no jackknife:
    its small-sample bias points the conservative way, and stays), log_p_var[n] its
    delta-method variance."""
    n_v, n_h = W.shape
    for n in prange(BV.shape[0]):
        a, ph, h, hw, v, bhd = chain_work(n_v, n_h)
        log_w = np.empty(n_chains)
        raise_frame(W, WT, BV[n], BH[n], C[n], D[n], betas, V[n], log_w, states[n], a, ph, h, hw, v, bhd)
        lme, var, _ = logmeanexp_and_var(log_w)
        log_p[n] = lme
        log_p_var[n] = var

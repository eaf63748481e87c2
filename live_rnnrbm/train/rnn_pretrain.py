"""The RNN pretrained alone, as a frame predictor: the RNN-RBM with W = 0.

With W = 0 the conditional RBM of frame t is independent notes, p(v_t,i = 1) = σ(bv_t,i) with
bv_t = bv + u_{t−1}·Wuv, and its log-likelihood is a plain cross-entropy with an exact gradient:

    cost = mean_t Σ_i −[v_t,i log σ(bv_t,i) + (1 − v_t,i) log(1 − σ(bv_t,i))]
    u_t  = tanh(bu + v_t·Wvu + u_{t−1}·Wuu)

Its gradient has none of CD's sampling noise, so the RNN learns the music's time structure
quickly, and the RNN-RBM training that follows starts from a trained RNN and only has to add the
RBM's chords on top (measured on JSB: weights/README.md). The trainer runs this
first (``--pretrain-rnn-epochs``), on the same subsequences as the RNN-RBM epochs.

>>> cost, grads, U_end = frame_predictor_grad(V, starts, lengths, U0, params)   # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np

RNN_PARAMS = ("bv", "Wuv", "Wvu", "Wuu", "bu")


def frame_predictor_grad(V: np.ndarray, starts: np.ndarray, lengths: np.ndarray, U0: np.ndarray,
                         params: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Cross-entropy of the RNN's frame predictions and its gradient by BPTT, for a batch of
    subsequences: V holds them one after another (subsequence b is V[starts[b]:starts[b] +
    lengths[b]]), U0[b] is the u before its first frame. Returns each subsequence's mean cost
    per frame (nats), the gradient of the mean over subsequences of those costs (as the RNN-RBM
    update averages its subsequences), and the u each subsequence ends with."""
    B, T = len(lengths), int(lengths.max())
    n_v = V.shape[1]
    dt = params["Wuu"].dtype
    # the batch as (T, B, n_v), zero-padded, with a mask and per-subsequence weights 1/(B·length)
    X = np.zeros((T, B, n_v), dt)
    mask = np.zeros((T, B, 1), dt)
    for b in range(B):
        n = int(lengths[b])
        X[:n, b] = V[starts[b]:starts[b] + n]
        mask[:n, b] = 1.0
    scale = (1.0 / (B * lengths.astype(dt)))[None, :, None]
    bv, Wuv, Wvu, Wuu, bu = (params[n] for n in RNN_PARAMS)
    U = np.empty((T + 1, B, Wuu.shape[0]), dt)  # U[t] = u before frame t
    U[0] = U0
    P = np.empty((T, B, n_v), dt)
    for t in range(T):
        P[t] = 1.0 / (1.0 + np.exp(-(bv + U[t] @ Wuv)))
        # a padded step keeps u, so that U[T] is each subsequence's last u
        U[t + 1] = np.where(mask[t] > 0, np.tanh(bu + X[t] @ Wvu + U[t] @ Wuu), U[t])
    eps = np.finfo(dt).tiny
    ce = -(X * np.log(np.maximum(P, eps)) + (1 - X) * np.log(np.maximum(1 - P, eps))) * mask
    costs = ce.sum(axis=(0, 2)) / lengths
    g = {n: np.zeros_like(params[n]) for n in RNN_PARAMS}
    dU = np.zeros_like(U0, dtype=dt)  # ∂cost/∂u_t from the future
    for t in range(T - 1, -1, -1):
        # u_{t} = tanh(a_t) (only where the step is real); then bv_t's error
        dA = dU * (1.0 - U[t + 1] ** 2) * mask[t]
        g["bu"] += dA.sum(axis=0)
        g["Wvu"] += X[t].T @ dA
        g["Wuu"] += U[t].T @ dA
        dU = dA @ Wuu.T + dU * (1.0 - mask[t])  # a padded step passes ∂u straight through
        dBV = (P[t] - X[t]) * mask[t] * scale[0]
        g["bv"] += dBV.sum(axis=0)
        g["Wuv"] += U[t].T @ dBV
        dU += dBV @ Wuv.T
    return costs, g, U[T]

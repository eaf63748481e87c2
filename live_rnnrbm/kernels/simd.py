"""Small vector and row primitives, and vectorised approximations of tanh, σ and softplus.

Plain loops instead of Numba's array expressions, which would allocate a temporary; the loops
marked ``fastmath=SIMD`` compile to SIMD. The approximations are within a few 1e-7 of the exact
functions (``SURE`` says how the Gibbs sampler stays exact with them).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .jit import JIT, SIMD


@njit(**JIT)
def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


@njit(**JIT)
def softplus(x):
    # log(1 + e^x) without overflow for large x
    if x > 0.0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@njit(**JIT)
def add(x, y):
    """y += x, as a plain loop: Numba's array expressions would allocate a temporary."""
    for i in range(y.shape[0]):
        y[i] += x[i]


@njit(**JIT)
def axpy(a, x, y):
    """y += a·x, without a temporary."""
    for i in range(y.shape[0]):
        y[i] += a * x[i]


@njit(fastmath=SIMD, **JIT)
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


@njit(fastmath=SIMD, **JIT)
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


@njit(fastmath=SIMD, **JIT)
def add_products(X, M, Y):
    """Y += X·M (n × K times K × m), eight rows of Y at a time (then four, then one by one),
    each by four rows of M per pass: a row of M is loaded once for eight rows of Y and a row of Y
    once for four rows of M, 32 multiply-adds per 20 loads and stores (measured 30 to 40
    multiply-adds per ns at the training's sizes, about twice ``add_all_rows`` row by row; eight
    rows by eight, or six by four, measured slower). A block of X that is all zero (binary
    frames: often) is skipped."""
    n = X.shape[0]
    r = 0
    while r + 8 <= n:
        _add_products8(X, M, Y, r)
        r += 8
    if r + 4 <= n:
        _add_products4(X, M, Y, r)
        r += 4
    while r < n:
        add_all_rows(M, X[r], Y[r])
        r += 1


# A frame has a few notes of 88 (Nottingham: 4 on average): below this share of nonzeros, the
# products with frames go by their nonzeros' rows, above it as blocked products (``add_products``
# skips only blocks all zero). Measured at 100 × 88 frames times 88 × 150: 4 % on, by rows
# 2.2× faster; the two cross at about a fifth.
SPARSE_SHARE = 0.15


@njit(**JIT)
def is_sparse(X):
    """Whether X (frames of notes) has so few nonzeros that its products go by rows."""
    nnz = 0
    for t in range(X.shape[0]):
        for i in range(X.shape[1]):
            nnz += X[t, i] != 0.0
    return nnz <= SPARSE_SHARE * X.size


@njit(**JIT)
def add_frame_products(X, M, Y, sparse, rows, coefs):
    """Y += X·M: by ``add_rows`` over each row's nonzeros when X is ``sparse`` (``is_sparse``),
    else by ``add_products``; rows and coefs (X.shape[1] each) are scratch."""
    if not sparse:
        add_products(X, M, Y)
        return
    for t in range(X.shape[0]):
        c = 0
        for i in range(X.shape[1]):
            if X[t, i] != 0.0:
                rows[c] = i
                coefs[c] = X[t, i]
                c += 1
        add_rows(M, rows, coefs, c, Y[t])


@njit(**JIT)
def add_frame_outer(X, a, S, G, sparse, rows, coefs):
    """G += a·Xᵀ·S (a weight gradient: Σ_t a·x_t ⊗ s_t): G[i] gets the rows of S of the frames
    where note i is on, by ``add_rows``, when X is ``sparse`` (``is_sparse``); else a product
    with X transposed. rows and coefs (X.shape[0] each) are scratch."""
    T, n = X.shape
    if not sparse:
        XT = np.empty((n, T), X.dtype)
        for t in range(T):
            for i in range(n):
                XT[i, t] = a * X[t, i]
        add_products(XT, S, G)
        return
    for i in range(n):
        c = 0
        for t in range(T):
            if X[t, i] != 0.0:
                rows[c] = t
                coefs[c] = a * X[t, i]
                c += 1
        if c:
            add_rows(S, rows, coefs, c, G[i])


@njit(fastmath=SIMD, **JIT)
def _add_products8(X, M, Y, r):
    """Y[r:r+8] += X[r:r+8]·M (``add_products``)."""
    K = X.shape[1]
    m = Y.shape[1]
    k = 0
    while k + 4 <= K:
        a0, a1, a2, a3 = X[r, k], X[r, k + 1], X[r, k + 2], X[r, k + 3]
        b0, b1, b2, b3 = X[r + 1, k], X[r + 1, k + 1], X[r + 1, k + 2], X[r + 1, k + 3]
        c0, c1, c2, c3 = X[r + 2, k], X[r + 2, k + 1], X[r + 2, k + 2], X[r + 2, k + 3]
        d0, d1, d2, d3 = X[r + 3, k], X[r + 3, k + 1], X[r + 3, k + 2], X[r + 3, k + 3]
        e0, e1, e2, e3 = X[r + 4, k], X[r + 4, k + 1], X[r + 4, k + 2], X[r + 4, k + 3]
        f0, f1, f2, f3 = X[r + 5, k], X[r + 5, k + 1], X[r + 5, k + 2], X[r + 5, k + 3]
        g0, g1, g2, g3 = X[r + 6, k], X[r + 6, k + 1], X[r + 6, k + 2], X[r + 6, k + 3]
        h0, h1, h2, h3 = X[r + 7, k], X[r + 7, k + 1], X[r + 7, k + 2], X[r + 7, k + 3]
        if (a0 != 0.0 or a1 != 0.0 or a2 != 0.0 or a3 != 0.0 or b0 != 0.0 or b1 != 0.0 or b2 != 0.0 or b3 != 0.0
                or c0 != 0.0 or c1 != 0.0 or c2 != 0.0 or c3 != 0.0 or d0 != 0.0 or d1 != 0.0 or d2 != 0.0 or d3 != 0.0
                or e0 != 0.0 or e1 != 0.0 or e2 != 0.0 or e3 != 0.0 or f0 != 0.0 or f1 != 0.0 or f2 != 0.0 or f3 != 0.0
                or g0 != 0.0 or g1 != 0.0 or g2 != 0.0 or g3 != 0.0 or h0 != 0.0 or h1 != 0.0 or h2 != 0.0 or h3 != 0.0):
            for i in range(m):
                m0, m1, m2, m3 = M[k, i], M[k + 1, i], M[k + 2, i], M[k + 3, i]
                Y[r, i] += (a0 * m0 + a1 * m1) + (a2 * m2 + a3 * m3)
                Y[r + 1, i] += (b0 * m0 + b1 * m1) + (b2 * m2 + b3 * m3)
                Y[r + 2, i] += (c0 * m0 + c1 * m1) + (c2 * m2 + c3 * m3)
                Y[r + 3, i] += (d0 * m0 + d1 * m1) + (d2 * m2 + d3 * m3)
                Y[r + 4, i] += (e0 * m0 + e1 * m1) + (e2 * m2 + e3 * m3)
                Y[r + 5, i] += (f0 * m0 + f1 * m1) + (f2 * m2 + f3 * m3)
                Y[r + 6, i] += (g0 * m0 + g1 * m1) + (g2 * m2 + g3 * m3)
                Y[r + 7, i] += (h0 * m0 + h1 * m1) + (h2 * m2 + h3 * m3)
        k += 4
    while k < K:
        for q in range(8):
            _add_row(M, k, X[r + q, k], Y, r + q)
        k += 1


@njit(fastmath=SIMD, **JIT)
def _add_products4(X, M, Y, r):
    """Y[r:r+4] += X[r:r+4]·M (``add_products``)."""
    K = X.shape[1]
    m = Y.shape[1]
    k = 0
    while k + 4 <= K:
        a0, a1, a2, a3 = X[r, k], X[r, k + 1], X[r, k + 2], X[r, k + 3]
        b0, b1, b2, b3 = X[r + 1, k], X[r + 1, k + 1], X[r + 1, k + 2], X[r + 1, k + 3]
        c0, c1, c2, c3 = X[r + 2, k], X[r + 2, k + 1], X[r + 2, k + 2], X[r + 2, k + 3]
        d0, d1, d2, d3 = X[r + 3, k], X[r + 3, k + 1], X[r + 3, k + 2], X[r + 3, k + 3]
        if (a0 != 0.0 or a1 != 0.0 or a2 != 0.0 or a3 != 0.0 or b0 != 0.0 or b1 != 0.0 or b2 != 0.0 or b3 != 0.0
                or c0 != 0.0 or c1 != 0.0 or c2 != 0.0 or c3 != 0.0 or d0 != 0.0 or d1 != 0.0 or d2 != 0.0 or d3 != 0.0):
            for i in range(m):
                m0, m1, m2, m3 = M[k, i], M[k + 1, i], M[k + 2, i], M[k + 3, i]
                Y[r, i] += (a0 * m0 + a1 * m1) + (a2 * m2 + a3 * m3)
                Y[r + 1, i] += (b0 * m0 + b1 * m1) + (b2 * m2 + b3 * m3)
                Y[r + 2, i] += (c0 * m0 + c1 * m1) + (c2 * m2 + c3 * m3)
                Y[r + 3, i] += (d0 * m0 + d1 * m1) + (d2 * m2 + d3 * m3)
        k += 4
    while k < K:
        for q in range(4):
            _add_row(M, k, X[r + q, k], Y, r + q)
        k += 1


@njit(fastmath=SIMD, **JIT)
def _add_row(M, k, c, Y, r):
    """Y[r] += c·M[k] (skipped when c is 0)."""
    if c != 0.0:
        for i in range(Y.shape[1]):
            Y[r, i] += c * M[k, i]


@njit(**JIT)
def add_rows_on(M, v, y):
    """y += v·M for a sparse v (a frame: few notes on), by rows."""
    m = y.shape[0]
    for r in range(v.shape[0]):
        c = v[r]
        if c != 0.0:
            for i in range(m):
                y[i] += c * M[r, i]



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


@njit(fastmath=SIMD, **JIT)
def rational_tanh(x):
    """tanh(x) to within 3e-7 as plain arithmetic (so that loops calling it compile to SIMD)."""
    x = CLAMP if x > CLAMP else x
    x = -CLAMP if x < -CLAMP else x
    x2 = x * x
    p = x * (A1 + x2 * (A3 + x2 * (A5 + x2 * (A7 + x2 * (A9 + x2 * (A11 + x2 * A13))))))
    q = B0 + x2 * (B2 + x2 * (B4 + x2 * B6))
    return p / q


@njit(fastmath=SIMD, **JIT)
def approx_sigmoid(a, beta, out):
    """out = σ(beta · a) to within 2e-7, vectorised."""
    for j in range(a.shape[0]):
        out[j] = HALF + HALF * rational_tanh(beta * a[j] * HALF)


@njit(fastmath=SIMD, **JIT)
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


@njit(fastmath=SIMD, **JIT)
def approx_tanh(a, out):
    """out = tanh(a) to within 3e-7 (float32's own rounding is 6e-8 near 1), vectorised; in place
    is fine. BPTT's 1 − u² is then the derivative to the same precision."""
    for j in range(a.shape[0]):
        out[j] = rational_tanh(a[j])


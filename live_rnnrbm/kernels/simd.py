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


"""A small, fast, seedable random stream for the Numba kernels.

Why our own and not ``np.random`` inside Numba: Numba's generator state is per thread and hidden,
so a parallel kernel would give a different piece on every run. Here a stream is a
``uint64[2, LANES]`` array owned by whoever samples: LANES independent xoroshiro128+ generators
side by side. A seed gives the same stream everywhere, a batch kernel gets one independent stream
per row, and drawing never allocates or touches the GIL.

Why lanes: a Gibbs sweep needs one uniform per unit, and one generator is a serial chain of
dependent steps (several ns per draw with the float conversion). LANES generators stepped
together compile to SIMD (``fill_draws``): a whole layer's draws cost about a quarter of a ns
each. Scalar draws (``uniform``) come from lane 0.

>>> state = new_state(1234)
>>> 0.0 <= uniform(state) < 1.0
True
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .jit import JIT

_U64 = np.uint64
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53
LANES = 32  # generators per stream (a layer's draws come LANES at a time)


@njit(**JIT)
def _splitmix64(x: np.uint64) -> tuple:
    x = x + _GOLDEN
    z = x
    z = (z ^ (z >> _U64(30))) * _MIX1
    z = (z ^ (z >> _U64(27))) * _MIX2
    z = z ^ (z >> _U64(31))
    return x, z


@njit(**JIT)
def seed_state(state: np.ndarray, seed: int) -> None:
    """Fill ``state`` (uint64[2, LANES]) from an integer seed via splitmix64 (no lane all-zero)."""
    x = _U64(seed & 0xFFFFFFFFFFFFFFFF)
    for lane in range(state.shape[1]):
        x, a = _splitmix64(x)
        x, b = _splitmix64(x)
        if a == 0 and b == 0:
            a = _GOLDEN
        state[0, lane] = a
        state[1, lane] = b


@njit(**JIT)
def step(s0: np.uint64, s1: np.uint64) -> tuple:
    """One xoroshiro128+ step on a state held in locals: (output, s0', s1'). Kernels that draw
    many numbers in a loop keep the state in registers with this, and store it back after."""
    result = s0 + s1
    s1 ^= s0
    return result, ((s0 << _U64(24)) | (s0 >> _U64(40))) ^ s1 ^ (s1 << _U64(16)), (s1 << _U64(37)) | (s1 >> _U64(27))


@njit(**JIT)
def to_unit(x: np.uint64) -> float:
    """The top 53 bits of a draw as a float64 in [0, 1)."""
    return float(x >> _U64(11)) * _TWO_M53


@njit(**JIT)
def next_u64(state: np.ndarray) -> np.uint64:
    """One draw from lane 0."""
    result, state[0, 0], state[1, 0] = step(state[0, 0], state[1, 0])
    return result


@njit(**JIT)
def fill_draws(state: np.ndarray, out: np.ndarray, n: int) -> None:
    """out[j] = a 53-bit draw (an int64 in [0, 2**53)) for j < n, ``n`` rounded up to whole
    rounds of the lanes (out must hold that many); out[j] · 2**-53 is uniform in [0, 1).

    Every lane steps once per round, so the loop over lanes compiles to SIMD. The lane count is
    read from the array (not a compile-time constant) on purpose: LLVM then vectorises the loop
    with runtime alias checks instead of unrolling it into scalar code.
    """
    lanes = state.shape[1]
    s0 = state[0]
    s1 = state[1]
    for b in range(0, n, lanes):
        o = out[b:b + lanes]
        for lane in range(lanes):
            a = s0[lane]
            c = s1[lane]
            r = a + c
            c ^= a
            s0[lane] = ((a << _U64(24)) | (a >> _U64(40))) ^ c ^ (c << _U64(16))
            s1[lane] = (c << _U64(37)) | (c >> _U64(27))
            o[lane] = np.int64(r >> _U64(11))


@njit(**JIT)
def uniform(state: np.ndarray) -> float:
    """A float64 uniform in [0, 1) with 53 random bits."""
    return to_unit(next_u64(state))


def _as_int64(seed: int) -> int:
    # any Python int (negative, or a full 64-bit draw) as the int64 with the same low 64 bits
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return seed - (1 << 64) if seed >= (1 << 63) else seed


def new_state(seed: int) -> np.ndarray:
    """A fresh stream (uint64[2, LANES]) for ``seed``."""
    state = np.empty((2, LANES), dtype=np.uint64)
    seed_state(state, _as_int64(seed))
    return state


def new_states(seed: int, n: int) -> np.ndarray:
    """``n`` independent streams (one per row) derived from one seed: row i is seeded with
    (seed, i) so that a batch kernel's result does not depend on how rows meet threads."""
    states = np.empty((n, 2, LANES), dtype=np.uint64)
    base = new_state(seed)
    for i in range(n):
        mixed = int(next_u64(base)) ^ (i * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF)
        seed_state(states[i], _as_int64(mixed))
    return states

"""Memory layouts: the packed parameter array of the live tick (``pack``, ``unpack``, ``views``) and
the scratch space of a Gibbs chain (``chain_work_size``, ``work_layout``, ``new_index``,
``workspace``), allocated once by the caller so that the kernels on the live path never allocate.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .forward import N_TRACE
from .jit import JIT
from .rng import LANES


@njit(**JIT)
def new_index(n_visible, n_hidden):
    """The int64 scratch ``idx`` of ``gibbs_chain``: room for the flipped units' indices, then
    for a layer's draws (whole rounds of the stream's lanes)."""
    m = max(n_visible, n_hidden)
    return np.zeros(m + (m + LANES - 1) // LANES * LANES, np.int64)


@njit(**JIT)
def chain_work_size(n_v, n_h):
    """The floats of ``gibbs_chain``'s scratch ``work``: h, its input and its probabilities (n_h
    each), then the visible input (n_v). ``work_layout`` puts the frame's biases after them."""
    return 3 * n_h + n_v



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
# pass over u's rows instead of two; the player's trace's rows [Wqv | Wqh] follow u's, so the live
# state s = [u | q] feeds the frame's biases in that same pass.


@njit(**JIT)
def _line(n):
    """n rounded up to whole 64-byte cache lines of float32 (16 floats)."""
    return (n + 15) // 16 * 16


@njit(**JIT)
def live_layout(n_v, n_h, n_u):
    """Where things are in a packed parameter array (after a 16-float header holding n_v, n_h,
    n_u): offsets of W, WT, Wuvh, bvh, bu, Wvu, Wuu, Wpvh (the player path [Wpv | Wph], rows laid
    out as bvh), Wpu (the player path into u), the array's length, and Wuvh's row length and where bh starts in it. Wuvh's rows
    are [Wuv | Wuh] (n_u rows) then [Wqv | Wqh] (``N_TRACE`` rows), bvh is [bv | bh], each bh from a cache line on and the row padded with
    zeros to a multiple of 8 floats (a 238-float row costs the pass over u's rows a quarter more
    than a 248-float one: the vector loop's tail)."""
    o_h = _line(n_v)
    row = (o_h + n_h + 7) // 8 * 8
    o_W = 16
    o_WT = o_W + _line(n_v * n_h)
    o_Wuvh = o_WT + _line(n_h * n_v)
    o_bvh = o_Wuvh + _line((n_u + N_TRACE) * row)
    o_bu = o_bvh + _line(row)
    o_Wvu = o_bu + _line(n_u)
    o_Wuu = o_Wvu + _line(n_v * n_u)
    o_Wpvh = o_Wuu + _line(n_u * n_u)
    o_Wpu = o_Wpvh + _line(n_v * row)
    return o_W, o_WT, o_Wuvh, o_bvh, o_bu, o_Wvu, o_Wuu, o_Wpvh, o_Wpu, o_Wpu + _line(n_v * n_u), row, o_h


@njit(**JIT)
def work_layout(n_v, n_h):
    """Where the frame's biases bv_t | bh_t (laid out as bvh) start in the scratch ``work``, after
    the chain's ``chain_work_size`` floats, and the length of ``work``."""
    o_b = _line(chain_work_size(n_v, n_h))
    return o_b, o_b + live_layout(n_v, n_h, 1)[10]


@njit(**JIT)
def unpack(P):
    """Views (W, WT, Wuvh, bvh, bu, Wvu, Wuu, Wpvh, Wpu) into a packed parameter array (``pack``),
    and where bh starts in the rows of Wuvh, Wpvh and bvh; no copy."""
    n_v, n_h, n_u = int(P[0]), int(P[1]), int(P[2])
    o_W, o_WT, o_Wuvh, o_bvh, o_bu, o_Wvu, o_Wuu, o_Wpvh, o_Wpu, _, row, o_h = live_layout(n_v, n_h, n_u)
    return (P[o_W:o_W + n_v * n_h].reshape((n_v, n_h)),
            P[o_WT:o_WT + n_h * n_v].reshape((n_h, n_v)),
            P[o_Wuvh:o_Wuvh + (n_u + N_TRACE) * row].reshape((n_u + N_TRACE, row)),
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
    for name in ("Wuv", "Wuh", "bv", "bh", "bu", "Wvu", "Wuu", "Wpv", "Wph", "Wpu", "Wqv", "Wqh"):
        if name in params:  # the player path may be absent (zero)
            v[name][...] = params[name]
    return P


def views(P: np.ndarray) -> dict[str, np.ndarray]:
    """Named views into a packed parameter array: the eight parameters, the player path and WT
    (Wuv, Wuh, Wqv, Wqh, bv and bh are slices of the concatenated Wuvh and bvh)."""
    W, WT, Wuvh, bvh, bu, Wvu, Wuu, Wpvh, Wpu, o_h = unpack(P)
    n_v, n_h = W.shape
    n_u = bu.shape[0]
    return dict(W=W, WT=WT, Wuv=Wuvh[:n_u, :n_v], Wuh=Wuvh[:n_u, o_h:o_h + n_h], bv=bvh[:n_v],
                bh=bvh[o_h:o_h + n_h], bu=bu, Wvu=Wvu, Wuu=Wuu, Wpv=Wpvh[:, :n_v], Wph=Wpvh[:, o_h:o_h + n_h],
                Wpu=Wpu, Wqv=Wuvh[n_u:, :n_v], Wqh=Wuvh[n_u:, o_h:o_h + n_h])


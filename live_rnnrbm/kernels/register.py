"""The register hold: a tune keeps its register, and left to itself the model does not (its free
generation wanders up and down over hundreds of frames: docs/evaluation.md#eval---task-free-free-generation-beside-its-data).
Playing alone, the sampler adds to bv_t

    bv_t,i += −½ ((i − c)/σ)² + PULL · δ (i − c)/σ²,   δ = c − r within ±σ/PULL

where c is the mean pitch of what has sounded (forgetting over ``ANCHOR_FRAMES``: the register the
piece set), r the same over the last ``RECENT_FRAMES`` (where it is now), i a note and σ the
``width`` in semitones: notes far from the piece's register grow less likely, and the whole frame
leans back against the last bars' drift δ. The bias peaks at c + PULL δ, so δ is held within σ/PULL:
the peak stays within σ of the piece's register and no note gains more than ½ in log-odds, however
far the music jumps (a player's notes are heard too). ``register_hear`` takes in each frame that sounded,
``register_bias`` writes the bias of the next; both allocate nothing. The state is
``REGISTER_STATE`` floats: frames heard, then Σ pitch and Σ notes over the anchor's time and over
the recent one, each sum decaying by (1 − 1/frames) a frame.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .jit import JIT

REGISTER_STATE = 5
ANCHOR_FRAMES = 512.0   # a tune's length at eighth notes: its register is all of it; live, the last minutes
RECENT_FRAMES = 16.0    # two bars of eighths: where the music is now
PULL = 5.0              # how far the peak moves back per semitone of drift (chosen on Nottingham's valid split)
WARM_FRAMES = 16        # heard before the hold begins: until then there is no register to hold


def new_register_state() -> np.ndarray:
    """Nothing heard yet: no hold until ``WARM_FRAMES`` frames have sounded."""
    return np.zeros(REGISTER_STATE)


@njit(**JIT)
def register_hear(v, state):
    """Take in the frame v that sounded (note i at index i)."""
    s, n = 0.0, 0.0
    for i in range(v.shape[0]):
        if v[i] != 0.0:
            s += i
            n += 1.0
    slow, fast = 1.0 - 1.0 / ANCHOR_FRAMES, 1.0 - 1.0 / RECENT_FRAMES
    state[0] += 1.0
    state[1] = slow * state[1] + s
    state[2] = slow * state[2] + n
    state[3] = fast * state[3] + s
    state[4] = fast * state[4] + n


@njit(**JIT)
def register_bias(state, width, out):
    """The register hold's bias on bv_t into out (zeros while off: width ≤ 0, fewer than
    ``WARM_FRAMES`` frames heard, or silence over the recent frames). Returns whether it holds."""
    if width <= 0.0 or state[0] < WARM_FRAMES or state[2] < 1e-9 or state[4] < 1e-9:
        out[:] = 0.0
        return False
    c = state[1] / state[2]
    lean = min(max(c - state[3] / state[4], -width / PULL), width / PULL)
    a = 1.0 / (width * width)
    for i in range(out.shape[0]):
        d = i - c
        out[i] = -0.5 * a * d * d + PULL * a * lean * d
    return True


@njit(**JIT)
def biased_bv(bv, log_density, bias, bv_out):
    """bv_out = bv + (log density + bias): the visible biases a sampler draws with, the density
    control and the register hold in one offset, summed alike offline and live (so that ``generate``
    and the instrument draw the same notes from the same seed)."""
    for i in range(bv.shape[0]):
        bv_out[i] = bv[i] + (log_density + bias[i])

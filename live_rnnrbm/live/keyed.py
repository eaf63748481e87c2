"""The model in its own key: told the key the music is in (the ``key`` setting), the engine moves
every note the model hears into C and every note it plays back, so the model listens and plays in
the key it learned in whatever key the player is in.

The shipped models learned from the benchmark pickles, whose pieces are in C major or C minor
(``data.keys.to_common_key``), moved into every key to learn them all. Told the key, the model
hears the music in C and plays with its keyed player path (``model.KEYED_PARAM_NAMES``), learned
in C alone, which has no keys to tell apart: it listens better, and alike in every key (the jam
evaluation's figures by key, docs/evaluation.md). The model's state (u_t and the player's trace)
lives in C throughout.

    sampler = KeyedSampler(FrameSampler(model, k=300, chains=16), shift=to_c_shift(tonic))

``KeyedSampler`` offers ``FrameSampler``'s ``sample`` and ``rnn_step`` on notes as they sound, and
like them allocates nothing: the moves are a Numba loop into buffers made once.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..kernels.jit import JIT
from ..model import FrameSampler


@njit(**JIT)
def move(src, shift, fill, dst):
    """dst[i + shift] = src[i] wherever both are notes; ``fill`` where nothing moves in."""
    n = dst.shape[0]
    for j in range(n):
        i = j - shift
        dst[j] = src[i] if 0 <= i < n else fill


class KeyedSampler:
    """A ``FrameSampler`` hearing every note ``shift`` semitones away (the model's note = the note
    as it sounds + shift) and playing its notes moved back. Notes that would move off the model's
    range are not heard; the model's notes with no note to sound on are clamped silent."""

    def __init__(self, sampler: FrameSampler, shift: int) -> None:
        if not -12 < shift < 12:
            raise ValueError(f"a key is a shift of less than an octave, not {shift} semitones")
        self.inner = sampler
        self.shift = int(shift)
        n_v, dt = sampler.model.n_visible, sampler.model.dtype
        self.clamp = np.zeros(n_v, np.int8)
        self.v_clamp = np.zeros(n_v, dt)
        self.v = np.zeros(n_v, dt)
        self.pv = np.zeros(n_v, dt)
        self.x = np.zeros(n_v, dt)
        self.player = np.zeros(n_v, dt)
        self.register = np.zeros(n_v, dt)
        self.zero, self.on = dt.type(0.0), np.int8(1)

    def __getattr__(self, name: str):
        # everything that does not move notes (k, chains, model, initial_state, set_density, ...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def sample(self, u_prev: np.ndarray, clamp: np.ndarray, v_clamp: np.ndarray, v_out: np.ndarray,
               pv_out: np.ndarray, consensus: bool = False) -> None:
        """``FrameSampler.sample`` with the notes moved: in, then the model's frame back out."""
        move(clamp, self.shift, self.on, self.clamp)  # notes with nothing to sound on: clamped ...
        move(v_clamp, self.shift, self.zero, self.v_clamp)  # ... silent
        self.inner.sample(u_prev, self.clamp, self.v_clamp, self.v, self.pv, consensus)
        move(self.v, -self.shift, self.zero, v_out)
        move(self.pv, -self.shift, self.zero, pv_out)

    def rnn_step(self, x: np.ndarray, player: np.ndarray, u_prev: np.ndarray, u_out: np.ndarray) -> None:
        """``FrameSampler.rnn_step`` on the frame and the player's notes moved into the model's key."""
        move(x, self.shift, self.zero, self.x)
        move(player, self.shift, self.zero, self.player)
        self.inner.rnn_step(self.x, self.player, u_prev, u_out)

    def set_register(self, bias: np.ndarray) -> None:
        """``FrameSampler.set_register`` with the bias of each note as it sounds moved onto the model's note."""
        move(bias, self.shift, self.zero, self.register)
        self.inner.set_register(self.register)

    def warm(self) -> None:
        """``FrameSampler.warm`` and the moves, on scratch buffers."""
        self.inner.warm()
        move(self.clamp, 0, self.on, self.clamp)
        move(self.v, 0, self.zero, self.v)

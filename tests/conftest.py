"""Fixtures shared by the tests that play through a real JACK server."""
from __future__ import annotations

import numpy as np
import pytest

from live_rnnrbm.data.weights import save_weights
from live_rnnrbm.model import RnnRbm
from jackd import JackServer


@pytest.fixture(scope="module")
def jack():
    with JackServer() as server:
        yield server


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Two small models written by the test.

    random.npz: untrained-like (every note p ≈ 0.5): a different chord every frame, so every tick
    has note-ons. listen.npz: silent on its own (bv = -12); through u_t, note 60 of the player
    turns on note 72 at the next frame (follow); through a hidden unit coupling 60, 64 and 67, a
    clamped 60 pulls 64 and 67 into the same frame (harmonize)."""
    d = tmp_path_factory.mktemp("weights")
    rnd = RnnRbm(n_hidden=20, n_hidden_recurrent=10, seed=3)
    save_weights(rnd, d / "random.npz", steps_per_beat=4, bpm=120)
    m = RnnRbm(n_hidden=8, n_hidden_recurrent=4, seed=4)
    p = {k: np.zeros_like(v) for k, v in m.params.items()}
    lo = m.lowest_note
    p["bv"][:] = -12.0
    p["bh"][:] = -16.0
    # a clamped 60 alone gives hidden unit 0 an even chance at every Gibbs step (so it is on
    # within the 25 steps but for 2^-25), which turns 64 and 67 on almost surely (σ(12)), and
    # those three hold it on; without 60 it stays off (σ(-16)) and the model is silent
    p["W"][60 - lo, 0] = 16.0
    p["W"][64 - lo, 0] = 24.0
    p["W"][67 - lo, 0] = 24.0
    p["Wvu"][60 - lo, 0] = 3.0       # the player's 60 drives u_0 ...
    p["Wuv"][0, 72 - lo] = 20.0      # ... which turns on 72 in the next frame
    listen = RnnRbm(n_hidden=8, n_hidden_recurrent=4, seed=4, params=p)
    save_weights(listen, d / "listen.npz", steps_per_beat=4, bpm=120)
    return d

"""The players of the jam evaluation and its baselines: the live engine driven offline while a player
holds notes (``play_along``), the chord player (``chord_player``), the model harmonizing on the true
history (``true_history_frames``) and the key-aware lookup table (``LookupHarmonizer``).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from typing import Sequence

import numpy as np

from ..data.keys import estimate_key
from ..data.parts import top_notes
from ..live.engine import Engine
from ..live.settings import Settings
from ..model import N_TRACE, FrameSampler

CHORD_FRAMES = 4
CHORD_ROOT_LOW = 48  # triads in root position with the root in C3..B3
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)  # natural minor and the leading tone that V brings
PROGRESSIONS = {"major": ((0, (0, 4, 7)), (5, (0, 4, 7)), (7, (0, 4, 7)), (0, (0, 4, 7))),
                "minor": ((0, (0, 3, 7)), (5, (0, 3, 7)), (7, (0, 4, 7)), (0, (0, 3, 7)))}


# --------------------------------------------------------------------------- the engine, offline


class HeldNotes:
    """The player's side of the engine (``Listener``'s interface) for an offline run: the notes
    held are set frame by frame."""

    def __init__(self, n_visible: int) -> None:
        self.notes = np.zeros(n_visible, np.float32)
        self.version = 0
        self.on_change = None

    def hold(self, frame: np.ndarray) -> None:
        self.notes[:] = frame
        self.version += 1

    def snapshot(self, frame: np.ndarray) -> int:
        frame[:] = self.notes
        return self.version


def _discard(message: list) -> None:
    pass


def play_along(model, settings: Settings, player: np.ndarray, mode: str, seed: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """The engine's notes when a player holds ``player[t]`` at frame t (T × n_v): each frame is
    computed with the notes the player holds at its tick, as live when the player plays on the
    beat. Returns (the model's notes as sounded, T × n_v; U, T × (n_u + N_TRACE), the state
    [u_{t-1} | q_{t-1}] each frame was sampled from). ``mode`` off: the engine does not listen."""
    model.reseed(seed)
    held = HeldNotes(model.n_visible)
    engine = Engine(model, _discard, replace(settings, mode=mode), listener=held if mode != "off" else None)
    T = player.shape[0]
    out = np.zeros(player.shape, np.float32)
    U = np.zeros((T, model.n_hidden_recurrent + N_TRACE), np.float32)
    if T == 0:
        return out, U
    held.hold(player[0])
    engine.prepare()
    for t in range(T):
        engine.tick(float(t))
        s = engine.last_sent
        out[t] = s.v_out
        U[t] = s.u
        if t + 1 < T:
            held.hold(player[t + 1])
            engine.advance()
    return out, U


# --------------------------------------------------------------------------- the lookup baseline


class LookupHarmonizer:
    """The one-line baseline: for the melody's pitch class relative to the key (and the key's
    mode), the accompaniment most often heard with it in the training pieces — as a set of notes
    relative to the tonic (for frame accuracy) and as a set of pitch classes (for pitch-class
    accuracy). Key-aware: at play time it is told the piece's key."""

    def __init__(self, lowest_note: int, n_visible: int) -> None:
        self.lowest, self.n = lowest_note, n_visible
        self.notes: dict[tuple[str, int], tuple[int, ...]] = {}
        self.pcs: dict[tuple[str, int], tuple[int, ...]] = {}

    def fit(self, pieces: Sequence[np.ndarray]) -> "LookupHarmonizer":
        note_sets: dict[tuple[str, int], Counter] = defaultdict(Counter)
        pc_sets: dict[tuple[str, int], Counter] = defaultdict(Counter)
        for V in pieces:
            if not len(V) or not V.any():
                continue
            tonic, mode = estimate_key(V, self.lowest)
            melody = top_notes(V)
            rest = (V > 0) & (melody == 0)
            for t in range(len(V)):
                m = np.flatnonzero(melody[t])
                key = (mode, int((self.lowest + m[0] - tonic) % 12) if len(m) else -1)
                notes = tuple(int(self.lowest + i - tonic) for i in np.flatnonzero(rest[t]))
                note_sets[key][notes] += 1
                pc_sets[key][tuple(sorted({n % 12 for n in notes}))] += 1
        self.notes = {k: c.most_common(1)[0][0] for k, c in note_sets.items()}
        self.pcs = {k: c.most_common(1)[0][0] for k, c in pc_sets.items()}
        return self

    def harmonize(self, melody: np.ndarray, tonic: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """(notes T × n_v, pitch classes T × 12) for a melody roll in the key (tonic, mode)."""
        T = len(melody)
        notes = np.zeros((T, self.n), np.float32)
        pcs = np.zeros((T, 12), bool)
        for t in range(T):
            m = np.flatnonzero(melody[t])
            key = (mode, int((self.lowest + m[0] - tonic) % 12) if len(m) else -1)
            for n in self.notes.get(key, ()):
                i = n + tonic - self.lowest
                if 0 <= i < self.n:
                    notes[t, i] = 1.0
            for pc in self.pcs.get(key, ()):
                pcs[t, (pc + tonic) % 12] = True
        return notes, pcs



def true_history_frames(model, settings: Settings, V: np.ndarray, player: np.ndarray, seed: int
                        ) -> np.ndarray:
    """The model's accompaniment when the history is the true one (teacher forcing): each frame
    sampled as the engine samples it (k steps from silence, the player's notes clamped, the
    preset's temperature) from the u_{t-1} of the true frames, without the engine's note
    shaping — how well the conditional RBM harmonizes when it is not lost. With the preset's
    ``chains`` above 1, each frame is their consensus, as the engine plays while listening."""
    model.reseed(seed)
    U = model.states(V, player)
    sampler = FrameSampler(model, settings.k, settings.temperature, settings.chains)
    v = np.zeros(model.n_visible, model.dtype)
    pv = np.zeros_like(v)
    out = np.zeros(V.shape, np.float32)
    for t in range(len(V)):
        clamp = (player[t] > 0).astype(np.int8)
        sampler.sample(U[t], clamp, player[t].astype(model.dtype), v, pv, consensus=True)
        out[t] = np.where(clamp > 0, 0.0, v)
    return out



def chord_player(tonic: int, mode: str, model, cycles: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The chord player's roll (I–IV–V–I or i–iv–V–i, CHORD_FRAMES frames a chord, ``cycles``
    times), the key's scale and the chord held, per frame (T × 12 booleans)."""
    frames, scales, chords = [], [], []
    scale = np.zeros(12, bool)
    scale[[(tonic + d) % 12 for d in (MAJOR_SCALE if mode == "major" else MINOR_SCALE)]] = True
    for _ in range(cycles):
        for degree, triad in PROGRESSIONS[mode]:
            root = CHORD_ROOT_LOW + (tonic + degree) % 12
            f = np.zeros(model.n_visible, np.float32)
            pcs = np.zeros(12, bool)
            for d in triad:
                f[root + d - model.lowest_note] = 1.0
                pcs[(root + d) % 12] = True
            for _ in range(CHORD_FRAMES):
                frames.append(f)
                scales.append(scale)
                chords.append(pcs)
    return np.array(frames), np.array(scales), np.array(chords)

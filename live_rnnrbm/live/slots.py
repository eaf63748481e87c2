"""What the engine's worker hands the tick, and what a preset gives the worker to play.

* ``Slot``: one computed frame, ready to send — its note messages (made once, per channel and
  note) and the state it came from. The engine keeps ``N_SLOTS`` and passes them by a seqlock.
* ``Sound``: a preset's weights, warmed-up sampler and sound keys, with the state new weights
  start from (u_0), made off the tick path and taken by the worker between frames.
"""
from __future__ import annotations

import numpy as np

from ..model import FrameSampler, RnnRbm
from .keyed import KeyedSampler
from .midi import NOTE_ON
from .settings import Settings

N_SLOTS = 4


class Slot:
    """One computed frame, ready to send: its messages and the state it came from."""

    def __init__(self, n_v: int, n_u: int, dtype, lowest: int):
        self.gen = 0                      # odd while the worker writes it
        self.seq = -1                     # the tick this frame is for
        self.v = np.zeros(n_v, dtype)     # the chain's sample (with clamped notes)
        self.pv = np.zeros(n_v, dtype)
        self.v_out = np.zeros(n_v, dtype) # the model's notes to sound
        self.part = np.zeros(n_v, np.int8)  # the channel (0..15) each note of v_out sounds on
        self.u = np.zeros(n_u, dtype)     # [u_{t-1} | q_{t-1}], the state this frame was sampled from
        self.human = np.zeros(n_v, dtype) # the player's notes it was sampled with (0 when not listening)
        self.ons: list = []
        self.offs: list = []
        self.all_on: list = []            # every note of v_out, to re-sound after a silence
        # per-slot note-on messages, [channel][note] for every channel (a switch or the parts control
        # may move the notes to any of them): the velocity byte is written by the worker
        self.on_msg = [[[NOTE_ON | ch, lowest + i, 80] for i in range(n_v)] for ch in range(16)]


class Sound:
    """What a preset makes the engine play (its weights and sound keys), with every buffer a new
    set of weights needs, made off the tick and the worker (``Engine.sound``, from a control
    thread) and taken by the worker before it computes a frame (``Engine.switch_to``)."""

    def __init__(self, model: RnnRbm, settings: Settings, name: str, lowest: int, n_slots: int,
                 key_shift: int | None = None):
        if settings.k is None:
            raise ValueError("the engine needs k: the settings' own, or the weights' generation_k")
        self.name = name
        self.model = model
        if key_shift is None:
            self.sampler = FrameSampler(model, settings.k, settings.temperature, settings.chains)
        else:  # told the key: the model hears and plays in C, with its keyed path if it has one (keyed.py)
            self.sampler = KeyedSampler(FrameSampler(model.keyed(), settings.k, settings.temperature,
                                                     settings.chains), key_shift)
        self.k, self.chains = settings.k, settings.chains
        self.temperature, self.density, self.mode = settings.temperature, settings.density, settings.mode
        self.register = settings.register or 0.0   # semitones; None (not taken from the weights): no hold
        self.parts = settings.parts
        self.first_channel = settings.channel - 1
        self.max_poly = settings.max_polyphony
        self.max_run = settings.max_note_frames
        self.vel_fixed = None if settings.velocity == "probability" else int(settings.velocity)
        self.vel_lo, self.vel_hi = settings.velocity_range
        lo, hi = settings.note_range
        notes = np.arange(model.n_visible) + lowest
        self.in_range = ((notes >= lo) & (notes <= hi)).astype(np.int8)
        # s_0 = [u_0 | q_0] for new weights (n_u may differ from the weights playing): the state, and each slot's
        self.base_u = self.sampler.initial_state()
        self.u_next = self.sampler.initial_state()
        self.slot_u = [self.sampler.initial_state() for _ in range(n_slots)]

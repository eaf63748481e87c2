"""The streaming generator: one RNN-RBM step per clock tick, computed a frame ahead.

    engine = Engine(model, out.send, settings, listener=listener)
    engine.start()            # warms the kernels, computes frame 1 on the worker thread
    engine.tick(t)            # per frame, from the clock: only sends the prepared note-ons/offs
    engine.close()            # note-off for every sounding note; CC64=0, CC123, CC120 on every channel used

A worker thread owns u_t and every buffer. Right after tick t it computes
u_t = tanh(bu + x_t·Wvu + p_t·Wpu + u_{t-1}·Wuu) (p_t: the player's notes, zero when not
listening) and the player's trace q_t from p_t, then samples v_{t+1} through the model's ``FrameSampler`` (the one stepper the
jam evaluation and the tests use too; its kernels are nogil, so the MIDI callbacks keep the GIL
meanwhile), shapes the notes (``frames.shape_frame``), gives each its part (``note_roles``: with
``parts``, the top note is the melody, the lowest the bass, ..., each part on its own channel) and
turns them into ready-made lists of note-on/off messages (``frame_messages``: by difference with
v_t, so a note held across frames sounds once, on the channel it started on). When the player's
notes change before the tick, the pending frame is computed again, so a played note is heard at the
next tick. What x_t holds depends on the mode:

* harmonize: the frame as it sounded — the model's notes with the player's notes they were sampled
  with — as in (conditional) training; the notes the player holds for frame t+1 are clamped in its
  chain, which is how the model hears them now.
* follow: the model's notes with the notes the player holds now. Nothing is clamped, so the RNN is
  the only way the frame can hear a note just played.
* off: the model's notes.

While listening, each frame is the consensus of ``chains`` Gibbs chains (``FrameSampler.sample``:
the draw whose pitch classes agree most with the others'), so the accompaniment is the harmony the
model is surest of given the player, not one chain's guess, and the history u hears stays on it.
Alone (off, or nobody plays), one chain: the model's plain sample. Not listening (no input, or
mode off), the register hold (``register``, kernels/register.py) keeps the music in the register it
set, as ``generate`` does; listening, the player sets the register.

Without threads, ``prepare`` then ``tick`` and ``advance`` in turn run the same code a frame at a
time (the jam evaluation, ``eval/jam_players.py``, drives it so).

A switch of preset (``sound`` then ``switch_to``, from a control thread: switch.py) and the parts
control (``parts``) take effect at the next frame the worker computes; the tick keeps sending the
frame that is ready meanwhile, so the beat never gaps. The messages are made for all 16 channels,
so a note keeps the channel it started on whatever changes while it sounds, and the frame after a
switch releases (by difference) every sounding note it does not hold. New weights start from
u_0 = 0 (their n_u may differ); the same weights keep u.

Frames go from the worker to the tick through four preallocated slots and a seqlock: the worker
never writes the slot the tick has claimed, the tick never uses a slot being written; nothing
waits on a lock.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterable, Sequence

import numpy as np

from ..data.keys import parse_key, to_c_shift
from ..kernels.register import new_register_state, register_bias, register_hear
from ..model import N_TRACE, RnnRbm
from .midi import ALL_NOTES_OFF, ALL_SOUND_OFF, CC, CHANNEL, NOTE_OFF, SUSTAIN
from .frames import SCHEMES, frame_messages, note_roles, shape_frame, union
from .settings import PARTS, Settings
from .slots import N_SLOTS, Slot, Sound

class Engine:
    def __init__(self, model: RnnRbm, send: Callable[[list], None], settings: Settings,
                 listener=None, recorder=None, clock_t0: float | None = None, realtime: bool = False,
                 preset: str = ""):
        self.send = send
        self._listener = None
        self.recorder = recorder
        self.dtype = model.dtype
        n_v, n_u = model.n_visible, model.n_hidden_recurrent
        self.n_visible = n_v
        self.lowest = model.lowest_note
        self.model = model
        self.slots = [Slot(n_v, n_u + N_TRACE, self.dtype, self.lowest) for _ in range(N_SLOTS)]
        # the key the music is in: every sound's model hears and plays in C (keyed.py); a session
        # setting, so a switch of preset keeps it
        self.key = settings.key
        self.key_shift = to_c_shift(parse_key(settings.key)[0]) if settings.key else None
        self.held = new_register_state()            # the register of what has sounded (kernels/register.py)
        self.register_bias = np.zeros(n_v, self.dtype)
        self._use(self.sound(model, settings, preset))   # the sound keys, the sampler, the live controls
        self.base_u = self.sampler.initial_state()  # [u_{t-1} | q_{t-1}], the frame last sent was sampled from
        self.u_next = self.sampler.initial_state()  # [u_t | q_t]: the state the next frame is sampled from
        self._pending: Sound | None = None         # a switch asked for (control thread) ...
        self._taken: Sound | None = None           # ... and the last one the worker took
        self.paused = False
        self.panic_requested = False
        # worker-owned buffers
        self._density_done = 1.0
        self._temperature_done = self.temperature
        self.base_v = np.zeros(n_v, self.dtype)    # v_t, the frame last sent
        self.base_human = np.zeros(n_v, self.dtype)  # the player's notes it sounded with
        self.base_part = np.zeros(n_v, np.int8)      # the channel each of its notes sounds on (and keeps)
        self.human = np.zeros(n_v, self.dtype)
        self.nobody = np.zeros(n_v, self.dtype)    # the player's notes when not listening
        self.x = np.zeros(n_v, self.dtype)
        self.clamp = np.zeros(n_v, np.int8)
        self.no_human = np.zeros(n_v, np.int8)
        self.human_clamped = np.zeros(n_v, np.int8)
        self.runs = np.zeros(n_v, np.int64)
        self.off_msg = [[[NOTE_OFF | ch, self.lowest + i, 0] for i in range(n_v)] for ch in range(16)]
        # shared between tick and worker (single Python attribute stores: atomic under the GIL)
        self.published: Slot | None = None
        self.claimed: Slot | None = None     # the slot the tick is reading: the worker leaves it alone
        self.last_sent: Slot | None = None
        self.sent = 0               # frames sent; the next tick wants the slot with seq == sent + 1
        self.late = 0               # ticks that found no frame ready (the notes were held)
        self.resync = False         # after a silence: sound every note of the next frame
        self.sounding = bytearray(128)  # per note: the status byte of its note-on (channel too), 0: silent
        self.channels = set(c - 1 for c in settings.channels)   # every channel used (0..15), for close
        self._parts_done = self.parts
        self.closed = False
        self.frame_time = 0.0       # seconds the last frame took to compute (status line)
        self.frame_time_max = 0.0
        self.t0 = time.perf_counter() if clock_t0 is None else clock_t0
        self._lock = threading.Lock()   # only ever contended by close(): the tick never waits on it
        self._wake = threading.Event()
        self.listener = listener
        self._human_seen = -1
        self._first = True          # frame 1 is sampled from u_0 itself
        self._next_slot = 0
        self._worker = threading.Thread(target=self._work, name="live-rnnrbm frames", daemon=True)
        self.realtime = realtime                  # ask for SCHED_FIFO in the worker (realtime.py)
        self.worker_realtime = threading.Event()  # set once the worker has tried
        self.worker_realtime_ok = False

    # ------------------------------------------------------------------ switching
    def sound(self, model: RnnRbm, settings: Settings, name: str = "") -> Sound:
        """The sound of ``settings`` (its sound keys) on ``model``, ready to switch to. Any thread
        but the tick's: it allocates. The weights must play the notes the engine's do."""
        if (model.n_visible, model.lowest_note) != (self.n_visible, self.lowest):
            raise ValueError(f"weights with {model.n_visible} notes from {model.lowest_note} cannot replace "
                             f"{self.n_visible} notes from {self.lowest}")
        return Sound(model, settings, name, self.lowest, N_SLOTS, self.key_shift)

    def switch_to(self, sound: Sound) -> None:
        """Play ``sound`` from the next frame the worker computes (the pending one is computed
        again): the tick keeps sending what is ready meanwhile, so the beat never gaps. Warm its
        sampler first (``sound.sampler.warm()``), off the worker."""
        self._pending = sound
        self._wake.set()

    def _use(self, sound: Sound) -> None:
        """The worker takes a sound (and __init__ the first). New weights start from u_0 = 0."""
        if sound.model is not self.model:
            self.model = sound.model   # the frames to come go on from u_0, hearing the frame sounding
            self.held[:] = 0.0         # and a register of their own
            self.base_u, self.u_next = sound.base_u, sound.u_next
            for s, u in zip(self.slots, sound.slot_u):
                s.u = u                # a frame of the other weights, sent after this, advances from u_0
        self.sampler, self.k, self.chains = sound.sampler, sound.k, sound.chains
        self.max_poly, self.max_run = sound.max_poly, sound.max_run
        self.vel_fixed, self.vel_lo, self.vel_hi = sound.vel_fixed, sound.vel_lo, sound.vel_hi
        self.in_range = sound.in_range
        self.temperature, self.density, self.mode = sound.temperature, sound.density, sound.mode
        self._temperature_done, self._density_done = sound.temperature, 1.0   # a new sampler's
        self.register_width, self._holding = sound.register, True   # the next frame sets its sampler's register bias
        self.first_channel = sound.first_channel
        self.parts = self.preset_parts = sound.parts   # parts: a live control too (Controls.set_parts)
        self._parts_done = object()            # work the scheme and its channels out again
        self.scheme = SCHEMES[sound.parts]
        self.preset = sound.name

    @property
    def listener(self):
        return self._listener

    @listener.setter
    def listener(self, listener) -> None:
        """The player's side (listener.py); a played note recomputes the pending frame at once,
        not at the worker's next poll (which alone would miss ticks up to 50 ms away)."""
        self._listener = listener
        if listener is not None:
            listener.on_change = self._wake.set

    # ------------------------------------------------------------------ worker side
    def warm(self) -> None:
        """Compile (or load from Numba's cache) the kernels the worker calls, by running each on the
        real model with scratch state, so the first tick costs nothing."""
        s = self.slots[-1]
        self.sampler.warm()
        np.add(s.part, self.first_channel, out=s.part)
        shape_frame(s.v, s.pv, self.human_clamped, self.in_range, self.runs, self.max_run, self.max_poly, s.v_out)
        note_roles(s.v_out, self.scheme, s.part)
        union(s.v, s.v, self.x)
        scratch = new_register_state()
        register_hear(s.v, scratch)
        register_bias(scratch, 0.0, self.register_bias)
        self.sampler.set_register(self.register_bias)

    def prepare(self) -> None:
        """Warm the kernels and compute frame 1 (from u_0), ready for the first tick."""
        self.warm()
        self._compute()

    def start(self) -> None:
        self.prepare()
        self._worker.start()

    def advance(self) -> None:
        """After a tick: the frame sent becomes v_t (the model's notes with the player's they were
        sampled with), u_t follows from it, and frame t+1 is computed."""
        s = self.last_sent
        self.base_v[:] = s.v_out
        self.base_human[:] = s.human
        self.base_u[:] = s.u         # u_0 when it was the last frame of other weights (_use)
        self.base_part[:] = s.part
        np.multiply(self.runs + 1, self.base_v > 0, out=self.runs)
        self._first = False
        union(self.base_v, self.base_human, self.x)
        register_hear(self.x, self.held)
        self.sampler.rnn_step(self.x, self.base_human, self.base_u, self.u_next)
        self._compute()

    def _free_slot(self) -> Slot:
        for _ in range(N_SLOTS):
            s = self.slots[self._next_slot]
            self._next_slot = (self._next_slot + 1) % N_SLOTS
            if s is self.published:
                continue
            s.gen += 1                   # mark it being written, then make sure the tick has not claimed it
            if s is self.claimed:
                s.gen += 1
                continue
            return s
        raise RuntimeError("no free slot")  # cannot happen with 4 slots: at most 2 are in use

    def _compute(self) -> None:
        """Compute the frame for tick sent+1 from u_t (``u_next``) and the player's notes now."""
        t_start = time.perf_counter()
        seq = self.sent + 1          # read before computing: a tick meanwhile makes this frame stale
        sound = self._pending
        if sound is not self._taken:   # a switch: its sound from this frame on
            self._taken = sound
            self._use(sound)
        if self.parts != self._parts_done:
            self._parts_done = parts = self.parts
            self.scheme = SCHEMES[parts]
            used = range(self.first_channel, self.first_channel + (len(PARTS[parts]) if parts else 1))
            if not self.channels.issuperset(used):
                self.channels = self.channels | set(used)   # a new set: close() may be reading this one
        s = self._free_slot()
        mode = self.mode
        if self.listener is not None:
            self._human_seen = self.listener.snapshot(self.human)
        listening = self.listener is not None and mode != "off"
        if self.density != self._density_done:
            self.sampler.set_density(self.density)
            self._density_done = self.density
        if self.temperature != self._temperature_done:
            self.sampler.set_temperature(self.temperature)
            self._temperature_done = self.temperature
        hold = 0.0 if listening else self.register_width   # listening, the player sets the register
        if hold > 0.0 or self._holding:
            self._holding = register_bias(self.held, hold, self.register_bias)
            self.sampler.set_register(self.register_bias)
        if listening and mode == "harmonize":
            np.greater(self.human, 0, out=self.human_clamped, casting="unsafe")
            np.bitwise_or(self.human_clamped, 1 - self.in_range, out=self.clamp)
            # notes outside the range are clamped silent; the player's notes are clamped on
        else:
            self.human_clamped[:] = 0
            np.subtract(1, self.in_range, out=self.clamp)
        if listening and mode == "follow" and not self._first:
            union(self.base_v, self.human, self.x)
            self.sampler.rnn_step(self.x, self.human, self.base_u, self.u_next)
        s.u[:] = self.u_next
        # the player's notes reach the frame through the player path (and the clamp, in harmonize)
        self.sampler.sample(s.u, self.clamp, self.human if listening else self.nobody, s.v, s.pv,
                            consensus=listening and self.chains > 1)
        if listening:
            s.human[:] = self.human
        else:
            s.human[:] = 0.0
        if self.paused:
            s.v_out[:] = 0
        else:
            shape_frame(s.v, s.pv, self.human_clamped, self.in_range, self.runs, self.max_run,
                        self.max_poly, s.v_out)
        note_roles(s.v_out, self.scheme, s.part)
        np.add(s.part, self.first_channel, out=s.part)      # each part's channel
        frame_messages(s.v_out, self.base_v, s.pv, s.part, self.base_part, s.on_msg, self.off_msg,
                       self.vel_fixed, self.vel_lo, self.vel_hi, s.ons, s.offs, s.all_on)
        s.seq = seq
        s.gen += 1                              # even again: complete
        self.published = s
        dt = time.perf_counter() - t_start
        self.frame_time = dt
        self.frame_time_max = max(self.frame_time_max, dt)

    def _work(self) -> None:
        if self.realtime:
            from .realtime import WORKER_PRIORITY, promote
            self.worker_realtime_ok = promote(WORKER_PRIORITY)
        self.worker_realtime.set()
        done = 0
        while not self.closed:
            self._wake.wait(0.05)
            self._wake.clear()
            if self.closed:
                break
            sent = self.sent
            if sent != done:                    # a tick sent a frame: advance from it
                done = sent
                self.advance()
            elif self.listener is not None and self.listener.version != self._human_seen:
                self._compute()                 # the player changed notes before the tick: redo it
            elif self.published is not None and self.published.seq == sent + 1 and self._controls_changed():
                self._compute()

    _last_controls = None

    def _controls_changed(self) -> bool:
        c = (self.temperature, self.density, self.mode, self.paused, self.parts, self._pending)
        if c != self._last_controls:
            self._last_controls = c
            return True
        return False

    def poke(self) -> None:
        """A control changed: recompute the pending frame with it."""
        self._wake.set()

    # ------------------------------------------------------------------ tick side
    def tick(self, t: float) -> None:
        """Send the frame prepared for this tick. Called by the clock (main thread for the internal
        clock, the MIDI callback thread for an external one). Never allocates on the send path,
        never waits: if the worker is late the notes are held and the tick is counted late."""
        if not self._lock.acquire(False):
            return                               # close() is running
        try:
            if self.closed:
                return
            if self.panic_requested:
                self._silence()
                self.panic_requested = False
            s = self.published
            self.claimed = s
            g = s.gen if s is not None else 1
            if g & 1 or s.seq != self.sent + 1:
                self.late += 1
                return
            send, snd = self.send, self.sounding
            for m in s.offs:
                send(m)
                snd[m[1]] = 0
            ons = s.all_on if self.resync else s.ons
            for m in ons:
                if not snd[m[1]]:
                    send(m)
                    snd[m[1]] = m[0]
            self.resync = False
            self.last_sent = s
            self.sent += 1
        finally:
            self._lock.release()
        self._wake.set()
        rec = self.recorder
        if rec is not None:  # after sending: off the critical path
            tr = t - self.t0
            for m in s.offs:
                rec.model_note(tr, m)
            for m in ons:                # after a silence, the whole frame sounded again
                rec.model_note(tr, m)

    def _silence(self) -> None:
        """Note-off for every sounding note, on the channel it sounds on (the caller holds the lock)."""
        snd, send = self.sounding, self.send
        for note in range(128):
            if snd[note]:
                off = [NOTE_OFF | (snd[note] & CHANNEL), note, 0]
                send(off)
                snd[note] = 0
                if self.recorder is not None:
                    self.recorder.model_note(time.perf_counter() - self.t0, off)
        self.resync = True

    def silence(self) -> None:
        """Clock Stop: silence now; the next tick (after Continue) sounds its whole frame."""
        with self._lock:
            if not self.closed:
                self._silence()

    def panic(self) -> None:
        """All notes off now, and CC123/CC120 on every channel used; then keep playing."""
        with self._lock:
            if not self.closed:
                self._silence()
                self._all_off_ccs(sustain=False)

    def _all_off_ccs(self, sustain: bool = True) -> None:
        for ch in sorted(self.channels):
            if sustain:
                self.send([CC | ch, SUSTAIN, 0])
            self.send([CC | ch, ALL_NOTES_OFF, 0])
            self.send([CC | ch, ALL_SOUND_OFF, 0])

    def output_gone(self) -> None:
        """The output port died: messages go nowhere from now on (with the server gone nothing sounds,
        and RtMidi's JACK send would spin forever once its queue fills); the recording still gets
        its note-offs at close."""
        self.send = _nowhere

    def release_also(self, note_offs: Iterable[Sequence[int]], channels: Iterable[int]) -> None:
        """Notes sounded on our output by someone else (the player's, echoed by thru): their
        note-offs now, and their channels into the all-notes-off protocol of ``close``."""
        for m in note_offs:
            self.send(m)
        self.channels |= set(channels)

    def close(self) -> None:
        """Stop: note-off for every sounding note, then CC64=0, CC123, CC120 on the channels used.
        Safe to call more than once and from any thread."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                self._silence()
                self._all_off_ccs()
            finally:
                self._wake.set()
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join(1.0)

    @property
    def notes_sounding(self) -> int:
        return len(self.sounding) - self.sounding.count(0)


def _nowhere(msg: Sequence[int]) -> None:
    pass

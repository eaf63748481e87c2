"""The player's side: held notes from a MIDI input, sustain pedal counted, as v_t^human.

    listener = Listener(lowest_note=21, n_visible=88, channel=None, thru=out.send)
    inp.listen(listener.receive)      # well-formed messages only (ports.Port.listen)
    version = listener.snapshot(frame)   # frame[i] = 1 for every note held (or sustained)

The callback runs on the MIDI backend's thread (JACK's process thread with python-rtmidi): it only
updates small arrays and counters. Control changes other than the sustain pedal go to
``on_cc(channel, controller, value)`` (the CC mapping of controls.py).
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from .midi import CC, CHANNEL, KIND, NOTE_OFF, NOTE_ON, SUSTAIN, SYSEX


class Listener:
    def __init__(self, lowest_note: int, n_visible: int, channel: int | None = None,
                 thru: Callable[[list], None] | None = None, recorder=None, t0: float = 0.0,
                 on_cc: Callable[[int, int, int], None] | None = None, on_note: Callable[[float], None] | None = None):
        self.lowest = lowest_note
        self.n = n_visible
        self.channel = None if channel is None else channel - 1   # 1..16 → 0..15
        self.thru = thru
        self.thru_channels: set[int] = set()
        self.thru_sounding = bytearray(16 * 128)   # notes echoed on and not yet off: closed on stop
        self.recorder = recorder
        self.t0 = t0
        self.on_cc = on_cc
        self.on_note = on_note            # called with the arrival time of each note-on (latency figures)
        self.down = bytearray(128)        # keys physically down
        self.sustained = bytearray(128)   # released while the pedal was down
        self.pedal = False
        self.version = 0                  # bumped on every change of the held set
        self.on_change: Callable[[], None] | None = None   # told of every change (wakes the engine)

    def receive(self, msg: Sequence[int]) -> None:
        """A well-formed message from the input port (ports.Port.listen has checked it)."""
        self.handle(msg, time.perf_counter())

    def handle(self, msg: Sequence[int], now: float) -> None:
        status = msg[0]
        if status >= SYSEX or len(msg) < 2:
            return                                     # clock & co. belong to the clock follower
        kind, ch = status & KIND, status & CHANNEL
        if self.channel is not None and ch != self.channel:
            return
        if kind in (NOTE_OFF, NOTE_ON):
            note, vel = msg[1], msg[2] if len(msg) > 2 else 0
            if kind == NOTE_ON and vel > 0:
                self.down[note] = 1
                self.sustained[note] = 0
                if self.on_note is not None:
                    self.on_note(now)
            else:
                self.down[note] = 0
                if self.pedal:
                    self.sustained[note] = 1
            self._changed()
            self._echo(msg, ch, now)
        elif kind == CC and len(msg) > 2:
            if msg[1] == SUSTAIN:
                pedal = msg[2] >= 64
                if self.pedal and not pedal:
                    for i in range(128):
                        self.sustained[i] = 0
                    self._changed()
                self.pedal = pedal
                self._echo(msg, ch, now)
            elif self.on_cc is not None:
                self.on_cc(ch + 1, msg[1], msg[2])

    def _changed(self) -> None:
        self.version += 1
        if self.on_change is not None:
            self.on_change()

    def _echo(self, msg, ch: int, now: float) -> None:
        if self.thru is not None:
            self.thru(msg)
            self.thru_channels.add(ch)
            if msg[0] & KIND in (NOTE_OFF, NOTE_ON):
                self.thru_sounding[ch * 128 + msg[1]] = 1 if (msg[0] & KIND == NOTE_ON and msg[2] > 0) else 0
        if self.recorder is not None:
            self.recorder.player_note(now - self.t0, msg)

    def thru_note_offs(self) -> list[list[int]]:
        """Note-offs for every echoed note still sounding (sent when playing stops)."""
        return [[NOTE_OFF | (i // 128), i % 128, 0] for i in range(16 * 128) if self.thru_sounding[i]]

    def snapshot(self, frame: np.ndarray) -> int:
        """Write v^human (notes held or sustained, within the model's range) into frame; return the
        version it reflects, so the caller can tell when the player changed something."""
        version = self.version
        lo = self.lowest
        for i in range(self.n):
            frame[i] = 1.0 if (self.down[lo + i] or self.sustained[lo + i]) else 0.0
        return version

"""MIDI bytes: the status and controller numbers the instrument uses, and the check every incoming
message passes at the port before anything else sees it.

    guard = MessageGuard()
    if guard.accept(msg):      # msg: the bytes one backend event carried
        listener.handle(msg)   # a complete, well-formed message

A port hands us whatever a sender wrote. A note-on with a data byte ≥ 0x80, a 2-byte note-on,
an empty event or a stray data byte is dropped here, so the listener, the clock follower and
--thru only ever see messages a strict receiver accepts. SysEx may come in pieces (a start
without F7, then continuation chunks): the guard follows that, and any status byte other than a
real-time one ends a SysEx, as the MIDI specification says, so a SysEx cut short never makes the
input deaf to the notes after it.
"""
from __future__ import annotations

from typing import Sequence

# channel messages (high nibble; the low nibble is the channel)
NOTE_OFF, NOTE_ON, POLY_PRESSURE, CC, PROGRAM, CHANNEL_PRESSURE, PITCH_BEND = (
    0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0)
KIND, CHANNEL = 0xF0, 0x0F  # a channel message's status byte: status & KIND is one of the above
# system common
SYSEX, TIME_CODE, SPP, SONG_SELECT, TUNE_REQUEST, EOX = 0xF0, 0xF1, 0xF2, 0xF3, 0xF6, 0xF7
# system real time (may come between the bytes of anything else)
CLOCK, START, CONTINUE, STOP, ACTIVE_SENSING, RESET = 0xF8, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF
REALTIME = 0xF8

# controllers
SUSTAIN, ALL_SOUND_OFF, ALL_NOTES_OFF = 64, 120, 123

# the length of each message by its status byte; 0: undefined (0xF4, 0xF5, 0xF9, 0xFD) or SysEx,
# whose length is its own
LENGTH = bytes([0] * 0x80 + [3] * 0x40 + [2] * 0x20 + [3] * 0x10
               + [0, 2, 3, 2, 0, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1])


class MessageGuard:
    """Accepts complete, well-formed MIDI messages; one per input port (it keeps that port's SysEx
    state). ``dropped`` counts what it refused."""

    def __init__(self) -> None:
        self.in_sysex = False   # a SysEx started and not yet ended (it may come in pieces)
        self.dropped = 0

    def accept(self, msg: Sequence[int]) -> bool:
        """True if ``msg`` is one complete message of a defined type with every data byte < 0x80.
        SysEx (whole or in pieces) is never accepted: nothing downstream uses it."""
        ok = self._check(msg)
        if not ok:
            self.dropped += 1
        return ok

    def _check(self, msg: Sequence[int]) -> bool:
        n = len(msg)
        if n == 0:
            return False
        status = msg[0]
        if status >= REALTIME:          # real time never touches the SysEx state
            return n == 1 and LENGTH[status] == 1
        if status < 0x80:               # no status: a SysEx continuation, else a stray data byte
            if self.in_sysex:
                self._sysex_piece(msg, 0)
            return False
        if status == SYSEX:
            self.in_sysex = True
            self._sysex_piece(msg, 1)
            return False
        self.in_sysex = False           # any other status ends a SysEx, complete (F7) or not
        if n != LENGTH[status]:
            return False
        for i in range(1, n):
            if msg[i] >= 0x80:
                return False
        return True

    def _sysex_piece(self, msg: Sequence[int], start: int) -> None:
        """A piece of SysEx: it goes on only while the piece is all data bytes. F7 (its end) or any
        other status byte in it ends it."""
        for i in range(start, len(msg)):
            if msg[i] >= 0x80:
                self.in_sysex = False
                return

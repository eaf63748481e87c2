"""The input path without a server: the MessageGuard at the port (ports.Port.listen) in front of
the listener, --thru, the clock follower and the recorder, fed arbitrary bytes (Hypothesis).

The JACK tests (test_robust.py) send a fixed list of malformed events through real ports; here the
same path takes thousands of arbitrary ones, handed over exactly as a backend hands them (a list
of ints per event)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import mido
from hypothesis import given, settings, strategies as st

from live_rnnrbm.live.clock import ClockFollower
from live_rnnrbm.live.listener import Listener
from live_rnnrbm.live.midi import MessageGuard
from live_rnnrbm.live.ports import Port
from live_rnnrbm.live.record import Recorder


class Backend:
    """Where a backend's port would keep the callback ports.Port.listen gives it."""

    def set_callback(self, fn, data=None) -> None:
        self.deliver = fn


def strict(msg) -> bool:
    """What a strict receiver accepts, judged by mido (not by the guard under test)."""
    try:
        parsed = mido.Message.from_bytes(list(msg))
    except (ValueError, TypeError):
        return False
    return len(parsed.bytes()) == len(msg) and parsed.type != "sysex"


# bytes weighted towards the interesting ones: status bytes of every kind, data bytes at the edges
BYTE = st.one_of(st.integers(0, 255), st.sampled_from([0x80, 0x90, 0xB0, 0xC0, 0xE0, 0xF0, 0xF2, 0xF7, 0xF8,
                                                         0xFA, 0xFC, 0x00, 0x3C, 0x40, 0x7F]))
EVENT = st.lists(BYTE, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENT, max_size=40))
def test_arbitrary_bytes_never_raise_and_nothing_invalid_is_forwarded(events):
    forwarded, frames = [], []
    with tempfile.TemporaryDirectory() as d:
        rec = Recorder(Path(d) / "fuzz.mid", bpm=120, start=0.0)
        listener = Listener(21, 88, thru=forwarded.append, recorder=rec, on_cc=lambda *a: None)
        follower = ClockFollower(4, on_frame=frames.append, on_stop=lambda: None,
                                 on_tempo=lambda bpm: rec.tempo(1.0, bpm))
        backend = Backend()
        port = Port(backend, "fuzz", True, "jack")
        port.listen(lambda msg: (follower.receive if msg[0] >= 0xF0 else listener.receive)(msg))
        for e in events:
            backend.deliver((list(e), 0.0))
        rec.save()
    assert all(strict(m) for m in forwarded), forwarded
    assert port.guard.dropped <= len(events)


def test_guard_examples():
    g = MessageGuard()
    for good in ([0x90, 60, 100], [0x80, 60, 0], [0xB0, 64, 127], [0xC0, 5], [0xE0, 0, 64], [0xF8], [0xFA],
                 [0xF2, 5, 0], [0xFE]):
        assert g.accept(good), good
    for bad in ([0x90, 0x80, 0x40], [0x80, 0xFF, 0x00], [], [0x90, 0x3C], [0x3C], [0xF8, 0], [0xF9],
                [0xC0, 5, 5], [0xF0, 1, 0xF7], [0xF7]):
        assert not g.accept(bad), bad
    assert g.dropped == 10


def test_a_sysex_cut_short_ends_at_the_next_status_byte():
    g = MessageGuard()
    assert not g.accept([0xF0, 1, 2])         # started, no F7 yet
    assert not g.accept([3, 4])               # a continuation piece
    assert g.accept([0xF8])                   # real time may come in between
    assert g.accept([0x90, 60, 100])          # a status byte ends the SysEx: the note is heard
    assert not g.accept([5, 6])               # and data after it is stray again

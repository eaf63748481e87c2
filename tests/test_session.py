"""How a session ends, without a MIDI system: a real engine and model play into an output that
keeps what it is sent, then ``Session.close`` must send a note-off for every sounding note (the
model's and the player's echoed ones), then CC64=0, CC123 and CC120 on every channel used, and
nothing after; once, however often it is called, and after a start that failed half-way."""
from __future__ import annotations

import time

import mido
import pytest
from test_stream import run, settings

from live_rnnrbm.live.midi import (ALL_NOTES_OFF, ALL_SOUND_OFF, CC, CHANNEL, CLOCK, CONTINUE, KIND, NOTE_OFF,
                                   NOTE_ON, SPP, START, STOP, SUSTAIN, MessageGuard)
from live_rnnrbm.live.ports import PortError
from live_rnnrbm.live.session import Session
from live_rnnrbm.model import RnnRbm


class Out:
    """An output port that keeps every message sent to it."""
    name, virtual, backend = "test-out", True, "test"

    def __init__(self) -> None:
        self.sent: list[tuple[int, ...]] = []
        self.dead = False
        self.closed = 0
        self.on_error_fn = None

    def send(self, msg) -> None:
        self.sent.append(tuple(msg))   # a copy: the engine rewrites its message lists

    def on_error(self, fn) -> None:
        self.on_error_fn = fn

    def close(self) -> None:
        self.closed += 1


class In:
    """An input port the test plays into (what Port.listen's guard passes on)."""
    name, virtual, backend = "test-in", True, "test"
    lost = 0

    def __init__(self) -> None:
        self.guard = MessageGuard()
        self.handler = None
        self.closed = 0

    def listen(self, handler) -> None:
        self.handler = handler

    def stop_listening(self) -> None:
        self.handler = None

    def on_error(self, fn) -> None:
        pass

    def close(self) -> None:
        self.closed += 1

    def play(self, msg) -> None:
        if self.handler is not None:
            self.handler(msg)


def session(open_input=None, **kw) -> tuple[Session, Out, In]:
    out, inp = Out(), In()
    s = Session(RnnRbm(n_hidden=20, n_hidden_recurrent=10, seed=7), settings(status=False, **kw), realtime=False,
                open_output=lambda name, backend: out,
                open_input=open_input or (lambda name, backend, role: inp))
    return s, out, inp


def sounding_after(sent) -> set[tuple[int, int]]:
    """(channel, note) of every note still on after these messages; anything but notes fails."""
    on: set[tuple[int, int]] = set()
    for m in sent:
        kind, ch = m[0] & KIND, m[0] & CHANNEL
        assert kind in (NOTE_ON, NOTE_OFF), f"{m} among the notes"
        if kind == NOTE_ON and m[2] > 0:
            on.add((ch, m[1]))
        else:
            on.discard((ch, m[1]))
    return on


def assert_ended(sent, channels: set[int]) -> None:
    """Every note-on has its note-off on its channel after it; then CC64=0, CC123, CC120 on each
    channel used, channel by channel, and nothing after them."""
    used = channels | {m[0] & CHANNEL for m in sent if m[0] & KIND == NOTE_ON}
    assert used == channels, f"notes on channels {used}, expected {channels}"
    tail = [(CC | ch, c, 0) for ch in sorted(channels) for c in (SUSTAIN, ALL_NOTES_OFF, ALL_SOUND_OFF)]
    assert sent[-len(tail):] == tail, sent[-len(tail) - 3:]
    assert sounding_after(sent[:-len(tail)]) == set()


def test_close_ends_every_note_then_the_controllers_once(capsys):
    s, out, _ = session()
    s.start()
    run(s.engine, 8)
    before = len(out.sent)
    assert sounding_after(out.sent), "notes sound at the end: close has note-offs to send"
    s.close()
    assert len(out.sent) > before
    assert_ended(out.sent, {0})
    assert out.closed == 1
    sent = list(out.sent)
    s.close()
    assert out.sent == sent and out.closed == 1
    stopped = [line for line in capsys.readouterr().err.splitlines() if "stopped" in line]
    assert stopped == ["live-rnnrbm: stopped (done): 8 frames, 0 late; all notes off"]


def test_close_ends_the_players_echoed_notes_too():
    s, out, inp = session(input="test-in", thru=True)
    s.start()
    run(s.engine, 3)
    inp.play([NOTE_ON | 1, 60, 100])      # held on channel 2, echoed at once
    inp.play([NOTE_ON | 1, 64, 100])
    inp.play([NOTE_OFF | 1, 64, 0])
    assert (NOTE_ON | 1, 60, 100) in out.sent
    run(s.engine, 3)
    s.close()
    assert (NOTE_OFF | 1, 60, 0) in out.sent
    assert_ended(out.sent, {0, 1})
    assert inp.handler is None and inp.closed == 1 and out.closed == 1


def test_the_closing_line_counts_what_the_inputs_dropped_and_lost(capsys):
    s, out, inp = session(input="test-in")
    s.start()
    run(s.engine, 2)
    inp.lost = 5                            # a JACK input whose reader stalled (jackmidi.JackMidiIn)
    assert not inp.guard.accept([NOTE_ON, 200, 1])   # Port.listen's guard refuses a malformed message
    s.close()
    assert ("stopped (done): 2 frames, 0 late, 1 malformed message(s) dropped, 5 message(s) lost (the "
            "input's queue was full); all notes off") in capsys.readouterr().err


def test_the_recording_is_written_with_every_note_ended(tmp_path, capsys):
    path = tmp_path / "ending.mid"
    s, out, _ = session(record=str(path))
    s.start()
    run(s.engine, 8)
    s.close()
    assert f"recorded {path}" in capsys.readouterr().err
    assert not s.failed
    model = mido.MidiFile(path).tracks[1]
    assert len([m for m in model if m.type == "note_on" and m.velocity > 0]) >= 8
    assert sounding_after([m.bytes() for m in model if m.type in ("note_on", "note_off")]) == set()


def test_a_dead_output_gets_nothing_more_but_the_recording_ends_its_notes(tmp_path):
    path = tmp_path / "dead.mid"
    s, out, _ = session(record=str(path))
    s.start()
    run(s.engine, 8)
    sent = list(out.sent)
    assert sounding_after(sent)
    out.dead = True
    s.close()
    assert out.sent == sent and out.closed == 1
    model = mido.MidiFile(path).tracks[1]
    assert sounding_after([m.bytes() for m in model if m.type in ("note_on", "note_off")]) == set()


def test_a_start_that_fails_at_the_input_still_ends_cleanly(capsys):
    def no_input(name, backend, role):
        raise PortError(f"no MIDI input named like '{name}'")
    s, out, _ = session(open_input=no_input, input="nowhere")
    with pytest.raises(PortError):
        s.start()
    s.close()
    s.close()
    assert_ended(out.sent, {0})
    assert out.closed == 1 and s.engine.closed
    assert "stopped (done): 0 frames, 0 late; all notes off" in capsys.readouterr().err


def test_clock_out_starts_before_the_first_frame_and_stops_after_the_last_note():
    s, out, _ = session(clock_out=True, bpm=240, steps_per_beat=4)
    s.start()
    s.play(duration=0.5)
    s.close()
    assert s.stopped.is_set()
    assert out.sent[0] == (START,) and out.sent[-1] == (STOP,)
    assert out.sent.count((CLOCK,)) >= 12       # 6 pulses per frame at 4 frames per beat
    assert_ended([m for m in out.sent if m[0] < CLOCK], {0})


def pulses(inp: In, n: int) -> None:
    """n clock pulses into the clock port, each after the worker has had time for the next frame."""
    for _ in range(n):
        time.sleep(0.01)
        inp.play([CLOCK])


@pytest.mark.parametrize("daw_stops", [False, True], ids=["quit-while-running", "daw-stopped-first"])
def test_clock_out_following_forwards_every_clock_message_as_it_arrives(daw_stops):
    """--clock-out with an external clock: each Clock, Start, Continue, Stop and Song Position
    Pointer goes to the output as it arrives, the pulse before the notes of the frame it ticks, also
    before Start and while stopped; quitting while the transport runs adds a Stop after the last
    notes, and after the DAW's own Stop none of ours."""
    s, out, inp = session(clock="daw", clock_out=True, steps_per_beat=4)
    s.start()
    pulses(inp, 3)                       # clock before Start: forwarded, no frames
    inp.play([START])
    pulses(inp, 24)
    inp.play([SPP, 0x10, 0x01])          # 16th 144
    inp.play([STOP])
    pulses(inp, 6)                       # stopped: the pulses still go on
    inp.play([CONTINUE])
    pulses(inp, 12)
    if daw_stops:
        inp.play([STOP])
    s.close()
    clock = [m for m in out.sent if m[0] >= SPP]
    assert clock == ([(CLOCK,)] * 3 + [(START,)] + [(CLOCK,)] * 24 + [(SPP, 0x10, 0x01), (STOP,)] + [(CLOCK,)] * 6
                     + [(CONTINUE,)] + [(CLOCK,)] * 12 + [(STOP,)])    # the DAW's Stop, or ours at close
    assert s.engine.sent >= 5
    first_note = next(i for i, m in enumerate(out.sent) if m[0] & KIND in (NOTE_ON, NOTE_OFF))
    assert out.sent.index((START,)) < first_note
    stop_at = len(out.sent) - 1 - out.sent[::-1].index((STOP,))
    if daw_stops:   # the DAW's Stop is the last clock message: after it, notes end and none starts
        assert out.sent[stop_at - 1] == (CLOCK,)
        assert not [m for m in out.sent[stop_at + 1:] if m[0] & KIND == NOTE_ON and m[2] > 0]
    else:           # ours follows the last notes and CCs
        assert stop_at == len(out.sent) - 1
        assert_ended([m for m in out.sent if m[0] < SPP], {0})


def test_following_without_clock_out_sends_no_clock():
    s, out, inp = session(clock="daw", steps_per_beat=4)
    s.start()
    inp.play([START])
    pulses(inp, 24)
    s.close()
    assert s.engine.sent >= 3
    assert not [m for m in out.sent if m[0] >= SPP]


def test_a_failing_output_stops_the_session_and_is_reported():
    s, out, _ = session()
    s.start()
    out.on_error_fn("the JACK server shut down")
    assert s.stopped.is_set() and s.fault == "output port: the JACK server shut down" and s.failed
    s.close()
    assert_ended(out.sent, {0})


def test_osc_listens_from_start_to_close_and_the_closing_line_counts_what_it_dropped(capsys):
    import socket

    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import OscMessageBuilder
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s, out, _ = session(osc_port=port)
    s.start()
    assert f"live-rnnrbm: OSC on 127.0.0.1:{port}\n" in capsys.readouterr().err
    run(s.engine, 8)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        client.sendto(b"not OSC", ("127.0.0.1", port))
        client.sendto(OscMessageBuilder("/live-rnnrbm/status").build().dgram, ("127.0.0.1", port))
        assert OscMessage(client.recvfrom(4096)[0]).params == [1.0, 1.0, "follow", 0, 8, "default", "off", 50.0]
    s.close()   # one server thread takes datagrams in order: the garbage was counted before the reply
    s.close()
    stopped = [line for line in capsys.readouterr().err.splitlines() if "stopped" in line]
    assert stopped == ["live-rnnrbm: stopped (done): 8 frames, 0 late, 1 bad OSC message(s) dropped; all notes off"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", port))   # closed: the port is free

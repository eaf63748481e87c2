"""OSC control without MIDI: the server of osc.py on a real UDP socket, driven by python-osc's
client, in front of the real Controls on a stand-in engine (the live test through JACK, with the
client in another process, is in test_play.py)."""
from __future__ import annotations

import socket
import threading
import time

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

from live_rnnrbm.live.controls import Controls
from live_rnnrbm.live.osc import OscControl
from live_rnnrbm.live.settings import CCMap


class Engine:
    """The attributes and calls Controls and the status reply use."""

    def __init__(self):
        self.temperature, self.density, self.mode, self.paused, self.sent = 1.0, 1.0, "follow", False, 42
        self.preset, self.parts, self.preset_parts, self.first_channel = "default", None, None, 0
        self.panics = 0

    def panic(self):
        self.panics += 1

    def poke(self):
        pass


def serve(engine: Engine, port: int = 0) -> OscControl:
    control = OscControl(Controls(engine, CCMap(), threading.Event()), engine, "127.0.0.1", port)
    control.start()
    return control


def started():
    """A stand-in engine, its OSC server, a client, and a UDP socket for the status replies."""
    engine = Engine()
    control = serve(engine)
    reply = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reply.bind(("127.0.0.1", 0))
    reply.settimeout(5)
    return engine, control, SimpleUDPClient("127.0.0.1", control.port), reply


@pytest.fixture
def osc():
    engine, control, client, reply = started()
    yield engine, control, client, reply
    control.close()
    reply.close()


def settle(condition, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)


def status(client, reply) -> list:
    client.send_message("/live-rnnrbm/status", reply.getsockname()[1])
    data, _ = reply.recvfrom(4096)
    msg = OscMessage(data)
    assert msg.address == "/live-rnnrbm/status"
    return msg.params


def test_every_control_and_the_status_reply(osc):
    engine, control, client, reply = osc
    client.send_message("/live-rnnrbm/temperature", 2.0)
    client.send_message("/live-rnnrbm/density", 8)              # an int is a number too
    client.send_message("/live-rnnrbm/mode", "harmonize")
    client.send_message("/live-rnnrbm/pause", [])                # no argument: toggle
    assert status(client, reply) == [2.0, 8.0, "harmonize", 1, 42, "default", "off", 50.0]
    client.send_message("/live-rnnrbm/pause", [])
    client.send_message("/live-rnnrbm/temperature", 100.0)       # clamped, as the knob's range
    client.send_message("/live-rnnrbm/density", 0.001)
    assert status(client, reply) == [4.0, 0.125, "harmonize", 0, 42, "default", "off", 50.0]
    client.send_message("/live-rnnrbm/pause", 1)
    client.send_message("/live-rnnrbm/pause", 1)                 # 1 pauses, it does not toggle
    assert status(client, reply)[3] == 1
    client.send_message("/live-rnnrbm/pause", 0)
    assert status(client, reply)[3] == 0
    client.send_message("/live-rnnrbm/panic", [])
    client.send_message("/live-rnnrbm/panic", 0.0)               # a button's release: nothing
    client.send_message("/live-rnnrbm/panic", 1.0)
    settle(lambda: engine.panics == 2)
    assert engine.panics == 2
    assert control.dropped == 0


def test_status_without_a_port_replies_to_the_sender(osc):
    engine, control, client, reply = osc
    reply.sendto(OscMessageBuilder("/live-rnnrbm/status").build().dgram, ("127.0.0.1", control.port))
    data, _ = reply.recvfrom(4096)
    assert OscMessage(data).params == [1.0, 1.0, "follow", 0, 42, "default", "off", 50.0]


@pytest.mark.parametrize("datagram", [
    b"\x00\x01garbage",                               # not OSC at all
    b"/live-rnnrbm/mode\x00\x00\x00,s\x00\x00harm",           # text cut short
    b"/live-rnnrbm/mode\x00\x00\x00,s\x00\x00\xff\xfe\x00\x00",  # not UTF-8: python-osc raises, not ParseError
    b"#bundle\x00\x00\x00",                           # a bundle cut short
])
def test_a_garbage_datagram_is_dropped_and_counted_and_the_server_lives_on(osc, datagram, capfd):
    engine, control, client, reply = osc
    reply.sendto(datagram, ("127.0.0.1", control.port))
    settle(lambda: control.dropped == 1)
    assert control.dropped == 1
    client.send_message("/live-rnnrbm/temperature", 2.0)
    assert status(client, reply)[0] == 2.0
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("address, args", [
    ("/live-rnnrbm/temperature", "hot"), ("/live-rnnrbm/temperature", 0.0), ("/live-rnnrbm/temperature", -1.0),
    ("/live-rnnrbm/temperature", float("nan")), ("/live-rnnrbm/temperature", []),
    ("/live-rnnrbm/temperature", [1.0, 2.0]), ("/live-rnnrbm/temperature", True),
    ("/live-rnnrbm/density", "x"), ("/live-rnnrbm/density", float("inf")),
    ("/live-rnnrbm/mode", "harmonise"), ("/live-rnnrbm/mode", 1), ("/live-rnnrbm/mode", []),
    ("/live-rnnrbm/pause", 2), ("/live-rnnrbm/pause", "yes"), ("/live-rnnrbm/panic", "now"),
    ("/live-rnnrbm/status", "me"), ("/live-rnnrbm/status", 70000), ("/live-rnnrbm/tempo", 1.0),
    ("/live-rnnrbm/preset", "nowhere"), ("/live-rnnrbm/preset", 2), ("/live-rnnrbm/preset", []),
    ("/live-rnnrbm/parts", "sat"), ("/live-rnnrbm/parts", 2), ("/live-rnnrbm/swing", "hard"),
    ("/live-rnnrbm/swing", []),
])
def test_wrong_arguments_and_unknown_addresses_are_dropped_and_counted(osc, address, args, capfd):
    engine, control, client, reply = osc
    client.send_message(address, args)
    settle(lambda: control.dropped == 1)
    assert control.dropped == 1
    assert status(client, reply) == [1.0, 1.0, "follow", 0, 42, "default", "off", 50.0]   # nothing changed
    assert engine.panics == 0
    assert "Traceback" not in capfd.readouterr().err


def test_close_is_idempotent_and_frees_the_port():
    engine = Engine()
    control = serve(engine)
    control.close()
    control.close()
    serve(engine, control.port).close()


def test_arbitrary_datagrams_never_stop_the_server(capfd):
    """Hypothesis's bytes (some starting like an OSC message or bundle, to get past the first
    check): each is dropped or applied, and the server answers the next status request."""
    from hypothesis import given, settings, strategies as st
    engine, control, client, reply = started()
    heads = st.sampled_from([b"", b"/live-rnnrbm/", b"/live-rnnrbm/mode\x00\x00\x00,", b"#bundle\x00"])

    @settings(max_examples=300, deadline=None)
    @given(head=heads, tail=st.binary(max_size=64))
    def one(head, tail):
        reply.sendto(head + tail, ("127.0.0.1", control.port))
        assert len(status(client, reply)) == 8

    try:
        one()
    finally:
        control.close()
        reply.close()
    assert "Traceback" not in capfd.readouterr().err


def test_parts_and_swing(osc):
    """Parts by name, by 1 (the preset's, else mbc) and 0; swing held to 50..75, on a real clock."""
    from live_rnnrbm.live.clock import InternalClock
    engine, control, client, reply = osc
    control.controls.clock = InternalClock(0.25, lambda t: None)
    client.send_message("/live-rnnrbm/parts", "satb")
    client.send_message("/live-rnnrbm/swing", 62.5)
    assert status(client, reply)[5:] == ["default", "satb", 62.5]
    client.send_message("/live-rnnrbm/parts", 0)
    client.send_message("/live-rnnrbm/swing", 90)
    assert status(client, reply)[5:] == ["default", "off", 75.0]
    client.send_message("/live-rnnrbm/parts", 1)
    assert status(client, reply)[6] == "mbc"
    assert control.dropped == 0
    control.controls.on_cc(1, 29, 0)          # the swing knob (CC 29): 0..127 → 50..75
    assert control.controls.swing == 50.0
    control.controls.on_cc(1, 29, 127)
    assert control.controls.swing == 75.0
    control.controls.on_cc(1, 28, 127)        # the parts button, on its press only
    control.controls.on_cc(1, 28, 0)
    assert engine.parts is None

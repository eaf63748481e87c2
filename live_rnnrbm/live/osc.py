"""OSC control of the live instrument (python-osc, the `osc` extra): the same controls as the CC
knobs and the terminal keys, at fixed addresses, and a status reply.

    osc = OscControl(controls, engine, "127.0.0.1", 9000)
    osc.start()        # its own daemon thread; raises OSError when the address cannot be bound
    ...
    osc.close()        # idempotent
    osc.dropped        # datagrams and messages that were not valid controls

    /live-rnnrbm/temperature f     > 0, clamped to 0.25..4 (as the CC knob's range)
    /live-rnnrbm/density f         > 0, clamped to 1/8..8
    /live-rnnrbm/mode s            follow | harmonize | off
    /live-rnnrbm/pause [i]         no argument: toggle; 1 pause, 0 play
    /live-rnnrbm/panic [f]         all notes off now (an argument of 0, a button's release, does nothing)
    /live-rnnrbm/preset s|i        the preset of `switch` of that name, or +1 next / -1 previous
    /live-rnnrbm/parts s|i         mbc | satb | off, or 1 (the preset's parts, else mbc) / 0 (off)
    /live-rnnrbm/swing f           50..75 (held to it), from the next pair of frames
    /live-rnnrbm/status [i]        reply /live-rnnrbm/status f f s i i s s f (temperature, density, mode,
                                   paused, frames sent, preset, parts or off, swing) to the sender, or to
                                   the sender's host at port i

Every control goes through ``Controls`` (the one place that applies a control), so OSC, MIDI CC and
the keys behave alike and none of them touches the tick. A datagram that is not OSC, a message to an
unknown address or with wrong arguments is dropped and counted; nothing a sender does raises into
the server thread.
"""
from __future__ import annotations

import math
import threading
import traceback
from typing import Any, Callable

from pythonosc import osc_packet
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_server import BlockingOSCUDPServer

from .settings import MODES, PARTS

PREFIX = "/live-rnnrbm"


class Invalid(Exception):
    """A message's arguments are not what its address takes."""


def _number(args: tuple, positive: bool = True) -> float:
    if len(args) != 1 or isinstance(args[0], bool) or not isinstance(args[0], (int, float)):
        raise Invalid
    value = float(args[0])
    if not math.isfinite(value) or (positive and value <= 0):
        raise Invalid
    return value


class _Dispatcher(Dispatcher):
    """python-osc's Dispatcher parses a packet and swallows its ParseError silently (and lets other
    parse errors, e.g. a truncated int, raise into the server); this one counts both as dropped."""

    def __init__(self, on_bad: Callable[[], None]):
        super().__init__()
        self._on_bad = on_bad

    def call_handlers_for_packet(self, data: bytes, client_address: tuple[str, int]) -> list:
        try:
            messages = [timed.message for timed in osc_packet.OscPacket(data).messages]
        except Exception:  # noqa: BLE001 — anything a sender puts in a datagram
            self._on_bad()
            return []
        # a bundle's time tag is ignored: a control acts when it arrives, like a CC or a key
        for message in messages:
            for handler in self.handlers_for_address(message.address):
                handler.invoke(client_address, message)
        return []


class _Server(BlockingOSCUDPServer):
    def __init__(self, address: tuple[str, int], dispatcher: _Dispatcher, on_bad: Callable[[], None]):
        self._on_bad = on_bad
        super().__init__(address, dispatcher)

    def verify_request(self, request, client_address) -> bool:
        ok = super().verify_request(request, client_address)   # not '/...' nor '#bundle': not OSC
        if not ok:
            self._on_bad()
        return ok

    def handle_error(self, request, client_address) -> None:
        self._on_bad()   # socketserver would print a traceback for each bad datagram


class OscControl:
    def __init__(self, controls, engine, host: str, port: int):
        self.controls = controls
        self.engine = engine
        self.host, self.port = host, port
        self.dropped = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        d = _Dispatcher(self._bad)
        for name, take in (("temperature", self._temperature), ("density", self._density), ("mode", self._mode),
                           ("pause", self._pause), ("panic", self._panic), ("preset", self._preset),
                           ("parts", self._parts), ("swing", self._swing)):
            d.map(f"{PREFIX}/{name}", self._guarded(take))
        d.map(f"{PREFIX}/status", self._guarded(self._status), needs_reply_address=True)
        d.set_default_handler(lambda address, *args: self._bad())   # an address nobody answers
        self._dispatcher = d

    def start(self) -> None:
        self._server = _Server((self.host, self.port), self._dispatcher, self._bad)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="live-rnnrbm osc", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._closed or self._server is None:
            return
        self._closed = True
        self._server.shutdown()      # returns when serve_forever has seen it (within poll_interval)
        self._server.server_close()

    def _bad(self) -> None:
        self.dropped += 1   # one writer: the server thread

    def _guarded(self, take: Callable[..., None]) -> Callable[..., None]:
        def handler(*args: Any) -> None:
            try:
                take(*args)
            except Invalid:
                self._bad()
            except Exception:  # noqa: BLE001 — a bug here must show, but not end the server or the music
                traceback.print_exc()
                self._bad()
        return handler

    # --- the controls ------------------------------------------------------------
    def _temperature(self, address: str, *args: Any) -> None:
        self.controls.set_temperature(_number(args))

    def _density(self, address: str, *args: Any) -> None:
        self.controls.set_density(_number(args))

    def _mode(self, address: str, *args: Any) -> None:
        if len(args) != 1 or not isinstance(args[0], str) or args[0].lower() not in MODES:
            raise Invalid
        self.controls.set_mode(args[0].lower())

    def _pause(self, address: str, *args: Any) -> None:
        if not args:
            self.controls.toggle_pause()
            return
        value = _number(args, positive=False)
        if value not in (0.0, 1.0):
            raise Invalid
        self.controls.set_paused(value == 1.0)

    def _panic(self, address: str, *args: Any) -> None:
        if args and _number(args, positive=False) == 0.0:
            return   # a push button's release
        self.controls.panic()

    def _preset(self, address: str, *args: Any) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            if not self.controls.select_preset(args[0]):
                raise Invalid
            return
        step = _number(args, positive=False)
        if step not in (1.0, -1.0):
            raise Invalid
        self.controls.step_preset(int(step))

    def _parts(self, address: str, *args: Any) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            name = args[0].lower()
            if name != "off" and name not in PARTS:
                raise Invalid
            self.controls.set_parts(None if name == "off" else name)
            return
        on = _number(args, positive=False)
        if on not in (0.0, 1.0):
            raise Invalid
        self.controls.set_parts((self.engine.preset_parts or "mbc") if on else None)

    def _swing(self, address: str, *args: Any) -> None:
        self.controls.set_swing(_number(args))

    def _status(self, client: tuple[str, int], address: str, *args: Any) -> None:
        if args:
            if len(args) != 1 or isinstance(args[0], bool) or not isinstance(args[0], int) \
                    or not 1 <= args[0] <= 65535:
                raise Invalid
            client = (client[0], args[0])
        e = self.engine
        reply = OscMessageBuilder(f"{PREFIX}/status")
        reply.add_arg(float(e.temperature), "f")
        reply.add_arg(float(e.density), "f")
        reply.add_arg(str(e.mode), "s")
        reply.add_arg(int(bool(e.paused)), "i")
        reply.add_arg(int(e.sent), "i")
        reply.add_arg(str(e.preset), "s")
        reply.add_arg(str(e.parts or "off"), "s")
        reply.add_arg(float(self.controls.swing), "f")
        self._server.socket.sendto(reply.build().dgram, client)

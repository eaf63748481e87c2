"""JACK MIDI inputs read with libjack itself (ctypes), and word of the server going away.

    port = JackMidiIn("lr-clock", "clock")          # a client "lr-clock" with an input port "clock"
    port.connect_from("DAW:midi_out")                # optional: an existing output feeding it
    port.set_callback(lambda event, data=None: ...)  # event = (message bytes, 0.0), as python-rtmidi
    port.set_error_callback(lambda kind, text, data=None: ...)   # the server shut down
    port.close_port(); port.delete()

Why not python-rtmidi's JACK input: RtMidi glues JACK events back together as if they were a byte
stream. After a SysEx start without its F7 (``f0 01 02``), it treats every following event as part
of that SysEx and swallows it until some event ends in F7, so a player's notes go unheard, and
nothing reaches Python to notice. In JACK each event is one message; here each is handed on as it
came (malformed or not: the port's MessageGuard judges it). RtMidi also never asks JACK to say
when the server goes away, so a dead server went unnoticed; ``set_error_callback`` hears it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from typing import Callable

MIDI_TYPE = b"8 bit raw midi"
JACK_NO_START_SERVER = 0x01
JACK_PORT_IS_INPUT, JACK_PORT_IS_OUTPUT = 0x1, 0x2

PROCESS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p)
INFO_SHUTDOWN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
MESSAGE = ctypes.CFUNCTYPE(None, ctypes.c_char_p)


class MidiEvent(ctypes.Structure):
    _fields_ = [("time", ctypes.c_uint32), ("size", ctypes.c_size_t), ("buffer", ctypes.c_void_p)]


_LIB = None


def lib() -> ctypes.CDLL:
    """libjack, with the prototypes of the functions used here (loaded once)."""
    global _LIB
    if _LIB is None:
        L = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
        vp, cp, u32, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_int
        for name, res, args in [
            ("jack_client_open", vp, [cp, i, ctypes.POINTER(i)]),
            ("jack_client_close", i, [vp]),
            ("jack_activate", i, [vp]),
            ("jack_port_register", vp, [vp, cp, cp, ctypes.c_ulong, ctypes.c_ulong]),
            ("jack_port_name", cp, [vp]),
            ("jack_set_process_callback", i, [vp, PROCESS, vp]),
            ("jack_on_info_shutdown", None, [vp, INFO_SHUTDOWN, vp]),
            ("jack_port_get_buffer", vp, [vp, u32]),
            ("jack_midi_get_event_count", u32, [vp]),
            ("jack_midi_event_get", i, [ctypes.POINTER(MidiEvent), vp, u32]),
            ("jack_connect", i, [vp, cp, cp]),
            ("jack_get_ports", ctypes.POINTER(cp), [vp, cp, cp, ctypes.c_ulong]),
            ("jack_free", None, [vp]),
        ]:
            f = getattr(L, name)
            f.restype, f.argtypes = res, args
        _LIB = L
    return _LIB


_QUIET: list = []


def _ignore_messages() -> "ctypes._CFuncPtr":
    """A C function that does nothing with a message. Not a ctypes callback: libjack calls it on
    its own threads, some while the thread holding the GIL waits inside libjack for them
    (python-rtmidi keeps the GIL in jack_client_close); a Python callback would wait for the GIL
    there, for ever."""
    if not _QUIET:
        from numba import cfunc, types

        @cfunc(types.void(types.voidptr), cache=True)
        def ignore(text):  # pragma: no cover - runs as machine code
            pass
        _QUIET.append(MESSAGE(ignore.address))
    return _QUIET[0]


def quiet() -> None:
    """Keep libjack's own messages off stderr from now on. Called once the ports are open: when
    the server dies, each client prints its socket errors ("Cannot read socket fd", "Server is not
    running", ...) and the instrument says in one line what happened. python-rtmidi's wheel brings
    its own copy of libjack, so every copy loaded in the process is told (Linux: /proc/self/maps)."""
    ignore = _ignore_messages()
    paths = {ctypes.util.find_library("jack") or "libjack.so.0"}
    try:
        with open("/proc/self/maps") as maps:
            paths |= {line.split()[-1] for line in maps if "/libjack" in line}
    except OSError:
        pass
    for path in paths:
        try:
            L = ctypes.CDLL(path)
            for name in ("jack_set_error_function", "jack_set_info_function"):
                f = getattr(L, name)
                f.restype, f.argtypes = None, [MESSAGE]
                f(ignore)
        except (OSError, AttributeError):
            pass


class JackError(Exception):
    """libjack refused something (no server, a name taken, a port that would not connect)."""


class JackClient:
    """A JACK client that says when the server shuts it down (``set_error_callback``)."""

    def __init__(self, client_name: str):
        self._lib = lib()
        status = ctypes.c_int(0)
        self.client = self._lib.jack_client_open(client_name.encode(), JACK_NO_START_SERVER, ctypes.byref(status))
        if not self.client:
            raise JackError(f"cannot open a JACK client '{client_name}' (JACK status 0x{status.value:x})")
        self.dead = False
        self._on_error: Callable | None = None
        self._shutdown = INFO_SHUTDOWN(self._shut_down)   # kept referenced: libjack holds the pointer
        self._lib.jack_on_info_shutdown(self.client, self._shutdown, None)

    def _shut_down(self, code: int, reason: bytes | None, arg) -> None:
        self.dead = True
        cb = self._on_error
        if cb is not None:
            text = (reason or b"").decode(errors="replace").strip().rstrip(".") or "no reason given"
            cb("JACK server shut down", f"the JACK server shut down ({text})", None)

    def set_error_callback(self, fn: Callable, data=None) -> None:
        self._on_error = fn

    def activate(self) -> None:
        """Join the graph. Every client is activated, even one without ports: jack_client_close on a
        client never activated can deadlock inside libjack (seen: a port-less watch client, closed
        after python-rtmidi's, hung `play` on exit in 1 run of 10–20 under load; activated, 120 of
        120 closed)."""
        if self._lib.jack_activate(self.client):
            raise JackError("cannot activate a JACK client")

    def output_ports(self) -> list[str]:
        """Every JACK MIDI output (a source we may listen to)."""
        names = self._lib.jack_get_ports(self.client, None, MIDI_TYPE, JACK_PORT_IS_OUTPUT)
        out = []
        if names:
            k = 0
            while names[k]:
                out.append(names[k].decode(errors="replace"))
                k += 1
            self._lib.jack_free(ctypes.cast(names, ctypes.c_void_p))
        return out

    def delete(self) -> None:
        if self.client:
            # a client whose server died still holds memory; closing it is quick and safe then too
            self._lib.jack_client_close(self.client)
            self.client = None


class JackMidiIn(JackClient):
    """One JACK MIDI input port on its own client; every event goes to the callback as it came."""

    def __init__(self, client_name: str, port_name: str):
        super().__init__(client_name)
        self.port = self._lib.jack_port_register(self.client, port_name.encode(), MIDI_TYPE,
                                                 JACK_PORT_IS_INPUT, 0)
        if not self.port:
            self.delete()
            raise JackError(f"cannot register the JACK port '{client_name}:{port_name}'")
        self.name = self._lib.jack_port_name(self.port).decode()
        self._callback: Callable | None = None
        self._event_ref = ctypes.pointer(MidiEvent())
        self._got: list[bytes] = []
        self._process = PROCESS(self._run)
        self._lib.jack_set_process_callback(self.client, self._process, None)
        try:
            self.activate()
        except JackError:
            self.delete()
            raise

    def _run(self, nframes: int, arg) -> int:
        # JACK's process thread. The period's events are copied out first, then handed on: the
        # sender's buffer is only ours until its next period, and handing on takes the GIL, which
        # other threads may hold for a while.
        cb = self._callback
        if cb is None:
            return 0
        L, ev, got = self._lib, self._event_ref, self._got
        buf = L.jack_port_get_buffer(self.port, nframes)
        for j in range(L.jack_midi_get_event_count(buf)):
            if L.jack_midi_event_get(ev, buf, j) == 0:   # not 0: the event is gone, never re-read the last
                e = ev.contents
                got.append(ctypes.string_at(e.buffer, e.size) if e.size else b"")
        for msg in got:
            try:
                cb((msg, 0.0), None)
            except Exception:   # noqa: BLE001 - the callback reports its own errors; JACK's thread must live
                pass
        got.clear()
        return 0

    def connect_from(self, source: str) -> None:
        if self._lib.jack_connect(self.client, source.encode(), self.name.encode()) not in (0, 17):  # 17: EEXIST
            raise JackError(f"cannot connect '{source}' to '{self.name}'")

    def set_callback(self, fn: Callable, data=None) -> None:
        self._callback = fn

    def cancel_callback(self) -> None:
        self._callback = None

    def close_port(self) -> None:
        self._callback = None

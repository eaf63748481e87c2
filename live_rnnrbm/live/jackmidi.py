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
came (malformed or not: the port's MessageGuard judges it), on a reader thread of ours, while
JACK's own thread runs machine code that never waits for Python (see JackMidiIn). RtMidi also never
asks JACK to say when the server goes away, so a dead server went unnoticed; ``set_error_callback``
hears it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from typing import Callable

MIDI_TYPE = b"8 bit raw midi"
JACK_NO_START_SERVER = 0x01
JACK_PORT_IS_INPUT, JACK_PORT_IS_OUTPUT = 0x1, 0x2

PROCESS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p)
INFO_SHUTDOWN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
MESSAGE = ctypes.CFUNCTYPE(None, ctypes.c_char_p)


_LIB = None


def lib() -> ctypes.CDLL:
    """libjack, with the prototypes of the functions used here (loaded once)."""
    global _LIB
    if _LIB is None:
        L = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
        vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        for name, res, args in [
            ("jack_client_open", vp, [cp, i, ctypes.POINTER(i)]),
            ("jack_client_close", i, [vp]),
            ("jack_activate", i, [vp]),
            ("jack_port_register", vp, [vp, cp, cp, ctypes.c_ulong, ctypes.c_ulong]),
            ("jack_port_name", cp, [vp]),
            ("jack_set_process_callback", i, [vp, PROCESS, vp]),
            ("jack_on_info_shutdown", None, [vp, INFO_SHUTDOWN, vp]),
            ("jack_connect", i, [vp, cp, cp]),
            ("jack_get_ports", ctypes.POINTER(cp), [vp, cp, cp, ctypes.c_ulong]),
            ("jack_free", None, [vp]),
            ("jack_ringbuffer_create", vp, [ctypes.c_size_t]),
            ("jack_ringbuffer_free", None, [vp]),
            ("jack_ringbuffer_read_space", ctypes.c_size_t, [vp]),
            ("jack_ringbuffer_read", ctypes.c_size_t, [vp, ctypes.c_char_p, ctypes.c_size_t]),
            ("jack_ringbuffer_write", ctypes.c_size_t, [vp, ctypes.c_char_p, ctypes.c_size_t]),
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


# The input's process callback is machine code (a Numba cfunc), so JACK's thread never waits for
# Python's GIL: a callback in Python waits for whichever thread holds the GIL, and when that thread
# has been set aside by the OS for longer than a period, the sender's next period replaces the
# events not yet read and they are gone. Each event is copied into a JACK ring buffer as one fixed
# record (its size, its first RECORD_BYTES bytes), and a byte on a pipe wakes a thread of ours that
# hands the records on. Longer events are SysEx or malformed, which MessageGuard drops whole or cut
# alike, so their tails are not kept.
RECORD_BYTES = 16
RECORD = 8 + RECORD_BYTES            # little-endian u64 size, then the bytes
RING_RECORDS = 4096                  # seconds of a dense stream, should the reader stall
INPUT_PRIORITY = 7                   # the reader: above the clock and the frame worker, below JACK

# The callback's state, one uint64 block; its address is the callback's argument.
_SELF, _PORT, _RING, _WAKE_FD, _LOST, _EVENT, _REC, _ONE = 0, 1, 2, 3, 4, 5, 8, 11
_STATE_WORDS = 12

_PROCESS_IN: list = []


def _native(lib_: ctypes.CDLL, name: str, restype, *argtypes):
    """A C function of ``lib_`` with integer-typed pointers (same ABI), callable from Numba."""
    return ctypes.CFUNCTYPE(restype, *argtypes)(ctypes.cast(getattr(lib_, name), ctypes.c_void_p).value)


def _input_process():
    """The compiled process callback (once per process, ~0.2 s). Not cached: it calls libjack at
    addresses that are only known in this process."""
    if not _PROCESS_IN:
        import numpy as np
        from numba import carray, cfunc, types

        u64, u32, i32, sz = ctypes.c_uint64, ctypes.c_uint32, ctypes.c_int, ctypes.c_size_t
        L, libc = lib(), ctypes.CDLL(None)
        get_buffer = _native(L, "jack_port_get_buffer", u64, u64, u32)
        event_count = _native(L, "jack_midi_get_event_count", u32, u64)
        event_get = _native(L, "jack_midi_event_get", i32, u64, u64, u32)
        write_space = _native(L, "jack_ringbuffer_write_space", sz, u64)
        ring_write = _native(L, "jack_ringbuffer_write", sz, u64, u64, sz)
        memcpy = _native(libc, "memcpy", u64, u64, u64, sz)
        write = _native(libc, "write", ctypes.c_ssize_t, i32, u64, sz)

        @cfunc(types.intc(types.uint32, types.voidptr))
        def process(nframes, arg):  # pragma: no cover - runs as machine code on JACK's thread
            st = carray(arg, (_STATE_WORDS,), np.uint64)
            base = st[_SELF]
            buf = get_buffer(st[_PORT], nframes)
            n = event_count(buf)
            for j in range(n):
                if event_get(base + 8 * _EVENT, buf, j) != 0:   # not 0: the event is gone
                    continue
                size = st[_EVENT + 1]
                st[_REC] = size
                memcpy(base + 8 * (_REC + 1), st[_EVENT + 2], min(size, RECORD_BYTES))
                if write_space(st[_RING]) >= RECORD:
                    ring_write(st[_RING], base + 8 * _REC, RECORD)
                else:
                    st[_LOST] += 1
            if n:
                write(np.int32(st[_WAKE_FD]), base + 8 * _ONE, 1)
            return 0
        _PROCESS_IN.append(PROCESS(process.address))
    return _PROCESS_IN[0]


class JackMidiIn(JackClient):
    """One JACK MIDI input port on its own client; every event goes to the callback as it came,
    from a reader thread of ours (JACK's own thread only copies events out, in machine code).
    ``lost`` counts events that found the ring buffer full (a reader stalled for seconds)."""

    def __init__(self, client_name: str, port_name: str):
        super().__init__(client_name)
        self.port = self._lib.jack_port_register(self.client, port_name.encode(), MIDI_TYPE,
                                                 JACK_PORT_IS_INPUT, 0)
        if not self.port:
            self.delete()
            raise JackError(f"cannot register the JACK port '{client_name}:{port_name}'")
        self.name = self._lib.jack_port_name(self.port).decode()
        self._callback: Callable | None = None
        self._ring = self._lib.jack_ringbuffer_create(RING_RECORDS * RECORD)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)   # a full pipe already means "wake up"
        import numpy as np
        self._state = np.zeros(_STATE_WORDS, np.uint64)
        self._state[[_SELF, _PORT, _RING, _WAKE_FD, _ONE]] = [self._state.ctypes.data, self.port, self._ring,
                                                              self._wake_w, 1]
        self._closing = False
        self._reader = threading.Thread(target=self._read, name=f"jack input {self.name}", daemon=True)
        self._reader.start()
        self._lib.jack_set_process_callback(self.client, _input_process(), self._state.ctypes.data)
        try:
            self.activate()
        except JackError:
            self.delete()
            raise

    @property
    def lost(self) -> int:
        return int(self._state[_LOST])

    def _read(self) -> None:
        from .realtime import promote
        promote(INPUT_PRIORITY)
        L, ring = self._lib, self._ring
        rec = ctypes.create_string_buffer(RECORD)
        while True:
            try:
                os.read(self._wake_r, 4096)
            except OSError:
                return
            if self._closing:
                return
            while L.jack_ringbuffer_read_space(ring) >= RECORD:
                L.jack_ringbuffer_read(ring, rec, RECORD)
                raw = rec.raw
                msg = raw[8:8 + min(int.from_bytes(raw[:8], "little"), RECORD_BYTES)]
                cb = self._callback
                if cb is not None:
                    try:
                        cb((msg, 0.0), None)
                    except Exception:   # noqa: BLE001 - the callback reports its own errors; the reader must live
                        pass

    def delete(self) -> None:
        super().delete()           # the process callback has stopped: the ring and the pipe are ours
        if getattr(self, "_reader", None) is not None:
            self._closing = True
            try:
                os.write(self._wake_w, b"\0")
            except BlockingIOError:   # full: the reader has wake-ups waiting already
                pass
            self._reader.join(2)
            if not self._reader.is_alive():   # else it is stuck in a callback: leave it its ring
                self._lib.jack_ringbuffer_free(self._ring)
                os.close(self._wake_r)
                os.close(self._wake_w)
            self._reader = None

    def connect_from(self, source: str) -> None:
        if self._lib.jack_connect(self.client, source.encode(), self.name.encode()) not in (0, 17):  # 17: EEXIST
            raise JackError(f"cannot connect '{source}' to '{self.name}'")

    def set_callback(self, fn: Callable, data=None) -> None:
        self._callback = fn

    def cancel_callback(self) -> None:
        self._callback = None

    def close_port(self) -> None:
        self._callback = None

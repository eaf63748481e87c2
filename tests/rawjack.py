"""A JACK MIDI output that writes any bytes as one event, malformed or empty ones included
(python-rtmidi refuses those, and a real sender's bugs are what the product must survive).

    tx = RawSender("tx-raw")           # client "tx-raw", port "out"
    jack.connect(tx.name, "lr-x-in:in")
    tx.send(b"\\x90\\x80\\x40")        # one event, as is, in the next JACK period

Like the product's input (live_rnnrbm.live.jackmidi), its process callback is machine code reading
a JACK ring buffer of fixed records: a callback in Python would wait for this process's GIL, and a
late period loses what it should have sent, so a test would blame the instrument for its sender.
"""
from __future__ import annotations

import ctypes
import time

import numpy as np

from live_rnnrbm.live.jackmidi import (JACK_PORT_IS_OUTPUT, MIDI_TYPE, PROCESS, RECORD, RECORD_BYTES, RING_RECORDS,
                                       JackClient, _native, lib)

_SELF, _PORT, _RING, _REC = 0, 1, 2, 3     # state block: its address, port, ring, one record read back
_STATE_WORDS = 3 + RECORD // 8
_PROCESS_OUT: list = []


def _output_process():
    if not _PROCESS_OUT:
        from numba import carray, cfunc, types

        u64, u32, i32, sz = ctypes.c_uint64, ctypes.c_uint32, ctypes.c_int, ctypes.c_size_t
        L = lib()
        get_buffer = _native(L, "jack_port_get_buffer", u64, u64, u32)
        clear = _native(L, "jack_midi_clear_buffer", None, u64)
        event_write = _native(L, "jack_midi_event_write", i32, u64, u32, u64, sz)
        read_space = _native(L, "jack_ringbuffer_read_space", sz, u64)
        ring_read = _native(L, "jack_ringbuffer_read", sz, u64, u64, sz)

        @cfunc(types.intc(types.uint32, types.voidptr))
        def process(nframes, arg):  # pragma: no cover - runs as machine code on JACK's thread
            st = carray(arg, (_STATE_WORDS,), np.uint64)
            rec = st[_SELF] + 8 * _REC
            buf = get_buffer(st[_PORT], nframes)
            clear(buf)
            while read_space(st[_RING]) >= RECORD:
                ring_read(st[_RING], rec, RECORD)
                event_write(buf, 0, rec + 8, st[_REC])
            return 0
        _PROCESS_OUT.append(PROCESS(process.address))
    return _PROCESS_OUT[0]


class RawSender(JackClient):
    def __init__(self, client: str, port: str = "out"):
        super().__init__(client)
        L = self._lib = lib()
        self.port = L.jack_port_register(self.client, port.encode(), MIDI_TYPE, JACK_PORT_IS_OUTPUT, 0)
        self.name = L.jack_port_name(self.port).decode()
        self._ring = L.jack_ringbuffer_create(RING_RECORDS * RECORD)
        self._state = np.zeros(_STATE_WORDS, np.uint64)
        self._state[[_SELF, _PORT, _RING]] = [self._state.ctypes.data, self.port, self._ring]
        L.jack_set_process_callback(self.client, _output_process(), self._state.ctypes.data)
        self.activate()

    def send(self, data) -> None:
        data = bytes(data)
        assert len(data) <= RECORD_BYTES, "RawSender sends events of up to RECORD_BYTES bytes"
        rec = len(data).to_bytes(8, "little") + data.ljust(RECORD_BYTES, b"\0")
        assert self._lib.jack_ringbuffer_write(self._ring, rec, RECORD) == RECORD, "RawSender's ring is full"

    def flush(self, timeout: float = 1.0) -> None:
        """Wait until JACK has taken every queued event."""
        end = time.perf_counter() + timeout
        while self._lib.jack_ringbuffer_read_space(self._ring) and time.perf_counter() < end:
            time.sleep(0.002)

    def close(self) -> None:
        self.delete()
        if self._ring:
            self._lib.jack_ringbuffer_free(self._ring)
            self._ring = None

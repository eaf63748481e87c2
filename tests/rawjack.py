"""A JACK MIDI output that writes any bytes as one event, malformed or empty ones included
(python-rtmidi refuses those, and a real sender's bugs are what the product must survive).

    tx = RawSender("tx-raw")           # client "tx-raw", port "out"
    jack.connect(tx.name, "lr-x-in:in")
    tx.send(b"\\x90\\x80\\x40")        # one event, as is, in the next JACK period
"""
from __future__ import annotations

import collections
import ctypes
import time

from live_rnnrbm.live.jackmidi import JACK_PORT_IS_OUTPUT, MIDI_TYPE, PROCESS, JackClient, lib


def _prototypes():
    L = lib()
    L.jack_midi_clear_buffer.restype, L.jack_midi_clear_buffer.argtypes = None, [ctypes.c_void_p]
    L.jack_midi_event_write.restype = ctypes.c_int
    L.jack_midi_event_write.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]
    return L


class RawSender(JackClient):
    def __init__(self, client: str, port: str = "out"):
        super().__init__(client)
        self._lib = _prototypes()
        self.port = self._lib.jack_port_register(self.client, port.encode(), MIDI_TYPE, JACK_PORT_IS_OUTPUT, 0)
        self.name = self._lib.jack_port_name(self.port).decode()
        self.queue: collections.deque[bytes] = collections.deque()
        self._process = PROCESS(self._run)
        self._lib.jack_set_process_callback(self.client, self._process, None)
        assert self._lib.jack_activate(self.client) == 0

    def _run(self, nframes: int, arg) -> int:
        buf = self._lib.jack_port_get_buffer(self.port, nframes)
        self._lib.jack_midi_clear_buffer(buf)
        while self.queue:
            data = self.queue.popleft()
            self._lib.jack_midi_event_write(buf, 0, data, len(data))
        return 0

    def send(self, data) -> None:
        self.queue.append(bytes(data))

    def flush(self, timeout: float = 1.0) -> None:
        """Wait until JACK has taken every queued event."""
        end = time.perf_counter() + timeout
        while self.queue and time.perf_counter() < end:
            time.sleep(0.002)

    def close(self) -> None:
        self.delete()

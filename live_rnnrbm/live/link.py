"""Ableton Link as the clock (the `link` extra, on aalink): frames on the session's beat grid.

    link = LinkSession(bpm=120, quantum=4, start_stop=False)   # joins the session on the network
    clock = LinkClock(link, steps_per_beat=2, on_frame=engine.tick, on_stop=engine.silence)
    clock.run(stop_event)      # blocks; frame n at beat n / steps_per_beat of the shared timeline
    link.close()

Link keeps one timeline for every peer: a beat number that runs at the session tempo, the same
beat at the same moment on every machine (Link itself measures the clock offsets). Frame n
starts at beat n / steps_per_beat (an off-beat frame with swing, later by its share of the step),
so our frames land on every peer's grid; the first frame waits for the next bar (``quantum``
beats), as Link apps start. The wait for each deadline is cut into short sleeps that read the
timeline again, so a tempo change by any peer moves the very next frame; a peer that moves the
beat (re-sync) moves the grid with it. Our tempo is the session's: when we are the first peer,
the session starts at ``bpm``; joining, we take the session's.

With ``start_stop`` (Link's Start/Stop Sync) we play while the session's transport plays: silent
until a peer starts it, in on its first beat, silent again at its stop.

aalink needs an asyncio event loop in the thread that makes the Link object: it gets one of its
own, so the clock can run on any thread (reading the timeline is thread-safe in Link).
"""
from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Callable

from .clock import PPQN, sleep_until, swing_share

SLICE = 0.004        # the longest sleep before the timeline is read again (s)
CATCH = 0.02         # a beat boundary passed less than this ago (s) is still played (a start found late)


def available() -> bool:
    try:
        import aalink  # noqa: F401
    except ImportError:
        return False
    return True


class LinkSession:
    """A peer in the Link session: tempo, timeline and transport, readable from any thread."""

    def __init__(self, bpm: float, quantum: float = 4.0, start_stop: bool = False):
        from aalink import Link
        self.quantum = float(quantum)
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        made: list = []

        async def make() -> None:
            link = Link(float(bpm))
            link.quantum = self.quantum
            link.start_stop_sync_enabled = bool(start_stop)
            link.enabled = True
            made.append(link)
            ready.set()

        def loop() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.create_task(make())
            self._loop.run_forever()

        self._thread = threading.Thread(target=loop, name="live-rnnrbm link", daemon=True)
        self._thread.start()
        if not ready.wait(5.0):
            raise RuntimeError("Ableton Link did not start")
        self.link = made[0]
        self.start_stop = bool(start_stop)

    def now(self) -> tuple[float, float, float]:
        """(perf_counter time, beat, tempo) read together."""
        t0 = time.perf_counter()
        beat = self.link.beat
        t1 = time.perf_counter()
        return 0.5 * (t0 + t1), beat, self.link.tempo

    @property
    def playing(self) -> bool:
        """The session's transport; always True without start/stop sync (tempo and phase only)."""
        return self.link.playing if self.start_stop else True

    @property
    def tempo(self) -> float:
        return self.link.tempo

    @property
    def peers(self) -> int:
        return self.link.num_peers

    def wait_for_peers(self, timeout: float) -> int:
        """The number of other peers, once one is found or after ``timeout`` seconds."""
        deadline = time.perf_counter() + timeout
        while self.link.num_peers == 0 and time.perf_counter() < deadline:
            time.sleep(0.02)
        if self.link.num_peers:
            time.sleep(0.1)   # the session's tempo and timeline arrive with the peer's next message
        return self.link.num_peers

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self.link.enabled = False
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(2.0)


class LinkClock:
    """Calls ``on_frame(t)`` on the Link grid (t: the deadline on time.perf_counter()), and with
    ``on_pulse`` 24 MIDI clock pulses a beat on the same grid (clock out), a pulse before the
    frame of the same instant. ``on_start``/``on_stop`` when the transport starts and stops (with
    start/stop sync), ``on_tempo(bpm)`` when the session tempo moves by more than 0.5 BPM."""

    def __init__(self, session: LinkSession, steps_per_beat: int, on_frame: Callable[[float], None],
                 on_stop: Callable[[], None] | None = None, on_start: Callable[[], None] | None = None,
                 on_pulse: Callable[[], None] | None = None, on_tempo: Callable[[float], None] | None = None,
                 swing: float = 50.0):
        self.session = session
        self.spb = int(steps_per_beat)
        self.swing = float(swing)
        self.delay = self._next_delay = swing_share(swing) / self.spb   # beats an off-beat frame starts late
        self.on_frame, self.on_stop, self.on_start = on_frame, on_stop, on_start
        self.on_pulse, self.on_tempo = on_pulse, on_tempo
        self.running = False
        self._reported = 0.0

    def set_swing(self, swing: float) -> None:
        """Swing from the next on-beat frame on (a pair is never swung by half of each)."""
        self.swing = float(swing)
        self._next_delay = swing_share(swing) / self.spb

    def frame_beat(self, n: int) -> float:
        return n / self.spb + (self.delay if n % 2 else 0.0)

    def run(self, stop: threading.Event) -> None:
        session = self.session
        n = k = None   # the next frame and pulse on the grid; None: not placed yet
        while not stop.is_set():
            now, beat, tempo = session.now()
            if self.on_tempo is not None and abs(tempo - self._reported) > 0.5:
                self._reported = tempo
                self.on_tempo(tempo)
            if not session.playing:
                if self.running:
                    self.running = False
                    if self.on_stop is not None:
                        self.on_stop()
                n = k = None
                stop.wait(0.002)
                continue
            spb_s = 60.0 / tempo                          # seconds per beat now
            catch = CATCH / spb_s                         # the same in beats
            if n is None:                                 # start on the next bar (or one just begun)
                bar = math.ceil((beat - catch) / session.quantum) * session.quantum
                n, k = round(bar * self.spb), round(bar * PPQN)
            fb = self.frame_beat(n)
            # the grid moved under us (a peer re-synced the beat): take it from here
            if fb > beat + 2 * session.quantum or fb < beat - catch - 1.0 / self.spb:
                n = math.ceil((beat - catch) * self.spb)
                k = math.ceil((beat - catch) * PPQN)
                fb = self.frame_beat(n)
            pb = k / PPQN if self.on_pulse is not None else math.inf
            target = min(fb, pb)
            wait = (target - beat) * spb_s
            if wait > SLICE + 0.001:
                time.sleep(SLICE)                         # then read the timeline again
                continue
            deadline = now + wait
            sleep_until(deadline)
            if not self.running:
                self.running = True
                if self.on_start is not None:
                    self.on_start()
            if pb <= fb:
                self.on_pulse()
                k += 1
                if pb < fb:
                    continue
            self.on_frame(deadline)
            n += 1
            if n % 2 == 1:
                self.delay = self._next_delay   # the pair just begun takes the swing as it is now

"""Clocks that call ``tick()`` once per frame: an internal one on absolute deadlines, and a
follower of an external MIDI clock (24 pulses per quarter note).

    clock = InternalClock(dt=0.125, on_frame=engine.tick)
    clock.run(stop_event)                 # blocks; one tick every dt, deadlines never drift

    follower = ClockFollower(steps_per_beat=4, on_frame=engine.tick, on_stop=engine.silence)
    clock_in.listen(follower.receive)      # ticks on the backend's thread (ports.Port.listen)
    follower.check(time.perf_counter())    # a few times a second: has the clock gone?
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable, Sequence

from .midi import CLOCK, CONTINUE, SPP, START, STOP

PPQN = 24
SPIN = 0.0008  # the last fraction of a millisecond is spun, not slept: sleep() overshoots
LOST_BEATS, LOST_MIN = 2.0, 1.0   # no pulse for 2 beats at the last tempo, or 1 s if longer: clock lost
TEMPO_POINTS = PPQN + 1            # the pulses of the last beat, both ends: the tempo's window
# least-squares weights of those pulses, oldest first: a pulse in the middle of the window says
# nothing about the interval, one at an end the most, and still 12 / 1300 of its lateness where
# the first-to-last span takes 1 / 24 of it (4.5x steadier on a jittery clock)
TEMPO_WEIGHTS = tuple((k - PPQN / 2) / sum((j - PPQN / 2) ** 2 for j in range(TEMPO_POINTS))
                      for k in range(TEMPO_POINTS))


def pulses_per_frame(steps_per_beat: int) -> int | None:
    """MIDI clock pulses per frame, 24 / steps_per_beat; None when that is not whole: such frames
    cannot follow a MIDI clock."""
    return PPQN // steps_per_beat if PPQN % steps_per_beat == 0 else None


def swing_share(swing: float) -> float:
    """How late an off-beat frame starts, in frames (steps): 0 at 50 % (straight), 1/3 at 66.7 %
    (triplet feel), 1/2 at 75 %. Frames pair up (on-beat, off-beat), the pair lasting two steps;
    the on-beat frame takes ``swing`` % of the pair."""
    return (float(swing) - 50.0) / 50.0


def swing_pulses(swing: float, ppf: int) -> int:
    """The off-beat delay on an external clock, in whole pulses: the share of the ``ppf`` pulses
    of a frame, to the nearest pulse (halves up), as a frame can only start on a pulse."""
    return math.floor(swing_share(swing) * ppf + 0.5)


def sleep_until(deadline: float) -> None:
    """Sleep until perf_counter() ≥ deadline: sleep() for all but the last SPIN seconds, then spin."""
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return
        if left > SPIN:
            time.sleep(left - SPIN)


class InternalClock:
    """One ``on_frame(t_seconds)`` every ``dt`` seconds on absolute deadlines (next += dt), so
    lateness never accumulates. With ``pulses_per_frame`` and ``on_pulse`` it also ticks MIDI clock
    pulses in between (for --clock-out): ``on_pulse`` runs 24 times per beat, before the frame of
    the same instant.

    With ``swing`` above 50 every odd (off-beat) frame is called ``swing_share(swing) * dt`` late,
    on a deadline still reckoned from the start (no drift); on-beat frames and the pulses stay on
    the straight grid: the pulses carry the tempo to other gear, the swing is ours. ``set_swing``
    changes it while running (any thread), from the next pair of frames."""

    def __init__(self, dt: float, on_frame: Callable[[float], None], on_pulse: Callable[[], None] | None = None,
                 pulses_per_frame: int = 1, swing: float = 50.0):
        self.dt = float(dt)
        self.swing = float(swing)
        self.delay = self._next_delay = swing_share(swing) * self.dt
        self.on_frame = on_frame
        self.on_pulse = on_pulse
        self.ppf = max(1, int(pulses_per_frame)) if on_pulse else 1
        self.late = 0           # deadlines already passed when we got to them (> 1 ms late)
        self.started = None

    def set_swing(self, swing: float) -> None:
        """Swing from the next on-beat frame on (a pair is never swung by half of each)."""
        self.swing = float(swing)
        self._next_delay = swing_share(swing) * self.dt

    def run(self, stop: threading.Event, start: float | None = None) -> None:
        step = self.dt / self.ppf
        nxt = self.started = time.perf_counter() + 0.01 if start is None else start
        n = 0
        swung = None            # the deadline of an off-beat frame waiting for its swing delay
        while not stop.is_set():
            if swung is not None and swung < nxt:   # a pulse at the same instant goes first
                sleep_until(swung)
                if time.perf_counter() - swung > 0.001:
                    self.late += 1
                self.on_frame(swung)
                swung = None
                continue
            sleep_until(nxt)
            if time.perf_counter() - nxt > 0.001:
                self.late += 1
            if self.on_pulse is not None:
                self.on_pulse()
            if n % self.ppf == 0:
                if (n // self.ppf) % 2 == 0:
                    self.delay = self._next_delay    # a new swing starts with a pair
                if self.delay > 0 and (n // self.ppf) % 2:
                    swung = nxt + self.delay
                else:
                    self.on_frame(nxt)
            n += 1
            nxt += step


class ClockFollower:
    """Follows an external MIDI clock from the input callback.

    A frame every 24/steps_per_beat pulses, counted from the song position: Start resets the
    position to 0 (the first pulse after Start is the downbeat), Continue resumes from it, Song
    Position Pointer sets it (in 16th notes = 6 pulses), Stop calls ``on_stop`` (silence). The
    tempo is the least-squares pulse interval over the last beat's 25 pulses, so it follows tempo
    changes within a beat and a pulse that arrives a few milliseconds late hardly moves it (a
    recording writes every move of half a BPM as a tempo change).

    A clock that stops pulsing without a Stop (the DAW crashed, a cable came out) is lost after
    two beats at the last tempo or 1 s, whichever is longer (``check``): silence as on Stop, no
    tempo (``lost``), and the next pulse plays on. The tempo is never measured across such a gap:
    a pause is not a slow beat.

    With ``swing`` above 50, off-beat frames (odd frames of the song position) come
    ``swing_pulses(swing, ppf)`` pulses late; on-beat frames stay where they were. ``set_swing``
    changes it while following (any thread), from the next pair of frames.
    """

    def __init__(self, steps_per_beat: int, on_frame: Callable[[float], None],
                 on_stop: Callable[[], None] | None = None, on_start: Callable[[], None] | None = None,
                 on_tempo: Callable[[float], None] | None = None, swing: float = 50.0):
        ppf = pulses_per_frame(steps_per_beat)
        if ppf is None:
            raise ValueError(f"steps_per_beat must divide 24 to follow a MIDI clock, got {steps_per_beat}")
        self.ppf = ppf
        self.swing = float(swing)
        self.lag = self._next_lag = swing_pulses(swing, ppf)   # < ppf: an off-beat frame stays inside its step
        self.on_frame, self.on_stop, self.on_start, self.on_tempo = on_frame, on_stop, on_start, on_tempo
        self.running = False
        self.position = 0            # pulses since the song start
        self.frames = 0              # frames ticked
        self.pulses = 0              # clock pulses received in all
        self._times = [0.0] * TEMPO_POINTS   # ring of the last pulse arrival times
        self._n = 0                  # pulses received since the last Start/Continue
        self.bpm = 0.0
        self._last_bpm_report = 0.0
        self.last_pulse: float | None = None
        self.lost = False

    def set_swing(self, swing: float) -> None:
        """Swing from the next on-beat frame on."""
        self.swing = float(swing)
        self._next_lag = swing_pulses(swing, self.ppf)

    def lost_after(self) -> float:
        """Seconds without a pulse after which the clock counts as lost."""
        return max(LOST_BEATS * 60.0 / self.bpm, LOST_MIN) if self.bpm > 0 else LOST_MIN

    def check(self, now: float) -> bool:
        """Call a few times a second: declares the clock lost (and silences) when it has gone
        quiet for lost_after(); True while it is lost."""
        last = self.last_pulse
        if not self.lost and last is not None and now - last > self.lost_after():
            self.lost = True
            self.bpm = 0.0
            self._last_bpm_report = 0.0
            if self.on_stop is not None:
                self.on_stop()
        return self.lost

    def receive(self, msg: Sequence[int]) -> None:
        """A well-formed message from the clock port (ports.Port.listen)."""
        self.handle(msg[0], msg, time.perf_counter())

    def handle(self, status: int, msg, now: float) -> None:
        if status == CLOCK:
            self.pulses += 1
            last = self.last_pulse
            if last is not None and now - last > self.lost_after():
                self._n = 0          # a gap: the beat before it says nothing about the tempo now
            self.last_pulse = now
            self.lost = False
            i = self._n % TEMPO_POINTS
            self._times[i] = now
            self._n += 1
            if self._n >= TEMPO_POINTS:  # a beat of history
                self.bpm = 60.0 / (PPQN * self._pulse_interval(i))
                if self.on_tempo is not None and abs(self.bpm - self._last_bpm_report) > 0.5:
                    self._last_bpm_report = self.bpm
                    self.on_tempo(self.bpm)
            if self.running:
                p = self.position % (2 * self.ppf)   # where in the (on-beat, off-beat) pair
                if p == 0:
                    self.lag = self._next_lag        # a new swing starts with a pair
                if p == 0 or p == self.ppf + self.lag:
                    self.frames += 1
                    self.on_frame(now)
                self.position += 1
        elif status == START:
            self.position = 0
            self._resume()
        elif status == CONTINUE:
            self._resume()
        elif status == STOP:
            self.running = False
            if self.on_stop is not None:
                self.on_stop()
        elif status == SPP and len(msg) >= 3:
            self.position = (msg[1] | (msg[2] << 7)) * 6

    def _pulse_interval(self, newest: int) -> float:
        """The least-squares slope of the last TEMPO_POINTS arrival times (ring ending at ``newest``),
        in seconds a pulse; times are taken from the oldest so the sum keeps its precision."""
        times = self._times
        oldest = (newest + 1) % TEMPO_POINTS
        t0 = times[oldest]
        slope = 0.0
        for k in range(TEMPO_POINTS):
            slope += TEMPO_WEIGHTS[k] * (times[(oldest + k) % TEMPO_POINTS] - t0)
        return slope

    def _resume(self) -> None:
        self.running = True
        if self.on_start is not None:
            self.on_start()

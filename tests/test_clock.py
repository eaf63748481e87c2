"""The clocks, without ports: the external clock follower fed pulses directly, and the internal
clock's deadlines."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from live_rnnrbm.live.clock import CLOCK, CONTINUE, SPP, START, STOP, ClockFollower, InternalClock


def feed(f: ClockFollower, n: int, bpm: float, t: float) -> float:
    step = 60 / bpm / 24
    for _ in range(n):
        f.handle(CLOCK, [CLOCK], t)
        t += step
    return t


def test_follower_frames_tempo_start_stop_continue_spp():
    frames, stops = [], []
    f = ClockFollower(4, on_frame=frames.append, on_stop=lambda: stops.append(1))
    t = feed(f, 48, 120, 0.0)                 # pulses before Start: tempo, but no frames
    assert frames == [] and f.bpm == pytest.approx(120, rel=1e-6)
    f.handle(START, [START], t)
    t = feed(f, 24, 120, t)                   # one beat = 4 frames, the first on the first pulse
    assert len(frames) == 4 and frames[0] == pytest.approx(t - 24 * 60 / 120 / 24)
    assert np.allclose(np.diff(frames), 0.125)
    t = feed(f, 48, 90, t)                    # tempo change: followed within a beat
    assert f.bpm == pytest.approx(90, rel=1e-6)
    assert np.allclose(np.diff(frames[-4:]), 60 / 90 / 4)
    n = len(frames)
    f.handle(STOP, [STOP], t)
    t = feed(f, 24, 90, t)
    assert len(frames) == n and stops == [1]  # stopped: silence, no frames
    f.handle(CONTINUE, [CONTINUE], t)
    t = feed(f, 3, 90, t)                     # position was a whole beat: frame on the next pulse
    assert len(frames) == n + 1
    f.handle(STOP, [STOP], t)
    f.handle(SPP, [SPP, 5, 0], t)             # 5 sixteenths = 30 pulses
    assert f.position == 30
    f.handle(SPP, [SPP, 1, 1], t)             # 129 sixteenths
    assert f.position == 129 * 6
    f.handle(CONTINUE, [CONTINUE], t)
    f.position += 2                           # mid-frame: 4 pulses without a frame, then one
    before = len(frames)
    t = feed(f, 4, 90, t)
    assert len(frames) == before
    t = feed(f, 1, 90, t)
    assert len(frames) == before + 1


def test_follower_rejects_steps_that_do_not_divide_24():
    with pytest.raises(ValueError, match="divide 24"):
        ClockFollower(5, on_frame=print)


def test_internal_clock_keeps_absolute_deadlines():
    """Even when a tick runs late (a slow callback), later ticks return to the grid: no drift."""
    times = []
    stop = threading.Event()

    def on_frame(t):
        times.append((t, time.perf_counter()))
        if len(times) == 5:
            time.sleep(0.025)                 # one slow tick, longer than a frame
        if len(times) == 30:
            stop.set()

    clock = InternalClock(0.01, on_frame)
    clock.run(stop)
    deadlines = np.array([d for d, _ in times])
    assert np.allclose(np.diff(deadlines), 0.01)           # deadlines: next += dt, never re-based
    actual = np.array([a for _, a in times])
    assert np.median(actual[10:] - deadlines[10:]) < 0.002  # back on the grid after the slow tick
    assert clock.late >= 1


def test_follower_declares_a_silent_clock_lost_and_resumes_on_the_next_pulse():
    frames, stops, tempi = [], [], []
    f = ClockFollower(4, on_frame=frames.append, on_stop=lambda: stops.append(1), on_tempo=tempi.append)
    f.handle(START, [START], 0.0)
    t = feed(f, 48, 30, 0.0)                  # 30 BPM: two beats = 4 s, longer than the 1 s floor
    last = t - 60 / 30 / 24
    assert f.lost_after() == pytest.approx(4.0)
    assert not f.check(last + 3.9) and stops == []
    assert f.check(last + 4.1) and stops == [1] and f.bpm == 0.0
    assert f.check(last + 9.0) and stops == [1]        # silenced once
    n = len(frames)
    t = feed(f, 31, 120, last + 20.0)          # 20 s later the clock comes back at 120
    assert not f.lost and len(frames) >= n + 5
    assert f.bpm == pytest.approx(120, rel=1e-6)       # measured from after the gap only
    assert all(b == pytest.approx(30) or b == pytest.approx(120) for b in tempi), tempi   # none across the gap


def test_follower_fast_clock_is_lost_after_one_second():
    f = ClockFollower(4, on_frame=lambda t: None)
    t = feed(f, 48, 180, 0.0)
    last = t - 60 / 180 / 24
    assert f.lost_after() == 1.0
    assert not f.check(last + 0.9) and f.check(last + 1.1)


def test_follower_tempo_is_the_least_squares_line_through_the_last_beat():
    """On a jittery clock the tempo is the slope of a straight line fitted (numpy.polyfit) to the
    last 25 pulse times, at every pulse, long after the start (perf_counter is large)."""
    rng = np.random.default_rng(4)
    f = ClockFollower(4, on_frame=lambda t: None)
    times = 5000.0 + np.arange(200) * 60 / 120 / 24 + rng.uniform(-0.003, 0.003, 200)
    for n, t in enumerate(times):
        f.handle(CLOCK, [CLOCK], float(t))
        if n >= 24:
            slope = np.polyfit(np.arange(25), times[n - 24:n + 1] - times[n - 24], 1)[0]
            assert f.bpm == pytest.approx(60 / 24 / slope, rel=1e-9), n


def test_one_late_pulse_is_not_a_tempo_change():
    """A pulse 10 ms late (a busy machine between the DAW and us) at 120 BPM: the first-to-last
    span of the beat would read it as 122.4 then 117.7 BPM, and a recording would write both."""
    tempi = []
    f = ClockFollower(4, on_frame=lambda t: None, on_tempo=tempi.append)
    step = 60 / 120 / 24
    for n in range(120):
        f.handle(CLOCK, [CLOCK], n * step + (0.010 if n == 60 else 0.0))
    assert tempi[0] == pytest.approx(120) and all(abs(b - 120) < 0.6 for b in tempi), tempi


def run_clock(n_frames: int, **kwargs) -> tuple[InternalClock, list]:
    """Run an InternalClock until n_frames; the events ('f', deadline) and ('p',) in the order called."""
    events = []
    stop = threading.Event()

    def on_frame(t):
        events.append(("f", t))
        if sum(e[0] == "f" for e in events) == n_frames:
            stop.set()

    clock = InternalClock(on_frame=on_frame, **kwargs)
    clock.run(stop, start=time.perf_counter() + 0.005)
    return clock, events


@pytest.mark.parametrize("swing, share", [(50, 0.0), (66.7, 0.334), (75, 0.5), (60, 0.2)])
def test_internal_clock_swing_delays_off_beats_only(swing, share):
    dt = 0.01
    clock, events = run_clock(12, dt=dt, swing=swing)
    t = np.array([e[1] for e in events]) - clock.started
    k = np.arange(len(t))
    # on-beats (even frames) on the straight grid; off-beats (odd) share * dt late; from the start, no drift
    assert np.allclose(t, k * dt + (k % 2) * share * dt, atol=1e-9)


def test_internal_clock_swing_pulses_come_first_and_straight():
    """With clock out, the 24-a-beat pulses keep the straight grid and the swung off-beat frame
    comes after the pulses before its time (4.008 pulses late at 66.7 %: after the 5th pulse of its frame)."""
    events = []
    stop = threading.Event()
    start = time.perf_counter() + 0.005

    def on_frame(t):
        events.append(("f", t))
        if sum(e[0] == "f" for e in events) == 4:
            stop.set()

    clock = InternalClock(0.012, on_frame, on_pulse=lambda: events.append(("p", time.perf_counter())),
                          pulses_per_frame=12, swing=66.7)
    clock.run(stop, start=start)
    kinds = "".join(e[0] for e in events)
    # frame 0 after pulse 0; frame 1 (off-beat, due at pulse 16.008) after pulses 1..16; frame 2
    # after pulse 24; frame 3 after pulse 40
    assert kinds == "pf" + "p" * 16 + "f" + "p" * 8 + "f" + "p" * 16 + "f"
    pulses = np.array([e[1] for e in events if e[0] == "p"]) - start
    assert np.median(pulses - np.arange(len(pulses)) * 0.001) < 0.002   # straight, not moved by the swing


def follower_frame_pulses(steps_per_beat: int, swing: float, pulses: int, spp: int | None = None) -> list[int]:
    """The song positions (pulses since Start) at which a follower ticks frames."""
    at = []
    f = ClockFollower(steps_per_beat, on_frame=lambda t: at.append(f.position), swing=swing)
    f.handle(START, [START], 0.0)
    if spp is not None:
        f.handle(SPP, [SPP, spp, 0], 0.0)
    feed(f, pulses, 120, 0.0)
    return at


@pytest.mark.parametrize("steps, swing, lag", [(2, 50, 0), (2, 66.7, 4), (2, 75, 6), (2, 60, 2), (4, 66.7, 2),
                                               (1, 66.7, 8), (8, 66.7, 1), (8, 75, 2)])
def test_follower_swing_delays_off_beats_by_whole_pulses(steps, swing, lag):
    ppf = 24 // steps
    at = follower_frame_pulses(steps, swing, 96)
    k = np.arange(len(at))
    assert len(at) == 96 // ppf
    assert list(at) == list(k * ppf + (k % 2) * lag)


def test_follower_swing_off_beats_follow_the_song_position():
    """After Song Position Pointer to an off-beat (2 sixteenths = 12 pulses = frame 1 at 2 steps a
    beat), that frame is still swung: it waits for its 4 pulses; mid-frame (1 sixteenth), likewise."""
    assert follower_frame_pulses(2, 66.7, 30, spp=2) == [16, 24, 40]
    assert follower_frame_pulses(2, 66.7, 30, spp=1) == [16, 24]


def test_follower_swing_set_while_following_starts_with_the_next_pair():
    """Straight, then 75 asked mid-pair (pulse 30: after frame 2, the on-beat at 24): frame 3, the
    off-beat of that pair, stays straight (36); from the next pair the off-beats are 6 pulses late."""
    at = []
    f = ClockFollower(2, lambda t: at.append(f.position))
    f.handle(START, [START], 0.0)
    feed(f, 30, 120, 0.0)
    f.set_swing(75)
    feed(f, 66, 120, 1.0)
    assert at == [0, 12, 24, 36, 48, 66, 72, 90]
    assert f.swing == 75.0


def test_internal_clock_swing_set_while_running_starts_with_the_next_pair():
    ticks = []
    stop = threading.Event()
    clock = InternalClock(0.02, lambda t: ticks.append(t))

    def on_frame(t):
        ticks.append(t)
        if len(ticks) == 3:                  # during frame 2 (on-beat): frame 3 stays straight
            clock.set_swing(75)
        if len(ticks) == 8:
            stop.set()
    clock.on_frame = on_frame
    clock.run(stop, start=time.perf_counter() + 0.01)
    k = np.round((np.array(ticks) - ticks[0]) / 0.02 * 2) / 2    # in frames, to the half frame
    assert list(k) == [0, 1, 2, 3, 4, 5.5, 6, 7.5]

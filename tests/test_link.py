"""The Ableton Link clock through real parts: a second Link peer in its own process (aalink's own
session object, tests/linkpeer.py), `play --clock link` sending through a real JACK server, and a
receiver in this process. The peer writes its beat against perf_counter (CLOCK_MONOTONIC, one clock
for every process), so each note's arrival can be placed on the peer's own beat grid."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from jackd import Play, Receiver, arrived, note_ons, onset_groups, unmatched_notes

pytestmark = pytest.mark.skipif(not __import__("jackd").have_jack(), reason="needs jackd (Debian jackd2)")

PERIOD = 256 / 48000
PEER = Path(__file__).with_name("linkpeer.py")


class Peer:
    """tests/linkpeer.py as a subprocess: commands in, its timeline (perf_counter, beat, tempo,
    playing, peers) out, read on a thread."""

    def __init__(self, bpm: float, start_stop: bool = False):
        args = [sys.executable, str(PEER), str(bpm)] + (["--start-stop"] if start_stop else [])
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.rows: list[tuple[float, ...]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.perf_counter() + 10
        while not self.rows and time.perf_counter() < deadline:
            time.sleep(0.01)
        assert self.rows, "the Link peer did not start"

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.rows.append(tuple(float(x) for x in line.split()))

    def send(self, command: str) -> float:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return time.perf_counter()

    @property
    def last(self) -> tuple[float, ...]:
        return self.rows[-1]

    def beats_at(self, times) -> np.ndarray:
        """The peer's beat at each perf_counter time, interpolated between its samples (5 ms apart;
        within a sample interval the beat runs linearly at the tempo)."""
        rows = np.array(self.rows)
        return np.interp(times, rows[:, 0], rows[:, 1])

    def tempo_at(self, times) -> np.ndarray:
        rows = np.array(self.rows)
        return rows[np.searchsorted(rows[:, 0], times).clip(0, len(rows) - 1), 2]

    def __enter__(self) -> "Peer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(5)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
        self._reader.join(2)


@contextmanager
def linked_play(jack, weights, port: str, *args: str):
    """`play --clock link` (eighths, every note allowed) on the output PORT:out, connected to a
    receiver; yields (play, receiver). At the end a SIGINT that must exit 0; whatever happened, the
    process is gone and the receiver closed after."""
    rx = Receiver("rx" + port.removeprefix("lr"))
    play = None
    try:
        play = Play(jack, ["--weights", str(weights / "random.npz"), "--port", port, "--clock", "link",
                           "--steps-per-beat", "2", "--note-range", "21", "108", *args])
        jack.connect(f"{port}:out", rx.name)
        yield play, rx
        assert play.signal(signal.SIGINT) == 0, play.stderr
    finally:
        if play is not None:
            play.kill()
        rx.close()


def grid_error(peer: Peer, times, steps_per_beat: int) -> np.ndarray:
    """How late (s) each arrival is after the nearest step of the peer's grid (1/steps_per_beat
    of its beat), at the peer's tempo then."""
    b = peer.beats_at(times) * steps_per_beat
    return (b - np.round(b)) / steps_per_beat * 60.0 / peer.tempo_at(times)


def mean_step(times) -> float:
    """The mean interval between consecutive events (each on a grid step; none skipped)."""
    steps = np.diff(times)
    return float(np.sum(steps) / np.sum(np.round(steps / np.median(steps))))


def test_frames_and_clock_out_land_on_the_peers_grid_and_follow_its_tempo(jack, weights):
    with Peer(120) as peer, linked_play(jack, weights, "lr-link", "--seed", "1", "--clock-out") as (play, rx):
        assert "joined 1 peer(s) at 120.0 BPM" in play.stderr, play.stderr
        time.sleep(5)
        changed = peer.send("tempo 150")
        time.sleep(5)
    events = arrived(rx)
    onsets = np.array(onset_groups([t for t, _, _ in note_ons(events)]))
    pulses = np.array([t for t, m in events if m == [0xF8]])
    before = onsets[(onsets < changed)]
    after = onsets[onsets > changed + 60 / 120]                      # a beat after the peer's change
    assert len(before) >= 8 and len(after) >= 18, (len(before), len(after))
    for part in (before, after):
        late = grid_error(peer, part, 2)
        # a frame reaches the receiver within a JACK period or two of its step on the peer's grid
        assert -0.002 < np.median(late) < 2 * PERIOD + 0.002, np.round(late * 1e3, 1)
        assert np.percentile(np.abs(late), 90) < 3 * PERIOD, np.round(late * 1e3, 1)
    # the step (arrivals are on JACK periods: the mean over many steps, not single intervals)
    assert mean_step(after) == pytest.approx(60 / 150 / 2, abs=0.001)     # 200 ms eighths at 150
    assert mean_step(before) == pytest.approx(60 / 120 / 2, abs=0.001)
    pulses = pulses[pulses > changed + 60 / 120]
    late = grid_error(peer, pulses, 24)
    assert -0.002 < np.median(late) < 2 * PERIOD + 0.002                  # 24 pulses a beat, on the grid too
    assert mean_step(pulses) == pytest.approx(60 / 150 / 24, abs=0.0002)
    assert unmatched_notes(events) == []
    assert "all notes off" in play.stderr


def test_start_stop_sync_and_our_tempo_published_to_the_session(jack, weights):
    with linked_play(jack, weights, "lr-lss", "--bpm", "100", "--link-start-stop", "--seed", "2",
                     "--clock-out") as (play, rx):
        assert "first in the session, 100.0 BPM" in play.stderr and "waiting for the session's transport" \
            in play.stderr, play.stderr
        with Peer(120, start_stop=True) as peer:
            time.sleep(1.5)
            assert peer.last[2] == pytest.approx(100.0) and peer.last[4] == 1   # the session took our tempo
            silent_until = time.perf_counter()
            started = peer.send("start")
            time.sleep(4.5)
            stopped = peer.send("stop")
            time.sleep(1.5)
            restarted = peer.send("start")
            time.sleep(3.5)
    # the session stops when the peer's own transport does (its rows, 5 ms apart), which under
    # load can be well after the command was written to it: our stop is timed from there
    rows = np.array(peer.rows)
    session_stopped = rows[(rows[:, 0] > stopped) & (rows[:, 3] == 0), 0][0]
    events = arrived(rx)
    ons = [t for t, _, _ in note_ons(events)]
    assert not [t for t in ons if t < silent_until]                        # nothing while stopped
    # Link starts a shared transport on the next bar of the session (the quantum, 4 beats): we come
    # in on that bar, on the peer's grid
    first = min(t for t in ons if t > started)
    assert first - started < 4 * 60 / 100 + 0.05, first - started
    assert -0.002 < grid_error(peer, [first], 2)[0] < 2 * PERIOD + 0.002
    assert (peer.beats_at([first])[0] + 0.05) % 4 < 0.1
    # at the stop every note is released, and nothing sounds until the restart
    assert not [t for t in ons if session_stopped + 0.05 < t < restarted]
    sounding: dict[int, int] = {}
    for t, m in events:
        if t > session_stopped + 0.05:
            break
        if len(m) == 3 and m[0] & 0xF0 == 0x90 and m[2]:
            sounding[m[1]] = 1
        elif len(m) == 3 and (m[0] & 0xF0 == 0x80 or m[0] & 0xF0 == 0x90 and not m[2]):
            sounding.pop(m[1], None)
    assert sounding == {}
    assert [t for t in ons if t > restarted]                                # and plays again at the restart
    assert unmatched_notes(events) == []
    # clock out: Start with the first frame of each start, Stop at the session's stop and at the
    # end, pulses only while the transport plays
    starts = [t for t, m in events if m == [0xFA]]
    stops = [t for t, m in events if m == [0xFC]]
    pulses = np.array([t for t, m in events if m == [0xF8]])
    assert len(starts) == 2 and len(stops) == 2, (starts, stops)
    assert abs(starts[0] - first) < 0.002 and starts[1] > restarted
    assert stopped < stops[0] < session_stopped + 0.05 and stops[1] > restarted, \
        (session_stopped - stopped, stops[0] - session_stopped)
    assert not [t for t in pulses if stops[0] < t < starts[1]]
    playing = pulses[(pulses >= starts[0]) & (pulses < stops[0])]
    assert abs(len(playing) - (stops[0] - starts[0]) * 24 * 100 / 60) <= 2   # 24 a beat at 100 BPM


def test_swing_on_the_link_grid_and_set_while_playing(jack, weights):
    """Off-beat frames a third of a step late on the peer's grid at 66.7, on-beats on it; and the
    swing control moves it while playing (the OSC /swing address, from a real OSC client)."""
    from pythonosc.udp_client import SimpleUDPClient
    with Peer(120) as peer, linked_play(jack, weights, "lr-lsw", "--seed", "3", "--swing", "66.7",
                                        "--osc-port", "9123") as (play, rx):
        time.sleep(5)
        changed = time.perf_counter()
        SimpleUDPClient("127.0.0.1", 9123).send_message("/live-rnnrbm/swing", 50.0)
        time.sleep(4)
    onsets = np.array(onset_groups([t for t, _, _ in note_ons(arrived(rx))]))
    for part, share in ((onsets[onsets < changed], 1 / 3), (onsets[onsets > changed + 1.0], 0.0)):
        steps = peer.beats_at(part) * 2
        k = np.floor(steps + 0.1).astype(int)                 # each onset's step (swing < 1/2 a step)
        late = (steps - k) / 2 * 60 / 120                      # after its step on the grid, in seconds
        on, off = late[k % 2 == 0], late[k % 2 == 1]
        assert len(on) >= 4 and len(off) >= 4, (len(on), len(off))
        assert -0.002 < np.median(on) < 2 * PERIOD + 0.002, np.round(late * 1e3, 1)
        assert share * 0.25 - 0.002 < np.median(off) < share * 0.25 + 2 * PERIOD + 0.002, np.round(late * 1e3, 1)

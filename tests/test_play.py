"""`live-rnnrbm play` through real MIDI ports: a JACK server with the dummy driver, the product as a
subprocess, and this process as the other clients (receiver, player, clock).

The product is always started before this process opens its clients (see tests/jackd.py).
Timing tolerances are generous: the figures themselves are measured by benchmarks/bench_timing.py.
"""
from __future__ import annotations

import os
import signal
import time

import mido
import numpy as np
import pytest

from jackd import (REPO, JackServer, Play, Receiver, Sender, arrived, check_parts, following_clock, have_jack,
                   heard_at_next_tick, listening_args, note_ons, onset_groups, send_clock, sleep_until, unmatched_notes)

pytestmark = pytest.mark.skipif(not have_jack(), reason="needs jackd (Debian jackd2)")


def frame_period(ticks: list[float], guess: float) -> float:
    """The frame period fitted to onset times (each a whole number of frames after the first)."""
    n = np.round((np.array(ticks) - ticks[0]) / guess)
    return float(np.polyfit(n, ticks, 1)[0])


def test_a_signal_before_the_duration_ends_the_process_at_once(jack, weights):
    """--duration 60 stopped by Ctrl-C after a few seconds: the process exits then, not when the
    60 s would have run out (the duration's timer must not keep it alive)."""
    play = Play(jack, ["--weights", str(weights / "random.npz"), "--port", "lr-dur", "--duration", "60",
                       "--seed", "1"])
    time.sleep(3)
    t0 = time.monotonic()
    assert play.signal(signal.SIGINT, timeout=10) == 0, play.stderr
    assert time.monotonic() - t0 < 10
    assert "stopped (interrupted)" in play.stderr, play.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_internal_clock_grid_and_every_note_off_on_signal(jack, weights, sig):
    dt = 60 / 240 / 4   # 62.5 ms frames
    play = Play(jack, ["--weights", str(weights / "random.npz"), "--port", "lr-grid", "--bpm", "240",
                       "--steps-per-beat", "4", "--max-polyphony", "6", "--seed", "1", "--note-range", "21", "108"])
    rx = Receiver("rx-grid")
    try:
        jack.connect("lr-grid:out", rx.name)
        time.sleep(2.5)
        assert play.signal(sig) == 0, play.stderr
        time.sleep(0.2)
    finally:
        rx.close()
    ons = note_ons(rx.events)
    assert ons, "no notes arrived"
    # the clock and the frame worker asked for real-time scheduling; as root the OS grants it
    if os.geteuid() == 0:
        assert "real-time scheduling: on" in play.stderr, play.stderr
    else:
        assert "real-time scheduling:" in play.stderr, play.stderr
    ticks = onset_groups([t for t, *_ in ons])
    assert len(ticks) >= 25, ticks
    ioi = np.diff(ticks)
    # on the grid: every onset a whole number of frames after the first, none drifting
    n = np.round((np.array(ticks) - ticks[0]) / dt)
    resid = np.array(ticks) - ticks[0] - n * dt
    # JACK delivers at period starts (5.3 ms here), so single intervals are quantized: compare the
    # fitted frame period, and the spread around the grid
    slope = np.polyfit(n, ticks, 1)[0]
    assert abs(slope - dt) < 0.0005, slope
    assert np.all(ioi > dt / 2), ioi
    assert np.max(np.abs(resid - np.median(resid))) < 0.025, resid
    # at most 6 notes at once, never a note-on for a note already sounding
    sounding: set = set()
    for _, m in rx.events:
        if len(m) == 3 and m[0] & 0xE0 == 0x80:
            if m[0] & 0xF0 == 0x90 and m[2] > 0:
                assert m[1] not in sounding
                sounding.add(m[1])
                assert len(sounding) <= 6
            else:
                sounding.discard(m[1])
    assert unmatched_notes(rx.events) == []
    ccs = [tuple(m[1:]) for _, m in rx.events if len(m) == 3 and m[0] == 0xB0]
    assert ccs[-3:] == [(64, 0), (123, 0), (120, 0)], ccs


@pytest.mark.parametrize("parts, channel", [("mbc", 1), ("satb", 3)])
def test_parts_each_on_its_channel_and_every_note_off_on_its_own(jack, weights, tmp_path, parts, channel):
    """--parts: a model that plays a new chord of up to 6 notes every frame, split by role. In play's
    own recording (every message sent, from the first frame on), each note-on is on the channel of its
    note's role in the frame sounding on all channels at its onset, and a note that goes on sounding
    keeps its channel when its role changes (which happens). What arrives through JACK is the same,
    channels and all; after SIGINT every note-on has its note-off on its own channel, and every
    part's channel gets CC64=0, CC123 and CC120."""
    name = f"lr-{parts}"
    rec = tmp_path / f"{parts}.mid"
    play = Play(jack, ["--weights", str(weights / "random.npz"), "--port", name, "--bpm", "240",
                       "--steps-per-beat", "4", "--max-polyphony", "6", "--seed", "6", "--note-range", "48", "72",
                       "--parts", parts, "--channel", str(channel), "--record", str(rec)])
    rx = Receiver("rx-" + name)
    try:
        jack.connect(f"{name}:out", rx.name)
        time.sleep(2.5)
        assert play.signal(signal.SIGINT) == 0, play.stderr
        time.sleep(0.2)
    finally:
        rx.close()
    n, first = (3 if parts == "mbc" else 4), channel - 1
    t, recorded = 0.0, []
    for m in mido.MidiFile(rec):          # all tracks merged, times in seconds
        t += m.time
        if m.type in ("note_on", "note_off"):
            recorded.append((t, m.bytes()))
    # a tick's messages are recorded at its time; frames are 62.5 ms apart (close's note-offs follow)
    ticks: list[list] = []
    for k, (t, m) in enumerate(recorded):
        if k == 0 or t - recorded[k - 1][0] > 0.02:
            ticks.append([])
        ticks[-1].append(m)
    result = check_parts(ticks, parts, first)
    assert len(ticks) >= 25, len(ticks)
    assert result["problems"] == [], result["problems"][:5]
    assert result["left"] == []
    assert sorted(result["onsets"]) == list(range(n)), result["onsets"]     # every part played
    assert result["kept"] > 0, "no note went on sounding through a change of its role"
    # the receiver joined after play started: what it got is the recording's end
    received = [m for _, m in rx.events if len(m) == 3 and m[0] & 0xE0 == 0x80]
    assert len(received) > len(recorded) / 2 and received == [m for _, m in recorded][-len(received):]
    assert unmatched_notes(rx.events) == []
    ccs = [(m[0] & 0x0F, m[1], m[2]) for _, m in rx.events if len(m) == 3 and m[0] & 0xF0 == 0xB0]
    for ch in range(first, first + n):
        assert [c[1:] for c in ccs if c[0] == ch] == [(64, 0), (123, 0), (120, 0)], ccs
    assert {c[0] for c in ccs} == set(range(first, first + n))


def test_external_clock_two_tempi_stop_and_continue(jack, weights):
    with following_clock(jack, weights, "ext", "--steps-per-beat", "4") as (play, rx, tx):
        time.sleep(0.1)
        t = time.perf_counter() + 0.05
        t = send_clock(tx, 120, 2, t)          # clock before Start: no notes
        t_start = t
        sleep_until(t)
        tx.send([0xFA])                         # Start
        t = send_clock(tx, 120, 8, t)           # 8 beats at 120: frames every 125 ms
        t_change = t
        t = send_clock(tx, 180, 8, t)           # 8 beats at 180: frames every 83.3 ms
        t_stop = t
        tx.send([0xFC])                         # Stop: silence, no frames while stopped
        t = send_clock(tx, 180, 4, t)
        t_cont = t
        tx.send([0xFB])                         # Continue
        t = send_clock(tx, 180, 4, t)
        time.sleep(0.1)
        assert play.signal(signal.SIGTERM) == 0, play.stderr
        time.sleep(0.2)
    # events against this process's clock (arrival times), to compare with the pulses sent
    ev = list(zip(rx.arrivals, [m for _, m in rx.events]))
    on_times = [a for a, m in ev if len(m) == 3 and m[0] & 0xF0 == 0x90 and m[2] > 0]
    assert not [a for a in on_times if a < t_start], "notes before Start"
    slow = onset_groups([a for a in on_times if t_start < a < t_change - 0.01])
    fast = onset_groups([a for a in on_times if t_change + 0.2 < a < t_stop - 0.01])
    # the mean frame interval (first to last onset) is exact even though JACK quantizes each one
    assert abs(frame_period(slow, 0.125) - 0.125) < 0.002, np.diff(slow)
    assert abs(frame_period(fast, 0.0833) - 0.0833) < 0.002, np.diff(fast)
    assert 28 <= len(slow) <= 33 and len(fast) >= 24, (len(slow), len(fast))
    # Stop: every note off right away, nothing until Continue; then playing again
    during_stop = [a for a in on_times if t_stop + 0.02 < a < t_cont]
    assert during_stop == []
    msgs_until_cont = [m for a, m in ev if a < t_cont]
    assert unmatched_notes([(0, m) for m in msgs_until_cont]) == []
    assert len([a for a in on_times if a > t_cont]) >= 5
    assert unmatched_notes(rx.events) == []


def play_notes_in(jack, weights, mode: str, name: str, note: int = 60, extra: tuple[str, ...] = ()):
    play = Play(jack, listening_args(weights, name, mode) + list(extra))
    rx = Receiver("rx-" + name)
    tx = Sender("tx-" + name)
    try:
        jack.connect(f"{name}:out", rx.name)
        jack.connect(tx.name, f"{name}-in:in")
        time.sleep(1.0)                         # the model alone: silent
        t_on = time.perf_counter()
        tx.send([0x90, note, 100])
        time.sleep(1.0)
        t_off = time.perf_counter()
        tx.send([0x80, note, 0])
        time.sleep(0.6)
        assert play.signal(signal.SIGINT) == 0, play.stderr
        time.sleep(0.2)
    finally:
        rx.close()
        tx.close()
    ons = [(a, note) for a, note, _ in note_ons(arrived(rx))]
    assert unmatched_notes(rx.events) == []
    return ons, t_on, t_off, play.stderr


def test_follow_player_note_changes_what_the_model_plays(jack, weights):
    ons, t_on, t_off, _ = play_notes_in(jack, weights, "follow", "lr-follow")
    assert not [n for a, n in ons if a < t_on], "the model should be silent before the player plays"
    heard = [a for a, n in ons if n == 72]
    assert heard, ons
    # heard at the next tick: within one frame (125 ms) and a little
    assert heard[0] - t_on < 0.125 + 0.03, heard[0] - t_on
    assert not [n for a, n in ons if n in (60, 64, 67)], "follow mode does not clamp nor echo"
    assert not [a for a, n in ons if a > t_off + 0.3]


def test_harmonize_fills_in_around_the_player(jack, weights):
    ons, t_on, t_off, _ = play_notes_in(jack, weights, "harmonize", "lr-harm")
    assert not [n for a, n in ons if a < t_on]
    first = {n: a for a, n in reversed(ons)}
    assert 64 in first and 67 in first, ons     # the chord around the clamped 60 ...
    assert first[64] - t_on < 0.125 + 0.03
    assert 60 not in first, "the player's own note is not echoed without --thru"


def test_told_the_key_it_harmonizes_in_that_key(jack, weights):
    """--key D: the player's D4 reaches the model as C4, and the model's C-E-G comes back as D-F#-A."""
    ons, t_on, _, stderr = play_notes_in(jack, weights, "harmonize", "lr-key", note=62, extra=("--key", "D"))
    assert "in D major: the model hears and plays in C, 2 semitone(s) down from here" in stderr, stderr
    first = {n: a for a, n in reversed(ons)}
    assert 66 in first and 69 in first, ons
    assert not {60, 64, 67} & set(first), ons
    assert first[66] - t_on < 0.125 + 0.03


def test_every_played_note_is_heard_at_the_next_tick(jack, weights, tmp_path):
    """Presses at random phases of the frame (follow mode): each one that reaches the engine before
    a tick is answered at that tick, judged from play's own recording (the player track stamps a
    note's arrival at the input callback, the model track each tick's deadline)."""
    rec = tmp_path / "lat.mid"
    play = Play(jack, listening_args(weights, "lr-lat") + ["--record", str(rec)])
    tx = Sender("tx-lat")
    try:
        jack.connect(tx.name, "lr-lat-in:in")
        time.sleep(0.5)
        rng = np.random.default_rng(1)
        for _ in range(12):  # with the engine waking only at its 50 ms poll, 1 in 5 would miss
            time.sleep(rng.uniform(0.2, 0.45))
            tx.send([0x90, 60, 100])
            time.sleep(0.3)
            tx.send([0x80, 60, 0])
        assert play.signal(signal.SIGINT) == 0, play.stderr
    finally:
        tx.close()
    r = heard_at_next_tick(rec, 0.125)
    assert r["presses"] == 12, r
    # a note that arrives within a hair of the tick may fairly miss it; none further away may
    assert all(m < 1.5 for m in r["misses_before_tick_ms"]), r


def test_bad_preset_is_a_clear_error(tmp_path):
    import subprocess
    import sys
    bad = tmp_path / "bad.yaml"
    bad.write_text("bpm: 120\nvelocty: 80\n")
    r = subprocess.run([sys.executable, "-m", "live_rnnrbm.cli", "play", "--preset", str(bad)],
                       capture_output=True, text=True, timeout=30, cwd=str(REPO))
    assert r.returncode == 2
    assert "bad.yaml" in r.stderr and "line 2" in r.stderr and "velocty" in r.stderr, r.stderr


def test_no_jack_server_is_a_clear_error(tmp_path):
    import os
    import subprocess
    import sys
    env = dict(JackServer().env, JACK_DEFAULT_SERVER=f"nothere-{os.getpid()}")
    r = subprocess.run([sys.executable, "-m", "live_rnnrbm.cli", "play", "--backend", "jack"],
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 2
    assert "JACK server" in r.stderr and "nothere" in r.stderr, r.stderr


def test_ports_lists_exact_names(jack):
    import subprocess
    import sys
    tx = Sender("lr-listed")
    try:
        time.sleep(0.2)
        r = subprocess.run([sys.executable, "-m", "live_rnnrbm.cli", "ports", "--backend", "jack"],
                           capture_output=True, text=True, timeout=30, env=jack.env)
    finally:
        tx.close()
    assert r.returncode == 0, r.stderr
    inputs = r.stdout.split("outputs")[0]
    assert "  lr-listed:out\n" in inputs, r.stdout


def test_cc_pause_silences_and_resumes_and_panic_sends_all_notes_off(jack, weights):
    """The default preset maps CC 23 to pause and CC 24 to panic (buttons: act on the press)."""
    frame = 60 / 120 / 4
    play = Play(jack, ["--weights", str(weights / "random.npz"), "--port", "lr-cc", "--input", "lr-cc-in",
                       "--mode", "off", "--bpm", "120", "--steps-per-beat", "4", "--seed", "3",
                       "--note-range", "21", "108", "--max-polyphony", "4"])
    rx = Receiver("rx-cc")
    tx = Sender("tx-cc")

    def press(cc: int) -> float:
        t = time.perf_counter()
        tx.send([0xB0, cc, 127])
        tx.send([0xB0, cc, 0])
        return t

    try:
        jack.connect("lr-cc:out", rx.name)
        jack.connect(tx.name, "lr-cc-in:in")
        time.sleep(1.0)
        t_pause = press(23)
        time.sleep(1.2)
        t_resume = press(23)
        time.sleep(1.0)
        t_panic = press(24)
        time.sleep(0.6)
        assert play.signal(signal.SIGINT) == 0, play.stderr
        time.sleep(0.2)
    finally:
        rx.close()
        tx.close()
    events = arrived(rx)
    ons = [a for a, _, _ in note_ons(events)]
    assert [a for a in ons if a < t_pause], "the model plays before the pause"
    settle = 3 * frame  # the frame already computed may still sound, then silence
    assert not [a for a in ons if t_pause + settle < a < t_resume], "no new notes while paused"
    left = unmatched_notes([(a, m) for a, m in events if a < t_resume])
    assert left == [], f"notes left sounding while paused: {left}"
    assert [a for a in ons if t_resume < a < t_panic], "playing again after the second press"
    after_panic = [tuple(m[1:]) for a, m in events if a > t_panic and len(m) == 3 and m[0] == 0xB0]
    assert after_panic.count((123, 0)) >= 2 and after_panic.count((120, 0)) >= 2, after_panic  # panic, then the stop
    assert [a for a in ons if t_panic + settle < a], "panic silences, then the model plays on"
    assert unmatched_notes(rx.events) == []


def test_terminal_keys_space_pauses_and_q_quits_with_every_note_off(jack, weights):
    import os
    import pty
    frame = 60 / 120 / 4
    master, slave = pty.openpty()  # a real terminal for the product's stdin
    play = Play(jack, ["--weights", str(weights / "random.npz"), "--port", "lr-keys", "--bpm", "120",
                       "--steps-per-beat", "4", "--seed", "4", "--note-range", "21", "108", "--max-polyphony", "4"],
                stdin=slave)
    os.close(slave)
    rx = Receiver("rx-keys")
    try:
        jack.connect("lr-keys:out", rx.name)
        time.sleep(1.0)
        t_pause = time.perf_counter()
        os.write(master, b" ")
        time.sleep(1.0)
        os.write(master, b"q")
        assert play.proc.wait(10) == 0, play.stderr
        time.sleep(0.2)
    finally:
        rx.close()
        os.close(master)
    ons = [a for a, _, _ in note_ons(arrived(rx))]
    assert [a for a in ons if a < t_pause], "the model plays before the key"
    assert not [a for a in ons if t_pause + 3 * frame < a], "space pauses (and q ends) the playing"
    assert unmatched_notes(rx.events) == []
    ccs = [tuple(m[1:]) for _, m in rx.events if len(m) == 3 and m[0] == 0xB0]
    assert ccs[-3:] == [(64, 0), (123, 0), (120, 0)], ccs


OSC_CLIENT = """
import json, socket, sys, time
from pythonosc.udp_client import SimpleUDPClient
port = int(sys.argv[1])
client = SimpleUDPClient("127.0.0.1", port)
raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for line in sys.stdin:
    address, args = json.loads(line)
    if address == "garbage":
        raw.sendto(bytes.fromhex(args), ("127.0.0.1", port))
    else:
        client.send_message(address, args)
    print(time.perf_counter(), flush=True)   # CLOCK_MONOTONIC: the test's clock too
"""


class OscClient:
    """A real OSC client in another process (python-osc's SimpleUDPClient): each send() is one
    message, and returns when it has left, with the time it left."""

    def __init__(self, port: int):
        import subprocess
        import sys
        self.proc = subprocess.Popen([sys.executable, "-c", OSC_CLIENT, str(port)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def send(self, address: str, *args) -> float:
        import json
        self.proc.stdin.write(json.dumps([address, list(args)]) + "\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def garbage(self, data: bytes) -> float:
        import json
        self.proc.stdin.write(json.dumps(["garbage", data.hex()]) + "\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def free_udp_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sounding_counts(events, start: float, end: float, step: float = 0.01) -> list[int]:
    """How many notes sound, every `step` seconds from start to end (events stamped by arrival)."""
    counts, sounding = [], set()
    t = start
    for a, m in events:
        while t <= a and t < end:
            if t >= start:
                counts.append(len(sounding))
            t += step
        if len(m) == 3 and m[0] & 0xE0 == 0x80:
            if m[0] & 0xF0 == 0x90 and m[2] > 0:
                sounding.add((m[0] & 0x0F, m[1]))
            else:
                sounding.discard((m[0] & 0x0F, m[1]))
        elif len(m) == 3 and m[0] & 0xF0 == 0xB0 and m[1] in (120, 123):
            sounding.clear()
    return counts


def test_osc_from_another_process_changes_every_control(jack, weights):
    """--osc-port: an OSC client in another process pauses and resumes the model, makes it dense
    then sparse, sends panic, sets mode and temperature and asks for the status, which comes back to
    a UDP socket of this process; a garbage datagram and a wrong-typed message do not stop it, and
    the closing line counts them."""
    import socket
    from pythonosc.osc_message import OscMessage
    frame = 60 / 120 / 4
    port = free_udp_port()
    play = Play(jack, ["--weights", str(weights / "random.npz"), "--port", "lr-osc", "--bpm", "120",
                       "--steps-per-beat", "4", "--seed", "7", "--note-range", "21", "108",
                       "--max-polyphony", "88", "--osc-port", str(port)])
    rx = Receiver("rx-osc")
    osc = OscClient(port)
    status = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    status.bind(("127.0.0.1", 0))
    status.settimeout(5)
    try:
        jack.connect("lr-osc:out", rx.name)
        time.sleep(1.0)
        t_pause = osc.send("/live-rnnrbm/pause")
        time.sleep(1.2)
        t_resume = osc.send("/live-rnnrbm/pause")
        time.sleep(1.0)
        t_dense = osc.send("/live-rnnrbm/density", 8.0)
        time.sleep(1.5)
        t_sparse = osc.send("/live-rnnrbm/density", 0.125)
        time.sleep(1.5)
        t_panic = osc.send("/live-rnnrbm/panic")
        time.sleep(0.5)
        osc.garbage(b"\x00\x01 not OSC")
        osc.send("/live-rnnrbm/temperature", "hot")
        osc.send("/live-rnnrbm/mode", "harmonize")
        osc.send("/live-rnnrbm/temperature", 2.5)
        osc.send("/live-rnnrbm/status", status.getsockname()[1])
        reply = OscMessage(status.recvfrom(4096)[0])
        time.sleep(0.3)
        assert play.proc.poll() is None, play.stderr
        assert play.signal(signal.SIGINT) == 0, play.stderr
        time.sleep(0.2)
    finally:
        osc.close()
        status.close()
        rx.close()
    assert f"live-rnnrbm: OSC on 127.0.0.1:{port}" in play.stderr, play.stderr
    events = arrived(rx)
    ons = [a for a, _, _ in note_ons(events)]
    settle = 3 * frame
    assert [a for a in ons if a < t_pause], "the model plays before the pause"
    assert not [a for a in ons if t_pause + settle < a < t_resume], "no new notes while paused"
    assert [a for a in ons if t_resume < a < t_dense], "playing again after the second pause"
    # this model sounds each note about half the time: about 44 of the 88 at density 1
    base = np.mean(sounding_counts(events, t_resume + 0.4, t_dense))
    dense = np.mean(sounding_counts(events, t_dense + 0.4, t_sparse))
    sparse = np.mean(sounding_counts(events, t_sparse + 0.4, t_panic))
    assert dense > 1.3 * base and sparse < base / 2, (base, dense, sparse)
    after_panic = [tuple(m[1:]) for a, m in events if a > t_panic and len(m) == 3 and m[0] == 0xB0]
    assert after_panic.count((123, 0)) >= 2 and after_panic.count((120, 0)) >= 2, after_panic  # panic, then the stop
    assert reply.address == "/live-rnnrbm/status"
    temperature, density, mode, paused, frames, preset, parts, swing = reply.params
    assert (temperature, density, mode, paused) == (2.5, 0.125, "harmonize", 0), reply.params
    assert (preset, parts, swing) == ("default", "off", 50.0), reply.params
    assert frames > 40, reply.params
    assert unmatched_notes(rx.events) == []
    closing = [line for line in play.lines if line.startswith("live-rnnrbm: stopped")]
    assert len(closing) == 1 and "2 bad OSC message(s) dropped" in closing[0], play.stderr


def test_osc_port_taken_is_a_clear_error(jack, weights):
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        play = Play(jack, ["--weights", str(weights / "random.npz"), "--port", "lr-osc-taken",
                           "--osc-port", str(port)], ready=None)
        assert play.wait(30) == 2, play.stderr
    assert f"error: cannot listen for OSC on 127.0.0.1:{port}: Address already in use" in play.stderr, play.stderr
    assert "Traceback" not in play.stderr


def test_clock_out_forwards_the_daws_clock_while_following_it(jack, weights):
    """--clock with --clock-out: the DAW is jack_midi_clock (120 BPM) rolled by jack_transport, and a
    second receiver hears it directly. Every pulse it sends while we play comes out of our output
    too, at its rate, with no gap longer than a pulse and a JACK period or two while our notes go
    out between them; its Start arrives before our first note, and quitting with SIGINT while the
    transport rolls ends with our Stop after the last note-off."""
    import subprocess
    bpm, period = 120.0, 256 / 48000
    pulse = 60.0 / bpm / 24
    play = Play(jack, ["--weights", str(weights / "random.npz"), "--port", "lr-co", "--clock", "lr-co-clock",
                       "--clock-out", "--steps-per-beat", "4", "--seed", "8", "--note-range", "21", "108"])
    daw = subprocess.Popen(["jack_midi_clock", "-b", str(bpm), "-B"], env=jack.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rx = Receiver("rx-co")
    direct = Receiver("rx-co-daw")
    try:
        deadline = time.monotonic() + 10
        while True:   # jack_midi_clock's port exists once it has started
            try:
                jack.connect("jack_midi_clock:mclk_out", "lr-co-clock:clock")
                break
            except subprocess.CalledProcessError:
                assert time.monotonic() < deadline, "jack_midi_clock did not start"
                time.sleep(0.1)
        jack.connect("jack_midi_clock:mclk_out", direct.name)
        jack.connect("lr-co:out", rx.name)
        time.sleep(0.2)
        subprocess.run(["jack_transport"], input="play\nquit\n", env=jack.env, capture_output=True, timeout=10,
                       text=True, check=True)
        time.sleep(3.0)
        t_quit = time.perf_counter()
        assert play.signal(signal.SIGINT) == 0, play.stderr
        time.sleep(0.2)
        subprocess.run(["jack_transport"], input="stop\nquit\n", env=jack.env, capture_output=True, timeout=10,
                       text=True)
        time.sleep(0.1)
    finally:
        rx.close()
        direct.close()
        daw.terminate()
        daw.wait(5)
    msgs = [m for _, m in rx.events]
    starts = [i for i, m in enumerate(msgs) if m == [0xFA]]
    stops = [i for i, m in enumerate(msgs) if m == [0xFC]]
    notes = [i for i, m in enumerate(msgs) if len(m) == 3 and m[0] & 0xE0 == 0x80]
    ons = [i for i in notes if msgs[i][0] & 0xF0 == 0x90 and msgs[i][2] > 0]
    assert len(starts) == 1 and len(ons) > 20, (starts, len(ons))
    assert starts[0] < ons[0], "the DAW's Start comes out before our first note"
    assert stops == [len(msgs) - 1] and stops[0] > notes[-1], "our Stop, once, after the last note-off"
    assert unmatched_notes(rx.events) == []
    # every pulse the DAW sent while we ran came out of us, at its rate (JACK's own timestamps)
    ours = [t for t, m in rx.events if m == [0xF8]]
    sent = [a for a, (_, m) in zip(direct.arrivals, direct.events) if m == [0xF8] and a < t_quit]
    ours_by_arrival = [a for a, (_, m) in zip(rx.arrivals, rx.events) if m == [0xF8] and a < t_quit]
    assert len(sent) > 2.5 / pulse, len(sent)
    assert abs(len(ours_by_arrival) - len(sent)) <= 2, (len(ours_by_arrival), len(sent))
    # jack_midi_clock itself leaves a pulse out now and then on a loaded machine (its own stream, heard
    # directly, shows the two-pulse gap): what we forward is measured against what it sent in the
    # same stretch (placed by arrival: the two receivers' JACK timestamps start at their own first
    # message)
    daw = [(t, a) for a, (t, m) in zip(direct.arrivals, direct.events) if m == [0xF8]]
    ours_at = [a for a, (_, m) in zip(rx.arrivals, rx.events) if m == [0xF8]]

    def daw_pulses(first: float, last: float) -> np.ndarray:
        return np.array([t for t, a in daw if first - 0.01 <= a <= last])

    span = ours[-1] - ours[0]
    same = daw_pulses(ours_at[0], ours_at[-1])
    left_out = round((same[-1] - same[0]) / pulse) - (len(same) - 1)
    assert abs((len(ours) - 1) + left_out - span / pulse) <= 1 + period / pulse, (len(ours), span / pulse, left_out)
    # no pulse held back by the notes: the frames' notes went out between pulses that kept time
    first_on_t, last_on_t = rx.events[ons[0]][0], rx.events[ons[-1]][0]
    during = [t for t in ours if first_on_t <= t <= last_on_t]
    at = [a for a, (t, m) in zip(rx.arrivals, rx.events) if m == [0xF8] and first_on_t <= t <= last_on_t]
    its_gap = max(pulse, np.max(np.diff(daw_pulses(at[0], at[-1]))))
    assert len(during) > 2 / pulse and np.max(np.diff(during)) < its_gap + 2 * period, (np.max(np.diff(during)), its_gap)
    # and the frames keep the clock's grid: a sixteenth (6 pulses) apart
    ticks = onset_groups([rx.arrivals[i] for i in ons])
    assert abs(frame_period(ticks, 6 * pulse) - 6 * pulse) < 0.002, np.diff(ticks)

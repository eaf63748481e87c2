"""Switching while playing, through real JACK ports: the preset (by CC, OSC and a key), the parts
(OSC) and the swing (OSC), with the product as a subprocess, a real CC sender, a real OSC client in
another process and a receiver recording what comes out."""
from __future__ import annotations

import os
import pty
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage

from jackd import (REPO, Play, Receiver, Sender, arrived, following_clock, onset_groups, send_clock, start_clock,
                   unmatched_notes)
from test_play import OscClient, free_udp_port
from test_swing import frame_numbers, off_beat_lateness

from live_rnnrbm.data.weights import save_weights
from live_rnnrbm.live.clock import swing_pulses
from live_rnnrbm.model import RnnRbm

pytestmark = pytest.mark.skipif(not __import__("jackd").have_jack(), reason="needs jackd (Debian jackd2)")

PERIOD = 256 / 48000


def notes(events):
    """(arrival, channel, note, on) of every note message."""
    return [(a, m[0] & 0x0F, m[1], m[0] & 0xF0 == 0x90 and m[2] > 0) for a, m in events
            if len(m) == 3 and m[0] & 0xE0 == 0x80]


def one_sounding_at_a_time(events) -> list:
    """Problems: a note-on for a note already sounding (on any channel)."""
    sounding, problems = {}, []
    for _, ch, note, on in notes(events):
        if on:
            if note in sounding:
                problems.append((note, ch, sounding[note]))
            sounding[note] = ch
        elif sounding.get(note) == ch:
            del sounding[note]
    return problems


def status_of(osc: OscClient, sock: socket.socket) -> list:
    osc.send("/live-rnnrbm/status", sock.getsockname()[1])
    msg = OscMessage(sock.recvfrom(4096)[0])
    assert msg.address == "/live-rnnrbm/status"
    return msg.params


def quit_play(play: Play) -> None:
    """SIGINT, as Ctrl-C: exit 0; then a moment for the last note-offs to arrive."""
    assert play.signal(signal.SIGINT) == 0, play.stderr
    time.sleep(0.2)


def connected(jack, name: str, port: int | None = None) -> tuple[Receiver, Sender, OscClient | None]:
    """A receiver on play's output NAME:out, a CC sender into its input NAME-in:in, and an OSC
    client to UDP ``port`` (None: none)."""
    rx, tx = Receiver("rx-" + name), Sender("tx-" + name)
    osc = OscClient(port) if port is not None else None
    jack.connect(f"{name}:out", rx.name)
    jack.connect(tx.name, f"{name}-in:in")
    return rx, tx, osc


def press(tx: Sender, cc: int) -> float:
    """A button: 127 then 0; the time it was pressed."""
    t = time.perf_counter()
    tx.send([0xB0, cc, 127])
    tx.send([0xB0, cc, 0])
    return t


def close_all(*clients) -> None:
    for client in clients:
        if client is not None:
            client.close()


@pytest.fixture
def udp():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_switching_presets_by_cc_osc_and_key_keeps_the_beat(jack, weights, tmp_path, udp):
    """Two presets of different weights (10 and 6 RNN units: the state is reset), note ranges
    (40..59, 60..79) and channels (1, 2). A CC 26 press, an OSC /live-rnnrbm/preset "low" and the
    key ] switch between them while the internal clock runs at 62.5 ms a frame: after each switch
    only the new preset's notes start, on its channel; the old preset's notes are released on their
    own channel; the frames go on with no gap longer than a frame (and a JACK period or two); the
    status reply names the preset playing."""
    other = tmp_path / "other.npz"
    save_weights(RnnRbm(n_hidden=20, n_hidden_recurrent=6, seed=5), other, steps_per_beat=4, bpm=120)
    low, high = tmp_path / "low.yaml", tmp_path / "high.yaml"
    low.write_text(f"weights: {weights / 'random.npz'}\nnote_range: [40, 59]\nchannel: 1\nk: 5\n")
    high.write_text(f"weights: {other}\nnote_range: [60, 79]\nchannel: 2\nk: 5\nbpm: 60\n")
    dt = 60 / 240 / 4
    port = free_udp_port()
    master, slave = pty.openpty()
    play = Play(jack, ["--preset", str(low), "--switch", str(low), str(high), "--port", "lr-sw",
                       "--input", "lr-sw-in", "--mode", "off", "--bpm", "240", "--steps-per-beat", "4",
                       "--seed", "3", "--osc-port", str(port)], stdin=slave)
    os.close(slave)
    rx, tx, osc = connected(jack, "lr-sw", port)
    try:
        time.sleep(1.0)
        first = status_of(osc, udp)
        t_cc = press(tx, 26)
        time.sleep(1.0)
        t_osc = osc.send("/live-rnnrbm/preset", "low")
        time.sleep(1.0)
        t_key = time.perf_counter()
        os.write(master, b"]")
        time.sleep(1.0)
        last = status_of(osc, udp)
        quit_play(play)
    finally:
        close_all(osc, rx, tx)
        os.close(master)
    assert first[5] == "low" and last[5] == "high", (first, last)
    events = arrived(rx)
    settle = 3 * dt     # the frame already computed may still start; then the new preset's
    segments = [(0, t_cc, 0, range(40, 60)), (t_cc + settle, t_osc, 1, range(60, 80)),
                (t_osc + settle, t_key, 0, range(40, 60)), (t_key + settle, float("inf"), 1, range(60, 80))]
    for start, end, channel, span in segments:
        ons = [(ch, n) for a, ch, n, on in notes(events) if on and start < a < end]
        assert len(ons) > 10, (start, ons)
        assert {ch for ch, _ in ons} == {channel} and all(n in span for _, n in ons), (start, sorted(set(ons)))
    assert unmatched_notes(rx.events) == []          # each note-off on its own note-on's channel
    assert one_sounding_at_a_time(events) == []
    # the beat: a frame's notes change every frame here, so every frame has note messages
    frames = onset_groups([t for t, m in rx.events if len(m) == 3 and m[0] & 0xE0 == 0x80])
    playing = [t for t in frames if t < frames[-1] - 0.001]   # the last group: the closing note-offs
    gaps = np.diff(playing)
    assert len(playing) > 3.5 / dt and gaps.max() < dt + 2 * PERIOD + 0.004, (len(playing), gaps.max())
    closing = [line for line in play.lines if line.startswith("live-rnnrbm: stopped")]
    assert closing, play.stderr
    ccs = sorted({m[0] & 0x0F for _, m in rx.events if len(m) == 3 and m[0] & 0xF0 == 0xB0 and m[1] == 123})
    assert ccs == [0, 1], ccs   # all-notes-off on every channel either preset played on


def test_parts_on_and_off_while_playing_every_note_keeping_its_channel(jack, weights):
    """The parts button (CC 28) then OSC /live-rnnrbm/parts 0: before, every note on channel 1;
    with parts on (mbc: the preset has none), notes start on channels 1, 2 and 3; after, on channel
    1 again, while a note sounding through either change ends on the channel it started on."""
    dt = 60 / 240 / 4
    port = free_udp_port()
    play = Play(jack, ["--weights", str(weights / "random.npz"), "--port", "lr-pt", "--bpm", "240",
                       "--steps-per-beat", "4", "--seed", "6", "--note-range", "48", "72", "--max-polyphony", "6",
                       "--max-note-frames", "1000", "--osc-port", str(port), "--input", "lr-pt-in", "--mode", "off"])
    rx, tx, osc = connected(jack, "lr-pt", port)
    try:
        time.sleep(1.0)
        t_on = press(tx, 28)                # the button: the preset has no parts, so mbc
        time.sleep(1.5)
        t_off = osc.send("/live-rnnrbm/parts", 0)
        time.sleep(1.0)
        quit_play(play)
    finally:
        close_all(osc, rx, tx)
    events = arrived(rx)
    ons = [(a, ch) for a, ch, _, on in notes(events) if on]
    settle = 3 * dt
    assert {ch for a, ch in ons if a < t_on} == {0}
    assert {ch for a, ch in ons if t_on + settle < a < t_off} == {0, 1, 2}
    assert {ch for a, ch in ons if t_off + settle < a} == {0}
    assert unmatched_notes(rx.events) == []
    assert one_sounding_at_a_time(events) == []
    # notes started before the change and sounding through it: still on channel 1 when the first
    # note of another part starts, and ended there (unmatched_notes above)
    sounding: dict = {}
    for a, ch, note, on in notes(events):
        if on and a > t_on and ch != 0:
            carried = [n for n, (c, start) in sounding.items() if start < t_on]
            break
        if on:
            sounding[note] = (ch, a)
        else:
            sounding.pop(note, None)
    assert carried, "no note sounded through the change"
    ccs = sorted({m[0] & 0x0F for _, m in rx.events if len(m) == 3 and m[0] & 0xF0 == 0xB0 and m[1] == 123})
    assert ccs == [0, 1, 2], ccs


def test_swing_changed_while_playing_on_the_internal_clock(jack, weights, udp):
    """Straight, then OSC /live-rnnrbm/swing 66.7: the off-beat frames after it come a third of a
    frame late, the ones before it on the grid; the status reply says the swing."""
    dt = 60 / 120 / 2
    port = free_udp_port()
    play = Play(jack, ["--weights", str(weights / "random.npz"), "--port", "lr-swl", "--bpm", "120",
                       "--steps-per-beat", "2", "--seed", "1", "--note-range", "21", "108", "--osc-port", str(port)])
    rx = Receiver("rx-swl")
    osc = OscClient(port)
    try:
        jack.connect("lr-swl:out", rx.name)
        time.sleep(4.0)
        t_swing = osc.send("/live-rnnrbm/swing", 66.7)
        time.sleep(4.5)
        reply = status_of(osc, udp)
        quit_play(play)
    finally:
        close_all(osc, rx)
    assert abs(reply[7] - 66.7) < 1e-4, reply
    ev = arrived(rx)
    ons = onset_groups([a for a, m in ev if len(m) == 3 and m[0] & 0xF0 == 0x90 and m[2] > 0])
    before = [t for t in ons if t < t_swing]
    after = [t for t in ons if t > t_swing + 2 * dt]
    k = frame_numbers(before, before[0], dt)
    for parity in (0, 1):
        late, n_on, n_off = off_beat_lateness(before, k, dt, parity)
        assert abs(late) <= 2 * PERIOD and n_on >= 5 and n_off >= 5, (late, n_on, n_off)
    k = frame_numbers(after, after[0], dt)
    on_parity = max((0, 1), key=lambda p: off_beat_lateness(after, k, dt, p)[0])
    late, n_on, n_off = off_beat_lateness(after, k, dt, on_parity)
    assert n_on >= 5 and n_off >= 5, (n_on, n_off)
    assert abs(late - dt / 3) <= 2 * PERIOD, (late, dt / 3)


def test_swing_changed_while_following_an_external_clock(jack, weights, udp):
    """Following a clock at 120 BPM, 2 frames a beat (12 pulses): straight for 6 beats, then OSC
    /live-rnnrbm/swing 66.7: from the next pair the off-beats come 4 pulses (83 ms) late, counted
    from the clock's Start; the ones before, on the beat."""
    dt = 60 / 120 / 2
    lag = swing_pulses(66.7, 12) * dt / 12
    port = free_udp_port()
    osc = OscClient(port)
    try:
        with following_clock(jack, weights, "swf", "--steps-per-beat", "2", "--osc-port", str(port)) as (play, rx, tx):
            t_start = start_clock(tx)           # Start: the next pulse is frame 0
            t = send_clock(tx, 120, 6, t_start)
            osc.send("/live-rnnrbm/swing", 66.7)
            t_swing = time.perf_counter()
            send_clock(tx, 120, 8, t)
            time.sleep(0.1)
            reply = status_of(osc, udp)
            quit_play(play)
    finally:
        osc.close()
    assert abs(reply[7] - 66.7) < 1e-4, reply
    on_times = [a for a, m in arrived(rx) if len(m) == 3 and m[0] & 0xF0 == 0x90 and m[2] > 0]
    ons = onset_groups(on_times)
    before = [x for x in ons if x < t_swing]
    after = [x for x in ons if x > t_swing + 2 * dt]
    late, n_on, n_off = off_beat_lateness(before, frame_numbers(before, t_start, dt), dt)
    assert n_on >= 4 and n_off >= 4 and abs(late) <= PERIOD, (late, n_on, n_off)
    late, n_on, n_off = off_beat_lateness(after, frame_numbers(after, t_start, dt), dt)
    assert n_on >= 5 and n_off >= 5 and abs(late - lag) <= PERIOD, (late, lag, n_on, n_off)


def test_a_bad_preset_in_the_switch_list_stops_play_at_start():
    r = subprocess.run([sys.executable, "-m", "live_rnnrbm.cli", "play", "--switch", "default", "jsbb"],
                       capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: switch: no shipped preset named 'jsbb' (did you mean 'jsb'?); shipped presets: "
                      "default, jsb, sparse; for a file of your own give its path, e.g. ./jsbb.yaml"], r.stderr
    assert "Traceback" not in r.stderr


def test_weights_of_other_notes_in_the_switch_list_stop_play_at_start(weights, tmp_path):
    """An explicit list is strict; the shipped presets (no list) are only left out, so weights of
    other notes play on their own."""
    narrow = tmp_path / "narrow.npz"
    save_weights(RnnRbm(n_hidden=8, n_hidden_recurrent=4, seed=1, lowest_note=48, highest_note=72), narrow,
                 steps_per_beat=4, bpm=120)
    preset = tmp_path / "narrow.yaml"
    preset.write_text(f"weights: {narrow}\n")
    r = subprocess.run([sys.executable, "-m", "live_rnnrbm.cli", "play", "--weights", str(weights / "random.npz"),
                        "--switch", "default", str(preset)], capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: switch: preset '{preset}' plays "
                                                     f"weights '{narrow}' with 25 notes from MIDI note 48"), r.stderr

    from live_rnnrbm.data.weights import load_model
    from live_rnnrbm.live.presets import load_preset
    from live_rnnrbm.live.switch import load_switch
    settings = load_preset(None)
    mine = load_switch(replace(settings, weights=str(narrow)), None, load_model(str(narrow)))
    assert mine.names == ["default"] and mine.index == 0     # as started; jsb and sparse left out
    shipped = load_switch(settings, None, load_model("nottingham"))
    assert shipped.names == ["default", "jsb", "sparse"] and shipped.index == 0
    assert shipped.entries[0].model is shipped.entries[2].model      # default and sparse: one model, u kept


def wait_for(play: Play, text: str, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while text not in play.stderr:
        assert time.monotonic() < end and play.proc.poll() is None, f"no {text!r} in:\n{play.stderr}"
        time.sleep(0.02)


def test_midi_learn_maps_the_next_cc_to_each_control_and_saves_a_copy_of_a_shipped_preset(jack, weights, tmp_path):
    """--learn on the shipped default preset: CC 70 (turned: many values) becomes temperature, 71
    density, the key l keeps pause, CC 72 (pressed: 127 then 0) becomes panic, L stops; y saves the
    map into a copy in $XDG_CONFIG_HOME/live-rnnrbm/presets, never into the shipped file, and says
    where. The map works at once: a press of CC 23 (pause, kept) silences the model; the copy loads
    with the learnt CCs and the rest as they were."""
    from live_rnnrbm.live.presets import find_preset, load_preset
    shipped = find_preset("default").read_text()
    master, slave = pty.openpty()
    jack.env["XDG_CONFIG_HOME"] = str(tmp_path)
    try:
        play = Play(jack, ["--preset", "default", "--weights", str(weights / "random.npz"), "--port", "lr-learn",
                           "--input", "lr-learn-in", "--mode", "off", "--bpm", "240", "--steps-per-beat", "4",
                           "--seed", "2", "--note-range", "21", "108", "--learn"], stdin=slave)
    finally:
        del jack.env["XDG_CONFIG_HOME"]
    os.close(slave)
    rx, tx, _ = connected(jack, "lr-learn")
    try:
        wait_for(play, "learn: move the knob or button for temperature")
        for value in range(40, 60):                 # a knob turned
            tx.send([0xB0, 70, value])
        wait_for(play, "learn: CC 70 is temperature")
        tx.send([0xB0, 71, 3])
        wait_for(play, "learn: CC 71 is density")
        os.write(master, b"l")                      # pause: keep CC 23
        wait_for(play, "learn: move the knob or button for panic")
        press(tx, 72)
        wait_for(play, "learn: CC 72 is panic")
        os.write(master, b"L")
        wait_for(play, "learn: save this CC map to")
        os.write(master, b"y")
        wait_for(play, "learn: saved")
        time.sleep(0.5)
        t_pause = press(tx, 23)                     # pause, as before
        time.sleep(1.0)
        quit_play(play)
    finally:
        close_all(rx, tx)
        os.close(master)
    copy = tmp_path / "live-rnnrbm" / "presets" / "default.yaml"
    assert f"live-rnnrbm: learn: saved; play with it: live-rnnrbm play --preset {copy}" in play.stderr, play.stderr
    assert find_preset("default").read_text() == shipped
    cc = load_preset(str(copy)).cc
    assert (cc.temperature, cc.density, cc.pause, cc.panic, cc.mode) == (70, 71, 23, 72, 25), cc
    ons = [a for a, _, _, on in notes(arrived(rx)) if on]
    assert [a for a in ons if a < t_pause] and not [a for a in ons if a > t_pause + 0.2], "CC 23 pauses"


def test_learn_without_an_input_or_a_terminal_is_a_clear_error():
    r = subprocess.run([sys.executable, "-m", "live_rnnrbm.cli", "play", "--learn"], capture_output=True, text=True,
                       timeout=60, cwd=str(REPO), stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and r.stderr.startswith("error: --learn listens for CCs on --input"), r.stderr

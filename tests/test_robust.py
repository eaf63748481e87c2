"""`live-rnnrbm play` when things go wrong, through real JACK ports: malformed messages on the
input and the clock, a SysEx cut short, a pause in the session while recording, a clock that
vanishes without a Stop, and the JACK server dying under it.

Malformed bytes are written as JACK events by a raw libjack client (tests/rawjack.py); python-rtmidi
refuses to send them.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import mido
import pytest

from jackd import (REPO, JackServer, Play, Receiver, Sender, arrived, following_clock, have_jack, listening_args,
                   note_ons, send_clock, sleep_until, unmatched_notes)
from rawjack import RawSender

from live_rnnrbm.live.jackmidi import JackMidiIn

pytestmark = pytest.mark.skipif(not have_jack(), reason="needs jackd (Debian jackd2)")

# what a sender's bug can put in one JACK event: a data byte ≥ 0x80, a message cut short, an empty
# event, a stray data byte, a real-time byte with a tail, an undefined status
MALFORMED = [b"\x90\x80\x40", b"\x80\xff\x00", b"", b"\x90\x3c", b"\x3c\x64", b"\xb0\x40", b"\xf2\x01",
             b"\xf8\x00", b"\xe0\x00\x80", b"\xf9", b"\xc0"]
LENGTH = {0x80: 3, 0x90: 3, 0xA0: 3, 0xB0: 3, 0xC0: 2, 0xD0: 2, 0xE0: 3}


def well_formed(m: list[int]) -> bool:
    if not m or m[0] < 0x80:
        return False
    want = LENGTH.get(m[0] & 0xF0) if m[0] < 0xF0 else {0xF8: 1, 0xFA: 1, 0xFB: 1, 0xFC: 1, 0xF2: 3}.get(m[0])
    return want == len(m) and all(b < 0x80 for b in m[1:])


def send_all(tx: RawSender, events, gap: float = 0.012) -> None:
    for e in events:
        tx.send(e)
        tx.flush()
        time.sleep(gap)


def start_dump(jack: JackServer, client: str) -> subprocess.Popen:
    """jack_midi_dump: a strict receiver (it asserts on a note message shorter than 3 bytes)."""
    proc = subprocess.Popen(["jack_midi_dump", client], env=jack.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    end = time.perf_counter() + 10
    while time.perf_counter() < end:     # its client comes up before its port: wait for the port
        ports = subprocess.run(["jack_lsp"], env=jack.env, capture_output=True, text=True).stdout.split()
        if f"{client}:input" in ports:
            break
        time.sleep(0.05)
    return proc


def stop_dump(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    return out


def assert_dropped_and_nothing_bad_sent(play, rx, dump, dumped: str) -> None:
    """play counted every malformed message as dropped, raised nothing, sent (and, with --thru,
    echoed) only well-formed messages, and left no note sounding; a strict receiver survived it."""
    assert "Traceback" not in play.stderr, play.stderr
    assert f"{len(MALFORMED)} malformed message(s) dropped" in play.stderr, play.stderr
    bad = [m for _, m in rx.events if not well_formed(m)]
    assert bad == [], f"forwarded: {bad}"
    assert unmatched_notes(rx.events) == []
    if dump is not None:
        assert dump.returncode in (0, -signal.SIGINT), f"jack_midi_dump died ({dump.returncode}):\n{dumped}"


@pytest.mark.parametrize("thru", [False, True], ids=["no-thru", "thru"])
def test_malformed_input_is_dropped_and_the_player_still_heard(jack, weights, thru):
    name = "lr-bad" + ("-t" if thru else "")
    play = Play(jack, listening_args(weights, name) + (["--thru"] if thru else []))
    dump = start_dump(jack, "dump-" + name) if thru else None
    rx = Receiver("rx-" + name)
    tx = RawSender("tx-" + name)
    try:
        jack.connect(f"{name}:out", rx.name)
        if dump is not None:
            jack.connect(f"{name}:out", f"dump-{name}:input")
        jack.connect(tx.name, f"{name}-in:in")
        time.sleep(0.3)
        send_all(tx, MALFORMED)
        time.sleep(0.3)
        assert play.proc.poll() is None, "a malformed message stopped the instrument:\n" + play.stderr
        t_on = time.perf_counter()
        send_all(tx, [b"\x90\x3c\x64"])
        time.sleep(0.5)
        send_all(tx, [b"\x80\x3c\x00"])
        time.sleep(0.3)
        assert play.signal(signal.SIGTERM) == 0, play.stderr
        time.sleep(0.1)
    finally:
        rx.close()
        tx.close()
        dumped = stop_dump(dump) if dump is not None else ""
    assert_dropped_and_nothing_bad_sent(play, rx, dump, dumped)
    heard = [a for a, n, _ in note_ons(arrived(rx)) if n == 72]
    assert heard and heard[0] - t_on < 0.2, "the player's note after the bad ones was not heard"
    if thru:
        assert [m for _, m in rx.events if m == [0x90, 60, 100]], "the good note is echoed"
        assert "note on" in dumped, dumped


@pytest.mark.parametrize("thru", [False, True], ids=["no-thru", "thru"])
def test_malformed_clock_messages_are_dropped_and_the_clock_followed(jack, weights, thru):
    """With --thru, the clock port is also the player's input (one port carrying both)."""
    name = "lr-badclk" + ("-t" if thru else "")
    args = ["--weights", str(weights / "random.npz"), "--port", name, "--clock", name + "-c",
            "--steps-per-beat", "4", "--seed", "2", "--note-range", "21", "108", "--max-polyphony", "4"]
    if thru:
        args += ["--input", name + "-c", "--thru", "--mode", "follow"]
    play = Play(jack, args)
    dump = start_dump(jack, "dump-" + name) if thru else None
    rx = Receiver("rx-" + name)
    tx = RawSender("tx-" + name)
    pulse = 60 / 120 / 24
    try:
        jack.connect(f"{name}:out", rx.name)
        if dump is not None:
            jack.connect(f"{name}:out", f"dump-{name}:input")
        jack.connect(tx.name, f"{name}-c:clock")
        time.sleep(0.3)
        tx.send(b"\xfa")
        t = time.perf_counter()
        bad = list(MALFORMED)
        for i in range(96):            # two beats of clock, a malformed message every 8 pulses
            sleep_until(t)
            tx.send(b"\xf8")
            if i % 8 == 4 and bad:
                tx.send(bad.pop(0))
            t += pulse
        t_clean = t
        for _ in range(48):
            sleep_until(t)
            tx.send(b"\xf8")
            t += pulse
        tx.flush()
        time.sleep(0.1)
        assert play.proc.poll() is None, "a malformed message stopped the instrument:\n" + play.stderr
        assert play.signal(signal.SIGTERM) == 0, play.stderr
        time.sleep(0.1)
    finally:
        rx.close()
        tx.close()
        dumped = stop_dump(dump) if dump is not None else ""
    assert_dropped_and_nothing_bad_sent(play, rx, dump, dumped)
    assert len([a for a, _, _ in note_ons(arrived(rx)) if a > t_clean]) >= 3, "frames after the bad messages"


def test_truncated_sysex_does_not_deafen_the_input(jack, weights, tmp_path):
    rec = tmp_path / "sysex.mid"
    play = Play(jack, listening_args(weights, "lr-sx") + ["--record", str(rec)])
    tx = RawSender("tx-sx")
    try:
        jack.connect(tx.name, "lr-sx-in:in")
        time.sleep(0.3)
        send_all(tx, [b"\xf0\x01\x02"])          # a SysEx start whose F7 never comes
        for _ in range(8):
            send_all(tx, [b"\x90\x3c\x64"], gap=0.1)
            send_all(tx, [b"\x80\x3c\x00"], gap=0.05)
        time.sleep(0.1)
        assert play.signal(signal.SIGTERM) == 0, play.stderr
    finally:
        tx.close()
    player = [m for m in mido.MidiFile(rec).tracks[2] if m.type == "note_on" and m.velocity > 0]
    assert len(player) == 8, f"{len(player)} of the 8 notes after the SysEx were heard"
    model = [m for m in mido.MidiFile(rec).tracks[1] if m.type == "note_on" and m.velocity > 0 and m.note == 72]
    assert model, "the model answered them"


def test_a_pause_in_the_session_keeps_the_recording(jack, weights, tmp_path):
    """Start, play, Stop, a pause longer than a MIDI tempo can hold as one beat (16.8 s), Start,
    play, Stop, quit: the whole session is written, at the tempo it was played."""
    rec = tmp_path / "pause.mid"
    play = Play(jack, ["--weights", str(weights / "random.npz"), "--port", "lr-pause", "--clock", "lr-pause-c",
                       "--steps-per-beat", "4", "--seed", "2", "--note-range", "21", "108", "--record", str(rec)])
    tx = Sender("tx-pause")
    try:
        jack.connect(tx.name, "lr-pause-c:clock")
        time.sleep(0.3)
        tx.send([0xFA])
        t = send_clock(tx, 120, 4, time.perf_counter())
        tx.send([0xFC])
        t_second = t + 17.5
        sleep_until(t_second)
        tx.send([0xFA])
        send_clock(tx, 120, 4, t_second)
        tx.send([0xFC])
        time.sleep(0.2)
        assert play.signal(signal.SIGTERM) == 0, play.stderr
    finally:
        tx.close()
    assert "could not write" not in play.stderr, play.stderr
    mid = mido.MidiFile(rec)
    tempi = [m.tempo for m in mid.tracks[0] if m.type == "set_tempo"]
    assert all(mido.tempo2bpm(x) == pytest.approx(120, abs=2) for x in tempi), tempi   # no tempo across the pause
    now, ons = 0.0, []
    for m in mid:
        now += m.time
        if m.type == "note_on" and m.velocity > 0:
            ons.append(now)
    first = [x for x in ons if x < ons[0] + 3]
    second = [x for x in ons if x > ons[0] + 10]
    assert len(first) >= 10 and len(second) >= 10, (len(first), len(second))
    # the second half sits where it was played: 17.5 s after the first half ended
    assert second[0] - first[0] == pytest.approx(2.0 + 17.5, abs=0.3), (first[0], second[0])


def test_a_vanished_clock_silences_then_plays_on(jack, weights):
    """No Stop, no pulses (the DAW crashed): silent after two beats or 1 s, and playing again on the
    next pulse."""
    with following_clock(jack, weights, "lost", "--steps-per-beat", "4", "--max-note-frames", "1000") as (play, rx, tx):
        time.sleep(0.3)
        tx.send([0xFA])
        send_clock(tx, 120, 4, time.perf_counter())   # two beats at 120 = 1 s: lost 1 s after the last pulse
        t_gone = time.perf_counter()                      # (when it was sent, however late this process ran)
        time.sleep(2.0)
        lost_line = "clock lost" in play.stderr
        t_back = time.perf_counter()
        send_clock(tx, 120, 3, t_back)
        time.sleep(0.1)
        assert play.signal(signal.SIGTERM) == 0, play.stderr
        time.sleep(0.1)
    assert lost_line, play.stderr
    events = arrived(rx)
    left = unmatched_notes([(a, m) for a, m in events if a < t_gone + 1.0 + 0.25])
    assert left == [], f"notes still sounding {1.25:.2f} s after the last pulse: {left}"
    ons = [a for a, _, _ in note_ons(events)]
    assert not [a for a in ons if t_gone + 0.1 < a < t_back], "no new notes while the clock is gone"
    assert len([a for a in ons if a > t_back]) >= 3, "playing again on the next pulses"
    assert unmatched_notes(rx.events) == []


def test_the_jack_server_dying_stops_play_and_keeps_the_recording(weights, tmp_path):
    rec = tmp_path / "died.mid"
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    try:
        with JackServer() as jack:
            play = Play(jack, ["--weights", str(weights / "random.npz"), "--port", "lr-die", "--bpm", "240",
                               "--steps-per-beat", "4", "--seed", "1", "--note-range", "21", "108",
                               "--record", str(rec)])
            time.sleep(1.0)
            jack.crash()
            t_dead = time.perf_counter()
            try:
                rc = play.proc.wait(5)
            except subprocess.TimeoutExpired:
                play.kill()
                pytest.fail("play went on after the JACK server died:\n" + play.stderr)
            took = time.perf_counter() - t_dead
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    time.sleep(0.1)
    assert rc != 0, play.stderr
    assert took < 3.0, took
    assert "Traceback" not in play.stderr, play.stderr
    errors = [line for line in play.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "JACK server" in errors[0], play.stderr
    assert all(line.startswith(("live-rnnrbm:", "error:")) for line in play.stderr.splitlines()), play.stderr
    assert "all notes off" in play.stderr and "recorded" in play.stderr, play.stderr
    model = mido.MidiFile(rec).tracks[1]
    sounding: set = set()
    for m in model:
        if m.type == "note_on" and m.velocity > 0:
            sounding.add(m.note)
        elif m.type in ("note_on", "note_off"):
            sounding.discard(m.note)
    assert len([m for m in model if m.type == "note_on"]) >= 10 and not sounding


def test_the_jack_output_and_its_watch_client_close_promptly(jack):
    """`play` hung on exit in jack_client_close (1 run in 10–20 of the SIGTERM grid test under
    load) while its port-less watch client was never activated."""
    code = ("import time\nfrom live_rnnrbm.live.ports import open_output\nfrom live_rnnrbm.live.jackmidi import quiet\n"
            "for i in range(10):\n"
            "    out = open_output('lr-close', 'jack')\n"
            "    quiet()\n"
            "    for k in range(5):\n"
            "        out.send([0x90, 60, 100])\n"
            "        time.sleep(0.01)\n"
            "    out.close()\n")
    try:
        r = subprocess.run([sys.executable, "-c", code], env=jack.env, cwd=str(REPO), capture_output=True,
                           text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("closing the JACK output hung")
    assert r.returncode == 0, r.stderr


def test_an_input_whose_process_holds_the_gil_loses_no_event(jack):
    """The input's JACK callback never waits for Python: while another thread keeps the GIL for
    100 ms at a time (a long switch interval, a pure-Python loop), 400 events sent one per period
    all arrive, in order."""
    inp = JackMidiIn("lr-gil", "in")
    got: list[bytes] = []
    inp.set_callback(lambda event, data=None: got.append(event[0]))
    tx = RawSender("tx-gil")
    stop = threading.Event()

    def hog():
        while not stop.is_set():
            sum(range(1000))

    old = sys.getswitchinterval()
    try:
        jack.connect(tx.name, inp.name)
        time.sleep(0.2)
        sys.setswitchinterval(0.1)
        th = threading.Thread(target=hog, daemon=True)
        th.start()
        sent = [bytes([0x90, i % 128, 1 + i // 128]) for i in range(400)]
        period = 256 / 48000
        t = time.perf_counter()
        for m in sent:              # this thread too waits for the GIL: the sender's ring absorbs it
            sleep_until(t)
            tx.send(m)
            t += period
        tx.flush(5)
        stop.set()
        th.join()
        time.sleep(0.2)
    finally:
        stop.set()
        sys.setswitchinterval(old)
        tx.close()
        inp.delete()
    assert got == sent, f"{len(got)} of {len(sent)} arrived, lost: {inp.lost}"


def test_an_input_that_falls_behind_counts_what_it_could_not_keep(jack):
    """A reader stalled for seconds: every event is either handed on or counted as lost."""
    inp = JackMidiIn("lr-stall", "in")
    release = threading.Event()
    got: list[bytes] = []

    def stalled(event, data=None):
        release.wait(30)
        got.append(event[0])
    inp.set_callback(stalled)
    tx = RawSender("tx-stall")
    try:
        jack.connect(tx.name, inp.name)
        time.sleep(0.2)
        n = 8000
        for i in range(0, n, 200):      # 200 a period: more than the ring holds, in 40 periods
            for j in range(i, i + 200):
                tx.send(bytes([0x90, j % 128, 1]))
            tx.flush()
        time.sleep(0.1)
        lost = inp.lost
        release.set()
        time.sleep(0.5)
    finally:
        release.set()
        tx.close()
        inp.delete()
    assert lost > 0
    assert len(got) + lost == n, (len(got), lost)

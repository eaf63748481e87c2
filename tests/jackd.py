"""A JACK server with the dummy driver, and MIDI clients, for tests and benchmarks that run the
instrument through real ports.

    with JackServer() as jack:                    # jackd -n NAME -R -d dummy -r 48000 -p 256
        proc = start_play(jack, ["--port", "lr-test", "--duration", "3"])   # waits for "playing"
        rx = Receiver("rx")                         # a JACK client of this process
        jack.connect("lr-test:out", "rx:in")
        ...

The product is started BEFORE this process opens its own clients: with python-rtmidi every port
is a JACK client, and a client activated while others come and go can hang in its first cycle.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def have_jack() -> bool:
    return all(shutil.which(t) for t in ("jackd", "jack_connect", "jack_wait"))


class JackServer:
    def __init__(self, rate: int = 48000, period: int = 256, name: str | None = None):
        self.name = name or f"lrtest-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.rate, self.period = rate, period
        self.proc = None
        self.realtime = True
        self.crashed = False
        # jackd's messages go to a file: a pipe nobody reads fills up in a long run and blocks jackd
        self.log_path = Path(tempfile.gettempdir()) / f"{self.name}.log"
        self.env = dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_AUDIO_RESERVATION="1",
                        JACK_NO_START_SERVER="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def start(self) -> "JackServer":
        for realtime in (True, False):
            cmd = ["jackd", "-n", self.name, "-R" if realtime else "--no-realtime", "-d", "dummy",
                   "-r", str(self.rate), "-p", str(self.period)]
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)
            if subprocess.run(["jack_wait", "-s", self.name, "-w", "-t", "5"], env=self.env,
                              capture_output=True).returncode == 0 and self.proc.poll() is None:
                self.realtime = realtime
                # this process's own clients (Receiver, Sender) must find the server too
                os.environ["JACK_DEFAULT_SERVER"] = self.name
                os.environ["JACK_NO_START_SERVER"] = "1"
                return self
            self.stop()
        raise RuntimeError("could not start a JACK dummy server")

    def crash(self) -> None:
        """Kill the server as a crash would (SIGKILL): its clients are left on their own."""
        self.proc.kill()
        self.proc.wait()
        self.crashed = True

    def _reclaim(self) -> None:
        """A killed jackd leaves its slot in JACK's registry, which has 8 slots for the whole machine
        (every user's and every test run's servers), and jackd frees a dead server's slot only when
        a server of the same name starts: start one and stop it cleanly, then remove the semaphores
        its clients left in /dev/shm. Without this, 8 crash tests and no JACK server starts anywhere."""
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(["jackd", "-n", self.name, "--no-realtime", "-d", "dummy", "-r", str(self.rate),
                                     "-p", str(self.period)], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        subprocess.run(["jack_wait", "-s", self.name, "-w", "-t", "5"], env=self.env, capture_output=True)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for f in Path("/dev/shm").glob(f"jack_sem.*_{self.name}_*"):
            f.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.crashed:
            self.crashed = False
            self._reclaim()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def log(self) -> str:
        """What jackd has printed so far (xruns, clients coming and going)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> "JackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)

    def connect(self, src: str, dst: str) -> None:
        subprocess.run(["jack_connect", src, dst], env=self.env, check=True, capture_output=True, timeout=10)


def listening_args(weights: Path, name: str, mode: str = "follow") -> list[str]:
    """play's arguments for the instrument that answers a player (conftest's listen.npz): output
    port NAME, input NAME-in, sixteenths at 120 BPM, seed 5, no note watchdog, every key."""
    return ["--weights", str(weights / "listen.npz"), "--port", name, "--input", name + "-in", "--mode", mode,
            "--bpm", "120", "--steps-per-beat", "4", "--seed", "5", "--max-note-frames", "1000",
            "--note-range", "21", "108"]


class Play:
    """`live-rnnrbm play` as a subprocess; stderr is collected on a thread."""

    def __init__(self, jack: JackServer, args: list[str], ready: str = "live-rnnrbm: playing", timeout: float = 30,
                 stdin=subprocess.DEVNULL):
        cmd = [sys.executable, "-m", "live_rnnrbm.cli", "play", "--backend", "jack", "--no-status", *args]
        self.proc = subprocess.Popen(cmd, env=jack.env, cwd=str(REPO), stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.launched = time.perf_counter()
        self._ready = threading.Event()
        self.ready_at = None
        self._marker = ready
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if ready and not self._ready.wait(timeout):
            self.kill()
            raise RuntimeError("live-rnnrbm play did not get ready:\n" + self.stderr)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            if self._marker and self._marker in line or line.startswith("live-rnnrbm: ready"):
                self.ready_at = time.perf_counter()
                self._ready.set()
        self._ready.set()

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def signal(self, sig: int, timeout: float = 10) -> int:
        self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 20) -> int:
        try:
            code = self.proc.wait(timeout)
            self._reader.join(5)   # the last lines (the closing line, an error) are read by now
            return code
        finally:
            if self.proc.poll() is None:
                self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _rtmidi():
    import rtmidi
    return rtmidi


class Receiver:
    """A JACK MIDI input of this process; ``events`` is a list of (seconds, [bytes...]) where
    seconds are JACK's own timestamps (rtmidi's deltas, summed), and ``arrivals`` the
    perf_counter() time each message was taken from the queue (within about a millisecond).

    RtMidi queues the messages itself (no callback): with a callback, JACK's process thread waits
    for this process's GIL in the middle of reading the period's events, and when the GIL is held
    by a thread the OS has set aside (a loaded machine), the sender's next period overwrites the
    buffer being read: RtMidi, which does not check jack_midi_event_get, then hands on the previous
    event again and loses the rest — a note-on seen twice, its note-off never."""

    def __init__(self, client: str, port: str = "in"):
        rtmidi = _rtmidi()
        self.rt = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name=client, queue_size_limit=1 << 16)
        self.rt.open_virtual_port(port)
        self.rt.ignore_types(sysex=True, timing=False, active_sense=True)
        self.name = f"{client}:{port}"
        self.events: list[tuple[float, list[int]]] = []
        self.arrivals: list[float] = []
        self._t = 0.0
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name=f"receiver {client}", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while True:
            got = self.rt.get_message()
            if got is None:
                if self._stop.is_set():
                    return
                time.sleep(0.0005)
                continue
            msg, delta = got
            self._t += delta
            self.events.append((self._t, msg))
            self.arrivals.append(time.perf_counter())

    def close(self) -> None:
        time.sleep(0.01)          # what JACK delivered in its last period is in the queue by now
        self._stop.set()
        self._poller.join(2)
        self.rt.close_port()
        self.rt.delete()


class Sender:
    """A JACK MIDI output of this process."""

    def __init__(self, client: str, port: str = "out"):
        rtmidi = _rtmidi()
        self.rt = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name=client)
        self.rt.open_virtual_port(port)
        self.name = f"{client}:{port}"
        self.send = self.rt.send_message

    def close(self) -> None:
        self.rt.close_port()
        self.rt.delete()


def arrived(rx: "Receiver") -> list[tuple[float, list[int]]]:
    """The receiver's events stamped with their arrival time (perf_counter, this process's clock),
    for comparing with the moments the test itself sent something."""
    return [(a, m) for a, (_, m) in zip(rx.arrivals, rx.events)]


def note_ons(events, channel: int | None = None) -> list[tuple[float, int, int]]:
    """(time, note, velocity) of every note-on (velocity > 0)."""
    return [(t, m[1], m[2]) for t, m in events
            if len(m) == 3 and m[0] & 0xF0 == 0x90 and m[2] > 0 and (channel is None or m[0] & 0x0F == channel)]


def unmatched_notes(events) -> list[tuple[int, int]]:
    """(channel, note) of every note-on left without a later note-off."""
    on: dict[tuple[int, int], int] = {}
    for _, m in events:
        if len(m) == 3 and m[0] & 0xE0 == 0x80:
            key = (m[0] & 0x0F, m[1])
            if m[0] & 0xF0 == 0x90 and m[2] > 0:
                on[key] = on.get(key, 0) + 1
            elif on.get(key):
                on[key] = 0
    return sorted(k for k, n in on.items() if n)


def roles_in(frame, parts: str) -> dict[int, int]:
    """note → the part it plays by its place in the frame, as docs/playing.md says (the index in
    settings.PARTS[parts]): mbc melody 0 = the top note, bass 1 = the lowest (two or more notes),
    chords 2 = the rest; satb soprano 0 = the top, alto 1 = the next below (three or more), tenor
    2 = the rest, bass 3 = the lowest (two or more). Written apart from the engine's note_roles."""
    notes = sorted(frame)
    roles = {n: 2 for n in notes}
    if len(notes) >= 2:
        roles[notes[0]] = 1 if parts == "mbc" else 3
    if len(notes) >= 3 and parts == "satb":
        roles[notes[-2]] = 1
    if notes:
        roles[notes[-1]] = 0
    return roles


def check_parts(groups, parts: str, channel: int) -> dict:
    """Replays the model's note messages one tick at a time (``groups``: lists of [status, note,
    velocity], in the order sent; `channel` 0..15 is the first part's) and checks the split into
    parts: each note-on is on the channel of the role its note has, at that moment, in the frame
    sounding on all channels together; a note sounds on one channel at a time and its note-off comes
    on the channel it started on. A note that goes on sounding keeps its channel when its role
    changes: ``kept`` counts those moments (a note whose channel is no longer its role's)."""
    sounding: dict[int, int] = {}   # note → channel
    problems, kept, onsets = [], 0, {}
    for k, group in enumerate(groups):
        started = []
        frame_at_onsets: dict[int, int] = {}
        for m in group:
            if len(m) != 3 or m[0] & 0xE0 != 0x80:
                continue
            ch, note = m[0] & 0x0F, m[1]
            if m[0] & 0xF0 == 0x90 and m[2] > 0:
                if note in sounding:
                    problems.append((k, f"note-on {note} on channel {ch} while it sounds on {sounding[note]}"))
                sounding[note] = ch
                started.append((ch, note))
                frame_at_onsets = dict(sounding)   # the frame as its note-ons leave it
            elif note in sounding:
                if sounding.pop(note) != ch:
                    problems.append((k, f"note-off {note} on channel {ch}, not the channel it started on"))
            else:
                problems.append((k, f"note-off {note} on channel {ch} for a note not sounding"))
        roles = roles_in(frame_at_onsets, parts)
        for ch, note in started:
            onsets[ch - channel] = onsets.get(ch - channel, 0) + 1
            if ch - channel != roles[note]:
                problems.append((k, f"note {note} started on channel {ch}, but its role in "
                                    f"{sorted(frame_at_onsets)} is part {roles[note]}"))
        kept += sum(1 for note, ch in frame_at_onsets.items()
                    if (ch, note) not in started and ch - channel != roles[note])
    return {"problems": problems, "onsets": onsets, "kept": kept, "left": sorted(sounding)}


def onset_groups(times: list[float], gap: float = 0.008) -> list[float]:
    """Times of the first event of each group of events closer than `gap` (one frame's note-ons).

    python-rtmidi's JACK output queues each message for the next process cycle, so when JACK's
    cycle runs in the middle of a tick's sends, one frame arrives in two consecutive periods
    (5.33 ms apart at 48 kHz / 256); `gap` must exceed one period to keep it one group."""
    groups: list[float] = []
    last = None
    for t in sorted(times):
        if last is None or t - last > gap:
            groups.append(t)
        last = t
    return groups


def sleep_until(deadline: float) -> None:
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return
        if left > 0.0008:
            time.sleep(left - 0.0008)


def send_clock(tx: Sender, bpm: float, beats: float, start: float) -> float:
    """MIDI clock pulses at `bpm` from `start` (perf_counter) for `beats`; returns the next pulse time."""
    pulse = 60.0 / bpm / 24
    t = start
    for _ in range(int(round(beats * 24))):
        sleep_until(t)
        tx.send([0xF8])
        t += pulse
    return t


def start_clock(tx: Sender) -> float:
    """A moment for the connections to settle, then MIDI Start at a time of our own (perf_counter),
    returned: the first pulse sent at that time is the downbeat, frame 0."""
    time.sleep(0.1)
    t_start = time.perf_counter() + 0.05
    sleep_until(t_start)
    tx.send([0xFA])
    return t_start


@contextmanager
def following_clock(jack: JackServer, weights: Path, name: str, *args: str):
    """`play` (random.npz, seed 2, every note allowed, then ``args``) on the output lr-NAME,
    following the MIDI clock on its input lr-NAME-clock: a receiver rx-NAME on the output and a
    clock sender tx-NAME on the clock input, both connected; yields (play, rx, tx). The test stops
    play as it needs (a signal, after what it sends); at the end the receiver and the sender are
    closed and play is gone whatever happened."""
    play = Play(jack, ["--weights", str(weights / "random.npz"), "--port", f"lr-{name}", "--clock",
                       f"lr-{name}-clock", "--seed", "2", "--note-range", "21", "108", *args])
    rx, tx = Receiver(f"rx-{name}"), Sender(f"tx-{name}")
    try:
        jack.connect(f"lr-{name}:out", rx.name)
        jack.connect(tx.name, f"lr-{name}-clock:clock")
        yield play, rx, tx
    finally:
        play.kill()
        rx.close()
        tx.close()


def heard_at_next_tick(recording, dt: float, played: int = 60, answer: int = 72) -> dict:
    """From play's own --record file: for every press, the time it reached the engine (the player
    track's note-on, stamped by the input callback) and the tick that sounded the answer (the model
    track's note-on, stamped with the tick's deadline). "Heard at the next tick" = the answer sounded
    at the first tick after the note arrived; for the others, how long before that tick it arrived."""
    import mido
    t, ons = 0.0, []
    for msg in mido.MidiFile(recording):   # merged tracks, times in seconds through the tempo map
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0 and msg.note in (played, answer):
            ons.append((t, msg.note))
    arrivals = [a for a, n in ons if n == played]
    answers = np.array([a for a, n in ons if n == answer])
    if not arrivals or not len(answers):
        return {"presses": len(arrivals), "next_tick": float("nan"), "misses_before_tick_ms": []}
    tau0 = answers[0]
    next_tick, margins = [], []
    for a in arrivals:
        k_next = np.ceil((a - tau0) / dt + 1e-9)          # the first tick after the arrival
        later = answers[answers > a - 0.002]
        k_ans = np.round((later[0] - tau0) / dt) if len(later) else np.inf
        next_tick.append(k_ans == k_next)
        if k_ans != k_next:
            margins.append((tau0 + k_next * dt - a) * 1e3)
    return {"presses": len(arrivals), "next_tick": float(np.mean(next_tick)), "misses_before_tick_ms": margins}

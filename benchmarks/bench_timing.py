"""Timing of `live-rnnrbm play` through real JACK MIDI ports, beside a minimal python-rtmidi sender
measured in the same run.

    python3 benchmarks/bench_timing.py                # 20 s per measurement
    python3 benchmarks/bench_timing.py --seconds 60 --weights weights/nottingham.npz

Starts its own JACK server (dummy driver, 48 kHz, 256-frame periods). Figures:
- onset jitter against the ideal grid at 120 BPM, 16th notes (125 ms = 6000 frames), from
  jack_midi_dump's frame-exact stamps: p50 and p99 of |onset − grid|, the grid fitted to the onsets;
  the same for a minimal python-rtmidi sender (absolute deadlines, sleep + spin) in a subprocess.
  JACK's python-rtmidi output sends at the start of the next period, so even a perfect sender shows
  up to one period of quantization (≈ 2.5 ms p99 here).
- played note → effect: a note sent into --input (follow mode) until the model's answer arrives,
  against a minimal python-rtmidi echo (the MIDI round trip alone). "Next tick" means the answer
  came at the first tick after the note was sent; the same from inside, from play's own --record
  file: the answer at the first tick after the note reached the engine (JACK delivers input at a
  period boundary, so a note sent just before a tick can reach the engine after it).
- time to first note from launch (warm compile cache), read at a receiving client.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from jackd import JackServer, Play, Receiver, Sender, heard_at_next_tick  # noqa: E402
from live_rnnrbm.live.midi import NOTE_OFF, NOTE_ON  # noqa: E402

RATE, PERIOD = 48000, 256
DT = 0.125  # 120 BPM, 16th notes

MINIMAL_SENDER = r"""
import sys, time, rtmidi
o = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name=sys.argv[1])
ports = o.get_ports(); o.open_port(next(k for k, p in enumerate(ports) if p.startswith(sys.argv[2])), "out")
dt, n = float(sys.argv[3]), int(sys.argv[4]); on, off = [0x90, 60, 80], [0x80, 60, 0]
t = time.perf_counter() + 0.2
for _ in range(n):
    while True:
        left = t - time.perf_counter()
        if left <= 0: break
        if left > 0.0008: time.sleep(left - 0.0008)
    o.send_message(off); o.send_message(on); t += dt
time.sleep(0.2)
"""


def dump(jack: JackServer, client: str) -> subprocess.Popen:
    p = subprocess.Popen(["stdbuf", "-oL", "jack_midi_dump", "-a", client], env=jack.env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.5)
    return p


def onsets(p: subprocess.Popen) -> np.ndarray:
    p.terminate()
    out = p.communicate(timeout=5)[0]
    frames = [int(line.split(":")[0]) for line in out.splitlines()
              if ":" in line and "note on" in line and not line.strip().endswith("velocity   0")]
    # one onset per frame of the model: the first note-on of each group
    grouped = [f for k, f in enumerate(frames) if k == 0 or f - frames[k - 1] > 96]
    return np.array(grouped, float)


def jitter(frames: np.ndarray) -> tuple[float, float, int]:
    """p50, p99 in ms of |onset − fitted grid| (grid period nominal 6000 frames, slope fitted)."""
    n = np.round((frames - frames[0]) / (DT * RATE))
    slope, icpt = np.polyfit(n, frames, 1)
    r = np.abs(frames - (icpt + slope * n)) / RATE * 1e3
    return float(np.percentile(r, 50)), float(np.percentile(r, 99)), len(frames)


def make_weights(d: Path) -> tuple[Path, Path]:
    from live_rnnrbm.model import RnnRbm
    from live_rnnrbm.data.weights import save_weights
    rnd = d / "random.npz"
    save_weights(RnnRbm(seed=3), rnd, steps_per_beat=4, bpm=120)   # full size: 150 hidden, 100 recurrent
    m = RnnRbm(seed=4)
    p = {k: np.zeros_like(v) for k, v in m.params.items()}
    p["bv"][:] = -12.0
    p["bh"][:] = -18.0
    p["Wvu"][60 - 21, 0] = 3.0
    p["Wuv"][0, 72 - 21] = 20.0
    listen = d / "listen.npz"
    save_weights(RnnRbm(seed=4, params=p), listen, steps_per_beat=4, bpm=120)
    return rnd, listen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--weights", help="weights for the jitter run (default: a full-size random model)")
    ap.add_argument("--presses", type=int, default=30)
    args = ap.parse_args()
    n_frames = int(args.seconds / DT)
    with tempfile.TemporaryDirectory() as tmp, JackServer(RATE, PERIOD) as jack:
        rnd, listen = make_weights(Path(tmp))
        weights = args.weights or str(rnd)
        print(f"JACK dummy {RATE} Hz / {PERIOD} frames (realtime={jack.realtime}), {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.2f}")

        # time to first note: a receiver waits, the product connects to it when it opens --port
        rx = Receiver("bench-first")
        launched = time.perf_counter()
        play = Play(jack, ["--weights", weights, "--port", "bench-first", "--bpm", "120", "--steps-per-beat", "4",
                           "--duration", "1.5"], ready="")
        play.wait(20)
        first = (rx.arrivals[0] - launched) if rx.arrivals else float("nan")
        rx.close()

        # onset jitter: the product, then the minimal sender, each into its own jack_midi_dump
        d1 = dump(jack, "bench-dump-play")
        play = Play(jack, ["--weights", weights, "--port", "bench-dump-play", "--bpm", "120",
                           "--steps-per-beat", "4", "--duration", str(args.seconds)])
        play.wait(args.seconds + 20)
        late = [l for l in play.lines if "late" in l]
        j_play = jitter(onsets(d1))
        d2 = dump(jack, "bench-dump-min")
        subprocess.run([sys.executable, "-c", MINIMAL_SENDER, "bench-min", "bench-dump-min", str(DT), str(n_frames)],
                       env=jack.env, check=True, timeout=args.seconds + 20)
        j_min = jitter(onsets(d2))

        # played note → effect (follow mode), and the bare MIDI round trip of an echo
        recording = Path(tmp) / "latency.mid"
        play = Play(jack, ["--weights", str(listen), "--port", "bench-lat", "--input", "bench-lat-in", "--mode",
                           "follow", "--bpm", "120", "--steps-per-beat", "4", "--max-note-frames", "1000",
                           "--record", str(recording)])
        rx, tx = Receiver("bench-lat-rx"), Sender("bench-lat-tx")
        jack.connect("bench-lat:out", rx.name)
        jack.connect(tx.name, "bench-lat-in:in")
        time.sleep(0.5)
        lat = []
        rng = np.random.default_rng(0)
        for _ in range(args.presses):
            time.sleep(rng.uniform(0.2, 0.45))
            k = len(rx.arrivals)
            t = time.perf_counter()
            tx.send([NOTE_ON, 60, 100])
            while len(rx.arrivals) == k and time.perf_counter() - t < 1:
                time.sleep(0.0002)
            hit = [a for a, (_, m) in zip(rx.arrivals[k:], rx.events[k:]) if m[0] == NOTE_ON and m[1] == 72]
            lat.append(hit[0] - t if hit else float("nan"))
            time.sleep(0.3)
            tx.send([NOTE_OFF, 60, 0])
        play.signal(2)
        rx.close(); tx.close()
        inside = heard_at_next_tick(recording, DT)

        import rtmidi
        echo_in = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name="bench-echo")
        echo_in.open_virtual_port("in")
        echo_out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="bench-echo-out")
        echo_out.open_virtual_port("out")
        echo_in.set_callback(lambda e, d=None: echo_out.send_message(e[0]))
        rx, tx = Receiver("bench-echo-rx"), Sender("bench-echo-tx")
        jack.connect(tx.name, "bench-echo:in")
        jack.connect("bench-echo-out:out", rx.name)
        time.sleep(0.3)
        rtt = []
        for _ in range(args.presses):
            k = len(rx.arrivals)
            t = time.perf_counter()
            tx.send([NOTE_ON, 60, 100])
            while len(rx.arrivals) == k and time.perf_counter() - t < 1:
                time.sleep(0.0002)
            rtt.append(rx.arrivals[k] - t if len(rx.arrivals) > k else float("nan"))
            time.sleep(rng.uniform(0.05, 0.1))
        for c in (rx, tx):
            c.close()
        echo_in.delete(); echo_out.delete()

    lat_ms, rtt_ms = np.array(lat) * 1e3, np.array(rtt) * 1e3
    print(f"\ntime to first note from launch (warm cache): {first:.2f} s")
    print(f"onset jitter vs grid, 120 BPM 16ths, {args.seconds:.0f} s:")
    print(f"  live-rnnrbm play        p50 {j_play[0]:.2f} ms  p99 {j_play[1]:.2f} ms  ({j_play[2]} onsets)")
    print(f"  minimal rtmidi sender   p50 {j_min[0]:.2f} ms  p99 {j_min[1]:.2f} ms  ({j_min[2]} onsets)")
    print(f"  p99 excess over the minimal sender: {j_play[1] - j_min[1]:+.2f} ms")
    print(f"played note -> model's answer (follow), {args.presses} presses at random phases:")
    print(f"  median {np.nanmedian(lat_ms):.1f} ms, max {np.nanmax(lat_ms):.1f} ms, frame {DT * 1e3:.0f} ms: "
          f"{np.mean(lat_ms < DT * 1e3 + 12):.0%} answered at the next tick (< 1 frame + 12 ms), "
          f"{int(np.isnan(lat_ms).sum())} unanswered")
    miss = inside["misses_before_tick_ms"]
    print(f"  inside the engine (play's own recording: arrival at the input callback → the tick that "
          f"sounded the answer): {inside['next_tick']:.0%} of {inside['presses']} heard at the next tick"
          + (f"; the others arrived {', '.join(f'{m:.1f}' for m in sorted(miss))} ms before that tick" if miss else ""))
    print(f"  minimal rtmidi echo round trip: median {np.nanmedian(rtt_ms):.1f} ms, max {np.nanmax(rtt_ms):.1f} ms")
    if late:
        print("  product:", late[-1].strip())


if __name__ == "__main__":
    main()

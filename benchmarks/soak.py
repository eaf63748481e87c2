"""Soak run of `live-rnnrbm play` following an external MIDI clock, with tempo changes and notes
played in, through a JACK dummy server.

    python3 benchmarks/soak.py                      # 30 minutes
    python3 benchmarks/soak.py --minutes 3 --weights weights/nottingham.npz

Checks: every model onset lands on a frame pulse (pulse index a multiple of 24/steps_per_beat after
Start, within a few ms of it) — no drift against the clock; no stuck note (every note-on gets its
note-off, no note longer than max_note_frames); resident memory flat (sampled every 10 s).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from jackd import JackServer, Play, Receiver, Sender, sleep_until, unmatched_notes  # noqa: E402


def rss_mb(pid: int) -> tuple[float, float]:
    """(RSS, private) in MB. RSS counts JACK's shared-memory segment (≈ 100 MB at these settings,
    mapped by every JACK client and shared with the server); private memory is the process's own."""
    fields = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
            fields[parts[0][:-1]] = int(parts[1]) / 1024
    return fields.get("Rss", float("nan")), fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--weights", help="weights (default: a full-size random model written here)")
    ap.add_argument("--steps-per-beat", type=int, default=4)
    ap.add_argument("--max-note-frames", type=int, default=16)
    args = ap.parse_args()
    ppf = 24 // args.steps_per_beat
    with tempfile.TemporaryDirectory() as tmp, JackServer() as jack:
        weights = args.weights
        if not weights:
            from live_rnnrbm.model import RnnRbm
            from live_rnnrbm.weights import save_weights
            weights = str(save_weights(RnnRbm(seed=11), Path(tmp) / "random.npz", steps_per_beat=4, bpm=120))
        play = Play(jack, ["--weights", weights, "--port", "soak", "--clock", "soak-clock", "--input", "soak-in",
                           "--mode", "follow", "--steps-per-beat", str(args.steps_per_beat),
                           "--max-note-frames", str(args.max_note_frames), "--seed", "1"])
        rx, clk, keys = Receiver("soak-rx"), Sender("soak-clock-tx"), Sender("soak-keys")
        jack.connect("soak:out", rx.name)
        jack.connect(clk.name, "soak-clock:clock")
        jack.connect(keys.name, "soak-in:in")
        time.sleep(0.3)
        print(f"soak {args.minutes} min, JACK realtime={jack.realtime}, load {os.getloadavg()[0]:.2f}", flush=True)
        pulses: list[float] = []
        rss: list[tuple[float, float]] = []
        stop = threading.Event()

        def player():  # a chord change every ~2 s, notes held 1.5 s
            rng = np.random.default_rng(0)
            while not stop.wait(0.5):
                notes = rng.choice(np.arange(48, 72), 3, replace=False).tolist()
                for n in notes:
                    keys.send([0x90, n, 90])
                if stop.wait(1.5):
                    notes and [keys.send([0x80, n, 0]) for n in notes]
                    break
                for n in notes:
                    keys.send([0x80, n, 0])

        th = threading.Thread(target=player, daemon=True)
        th.start()
        t = time.perf_counter() + 0.05
        end = t + args.minutes * 60
        tempi = [120.0, 96.0, 140.0, 110.0]
        sleep_until(t)
        clk.send([0xFA])
        start = t
        next_rss = t
        k = 0
        while t < end:
            bpm = tempi[int((t - start) // 20) % len(tempi)]     # a new tempo every 20 s
            sleep_until(t)
            clk.send([0xF8])
            pulses.append(time.perf_counter())
            t += 60.0 / bpm / 24
            k += 1
            if t > next_rss:
                rss.append((t - start, rss_mb(play.proc.pid)))
                next_rss += 10
        clk.send([0xFC])
        stop.set()
        th.join()
        time.sleep(0.3)
        code = play.signal(15)
        time.sleep(0.2)
        rx.close(); clk.close(); keys.close()

    pulses_a = np.array(pulses)
    ev = [(a, m) for a, (_, m) in zip(rx.arrivals, rx.events)]
    ons = [a for a, m in ev if len(m) == 3 and m[0] & 0xF0 == 0x90 and m[2] > 0]
    groups = [a for i, a in enumerate(sorted(ons)) if i == 0 or a - sorted(ons)[i - 1] > 0.004]
    idx = np.searchsorted(pulses_a, np.array(groups)) - 1          # the last pulse sent before the onset
    idx = np.clip(idx, 0, len(pulses_a) - 1)
    off_grid = int(np.sum(idx % ppf != 0))
    delay = (np.array(groups) - pulses_a[idx]) * 1e3
    # longest note in frames
    longest, start_of = 0.0, {}
    for a, m in ev:
        if len(m) == 3 and m[0] & 0xE0 == 0x80:
            if m[0] & 0xF0 == 0x90 and m[2] > 0:
                start_of[m[1]] = a
            elif m[1] in start_of:
                longest = max(longest, a - start_of.pop(m[1]))
    r = np.array([x[0] for _, x in rss])
    pr = np.array([x[1] for _, x in rss])
    print(f"exit code {code}; {len(pulses)} pulses, {len(groups)} onset groups "
          f"(frames with a new note; {len(pulses) // ppf} frames)")
    print(f"onsets off the frame pulses: {off_grid}; onset after its pulse: median {np.median(delay):.2f} ms, "
          f"p99 {np.percentile(delay, 99):.2f} ms, max {delay.max():.2f} ms")
    print(f"stuck notes: {unmatched_notes([(0, m) for _, m in ev])}; longest note {longest:.2f} s "
          f"(watchdog {args.max_note_frames} frames = {args.max_note_frames * 60 / 96 / args.steps_per_beat:.2f} s at the slowest tempo)")
    print(f"RSS MB: first {r[0]:.1f}, after 1 min {r[min(6, len(r) - 1)]:.1f}, last {r[-1]:.1f}, max {r.max():.1f}")
    print(f"private MB (RSS without JACK's shared memory): first {pr[0]:.1f}, after 1 min "
          f"{pr[min(6, len(pr) - 1)]:.1f}, last {pr[-1]:.1f}, max {pr.max():.1f}")
    print(play.stderr.strip().splitlines()[-1])


if __name__ == "__main__":
    main()

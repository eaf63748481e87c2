"""Soak run of `live-rnnrbm play` following an external MIDI clock, with tempo changes and notes
played in, through a JACK dummy server.

    python3 benchmarks/soak.py                      # 30 minutes
    python3 benchmarks/soak.py --minutes 3 --weights weights/nottingham.npz

Checks: every model onset lands on a frame pulse (pulse index a multiple of 24/steps_per_beat after
Start, within a few ms of it), counting the pulses play heard — JACK's dummy driver on a busy VM
has xruns, and a pulse dropped in one cannot be counted by anyone (``grid_verdict``); the same
check on JACK's frame stamps (jack_midi_dump); no stuck note (every note-on gets its note-off, no
note longer than max_note_frames); resident memory flat, and under 200 MB without the segment
that libjack maps into every JACK client (sampled every 10 s).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from jackd import (JackServer, Play, Receiver, Sender, onset_groups, sleep_until,  # noqa: E402
                   unmatched_notes)
from live_rnnrbm.live.midi import CLOCK, KIND, NOTE_OFF, NOTE_ON, START, STOP  # noqa: E402


def rss_mb(pid: int) -> tuple[float, float]:
    """(RSS, RSS without JACK's shared segment) in MB. libjack maps the server's shared memory
    (≈ 105 MB at these settings, a compile-time size of jack2, locked into RAM) into every JACK
    client, so it counts in each client's RSS; with ALSA or CoreMIDI it does not exist."""
    rss = jack = 0.0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):                    # what ps and top show
            rss = int(line.split()[1])
    name = ""
    for line in open(f"/proc/{pid}/smaps"):
        first = line.split(None, 6)
        if "-" in first[0] and ":" not in first[0]:      # a mapping's header line
            name = first[5].strip() if len(first) > 5 else ""
        elif first[0] == "Rss:" and name.startswith("/dev/shm/jack"):
            jack += int(first[1])
    return rss / 1024, (rss - jack) / 1024


def on_grid_in_jack_frames(path: Path, ppf: int, sent: int) -> str:
    """The grid check on JACK's frame stamps: each onset group (frame with a new note) against the
    clock pulses as JACK delivered them to jack_midi_dump, independent of any process's
    scheduling (the dump, a JACK client too, can lose pulses in an xrun as well)."""
    pulses, note_ons = [], []
    for line in open(path):
        parts = line.replace(":", " ").split()
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        t, status = int(parts[0]), int(parts[1], 16)
        if status == CLOCK:
            pulses.append(t)
        elif status & KIND == NOTE_ON and len(parts) >= 4 and int(parts[3], 16) > 0:
            note_ons.append(t)
    ons = onset_groups(note_ons, gap=384)        # one frame's note-ons: within 8 ms at 48 kHz
    if not pulses or not ons:
        return f"{len(pulses)} pulses, {len(ons)} onset groups"
    p, o = np.array(pulses), np.array(ons)
    idx = np.clip(np.searchsorted(p, o, side="right") - 1, 0, len(p) - 1)
    lag = (o - p[idx]) / 48.0
    # The dump is a JACK client with xruns of its own: its view is a cross-check, not the verdict
    # (phase steps here that the sender's count does not show happened on the way to the dump).
    verdict = grid_verdict(idx, lag, ppf, sent - len(p))
    return (f"{len(p)} pulses, {len(o)} onset groups; onset after its pulse median {np.median(lag):.2f} ms, "
            f"max {lag.max():.2f} ms; phase as the dump saw it: " + verdict.split(": ", 1)[1]
            .replace("before play", "before the dump"))


def grid_verdict(idx: np.ndarray, delay_ms: np.ndarray, ppf: int, missed: int | None) -> str:
    """Every frame on its pulse, counting the pulses play heard.

    An onset at sent pulse i has phase i mod ppf. A pulse that JACK drops before it reaches play
    (an xrun: the dummy driver on a busy VM has them) moves every later frame one pulse later
    against the sender's count, so the phase steps up by one for each pulse lost. The grid is
    right when the phase starts at 0 and steps up exactly as often as pulses were lost; a lone
    onset off its neighbours' phase is a late delivery (listed with its delay), not a shift."""
    phases = idx % ppf
    lone = [i for i in range(1, len(phases) - 1)
            if phases[i] != phases[i - 1] and phases[i - 1] == phases[i + 1]]
    keep = np.ones(len(phases), bool)
    keep[lone] = False
    runs = []                                   # (first pulse, phase, onsets)
    for i, ph in zip(idx[keep], phases[keep]):
        if runs and runs[-1][1] == ph:
            runs[-1][2] += 1
        else:
            runs.append([int(i), int(ph), 1])
    steps = [(b[0], (b[1] - a[1]) % ppf) for a, b in zip(runs, runs[1:])]
    shift = sum(d for _, d in steps)
    early = [i for i in lone if phases[i] != (phases[i - 1] + 1) % ppf]   # not one pulse late: wrong
    ok = bool(runs) and runs[0][1] == 0 and missed is not None and shift == missed and not early
    where = ", ".join(f"+{d} at pulse {i}" for i, d in steps) or "none"
    lone_s = ", ".join(f"pulse {idx[i]} ({delay_ms[i]:.1f} ms late)" for i in lone[:5]) or "none"
    return (f"grid {'OK' if ok else 'WRONG'}: phase {runs[0][1] if runs else '?'} at the start, shifts {where} "
            f"(pulses lost before play: {missed}); lone onsets off their neighbours' pulse: {lone_s}")


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
            from live_rnnrbm.data.weights import save_weights
            weights = str(save_weights(RnnRbm(seed=11), Path(tmp) / "random.npz", steps_per_beat=4, bpm=120))
        play = Play(jack, ["--weights", weights, "--port", "soak", "--clock", "soak-clock", "--input", "soak-in",
                           "--mode", "follow", "--steps-per-beat", str(args.steps_per_beat),
                           "--max-note-frames", str(args.max_note_frames), "--seed", "1"])
        rx, clk, keys = Receiver("soak-rx"), Sender("soak-clock-tx"), Sender("soak-keys")
        jack.connect("soak:out", rx.name)
        jack.connect(clk.name, "soak-clock:clock")
        jack.connect(keys.name, "soak-in:in")
        # JACK's own view, frame-exact: the clock as sent and the model's notes, merged on one port
        dump_file = open(Path(tmp) / "dump.txt", "w")
        dump = subprocess.Popen(["jack_midi_dump", "-a", "soak-dump"], env=jack.env, stdout=dump_file,
                                stderr=subprocess.DEVNULL)
        for _ in range(50):
            if subprocess.run(["jack_lsp", "soak-dump:input"], env=jack.env, capture_output=True,
                              text=True).stdout.strip():
                break
            time.sleep(0.1)
        jack.connect(clk.name, "soak-dump:input")
        jack.connect("soak:out", "soak-dump:input")
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
                    keys.send([NOTE_ON, n, 90])
                if stop.wait(1.5):
                    notes and [keys.send([NOTE_OFF, n, 0]) for n in notes]
                    break
                for n in notes:
                    keys.send([NOTE_OFF, n, 0])

        th = threading.Thread(target=player, daemon=True)
        th.start()
        t = time.perf_counter() + 0.05
        end = t + args.minutes * 60
        tempi = [120.0, 96.0, 140.0, 110.0]
        sleep_until(t)
        clk.send([START])
        start = t
        next_rss = t
        k = 0
        while t < end:
            bpm = tempi[int((t - start) // 20) % len(tempi)]     # a new tempo every 20 s
            sleep_until(t)
            clk.send([CLOCK])
            pulses.append(time.perf_counter())
            t += 60.0 / bpm / 24
            k += 1
            if t > next_rss:
                rss.append((t - start, rss_mb(play.proc.pid)))
                next_rss += 10
        clk.send([STOP])
        stop.set()
        th.join()
        time.sleep(0.3)
        code = play.signal(15)
        time.sleep(0.2)
        dump.terminate(); dump.wait(); dump_file.close()
        rx.close(); clk.close(); keys.close()
        jack_view = on_grid_in_jack_frames(Path(tmp) / "dump.txt", ppf, len(pulses))
        xruns = [line for line in jack.log.splitlines() if "xrun" in line.lower() or "not finished" in line]
        if os.environ.get("SOAK_JACK_LOG"):
            Path(os.environ["SOAK_JACK_LOG"]).write_text(jack.log)

    pulses_a = np.array(pulses)
    ev = [(a, m) for a, (_, m) in zip(rx.arrivals, rx.events)]
    groups = onset_groups(sorted(a for a, m in ev if len(m) == 3 and m[0] & KIND == NOTE_ON and m[2] > 0))
    idx = np.searchsorted(pulses_a, np.array(groups)) - 1          # the last pulse sent before the onset
    idx = np.clip(idx, 0, len(pulses_a) - 1)
    off_grid = int(np.sum(idx % ppf != 0))
    delay = (np.array(groups) - pulses_a[idx]) * 1e3
    heard = re.search(r"(\d+) clock pulses", play.stderr)
    missed = len(pulses) - int(heard.group(1)) if heard else None
    # longest note in frames
    longest, start_of = 0.0, {}
    for a, m in ev:
        if len(m) == 3 and m[0] & KIND in (NOTE_OFF, NOTE_ON):
            if m[0] & KIND == NOTE_ON and m[2] > 0:
                start_of[m[1]] = a
            elif m[1] in start_of:
                longest = max(longest, a - start_of.pop(m[1]))
    r = np.array([x[0] for _, x in rss])
    pr = np.array([x[1] for _, x in rss])
    print(f"exit code {code}; {len(pulses)} pulses, {len(groups)} onset groups "
          f"(frames with a new note; {len(pulses) // ppf} frames)")
    print(f"play heard {len(pulses) - missed if missed is not None else '?'} of the {len(pulses)} pulses sent "
          f"(JACK lost {missed} on the way)")
    print(grid_verdict(idx, delay, ppf, missed))
    print(f"onsets off the frame pulses: {off_grid}; onset after its pulse: median {np.median(delay):.2f} ms, "
          f"p99 {np.percentile(delay, 99):.2f} ms, max {delay.max():.2f} ms")
    print(f"stuck notes: {unmatched_notes([(0, m) for _, m in ev])}; longest note {longest:.2f} s "
          f"(watchdog {args.max_note_frames} frames = {args.max_note_frames * 60 / 96 / args.steps_per_beat:.2f} s at the slowest tempo)")
    print(f"RSS MB: first {r[0]:.1f}, after 1 min {r[min(6, len(r) - 1)]:.1f}, last {r[-1]:.1f}, max {r.max():.1f}")
    print(f"RSS without JACK's shared segment, MB (goal ≤ 200): first {pr[0]:.1f}, after 1 min "
          f"{pr[min(6, len(pr) - 1)]:.1f}, last {pr[-1]:.1f}, max {pr.max():.1f}")
    print(f"in JACK's frames (jack_midi_dump): {jack_view}")
    late = re.findall(r"client = (\S+) was not finished", "\n".join(xruns))
    who = ", ".join(f"{c} {late.count(c)}" for c in sorted(set(late), key=late.count, reverse=True))
    print(f"jackd: {sum('Process XRun' in x for x in xruns)} cycles overran; clients not finished in time: "
          f"{who or 'none'}")
    print(play.stderr.strip().splitlines()[-1])


if __name__ == "__main__":
    main()

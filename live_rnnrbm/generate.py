"""`live-rnnrbm generate`: a piece written offline to a .mid file, and a piano-roll picture.

    live-rnnrbm generate --frames 256 --seed 7 --out piece.mid --png roll.png
    live-rnnrbm generate --weights jsb --primer chorale.mid --temperature 0.9 --out more.mid
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .data.pianoroll import MidiReadError, midi_to_roll, roll_to_midi
from .data.weights import WeightsError, frame_resolution, generation_settings, load_model


def draw_roll(frames: np.ndarray, path: str | Path, lowest_note: int, title: str = "",
              seconds_per_frame: float | None = None, primer_frames: int = 0) -> None:
    """Save a piano-roll picture (time across, MIDI note up). Needs matplotlib (the 'plot' extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--png needs matplotlib: pip install 'live-rnnrbm[plot]'") from None
    T, n = frames.shape
    used = np.nonzero(frames.any(axis=0))[0]
    lo, hi = (used.min(), used.max()) if len(used) else (0, n - 1)
    lo, hi = max(0, lo - 3), min(n - 1, hi + 3)
    fig, ax = plt.subplots(figsize=(min(24, 4 + T / 16), 5), dpi=100)
    scale = seconds_per_frame or 1.0
    ax.imshow(frames[:, lo:hi + 1].T, origin="lower", aspect="auto", cmap="Greys", interpolation="nearest",
              extent=(0, T * scale, lowest_note + lo - 0.5, lowest_note + hi + 0.5))
    if primer_frames:
        ax.axvline(primer_frames * scale, color="tab:red", lw=1, label="end of primer")
        ax.legend(loc="upper right")
    cs = [c for c in range(0, 128, 12) if lowest_note + lo <= c <= lowest_note + hi]
    for c in cs:  # a faint line under every C, labelled as musicians name it (C4 = MIDI 60)
        ax.axhline(c - 0.5, color="tab:blue", lw=0.4, alpha=0.5)
    ax.set_yticks(cs, [f"C{c // 12 - 1} ({c})" for c in cs])
    ax.set_xlabel("time (s)" if seconds_per_frame else "frame")
    ax.set_ylabel("note (MIDI number)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="weights file, or a shipped name (nottingham, jsb); default: nottingham")
    p.add_argument("--frames", type=int, default=256, help="frames to generate (default 256)")
    p.add_argument("--seed", type=int, default=None, help="random seed: the same seed gives the same piece")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default: the weights' generation_temperature, else 1 = the model)")
    p.add_argument("--density", type=float, default=None,
                   help="every note's odds × density (default: the weights' generation_density, else 1)")
    p.add_argument("--register", type=float, default=None,
                   help="hold the piece's register, this many semitones wide (default: the weights' "
                   "generation_register, else none; 0: none)")
    p.add_argument("--k", type=int, default=None,
                   help="Gibbs steps per frame (default: the weights' generation_k, else 25 as the tutorial)")
    p.add_argument("--primer", help="a MIDI file to run the RNN over first; the piece continues it")
    p.add_argument("--out", default="generated.mid", help="the .mid file to write (default generated.mid)")
    p.add_argument("--png", help="also draw the piano-roll into this picture")
    p.add_argument("--bpm", type=float, default=None, help="tempo of the written file for beat-grid weights")
    p.add_argument("--velocity", type=int, default=80, help="note velocity 1..127 (default 80)")


def run(args: argparse.Namespace) -> int:
    from .cli import flag_errors
    wrong = flag_errors(args, [("frames", lambda v: v >= 1, "≥ 1"), ("k", lambda v: v >= 1, "≥ 1"),
                               ("temperature", lambda v: v > 0, "> 0"),
                               ("density", lambda v: v > 0, "> 0"), ("register", lambda v: v >= 0, "≥ 0"),
                               ("velocity", lambda v: 1 <= v <= 127, "in 1..127"),
                               ("bpm", lambda v: v > 0, "> 0")])
    if wrong:
        print(f"error: {wrong}", file=sys.stderr)
        return 2
    try:
        model = load_model(args.weights, args.seed)
        res = frame_resolution(model)
        primer = None
        if args.primer:
            roll = midi_to_roll(args.primer, lowest_note=model.lowest_note, highest_note=model.highest_note, **res)
            if roll.dropped:
                print(f"primer: {roll.dropped} note(s) outside {model.lowest_note}..{model.highest_note} dropped",
                      file=sys.stderr)
            primer = roll.frames
    except (WeightsError, MidiReadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    how = generation_settings(model, args.k, args.temperature, args.density, args.register)
    frames = model.generate(args.frames, k=how.k, temperature=how.temperature, primer=primer, density=how.density,
                            register=how.register)
    bpm = args.bpm or float(model.meta.get("bpm", 120.0))
    full = frames if primer is None else np.concatenate([primer.astype(frames.dtype), frames])
    mid = roll_to_midi(full, bpm=bpm, lowest_note=model.lowest_note, velocity=args.velocity, **res)
    mid.save(args.out)
    spf = res.get("dt") or 60.0 / bpm / res["steps_per_beat"]
    print(f"wrote {args.out}: {len(full)} frames ({len(full) * spf:.1f} s), "
          f"{int(frames.sum())} note-frames, {frames.sum(1).mean():.2f} notes per frame on average "
          f"(k {how.k}, temperature {how.temperature:g}, density {how.density:g}"
          + (f", register {how.register:g})" if how.register else ")"))
    if args.png:
        name = Path(str(model.meta.get("trained_on") or "untrained model")).name
        draw_roll(full, args.png, model.lowest_note, f"live-rnnrbm · {name} · seed {model.seed} · T={how.temperature}",
                  spf, 0 if primer is None else len(primer))
        print(f"wrote {args.png}")
    return 0

"""Keys and transpositions of a piano-roll: the key a piece is in (Krumhansl–Schmuckler), the
shifts that keep its notes in range, and the transposition to C major / C minor (as the benchmark
pickles are).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .pianoroll import PianoRoll


PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")  # by pitch class

# Krumhansl & Kessler (1982) key profiles, tonic first
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_MODE_WORDS = {"": "major", "major": "major", "maj": "major", "minor": "minor", "min": "minor", "m": "minor"}


def parse_key(text: str) -> tuple[int, str]:
    """(tonic pitch class, 'major'|'minor') of a key written as a musician writes it: a letter A–G,
    then # or b (or ♯, ♭), then major / minor (or maj, min, m; major when left out): "D", "Bb minor",
    "f#m", "Eb major". ValueError saying what is allowed for anything else."""
    t = text.strip().replace("♯", "#").replace("♭", "b")
    letter, rest = t[:1].upper(), t[1:]
    accidental = rest[:1] if rest[:1] in ("#", "b") else ""
    mode = _MODE_WORDS.get(rest[len(accidental):].strip().lower())
    if letter not in _LETTERS or mode is None:
        raise ValueError(f"{text!r} is not a key: write a note A-G, then # or b if any, then major or minor "
                         f"(major when left out), e.g. D, Bb minor, F#m")
    return (_LETTERS[letter] + {"#": 1, "b": -1, "": 0}[accidental]) % 12, mode


def key_name(tonic: int, mode: str) -> str:
    """The key's name as ``parse_key`` reads it back: "Eb major", "F# minor"."""
    return f"{PITCH_NAMES[tonic % 12]} {mode}"


def to_c_shift(tonic: int) -> int:
    """The shift (−6..5 semitones) that moves a key with this tonic to C: the benchmark pickles'
    key (C major and C minor), where the shipped models learned to listen."""
    return (-tonic + 6) % 12 - 6


_KEYS = [(tonic, mode) for tonic in range(12) for mode in ("major", "minor")]
_PROFILES = np.array([np.roll(profile, tonic) for tonic in range(12) for profile in (_MAJOR, _MINOR)])
_CENTRED = _PROFILES - _PROFILES.mean(axis=1, keepdims=True)


def estimate_key(frames: np.ndarray, lowest_note: int) -> tuple[int, str]:
    """(tonic pitch class 0..11, 'major'|'minor') by the Krumhansl–Schmuckler method: the key
    profile best correlated with the piece's duration-weighted pitch-class histogram (the first
    of C major, C minor, C# major … on a tie; C major for a piece with no notes)."""
    counts = frames.sum(axis=0).astype(np.float64)
    hist = np.zeros(12)
    np.add.at(hist, (lowest_note + np.arange(frames.shape[1])) % 12, counts)
    h = hist - hist.mean()
    if not h.any():  # no notes, or all twelve alike: no key stands out
        return _KEYS[0]
    # the 24 Pearson correlations in one product (np.corrcoef one by one was most of a cache build's overhead)
    r = (_CENTRED @ h) / (np.linalg.norm(_CENTRED, axis=1) * np.linalg.norm(h))
    return _KEYS[int(np.argmax(r))]


def shift_frames(frames: np.ndarray, shift: int) -> np.ndarray:
    """The roll moved up by ``shift`` semitones (notes pushed off the range are dropped)."""
    if shift == 0:
        return frames
    out = np.zeros_like(frames)
    if shift > 0:
        out[:, shift:] = frames[:, :-shift]
    else:
        out[:, :shift] = frames[:, -shift:]
    return out


def shift_range(frames: np.ndarray) -> tuple[int, int]:
    """The shifts (lo, hi) that keep every note of the piece inside the roll's range."""
    used = np.nonzero(frames.any(axis=0))[0]
    if len(used) == 0:
        return 0, 0
    return -int(used[0]), frames.shape[1] - 1 - int(used[-1])


def key_shift(shift: int, lo: int, hi: int) -> int | None:
    """The transposition into the key ``shift`` semitones away that a piece allowing the shifts
    lo..hi (``shift_range``) can take: the shift itself, else the same key an octave up or down;
    None when the piece is too wide for that key."""
    for s in (shift, shift + 12, shift - 12):
        if lo <= s <= hi:
            return int(s)
    return None


def in_range_shift(shift: int, lo: int, hi: int) -> int:
    """``key_shift``, else the nearest allowed shift (a piece too wide for that key)."""
    s = key_shift(shift, lo, hi)
    return int(min(max(shift, lo), hi)) if s is None else s


def to_common_key(roll: PianoRoll) -> tuple[PianoRoll, int]:
    """Transpose a piece to C major or C minor (as the benchmark pickles are), by the nearest
    shift in −6..5 that keeps it in range. Returns (roll, shift)."""
    tonic, _ = estimate_key(roll.frames, roll.lowest_note)
    s = key_shift(to_c_shift(tonic), *shift_range(roll.frames))  # −6..5, or an octave away
    if s is None:
        return roll, 0
    return dataclasses.replace(roll, frames=shift_frames(roll.frames, s)), s

"""A corpus of piano-rolls from what a user names on the command line: .mid/.midi files, folders
(searched recursively), globs, or a benchmark pickle with a split.

A file that cannot be read is skipped with a warning that names it and the reason; the rest load.

>>> corpus = load_corpus(["tunes/", "extra/*.mid"], steps_per_beat=2)   # doctest: +SKIP
>>> corpus = load_corpus(["Nottingham.pickle"], split="valid")          # doctest: +SKIP
>>> len(corpus.rolls), corpus.frames, corpus.skipped                    # doctest: +SKIP
"""
from __future__ import annotations

import glob
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from ..model import HIGHEST_NOTE, LOWEST_NOTE
from .pianoroll import MidiReadError, PianoRoll, load_pickle, midi_to_roll

MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")
PICKLE_SUFFIXES = (".pickle", ".pkl")


class DataError(ValueError):
    """No usable data at all (the message says what was looked at)."""


@dataclass
class Corpus:
    rolls: list[PianoRoll] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    dropped_notes: int = 0

    @property
    def frames(self) -> int:
        return sum(len(r.frames) for r in self.rolls)

    def arrays(self, dtype=np.float32) -> list[np.ndarray]:
        return [np.ascontiguousarray(r.frames, dtype) for r in self.rolls]


def find_sources(sources: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively, MIDI files and pickles) and globs into a sorted file list;
    a name that matches nothing raises ``DataError`` naming it."""
    found: list[Path] = []
    for src in sources:
        s = str(src)
        p = Path(s)
        if p.is_dir():
            hits = [f for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in MIDI_SUFFIXES + PICKLE_SUFFIXES]
            if not hits:
                raise DataError(f"{s}: folder holds no MIDI files (.mid, .midi) or benchmark pickles")
            found += hits
        elif p.is_file():
            found.append(p)
        elif glob.has_magic(s):
            hits = [Path(f) for f in sorted(glob.glob(s, recursive=True)) if Path(f).is_file()]
            if not hits:
                raise DataError(f"{s}: the pattern matches no file")
            found += hits
        else:
            raise DataError(f"{s}: no such file or folder")
    seen, unique = set(), []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def load_corpus(sources: Iterable[str | Path], split: str = "train", dt: float | None = None,
                steps_per_beat: int | None = None, lowest_note: int = LOWEST_NOTE,
                highest_note: int = HIGHEST_NOTE, include_drums: bool = False,
                min_frames: int = 2, warn=None) -> Corpus:
    """Load every source into one corpus. MIDI files use ``dt`` or ``steps_per_beat`` (default: 2
    steps a beat); pickles bring their own beat grid and use ``split``. Unreadable files are
    skipped with a warning (``warn``, default ``warnings.warn``); pieces shorter than
    ``min_frames`` are skipped too. No usable piece at all raises ``DataError``."""
    warn = warn or (lambda msg: warnings.warn(msg, stacklevel=3))
    files = find_sources(sources)
    if dt is None and steps_per_beat is None:
        steps_per_beat = 2
    corpus = Corpus()
    for f in files:
        try:
            if f.suffix.lower() in PICKLE_SUFFIXES:
                rolls = load_pickle(f, split, lowest_note, highest_note)
            else:
                rolls = [midi_to_roll(f, dt, steps_per_beat, lowest_note, highest_note, include_drums)]
        except MidiReadError as e:
            corpus.skipped.append((str(f), str(e)))
            warn(f"skipped {e}")
            continue
        for r in rolls:
            corpus.dropped_notes += r.dropped
            if len(r.frames) < min_frames:
                reason = "no notes in range" if len(r.frames) == 0 else f"only {len(r.frames)} frame(s)"
                corpus.skipped.append((r.source, reason))
                warn(f"skipped {r.source}: {reason}")
                continue
            corpus.rolls.append(r)
    if not corpus.rolls:
        looked = ", ".join(str(f) for f in files[:5]) + (" …" if len(files) > 5 else "")
        raise DataError(f"no usable data: {len(files)} file(s) looked at ({looked}), "
                        f"{len(corpus.skipped)} skipped")
    return corpus


def spread(pieces: list[np.ndarray], n: int) -> list[np.ndarray]:
    """n evenly spread pieces (a fixed subset, the same every epoch); all when n is 0 or ≥ len."""
    if not n or n >= len(pieces):
        return pieces
    pick = np.unique(np.linspace(0, len(pieces) - 1, n).round().astype(int))
    return [pieces[i] for i in pick]

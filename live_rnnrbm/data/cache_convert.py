"""Converting the files of a corpus cache, in the worker processes of a build (``cache_build``): a
MIDI file or benchmark pickle to its hash and its pieces, each a row of the manifest's piece columns
and its bit-packed frames. Plain functions of picklable arguments and results, so that a build can
run them in any ``concurrent.futures.Executor``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import in_words
from .cache import Settings
from .corpus import PICKLE_SUFFIXES
from .keys import estimate_key
from .pianoroll import MidiReadError, PianoRoll, midi_to_roll, pickle_split, read_pickle


@dataclass
class Converted:
    """A file as the workers send it back: its hash, and its pieces (each a dict of the manifest's
    piece columns but the offset, and the packed frames) or why it was skipped."""

    blake2b: str
    error: str | None = None
    splits: list[str] | None = None
    pieces: list[tuple[dict, bytes]] = field(default_factory=list)
    unchanged: bool = False  # its hash was the one the cache knew: nothing converted


def _piece(roll: PianoRoll, split: str | None, index: int | None) -> tuple[dict, bytes]:
    tonic, mode = estimate_key(roll.frames, roll.lowest_note) if roll.frames.any() else (None, None)
    row = {"split": split, "index": index, "frames": len(roll.frames), "bpm": float(roll.bpm),
           "steps_per_beat": roll.steps_per_beat, "dt": roll.dt, "tonic": tonic, "mode": mode, "dropped": roll.dropped}
    return row, np.packbits(roll.frames != 0, axis=1).tobytes()


def convert_file(path: str, settings: Settings, known_hash: str | None = None) -> Converted:
    """One MIDI file (one piece) or benchmark pickle (every piece of every split), or why it
    cannot be read. With ``known_hash``, a file with that hash is not converted again."""
    try:
        digest = hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()
    except OSError as e:
        return Converted("", f"cannot be read: {in_words(e, path)}")
    if digest == known_hash:
        return Converted(digest, unchanged=True)
    lo, hi = settings.lowest_note, settings.highest_note
    try:
        if path.lower().endswith(PICKLE_SUFFIXES):
            data = read_pickle(path)
            splits = sorted(data, key=str)
            return Converted(digest, splits=[str(s) for s in splits],
                             pieces=[_piece(r, str(s), n) for s in splits
                                     for n, r in enumerate(pickle_split(path, data, s, lo, hi))])
        roll = midi_to_roll(path, settings.dt, settings.steps_per_beat, lo, hi, settings.include_drums)
        return Converted(digest, pieces=[_piece(roll, None, None)])
    except MidiReadError as e:
        reason = str(e)
        return Converted(digest, reason[len(path) + 2:] if reason.startswith(f"{path}: ") else reason)
    except Exception as e:  # noqa: BLE001 -- one odd file must not end a build of thousands
        return Converted(digest, f"could not be converted ({type(e).__name__}: {e})")


def convert_chunk(tasks: list[tuple[str, str | None]], settings: Settings) -> list[Converted]:
    """``convert_file`` over (path, known hash) pairs: the unit of work sent to a worker."""
    return [convert_file(path, settings, known) for path, known in tasks]

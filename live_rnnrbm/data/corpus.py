"""A corpus of piano-rolls from what a user names on the command line: .mid/.midi files, folders
(searched recursively), globs, a benchmark pickle with a split, or a corpus cache (a folder that
``live-rnnrbm corpus build`` wrote: see ``cache``).

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
from typing import Iterable, Sequence

import numpy as np

from ..model import HIGHEST_NOTE, LOWEST_NOTE
from .pianoroll import MidiReadError, PianoRoll, load_pickle, midi_to_roll

MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")
PICKLE_SUFFIXES = (".pickle", ".pkl")


class DataError(ValueError):
    """No usable data at all (the message says what was looked at)."""


@dataclass
class Corpus:
    # a list, or with a cache among the sources a sequence that unpacks each piece when it is read
    rolls: Sequence[PianoRoll] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    dropped_notes: int = 0

    @property
    def frames(self) -> int:
        lengths = getattr(self.rolls, "lengths", None)  # a cache's rolls count without unpacking
        return int(np.sum(lengths)) if lengths is not None else sum(len(r.frames) for r in self.rolls)

    def arrays(self, dtype=np.float32) -> list[np.ndarray]:
        return [np.ascontiguousarray(r.frames, dtype) for r in self.rolls]


def find_sources(sources: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively, MIDI files and pickles) and globs into a sorted file list;
    a corpus cache stays one entry, its folder. A name that matches nothing raises ``DataError``
    naming it."""
    return [f for f, _ in find_sources_with_roots(sources)]


def find_sources_with_roots(sources: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """``find_sources``, each file with the folder it was found under: the folder named, a named
    file's own folder, a glob's folder before its first wildcard (a cache records its files'
    paths relative to these, so that moving the data moves no name in it)."""
    from .cache import is_cache

    found: list[tuple[Path, Path]] = []
    for src in sources:
        s = str(src)
        p = Path(s)
        if p.is_dir() and is_cache(p):
            found.append((p, p))
        elif p.is_dir():
            hits = [f for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in MIDI_SUFFIXES + PICKLE_SUFFIXES]
            if not hits:
                raise DataError(f"{s}: folder holds no MIDI files (.mid, .midi) or benchmark pickles")
            found += [(f, p) for f in hits]
        elif p.is_file():
            found.append((p, p.parent))
        elif glob.has_magic(s):
            hits = [Path(f) for f in sorted(glob.glob(s, recursive=True)) if Path(f).is_file()]
            if not hits:
                raise DataError(f"{s}: the pattern matches no file")
            fixed = p.parts[:next(i for i, part in enumerate(p.parts) if glob.has_magic(part))]
            found += [(f, Path(*fixed) if fixed else Path(".")) for f in hits]
        else:
            raise DataError(f"{s}: no such file or folder")
    seen, unique = set(), []
    for f, root in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((f, root))
    return unique


def holds_pickles_only(source: Path) -> bool:
    """A benchmark pickle, or a cache built from pickles only: data whose pieces come in splits
    (train validates on their 'valid' split instead of holding pieces out)."""
    if source.suffix.lower() in PICKLE_SUFFIXES:
        return True
    from .cache import is_cache, read_cache
    return source.is_dir() and is_cache(source) and read_cache(source).pickles_only


def load_corpus(sources: Iterable[str | Path], split: str = "train", dt: float | None = None,
                steps_per_beat: int | None = None, lowest_note: int = LOWEST_NOTE,
                highest_note: int = HIGHEST_NOTE, include_drums: bool = False,
                min_frames: int = 2, warn=None) -> Corpus:
    """Load every source into one corpus. MIDI files use ``dt`` or ``steps_per_beat`` (default: 2
    steps a beat); pickles bring their own beat grid and use ``split``; a corpus cache gives the
    pieces of the files it was built from (``cache.open_cache``: it must have been built with these
    notes, and this resolution when one is given). Unreadable files are skipped with a warning
    (``warn``, default ``warnings.warn``); pieces shorter than ``min_frames`` are skipped too. No
    usable piece at all raises ``DataError``."""
    from .cache import RollChain, open_cache

    warn = warn or (lambda msg: warnings.warn(msg, stacklevel=3))
    files = find_sources(sources)
    asked_dt, asked_steps = dt, steps_per_beat  # a cache with neither asked keeps its own
    if dt is None and steps_per_beat is None:
        steps_per_beat = 2
    corpus = Corpus()
    parts: list[Sequence[PianoRoll]] = []  # the rolls read from files, and each cache's, in order
    rolls_read: list[PianoRoll] = []
    for f in files:
        if f.is_dir():  # find_sources gives a folder only when it is a cache
            cached = open_cache(f, split, asked_dt, asked_steps, lowest_note, highest_note, include_drums,
                                min_frames, warn)
            corpus.skipped += cached.skipped
            corpus.dropped_notes += cached.dropped_notes
            parts += [rolls_read, cached.rolls]
            rolls_read = []
            continue
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
                reason = too_short(len(r.frames))
                corpus.skipped.append((r.source, reason))
                warn(f"skipped {r.source}: {reason}")
                continue
            rolls_read.append(r)
    parts = [p for p in parts + [rolls_read] if len(p)]
    corpus.rolls = parts[0] if len(parts) == 1 else RollChain(parts) if parts else []
    if not len(corpus.rolls):
        looked = ", ".join(str(f) for f in files[:5]) + (" …" if len(files) > 5 else "")
        raise DataError(f"no usable data: {len(files)} file(s) looked at ({looked}), "
                        f"{len(corpus.skipped)} skipped")
    return corpus


def too_short(frames: int) -> str:
    """Why a piece of ``frames`` frames (fewer than the minimum) is skipped."""
    return "no notes in range" if frames == 0 else f"only {frames} frame(s)"


def spread(pieces: list[np.ndarray], n: int) -> list[np.ndarray]:
    """n evenly spread pieces (a fixed subset, the same every epoch); all when n is 0 or ≥ len."""
    if not n or n >= len(pieces):
        return pieces
    pick = np.unique(np.linspace(0, len(pieces) - 1, n).round().astype(int))
    return [pieces[i] for i in pick]

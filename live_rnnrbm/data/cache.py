"""The corpus cache: MIDI files and benchmark pickles converted to piano-rolls once, in parallel,
stored bit-packed and memory-mapped, converted again only where a file changed.

>>> info = build_cache(["Nottingham/train", "Nottingham/valid"], "nott-cache")  # doctest: +SKIP
>>> corpus = load_corpus(["nott-cache"])   # a cache is a source like a folder   # doctest: +SKIP

A cache is a folder of its own:

- ``rolls-<id>.bin``: every piece's frames one after the other, a frame its notes bit-packed by
  ``np.packbits`` (the lowest note in the first byte's highest bit: 11 bytes a frame for 88 notes),
  read through ``np.memmap``. Opening a cache reads only its manifest; a piece is unpacked when it
  is read.
- ``manifest.json``: the settings it was built with (MIDI resolution, note range, drums), the
  sources and the folders they were found in, one row a file (its path relative to its folder,
  size, mtime, BLAKE2b hash, the splits of a pickle, why it was skipped) and one row a piece (split
  and index in a pickle, offset and length in frames, the file's first tempo, resolution, estimated
  key, notes dropped outside the range). Both tables are stored by columns, one line a column: for
  176,581 files that parses in 0.16 s, where a list of one object a file took 0.7 s and JSON lines
  1.1 s (docs/training.md). Pieces shorter than a training minimum are kept (``min_frames`` is the
  reader's choice, as in ``load_corpus``).
- ``partial.json``, only after an interrupted build: the manifest of the files it had converted,
  which the next build takes over instead of converting them again. Nothing loads it as a cache.

A build writes a new rolls file and then replaces the manifest by a rename: an interrupted build
leaves the previous cache as it was. A file whose size and mtime are those the manifest records is
taken over unread; one whose mtime alone changed is hashed, and taken over when its contents did
not change (a copy or a checkout that reset the mtimes costs a read, not a conversion).

This module is the format and the reading side; ``cache_build`` builds, converting in
``cache_convert`` and writing through ``cache_write``. The conversion of a chunk of files is a
plain function (``cache_convert.convert_chunk``) of picklable arguments and results:
``build_cache`` runs it in a process pool, or in any ``concurrent.futures.Executor`` it is given
(the seam for running it on a cluster).
"""
from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import in_words
from ..model import HIGHEST_NOTE, LOWEST_NOTE
from .corpus import PICKLE_SUFFIXES, Corpus, DataError, too_short
from .pianoroll import PianoRoll

FORMAT = "live-rnnrbm corpus cache"
VERSION = 1
MANIFEST = "manifest.json"
PARTIAL = "partial.json"
LOCK = ".lock"
FILE_COLUMNS = ("root", "path", "size", "mtime_ns", "blake2b", "splits", "error", "pieces")
PIECE_COLUMNS = ("split", "index", "offset", "frames", "bpm", "steps_per_beat", "dt", "tonic", "mode", "dropped")
CHUNK_FILES = 64  # at most, per call of convert_chunk: fewer round trips than one a file, a bar that moves
PARTIAL_EVERY = 300.0  # seconds between saves of a long build's work, for a build that is killed
REBUILD = "live-rnnrbm corpus build SOURCES... --out DIR"


@dataclass(frozen=True)
class Settings:
    """What the files are converted with; a cache holds rolls of one set of these."""

    dt: float | None = None
    steps_per_beat: int | None = 2
    lowest_note: int = LOWEST_NOTE
    highest_note: int = HIGHEST_NOTE
    include_drums: bool = False

    @property
    def notes(self) -> int:
        return self.highest_note - self.lowest_note + 1

    @property
    def bytes_per_frame(self) -> int:
        return (self.notes + 7) // 8

    def resolution_flag(self) -> str:
        return f"--dt {self.dt}" if self.dt is not None else f"--steps-per-beat {self.steps_per_beat}"

    def describe(self) -> str:
        return (f"{self.resolution_flag()}, notes {self.lowest_note}..{self.highest_note}"
                + (", drums" if self.include_drums else ""))


def manifest_text(doc: dict) -> str:
    """The manifest as JSON: the header readable, each column on a line of its own."""
    lines = []
    for key, value in doc.items():
        if key in ("files", "pieces"):
            cols = ",\n".join(f'  "{c}": {json.dumps(v, separators=(",", ":"))}' for c, v in value.items())
            lines.append(f' "{key}": {{\n{cols}\n }}')
        else:
            lines.append(f' "{key}": {json.dumps(value)}')
    return "{\n" + ",\n".join(lines) + "\n}\n"


# --------------------------------------------------------------------------- reading


class Cache:
    """A cache's manifest, checked against its rolls file, which is memory-mapped."""

    def __init__(self, folder: str | Path, manifest: str = MANIFEST) -> None:
        self.folder = Path(folder)
        self.path = path = self.folder / manifest
        if not path.is_file():
            raise DataError(f"{folder}: not a corpus cache (no {MANIFEST}); build one with `{REBUILD}`")
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot be read ({in_words(e, path)}): build the cache again "
                            f"with `{REBUILD}`") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise DataError(f"{path}: not the manifest of a corpus cache")
        if doc.get("version") != VERSION:
            raise DataError(f"{folder}: a corpus cache of format version {doc.get('version')}; this live-rnnrbm "
                            f"reads version {VERSION}: build it again with `{REBUILD}`")
        try:
            self.settings = Settings(**doc["settings"])
            self.roots: list[str] = doc["roots"]
            self.sources: list[str] = doc["sources"]
            self.built: dict = doc["built"]
            self.files = {k: doc["files"][k] for k in FILE_COLUMNS}
            self.pieces = {k: doc["pieces"][k] for k in PIECE_COLUMNS}
            self.rolls_name = str(doc["rolls"]["file"])
            total = int(doc["rolls"]["frames"])
        except (KeyError, TypeError) as e:
            raise DataError(f"{path}: damaged (no {e}): build the cache again with `{REBUILD}`") from None
        self.n_files = len(self.files["path"])
        self.offsets = np.asarray(self.pieces["offset"], np.int64)
        self.frames = np.asarray(self.pieces["frames"], np.int64)
        self.first_piece = np.concatenate([[0], np.cumsum(np.asarray(self.files["pieces"], np.int64))])
        if (any(len(c) != self.n_files for c in self.files.values())
                or any(len(c) != len(self.offsets) for c in self.pieces.values())
                or self.first_piece[-1] != len(self.offsets)
                or (len(self.offsets) and ((self.offsets < 0).any() or (self.offsets + self.frames > total).any()))):
            raise DataError(f"{path}: damaged (its tables disagree): build the cache again with `{REBUILD}`")
        rolls = self.folder / self.rolls_name
        bpf = self.settings.bytes_per_frame
        try:
            size = rolls.stat().st_size
        except OSError:
            raise DataError(f"{folder}: {self.rolls_name} is missing: the cache is damaged; build it again "
                            f"with `{REBUILD}`") from None
        if size != total * bpf:
            raise DataError(f"{folder}: {self.rolls_name} holds {size:,} bytes where the manifest says "
                            f"{total * bpf:,} (cut short?): the cache is damaged; build it again with `{REBUILD}`")
        self.rolls = (np.memmap(rolls, np.uint8, "r", shape=(total, bpf)) if total
                      else np.zeros((0, bpf), np.uint8))
        self.pickles_only = all(p.lower().endswith(PICKLE_SUFFIXES) for p in self.files["path"])

    def file_name(self, i: int) -> str:
        return os.path.join(self.roots[self.files["root"][i]], self.files["path"][i])

    def packed(self, j: int) -> np.ndarray:
        o = int(self.offsets[j])
        return self.rolls[o:o + int(self.frames[j])]

    def check(self, dt: float | None, steps_per_beat: int | None, lowest_note: int, highest_note: int,
              include_drums: bool) -> None:
        """``DataError`` unless the cache holds rolls of these settings (no resolution asked: any)."""
        s = self.settings
        if (lowest_note, highest_note) != (s.lowest_note, s.highest_note):
            raise DataError(f"{self.folder}: the cache holds notes {s.lowest_note}..{s.highest_note}, not "
                            f"{lowest_note}..{highest_note} as asked: build one with --lowest-note {lowest_note} "
                            f"--highest-note {highest_note} (`{REBUILD}`)")
        if self.pickles_only:  # pickles bring their own beat grid and have no drums
            return
        asked = Settings(dt, steps_per_beat, lowest_note, highest_note, include_drums)
        if (dt, steps_per_beat) != (None, None) and (dt, steps_per_beat) != (s.dt, s.steps_per_beat):
            want = asked.resolution_flag()
            raise DataError(f"{self.folder}: the cache was built with {s.resolution_flag()}, not {want} as asked: "
                            f"build one with {want} (`{REBUILD}`)")
        if include_drums != s.include_drums:
            raise DataError(f"{self.folder}: the cache was built {'with' if s.include_drums else 'without'} drums: "
                            "build another for the other choice")


_memo: dict[str, tuple[tuple, Cache]] = {}


def read_cache(folder: str | Path) -> Cache:
    """The cache in ``folder``, read once while its manifest stays the same (``DataError`` when it is
    not a cache, or is damaged)."""
    key = os.path.abspath(folder)
    try:
        st = os.stat(Path(folder) / MANIFEST)
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        stamp = None
    if stamp is not None and key in _memo and _memo[key][0] == stamp:
        return _memo[key][1]
    cache = Cache(folder)
    if stamp is not None:
        if len(_memo) >= 4:
            _memo.pop(next(iter(_memo)))
        _memo[key] = (stamp, cache)
    return cache


def is_cache(folder: str | Path) -> bool:
    """A folder whose manifest says it is a corpus cache (damaged or not: opening it says)."""
    try:
        with open(Path(folder) / MANIFEST, "rb") as f:
            return FORMAT.encode() in f.read(256)
    except OSError:
        return False


class CachedRolls(Sequence):
    """Pieces of a cache, each unpacked from the memory-mapped rolls when it is read."""

    def __init__(self, cache: Cache, pieces: list[int], sources: list[str]) -> None:
        self.cache, self.pieces, self.sources = cache, np.asarray(pieces, np.int64), sources
        self.lengths = cache.frames[self.pieces]

    def __len__(self) -> int:
        return len(self.pieces)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        c, j = self.cache, int(self.pieces[i])
        p = c.pieces
        frames = np.unpackbits(c.packed(j), axis=1, count=c.settings.notes)
        return PianoRoll(frames, c.settings.lowest_note, p["dt"][j], p["steps_per_beat"][j], p["bpm"][j],
                         p["dropped"][j], self.sources[i])


class RollChain(Sequence):
    """Sequences of rolls as one, in order (a cache's, and the files read beside it)."""

    def __init__(self, parts: list[Sequence[PianoRoll]]) -> None:
        self.parts = parts
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        self.lengths = np.concatenate([np.asarray(p.lengths if hasattr(p, "lengths") else [len(r.frames) for r in p],
                                                  np.int64) for p in parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        k = int(np.searchsorted(self.starts, i, "right")) - 1
        return self.parts[k][i - int(self.starts[k])]

    def __iter__(self) -> Iterator[PianoRoll]:
        return itertools.chain.from_iterable(self.parts)


def open_cache(folder: str | Path, split: str = "train", dt: float | None = None, steps_per_beat: int | None = None,
               lowest_note: int = LOWEST_NOTE, highest_note: int = HIGHEST_NOTE, include_drums: bool = False,
               min_frames: int = 2, warn: Callable[[str], None] | None = None) -> Corpus:
    """The pieces of a cache, as ``load_corpus`` gives them from the sources it was built from:
    every MIDI file's, the pickles' of ``split``, in the same order, skipping what it skips (one
    warning for them all, which ``live-rnnrbm corpus info`` details). ``DataError`` when the cache
    was built with other notes or drums, or another resolution than one asked for."""
    cache = read_cache(folder)
    cache.check(dt, steps_per_beat, lowest_note, highest_note, include_drums)
    files, pieces = cache.files, cache.pieces
    chosen: list[int] = []
    sources: list[str] = []
    skipped: list[tuple[str, str]] = []
    dropped = 0
    for i in range(cache.n_files):
        name = cache.file_name(i)
        splits = files["splits"][i]
        if files["error"][i] is not None:
            skipped.append((name, f"{name}: {files['error'][i]}"))
            continue
        if splits is not None and split not in splits:
            skipped.append((name, f"{name}: no split '{split}' (it has: {', '.join(splits)})"))
            continue
        for j in range(int(cache.first_piece[i]), int(cache.first_piece[i + 1])):
            if pieces["split"][j] is not None and pieces["split"][j] != split:
                continue
            source = name if splits is None else f"{os.path.basename(name)}:{split}[{pieces['index'][j]}]"
            dropped += pieces["dropped"][j]
            if cache.frames[j] < min_frames:
                skipped.append((source, too_short(int(cache.frames[j]))))
                continue
            chosen.append(j)
            sources.append(source)
    if skipped and warn is not None:
        first = skipped[0][1] if skipped[0][1].startswith(skipped[0][0]) else f"{skipped[0][0]}: {skipped[0][1]}"
        warn(f"skipped {len(skipped)} file(s) or piece(s) of the cache {folder}"
             + (f": {first}" if len(skipped) == 1 else f", the first {first}; `live-rnnrbm corpus info {folder}` "
                "lists them"))
    return Corpus(CachedRolls(cache, chosen, sources), skipped, dropped)

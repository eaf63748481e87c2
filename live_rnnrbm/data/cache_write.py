"""Writing a corpus cache into its folder (the format is ``cache``'s): the new rolls file and
manifest as a build goes (``CacheWriter``), the pieces it takes over from a previous cache, the lock
one build holds, and the tidying of the rolls files no manifest names.
"""
from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .cache import FILE_COLUMNS, FORMAT, LOCK, MANIFEST, PARTIAL, PIECE_COLUMNS, VERSION, Cache, Settings, manifest_text
from .corpus import DataError
from .weights import write_atomically


class CacheWriter:
    """The new cache as it is written: frames appended to a new rolls file, the manifest's rows kept."""

    def __init__(self, folder: Path, settings: Settings, sources: list[str], roots: list[str]) -> None:
        self.folder, self.settings, self.sources, self.roots = folder, settings, sources, roots
        self.rolls_name = f"rolls-{uuid.uuid4().hex[:12]}.bin"
        self.out = open(folder / self.rolls_name, "wb", buffering=1 << 20)
        self.total = 0
        self.files: dict[str, list] = {k: [] for k in FILE_COLUMNS}
        self.pieces: dict[str, list] = {k: [] for k in PIECE_COLUMNS}

    def add(self, row: dict, pieces: Iterable[tuple[dict, object]]) -> None:
        n = 0
        for piece, packed in pieces:
            self.pieces["offset"].append(self.total)
            for k in PIECE_COLUMNS:
                if k != "offset":
                    self.pieces[k].append(piece[k])
            self.out.write(packed)
            self.total += piece["frames"]
            n += 1
        for k in FILE_COLUMNS:
            self.files[k].append(n if k == "pieces" else row[k])

    def save(self, name: str, built: dict) -> int:
        """Write the manifest ``name`` for what is written so far; its size in bytes."""
        self.out.flush()
        os.fsync(self.out.fileno())
        doc = {"format": FORMAT, "version": VERSION, "settings": asdict(self.settings),
               "rolls": {"file": self.rolls_name, "frames": self.total,
                         "bytes_per_frame": self.settings.bytes_per_frame,
                         "packing": "np.packbits of each frame, the lowest note in the first byte's highest bit"},
               "built": built, "sources": self.sources, "roots": self.roots, "files": self.files, "pieces": self.pieces}
        data = manifest_text(doc).encode()
        write_atomically(self.folder / name, data, suffix=".tmp.json")
        return len(data)


def taken_over(cache: Cache, i: int) -> Iterator[tuple[dict, np.ndarray]]:
    """The pieces of file row ``i`` of ``cache`` as ``CacheWriter.add`` takes them, still packed."""
    for j in range(int(cache.first_piece[i]), int(cache.first_piece[i + 1])):
        yield {k: cache.pieces[k][j] for k in PIECE_COLUMNS}, np.ascontiguousarray(cache.packed(j))


def is_cache_file(name: str) -> bool:
    """A file a cache's folder may hold: its manifest, a partial one, the lock, a rolls file."""
    return (name in (MANIFEST, PARTIAL, LOCK) or name.endswith(".tmp.json")
            or (name.startswith("rolls-") and name.endswith(".bin")))


def tidy(folder: Path) -> None:
    """Remove the rolls files neither the manifest nor the partial one names."""
    keep = set()
    for name in (MANIFEST, PARTIAL):
        try:
            keep.add(json.loads((folder / name).read_bytes())["rolls"]["file"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    for f in folder.glob("rolls-*.bin"):
        if f.name not in keep:
            f.unlink(missing_ok=True)


@contextmanager
def lock_folder(folder: Path):
    """Hold the folder's lock for one build; ``DataError`` when another build holds it."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): two builds at once are the user's to avoid
        yield
        return
    with open(folder / LOCK, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(f"{folder}: another build is writing this cache; wait for it to finish") from None
        yield

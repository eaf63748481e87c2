"""The training and validation pieces a run learns from, read from what the command line names.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data.corpus import PICKLE_SUFFIXES, DataError, find_sources, holds_pickles_only, load_corpus
from ..data.keys import to_common_key
from ..data.pianoroll import PianoRoll
from ..model import HIGHEST_NOTE, LOWEST_NOTE


@dataclass
class TrainingData:
    train: list[np.ndarray]
    valid: list[np.ndarray]
    resolution: dict[str, Any]  # {"steps_per_beat": n} or {"dt": s}, and "bpm"
    trained_on: str
    skipped: list[tuple[str, str]]


def _resolution(rolls: list[PianoRoll]) -> dict[str, Any]:
    kinds = {(r.dt, r.steps_per_beat) for r in rolls}
    if len(kinds) > 1:
        raise DataError("the sources have different frame resolutions "
                        f"({', '.join(f'dt={d}' if d else f'steps_per_beat={s}' for d, s in sorted(kinds, key=str))}); "
                        "train on one kind at a time")
    dt, spb = kinds.pop()
    bpm = float(np.median([r.bpm for r in rolls]))
    return {"dt": dt, "bpm": bpm} if dt else {"steps_per_beat": int(spb), "bpm": bpm}


def load_training_data(sources: list[str], valid_sources: list[str] | None = None, split: str = "train",
                       valid_fraction: float = 0.1, dt: float | None = None, steps_per_beat: int | None = None,
                       lowest_note: int = LOWEST_NOTE, highest_note: int = HIGHEST_NOTE,
                       common_key: bool = False, seed: int = 0, warn: Callable[[str], None] | None = None
                       ) -> TrainingData:
    """Training and validation pieces from the command line's sources.

    Validation: ``valid_sources`` if given; else, when every source is a benchmark pickle, its
    'valid' split; else a seeded ``valid_fraction`` of the pieces held out. Unreadable files are
    skipped with a warning naming them; no usable training data raises ``DataError``."""
    files = find_sources(sources)
    common = dict(dt=dt, steps_per_beat=steps_per_beat, lowest_note=lowest_note,
                  highest_note=highest_note, warn=warn)
    corpus = load_corpus(files, split=split, **common)
    rolls, skipped = list(corpus.rolls), list(corpus.skipped)
    valid_rolls: list[PianoRoll] = []
    if valid_sources:
        vc = load_corpus(valid_sources, split="valid", **common)
        valid_rolls, skipped = list(vc.rolls), skipped + vc.skipped
    elif all(holds_pickles_only(f) for f in files):
        try:
            vc = load_corpus(files, split="valid", **common)
            valid_rolls, skipped = list(vc.rolls), skipped + vc.skipped
        except DataError:
            valid_rolls = []
    if not valid_rolls and valid_fraction > 0 and len(rolls) >= 2:
        order = np.random.default_rng(seed).permutation(len(rolls))
        n_valid = max(1, int(round(valid_fraction * len(rolls))))
        held = set(order[:n_valid].tolist())
        valid_rolls = [r for i, r in enumerate(rolls) if i in held]
        rolls = [r for i, r in enumerate(rolls) if i not in held]
    if common_key:  # MIDI pieces only: the pickles are in C already
        def norm(rs):
            return [r if r.source.split(":")[0].lower().endswith(PICKLE_SUFFIXES) else to_common_key(r)[0]
                    for r in rs]
        rolls, valid_rolls = norm(rolls), norm(valid_rolls)
    names = [Path(str(src)).name or str(src) for src in sources]  # as the user named them
    trained_on = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
    if split != "train" and any(holds_pickles_only(f) for f in files):
        trained_on += f" (split {split})"
    return TrainingData([np.ascontiguousarray(r.frames, np.float32) for r in rolls],
                        [np.ascontiguousarray(r.frames, np.float32) for r in valid_rolls],
                        _resolution(rolls), trained_on, skipped)

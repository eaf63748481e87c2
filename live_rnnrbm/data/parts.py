"""The player's part of a frame: which of a piece's notes a musician plays along.

The same rules pick the notes the player is given in the jam evaluation (``eval.jam``) and the notes
clamped in conditional training (``train --player``), so that the model is trained on the very
split it is measured on:

    top      the melody: the highest note of every frame
    bottom   the bass: the lowest note
    chords   everything but the melody (a chord player under the model's tune)
    voice    one voice by rank from the top (SATB: 0 soprano … 3 bass), the same for a whole
             stretch, as one hand plays one line
    subset   a random half of the frame's notes

Masks are int8 piano-rolls (T × n_v) with 1 where the player holds a note.
"""
from __future__ import annotations

import numpy as np

PLAYER_PARTS = ("top", "bottom", "chords", "voice", "subset")


def _ranked(frames: np.ndarray, rank: int) -> np.ndarray:
    """The mask of the note of rank ``rank`` from the top in every frame (the lowest note when a
    frame has fewer notes; nothing in a silent frame)."""
    on = frames > 0
    count = on.sum(axis=1)
    # position of each note counted from the top: 0 for the highest
    from_top = np.cumsum(on[:, ::-1], axis=1)[:, ::-1] - 1
    want = np.minimum(rank, np.maximum(count - 1, 0))[:, None]
    return (on & (from_top == want)).astype(np.int8)


def top_notes(frames: np.ndarray) -> np.ndarray:
    """The melody: the highest note of every frame."""
    return _ranked(frames, 0)


def bottom_notes(frames: np.ndarray) -> np.ndarray:
    """The bass: the lowest note of every frame (no frame has more notes than keys)."""
    return _ranked(frames, frames.shape[1])


def player_mask(frames: np.ndarray, part: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """The notes of ``frames`` that the player holds when playing ``part`` (see the module)."""
    if part == "top":
        return top_notes(frames)
    if part == "bottom":
        return bottom_notes(frames)
    if part == "chords":
        return ((frames > 0) & (top_notes(frames) == 0)).astype(np.int8)
    if part == "voice":
        rank = int((rng or np.random.default_rng()).integers(0, 4))
        return _ranked(frames, rank)
    if part == "subset":
        keep = (rng or np.random.default_rng()).random(frames.shape) < 0.5
        return ((frames > 0) & keep).astype(np.int8)
    raise ValueError(f"player part must be one of {', '.join(PLAYER_PARTS)}, not {part!r}")

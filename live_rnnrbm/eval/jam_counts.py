"""The jam evaluation's counting: how the notes played match the true accompaniment, on notes and
on pitch classes, and how they sit in the key and the chord held; pooled counts whose ratios are
the figures.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def pitch_classes(roll: np.ndarray, lowest_note: int) -> np.ndarray:
    """T × 12 booleans: the pitch classes sounding in each frame."""
    out = np.zeros((roll.shape[0], 12), bool)
    on = roll > 0
    for i in range(roll.shape[1]):
        out[:, (lowest_note + i) % 12] |= on[:, i]
    return out


@dataclass
class Counts:
    """Pooled counts of one condition; the figures are ratios of them."""

    frames: int = 0
    notes: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    pc_tp: int = 0
    pc_fp: int = 0
    pc_fn: int = 0
    changes: int = 0            # frames whose pitch classes differ from the frame before's
    true_changes: int = 0       # the same for the true accompaniment
    in_key: int = 0
    chord_tones: int = 0
    ll_true: float = 0.0
    ll_own: float = 0.0
    ll_frames: int = 0

    def add(self, other: "Counts") -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def figures(self, task: str) -> dict[str, float | int | None]:
        def ratio(a, b):
            return a / b if b else None
        f: dict[str, Any] = {"frames": self.frames, "notes_per_frame": ratio(self.notes, self.frames)}
        if task == "chords":
            f["in_key"] = ratio(self.in_key, self.notes)
            f["chord_tones"] = ratio(self.chord_tones, self.notes)
        else:
            # no notes to find and none played: a perfect frame (as the eval's accuracy counts it)
            f["accuracy"] = ratio(self.tp, self.tp + self.fp + self.fn) if self.tp + self.fp + self.fn else 1.0
            f["pc_accuracy"] = (ratio(self.pc_tp, self.pc_tp + self.pc_fp + self.pc_fn)
                                if self.pc_tp + self.pc_fp + self.pc_fn else 1.0)
            f["changes_per_frame"] = ratio(self.changes, self.frames)
            f["true_changes_per_frame"] = ratio(self.true_changes, self.frames)
            if self.ll_frames:
                f["ll_true_history"] = self.ll_true / self.ll_frames
                f["ll_own_history"] = self.ll_own / self.ll_frames
        return f


def match_counts(played: np.ndarray, truth: np.ndarray, lowest_note: int,
                 played_pcs: np.ndarray | None = None) -> Counts:
    """How the notes played match the true accompaniment, on notes and on pitch classes (those of
    the notes played, or ``played_pcs`` when the player names pitch classes of its own)."""
    p, t = played > 0, truth > 0
    pp = pitch_classes(played, lowest_note) if played_pcs is None else played_pcs
    pt = pitch_classes(truth, lowest_note)
    return Counts(frames=len(played), notes=int(p.sum()), tp=int((p & t).sum()), fp=int((p & ~t).sum()),
                  fn=int((~p & t).sum()), pc_tp=int((pp & pt).sum()), pc_fp=int((pp & ~pt).sum()),
                  pc_fn=int((~pp & pt).sum()), changes=_changes(pp), true_changes=_changes(pt))


def _changes(pcs: np.ndarray) -> int:
    """How many frames change the harmony: their pitch classes differ from the frame before's."""
    return int((pcs[1:] != pcs[:-1]).any(axis=1).sum())


def key_counts(played: np.ndarray, scale: np.ndarray, chord: np.ndarray, lowest_note: int) -> Counts:
    """The model's notes against the key's scale and the chord held (both T × 12 booleans)."""
    pcs = (lowest_note + np.arange(played.shape[1])) % 12
    on = played > 0
    in_scale = scale[:, pcs] & on
    in_chord = chord[:, pcs] & on
    return Counts(frames=len(played), notes=int(on.sum()), in_key=int(in_scale.sum()),
                  chord_tones=int(in_chord.sum()))

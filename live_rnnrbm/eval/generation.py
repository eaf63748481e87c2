"""Free generation beside its data: a few statistics of each piece (density, how often the frame
changes, note lengths, key fit, pitch range, a bass line's continuity, register drift), for the
data's pieces and for as many pieces the model generates from u_0 at the same lengths, and whether
the model's median falls within the data's spread (10th to 90th percentile over the pieces). Pitch
range grows with a piece's length, so each generated piece is as long as the data piece it stands
beside.

    live-rnnrbm eval --task free --weights jsb "../shared/data/pickles/JSB Chorales.pickle"
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..data.weights import GenerationSettings
from .jam_players import MAJOR_SCALE

# the statistics, in the order reported, each with what it measures
STATS: dict[str, str] = {
    "notes_per_frame": "notes sounding in a frame, mean",
    "change_rate": "share of frames that differ from the frame before",
    "note_length": "frames a note lasts, mean over notes",
    "key_fit": "share of the notes (counted per frame) in the piece's best-fitting major scale",
    "pitch_range": "semitones from the piece's lowest note to its highest",
    "bass_continuity": "share of steps where the lowest note moves by at most a whole tone (both frames sounding)",
    "register_drift": "semitones the mean pitch of the piece's 32-frame windows (every 16 frames) spreads, "
                      "standard deviation",
}
SPREAD = (10, 90)  # the data's spread: these percentiles over its pieces
# A tune keeps its register and a model may wander from it: pitch range alone cannot tell one stray
# note from the whole piece moving, the spread of the windows' mean pitch can.
DRIFT_WINDOW, DRIFT_STEP = 32, 16


def piece_stats(V: np.ndarray, lowest_note: int = 21) -> dict[str, float]:
    """The statistics of one piece (T × n_v piano-roll, notes from ``lowest_note``)."""
    V = np.asarray(V) > 0
    T, n_v = V.shape
    sounding = V.any(1)
    lengths: list[int] = []
    for i in np.flatnonzero(V.any(0)):
        edges = np.diff(np.concatenate([[0], V[:, i].astype(np.int8), [0]]))
        lengths.extend((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).tolist())
    per_class = np.bincount((np.arange(n_v) + lowest_note) % 12, weights=V.sum(0), minlength=12)
    scale = np.array(MAJOR_SCALE)
    best = max(per_class[(scale + tonic) % 12].sum() for tonic in range(12))
    notes = np.flatnonzero(V.any(0))
    lowest = np.where(V, np.arange(n_v), n_v).min(1)
    both = sounding[1:] & sounding[:-1]
    steps = np.abs(np.diff(lowest))[both]
    pitch_sum = np.concatenate([[0.0], np.cumsum(V @ np.arange(n_v, dtype=np.float64))])
    count = np.concatenate([[0], np.cumsum(V.sum(1))])
    starts = np.arange(0, max(T - DRIFT_WINDOW, 0) + 1, DRIFT_STEP)
    ends = np.minimum(starts + DRIFT_WINDOW, T)
    in_window = count[ends] - count[starts]
    heard = in_window > 0
    window_means = (pitch_sum[ends] - pitch_sum[starts])[heard] / in_window[heard]
    return {
        "notes_per_frame": float(V.sum(1).mean()) if T else 0.0,
        "change_rate": float((V[1:] != V[:-1]).any(1).mean()) if T > 1 else 0.0,
        "note_length": float(np.mean(lengths)) if lengths else 0.0,
        "key_fit": float(best / per_class.sum()) if per_class.sum() else 1.0,
        "pitch_range": float(notes[-1] - notes[0]) if len(notes) else 0.0,
        "bass_continuity": float((steps <= 2).mean()) if len(steps) else 1.0,
        "register_drift": float(window_means.std()) if len(window_means) else 0.0,
    }


@dataclass
class GenerationReport:
    """Per statistic: the data's median and spread over its pieces, the model's median over its
    pieces, and whether that median is within the spread."""

    settings: dict[str, Any]
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def all_within(self) -> bool:
        return all(s["within"] for s in self.stats.values())


def compare(data: Sequence[dict[str, float]], generated: Sequence[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """The data's spread and the generated median of each statistic (lists of ``piece_stats``)."""
    out = {}
    for name in STATS:
        d = np.array([p[name] for p in data])
        g = np.array([p[name] for p in generated])
        lo, hi = np.percentile(d, SPREAD)
        med = float(np.median(g))
        out[name] = {"data_median": float(np.median(d)), "data_spread": [float(lo), float(hi)],
                     "model_median": med, "within": bool(lo <= med <= hi)}
    return out


def generated_stats(model, lengths: Sequence[int], how: GenerationSettings, seed: int = 0) -> list[dict[str, float]]:
    """``piece_stats`` of pieces the model generates from u_0, piece n as long as lengths[n] and
    from seed + n, with the sampler settings ``how``."""
    out = []
    for n, length in enumerate(lengths):
        model.reseed(seed + n)
        frames = model.generate(int(length), k=how.k, temperature=how.temperature, density=how.density,
                                register=how.register)
        out.append(piece_stats(frames, model.lowest_note))
    return out


def evaluate_generation(model, pieces: Sequence[np.ndarray], how: GenerationSettings, seed: int = 0
                        ) -> GenerationReport:
    """Generate one piece per data piece (its length; piece n from seed + n) with the sampler
    settings ``how`` and compare."""
    t0 = time.perf_counter()
    data = [piece_stats(V, model.lowest_note) for V in pieces]
    generated = generated_stats(model, [len(V) for V in pieces], how, seed)
    settings = {"k": how.k, "temperature": how.temperature, "density": how.density, "register": how.register,
                "seed": seed, "pieces": len(pieces),
                "frames": int(sum(len(V) for V in pieces)), "spread_percentiles": list(SPREAD)}
    return GenerationReport(settings, compare(data, generated), time.perf_counter() - t0)


def format_generation(r: GenerationReport) -> str:
    lo, hi = SPREAD
    lines = [f"{'statistic':16s} {'data: median':>12s} {f'[p{lo}, p{hi}]':>16s}  {'model: median':>13s}"]
    for name, s in r.stats.items():
        a, b = s["data_spread"]
        lines.append(f"{name:16s} {s['data_median']:12.3f} {f'[{a:.3f}, {b:.3f}]':>16s}  {s['model_median']:13.3f}  "
                     + ("within" if s["within"] else "OUTSIDE"))
    lines.append("every statistic within the data's spread" if r.all_within
                 else "the model's free generation is outside the data's spread on: "
                 + ", ".join(n for n, s in r.stats.items() if not s["within"]))
    return "\n".join(lines)

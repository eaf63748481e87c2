"""What an epoch of training does, all of it drawn from (seed, epoch, step), so that the position
in the epoch is all the random state a checkpoint needs: the updates and the subsequences each
takes (``epoch_plan``), the transposition of every piece (``epoch_shifts``), and in each update the
player's notes clamped and the frames the model plays itself (``listening``).
"""
from __future__ import annotations

import numpy as np

from ..data.keys import in_range_shift
from ..data.parts import player_mask
from ..kernels import bptt
from .config import TrainConfig


def seed_of(*keys: int) -> int:
    """One seed from several keys: the run's seed, the epoch, the step, what it is drawn for."""
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(1, np.uint64)[0])


def epoch_plan(lengths: list[int], config: TrainConfig, epoch: int, rbm_pretraining: bool
               ) -> list[list[tuple[int, int, int, int]]]:
    """The updates of an epoch; each a list of (piece, start, length, stream).

    Training: pieces in a seeded random order are dealt to ``batch_size`` streams (each to
    the stream with the fewest frames so far); each stream walks its pieces in consecutive
    subsequences, and update s takes the s-th subsequence of every stream that still has
    one. With --carry-u a subsequence starts from the u its stream ended the last one with.
    RBM pretraining: shuffled single frames (piece, frame, 1, 0) in batches of pretrain_batch;
    RNN pretraining walks the pieces as training does. ``lengths``: the pieces' frames.
    """
    c = config
    rng = np.random.default_rng([c.seed, epoch])
    if rbm_pretraining:
        index = [(p, t) for p, T in enumerate(lengths) for t in range(T)]
        order = rng.permutation(len(index))
        frames = [(index[i][0], index[i][1], 1, 0) for i in order]
        return [frames[i:i + c.pretrain_batch] for i in range(0, len(frames), c.pretrain_batch)]
    order = rng.permutation(len(lengths))
    streams: list[list[tuple[int, int, int, int]]] = [[] for _ in range(c.batch_size)]
    load = [0] * c.batch_size
    for p in order:
        b = int(np.argmin(load))
        T = lengths[p]
        streams[b] += [(int(p), s, min(c.batch_frames, T - s), b) for s in range(0, T, c.batch_frames)]
        load[b] += T
    n_steps = max(len(s) for s in streams)
    return [[s[i] for s in streams if i < len(s)] for i in range(n_steps)]


def epoch_shifts(shift_ranges: list[tuple[int, int]], config: TrainConfig, epoch: int, rbm_pretraining: bool
                 ) -> np.ndarray:
    """This epoch's transposition of every piece (0 without --transpose), kept in its range
    (``shift_ranges``: each piece's ``data.keys.shift_range``)."""
    c = config
    if rbm_pretraining or (c.transpose_min == 0 and c.transpose_max == 0):
        return np.zeros(len(shift_ranges), np.int64)
    rng = np.random.default_rng([c.seed, epoch, 1])
    want = rng.integers(c.transpose_min, c.transpose_max + 1, len(shift_ranges))
    return np.array([in_range_shift(s, lo, hi) for s, (lo, hi) in zip(want, shift_ranges)], np.int64)


def listening(config: TrainConfig, chunks: list[np.ndarray], seed: int, pretraining: bool
              ) -> tuple[np.ndarray, np.ndarray]:
    """The player's notes clamped in each frame's negative chain and the frames whose RNN input
    is the model's own sample (``kernels.bptt.subsequence_grad``'s C and mix) for one update's
    subsequences ``chunks``, drawn from the update's seed (so a resumed run draws the same); none
    in pretraining."""
    c = config
    if pretraining or (c.player_share == 0 and c.own_history == 0):
        return bptt.NO_CLAMP, bptt.NO_MIX
    rng = np.random.default_rng([seed, 5])
    masks, mixes = [], []
    for V in chunks:
        playing = rng.random() < c.player_share
        part = c.player_parts[int(rng.integers(len(c.player_parts)))] if playing else None
        mask = player_mask(V, part, rng) if playing else np.zeros(V.shape, np.int8)
        if playing and c.player_follow > 0 and rng.random() < c.player_follow:
            mask *= 2  # follow: heard, not clamped (kernels.bptt.subsequence_grad's C)
        masks.append(mask)
        # the model's own frames stand in for the true ones only where a player plays: the
        # true frames that follow are an answer to the player's notes, not to the model's free play
        mixes.append((rng.random(len(V)) < c.own_history) & playing)
    C = np.ascontiguousarray(np.concatenate(masks)) if c.player_share > 0 else bptt.NO_CLAMP
    mix = np.concatenate(mixes).astype(np.int8) if c.own_history > 0 else bptt.NO_MIX
    return C, mix

"""`live-rnnrbm train`: train an RNN-RBM on MIDI files or a benchmark pickle.

    live-rnnrbm train tunes/ --out weights/mine.npz --epochs 50
    live-rnnrbm train "Nottingham.pickle" --out weights/nottingham.npz --optimizer adam --lr 3e-3 \\
        --clip 1 --schedule cosine --pretrain-epochs 2 --carry-u --batch-size 4
    live-rnnrbm train tunes/ --out weights/mine.npz --resume          # continue after Ctrl-C

The baseline is the tutorial's algorithm: pieces cut into subsequences of ``--batch-frames``
(100) frames, CD-``k`` (15) samples ṽ_t from every true frame, the gradient of
mean_t [F_t(v_t) − F_t(ṽ_t)] through the RNN by BPTT, plain SGD at lr 0.001 (``--batch-size 1
--optimizer sgd`` is exactly that). On top: mini-batches of subsequences computed in parallel
(``kernels.bptt.batch_grad``, one thread per subsequence), Adam, gradient-norm clipping, a learning-
rate schedule, RBM pretraining of W, bv, bh on shuffled frames, and carrying u across the
consecutive subsequences of a piece (the tutorial resets it to 0 at every subsequence).

Files: ``--out X.npz`` holds the best weights on the validation data (a plain weights file);
``X.last.npz`` the latest state — a weights file too, with the optimiser state and the position
in the epoch, which ``--resume`` continues from exactly (same parameters, bit for bit, as a run
that was never interrupted). Ctrl-C, SIGTERM or SIGHUP finish the current step and write both; in
a validation they abandon it between two chunks (a fraction of a second) and the checkpoint is the
end of the epoch's steps, so that --resume runs that validation again.

Everything random in an epoch (piece order, transpositions, the CD chains' streams) is derived
from (seed, epoch, step), so the position is all the random state a checkpoint needs.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shlex
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .kernels import bptt, gibbs
from .checkpoint import CheckpointError, checkpoint_arrays, load_checkpoint
from .data.corpus import PICKLE_SUFFIXES, DataError, find_sources, load_corpus, spread
from .data.keys import in_range_shift, shift_frames, shift_range, to_common_key
from .errors import Stopped
from .eval.loglik import evaluate_model
from .model import ALL_PARAM_NAMES, HIGHEST_NOTE, LOWEST_NOTE, PARAM_NAMES, PLAYER_PARAM_NAMES, RnnRbm
from .optim import Schedule, clip_grad_norm, make_optimizer
from .data.parts import PLAYER_PARTS, player_mask
from .data.pianoroll import PianoRoll
from .signals import catch_stop_signals, restore
from .kernels.rng import new_states
from .rnn_pretrain import frame_predictor_grad
from .data.weights import WeightsError, load_weights, npz_bytes, read_meta, weights_arrays, write_atomically


# --------------------------------------------------------------------------- settings


@dataclass
class TrainConfig:
    """Every setting that changes what training computes (recorded in the weights' metadata)."""

    n_hidden: int = 150
    n_hidden_recurrent: int = 100
    lowest_note: int = LOWEST_NOTE
    highest_note: int = HIGHEST_NOTE
    epochs: int = 50
    batch_frames: int = 100  # frames per subsequence (the tutorial's batch_size)
    batch_size: int = 1  # subsequences per update, computed in parallel
    k: int = 15  # CD-k
    chain_start: str = "data"  # the negative chains start at v_t (CD), "silence" or "previous" (v_{t-1})
    weight_decay: float = 0.0  # L2 on W and the RNN's matrices (not the biases), added to the gradient
    ema: float = 0.0  # Polyak averaging: validate and save the moving average of the weights (decay per update)
    optimizer: str = "sgd"
    lr: float = 0.001
    momentum: float = 0.0
    clip: float = 0.0  # max global gradient norm; 0 = off
    schedule: str = "constant"
    warmup: int = 0  # steps of linear learning-rate warm-up
    lr_factor: float = 0.5  # plateau: lr cut factor
    patience: int = 3  # plateau: validations without improvement before a cut
    min_lr_factor: float = 0.05  # cosine: final lr as a fraction of lr
    pretrain_rnn_epochs: int = 0  # the RNN alone as a frame predictor (W = 0), exact BPTT: first of all
    pretrain_epochs: int = 0
    pretrain_lr: float | None = None  # default: lr
    pretrain_batch: int = 100  # frames per RBM-pretraining update
    carry_u: bool = False
    transpose_min: int = 0  # random key shift per piece and epoch, in semitones
    transpose_max: int = 0
    # listening: a share of the subsequences has a player part (parts.PLAYER_PARTS, one drawn per
    # subsequence) clamped in the negative chains, so CD learns p(rest | player's notes, history)
    player_parts: list = field(default_factory=list)
    player_share: float = 0.0
    player_follow: float = 0.0  # of those, the share played as follow: heard (path, RNN), not clamped
    own_history: float = 0.0  # share of frames whose RNN input is the model's own sample (scheduled sampling)
    own_history_k: int = 0  # its Gibbs steps from silence, as the instrument samples (0: the CD sample)
    own_negative: bool = False  # that own frame is the negative sample too (the instrument's sampler as negative phase)
    player_path_only: bool = False  # train the player path (Wpv, Wph) alone: the eight parameters stay as they are
    seed: int = 0
    valid_every: int = 1
    valid_pieces: int = 0  # 0 = all validation pieces
    valid_k: int = 25  # Gibbs steps of the validation monitor's chains (generation uses 25)
    valid_samples: int = 1  # sampled frames per true frame for the cheap accuracy
    ais_chains: int = 32
    ais_steps: int = 300
    ais_pieces: int = 0  # AIS on N evenly spread validation pieces (0: the whole validation subset)
    ais_every: int = 1  # AIS every N validations (0: never)
    select: str = "auto"  # best weights by: "ll" (AIS), "xent" (cheap monitor), "auto": ll when AIS runs
    stop_after_steps: int = 0  # stop (with a checkpoint) after this many updates: for tests

    @property
    def pre_epochs(self) -> int:
        """Epochs before the RNN-RBM's own: RNN pretraining, then RBM pretraining."""
        return self.pretrain_rnn_epochs + self.pretrain_epochs

    @property
    def total_epochs(self) -> int:
        return self.pre_epochs + self.epochs


# --------------------------------------------------------------------------- data


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
    elif all(f.suffix.lower() in PICKLE_SUFFIXES for f in files):
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
    if split != "train" and any(f.suffix.lower() in PICKLE_SUFFIXES for f in files):
        trained_on += f" (split {split})"
    return TrainingData([np.ascontiguousarray(r.frames, np.float32) for r in rolls],
                        [np.ascontiguousarray(r.frames, np.float32) for r in valid_rolls],
                        _resolution(rolls), trained_on, skipped)


# --------------------------------------------------------------------------- monitors


def predictive_monitor(model: RnnRbm, arrays: list[np.ndarray], k: int = 25, samples: int = 1,
                       seed: int = 0, progress: bool = False, progress_label: str = "",
                       should_stop: Callable[[], bool] | None = None) -> dict[str, float]:
    """The cheap validation monitor: for every frame, given the true history, a k-step Gibbs
    chain from silence (the generation procedure). Returns the frame-level cross-entropy of the
    chain's mean p(v|h) against the true frame (nats per frame, the tutorial's measure; lower is
    better) and the frame-level accuracy TP/(TP+FP+FN) of the sampled frames (pooled counts).
    The chains run in chunks of frames (``eval.chunks.in_chunks``: a progress bar, and
    ``should_stop`` asked between chunks, ``errors.Stopped`` when it says so); the figures are
    those of ``model.sample_frames`` on all frames at once."""
    from .eval.chunks import in_chunks

    runs = [model.run(V) for V in arrays]
    BV = np.ascontiguousarray(np.concatenate([r[1] for r in runs]), model.dtype)
    BH = np.ascontiguousarray(np.concatenate([r[2] for r in runs]), model.dtype)
    Vt = np.concatenate(arrays).astype(model.dtype)
    N = len(Vt)
    xent, tp, fp, fn = 0.0, 0.0, 0.0, 0.0
    for s in range(samples):
        S = np.zeros((N, model.n_visible), model.dtype)  # chains from silence
        PV = np.empty_like(S)
        states = new_states(seed * 7919 + s, N)

        def chains(a: int, b: int) -> None:
            gibbs.gibbs_batch(model.params["W"], model.WT, BV[a:b], BH[a:b], S[a:b], int(k),
                                model.dtype.type(1.0), states[a:b], PV[a:b])

        in_chunks(N, f"{progress_label}cross-entropy" + (f" ({s + 1}/{samples})" if samples > 1 else ""),
                  progress, chains, should_stop=should_stop)
        xent += bptt.cross_entropy(Vt, PV) / samples
        tp += float((S * Vt).sum())
        fp += float((S * (1 - Vt)).sum())
        fn += float(((1 - S) * Vt).sum())
    return {"xent": float(xent), "accuracy": tp / max(1.0, tp + fp + fn)}


# --------------------------------------------------------------------------- the trainer


MONITOR_KEYS = ("valid_every", "valid_pieces", "valid_k", "valid_samples", "ais_chains", "ais_steps",
                "ais_pieces", "ais_every", "select")


def _seed_of(*keys: int) -> int:
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(1, np.uint64)[0])


class Trainer:
    """The training loop. Build it, then ``fit(out)``; or ``Trainer.resume(...)`` from a
    ``.last.npz`` checkpoint.

    >>> trainer = Trainer(data.train, data.valid, TrainConfig(epochs=5))   # doctest: +SKIP
    >>> trainer.fit("weights/mine.npz")                                    # doctest: +SKIP
    """

    def __init__(self, train: list[np.ndarray], valid: list[np.ndarray], config: TrainConfig,
                 weights_meta: dict[str, Any] | None = None, model: RnnRbm | None = None,
                 progress: bool = True, log: Callable[[str], None] = print) -> None:
        c = self.config = config
        if not train:
            raise DataError("no training pieces")
        n_v = c.highest_note - c.lowest_note + 1
        for V in train + valid:
            if V.ndim != 2 or V.shape[1] != n_v:
                raise ValueError(f"pieces must be (frames, {n_v}) rolls, got {V.shape}")
        if (c.batch_frames < 1 or c.batch_size < 1 or c.k < 1 or c.epochs < 0 or c.pretrain_epochs < 0
                or c.pretrain_rnn_epochs < 0):
            raise ValueError("need batch_frames ≥ 1, batch_size ≥ 1, k ≥ 1, epochs ≥ 0, pretrain_epochs ≥ 0, "
                             "pretrain_rnn_epochs ≥ 0")
        if not set(c.player_parts) <= set(PLAYER_PARTS):
            raise ValueError(f"player parts must be among {', '.join(PLAYER_PARTS)}, not {c.player_parts}")
        if not (0.0 <= c.player_share <= 1.0 and 0.0 <= c.own_history <= 1.0 and 0.0 <= c.player_follow <= 1.0):
            raise ValueError("player_share, player_follow and own_history are shares: 0..1")
        if c.player_share > 0 and not c.player_parts:
            raise ValueError("player_share > 0 needs player parts (e.g. top chords voice)")
        if c.own_history_k < 0:
            raise ValueError("own_history_k is a number of Gibbs steps: 0 or more")
        if c.own_negative and not (c.own_history > 0 and c.own_history_k > 0):
            raise ValueError("own_negative needs own_history > 0 and own_history_k > 0")
        if c.own_history > 0 and c.player_share == 0:
            raise ValueError("own_history is for the subsequences a player plays in: it needs player_share > 0")
        if c.chain_start not in bptt.CHAIN_STARTS:
            raise ValueError(f"chain_start must be one of {', '.join(bptt.CHAIN_STARTS)}, not {c.chain_start!r}")
        if model is not None and (model.n_hidden, model.n_hidden_recurrent, model.lowest_note, model.highest_note) != (
                c.n_hidden, c.n_hidden_recurrent, c.lowest_note, c.highest_note):
            raise ValueError(f"the starting model is {model.n_visible} × {model.n_hidden} × {model.n_hidden_recurrent} "
                             f"(notes {model.lowest_note}..{model.highest_note}), the settings ask for "
                             f"{n_v} × {c.n_hidden} × {c.n_hidden_recurrent} (notes {c.lowest_note}..{c.highest_note})")
        self.train = [np.ascontiguousarray(V, np.float32) for V in train]
        self.valid = [np.ascontiguousarray(V, np.float32) for V in valid]
        self.valid_subset = spread(self.valid, c.valid_pieces)
        self.ais_subset = spread(self.valid_subset, c.ais_pieces)
        self.model = model or RnnRbm(c.n_hidden, c.n_hidden_recurrent, c.lowest_note, c.highest_note, seed=c.seed)
        self.weights_meta = dict(weights_meta or {})
        self.progress, self.log = progress, log
        self.opt = make_optimizer(c.optimizer, self.model.params, c.momentum)
        self.schedule = Schedule(c.schedule, c.lr, c.epochs, c.warmup, c.min_lr_factor, c.lr_factor, c.patience)
        self.shift_ranges = [shift_range(V) for V in self.train]
        # position and running figures: everything a resumed run needs besides the arrays
        self.epoch, self.step, self.global_step = 0, 0, 0
        self.acc = {"cost": 0.0, "xent": 0.0, "frames": 0, "seconds": 0.0}
        self.best: dict[str, Any] = {"score": -math.inf}
        self.history: list[dict[str, Any]] = []
        self.u_carry = np.zeros((c.batch_size, c.n_hidden_recurrent), np.float32)
        if not 0.0 <= c.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), not {c.ema}")
        # the moving average of the weights (--ema): starts at the first update after pretraining
        self.ema: dict[str, np.ndarray] | None = None
        self.stop_requested = False
        self.validating = False  # a validation is running (what a stop request interrupts)
        self.validation_abandoned = False  # the run stopped at the end of an epoch, in its validation
        # files that could not be written where asked (a full disk): asked-for path → where it went
        self.redirected: dict[Path, Path] = {}
        self.redirect_dir: Path | None = None
        self.write_error = ""
        self._evaluate = evaluate_model if c.ais_every else None
        if c.select not in ("auto", "ll", "xent"):
            raise ValueError(f"select must be auto, ll or xent, not {c.select!r}")
        if c.select == "ll" and c.ais_every != 1:
            raise ValueError("--select ll needs --ais-every 1")
        self.select = c.select if c.select != "auto" else ("ll" if c.ais_every == 1 else "xent")
        self.n_validations = 0
        self._buffers: dict[int, list[np.ndarray]] = {}

    # -- the plan of an epoch -------------------------------------------------------------
    def is_pretraining(self, epoch: int | None = None) -> bool:
        """Before the RNN-RBM's own epochs: RNN or RBM pretraining."""
        return (self.epoch if epoch is None else epoch) < self.config.pre_epochs

    def is_rnn_pretraining(self, epoch: int | None = None) -> bool:
        return (self.epoch if epoch is None else epoch) < self.config.pretrain_rnn_epochs

    def is_rbm_pretraining(self, epoch: int | None = None) -> bool:
        return self.is_pretraining(epoch) and not self.is_rnn_pretraining(epoch)

    def plan(self, epoch: int) -> list[list[tuple[int, int, int, int]]]:
        """The updates of an epoch; each a list of (piece, start, length, stream).

        Training: pieces in a seeded random order are dealt to ``batch_size`` streams (each to
        the stream with the fewest frames so far); each stream walks its pieces in consecutive
        subsequences, and update s takes the s-th subsequence of every stream that still has
        one. With --carry-u a subsequence starts from the u its stream ended the last one with.
        RBM pretraining: shuffled single frames (piece, frame, 1, 0) in batches of pretrain_batch;
        RNN pretraining walks the pieces as training does.
        """
        c = self.config
        rng = np.random.default_rng([c.seed, epoch])
        if self.is_rbm_pretraining(epoch):
            index = [(p, t) for p, V in enumerate(self.train) for t in range(len(V))]
            order = rng.permutation(len(index))
            frames = [(index[i][0], index[i][1], 1, 0) for i in order]
            return [frames[i:i + c.pretrain_batch] for i in range(0, len(frames), c.pretrain_batch)]
        order = rng.permutation(len(self.train))
        streams: list[list[tuple[int, int, int, int]]] = [[] for _ in range(c.batch_size)]
        load = [0] * c.batch_size
        for p in order:
            b = int(np.argmin(load))
            T = len(self.train[p])
            streams[b] += [(int(p), s, min(c.batch_frames, T - s), b) for s in range(0, T, c.batch_frames)]
            load[b] += T
        n_steps = max(len(s) for s in streams)
        return [[s[i] for s in streams if i < len(s)] for i in range(n_steps)]

    def shifts(self, epoch: int) -> np.ndarray:
        """This epoch's transposition of every piece (0 without --transpose), kept in range."""
        c = self.config
        if self.is_rbm_pretraining(epoch) or (c.transpose_min == 0 and c.transpose_max == 0):
            return np.zeros(len(self.train), np.int64)
        rng = np.random.default_rng([c.seed, epoch, 1])
        want = rng.integers(c.transpose_min, c.transpose_max + 1, len(self.train))
        return np.array([in_range_shift(s, lo, hi) for s, (lo, hi) in zip(want, self.shift_ranges)], np.int64)

    # -- one update -----------------------------------------------------------------------
    def _grad_buffers(self, B: int) -> list[np.ndarray]:
        if B not in self._buffers:
            self._buffers = {B: [np.zeros((B,) + self.model.params[n].shape, np.float32) for n in ALL_PARAM_NAMES]}
        return self._buffers[B]

    def train_step(self, batch: list[tuple[int, int, int, int]], shifts: np.ndarray, lr: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One update from a batch of subsequences; returns per-subsequence (cost, xent, length)."""
        c, m = self.config, self.model
        p = m.params
        B = len(batch)
        chunks = [shift_frames(self.train[piece][s:s + n], int(shifts[piece])) for piece, s, n, _ in batch]
        Vcat = np.ascontiguousarray(np.concatenate(chunks), np.float32)
        lengths = np.array([n for _, _, n, _ in batch], np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        U0 = np.zeros((B, c.n_hidden_recurrent), np.float32)
        if c.carry_u and not self.is_rbm_pretraining():
            for b, (_, s, _, stream) in enumerate(batch):
                if s > 0:
                    U0[b] = self.u_carry[stream]
        if self.is_rnn_pretraining():
            # the frame predictor's exact cross-entropy gradient (``rnn_pretrain``)
            costs, g, U_end = frame_predictor_grad(Vcat, starts, lengths, U0.astype(p["Wuu"].dtype), p)
            xents = costs
            grads = {n: g[n] if n in g else np.zeros_like(p[n]) for n in ALL_PARAM_NAMES}
        else:
            buffers = self._grad_buffers(max(B, c.batch_size if not self.is_pretraining() else c.pretrain_batch))
            views = [a[:B] for a in buffers]
            for a in views:
                a.fill(0.0)
            U_end = np.empty_like(U0)
            costs, xents = np.empty(B), np.empty(B)
            C, mix = self.listening(chunks, seed)
            bptt.batch_grad(Vcat, starts, lengths, U0, p["W"], m.WT, p["bv"], p["bh"], p["Wuh"], p["Wuv"],
                               p["Wvu"], p["Wuu"], p["bu"], int(c.k), new_states(seed, B), *views[:8], U_end, costs,
                               xents, bptt.CHAIN_STARTS.index(c.chain_start), C, mix, int(c.own_history_k),
                               bool(c.own_negative), *(p[n] for n in PLAYER_PARAM_NAMES), *views[8:])
            # the mean over subsequences of each one's mean-over-frames gradient (B=1: the tutorial)
            grads = {n: a.sum(axis=0) / np.float32(B) for n, a in zip(ALL_PARAM_NAMES, views)}
        if c.carry_u and not self.is_rbm_pretraining():
            for b, (_, _, _, stream) in enumerate(batch):
                self.u_carry[stream] = U_end[b]
        if c.weight_decay:
            for n in ("W", "Wuh", "Wuv", "Wvu", "Wuu") + PLAYER_PARAM_NAMES:
                grads[n] += np.float32(c.weight_decay) * p[n]
        for n in self.frozen():
            grads[n][...] = 0.0
        clip_grad_norm(grads, c.clip)
        self.opt.step(p, grads, lr)
        if c.ema and not self.is_pretraining():
            if self.ema is None:
                self.ema = {n: p[n].copy() for n in ALL_PARAM_NAMES}
            else:
                d = p["W"].dtype.type(c.ema)
                for n in ALL_PARAM_NAMES:
                    self.ema[n] *= d
                    self.ema[n] += (1 - d) * p[n]
        return costs, xents, lengths

    def listening(self, chunks: list[np.ndarray], seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The player's notes clamped in each frame's negative chain and the frames whose RNN input
        is the model's own sample (``kernels.bptt.subsequence_grad``'s C and mix) for one update, drawn
        from the update's seed (so a resumed run draws the same)."""
        c = self.config
        if self.is_pretraining() or (c.player_share == 0 and c.own_history == 0):
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

    def frozen(self) -> tuple[str, ...]:
        """The parameters this phase leaves as they are: RBM pretraining trains the RBM alone
        (W, bv, bh), RNN pretraining the frame predictor alone (bv and the RNN's); with
        ``player_path_only`` training touches the player path alone, so the eight parameters —
        the unconditional model and its likelihood — stay exactly as they were."""
        if self.is_rnn_pretraining():
            return ("W", "bh", "Wuh") + PLAYER_PARAM_NAMES
        if self.is_rbm_pretraining():
            return ("Wuh", "Wuv", "Wvu", "Wuu", "bu") + PLAYER_PARAM_NAMES
        if self.config.player_path_only:
            return PARAM_NAMES
        return ()

    def averaged_model(self) -> RnnRbm:
        """The model to validate and save: the weights' moving average with --ema (once it
        exists), else the training weights themselves."""
        if self.ema is None:
            return self.model
        m = self.model.astype(self.model.dtype)
        for n in ALL_PARAM_NAMES:
            m.params[n][...] = self.ema[n]
        return m

    # -- validation -----------------------------------------------------------------------
    def validate(self, epoch: int) -> dict[str, Any] | None:
        """The validation figures: always the cheap monitor (cross-entropy, accuracy); the AIS
        log-likelihood per time step (``eval.loglik``) every ``ais_every`` validations. Each part shows
        its own progress bar. None when a stop was asked for meanwhile: the validation is
        abandoned between two chunks, leaving the trainer's state as it was (--resume runs it
        again, identically)."""
        c = self.config
        t0 = time.perf_counter()
        res: dict[str, Any] = {"pieces": len(self.valid_subset), "frames": int(sum(len(V) for V in self.valid_subset))}
        model = self.averaged_model()
        label = f"epoch {epoch - c.pre_epochs + 1}/{c.epochs} validation: "
        stop = lambda: self.stop_requested  # noqa: E731 - set by the signal handler
        n_validations = self.n_validations + 1
        self.validating = True
        try:
            cheap = predictive_monitor(model, self.valid_subset, c.valid_k, c.valid_samples,
                                       _seed_of(c.seed, epoch, 2), self.progress, label, stop)
            res["xent"], res["accuracy_cheap"] = cheap["xent"], cheap["accuracy"]
            r = None
            if self._evaluate is not None and (self.select == "ll" or (n_validations - 1) % c.ais_every == 0):
                r = self._evaluate(model, self.ais_subset, ais_chains=c.ais_chains, ais_steps=c.ais_steps,
                                   accuracy_samples=c.valid_samples, seed=_seed_of(c.seed, epoch, 3),
                                   progress=self.progress, should_stop=stop, progress_label=label)
        except Stopped:
            return None
        finally:
            self.validating = False
        self.n_validations = n_validations
        if r is not None:
            res.update(log_likelihood=float(r.log_likelihood), log_likelihood_se=float(r.log_likelihood_se),
                       accuracy=float(r.accuracy), ais=f"{c.ais_chains} chains × {c.ais_steps} steps",
                       ais_pieces=len(self.ais_subset), ais_frames=int(sum(len(V) for V in self.ais_subset)))
        else:
            res["accuracy"] = res["accuracy_cheap"]
        # xent: the cheap monitor's cross-entropy (lower is better), so the score is its negative
        res["score"] = res["log_likelihood"] if self.select == "ll" else -res["xent"]
        res["selected_on"] = "AIS log-likelihood" if self.select == "ll" else "cheap cross-entropy"
        res["seconds"] = round(time.perf_counter() - t0, 2)
        return res

    # -- checkpoints ----------------------------------------------------------------------
    def state_meta(self) -> dict[str, Any]:
        return {"config": dataclasses.asdict(self.config), "epoch": self.epoch, "step": self.step,
                "train_frames_check": int(sum(len(V) for V in self.train)),
                "global_step": self.global_step, "acc": self.acc, "best": self.best, "history": self.history,
                "schedule": self.schedule.state(), "optimizer": self.opt.kind,
                "n_validations": self.n_validations}

    def save_latest(self, path: str | Path) -> Path:
        arrays = {f"opt.{k}": np.asarray(v) for k, v in self.opt.state_dict().items()}
        arrays["u_carry"] = self.u_carry
        for n, a in (self.ema or {}).items():
            arrays[f"ema.{n}"] = a
        meta = dict(self.weights_meta, train_state=self.state_meta(), training=self._settings())
        return self._write(Path(path), npz_bytes(checkpoint_arrays(self.model, meta, arrays)))

    def save_best(self, path: str | Path, figures: dict[str, Any] | None, epochs_done: int | None = None) -> Path:
        """The current weights as a plain weights file; ``epoch`` in its metadata is the number of
        training epochs finished (pretraining not counted)."""
        if epochs_done is None:
            epochs_done = max(0, self.epoch - self.config.pre_epochs)
        meta = dict(self.weights_meta, training=self._settings(), epoch=epochs_done)
        meta["validation"] = figures
        model = self.averaged_model().astype(np.float32)
        model.meta = {}  # a resumed model's meta still holds its checkpoint's training state
        return self._write(Path(path), npz_bytes(weights_arrays(model, **meta)[1]))

    def _write(self, path: Path, data: bytes) -> Path:
        """Write a checkpoint's or weights file's bytes to ``path``, or, when that fails (a full
        disk, a folder that became read-only), to a new folder where there is room: the file is
        never lost with the run's work in it. ``redirected`` then maps each file to where it went
        (its companion files follow it there), and ``fit`` stops the run. When no folder can take
        it, the state stays in memory and the write is retried every ``RETRY_SECONDS``, after
        saying so once, until it fits (a second Ctrl-C gives up)."""
        said = False
        while True:
            try:
                if self.redirect_dir is None:
                    where = write_atomically(path, data)
                else:
                    where = self.redirected[path] = write_atomically(self.redirect_dir / path.name, data)
                if said:
                    print(f"note: {where} written at last; training goes on", file=sys.stderr, flush=True)
                return where
            except OSError as e:
                error = e
            where = _write_elsewhere(path, data)
            if where is not None:
                self.redirect_dir, self.redirected[path] = where.parent, where
                self.write_error = f"{error.strerror or error}"
                return where
            if not said:
                print(f"error: cannot write {path} ({len(data) / 1e6:.1f} MB): {error.strerror or error}, and no "
                      f"other folder can take it either: the training state is kept in memory and the write retried "
                      f"every {RETRY_SECONDS:.0f} s: make room (Ctrl-C twice gives up)", file=sys.stderr, flush=True)
                said = True
            try:
                time.sleep(RETRY_SECONDS)
            except KeyboardInterrupt:
                print("gave up: the training since the last checkpoint on disk is lost", file=sys.stderr, flush=True)
                raise

    def _settings(self) -> dict[str, Any]:
        s = dataclasses.asdict(self.config)
        s.pop("stop_after_steps")
        s["train_pieces"], s["train_frames"] = len(self.train), int(sum(len(V) for V in self.train))
        s["valid_pieces_total"] = len(self.valid)
        return s

    @classmethod
    def resume(cls, path: str | Path, train: list[np.ndarray], valid: list[np.ndarray],
               epochs: int | None = None, progress: bool = True, log: Callable[[str], None] = print,
               weights_meta: dict[str, Any] | None = None, monitor: dict[str, Any] | None = None) -> "Trainer":
        """A trainer continuing exactly where the checkpoint ``path`` stopped. ``epochs`` may
        extend the run; ``monitor`` may change the validation settings (``MONITOR_KEYS``: they do
        not touch the training computation; a changed selection restarts the best-so-far)."""
        model, meta, arrays = load_checkpoint(path)
        st = meta["train_state"]
        config = TrainConfig(**st["config"])
        config.stop_after_steps = 0  # a stop point is not a setting: the resumed run goes on
        if epochs is not None:
            config.epochs = int(epochs)
        selection_changed = False
        for k, v in (monitor or {}).items():
            if k not in MONITOR_KEYS:
                raise ValueError(f"{k} changes training itself: it cannot change on --resume")
            if getattr(config, k) != v and k in ("select", "ais_chains", "ais_steps", "ais_pieces", "valid_pieces"):
                selection_changed = True
            setattr(config, k, v)
        wm = {k: v for k, v in meta.items() if k not in ("train_state", "created", "validation", "epoch")}
        for k, v in (weights_meta or {}).items():
            if k == "command" and wm.get("command") and v != wm["command"]:
                wm["resumed_with"] = wm.get("resumed_with", []) + [v]  # keep the command that started it
            else:
                wm[k] = v
        t = cls(train, valid, config, wm, model, progress, log)
        n_frames = int(sum(len(V) for V in t.train))
        if st.get("train_frames_check") not in (None, n_frames):
            raise CheckpointError(f"{path}: the checkpoint was trained on {st['train_frames_check']} frames, "
                                  f"the data given now has {n_frames}: resume with the same data")
        t.opt.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt.")})
        t.u_carry[...] = arrays["u_carry"]
        if any(k.startswith("ema.") for k in arrays):
            t.ema = {n: (np.array(arrays[f"ema.{n}"], dtype=t.model.dtype) if f"ema.{n}" in arrays
                         else t.model.params[n].copy()) for n in ALL_PARAM_NAMES}
        t.epoch, t.step, t.global_step = int(st["epoch"]), int(st["step"]), int(st["global_step"])
        t.acc, t.best, t.history = dict(st["acc"]), dict(st["best"]), list(st["history"])
        t.schedule.load_state(st["schedule"])
        t.n_validations = int(st.get("n_validations", 0))
        if selection_changed:  # scores on another scale: the next validation sets a new best
            t.best = {"score": -math.inf}
            t.schedule.best, t.schedule.bad = -math.inf, 0
        return t

    # -- the loop -------------------------------------------------------------------------
    def fit(self, out: str | Path) -> str:
        """Train until the last epoch ('done'), a stop request ('interrupted') or
        ``stop_after_steps`` ('stopped'); checkpoints are written in every case."""
        from tqdm import tqdm

        c = self.config
        out = Path(out)
        last = latest_path(out)
        while self.epoch < c.total_epochs:
            epoch, pre = self.epoch, self.is_pretraining()
            if self.step == 0 and epoch > 0 and epoch in (c.pretrain_rnn_epochs, c.pre_epochs):
                self.opt = make_optimizer(c.optimizer, self.model.params, c.momentum)  # fresh for each phase
            plan, shifts = self.plan(epoch), self.shifts(epoch)
            steps = len(plan)
            total = sum(n for batch in plan for _, _, n, _ in batch)
            label = (f"pretrain RNN {epoch + 1}/{c.pretrain_rnn_epochs}" if self.is_rnn_pretraining(epoch)
                     else f"pretrain {epoch - c.pretrain_rnn_epochs + 1}/{c.pretrain_epochs}" if pre
                     else f"epoch {epoch - c.pre_epochs + 1}/{c.epochs}")
            bar = tqdm(total=total, initial=self.acc["frames"], unit="frame", unit_scale=True, desc=label,
                       disable=not self.progress, leave=False, dynamic_ncols=True, file=sys.stderr)
            t0 = time.perf_counter()
            while self.step < steps:
                if pre:
                    lr = c.pretrain_lr if c.pretrain_lr is not None else c.lr
                else:
                    lr = self.schedule.lr(epoch - c.pre_epochs, self.step, steps, self.global_step)
                costs, xents, lengths = self.train_step(plan[self.step], shifts, lr,
                                                        _seed_of(c.seed, epoch, self.step))
                n = int(lengths.sum())
                self.acc["cost"] += float(costs @ lengths)
                self.acc["xent"] += float(xents @ lengths)
                self.acc["frames"] += n
                self.step += 1
                self.global_step += 1
                bar.update(n)
                if self.step % 10 == 0 or self.step == steps:
                    f = max(1, self.acc["frames"])
                    bar.set_postfix(cost=f"{self.acc['cost'] / f:.3f}", xent=f"{self.acc['xent'] / f:.2f}",
                                    lr=f"{lr:.2g}", refresh=False)
                stop = self.stop_requested or (c.stop_after_steps and self.global_step >= c.stop_after_steps)
                if stop and self.step < steps:
                    bar.close()
                    self.acc["seconds"] += time.perf_counter() - t0
                    self.save_latest(last)
                    if not out.exists():  # a usable weights file exists from the first interruption on
                        self.save_best(out, None)
                    return "interrupted" if self.stop_requested else "stopped"
            bar.close()
            self.acc["seconds"] += time.perf_counter() - t0
            if not self._end_epoch(epoch, pre, out):
                # stopped in the validation: the checkpoint holds the epoch's every step, and
                # --resume starts with this epoch's validation, as if it had never been stopped
                self.validation_abandoned = True
                self.save_latest(last)
                if not out.exists():
                    self.save_best(out, None)
                return "interrupted"
            if self.redirected:  # the disk is full: stop with this epoch's state safe elsewhere
                return "redirected"
            if self.stop_requested or (c.stop_after_steps and self.global_step >= c.stop_after_steps):
                self.save_latest(last)
                if not out.exists():
                    self.save_best(out, None)
                return "interrupted" if self.stop_requested else "stopped"
        self.save_latest(last)
        if not out.exists():
            self.save_best(out, None)
        return "done"

    def _end_epoch(self, epoch: int, pre: bool, out: Path) -> bool:
        """Validate, record and checkpoint the epoch just trained; False (and nothing changed)
        when a stop request abandoned its validation."""
        c = self.config
        f = max(1, self.acc["frames"])
        phase = "pretrain-rnn" if self.is_rnn_pretraining(epoch) else "pretrain" if pre else "train"
        rec: dict[str, Any] = {"epoch": epoch - c.pre_epochs + 1, "phase": phase,
                               "cost": self.acc["cost"] / f, "xent": self.acc["xent"] / f,
                               "frames_per_s": self.acc["frames"] / max(1e-9, self.acc["seconds"])}
        line = (f"{phase if pre else 'epoch'} {epoch + 1 if pre else rec['epoch']:>3}  "
                f"cost {rec['cost']:8.4f}  xent {rec['xent']:7.3f}  {rec['frames_per_s']:7.0f} frames/s")
        n_train = epoch - c.pre_epochs + 1
        if not pre and self.valid and (n_train % c.valid_every == 0 or epoch + 1 == c.total_epochs):
            v = self.validate(epoch)
            if v is None:
                return False
            rec["valid"] = v
            line += f" | valid xent {v['xent']:.3f}  acc {v['accuracy_cheap']:.3f}"
            if "log_likelihood" in v:
                line += (f"  LL {v['log_likelihood']:.3f} ± {v['log_likelihood_se']:.3f} "
                         f"(AIS {v['ais']}, {v['ais_frames']} frames)  acc {v['accuracy']:.3f}")
            cut = self.schedule.report(v["score"])
            if v["score"] > self.best["score"]:
                self.best = {"score": v["score"], "epoch": rec["epoch"], "valid": v}
                self.save_best(out, v, rec["epoch"])
                line += "  [best, saved]"
            if cut:
                line += f"  (lr × {c.lr_factor})"
        elif not pre and not self.valid:  # nothing to validate on: the latest is the best
            self.save_best(out, None, rec["epoch"])
        self.history.append(rec)
        self.log(line)
        self.epoch += 1
        self.step = 0
        self.acc = {"cost": 0.0, "xent": 0.0, "frames": 0, "seconds": 0.0}
        self.save_latest(latest_path(out))
        return True


RETRY_SECONDS = 2.0  # a checkpoint no folder can take is written again this often


def _write_elsewhere(path: Path, data: bytes) -> Path | None:
    """Write ``data`` as ``path.name`` in a new folder of the temporary folder ($TMPDIR when set:
    the user's choice, not whatever tempfile would fall back to), the home folder or the current
    folder, the first on another filesystem than ``path`` that takes it; None if none."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        full = {os.stat(folder).st_dev}
    except OSError:
        full = set()
    for candidate in (os.environ.get("TMPDIR") or tempfile.gettempdir(), Path.home(), Path.cwd()):
        try:
            dev = os.stat(candidate).st_dev
        except OSError:
            continue
        if dev in full:
            continue
        try:
            sub = Path(tempfile.mkdtemp(prefix="live-rnnrbm-", dir=candidate))
        except OSError:
            full.add(dev)
            continue
        try:
            return write_atomically(sub / path.name, data)
        except OSError:
            full.add(dev)
            sub.rmdir()
    return None


def latest_path(out: str | Path) -> Path:
    """weights/name.npz → weights/name.last.npz (the latest state, for --resume)."""
    out = Path(out)
    return out.with_name(out.stem + ".last.npz")


# --------------------------------------------------------------------------- the command


INHERITED_META = ("generation_k", "generation_k_why")  # what a fine-tune (--init) keeps of its file's metadata


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .cli import DefaultsHelpFormatter
    p.formatter_class = DefaultsHelpFormatter
    p.add_argument("data", nargs="*", metavar="DATA",
                   help=".mid/.midi files, folders (searched recursively), globs, or a benchmark pickle")
    p.add_argument("--out", required=True, help="best-on-validation weights file (latest: NAME.last.npz)")
    p.add_argument("--resume", action="store_true", help="continue from NAME.last.npz exactly")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 50)")
    g = p.add_argument_group("data")
    g.add_argument("--split", default="train", help="split of a benchmark pickle to train on")
    g.add_argument("--valid", nargs="+", metavar="DATA", help="validation data (default: the pickle's "
                   "'valid' split, or --valid-fraction of the MIDI pieces)")
    g.add_argument("--valid-fraction", type=float, default=0.1, help="pieces held out without --valid")
    res = g.add_mutually_exclusive_group()
    res.add_argument("--dt", type=float, help="MIDI: seconds per frame (the tutorial: 0.3)")
    res.add_argument("--steps-per-beat", type=int, help="MIDI: frames per beat (default 2: eighth notes)")
    g.add_argument("--common-key", action="store_true",
                   help="MIDI: transpose every piece to C major / C minor (key estimated), as the pickles are")
    g.add_argument("--transpose", type=int, nargs=2, metavar=("MIN", "MAX"), default=(0, 0),
                   help="augment: shift each piece by a random MIN..MAX semitones every epoch (e.g. -6 5)")
    g.add_argument("--lowest-note", type=int, default=LOWEST_NOTE,
                   help="lowest MIDI note of the model's piano-roll (21: the piano's A0); notes below are dropped")
    g.add_argument("--highest-note", type=int, default=HIGHEST_NOTE,
                   help="highest MIDI note of the model's piano-roll (108: the piano's C8); notes above are dropped")
    m = p.add_argument_group("model")
    m.add_argument("--hidden", type=int, default=150, help="n_h, the RBM's hidden units")
    m.add_argument("--recurrent", type=int, default=100, help="n_u, the RNN's units")
    m.add_argument("--seed", type=int, default=0,
                   help="random seed: the initial weights, piece order, transpositions and Gibbs chains")
    m.add_argument("--init", metavar="WEIGHTS", help="start from this weights file (its sizes and note range) "
                   "instead of the tutorial's random initialisation: fine-tuning")
    o = p.add_argument_group("optimisation (defaults: the tutorial)")
    o.add_argument("--batch-frames", type=int, default=100, help="frames per subsequence")
    o.add_argument("--batch-size", type=int, default=1,
                   help="subsequences per update, computed in parallel (use ≥ 2 on 2 cores)")
    o.add_argument("--k", type=int, default=15, help="CD-k Gibbs steps")
    o.add_argument("--chain-start", choices=bptt.CHAIN_STARTS, default="data",
                   help="where each frame's negative chain starts: at the frame (CD, the tutorial), at "
                        "silence (as generation starts it), or at the previous frame")
    o.add_argument("--weight-decay", type=float, default=0.0, help="L2 penalty on W and the RNN's matrices")
    o.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="validate and save the moving average of the weights, updated after every step "
                        "with this decay (e.g. 0.999; 0: off, the weights themselves)")
    o.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                   help="plain SGD (the tutorial's), or Adam (Kingma & Ba)")
    o.add_argument("--lr", type=float, default=0.001, help="learning rate")
    o.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    o.add_argument("--clip", type=float, default=0.0, help="max global gradient norm (0: off)")
    o.add_argument("--schedule", choices=("constant", "cosine", "plateau"), default="constant",
                   help="learning rate over the run: constant, cosine decay, or cut on a validation plateau")
    o.add_argument("--warmup", type=int, default=0, help="steps of linear lr warm-up")
    o.add_argument("--lr-factor", type=float, default=0.5, help="plateau: lr cut factor")
    o.add_argument("--patience", type=int, default=3, help="plateau: validations without gain before a cut")
    o.add_argument("--pretrain-epochs", type=int, default=0, help="RBM pretraining epochs on shuffled frames")
    o.add_argument("--pretrain-lr", type=float, default=None, help="pretraining lr (default: --lr)")
    o.add_argument("--pretrain-rnn-epochs", type=int, default=0,
                   help="before everything, train the RNN alone as a frame predictor (W = 0: exact "
                        "cross-entropy, exact BPTT), so that the RNN-RBM starts from a trained RNN")
    lis = p.add_argument_group("listening (conditional training)")
    lis.add_argument("--player", nargs="+", choices=PLAYER_PARTS, default=[], metavar="PART",
                     help=f"parts a player may play ({', '.join(PLAYER_PARTS)}): in --player-share of the "
                          "subsequences one is drawn and its notes are clamped in the negative chains, so the "
                          "model learns to accompany them")
    lis.add_argument("--player-share", type=float, default=0.0,
                     help="share of the subsequences trained with a player part (0: none)")
    lis.add_argument("--player-follow", type=float, default=0.0,
                     help="share of those subsequences played as in follow mode: the player's notes are heard "
                          "(player path, RNN) but not clamped, so the model learns the whole frame with them")
    lis.add_argument("--own-history", type=float, default=0.0,
                     help="share of frames whose RNN input is the model's own sample instead of the true "
                          "frame (scheduled sampling: the live instrument's RNN hears its own notes)")
    lis.add_argument("--own-history-k", type=int, default=0,
                     help="Gibbs steps from silence for the model's own frames, as the instrument samples them "
                          "(0: the CD chain's sample, started at the true frame)")
    lis.add_argument("--player-path-only", action="store_true",
                     help="train only the player path (Wpv, Wph, Wpu: the player's notes into the frame's biases and the RNN), "
                          "the eight parameters of the model untouched, so its unconditional likelihood stays "
                          "exactly as it was (use with --init)")
    lis.add_argument("--own-negative", action="store_true",
                     help="with --own-history-k: the model's own frame is also the negative sample there, so "
                          "training pushes down the harmonies the instrument itself would play where they are wrong")
    o.add_argument("--carry-u", action="store_true",
                   help="start each subsequence from the u the previous one of the piece ended with")
    o.add_argument("--threads", type=int, default=None, help="Numba threads (default: all cores)")
    v = p.add_argument_group("validation monitor")
    v.add_argument("--valid-every", type=int, default=1, help="validate every N epochs")
    v.add_argument("--valid-pieces", type=int, default=0, help="validate on N evenly spread pieces (0: all)")
    v.add_argument("--valid-samples", type=int, default=1, help="sampled frames per frame for accuracy")
    v.add_argument("--ais-chains", type=int, default=32, help="AIS chains per frame (validation)")
    v.add_argument("--ais-steps", type=int, default=300, help="AIS steps (validation)")
    v.add_argument("--ais-pieces", type=int, default=0, help="AIS on N evenly spread validation pieces (0: all)")
    v.add_argument("--ais-every", type=int, default=1, help="AIS every N validations (0: never)")
    v.add_argument("--select", choices=("auto", "ll", "xent"), default="auto",
                   help="best weights by AIS log-likelihood (ll) or the cheap cross-entropy (xent); "
                        "auto: ll when AIS runs at every validation")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--stop-after-steps", type=int, default=0, help=argparse.SUPPRESS)  # tests


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        n_hidden=args.hidden, n_hidden_recurrent=args.recurrent, lowest_note=args.lowest_note,
        highest_note=args.highest_note, epochs=50 if args.epochs is None else args.epochs,
        batch_frames=args.batch_frames, batch_size=args.batch_size, k=args.k, chain_start=args.chain_start,
        weight_decay=args.weight_decay, ema=args.ema, optimizer=args.optimizer,
        lr=args.lr, momentum=args.momentum, clip=args.clip, schedule=args.schedule, warmup=args.warmup,
        lr_factor=args.lr_factor, patience=args.patience, pretrain_epochs=args.pretrain_epochs,
        pretrain_rnn_epochs=args.pretrain_rnn_epochs,
        pretrain_lr=args.pretrain_lr, carry_u=args.carry_u, transpose_min=args.transpose[0],
        transpose_max=args.transpose[1], player_parts=list(args.player), player_share=args.player_share,
        own_history=args.own_history, own_history_k=args.own_history_k, player_follow=args.player_follow,
        own_negative=args.own_negative, player_path_only=args.player_path_only, seed=args.seed, valid_every=args.valid_every,
        valid_pieces=args.valid_pieces, valid_samples=args.valid_samples, ais_chains=args.ais_chains,
        ais_steps=args.ais_steps, ais_pieces=args.ais_pieces, ais_every=args.ais_every, select=args.select,
        stop_after_steps=args.stop_after_steps)


def command_line(args: argparse.Namespace) -> str:
    """The command that runs this training: the process's own command line when it is
    ``live-rnnrbm train ...``, else (called from Python) the equivalent one rebuilt from ``args``."""
    if "train" in sys.argv[1:]:
        return shlex.join(["live-rnnrbm"] + sys.argv[sys.argv.index("train"):])
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parts = ["live-rnnrbm", "train", *args.data]
    for a in parser._actions:
        value = getattr(args, a.dest, None)
        if not a.option_strings or a.help == argparse.SUPPRESS or a.dest == "help" or value == a.default:
            continue
        if isinstance(a, argparse._StoreTrueAction):
            parts.append(a.option_strings[-1])
        elif isinstance(value, (list, tuple)):
            parts += [a.option_strings[-1], *map(str, value)]
        else:
            parts += [a.option_strings[-1], str(value)]
    return shlex.join(parts)


class _StopOnSignal:
    """Ctrl-C, SIGTERM or SIGHUP (the terminal closed: ``signals.STOP_SIGNALS``) ask the trainer to
    stop after the current step; a second Ctrl-C is the ordinary KeyboardInterrupt (the last
    checkpoint on disk stays intact: writes are atomic)."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer, self.old = trainer, {}
        self.signum = 0

    def __enter__(self) -> "_StopOnSignal":
        self.old = catch_stop_signals(self._handle)
        return self

    def _handle(self, signum: int, reason: str) -> None:
        if self.trainer.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        self.trainer.stop_requested = True
        doing = ("abandoning this validation (--resume runs it again)" if self.trainer.validating
                 else "finishing this step")
        print(f"\n{signal.Signals(signum).name}: {doing} and writing a checkpoint …", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        restore(self.old)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.threads:
        import numba
        numba.set_num_threads(args.threads)
    if not (-11 <= args.transpose[0] <= args.transpose[1] <= 11):
        print("error: --transpose MIN MAX needs -11 ≤ MIN ≤ MAX ≤ 11", file=sys.stderr)
        return 2
    if not args.data:
        print("error: name the training data (files, folders, globs or a pickle)", file=sys.stderr)
        return 2

    def warn(msg: str) -> None:
        print(f"warning: {msg}", file=sys.stderr)

    if args.resume:  # the data must be read as it was: the note range and frame length of the run
        try:
            meta = read_meta(latest_path(out))
        except WeightsError as e:
            print(f"error: cannot resume: {e}", file=sys.stderr)
            return 2
        args.lowest_note, args.highest_note = meta["lowest_note"], meta["highest_note"]
        if args.dt is None and args.steps_per_beat is None:
            args.dt, args.steps_per_beat = meta.get("dt"), meta.get("steps_per_beat")

    init_model = None
    if args.init and not args.resume:  # fine-tuning: the file decides the sizes, notes and frame length
        try:
            init_model = load_weights(args.init)
        except WeightsError as e:
            print(f"error: --init: {e}", file=sys.stderr)
            return 2
        args.hidden, args.recurrent = init_model.n_hidden, init_model.n_hidden_recurrent
        args.lowest_note, args.highest_note = init_model.lowest_note, init_model.highest_note
        if args.dt is None and args.steps_per_beat is None:
            args.dt, args.steps_per_beat = init_model.meta.get("dt"), init_model.meta.get("steps_per_beat")
        # the Gibbs steps the weights need to play from silence go with them into the fine-tune
        inherited = {k: init_model.meta[k] for k in INHERITED_META if k in init_model.meta}
        init_model.meta = {}

    try:
        data = load_training_data(args.data, args.valid, args.split, args.valid_fraction, args.dt,
                                  args.steps_per_beat, args.lowest_note, args.highest_note,
                                  args.common_key, args.seed, warn)
    except (DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n_frames = sum(len(V) for V in data.train)
    print(f"data: {len(data.train)} training pieces ({n_frames} frames), {len(data.valid)} validation pieces "
          f"({sum(len(V) for V in data.valid)} frames); {len(data.skipped)} file(s) skipped; "
          f"frames: {', '.join(f'{k}={v}' for k, v in data.resolution.items())}", file=sys.stderr)
    command = command_line(args)
    weights_meta = dict(data.resolution, trained_on=data.trained_on, command=command)
    if init_model is not None:
        weights_meta.update(inherited)
    try:
        if args.resume:
            given = config_from_args(args)  # the validation options of this command line apply
            monitor = {k: getattr(given, k) for k in MONITOR_KEYS if k != "valid_k"}
            trainer = Trainer.resume(latest_path(out), data.train, data.valid, args.epochs,
                                     not args.no_progress, weights_meta=weights_meta, monitor=monitor)
            c = trainer.config
            print(f"resuming {latest_path(out)} at {'pretraining ' if trainer.is_pretraining() else ''}epoch "
                  f"{trainer.epoch + 1 - (0 if trainer.is_pretraining() else c.pre_epochs)}, "
                  f"step {trainer.step}", file=sys.stderr)
        else:
            if latest_path(out).exists():
                print(f"note: starting afresh; {latest_path(out)} will be overwritten (use --resume to continue it)",
                      file=sys.stderr)
            if init_model is not None:
                weights_meta["init"] = str(args.init)
            trainer = Trainer(data.train, data.valid, config_from_args(args), weights_meta, model=init_model,
                              progress=not args.no_progress)
    except (CheckpointError, DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not trainer.valid:
        print(f"note: no validation data: {out} gets the weights of the latest epoch", file=sys.stderr)
    else:
        print(f"best weights selected on the {'AIS log-likelihood' if trainer.select == 'll' else 'cheap cross-entropy'}",
              file=sys.stderr)
    with _StopOnSignal(trainer) as sig:
        outcome = trainer.fit(out)
    best = trainer.best
    if best.get("valid"):
        v = best["valid"]
        ll = f"LL {v['log_likelihood']:.3f} (AIS), " if "log_likelihood" in v else ""
        print(f"best: epoch {best['epoch']}: valid {ll}xent {v['xent']:.3f}, accuracy {v['accuracy']:.3f} → "
              f"{trainer.redirected.get(out, out)}")
    if trainer.redirected:
        first = next(iter(trainer.redirected))
        moves = " && ".join(f"mv {shlex.quote(str(b))} {shlex.quote(str(a))}" for a, b in trainer.redirected.items())
        print(f"error: cannot write {first}: {trainer.write_error}; nothing is lost: the run stopped and wrote "
              f"its files to {trainer.redirect_dir} instead. Make room, then `{moves}` and continue with the same "
              "command and --resume", file=sys.stderr)
        return 1
    if outcome in ("interrupted", "stopped"):
        where = (f"pretraining epoch {trainer.epoch + 1}" if trainer.is_pretraining()
                 else f"epoch {trainer.epoch - trainer.config.pre_epochs + 1}")
        where = (f"in the validation of {where} (its steps are all done)" if trainer.validation_abandoned
                 else f"in {where} after step {trainer.step}")
        print(f"stopped {where}: latest state in {latest_path(out)}; "
              f"continue with the same command and --resume", file=sys.stderr)
        return 128 + sig.signum if sig.signum else 0
    print(f"done: best weights {out}, latest {latest_path(out)}")
    return 0

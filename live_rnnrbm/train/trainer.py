"""The training loop (``Trainer``): the plan of every epoch, one update at a time, validation,
the best and the latest weights written, and exact resumption from a checkpoint.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data.corpus import DataError, spread
from ..data.keys import in_range_shift, shift_frames, shift_range
from ..data.parts import PLAYER_PARTS, player_mask
from ..data.weights import npz_bytes, weights_arrays, write_atomically
from ..errors import Stopped
from ..eval.loglik import evaluate_model
from ..kernels import bptt
from ..kernels.rng import new_states
from ..model import ALL_PARAM_NAMES, PARAM_NAMES, PLAYER_PARAM_NAMES, RnnRbm
from .checkpoint import CheckpointError, checkpoint_arrays, latest_path, load_checkpoint, write_elsewhere
from .config import MONITOR_KEYS, TrainConfig
from .monitor import predictive_monitor
from .optim import Schedule, clip_grad_norm, make_optimizer
from .rnn_pretrain import frame_predictor_grad


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
            where = write_elsewhere(path, data)
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

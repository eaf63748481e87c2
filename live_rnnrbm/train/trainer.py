"""The training loop (``Trainer``): the updates of every epoch one at a time (what each takes and
draws is ``plan``'s), the validation at the end of an epoch (``validation``), the best and the
latest weights written (``checkpoint``). ``resume`` continues a run from its checkpoint exactly.
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
from ..data.keys import shift_frames, shift_range
from ..data.weights import npz_bytes, weights_arrays
from ..errors import Stopped
from ..eval.loglik import evaluate_model
from ..kernels import bptt
from ..kernels.rng import new_states
from ..model import ALL_PARAM_NAMES, KEYED_PARAM_NAMES, PARAM_NAMES, PLAYER_PARAM_NAMES, RnnRbm
from .checkpoint import SafeWriter, checkpoint_arrays, latest_path
from .config import TrainConfig
from .optim import Schedule, clip_grad_norm, make_optimizer
from .plan import epoch_plan, epoch_shifts, listening, seed_of
from .rnn_pretrain import frame_predictor_grad
from .validation import validation_figures


class Trainer:
    """The training loop. Build it, then ``fit(out)``; or ``resume.resume(...)`` from a
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
        c.check()
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
        # a keyed player path (model.KEYED_PARAM_NAMES) is trained only with keyed_path, in the player
        # path's place: the file's own player path is then kept as it came; otherwise the keyed path
        # is kept as it came. Either way the files written hold both.
        p = self.model.params
        keyed = {k: p.pop(k) for k in KEYED_PARAM_NAMES if k in p}
        self.kept_path: dict[str, np.ndarray] | None = None
        self.kept_keyed: dict[str, np.ndarray] = {} if c.keyed_path else keyed
        if c.keyed_path:
            self.kept_path = {n: p[n].copy() for n in PLAYER_PARAM_NAMES}
            for n, k in zip(PLAYER_PARAM_NAMES, KEYED_PARAM_NAMES):
                if k in keyed:
                    p[n][...] = keyed[k]
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
        # the moving average of the weights (--ema): starts at the first update after pretraining
        self.ema: dict[str, np.ndarray] | None = None
        self.stop_requested = False
        self.validating = False  # a validation is running (what a stop request interrupts)
        self.validation_abandoned = False  # the run stopped at the end of an epoch, in its validation
        self.writer = SafeWriter()  # where the files went that could not go where asked (a full disk)
        self._evaluate = evaluate_model if c.ais_every else None
        self.select = c.select if c.select != "auto" else ("ll" if c.ais_every == 1 else "xent")
        self.n_validations = 0
        self._buffers: dict[int, list[np.ndarray]] = {}
        # called with each validated epoch's history record once its files are written: what a
        # tuner watches (``live_rnnrbm.tune`` reports the record's score to Ray Tune from here)
        self.on_validation: Callable[[dict[str, Any]], None] | None = None

    # -- the plan of an epoch -------------------------------------------------------------
    def is_pretraining(self, epoch: int | None = None) -> bool:
        """Before the RNN-RBM's own epochs: RNN or RBM pretraining."""
        return (self.epoch if epoch is None else epoch) < self.config.pre_epochs

    def is_rnn_pretraining(self, epoch: int | None = None) -> bool:
        return (self.epoch if epoch is None else epoch) < self.config.pretrain_rnn_epochs

    def is_rbm_pretraining(self, epoch: int | None = None) -> bool:
        return self.is_pretraining(epoch) and not self.is_rnn_pretraining(epoch)

    def plan(self, epoch: int) -> list[list[tuple[int, int, int, int]]]:
        """The updates of an epoch (``plan.epoch_plan``); each a list of (piece, start, length, stream)."""
        return epoch_plan([len(V) for V in self.train], self.config, epoch, self.is_rbm_pretraining(epoch))

    def shifts(self, epoch: int) -> np.ndarray:
        """This epoch's transposition of every piece (``plan.epoch_shifts``)."""
        return epoch_shifts(self.shift_ranges, self.config, epoch, self.is_rbm_pretraining(epoch))

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
            C, mix = listening(c, chunks, seed, self.is_pretraining())
            bptt.batch_grad(Vcat, starts, lengths, U0, p["W"], m.WT, p["bv"], p["bh"], p["Wuh"], p["Wuv"],
                               p["Wvu"], p["Wuu"], p["bu"], int(c.k), new_states(seed, B), *views[:8], U_end, costs,
                               xents, bptt.CHAIN_STARTS.index(c.chain_start), C, mix, int(c.own_history_k),
                               bool(c.own_negative), m.pitch_classes, *(p[n] for n in PLAYER_PARAM_NAMES),
                               *views[8:])
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

    def file_model(self, model: RnnRbm) -> RnnRbm:
        """``model`` as its weights file holds it: with keyed_path, the player path trained goes to
        the keyed path and the file's own player path comes back; else the keyed path kept is added."""
        if self.kept_path is None and not self.kept_keyed:
            return model
        m = model.astype(model.dtype)
        if self.kept_path is not None:
            for n, k in zip(PLAYER_PARAM_NAMES, KEYED_PARAM_NAMES):
                m.params[k] = m.params[n]
                m.params[n] = self.kept_path[n].copy()
        for k, a in self.kept_keyed.items():
            m.params[k] = a.copy()
        return m

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
        """The validation figures (``validation.validation_figures``): the cheap monitor always, the
        AIS log-likelihood every ``ais_every`` validations. None when a stop was asked for
        meanwhile: the validation is abandoned between two chunks, leaving the trainer's state as it
        was (--resume runs it again, identically)."""
        c = self.config
        model = self.averaged_model()
        stop = lambda: self.stop_requested  # noqa: E731 - set by the signal handler
        n_validations = self.n_validations + 1
        with_ais = self._evaluate is not None and (self.select == "ll" or (n_validations - 1) % c.ais_every == 0)
        self.validating = True
        try:
            res = validation_figures(model, self.valid_subset, self.ais_subset, c, epoch, self.select,
                                     self._evaluate if with_ais else None, self.progress, stop)
        except Stopped:
            return None
        finally:
            self.validating = False
        self.n_validations = n_validations
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
        return self.writer.write(Path(path), npz_bytes(checkpoint_arrays(self.file_model(self.model), meta, arrays)))

    def save_best(self, path: str | Path, figures: dict[str, Any] | None, epochs_done: int | None = None) -> Path:
        """The current weights as a plain weights file; ``epoch`` in its metadata is the number of
        training epochs finished (pretraining not counted)."""
        if epochs_done is None:
            epochs_done = max(0, self.epoch - self.config.pre_epochs)
        meta = dict(self.weights_meta, training=self._settings(), epoch=epochs_done)
        meta["validation"] = figures
        model = self.file_model(self.averaged_model().astype(np.float32))
        model.meta = {}  # a resumed model's meta still holds its checkpoint's training state
        return self.writer.write(Path(path), npz_bytes(weights_arrays(model, **meta)[1]))

    def _settings(self) -> dict[str, Any]:
        s = dataclasses.asdict(self.config)
        s.pop("stop_after_steps")
        s["train_pieces"], s["train_frames"] = len(self.train), int(sum(len(V) for V in self.train))
        s["valid_pieces_total"] = len(self.valid)
        return s

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
                                                        seed_of(c.seed, epoch, self.step))
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
            if self.writer.redirected:  # the disk is full: stop with this epoch's state safe elsewhere
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
        if self.on_validation is not None and "valid" in rec:
            self.on_validation(rec)
        return True

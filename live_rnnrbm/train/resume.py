"""Resuming a training run from its checkpoint (``checkpoint``: the ``.last.npz`` file), exactly:
the resumed run computes, bit for bit, what the run that was never interrupted would have.

>>> trainer = resume("weights/mine.last.npz", data.train, data.valid)   # doctest: +SKIP
>>> trainer.fit("weights/mine.npz")                                      # doctest: +SKIP
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..model import ALL_PARAM_NAMES
from .checkpoint import CheckpointError, load_checkpoint
from .config import MONITOR_KEYS, TrainConfig
from .trainer import Trainer


def resume(path: str | Path, train: list[np.ndarray], valid: list[np.ndarray], epochs: int | None = None,
           progress: bool = True, log: Callable[[str], None] = print, weights_meta: dict[str, Any] | None = None,
           monitor: dict[str, Any] | None = None) -> Trainer:
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
    t = Trainer(train, valid, config, wm, model, progress, log)
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

"""Optimisers for the trainer: plain SGD (the tutorial's), Adam, gradient-norm clipping and a
learning-rate schedule. Plain NumPy on the parameter dict, in place; every piece of state is a
NumPy array or a number so that a checkpoint can hold it and ``--resume`` continues exactly.

>>> opt = make_optimizer("adam", model.params)                        # doctest: +SKIP
>>> norm = clip_grad_norm(grads, 1.0)                                 # doctest: +SKIP
>>> opt.step(model.params, grads, lr=schedule.lr(epoch, step, steps))  # doctest: +SKIP
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def grad_norm(grads: dict[str, np.ndarray]) -> float:
    """The global L2 norm over all gradient arrays."""
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float | None) -> float:
    """Scale all gradients together so that their global norm is at most ``max_norm`` (in place;
    the direction is kept). Returns the norm before clipping. ``None`` or 0 turns clipping off."""
    norm = grad_norm(grads)
    if max_norm and norm > max_norm:
        scale = np.float32(max_norm / (norm + 1e-12))
        for g in grads.values():
            g *= scale.astype(g.dtype)
    return norm


class SGD:
    """θ ← θ − lr·g, with optional (heavy-ball) momentum. momentum=0 is the tutorial's rule."""

    kind = "sgd"

    def __init__(self, params: dict[str, np.ndarray], momentum: float = 0.0) -> None:
        self.momentum = float(momentum)
        self.velocity = {n: np.zeros_like(p) for n, p in params.items()} if momentum else {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float) -> None:
        for n, p in params.items():
            g = grads[n]
            if self.momentum:
                v = self.velocity[n]
                v *= p.dtype.type(self.momentum)
                v += g
                g = v
            p -= p.dtype.type(lr) * g

    def state_dict(self) -> dict[str, Any]:
        return {f"velocity.{n}": v for n, v in self.velocity.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for n in self.velocity:
            self.velocity[n][...] = state[f"velocity.{n}"]


class Adam:
    """Adam (Kingma & Ba 2015) with bias correction; ``t`` counts the steps taken."""

    kind = "adam"

    def __init__(self, params: dict[str, np.ndarray], beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8) -> None:
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.m = {n: np.zeros_like(p) for n, p in params.items()}
        self.v = {n: np.zeros_like(p) for n, p in params.items()}
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        # the bias corrections folded into the step size, as in the paper's Algorithm 1
        alpha = lr * math.sqrt(1.0 - b2 ** self.t) / (1.0 - b1 ** self.t)
        for n, p in params.items():
            f = p.dtype.type
            g, m, v = grads[n], self.m[n], self.v[n]
            m *= f(b1)
            m += f(1.0 - b1) * g
            v *= f(b2)
            v += f(1.0 - b2) * (g * g)
            p -= f(alpha) * m / (np.sqrt(v) + f(self.eps))

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {f"m.{n}": a for n, a in self.m.items()}
        state.update({f"v.{n}": a for n, a in self.v.items()})
        state["t"] = np.array(self.t, np.int64)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for n in self.m:
            self.m[n][...] = state[f"m.{n}"]
            self.v[n][...] = state[f"v.{n}"]
        self.t = int(np.asarray(state["t"]).reshape(-1)[0])


def make_optimizer(kind: str, params: dict[str, np.ndarray], momentum: float = 0.0):
    if kind == "sgd":
        return SGD(params, momentum)
    if kind == "adam":
        return Adam(params)
    raise ValueError(f"unknown optimiser {kind!r} (sgd or adam)")


class Schedule:
    """The learning rate over training.

    ``constant``: lr throughout. ``cosine``: from lr down to lr·min_factor along a half cosine
    over all epochs. ``plateau``: lr, multiplied by ``factor`` whenever the validation score has
    not improved for ``patience`` validations. All three start with a linear warm-up over
    ``warmup`` steps (0: none). The only state is ``scale``/``bad``/``best`` of ``plateau``.
    """

    def __init__(self, kind: str, lr: float, epochs: int, warmup: int = 0, min_factor: float = 0.05,
                 factor: float = 0.5, patience: int = 3) -> None:
        if kind not in ("constant", "cosine", "plateau"):
            raise ValueError(f"unknown schedule {kind!r} (constant, cosine or plateau)")
        self.kind, self.base, self.epochs, self.warmup = kind, float(lr), int(epochs), int(warmup)
        self.min_factor, self.factor, self.patience = float(min_factor), float(factor), int(patience)
        self.scale, self.bad, self.best = 1.0, 0, -math.inf

    def lr(self, epoch: int, step: int, steps_per_epoch: int, global_step: int) -> float:
        lr = self.base * self.scale
        if self.kind == "cosine" and self.epochs > 0:
            progress = min(1.0, (epoch + step / max(1, steps_per_epoch)) / self.epochs)
            lr = self.base * (self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress)))
        if self.warmup and global_step < self.warmup:
            lr *= (global_step + 1) / self.warmup
        return lr

    def report(self, score: float) -> bool:
        """Tell the schedule a validation score (higher is better); True when lr was cut."""
        if score > self.best:
            self.best, self.bad = score, 0
            return False
        self.bad += 1
        if self.kind == "plateau" and self.bad >= self.patience:
            self.scale *= self.factor
            self.bad = 0
            return True
        return False

    def state(self) -> dict[str, float]:
        return {"scale": self.scale, "bad": self.bad, "best": self.best}

    def load_state(self, state: dict[str, float]) -> None:
        self.scale, self.bad, self.best = float(state["scale"]), int(state["bad"]), float(state["best"])

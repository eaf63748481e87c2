"""An epoch's validation figures: always the cheap monitor (``monitor``: cross-entropy, accuracy),
and the AIS log-likelihood per time step (``eval.loglik``) when the trainer asks for it; and the
score the best weights are chosen on.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from ..model import RnnRbm
from .config import TrainConfig
from .monitor import predictive_monitor
from .plan import seed_of


def validation_figures(model: RnnRbm, valid: list[np.ndarray], ais_pieces: list[np.ndarray], config: TrainConfig,
                       epoch: int, select: str, evaluate: Callable[..., Any] | None, progress: bool,
                       stop: Callable[[], bool]) -> dict[str, Any]:
    """The figures of ``model`` on the pieces ``valid`` after ``epoch``: the cheap monitor's, and
    with ``evaluate`` (``eval.loglik.evaluate_model``) the AIS log-likelihood on ``ais_pieces``;
    ``score`` is the AIS log-likelihood when ``select`` is "ll", else the negative cross-entropy.
    Each part shows its own progress bar; ``errors.Stopped`` when ``stop()`` turns true meanwhile."""
    c = config
    t0 = time.perf_counter()
    res: dict[str, Any] = {"pieces": len(valid), "frames": int(sum(len(V) for V in valid))}
    label = f"epoch {epoch - c.pre_epochs + 1}/{c.epochs} validation: "
    cheap = predictive_monitor(model, valid, c.valid_k, c.valid_samples, seed_of(c.seed, epoch, 2), progress, label,
                               stop)
    res["xent"], res["accuracy_cheap"] = cheap["xent"], cheap["accuracy"]
    r = None
    if evaluate is not None:
        r = evaluate(model, ais_pieces, ais_chains=c.ais_chains, ais_steps=c.ais_steps,
                     accuracy_samples=c.valid_samples, seed=seed_of(c.seed, epoch, 3),
                     progress=progress, should_stop=stop, progress_label=label)
    if r is not None:
        res.update(log_likelihood=float(r.log_likelihood), log_likelihood_se=float(r.log_likelihood_se),
                   accuracy=float(r.accuracy), ais=f"{c.ais_chains} chains × {c.ais_steps} steps",
                   ais_pieces=len(ais_pieces), ais_frames=int(sum(len(V) for V in ais_pieces)))
    else:
        res["accuracy"] = res["accuracy_cheap"]
    # xent: the cheap monitor's cross-entropy (lower is better), so the score is its negative
    res["score"] = res["log_likelihood"] if select == "ll" else -res["xent"]
    res["selected_on"] = "AIS log-likelihood" if select == "ll" else "cheap cross-entropy"
    res["seconds"] = round(time.perf_counter() - t0, 2)
    return res

"""The log-likelihood per time step and the expected frame-level accuracy of a model on data,
measured the way Boulanger-Lewandowski et al. (2012) measured them (``live-rnnrbm eval``).

For every frame t, given the true history v_1..v_{t−1} (the RNN runs over the true frames):

    log p(v_t) = −F_t(v_t) − log Z_t

with log Z_t of frame t's RBM estimated by annealed importance sampling (``ais``), averaged over
all frames of all pieces pooled together (the paper's protocol). The accuracy is the expected
TP / (TP + FP + FN) between the true frame and frames the model samples given the true history
(k-step Gibbs chains from silence, as in generation), first per frame (mean over the samples;
a silent frame matched by a silent sample counts as 1), then averaged over all frames pooled.

From Python (the trainer's validation monitor calls this with cheaper settings):

>>> result = evaluate_model(model, corpus.arrays(), ais_chains=100, ais_steps=1000)  # doctest: +SKIP
>>> result.log_likelihood, result.accuracy                                            # doctest: +SKIP

``conditional_log_likelihood`` is the jam evaluation's: the accompaniment's log-likelihood given
the notes a player holds.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numba
import numpy as np

from ..kernels.rng import new_states
from ..model import RnnRbm
from . import ais, anneal, frame_measures, reverse_ais
from .chunks import CHUNK_FRAMES, in_chunks

BASE_PRIOR = 0.005  # share of an even coin mixed into the fitted base: no note is ruled out


@dataclass
class EvalResult:
    """What ``evaluate_model`` measured. Log-likelihoods are in nats per frame; standard errors
    are over frames (their spread, which includes the AIS and sampling noise). ``ais_se`` is the
    part of the log-likelihood's uncertainty that comes from AIS alone; ``ais_bias`` the expected
    optimism of the AIS estimate (≈ Σ Var/2 per frame, averaged), both from the weights' spread."""

    log_likelihood: float
    log_likelihood_se: float
    accuracy: float
    accuracy_se: float
    frames: int
    settings: dict[str, Any]
    seconds: float
    sequences: int = 0
    ais_se: float = 0.0
    ais_bias: float = 0.0
    ais_min_ess: float = 0.0
    log_likelihood_plain: float = float("nan")  # with the uncorrected logmeanexp of the weights
    ais_impossible_frames: int = 0  # frames whose estimated log Z < log p*(v_t), i.e. log p > 0: unconverged
    accuracy_pooled_counts: float = 0.0  # Σ TP / Σ (TP + FP + FN) over all frames and samples
    # RAISE (``raise_chains``): the conservative estimate, errs low where AIS errs high; NaN if not run
    log_likelihood_raise: float = float("nan")
    log_likelihood_raise_se: float = float("nan")
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A dict for ``json.dumps``: a figure that was skipped (NaN) becomes null."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def _previous(arrays: Sequence[np.ndarray], dtype: Any) -> np.ndarray:
    """Each frame's predecessor in its piece (silence before the first), stacked like ``_stack``."""
    out = [np.concatenate([np.zeros((1, a.shape[1]), dtype), np.asarray(a, dtype)[:-1]]) for a in arrays if len(a)]
    return np.concatenate(out)


def _stack(model: RnnRbm, arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every frame of every piece with its RBM's biases given the true history: V, BV, BH."""
    Vs, BVs, BHs = [], [], []
    for n, roll in enumerate(arrays):
        roll = np.ascontiguousarray(roll, dtype=model.dtype)
        if roll.ndim != 2 or roll.shape[1] != model.n_visible:
            raise ValueError(f"piece {n}: expected a piano-roll of shape (frames, {model.n_visible}), got {roll.shape}")
        if len(roll) == 0:
            continue
        _, BV, BH = model.run(roll)
        Vs.append(roll)
        BVs.append(BV)
        BHs.append(BH)
    if not Vs:
        raise ValueError("nothing to evaluate: no frames")
    return np.concatenate(Vs), np.concatenate(BVs), np.concatenate(BHs)



def evaluate_model(model: RnnRbm, arrays: Sequence[np.ndarray], ais_chains: int = 100, ais_steps: int = 1000,
                   accuracy_samples: int = 10, k: int = 25, seed: int = 0, progress: bool = False,
                   schedule: str = "sm", base: str = "fitted", base_chains: int = 40,
                   raise_chains: int = 0, should_stop: Callable[[], bool] | None = None,
                   progress_label: str = "") -> EvalResult:
    """Log-likelihood per frame (AIS for every frame's log Z) and expected frame-level accuracy
    of ``model`` on ``arrays`` (a list of (T, n_v) piano-rolls), each frame given its true
    history. ``accuracy_samples=0`` skips the accuracy, ``ais_chains=0`` the log-likelihood
    (the skipped figure is NaN). Deterministic for a given ``seed``.

    ``base``: the AIS base distribution is frame t's RBM with W scaled to 0 — exact log Z_0,
    exact independent draws. With ``"zero"`` it keeps the RBM's own biases (bv_t, bh_t); with
    ``"fitted"`` (default) its biases are shifted so that it plays the notes that
    ``base_chains`` k-step Gibbs chains of the frame's RBM play (half started from silence, half
    from the true frame; mixed with 0.5% of an even coin), and the path scales the shifts away as
    it scales W in (``ais``). Any fixed base keeps the estimate of Z unbiased; a base close to
    the target needs far fewer steps (docs/evaluation.md, "Convergence: more AIS steps and chains").

    ``raise_chains`` > 0 also runs RAISE (``reverse_ais.raise_log_p``) with that many chains and the
    same steps: a conservative estimate, which errs low where AIS errs high, so the two bracket the
    log-likelihood and their gap says how far from converged both are. Its base is fitted with
    chains from silence and from the previous frame, never the frame being scored.

    ``should_stop`` (the trainer's stop request) is asked between chunks of frames; when it
    answers True the evaluation is abandoned with ``errors.Stopped``. ``progress_label`` prefixes
    the progress bars' names."""
    if base not in ("fitted", "zero"):
        raise ValueError(f"unknown AIS base {base!r} (use 'fitted' or 'zero')")
    if ais_chains < 0 or raise_chains < 0 or ais_steps < 1 or accuracy_samples < 0 or k < 1:
        raise ValueError("need ais_chains ≥ 0, raise_chains ≥ 0, ais_steps ≥ 1, accuracy_samples ≥ 0 and k ≥ 1")
    t0 = time.perf_counter()
    V, BV, BH = _stack(model, arrays)
    N = V.shape[0]
    W, WT = model.params["W"], model.WT
    settings = dict(ais_chains=ais_chains, ais_steps=ais_steps, ais_schedule=schedule, ais_base=base,
                    ais_base_chains=base_chains if base == "fitted" else 0,
                    accuracy_samples=accuracy_samples, k=k, seed=seed, dtype=str(model.dtype),
                    threads=numba.get_num_threads())
    timings: dict[str, float] = {}
    nan = float("nan")
    # a skipped measure's figures stay NaN (the frames with log p > 0 are counted only when AIS ran)
    figures: dict[str, Any] = dict(log_likelihood=nan, log_likelihood_se=nan, ais_se=nan, ais_bias=nan,
                                   ais_min_ess=nan, ais_impossible_frames=0, log_likelihood_plain=nan,
                                   log_likelihood_raise=nan, log_likelihood_raise_se=nan, accuracy=nan,
                                   accuracy_se=nan, accuracy_pooled_counts=nan)
    betas = anneal.beta_schedule(ais_steps, schedule)  # AIS and RAISE anneal along the same path
    fitted = base_chains if base == "fitted" else None  # None: the zero base

    if ais_chains:
        t1 = time.perf_counter()
        figures.update(_ais_figures(model, V, BV, BH, W, WT, betas, ais_chains, fitted, k, seed,
                                    progress_label + "log-likelihood (AIS)", progress, should_stop))
        timings["log_likelihood"] = time.perf_counter() - t1
    if raise_chains:
        t1 = time.perf_counter()
        V_prev = _previous(arrays, model.dtype)
        figures.update(_raise_figures(model, V, V_prev, BV, BH, W, WT, betas, raise_chains, fitted, k, seed,
                                      progress_label + "log-likelihood (RAISE)", progress, should_stop))
        settings["raise_chains"] = raise_chains
        timings["log_likelihood_raise"] = time.perf_counter() - t1
    if accuracy_samples:
        t1 = time.perf_counter()
        figures.update(_accuracy_figures(model, V, BV, BH, W, WT, accuracy_samples, k, seed,
                                         progress_label + "accuracy", progress, should_stop))
        timings["accuracy"] = time.perf_counter() - t1

    return EvalResult(frames=int(N), settings=settings, seconds=time.perf_counter() - t0, sequences=len(arrays),
                      timings=timings, **figures)


def _se(x: np.ndarray) -> float:
    """The standard error of the mean of ``x`` (NaN for a single frame)."""
    N = len(x)
    return float(x.std(ddof=1) / math.sqrt(N)) if N > 1 else float("nan")


def _ais_figures(model: RnnRbm, V: np.ndarray, BV: np.ndarray, BH: np.ndarray, W: np.ndarray, WT: np.ndarray,
                 betas: np.ndarray, chains: int, base_chains: int | None, k: int, seed: int, label: str, progress: bool,
                 should_stop: Callable[[], bool] | None) -> dict[str, Any]:
    """``evaluate_model``'s log-likelihood figures from AIS's log Z of every frame's RBM (its base
    fitted with ``base_chains`` chains, or the zero base for None)."""
    N = V.shape[0]
    states = new_states(seed, N)
    base_states = new_states(seed + 2, N)
    C = np.zeros((N, model.n_visible))
    D = np.zeros((N, model.n_hidden))
    log_z = np.empty(N)
    log_z_var = np.empty(N)
    ess = np.empty(N)
    log_z_jack = np.empty(N)

    def ais_chunk(s: int, e: int) -> None:
        if base_chains is not None:
            ais.fitted_base(W, WT, BV[s:e], BH[s:e], V[s:e], base_chains, k, BASE_PRIOR, base_states[s:e],
                            C[s:e], D[s:e])
        ais.ais_log_z(W, WT, BV[s:e], BH[s:e], C[s:e], D[s:e], betas, chains, states[s:e],
                      log_z[s:e], log_z_var[s:e], ess[s:e], log_z_jack[s:e])

    in_chunks(N, label, progress, ais_chunk, should_stop=should_stop)
    F = np.empty(N)
    frame_measures.free_energies(V, W, BV, BH, F)
    log_p = -F - log_z_jack  # jackknife-corrected log Z: the O(1/chains) bias of logmeanexp removed
    return dict(log_likelihood=float(log_p.mean()), log_likelihood_plain=float((-F - log_z).mean()),
                log_likelihood_se=_se(log_p), ais_se=float(math.sqrt(log_z_var.sum()) / N),
                # E[log Ẑ] ≈ log Z − Var/2: the log-likelihood is optimistic by about this
                ais_bias=float(log_z_var.mean() / 2), ais_min_ess=float(ess.min()),
                ais_impossible_frames=int((log_p > 0.01).sum()))  # log p ≤ 0 always; a little noise allowed


def _raise_figures(model: RnnRbm, V: np.ndarray, V_prev: np.ndarray, BV: np.ndarray, BH: np.ndarray,
                   W: np.ndarray, WT: np.ndarray, betas: np.ndarray, chains: int, base_chains: int | None, k: int,
                   seed: int, label: str, progress: bool,
                   should_stop: Callable[[], bool] | None) -> dict[str, Any]:
    """``evaluate_model``'s RAISE log-likelihood figures; the base (unless ``base_chains`` is None:
    the zero base) is fitted from the previous frames ``V_prev``, not from the frames scored."""
    N = V.shape[0]
    states = new_states(seed + 3, N)
    base_states = new_states(seed + 4, N)
    C = np.zeros((N, model.n_visible))
    D = np.zeros((N, model.n_hidden))
    log_p_r = np.empty(N)
    log_p_var = np.empty(N)

    def raise_chunk(s: int, e: int) -> None:
        if base_chains is not None:
            ais.fitted_base(W, WT, BV[s:e], BH[s:e], V_prev[s:e], base_chains, k, BASE_PRIOR,
                            base_states[s:e], C[s:e], D[s:e])
        reverse_ais.raise_log_p(W, WT, BV[s:e], BH[s:e], C[s:e], D[s:e], betas, V[s:e], chains,
                                states[s:e], log_p_r[s:e], log_p_var[s:e])

    in_chunks(N, label, progress, raise_chunk, should_stop=should_stop)
    return dict(log_likelihood_raise=float(log_p_r.mean()), log_likelihood_raise_se=_se(log_p_r))


def _accuracy_figures(model: RnnRbm, V: np.ndarray, BV: np.ndarray, BH: np.ndarray, W: np.ndarray,
                      WT: np.ndarray, samples: int, k: int, seed: int, label: str, progress: bool,
                      should_stop: Callable[[], bool] | None) -> dict[str, Any]:
    """``evaluate_model``'s accuracy figures: per frame over ``samples`` k-step samples, and pooled."""
    N = V.shape[0]
    states = new_states(seed + 1, N)
    per_frame = np.empty(N)
    counts = np.zeros((N, 3), np.int64)
    beta = model.dtype.type(1.0)

    def accuracy_chunk(s: int, e: int) -> None:
        frame_measures.frame_accuracy(W, WT, BV[s:e], BH[s:e], V[s:e], samples, k, beta, states[s:e],
                                      per_frame[s:e], counts[s:e])

    in_chunks(N, label, progress, accuracy_chunk, 4 * CHUNK_FRAMES, should_stop)
    tp, fp, fn = counts.sum(axis=0)
    return dict(accuracy=float(per_frame.mean()), accuracy_se=_se(per_frame),
                accuracy_pooled_counts=float(tp / (tp + fp + fn)) if tp + fp + fn else 1.0)


# --------------------------------------------------------------------------- conditional likelihood


def conditional_log_likelihood(model, U: np.ndarray, frames: np.ndarray, player: np.ndarray, ais_chains: int,
                               ais_steps: int, seed: int) -> np.ndarray:
    """log p(rest_t | player_t, u_{t-1}) for every frame, by AIS (U[t]: u_{t-1}, or the live state
    [u_{t-1} | q_{t-1}] with the player's trace): the RBM of frame t with the
    player's notes clamped on is an RBM over the other notes whose hidden biases carry
    player_t·W (the clamped notes' own biases cancel between the frame and Z), its biases the
    player path's terms too; the clamped notes are ruled out of it by a visible bias of
    CLAMPED_OFF."""
    p = model.params
    N = len(frames)
    dt = model.dtype  # the types evaluate_model runs the AIS kernels with: their compiled code is reused
    W, WT = p["W"], model.WT
    U, Q = U[:, :model.n_hidden_recurrent], U[:, model.n_hidden_recurrent:]
    BV = np.ascontiguousarray(U @ p["Wuv"] + p["bv"] + player @ p["Wpv"] + Q @ p["Wqv"][:Q.shape[1]], dt)
    BH = np.ascontiguousarray(U @ p["Wuh"] + p["bh"] + player @ (W + p["Wph"]) + Q @ p["Wqh"][:Q.shape[1]], dt)
    clamped = player > 0
    BV[clamped] = CLAMPED_OFF
    rest = np.ascontiguousarray(np.where(clamped, 0.0, frames), dt)
    k = 25
    C = np.zeros((N, model.n_visible))
    D = np.zeros((N, model.n_hidden))
    ais.fitted_base(W, WT, BV, BH, rest, 20, k, BASE_PRIOR, new_states(seed + 2, N), C, D)
    C[clamped] = CLAMPED_OFF  # the base rules the clamped notes out too
    log_z, log_z_var, ess, log_z_jack = (np.empty(N) for _ in range(4))
    ais.ais_log_z(W, WT, BV, BH, C, D, anneal.beta_schedule(ais_steps, "sm"), ais_chains, new_states(seed, N),
                  log_z, log_z_var, ess, log_z_jack)
    F = np.empty(N)
    frame_measures.free_energies(rest, W, BV, BH, F)
    return -F - log_z_jack


CLAMPED_OFF = -60.0  # a visible bias that keeps a unit off (e^-60 ≈ 1e-26)

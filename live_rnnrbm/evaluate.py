"""`live-rnnrbm eval`: the log-likelihood per time step and the expected frame-level accuracy of
a weights file on data, measured the way Boulanger-Lewandowski et al. (2012) measured them.

    live-rnnrbm eval --weights nottingham ../shared/data/pickles/Nottingham.pickle --split valid
    live-rnnrbm eval --weights mine.npz tunes/ --json

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
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numba
import numpy as np

from . import ais
from .errors import Stopped
from .jam import TASKS as JAM_TASKS
from .jam import add_arguments as add_jam_arguments
from .model import RnnRbm
from .kernels.rng import new_states

BASE_PRIOR = 0.005  # share of an even coin mixed into the fitted base: no note is ruled out
CHUNK_FRAMES = 256  # frames per kernel call: progress updates often, threads stay busy


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


STOP_CHUNK_SECONDS = 0.25  # with a stop to honour, a chunk lasts about this long: Ctrl-C is answered at once


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="frame", smoothing=0.1, leave=False, file=sys.stderr,
                dynamic_ncols=True)


def in_chunks(N: int, desc: str, progress: bool, step: Callable[[int, int], None], chunk: int = CHUNK_FRAMES,
              should_stop: Callable[[], bool] | None = None) -> None:
    """step(s, e) over frames [0, N) in chunks, with a progress bar when asked: threads stay
    busy within a chunk, and the bar moves between them. With ``should_stop``, it is asked before
    every chunk and ``errors.Stopped`` raised when it says so; the chunks are then sized to last
    about ``STOP_CHUNK_SECONDS`` (a kernel call cannot be interrupted, and a full chunk of AIS can
    take seconds). Every frame draws from its own stream, so chunking never changes a result."""
    bar = _progress(N, desc, progress)
    # with a stop to honour, start with one frame per thread: a frame's cost is unknown until measured
    size = min(chunk, numba.get_num_threads()) if should_stop is not None else chunk
    try:
        s = 0
        while s < N:
            if should_stop is not None and should_stop():
                raise Stopped(desc)
            e = min(N, s + size)
            t0 = time.perf_counter()
            step(s, e)
            if should_stop is not None:  # aim the next chunk at the time budget, growing at most 4×
                took = max(time.perf_counter() - t0, 1e-4)
                size = int(min(chunk, 4 * size, max(1, size * STOP_CHUNK_SECONDS / took)))
            if bar is not None:
                bar.update(e - s)
            s = e
    finally:
        if bar is not None:
            bar.close()


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
    the target needs far fewer steps (the README's "Convergence: more AIS steps and chains").

    ``raise_chains`` > 0 also runs RAISE (``ais.raise_log_p``) with that many chains and the same
    steps: a conservative estimate, which errs low where AIS errs high, so the two bracket the
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
    ll = ll_se = a_se = acc = acc_counts = nan
    ais_se = ais_bias = min_ess = nan
    impossible = 0
    ll_plain = nan
    betas = ais.beta_schedule(ais_steps, schedule)  # AIS and RAISE anneal along the same path

    if ais_chains:
        t1 = time.perf_counter()
        states = new_states(seed, N)
        base_states = new_states(seed + 2, N)
        C = np.zeros((N, model.n_visible))
        D = np.zeros((N, model.n_hidden))
        log_z = np.empty(N)
        log_z_var = np.empty(N)
        ess = np.empty(N)
        log_z_jack = np.empty(N)

        def ais_chunk(s: int, e: int) -> None:
            if base == "fitted":
                ais.fitted_base(W, WT, BV[s:e], BH[s:e], V[s:e], base_chains, k, BASE_PRIOR, base_states[s:e],
                                C[s:e], D[s:e])
            ais.ais_log_z(W, WT, BV[s:e], BH[s:e], C[s:e], D[s:e], betas, ais_chains, states[s:e],
                          log_z[s:e], log_z_var[s:e], ess[s:e], log_z_jack[s:e])

        in_chunks(N, progress_label + "log-likelihood (AIS)", progress, ais_chunk, should_stop=should_stop)
        F = np.empty(N)
        ais.free_energies(V, W, BV, BH, F)
        log_p = -F - log_z_jack  # jackknife-corrected log Z: the O(1/chains) bias of logmeanexp removed
        ll = float(log_p.mean())
        ll_plain = float((-F - log_z).mean())
        ll_se = float(log_p.std(ddof=1) / math.sqrt(N)) if N > 1 else nan
        ais_se = float(math.sqrt(log_z_var.sum()) / N)
        ais_bias = float(log_z_var.mean() / 2)  # E[log Ẑ] ≈ log Z − Var/2: ll is optimistic by about this
        min_ess = float(ess.min())
        impossible = int((log_p > 0.01).sum())  # log p ≤ 0 always; a little noise allowed
        timings["log_likelihood"] = time.perf_counter() - t1

    ll_raise = ll_raise_se = nan
    if raise_chains:
        t1 = time.perf_counter()
        V_prev = _previous(arrays, model.dtype)
        states = new_states(seed + 3, N)
        base_states = new_states(seed + 4, N)
        C = np.zeros((N, model.n_visible))
        D = np.zeros((N, model.n_hidden))
        log_p_r = np.empty(N)
        log_p_var = np.empty(N)

        def raise_chunk(s: int, e: int) -> None:
            if base == "fitted":
                ais.fitted_base(W, WT, BV[s:e], BH[s:e], V_prev[s:e], base_chains, k, BASE_PRIOR,
                                base_states[s:e], C[s:e], D[s:e])
            ais.raise_log_p(W, WT, BV[s:e], BH[s:e], C[s:e], D[s:e], betas, V[s:e], raise_chains, states[s:e],
                            log_p_r[s:e], log_p_var[s:e])

        in_chunks(N, progress_label + "log-likelihood (RAISE)", progress, raise_chunk,
                  should_stop=should_stop)
        ll_raise = float(log_p_r.mean())
        ll_raise_se = float(log_p_r.std(ddof=1) / math.sqrt(N)) if N > 1 else nan
        settings["raise_chains"] = raise_chains
        timings["log_likelihood_raise"] = time.perf_counter() - t1

    if accuracy_samples:
        t1 = time.perf_counter()
        states = new_states(seed + 1, N)
        per_frame = np.empty(N)
        counts = np.zeros((N, 3), np.int64)
        beta = model.dtype.type(1.0)

        def accuracy_chunk(s: int, e: int) -> None:
            ais.frame_accuracy(W, WT, BV[s:e], BH[s:e], V[s:e], accuracy_samples, k, beta, states[s:e],
                               per_frame[s:e], counts[s:e])

        in_chunks(N, progress_label + "accuracy", progress, accuracy_chunk, 4 * CHUNK_FRAMES, should_stop)
        acc = float(per_frame.mean())
        a_se = float(per_frame.std(ddof=1) / math.sqrt(N)) if N > 1 else nan
        tp, fp, fn = counts.sum(axis=0)
        acc_counts = float(tp / (tp + fp + fn)) if tp + fp + fn else 1.0
        timings["accuracy"] = time.perf_counter() - t1

    return EvalResult(log_likelihood=ll, log_likelihood_se=ll_se, accuracy=acc, accuracy_se=a_se, frames=int(N),
                      settings=settings, seconds=time.perf_counter() - t0, sequences=len(arrays), ais_se=ais_se,
                      ais_bias=ais_bias, ais_min_ess=min_ess, ais_impossible_frames=impossible,
                      log_likelihood_plain=ll_plain, accuracy_pooled_counts=acc_counts, timings=timings,
                      log_likelihood_raise=ll_raise, log_likelihood_raise_se=ll_raise_se)


# --------------------------------------------------------------------------- command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="*", metavar="DATA",
                   help="MIDI files, folders (searched recursively), globs, or a benchmark pickle (with --split)")
    p.add_argument("--weights", help="weights file, or a shipped name (nottingham, jsb); default: nottingham")
    p.add_argument("--split", default="valid", help="split of a benchmark pickle (default valid)")
    p.add_argument("--task", choices=("ll",) + JAM_TASKS, nargs="+", default=["ll"],
                   help="ll: log-likelihood and accuracy, as in the paper (default); harmonize, follow: a player "
                        "plays the melody and the live engine accompanies it; chords: a player holds I-IV-V-I in "
                        "all 24 keys (the jam evaluation: see the 'jam' options)")
    p.add_argument("--ais-chains", type=int, default=None,
                   help="AIS chains per frame (default 20; in the jam tasks 0: no conditional log-likelihood)")
    p.add_argument("--ais-steps", type=int, default=400, help="AIS intermediate distributions (default 400)")
    p.add_argument("--ais-schedule", choices=("sm", "linear"), default="sm",
                   help="β schedule: 'sm' = Salakhutdinov & Murray 2008's piecewise-linear one (default)")
    p.add_argument("--ais-base", choices=("fitted", "zero"), default="fitted",
                   help="AIS base: the frame's RBM with W = 0 and visible biases fitted to its own note "
                        "probabilities (default), or 'zero': with the RBM's own biases")
    p.add_argument("--raise-chains", type=int, default=0, metavar="N",
                   help="also estimate the log-likelihood by RAISE (reverse annealing, Burda et al. 2015) with "
                        "N chains per frame and --ais-steps steps: a conservative figure, which errs low where "
                        "AIS errs high; close together, the two have converged (default 0: off)")
    p.add_argument("--accuracy-samples", type=int, default=10,
                   help="model samples per frame for the accuracy (default 10; 0 skips it)")
    p.add_argument("--k", type=int, default=None,
                   help="Gibbs steps per sampled frame (default: 25 for the accuracy, the tutorial's chains, which "
                        "the paper's accuracy and the README's figures use; in the jam tasks the preset's k, else "
                        "the weights' generation_k, as generate and play)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-log-likelihood", action="store_true", help="only the accuracy (skips AIS)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_jam_arguments(p.add_argument_group("jam (--task harmonize, follow, chords)"))


def _report(r: EvalResult, weights: str, data: str) -> str:
    s = r.settings
    lines = [f"weights  {weights}", f"data     {data}: {r.sequences} pieces, {r.frames:,} frames"]
    if not math.isnan(r.log_likelihood):
        lines += [f"log-likelihood  {r.log_likelihood:.4f} ± {r.log_likelihood_se:.4f} nats per frame "
                  f"(mean over all frames pooled ± SE; jackknifed log Z, plain {r.log_likelihood_plain:.4f})",
                  f"   AIS: {s['ais_chains']} chains × {s['ais_steps']} steps, {s['ais_schedule']} schedule, "
                  f"base: W = 0 with {s['ais_base']} biases",
                  f"   AIS noise in the mean ±{r.ais_se:.4f}, spread-based optimism {r.ais_bias:.4f}, "
                  f"smallest ESS {r.ais_min_ess:.1f} of {s['ais_chains']}"]
        if not math.isnan(r.log_likelihood_raise):
            gap = r.log_likelihood - r.log_likelihood_raise
            lines.append(f"   RAISE (conservative): {r.log_likelihood_raise:.4f} ± {r.log_likelihood_raise_se:.4f} "
                         f"({s['raise_chains']} chains × {s['ais_steps']} steps); AIS − RAISE = {gap:.4f}: "
                         + ("converged" if gap < 0.02 else "the log-likelihood lies between the two"))
        if r.ais_impossible_frames:
            lines.append(f"   WARNING: {r.ais_impossible_frames} frame(s) got log p > 0 (log Z under-estimated): "
                         "AIS has not converged, raise --ais-steps")
    if not math.isnan(r.accuracy):
        lines += [f"accuracy        {100 * r.accuracy:.2f}% ± {100 * r.accuracy_se:.2f}% (expected "
                  f"TP/(TP+FP+FN) per frame, mean over frames; silent vs silent = 1)",
                  f"   {s['accuracy_samples']} samples per frame, k = {s['k']} Gibbs steps from silence; "
                  f"ΣTP/Σ(TP+FP+FN) over all frames: {100 * r.accuracy_pooled_counts:.2f}%"]
    per_k = 1000 * r.seconds / r.frames
    lines.append(f"time     {r.seconds:.1f} s ({per_k:.2f} s per 1000 frames, {s['threads']} threads, "
                 f"seed {s['seed']})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from .data.corpus import DataError, load_corpus
    from .generate import frame_resolution, load_model
    from .data.weights import WeightsError

    if args.task != ["ll"]:
        if "ll" in args.task:
            print("error: --task ll (the log-likelihood) runs on its own: give it, or jam tasks", file=sys.stderr)
            return 2
        from .jam import run as run_jam
        return run_jam(args)
    if args.ais_chains is None:
        args.ais_chains = 20
    if args.k is None:
        args.k = 25
    if not args.data:
        print("error: name the data to evaluate on (MIDI files, folders, globs or a pickle)", file=sys.stderr)
        return 2
    from .cli import flag_errors
    wrong = flag_errors(args, [("ais_chains", lambda v: v >= 1, "≥ 1"), ("raise_chains", lambda v: v >= 0, "≥ 0"),
                               ("ais_steps", lambda v: v >= 1, "≥ 1"), ("accuracy_samples", lambda v: v >= 0, "≥ 0"),
                               ("k", lambda v: v >= 1, "≥ 1")])
    if wrong:
        print(f"error: {wrong}", file=sys.stderr)
        return 2
    try:
        model = load_model(args.weights)
        if model.meta.get("untrained"):
            print("warning: evaluating an UNTRAINED model", file=sys.stderr)
        corpus = load_corpus(args.data, split=args.split, lowest_note=model.lowest_note,
                             highest_note=model.highest_note, **frame_resolution(model),
                             warn=lambda msg: print(f"warning: {msg}", file=sys.stderr))
    except (WeightsError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if corpus.dropped_notes:
        print(f"warning: {corpus.dropped_notes} note(s) outside {model.lowest_note}..{model.highest_note} dropped",
              file=sys.stderr)
    result = evaluate_model(model, corpus.arrays(model.dtype),
                            ais_chains=0 if args.no_log_likelihood else args.ais_chains, ais_steps=args.ais_steps, accuracy_samples=args.accuracy_samples, k=args.k,
                            seed=args.seed, progress=not args.quiet and not args.json, schedule=args.ais_schedule,
                            base=args.ais_base, raise_chains=0 if args.no_log_likelihood else args.raise_chains)
    weights = str(model.meta.get("path") or args.weights or "nottingham (shipped)")
    pickles = any(str(d).lower().endswith((".pickle", ".pkl")) for d in args.data)
    data = " ".join(args.data) + (f" [{args.split}]" if pickles else "")
    if args.json:
        out = result.to_json()
        out.update(weights=weights, data=data, skipped=[list(s) for s in corpus.skipped])
        print(json.dumps(out, indent=2))
    else:
        print(_report(result, weights, data))
    return 0

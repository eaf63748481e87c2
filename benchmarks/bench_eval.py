"""Speed of the AIS log Z kernel (``live_rnnrbm.eval.ais.ais_log_z``) against a plain-NumPy reference
of the same algorithm (vectorised over frames and chains), on frames of the Nottingham valid
split with the shipped weights (an untrained model if none are shipped).

    PYTHONPATH=. python3 benchmarks/bench_eval.py [--frames 64] [--chains 20] [--steps 400] [--repeat 3]

Prints medians over the repeats, the ratio, and seconds per 1000 frames at these settings. Both
run the same maths (W-scaled path from the fitted base, h summed out in the weights); their
estimates agree within the AIS noise.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from live_rnnrbm.data.corpus import load_corpus  # noqa: E402
from live_rnnrbm.data.weights import load_model  # noqa: E402
from live_rnnrbm.eval import ais, anneal  # noqa: E402
from live_rnnrbm.eval.loglik import BASE_PRIOR  # noqa: E402
from live_rnnrbm.kernels.rng import new_states  # noqa: E402

PICKLE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pickles" / "Nottingham.pickle"


def numpy_ais(W, BV, BH, C, D, betas, n_chains, rng):
    """The same AIS in plain NumPy: all frames × chains at once, one Python step per β."""
    W = W.astype(np.float64)
    F, n_v = BV.shape
    sp = lambda x: np.logaddexp(0.0, x)  # noqa: E731
    sig = lambda x: 0.5 * (1.0 + np.tanh(0.5 * x))  # noqa: E731
    bvc = BV + C                                          # base visible biases (F, n_v)
    bhd = BH + D                                          # base hidden biases (F, n_h)
    log_z0 = sp(bvc).sum(1) + sp(bhd).sum(1)
    v = (rng.random((F, n_chains, n_v)) < sig(bvc)[:, None, :]).astype(np.float64)
    a = v @ W - D[:, None, :]                             # v·W − d
    log_w = -sp(bhd).sum(1)[:, None] * np.ones((1, n_chains))  # −S(β_0)
    for k in range(1, len(betas)):
        b, b0 = betas[k], betas[k - 1]
        x = b * a + bhd[:, None, :]
        log_w += sp(x).sum(2) - (b - b0) * (v @ C[:, :, None])[..., 0]
        if k == len(betas) - 1:
            break
        h = (rng.random(x.shape) < sig(x)).astype(np.float64)
        y = b * (h @ W.T) + BV[:, None, :] + (1.0 - b) * C[:, None, :]
        v = (rng.random(y.shape) < sig(y)).astype(np.float64)
        a = v @ W - D[:, None, :]
        log_w -= sp(b * a + bhd[:, None, :]).sum(2)
    m = log_w.max(1, keepdims=True)
    return log_z0 + m[:, 0] + np.log(np.exp(log_w - m).mean(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="nottingham")
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--chains", type=int, default=20)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    model = load_model(args.weights)
    rolls = load_corpus([PICKLE], split="valid").arrays(model.dtype)
    V = np.concatenate(rolls)[: args.frames]
    _, BV, BH = model.run(V)  # one long "piece": only the biases matter here
    W, WT = model.W, model.WT
    N = len(V)
    C, D = np.zeros((N, model.n_visible)), np.zeros((N, model.n_hidden))
    ais.fitted_base(W, WT, BV, BH, V, 10, 25, BASE_PRIOR, new_states(2, N), C, D)
    betas = anneal.beta_schedule(args.steps)
    lz, var, ess, jack = np.empty(N), np.empty(N), np.empty(N), np.empty(N)
    ais.ais_log_z(W, WT, BV[:2], BH[:2], C[:2], D[:2], betas[:3] / betas[2], 2, new_states(0, 2),
                  lz[:2], var[:2], ess[:2], jack[:2])  # compile (or load from the cache) first

    t_numba, t_numpy = [], []
    for r in range(args.repeat):
        t = time.perf_counter()
        ais.ais_log_z(W, WT, BV, BH, C, D, betas, args.chains, new_states(r, N), lz, var, ess, jack)
        t_numba.append(time.perf_counter() - t)
        t = time.perf_counter()
        ref = numpy_ais(W, BV, BH, C, D, betas, args.chains, np.random.default_rng(r))
        t_numpy.append(time.perf_counter() - t)
    a, b = statistics.median(t_numba), statistics.median(t_numpy)
    print(f"AIS log Z, {N} frames × {args.chains} chains × {args.steps} steps, n_h {model.n_hidden}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"  numba (ais.ais_log_z)  median {a:8.3f} s   {1000 * a / N:7.2f} s per 1000 frames")
    print(f"  plain NumPy reference  median {b:8.3f} s   {1000 * b / N:7.2f} s per 1000 frames")
    print(f"  speed-up ×{b / a:.1f}; mean log Z numba {lz.mean():.3f}, NumPy {ref.mean():.3f} "
          f"(difference {lz.mean() - ref.mean():+.3f}, AIS noise ±{np.sqrt(var.sum()) / N:.3f})")


if __name__ == "__main__":
    main()

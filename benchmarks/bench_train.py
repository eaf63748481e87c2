"""Training throughput: our trainer (Numba, parallel over subsequences) against a plain-NumPy
reference of the same gradient, in the same run, at the tutorial's sizes.

    PYTHONPATH=. python3 benchmarks/bench_train.py [--repeats 7] [--batch-size 4]

Model 88 × 150 × 100 (n_v, n_h, n_u), CD-15, subsequences of 100 frames from the Nottingham
pickle (synthetic rolls of the same density when ../shared/data is not there). Prints the median
frames/s of: our ``Trainer.train_step`` with 1 and 2 Numba threads, and the NumPy reference
(vectorised over the frames of a subsequence: the Gibbs chains of all 100 frames as matrix
products, the RNN and BPTT as a loop over time — the Theano tutorial's structure) with its BLAS on
1 and on 2 threads (``threadpoolctl``, so both in this one process), the ratios thread for thread,
and the time of one Nottingham epoch estimated from the throughput — twice: at initialisation
(untrained) and from the shipped Nottingham weights, because our sparse Gibbs chains cost what
the model's state makes them cost while the reference's matrix products do not. The NumPy reference is first
checked against the model's exact gradient, so the comparison is between equal computations.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine  # noqa: E402
from live_rnnrbm.data.weights import load_weights, resolve_weights  # noqa: E402
from live_rnnrbm.model import PARAM_NAMES, RnnRbm  # noqa: E402
from live_rnnrbm.train.config import TrainConfig  # noqa: E402
from live_rnnrbm.train.trainer import Trainer  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pickles" / "Nottingham.pickle"
NOTTINGHAM_TRAIN_FRAMES = 176_561


# --------------------------------------------------------------------------- the NumPy reference


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softplus(x):
    return np.logaddexp(0.0, x)


def numpy_rnn(V, p):
    T = len(V)
    U = np.zeros((T + 1, p["bu"].shape[0]), V.dtype)
    for t in range(T):
        U[t + 1] = np.tanh(p["bu"] + V[t] @ p["Wvu"] + U[t] @ p["Wuu"])
    BV = p["bv"] + U[:-1] @ p["Wuv"]
    BH = p["bh"] + U[:-1] @ p["Wuh"]
    return U, BV, BH


def numpy_cd_samples(V, BV, BH, W, k, rng):
    """k steps of block Gibbs sampling from every true frame, all frames at once."""
    v = V.copy()
    for _ in range(k):
        h = (rng.random(BH.shape, dtype=np.float32) < sigmoid(v @ W + BH)).astype(V.dtype)
        v = (rng.random(BV.shape, dtype=np.float32) < sigmoid(h @ W.T + BV)).astype(V.dtype)
    return v


def numpy_grad(V, Vt, U, BV, BH, p):
    """cost = mean_t [F_t(v_t) − F_t(ṽ_t)] and its gradient (BPTT through bv_t, bh_t)."""
    T = len(V)
    W = p["W"]
    xd, xm = V @ W + BH, Vt @ W + BH
    cost = np.mean(-(V * BV).sum(1) - softplus(xd).sum(1) + (Vt * BV).sum(1) + softplus(xm).sum(1))
    sd, sm = sigmoid(xd), sigmoid(xm)
    dBV, dBH = (Vt - V) / T, (sm - sd) / T
    g = {"W": (Vt.T @ sm - V.T @ sd) / T, "bv": dBV.sum(0), "bh": dBH.sum(0),
         "Wuv": U[:-1].T @ dBV, "Wuh": U[:-1].T @ dBH,
         "Wvu": np.zeros_like(p["Wvu"]), "Wuu": np.zeros_like(p["Wuu"]), "bu": np.zeros_like(p["bu"])}
    du = np.zeros_like(p["bu"])
    for t in range(T - 1, -1, -1):
        da = du * (1.0 - U[t + 1] ** 2)
        g["bu"] += da
        g["Wvu"] += np.outer(V[t], da)
        g["Wuu"] += np.outer(U[t], da)
        du = p["Wuu"] @ da + p["Wuv"] @ dBV[t] + p["Wuh"] @ dBH[t]
    return cost, g


def numpy_step(chunks, p, k, rng, lr):
    """One SGD update from a batch of subsequences, the trainer's update in NumPy."""
    total = {n: np.zeros_like(a) for n, a in p.items()}
    for V in chunks:
        U, BV, BH = numpy_rnn(V, p)
        Vt = numpy_cd_samples(V, BV, BH, p["W"], k, rng)
        _, g = numpy_grad(V, Vt, U, BV, BH, p)
        for n in total:
            total[n] += g[n]
    for n in p:
        p[n] -= np.float32(lr / len(chunks)) * total[n]


def check_reference(pieces: list[np.ndarray]) -> float:
    """The NumPy gradient equals the model's (kernels.bptt.cost_and_grad) on the same CD samples."""
    m = RnnRbm(seed=3, dtype=np.float64)
    for n in ("Wuh", "Wuv", "Wvu", "Wuu"):  # larger recurrent weights, so that BPTT matters
        m.params[n] *= 300
    V = pieces[0][:40].astype(np.float64)
    U, BV, BH = m.run(V)
    Vt = numpy_cd_samples(V, BV, BH, m.W, 3, np.random.default_rng(0)).astype(np.float64)
    cost, g = numpy_grad(V, Vt, U, BV, BH, m.params)
    cost_ref, g_ref = m.cost_and_grad(V, Vt)
    err = max(float(np.abs(g[n] - g_ref[n]).max() / (np.abs(g_ref[n]).max() + 1e-300)) for n in PARAM_NAMES)
    assert abs(cost - cost_ref) < 1e-9 and err < 1e-9, (cost, cost_ref, err)
    return err


# --------------------------------------------------------------------------- data


def load_pieces() -> tuple[list[np.ndarray], str]:
    if DATA.exists():
        from live_rnnrbm.data.pianoroll import load_pickle
        return [r.frames.astype(np.float32) for r in load_pickle(DATA, "train")], f"{DATA.name} (train)"
    rng = np.random.default_rng(0)  # ~3 notes a frame in the middle of the keyboard, like Nottingham
    pieces = []
    for _ in range(60):
        V = np.zeros((250, 88), np.float32)
        for t in range(250):
            V[t, rng.choice(np.arange(20, 70), 3, replace=False)] = 1
        pieces.append(V)
    return pieces, "synthetic rolls (Nottingham pickle not found)"


# --------------------------------------------------------------------------- timing


def settle() -> None:
    """Wait for the other side's idle threads to let go of the cores. OpenBLAS's threads
    busy-wait for a while after a product (about 0.1 s: THREAD_TIMEOUT, 2^28 cycles), and Numba's
    OpenMP threads spin after a parallel region: measured without this pause, our 2-thread
    updates right after the reference's ran at half their speed (50k frames/s against 100k)."""
    time.sleep(0.3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=6, help="updates per timed repeat (ours)")
    ap.add_argument("--batch-size", type=int, default=4, help="subsequences per update")
    ap.add_argument("--quick", action="store_true", help="3 repeats of 3 updates")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.steps = 3, 3

    pieces, source = load_pieces()
    err = check_reference(pieces)
    B = args.batch_size
    print(f"training throughput, n_v 88, n_h 150, n_u 100, CD-15, {B} × 100-frame subsequences per update")
    print(f"data: {source}; NumPy reference checked against the model's gradient (max rel. error {err:.1e})")
    print(f"machine: {machine()}; {args.repeats} repeats, medians")
    # Our chains cost what the model's units do (the flips of a sparse, sure model are few); the
    # NumPy reference's matrix products cost the same at any state. So: both ends of a training run.
    states = [("at initialisation (untrained: every unit p ≈ 0.5, the costliest state)", None)]
    shipped = resolve_weights(None)
    if shipped is not None:
        states.append((f"from the shipped {shipped.name} (trained: the state of most of a run)", shipped))
    for label, path in states:
        model = load_weights(path) if path is not None else RnnRbm(seed=0)
        cfg = TrainConfig(epochs=1, batch_size=B, k=15, batch_frames=100, optimizer="sgd", lr=0.001, ais_every=0)
        trainer = Trainer(pieces, [], cfg, progress=False, model=model)
        plan = [b for b in trainer.plan(0) if len(b) == B and all(n == 100 for _, _, n, _ in b)]
        shifts = np.zeros(len(pieces), np.int64)
        frames_per_step = 100 * B
        start_params = {n: a.copy() for n, a in model.params.items()}

        def ours(threads: int, start: int) -> float:
            numba.set_num_threads(threads)
            settle()
            # one untimed update first: the thread pool wakes
            trainer.train_step(plan[start % len(plan)], shifts, 0.001, seed=start)
            for n, a in start_params.items():  # every repeat from the same state (lr·grad drifts it)
                model.params[n][...] = a
            t0 = time.perf_counter()
            for i in range(args.steps):
                trainer.train_step(plan[(start + i) % len(plan)], shifts, 0.001, seed=start + i)
            return args.steps * frames_per_step / (time.perf_counter() - t0)

        p_np = {n: start_params[n].copy() for n in PARAM_NAMES}  # the paper's model: no player path
        rng = np.random.default_rng(0)

        def reference(threads: int, start: int) -> float:
            for n in p_np:
                p_np[n][...] = start_params[n]
            batch = plan[start % len(plan)]
            chunks = [pieces[p][s:s + n] for p, s, n, _ in batch]
            settle()
            with threadpool_limits(limits=threads, user_api="blas"):
                t0 = time.perf_counter()
                numpy_step(chunks, p_np, 15, rng, 0.001)
                return frames_per_step / (time.perf_counter() - t0)

        ours(2, 0)  # compile / load the kernels
        reference(2, 0)
        fps = {"ours, 1 thread": [], "ours, 2 threads": [], "NumPy, 1 thread": [], "NumPy, 2 threads": []}
        for r in range(args.repeats):  # interleaved, so that a change of machine load hits all alike
            fps["ours, 1 thread"].append(ours(1, 10 * r))
            fps["ours, 2 threads"].append(ours(2, 10 * r + 5))
            fps["NumPy, 1 thread"].append(reference(1, r))
            fps["NumPy, 2 threads"].append(reference(2, r))
        med = {k: statistics.median(v) for k, v in fps.items()}
        print(f"\n{label}:")
        for k, v in med.items():
            print(f"  {k:18s} {v:9.0f} frames/s   (min {min(fps[k]):.0f}, max {max(fps[k]):.0f})")

        def ratio(a: str, b: str) -> str:
            # the median of the rounds' own ratios beside the ratio of the medians: a slow phase of
            # the shared machine falls on both sides of a round, so the per-round ratios scatter less
            rounds = sorted(x / y for x, y in zip(fps[a], fps[b]))
            return (f"{med[a] / med[b]:.2f}× (per round: median {statistics.median(rounds):.2f}×, "
                    f"{rounds[0]:.2f}–{rounds[-1]:.2f}×)")

        print(f"  ratio ours / NumPy, 1 thread each: {ratio('ours, 1 thread', 'NumPy, 1 thread')}")
        print(f"  ratio ours / NumPy, 2 threads each: {ratio('ours, 2 threads', 'NumPy, 2 threads')}")
        print(f"  ours, 2 threads / 1 thread: {ratio('ours, 2 threads', 'ours, 1 thread')}")
        for k in ("ours, 2 threads", "NumPy, 2 threads"):
            print(f"  one Nottingham epoch ({NOTTINGHAM_TRAIN_FRAMES} frames), estimated from the throughput, "
                  f"{k}: {NOTTINGHAM_TRAIN_FRAMES / med[k]:.0f} s")


if __name__ == "__main__":
    main()

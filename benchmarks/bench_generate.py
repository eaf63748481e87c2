"""Per-frame generation time, as the live instrument calls it: two calls per frame (the state step
from the frame just played: u_t and the player's trace q_t; the biases from them and a k=25 Gibbs
chain from silence), 88 × 150 × 100.

    python benchmarks/bench_generate.py [--frames 3000] [--weights nottingham] [--quick]

Prints median and p99 for the Numba kernels (``state_step``, then ``sample_frame`` on packed
parameters, one thread, as the engine's worker calls them) and for a plain-NumPy reference written for the purpose,
and their ratio; and the frame while listening (``sample_consensus`` over ``--chains`` chains, the
``chains`` preset key) against the one-chain frame. The two are measured in interleaved rounds, so that a slow phase of a shared
machine falls on both. Goal: median ≤ 50 µs, ≥ 10× NumPy.
"""
import argparse
import time

import numpy as np
from common import add_root_to_path, machine

add_root_to_path()

from live_rnnrbm.data.weights import load_weights, resolve_weights  # noqa: E402
from live_rnnrbm.kernels import forward, gibbs, packed  # noqa: E402
from live_rnnrbm.model import N_TRACE, RnnRbm  # noqa: E402


def numpy_frame(u_prev, p, k, rng, q=None):
    """The same step in plain NumPy, the way one would write it without Numba (the player's
    trace q, zero when nobody plays, into the biases as the engine adds it)."""
    q = np.zeros(p["Wqv"].shape[0], p["W"].dtype) if q is None else q
    bv_t = p["bv"] + u_prev @ p["Wuv"] + q @ p["Wqv"]
    bh_t = p["bh"] + u_prev @ p["Wuh"] + q @ p["Wqh"]
    W = p["W"]
    v = np.zeros(W.shape[0], W.dtype)
    for _ in range(k):
        h = (rng.random(W.shape[1], dtype=np.float32) < 1 / (1 + np.exp(-(v @ W + bh_t)))).astype(W.dtype)
        v = (rng.random(W.shape[0], dtype=np.float32) < 1 / (1 + np.exp(-(W @ h + bv_t)))).astype(W.dtype)
    u = np.tanh(p["bu"] + v @ p["Wvu"] + u_prev @ p["Wuu"])
    return v, u


def summarise(name, ns):
    us = np.asarray(ns) / 1000.0
    med, p99 = np.median(us), np.percentile(us, 99)
    print(f"{name:<34} median {med:8.1f} µs   p99 {p99:8.1f} µs   ({len(us)} frames)")
    return med


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--numpy-frames", type=int, default=1000)
    ap.add_argument("--k", type=int, default=25)
    ap.add_argument("--weights", default=None, help="default: the shipped Nottingham weights")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds of Numba and NumPy frames")
    ap.add_argument("--chains", type=int, default=16, help="chains per frame while listening (the preset's)")
    ap.add_argument("--quick", action="store_true", help="fewer frames")
    a = ap.parse_args()
    if a.quick:
        a.frames, a.numpy_frames = 500, 200
    import numba
    numba.set_num_threads(1)
    path = resolve_weights(a.weights)
    if path is not None:
        model = load_weights(path)
        label = str(path.name)
    else:
        model = RnnRbm(seed=0)
        label = "UNTRAINED model (dense frames: not representative)"
    print(f"machine: {machine()}")
    print(f"model: {label}, n_v={model.n_visible} n_h={model.n_hidden} n_u={model.n_hidden_recurrent}, k={a.k}")
    p = model.params
    n_v, n_h = model.W.shape
    f32 = np.float32
    P = packed.pack(p)    # the parameters packed, as the engine passes them
    n_s = model.n_hidden_recurrent + N_TRACE  # the engine's state [u | q]
    u, u_next = np.zeros(n_s, f32), np.zeros(n_s, f32)
    pc_of = model.pitch_classes
    v, pv = np.zeros(n_v, f32), np.zeros(n_v, f32)
    work, idx = packed.workspace(n_v, n_h, f32)
    clamp, v_clamp = np.zeros(n_v, np.int8), np.zeros(n_v, f32)
    beta = f32(1.0)
    state = model.rng_state

    def numba_frame():  # as the engine's worker: u_t (and q_t) from the frame just sent, then v_{t+1}
        nonlocal u, u_next
        forward.state_step(v, v_clamp, u, p["bu"], p["Wvu"], p["Wpu"], p["Wuu"], pc_of, u_next)
        gibbs.sample_frame(u_next, P, a.k, beta, clamp, v_clamp, state, v, pv, work, idx)
        u, u_next = u_next, u

    V_c, PV_c = np.zeros((a.chains, n_v), f32), np.zeros((a.chains, n_v), f32)
    sets = np.zeros(a.chains, np.int64)

    def listening_frame():  # the same while a player plays: the consensus of the chains
        nonlocal u, u_next
        forward.state_step(v, v_clamp, u, p["bu"], p["Wvu"], p["Wpu"], p["Wuu"], pc_of, u_next)
        gibbs.sample_consensus(u_next, P, a.k, beta, clamp, v_clamp, state, V_c, PV_c, pc_of, sets, v, pv,
                                 work, idx)
        u, u_next = u_next, u

    rng = np.random.default_rng(0)
    un = np.zeros(model.n_hidden_recurrent, f32)

    def numpy_step():
        nonlocal un
        _, un = numpy_frame(un, p, a.k, rng)

    for _ in range(50):  # warm: compile/load the cache, settle the RNN
        numba_frame()
    listening_frame()
    for _ in range(20):
        numpy_step()
    # Interleaved rounds: a shared machine has slow phases, and they should hit both sides alike.
    t_numba, t_numpy, t_listen, ratios, notes = [], [], [], [], 0.0
    for _ in range(a.rounds):
        rn, rp = [], []
        for _ in range(a.frames // a.rounds // a.chains + 1):
            t0 = time.perf_counter_ns()
            listening_frame()
            t_listen.append(time.perf_counter_ns() - t0)
        for _ in range(a.frames // a.rounds):
            t0 = time.perf_counter_ns()
            numba_frame()
            rn.append(time.perf_counter_ns() - t0)
            notes += v.sum()
        for _ in range(a.numpy_frames // a.rounds):
            t0 = time.perf_counter_ns()
            numpy_step()
            rp.append(time.perf_counter_ns() - t0)
        t_numba += rn
        t_numpy += rp
        ratios.append(np.median(rp) / np.median(rn))
    med_numba = summarise("numba kernel (1 thread)", t_numba)
    print(f"{'':34} {notes / len(t_numba):.2f} notes per frame on average")
    med_numpy = summarise("plain NumPy reference", t_numpy)
    print(f"ratio (NumPy median / Numba median): {med_numpy / med_numba:.1f}×  "
          f"(per round: {min(ratios):.1f}–{max(ratios):.1f}×, {a.rounds} interleaved rounds)")
    med_listen = summarise(f"listening: consensus of {a.chains} chains", t_listen)
    print(f"ratio (listening / one chain): {med_listen / med_numba:.1f}×")


if __name__ == "__main__":
    main()

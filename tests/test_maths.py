"""The model's maths against ground truth: finite differences and exact enumeration."""
import itertools

import numpy as np
import pytest

from live_rnnrbm.kernels import chains, forward, gibbs, packed, simd
from live_rnnrbm.kernels.rng import new_state, new_states
from live_rnnrbm.model import PARAM_NAMES, FrameSampler, RnnRbm


def small_model(seed=0, n_notes=6, n_h=4, n_u=3, scale=0.7, dtype=np.float64):
    """A tiny RNN-RBM with parameters large enough that every term matters."""
    rng = np.random.default_rng(seed)
    m = RnnRbm(n_hidden=n_h, n_hidden_recurrent=n_u, lowest_note=60, highest_note=59 + n_notes,
               seed=seed, dtype=dtype)
    for name, a in m.params.items():
        a[...] = rng.normal(0.0, scale, a.shape)
    return m


def all_frames(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def exact_log_pv(W, bv, bh, beta=1.0):
    """log p(v) for every v of an RBM by enumerating v, with h summed out: p(v) ∝ exp(−β F(v))."""
    V = all_frames(W.shape[0])
    neg_f = beta * (V @ bv) + np.logaddexp(0.0, beta * (V @ W + bh)).sum(axis=1)
    return V, neg_f - np.logaddexp.reduce(neg_f)


# ------------------------------------------------------------------- training gradient


def central_differences(m, cost, eps: float = 1e-6, names=PARAM_NAMES) -> dict[str, np.ndarray]:
    """d cost() / d θ for each parameter named (the eight by default), by central differences."""
    out = {}
    for name in names:
        a = m.params[name]
        fd = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            plus = cost()
            a[idx] = old - eps
            minus = cost()
            a[idx] = old
            fd[idx] = (plus - minus) / (2 * eps)
        out[name] = fd
    return out

def test_gradient_matches_central_finite_differences_for_all_eight_parameters():
    m = small_model(seed=1)
    rng = np.random.default_rng(2)
    T = 7
    V = (rng.random((T, m.n_visible)) < 0.4).astype(np.float64)
    Vt = (rng.random((T, m.n_visible)) < 0.4).astype(np.float64)  # the CD samples, held fixed
    u0 = rng.normal(0, 0.5, m.n_hidden_recurrent)
    cost, grads = m.cost_and_grad(V, Vt, u0)
    for name, fd in central_differences(m, lambda: m.cost_and_grad(V, Vt, u0)[0]).items():
        assert np.abs(fd).max() > 1e-4, f"{name}: the test would not see a wrong gradient"
        np.testing.assert_allclose(grads[name], fd, rtol=1e-5, atol=1e-8, err_msg=name)


def test_gradient_with_the_models_own_history_matches_finite_differences():
    """When the RNN hears other frames than the data (the model's own, held constant), the
    gradient still matches central finite differences for all eight parameters."""
    m = small_model(seed=5)
    rng = np.random.default_rng(6)
    T = 6
    V = (rng.random((T, m.n_visible)) < 0.4).astype(np.float64)
    Vt = (rng.random((T, m.n_visible)) < 0.4).astype(np.float64)
    X = (rng.random((T, m.n_visible)) < 0.4).astype(np.float64)
    cost, grads = m.cost_and_grad(V, Vt, rnn_input=X)
    for name, fd in central_differences(m, lambda: m.cost_and_grad(V, Vt, rnn_input=X)[0]).items():
        np.testing.assert_allclose(grads[name], fd, rtol=1e-5, atol=1e-8, err_msg=name)
    # the input matters: with the data as input the gradient of Wvu is another one
    _, tf = m.cost_and_grad(V, Vt)
    assert not np.allclose(tf["Wvu"], grads["Wvu"])


def test_gradient_of_the_player_path_matches_finite_differences():
    """The player's notes p_t reach frame t's biases through Wpv and Wph, the RNN state through
    Wpu, and frame t+1's biases through the player's trace (Wqv, Wqh); the gradient of all
    thirteen parameters matches central finite differences (with the RNN hearing its own frames
    too)."""
    from live_rnnrbm.model import ALL_PARAM_NAMES, PLAYER_PARAM_NAMES
    m = small_model(seed=7)
    rng = np.random.default_rng(8)
    for name in PLAYER_PARAM_NAMES:
        m.params[name][...] = rng.normal(0.0, 0.7, m.params[name].shape)
    T = 5
    V = (rng.random((T, m.n_visible)) < 0.4).astype(np.float64)
    Vt = (rng.random((T, m.n_visible)) < 0.4).astype(np.float64)
    X = (rng.random((T, m.n_visible)) < 0.4).astype(np.float64)
    player = V * (rng.random(V.shape) < 0.5)
    cost, grads = m.cost_and_grad(V, Vt, rnn_input=X, player=player)
    fds = central_differences(m, lambda: m.cost_and_grad(V, Vt, rnn_input=X, player=player)[0], names=ALL_PARAM_NAMES)
    for name, fd in fds.items():
        np.testing.assert_allclose(grads[name], fd, rtol=1e-5, atol=1e-8, err_msg=name)
    assert all(np.abs(fds[n]).max() > 1e-3 for n in PLAYER_PARAM_NAMES)
    # nobody playing: the player path does nothing, and gets no gradient
    c0, g0 = m.cost_and_grad(V, Vt, rnn_input=X)
    assert not any(g0[n].any() for n in PLAYER_PARAM_NAMES) and c0 != pytest.approx(cost)


def _bits(*pcs):
    return sum(1 << p for p in pcs)


def test_consensus_is_the_set_closest_to_all_the_others():
    """The sum of Jaccard similarities, worked out by hand. X = {C, E, G} drawn twice, Y = {C, E,
    A}, Z = {C, G, A}, and W = {C, E, G, A} once: W scores 1 + 4·3/4 = 4.0, X 1 + 1 + 1/2 + 1/2 +
    3/4 = 3.75. The consensus is the harmony nearest every draw, not the most frequent draw."""
    X, Y, Z, W = _bits(0, 4, 7), _bits(0, 4, 9), _bits(0, 7, 9), _bits(0, 4, 7, 9)
    assert gibbs.consensus(np.array([X, X, Y, Z, W], np.int64)) == 4
    assert gibbs.consensus(np.array([X, X, X, Y, W], np.int64)) == 0  # X: 3 + 1/2 + 3/4 > W: 3·3/4 + 3/4 + 1
    # silence agrees only with silence
    assert gibbs.consensus(np.array([0, X, _bits(0, 4), 0, X], np.int64)) == 1
    assert gibbs.consensus(np.array([0, 0, X], np.int64)) == 0


def test_pitch_class_sets_leave_the_clamped_notes_out():
    V = np.zeros((2, 24))
    V[0, [0, 4, 7, 12]] = 1.0   # C E G C (lowest note C)
    V[1, [2, 14]] = 1.0          # D D
    clamp = np.zeros(24, np.int8)
    clamp[7] = 1
    sets = np.zeros(2, np.int64)
    gibbs.pitch_class_sets(V, clamp, np.arange(24) % 12, sets)
    assert sets.tolist() == [_bits(0, 4), _bits(2)]


def test_cost_is_mean_free_energy_difference():
    m = small_model(seed=3)
    rng = np.random.default_rng(4)
    V = (rng.random((5, m.n_visible)) < 0.5).astype(np.float64)
    Vt = (rng.random((5, m.n_visible)) < 0.5).astype(np.float64)
    cost, _ = m.cost_and_grad(V, Vt)
    # the free energy of Vt must use the biases from the history of V, not of Vt
    _, BV, BH = m.run(V)
    work = np.empty(m.n_hidden)
    expect = np.mean([forward.free_energy(V[t], m.W, BV[t], BH[t], work)
                      - forward.free_energy(Vt[t], m.W, BV[t], BH[t], work) for t in range(5)])
    assert cost == pytest.approx(expect, rel=1e-12)


def test_rnn_recurrence_matches_the_equations():
    m = small_model(seed=5)
    rng = np.random.default_rng(6)
    V = (rng.random((4, m.n_visible)) < 0.5).astype(np.float64)
    U, BV, BH = m.run(V)
    u = np.zeros(m.n_hidden_recurrent)
    for t in range(4):
        np.testing.assert_allclose(BV[t], m.bv + u @ m.Wuv)
        np.testing.assert_allclose(BH[t], m.bh + u @ m.Wuh)
        u = np.tanh(m.bu + V[t] @ m.Wvu + u @ m.Wuu)
        np.testing.assert_allclose(U[t + 1], u)


# ------------------------------------------------------------------- free energy

def test_free_energy_equals_log_sum_over_h_by_enumeration():
    m = small_model(seed=7)
    rng = np.random.default_rng(8)
    bv_t = rng.normal(0, 1, m.n_visible)
    bh_t = rng.normal(0, 1, m.n_hidden)
    H = all_frames(m.n_hidden)
    work = np.empty(m.n_hidden)
    for v in all_frames(m.n_visible):
        # E(v, h) = −v·bv − h·bh − v·W·h ;  F(v) = −log Σ_h exp(−E(v, h))
        neg_e = v @ bv_t + H @ bh_t + H @ (v @ m.W)
        exact = -np.logaddexp.reduce(neg_e)
        assert forward.free_energy(v, m.W, bv_t, bh_t, work) == pytest.approx(exact, rel=1e-12, abs=1e-12)


# ------------------------------------------------------------------- Gibbs sampler

def gibbs_frequencies(W, bv, bh, beta, n_chains, k, dtype=np.float64):
    """Run n independent chains (from random starts) and count the final frames."""
    n_v = W.shape[0]
    W = np.ascontiguousarray(W, dtype)
    rng = np.random.default_rng(0)
    V = (rng.random((n_chains, n_v)) < 0.5).astype(dtype)
    BV = np.tile(bv, (n_chains, 1)).astype(dtype)
    BH = np.tile(bh, (n_chains, 1)).astype(dtype)
    P = np.empty_like(V)
    gibbs.gibbs_batch(W, np.ascontiguousarray(W.T), BV, BH, V, k, dtype(beta),
                        new_states(123, n_chains), P)
    codes = (V.astype(np.int64) * (1 << np.arange(n_v)[::-1])).sum(axis=1)
    return np.bincount(codes, minlength=1 << n_v) / n_chains


@pytest.mark.parametrize("temperature", [1.0, 0.6, 1.7])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gibbs_chain_samples_the_exact_marginal(temperature, dtype):
    """6 visible × 4 hidden: the chain's frequencies match p(v) ∝ exp(−F(v)/T) by enumeration."""
    rng = np.random.default_rng(11)
    W = rng.normal(0, 1.0, (6, 4))
    bv = rng.normal(0, 1.0, 6)
    bh = rng.normal(0, 1.0, 4)
    n = 200_000
    freq = gibbs_frequencies(W, bv, bh, 1.0 / temperature, n, k=30, dtype=dtype)
    _, logp = exact_log_pv(W, bv, bh, 1.0 / temperature)
    p = np.exp(logp)
    tv = 0.5 * np.abs(freq - p).sum()
    # sampling noise alone gives E[TV] ≈ Σ sqrt(p(1-p)/(2πn)) ≈ 0.01 here; a sampler off by a
    # little (one wrong bias sign, T ignored, a step missing) lands far above 0.03
    assert tv < 0.025, f"total variation {tv:.4f}"
    chi2 = ((freq - p) ** 2 / p).sum() * n
    assert chi2 < 64 + 5 * np.sqrt(2 * 63), f"chi-square {chi2:.1f} on 63 degrees of freedom"


# weights and biases: small, about 45 % of the units flip at every step (above chains.DENSE_SHARE:
# the dense steps); large and the biases far below 0, 7 % and 17 % (the sparse steps)
@pytest.mark.parametrize("scale, shift", [(0.5, 0.0), (1.0, -2.5)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lockstep_chains_sample_the_exact_marginal(scale, shift, dtype):
    """Training's chains, every frame at once: frame t's chain samples p(v) ∝ exp(−F(v)) of its
    RBM (6 visible × 4 hidden, checked by enumeration), however its steps update the inputs."""
    rng = np.random.default_rng(11)
    W = rng.normal(0, scale, (6, 4))
    bv = rng.normal(0, scale, 6) + shift
    bh = rng.normal(0, scale, 4) + shift
    n = 200_000
    V = (rng.random((n, 6)) < 0.5).astype(dtype)
    PV = np.empty_like(V)
    chains.lockstep_chains(W.astype(dtype), np.ascontiguousarray(W.T, dtype), np.tile(bv, (n, 1)).astype(dtype),
                           np.tile(bh, (n, 1)).astype(dtype), V, 30, new_state(123), PV)
    freq = np.bincount((V.astype(np.int64) * (1 << np.arange(6)[::-1])).sum(axis=1), minlength=64) / n
    p = np.exp(exact_log_pv(W, bv, bh)[1])
    assert 0.5 * np.abs(freq - p).sum() < 0.025
    chi2 = ((freq - p) ** 2 / p).sum() * n
    assert chi2 < 64 + 5 * np.sqrt(2 * 63), f"chi-square {chi2:.1f} on 63 degrees of freedom"


def test_gibbs_test_detects_a_wrong_temperature():
    """The bound above is tight enough to fail a sampler that ignores the temperature."""
    rng = np.random.default_rng(11)
    W = rng.normal(0, 1.0, (6, 4))
    bv = rng.normal(0, 1.0, 6)
    bh = rng.normal(0, 1.0, 4)
    freq = gibbs_frequencies(W, bv, bh, 1.0, 200_000, k=30)
    _, logp = exact_log_pv(W, bv, bh, 1.0 / 1.7)
    assert 0.5 * np.abs(freq - np.exp(logp)).sum() > 0.05


def test_clamped_units_keep_their_value_and_the_rest_sample_the_conditional():
    """Clamping v_0 = 1 (harmonize mode) samples p(v_1.. | v_0 = 1), checked by enumeration."""
    rng = np.random.default_rng(12)
    W = rng.normal(0, 1.0, (5, 3))
    bv = rng.normal(0, 1.0, 5)
    bh = rng.normal(0, 1.0, 3)
    V, logp = exact_log_pv(W, bv, bh)
    cond = np.where(V[:, 0] == 1, np.exp(logp), 0.0)
    cond /= cond.sum()
    n = 100_000
    counts = np.zeros(32)
    clamp = np.array([1, 0, 0, 0, 0], np.int8)
    state = new_state(5)
    v = np.zeros(5)
    pv = np.empty(5)
    work, idx = packed.workspace(5, 3, np.float64)
    WT = np.ascontiguousarray(W.T)
    for _ in range(n):
        v[:] = [1, 0, 0, 0, 0]
        gibbs.gibbs_chain(W, WT, bv, bh, v, 20, 1.0, clamp, state, pv, work, idx)
        counts[int("".join(str(int(x)) for x in v), 2)] += 1
    freq = counts / n
    assert freq[V[:, 0] == 0].sum() == 0
    assert 0.5 * np.abs(freq - cond).sum() < 0.025


def test_generation_is_reproducible_from_the_seed_and_differs_across_seeds():
    m = small_model(seed=13, n_notes=12, n_h=8, n_u=5, dtype=np.float32)
    a = m.generate(40, k=5)
    m.reseed(13)
    b = m.generate(40, k=5)
    m.reseed(14)
    c = m.generate(40, k=5)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_generate_follows_the_rnn_with_its_own_samples():
    """Each generated frame is sampled from the RBM whose biases come from u_{t-1}, and u_t is
    updated with that frame: re-running the RNN over the output reproduces the chain's means."""
    m = small_model(seed=15, n_notes=6, n_h=4, n_u=3)
    V, P = m.generate(30, k=3, return_probabilities=True)
    U, BV, BH = m.run(V)
    # P[t] is p(v|h) of the last step; with W zeroed out it would be σ(bv_t) exactly
    m.params["W"][:] = 0.0
    m.reseed(1)
    V0, P0 = m.generate(30, k=3, return_probabilities=True)
    _, BV0, _ = m.run(V0)
    np.testing.assert_allclose(P0, 1 / (1 + np.exp(-BV0)), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vectorised_sigmoid_is_within_the_exactness_margin(dtype):
    """The sampler decides exactly when a draw falls within SURE of the approximate σ; that is
    only exact if the approximation's error is below SURE everywhere, which this checks."""
    x = np.linspace(-60, 60, 2_000_001).astype(dtype)
    out = np.empty_like(x)
    for beta in (1.0, 0.37, 2.5):
        simd.approx_sigmoid(x, dtype(beta), out)
        exact = 1 / (1 + np.exp(-beta * x.astype(np.float64)))
        assert np.abs(out - exact).max() < simd.SURE / 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vectorised_tanh_of_the_live_rnn_step_is_close(dtype):
    x = np.linspace(-40, 40, 2_000_001).astype(dtype)
    out = np.empty_like(x)
    simd.approx_tanh(x, out)
    assert np.abs(out - np.tanh(x.astype(np.float64))).max() < 4e-7


def test_live_tick_kernel_equals_its_parts():
    """state_step and sample_frame on packed parameters (the engine's calls per frame) are
    rnn_step, the player's trace, rbm_biases with the trace's terms and a Gibbs chain from silence
    on the model's own arrays: the same u up to the vectorised tanh, the same q, and the same
    sample and mean from the same stream."""
    m = small_model(seed=21, n_notes=10, n_h=7, n_u=5).astype(np.float32)
    p, WT = m.params, m.WT
    f32 = np.float32
    rng = np.random.default_rng(2)
    for name in ("Wpu", "Wqv", "Wqh"):
        m.params[name][...] = rng.normal(0, 0.5, m.params[name].shape)
    v_prev = (np.random.default_rng(0).random(10) < 0.4).astype(f32)
    p_prev = v_prev * (np.arange(10) % 2)  # the player's notes among them
    u_prev = np.tanh(np.random.default_rng(1).normal(0, 1, 5)).astype(f32)
    q_prev = np.random.default_rng(3).random(forward.N_TRACE).astype(f32)
    clamp, v_clamp = np.zeros(10, np.int8), np.zeros(10, f32)
    outs = []
    for fused in (True, False):
        state = new_state(9)
        s, v, pv, bv_t = np.zeros(5 + forward.N_TRACE, f32), np.zeros(10, f32), np.zeros(10, f32), np.zeros(10, f32)
        bh_t = np.zeros(7, f32)
        work, idx = packed.workspace(10, 7, f32)
        if fused:
            P = packed.pack(p)
            forward.state_step(v_prev, p_prev, np.concatenate([u_prev, q_prev]),
                               *(packed.views(P)[n] for n in ("bu", "Wvu", "Wpu", "Wuu")), m.pitch_classes, s)
            gibbs.sample_frame(s, P, 25, f32(1), clamp, v_clamp, state, v, pv, work, idx)
        else:
            forward.rnn_step(v_prev, p_prev, u_prev, p["bu"], p["Wvu"], p["Wpu"], p["Wuu"], s[:5])
            a = np.repeat(np.exp(-1.0 / np.array(forward.TRACE_TAUS)), 12)
            folded = np.tile(np.bincount(m.pitch_classes, weights=p_prev, minlength=12), len(forward.TRACE_TAUS))
            s[5:] = a * q_prev + (1 - a) * folded
            forward.rbm_biases(s[:5], p["bv"], p["bh"], p["Wuv"], p["Wuh"], bv_t, bh_t)
            bv_t += s[5:] @ p["Wqv"]
            bh_t += s[5:] @ p["Wqh"]
            gibbs.gibbs_chain(p["W"], WT, bv_t, bh_t, v, 25, f32(1), clamp, state, pv, work, idx)
        outs.append((s, v, pv))
    assert outs[0][0][5:].any()
    np.testing.assert_allclose(outs[0][0], outs[1][0], atol=1e-6)
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    np.testing.assert_allclose(outs[0][2], outs[1][2], atol=1e-6)


def test_frame_sampler_plays_what_generate_writes():
    """FrameSampler (the live kernels on packed parameters, a frame at a time) and generate (the
    offline kernel on the model's own arrays) draw the same piece from the same seed."""
    m = small_model(seed=5, n_notes=12, n_h=9, n_u=6, scale=1.5).astype(np.float32)
    m.reseed(17)
    V = m.generate(40, k=7)
    assert 0 < V.mean() < 1   # a piece with notes and rests: the comparison means something
    m.reseed(17)
    sampler = FrameSampler(m, k=7)
    for t in range(40):
        v, _ = sampler.next_frame()
        np.testing.assert_array_equal(v, V[t], err_msg=f"frame {t}")
        sampler.advance(v)


def test_packed_parameters_hold_the_model_exactly():
    """pack/views: every parameter (and Wᵀ) reads back bit for bit, at sizes whose rows need
    padding, every section starts on a cache line, and writing bv through a view (density) is
    what the live kernel then uses."""
    for n_notes, n_h, n_u in ((60, 150, 100), (10, 7, 5), (3, 17, 2)):
        m = small_model(seed=n_h, n_notes=n_notes, n_h=n_h, n_u=n_u).astype(np.float32)
        P = packed.pack(m.params)
        views = packed.views(P)
        for name, a in m.params.items():
            np.testing.assert_array_equal(views[name], a, err_msg=name)
        np.testing.assert_array_equal(views["WT"], m.params["W"].T)
        for name in ("W", "WT", "Wuv", "Wuh", "bv", "bh", "bu", "Wvu", "Wuu"):
            assert views[name].ctypes.data % 64 == 0, name
    views["bv"][:] = 50.0   # every note certain: the chain must play all of them
    f32 = np.float32
    work, idx = packed.workspace(3, 17, f32)
    v, pv = np.zeros(3, f32), np.zeros(3, f32)
    gibbs.sample_frame(np.zeros(2, f32), P, 5, f32(1), np.zeros(3, np.int8), v.copy(), new_state(1), v, pv,
                         work, idx)
    assert v.tolist() == [1.0, 1.0, 1.0]


def test_stream_lanes_are_uniform_and_independent():
    """fill_draws steps LANES generators side by side: every lane's draws are uniform (chi-square
    over 16 bins) and no two lanes repeat each other."""
    from live_rnnrbm.kernels.rng import LANES, fill_draws
    state = new_state(77)
    n = 4096 * LANES
    out = np.empty(n, np.int64)
    fill_draws(state, out, n)
    u = out.reshape(-1, LANES) * 2.0 ** -53
    assert 0.0 <= u.min() and u.max() < 1.0
    for lane in range(LANES):
        counts = np.bincount((u[:, lane] * 16).astype(int), minlength=16)
        expected = len(u) / 16
        assert ((counts - expected) ** 2 / expected).sum() < 50  # chi-square, 15 dof: p ≈ 1e-5
    corr = np.corrcoef(u.T)
    assert np.abs(corr[~np.eye(LANES, dtype=bool)]).max() < 0.08


def test_vectorised_softplus_and_sigmoid_of_float32_training():
    x = np.linspace(-40, 40, 4001).astype(np.float32)
    for xi in x[::50]:
        one = np.array([xi], np.float32)
        total = simd.approx_softplus_sigmoid(one)
        assert abs(total - np.logaddexp(0.0, float(xi))) < 6e-7
        assert abs(one[0] - 1 / (1 + np.exp(-float(xi)))) < 2e-7
    y = x.copy()
    assert abs(simd.approx_softplus_sigmoid(y) - np.logaddexp(0.0, x.astype(np.float64)).sum()) < 1e-4


def test_float32_gradient_equals_the_float64_one():
    """The float32 path (vectorised tanh, σ and softplus) computes the same cost and gradient as
    the exact float64 one, to float32 precision."""
    m64 = small_model(seed=31, n_notes=12, n_h=9, n_u=6, scale=0.5)
    rng = np.random.default_rng(2)
    V = (rng.random((20, 12)) < 0.3).astype(np.float64)
    Vt = (rng.random((20, 12)) < 0.3).astype(np.float64)
    c64, g64 = m64.cost_and_grad(V, Vt)
    c32, g32 = m64.astype(np.float32).cost_and_grad(V, Vt)
    assert abs(c32 - c64) < 1e-5 * max(1.0, abs(c64))
    for n in PARAM_NAMES:
        np.testing.assert_allclose(g32[n], g64[n], rtol=2e-3, atol=2e-6 * np.abs(g64[n]).max(), err_msg=n)


def test_register_hold_is_its_formula():
    """kernels.register against the sums written out: c and r are the mean pitch of what has
    sounded, each frame weighted (1 − 1/frames) per frame of age, over ANCHOR_FRAMES and
    RECENT_FRAMES; the bias is −½((i − c)/σ)² + PULL δ (i − c)/σ² with δ = c − r held within
    ±σ/PULL, whose peak is c + PULL δ: leaning back against the drift, never more than σ from c
    and never above ½. Off (zeros) before WARM_FRAMES frames, at σ = 0, and after silence."""
    from live_rnnrbm.kernels.register import (ANCHOR_FRAMES, PULL, RECENT_FRAMES, WARM_FRAMES, new_register_state,
                                              register_bias, register_hear)
    rng = np.random.default_rng(4)
    T, n_v = 70, 88
    V = np.zeros((T, n_v), np.float32)
    for t in range(T):   # a register climbing a semitone every 4 frames, 1-5 notes
        V[t, rng.integers(10, 40, rng.integers(1, 6)) + t // 4] = 1
    state, bias = new_register_state(), np.zeros(n_v, np.float32)
    for t in range(T):
        on = register_bias(state, 6.0, bias)
        assert on == (t >= WARM_FRAMES) and (bias.any() == on)
        register_hear(V[t], state)
    age = np.arange(T)[::-1]
    pitch, count = V @ np.arange(n_v), V.sum(1)
    c = ((1 - 1 / ANCHOR_FRAMES) ** age @ pitch) / ((1 - 1 / ANCHOR_FRAMES) ** age @ count)
    r = ((1 - 1 / RECENT_FRAMES) ** age @ pitch) / ((1 - 1 / RECENT_FRAMES) ** age @ count)
    assert r > c + 3   # the music climbed: the recent register is above the piece's
    i = np.arange(n_v)
    for width in (6.0, 30.0):   # the lean held at σ/PULL = 1.2 semitones; within it at 6
        lean = np.clip(c - r, -width / PULL, width / PULL)
        assert (lean == c - r) == (width == 30.0)
        expect = -0.5 * ((i - c) / width) ** 2 + PULL * lean * (i - c) / width ** 2
        assert register_bias(state, width, bias)
        np.testing.assert_allclose(bias, expect, rtol=1e-5, atol=1e-5)
        assert abs(int(np.argmax(bias)) - (c + PULL * lean)) <= 0.5   # the peak: below c, against the climb
        assert bias.max() <= 0.5 + 1e-6
    assert not register_bias(state, 0.0, bias) and not bias.any()
    for _ in range(600):   # a long silence: nothing recent to hold
        register_hear(np.zeros(n_v, np.float32), state)
    assert not register_bias(state, 6.0, bias)


def test_generate_holds_the_register_after_a_primer():
    """generate's register hold starts once WARM_FRAMES frames have sounded: at once after a
    primer that long (it hears the primer), not before otherwise."""
    m = small_model(seed=6, n_notes=40, n_h=12, n_u=8, scale=1.0).astype(np.float32)
    primer = (np.random.default_rng(1).random((20, 40)) < 0.1).astype(np.float32)
    runs = {}
    for primed in (False, True):
        for width in (0.0, 3.0):
            m.reseed(11)
            runs[primed, width] = m.generate(16, k=5, register=width, primer=primer if primed else None)
    assert runs[False, 0.0].any()
    np.testing.assert_array_equal(runs[False, 3.0], runs[False, 0.0])
    assert (runs[True, 3.0] != runs[True, 0.0]).any()

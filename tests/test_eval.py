"""Evaluation against ground truth: AIS log Z and the log-likelihood of a small RNN-RBM against
exact enumeration over v (h summed out), accuracy of models whose samples are certain, and the
`eval` command's JSON output and error messages."""
from __future__ import annotations

import itertools
import json
import math
import pickle

import numpy as np
import pytest

from live_rnnrbm import cli
from live_rnnrbm.data.pianoroll import roll_to_midi
from live_rnnrbm.data.weights import save_weights
from live_rnnrbm.eval import ais, anneal, reverse_ais
from live_rnnrbm.eval.generation import STATS, compare, piece_stats
from live_rnnrbm.eval.loglik import evaluate_model
from live_rnnrbm.kernels.rng import new_states
from live_rnnrbm.model import RnnRbm


def exact_log_z(W, bv, bh):
    """log Σ_v exp(v·bv) Π_j (1 + exp((v·W + bh)_j)) by enumerating every v."""
    vs = np.array(list(itertools.product([0.0, 1.0], repeat=len(bv))))
    lp = vs @ bv + np.logaddexp(0.0, vs @ W + bh).sum(axis=1)
    m = lp.max()
    return m + math.log(np.exp(lp - m).sum())


def free_energy(v, W, bv, bh):
    return -(v @ bv) - np.logaddexp(0.0, v @ W + bh).sum()


@pytest.fixture(scope="module")
def small_rbm():
    rng = np.random.default_rng(7)
    n_v, n_h = 8, 5
    W = rng.normal(0.0, 1.5, (n_v, n_h))  # strong enough couplings that W = 0 is far from the target
    bv = rng.normal(-1.0, 1.0, n_v)
    bh = rng.normal(0.0, 1.0, n_h)
    return W, bv, bh


@pytest.mark.parametrize("base", ["zero", "fitted"])
def test_ais_log_z_matches_enumeration(small_rbm, base):
    W, bv, bh = small_rbm
    exact = exact_log_z(W, bv, bh)
    R = 200  # independent AIS runs on the same RBM (as 200 "frames")
    BV, BH = np.tile(bv, (R, 1)), np.tile(bh, (R, 1))
    WT = np.ascontiguousarray(W.T)
    C, D = np.zeros_like(BV), np.zeros_like(BH)
    if base == "fitted":
        ais.fitted_base(W, WT, BV, BH, np.zeros_like(BV), 10, 25, 0.02, new_states(3, R), C, D)
    log_z, var, ess, jack = np.empty(R), np.empty(R), np.empty(R), np.empty(R)
    ais.ais_log_z(W, WT, BV, BH, C, D, anneal.beta_schedule(200), 100, new_states(0, R), log_z, var, ess, jack)
    err = log_z.mean() - exact
    se = log_z.std(ddof=1) / math.sqrt(R)
    bound = 4 * se + 0.005
    assert bound < 0.02, f"the test is too loose to detect an error of 0.02 nats (bound {bound:.4f})"
    assert abs(err) < bound, f"AIS log Z off by {err:.4f} (SE {se:.4f}) from exact {exact:.4f}"
    # the bound detects a log Z that is wrong by a small amount
    assert abs(log_z.mean() - (exact + 0.03)) > bound
    # the jackknife-corrected estimate (what evaluate_model reports) is as close
    assert abs(jack.mean() - exact) < 4 * jack.std(ddof=1) / math.sqrt(R) + 0.005
    # the delta-method variance the kernel reports agrees with the runs' actual spread
    assert 0.5 < math.sqrt(var.mean()) / log_z.std() < 2.0


def test_jackknife_removes_the_small_sample_bias(small_rbm):
    """With few chains, logmeanexp of the weights is biased low (Jensen); the jackknife estimate
    the kernel also returns is closer to the exact log Z on average."""
    W, bv, bh = small_rbm
    exact = exact_log_z(W, bv, bh)
    R = 2000
    BV, BH = np.tile(bv, (R, 1)), np.tile(bh, (R, 1))
    C, D = np.zeros_like(BV), np.zeros_like(BH)
    log_z, var, ess, jack = np.empty(R), np.empty(R), np.empty(R), np.empty(R)
    ais.ais_log_z(W, np.ascontiguousarray(W.T), BV, BH, C, D, anneal.beta_schedule(10), 4, new_states(1, R),
                  log_z, var, ess, jack)
    plain_bias, jack_bias = log_z.mean() - exact, jack.mean() - exact
    assert plain_bias < -3 * log_z.std() / math.sqrt(R)  # the plain estimate is measurably low ...
    assert abs(jack_bias) < abs(plain_bias) / 2          # ... and the jackknife removes most of it


@pytest.mark.parametrize("base", ["zero", "fitted"])
def test_raise_is_exact_when_long_and_conservative_when_short(small_rbm, base):
    """RAISE's log p of a frame matches enumeration with a long anneal; with a short one it
    errs low — the opposite side from AIS, which is what makes the pair a bracket."""
    W, bv, bh = small_rbm
    WT = np.ascontiguousarray(W.T)
    log_z = exact_log_z(W, bv, bh)
    rng = np.random.default_rng(5)
    frames = (rng.random((4, len(bv))) < 0.4).astype(float)
    exact = np.array([-free_energy(v, W, bv, bh) - log_z for v in frames])
    R = 100  # runs per frame
    V = np.repeat(frames, R, axis=0)
    BV, BH = np.tile(bv, (len(V), 1)), np.tile(bh, (len(V), 1))
    C, D = np.zeros_like(BV), np.zeros_like(BH)
    if base == "fitted":  # from silence: a RAISE base must not look at the frame it scores
        ais.fitted_base(W, WT, BV, BH, np.zeros_like(BV), 10, 25, 0.02, new_states(3, len(V)), C, D)

    def run(steps, chains, seed):
        lp, var = np.empty(len(V)), np.empty(len(V))
        reverse_ais.raise_log_p(W, WT, BV, BH, C, D, anneal.beta_schedule(steps), V, chains,
                                new_states(seed, len(V)), lp, var)
        return lp.reshape(len(frames), R)

    long = run(300, 50, 0)
    err = long.mean(axis=1) - exact
    se = long.std(axis=1, ddof=1) / math.sqrt(R)
    assert np.all(se < 0.005), se
    assert np.all(np.abs(err) < 4 * se + 0.005), f"RAISE off by {err} (SE {se}) from exact {exact}"
    assert not np.all(np.abs(long.mean(axis=1) - (exact - 0.03)) < 4 * se + 0.005)  # it can tell 0.03
    short = run(3, 2, 1)
    gap = short.mean(axis=1) - exact
    gap_se = short.std(axis=1, ddof=1) / math.sqrt(R)
    assert np.all(gap < 0) and gap.mean() < -4 * math.sqrt((gap_se ** 2).mean() / len(gap)), \
        f"short RAISE not below exact: {gap} (SE {gap_se})"


def test_beta_schedule():
    b = anneal.beta_schedule(100)
    assert b[0] == 0.0 and b[-1] == 1.0 and len(b) == 101 and np.all(np.diff(b) > 0)
    assert (b > 0.9).sum() > 50  # most steps where the distributions change fastest
    with pytest.raises(ValueError):
        anneal.beta_schedule(0)


def exact_log_likelihood(model, roll):
    """Mean over frames of log p(v_t | v_<t) by enumerating v for every frame's RBM."""
    _, BV, BH = model.run(roll)
    W = model.W.astype(np.float64)
    return np.mean([-free_energy(roll[t], W, BV[t], BH[t]) - exact_log_z(W, BV[t], BH[t])
                    for t in range(len(roll))])


@pytest.fixture(scope="module")
def small_rnnrbm():
    rng = np.random.default_rng(11)
    n_v, n_h, n_u = 8, 6, 5
    params = {"W": rng.normal(0, 1.0, (n_v, n_h)), "bv": rng.normal(-1.0, 0.5, n_v), "bh": rng.normal(0, 0.5, n_h),
              "Wuh": rng.normal(0, 0.8, (n_u, n_h)), "Wuv": rng.normal(0, 0.8, (n_u, n_v)),
              "Wvu": rng.normal(0, 0.8, (n_v, n_u)), "Wuu": rng.normal(0, 0.5, (n_u, n_u)), "bu": rng.normal(0, 0.3, n_u)}
    model = RnnRbm(n_h, n_u, 60, 60 + n_v - 1, dtype=np.float64, params=params)
    roll = (rng.random((12, n_v)) < 0.3).astype(np.float64)
    return model, roll


@pytest.mark.parametrize("base", ["zero", "fitted"])
def test_log_likelihood_matches_enumeration(small_rnnrbm, base):
    model, roll = small_rnnrbm
    exact = exact_log_likelihood(model, roll)
    r = evaluate_model(model, [roll[:7], roll[7:]] if base == "zero" else [roll], ais_chains=200, ais_steps=1000,
                       accuracy_samples=0, base=base, raise_chains=200)
    assert r.frames == len(roll)
    if base == "zero":  # two pieces: each restarts from u_0 = 0
        exact = (7 * exact_log_likelihood(model, roll[:7]) + 5 * exact_log_likelihood(model, roll[7:])) / 12
    assert abs(r.log_likelihood - exact) < 0.01, (r.log_likelihood, exact)
    assert abs(r.log_likelihood_raise - exact) < 0.01, (r.log_likelihood_raise, exact)  # the conservative twin
    assert math.isnan(r.accuracy)
    # the check is tight enough to catch a log-likelihood wrong by a small amount
    assert abs(r.log_likelihood - (exact - 0.02)) > 0.01


def certain_model(frame: np.ndarray, dtype=np.float64) -> RnnRbm:
    """A model that plays ``frame`` at every step with certainty (huge visible biases)."""
    n_v = len(frame)
    rng = np.random.default_rng(0)
    params = {"W": rng.normal(0, 0.01, (n_v, 4)), "bv": np.where(frame > 0, 30.0, -30.0), "bh": np.zeros(4),
              "Wuh": np.zeros((3, 4)), "Wuv": np.zeros((3, n_v)), "Wvu": rng.normal(0, 0.1, (n_v, 3)),
              "Wuu": np.zeros((3, 3)), "bu": np.zeros(3)}
    return RnnRbm(4, 3, 60, 60 + n_v - 1, dtype=dtype, params=params)


def test_accuracy_of_a_model_that_reproduces_the_data_is_one():
    frame = np.array([1, 0, 0, 1, 0, 1, 0, 0], float)
    data = np.tile(frame, (20, 1))
    r = evaluate_model(certain_model(frame), [data], ais_chains=50, ais_steps=100, accuracy_samples=5)
    assert r.accuracy == 1.0 and r.accuracy_pooled_counts == 1.0
    assert abs(r.log_likelihood) < 0.01  # a certain frame has probability 1
    # and a model that plays a different frame (2 of its 3 notes right, one extra) scores 2/4
    other = frame.copy()
    other[0] = 0.0
    other[2] = other[7] = 1.0
    r = evaluate_model(certain_model(other), [data], ais_chains=0, accuracy_samples=5)
    assert r.accuracy == pytest.approx(2 / 5)  # TP = 2 (notes 3, 5), FP = 2 (2, 7), FN = 1 (0)


def test_silent_frame_matched_by_silence_counts_as_one():
    silence = np.zeros(8)
    data = np.zeros((10, 8))
    r = evaluate_model(certain_model(silence, np.float32), [data], ais_chains=0, accuracy_samples=3)
    assert r.accuracy == 1.0
    r = evaluate_model(certain_model(np.eye(8)[2], np.float32), [data], ais_chains=0, accuracy_samples=3)
    assert r.accuracy == 0.0


# --------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory, small_rnnrbm):
    d = tmp_path_factory.mktemp("eval")
    model, _ = small_rnnrbm
    weights = save_weights(model.astype(np.float32), d / "tiny.npz", steps_per_beat=2, bpm=120.0)
    rng = np.random.default_rng(2)
    rolls = [(rng.random((n, model.n_visible)) < 0.3).astype(np.uint8) for n in (10, 14)]
    for n, roll in enumerate(rolls):
        roll_to_midi(roll, steps_per_beat=2, bpm=120.0, lowest_note=model.lowest_note).save(d / f"piece{n}.mid")
    seqs = [[[int(60 + i) for i in np.nonzero(f)[0]] for f in roll] for roll in rolls]
    with open(d / "bench.pickle", "wb") as f:
        pickle.dump({"train": seqs, "valid": seqs[:1]}, f, protocol=2)
    return d, weights


FAST = ["--ais-chains", "8", "--ais-steps", "20", "--accuracy-samples", "2", "--k", "5"]


def test_cli_json_on_midi_folder(tiny_files, capsys):
    d, weights = tiny_files
    assert cli.main(["eval", "--weights", str(weights), str(d), "--json", *FAST]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("log_likelihood", "log_likelihood_se", "accuracy", "accuracy_se", "frames", "settings", "seconds"):
        assert key in out
    assert out["settings"]["ais_chains"] == 8 and out["settings"]["ais_steps"] == 20
    assert out["log_likelihood"] < 0 and 0 <= out["accuracy"] <= 1
    assert out["frames"] > 20  # both MIDI files (the pickle's valid split holds one piece more)
    assert out["log_likelihood_raise"] is None  # RAISE only when asked


def test_cli_raise_in_json_and_report(tiny_files, capsys):
    d, weights = tiny_files
    assert cli.main(["eval", "--weights", str(weights), str(d), "--json", "--raise-chains", "8", *FAST]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["settings"]["raise_chains"] == 8
    assert out["log_likelihood_raise"] < 0 and out["log_likelihood_raise_se"] > 0
    assert cli.main(["eval", "--weights", str(weights), str(d), "--quiet", "--raise-chains", "8", *FAST]) == 0
    assert "RAISE (conservative)" in capsys.readouterr().out


def test_cli_pickle_split_and_human_report(tiny_files, capsys):
    d, weights = tiny_files
    assert cli.main(["eval", "--weights", str(weights), str(d / "bench.pickle"), "--split", "train", "--quiet", *FAST]) == 0
    out = capsys.readouterr().out
    assert "log-likelihood" in out and "accuracy" in out and "24 frames" in out


@pytest.mark.parametrize("case", ["no weights", "no data", "bad split", "bad weights", "bad settings"])
def test_cli_clear_errors(tiny_files, capsys, case):
    d, weights = tiny_files
    args = {"no weights": ["--weights", str(d / "missing.npz"), str(d)],
            "no data": ["--weights", str(weights), str(d / "nowhere")],
            "bad split": ["--weights", str(weights), str(d / "bench.pickle"), "--split", "test"],
            "bad weights": ["--weights", str(d / "piece0.mid"), str(d)],
            "bad settings": ["--weights", str(weights), str(d), "--ais-steps", "0"]}[case]
    assert cli.main(["eval", *args, "--json", *FAST[:2]]) == 2
    err = capsys.readouterr().err
    expected = {"no weights": "missing.npz", "no data": "nowhere", "bad split": "test",
                "bad weights": "piece0.mid", "bad settings": "--ais-steps"}[case]
    assert "error" in err and expected in err, err


# --- free generation beside its data (--task free)

def test_piece_stats_by_hand():
    """The statistics of a small piece worked out by hand: C4 held 4 frames with a bass line
    C3 C3 D3 G2 below it, then silence (lowest note 21, so C4 is index 39)."""
    V = np.zeros((5, 88), np.float32)
    V[0:4, 60 - 21] = 1                         # C4, one note of 4 frames
    for t, bass in enumerate((48, 48, 50, 43)):  # C3 (2 frames), D3, G2
        V[t, bass - 21] = 1
    s = piece_stats(V)
    assert s["notes_per_frame"] == pytest.approx(8 / 5)
    assert s["change_rate"] == pytest.approx(3 / 4)        # frames 2, 3 and 4 differ from the one before
    assert s["note_length"] == pytest.approx((4 + 2 + 1 + 1) / 4)
    assert s["key_fit"] == 1.0                             # C, D, G: all in C major (and G major)
    assert s["pitch_range"] == 60 - 43
    assert s["bass_continuity"] == pytest.approx(2 / 3)    # C→C, C→D within a whole tone; D→G not
    V[4, 61 - 21] = 1                                      # a C#4 in the last frame
    assert piece_stats(V)["key_fit"] == pytest.approx(8 / 9)  # the best major scale misses one of 9 notes


def test_register_drift_by_hand():
    """A tune that keeps its register does not drift; one whose second half is an octave up does:
    64 frames, windows of 32 at 0, 16, 32 with mean pitch 60, 66, 72, standard deviation √24."""
    V = np.zeros((64, 88), np.float32)
    V[:, 60 - 21] = 1
    assert piece_stats(V)["register_drift"] == 0.0
    V[32:, 60 - 21], V[32:, 72 - 21] = 0, 1
    assert piece_stats(V)["register_drift"] == pytest.approx(np.sqrt(24))
    assert piece_stats(V[:31])["register_drift"] == 0.0       # shorter than a window: one window, no spread


def test_generation_compare_tells_the_data_from_silence():
    """compare() against ground truth: the data set beside itself is within its own spread on every
    statistic; a 'model' that plays nothing is outside on density."""
    rng = np.random.default_rng(0)
    pieces = [(rng.random((40, 88)) < 0.04 + 0.01 * i).astype(np.float32) for i in range(10)]
    data = [piece_stats(V) for V in pieces]
    assert all(s["within"] for s in compare(data, data).values())
    silent = [piece_stats(np.zeros_like(V)) for V in pieces]
    assert not compare(data, silent)["notes_per_frame"]["within"]


def test_cli_free_generation(tiny_files, capsys):
    d, weights = tiny_files
    assert cli.main(["eval", "--task", "free", "--weights", str(weights), str(d / "bench.pickle"), "--split",
                     "train", "--k", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["stats"]) == set(STATS) and out["settings"]["pieces"] >= 2 and out["settings"]["k"] == 5
    assert cli.main(["eval", "--task", "free", "ll", "--weights", str(weights), str(d)]) == 2
    assert "runs on its own" in capsys.readouterr().err

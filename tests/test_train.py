"""The trainer: it learns a structure it is shown, resumes exactly, survives bad files and Ctrl-C.

Everything runs on a tiny model (12 notes, n_h 16, n_u 8) and a synthetic corpus with a
learnable structure: the chord progression C – F – G – Am, each chord held two frames.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from live_rnnrbm import cli
from live_rnnrbm.data.corpus import DataError
from live_rnnrbm.data.keys import estimate_key, shift_frames, to_common_key
from live_rnnrbm.data.pianoroll import roll_to_midi
from live_rnnrbm.data.pianoroll import PianoRoll
from live_rnnrbm.data.weights import load_weights, save_weights
from live_rnnrbm.kernels.rng import new_states
from live_rnnrbm.model import ALL_PARAM_NAMES, PARAM_NAMES, PLAYER_PARAM_NAMES
from live_rnnrbm.train.checkpoint import latest_path
from live_rnnrbm.train.config import TrainConfig
from live_rnnrbm.train.data import load_training_data
from live_rnnrbm.train.monitor import predictive_monitor
from live_rnnrbm.train.optim import Adam, Schedule, clip_grad_norm
from live_rnnrbm.train.resume import resume
from live_rnnrbm.train.rnn_pretrain import RNN_PARAMS, frame_predictor_grad
from live_rnnrbm.train.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
LO, HI = 60, 71  # one octave from middle C
CHORDS = [(0, 4, 7), (5, 9, 0), (7, 11, 2), (9, 0, 4)]  # C, F, G, Am as pitch classes above C
HOLD = 2


def progression(n_pieces: int, frames: int = 48, seed: int = 0) -> list[np.ndarray]:
    """Pieces of the cycling progression, each starting at a random point of the cycle."""
    rng = np.random.default_rng(seed)
    pieces = []
    for _ in range(n_pieces):
        phase = int(rng.integers(0, len(CHORDS) * HOLD))
        V = np.zeros((frames, HI - LO + 1), np.float32)
        for t in range(frames):
            V[t, list(CHORDS[((t + phase) // HOLD) % len(CHORDS)])] = 1
        pieces.append(V)
    return pieces


def tiny_config(**kw) -> TrainConfig:
    base = dict(n_hidden=16, n_hidden_recurrent=8, lowest_note=LO, highest_note=HI, epochs=15, batch_frames=24,
                batch_size=4, k=5, optimizer="adam", lr=0.02, carry_u=True, seed=1, ais_every=0)
    base.update(kw)
    return TrainConfig(**base)


def write_midi_folder(folder: Path, n: int = 6, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, V in enumerate(progression(n, seed=seed)):
        full = np.zeros((len(V), 88), np.uint8)
        full[:, LO - 21:HI - 21 + 1] = V
        roll_to_midi(full, steps_per_beat=2, bpm=120).save(folder / f"piece{i}.mid")


# --------------------------------------------------------------------------- learning


def test_learns_a_chord_progression(tmp_path):
    train, valid = progression(24), progression(6, seed=1)
    # 30 epochs: at 15 some training seeds still play a fifth of the frames off the chords
    trainer = Trainer(train, valid, tiny_config(epochs=30), progress=False, log=lambda s: None)
    before = predictive_monitor(trainer.model, valid, seed=3)
    assert trainer.fit(tmp_path / "w.npz") == "done"
    after = trainer.best["valid"]
    # the validation cross-entropy falls from the untrained ~8 nats/frame to a small fraction
    assert after["xent"] < 0.3 * before["xent"], (before, after)
    assert after["accuracy"] > 0.8
    # the best weights file plays the progression: most frames are one of the four chords, and
    # when the chord changes it moves on to the next one of the cycle
    model = load_weights(tmp_path / "w.npz")
    model.reseed(5)
    frames = model.generate(96, k=25)
    chords = [frozenset(int(i) for i in np.nonzero(v)[0]) for v in frames]
    known = [frozenset(c) for c in CHORDS]  # indices 0..11 are pitch classes here (LO is a C)
    on_chord = [known.index(c) if c in known else None for c in chords]
    assert np.mean([c is not None for c in on_chord]) > 0.75, chords
    moves = [(a, b) for a, b in zip(on_chord, on_chord[1:]) if a is not None and b is not None and a != b]
    assert len(moves) >= 10
    assert np.mean([b == (a + 1) % len(CHORDS) for a, b in moves]) > 0.75, moves


@pytest.mark.parametrize("ema, rnn, listen", [(0.0, 0, False), (0.9, 1, False), (0.0, 0, True)])
def test_resume_after_interruptions_equals_an_uninterrupted_run(tmp_path, ema, rnn, listen):
    train, valid = progression(10), progression(3, seed=1)
    cfg = dict(epochs=3, pretrain_epochs=1, pretrain_batch=32, clip=1.0, schedule="cosine", warmup=5,
               transpose_min=-2, transpose_max=2, ema=ema, pretrain_rnn_epochs=rnn)
    if listen:  # the player's parts and the model's own frames are drawn from the step's seed too
        cfg.update(player_parts=["top", "chords", "voice", "subset"], player_share=0.6, own_history=0.5,
                   own_history_k=3)
    whole = Trainer(train, valid, tiny_config(**cfg), progress=False, log=lambda s: None)
    assert whole.fit(tmp_path / "a.npz") == "done"
    steps_pretrain = sum(len(whole.plan(e)) for e in range(rnn + 1))
    # stop inside (RBM) pretraining, then in the middle of the second training epoch, then run to the end
    stops = [steps_pretrain - 2, steps_pretrain + len(whole.plan(rnn + 1)) + 3]
    t = Trainer(train, valid, tiny_config(stop_after_steps=stops[0], **cfg), progress=False, log=lambda s: None)
    assert t.fit(tmp_path / "b.npz") == "stopped"
    assert t.step > 0  # really mid-epoch
    for stop in stops[1:] + [0]:
        t = resume(latest_path(tmp_path / "b.npz"), train, valid, progress=False, log=lambda s: None)
        t.config.stop_after_steps = stop
        outcome = t.fit(tmp_path / "b.npz")
    assert outcome == "done"
    for n in PARAM_NAMES:
        np.testing.assert_array_equal(t.model.params[n], whole.model.params[n], err_msg=n)
    for k, v in whole.opt.state_dict().items():
        np.testing.assert_array_equal(t.opt.state_dict()[k], v, err_msg=k)
    assert (t.ema is None) == (whole.ema is None) == (not ema)
    for n in PARAM_NAMES if ema else []:  # the moving average survives the interruptions too
        np.testing.assert_array_equal(t.ema[n], whole.ema[n], err_msg=n)
    assert [h["cost"] for h in t.history] == pytest.approx([h["cost"] for h in whole.history], rel=1e-9)
    # the best weights were chosen identically, and the latest file is a loadable weights file
    np.testing.assert_array_equal(load_weights(tmp_path / "a.npz").W, load_weights(tmp_path / "b.npz").W)
    assert "train_state" not in load_weights(tmp_path / "b.npz").meta  # the best file is a plain weights file
    assert load_weights(latest_path(tmp_path / "b.npz")).n_hidden == 16


def test_rnn_pretraining_gradient_matches_finite_differences():
    """The frame predictor's BPTT gradient, with subsequences of different lengths (padding)
    and a carried u, against central differences in float64."""
    rng = np.random.default_rng(0)
    n_v, n_u = 6, 4
    p = {"bv": rng.normal(0, 1, n_v), "Wuv": rng.normal(0, 1, (n_u, n_v)), "Wvu": rng.normal(0, 1, (n_v, n_u)),
         "Wuu": rng.normal(0, 0.7, (n_u, n_u)), "bu": rng.normal(0, 0.5, n_u)}
    lengths = np.array([5, 3, 4])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    V = (rng.random((lengths.sum(), n_v)) < 0.4).astype(float)
    U0 = rng.normal(0, 0.5, (3, n_u))
    costs, g, U_end = frame_predictor_grad(V, starts, lengths, U0, p)

    def cost():
        return frame_predictor_grad(V, starts, lengths, U0, p)[0].mean()

    for n in RNN_PARAMS:
        num = np.zeros_like(p[n])
        for i in np.ndindex(p[n].shape):
            old = p[n][i]
            p[n][i] = old + 1e-6
            a = cost()
            p[n][i] = old - 1e-6
            b = cost()
            p[n][i] = old
            num[i] = (a - b) / 2e-6
        np.testing.assert_allclose(g[n], num, atol=1e-8, err_msg=n)
    # each subsequence's cost is its own mean cross-entropy, and it ends with its own last u
    u = U0[1]
    for t in range(3):
        u = np.tanh(p["bu"] + V[starts[1] + t] @ p["Wvu"] + u @ p["Wuu"])
    np.testing.assert_allclose(U_end[1], u)


def test_rnn_pretraining_learns_to_predict_the_next_chord(tmp_path):
    """RNN pretraining alone (W = 0) learns the progression's next chord from the history, and
    touches none of the RBM's weights."""
    t = Trainer(progression(12), [], tiny_config(epochs=0, pretrain_rnn_epochs=40), progress=False,
                log=lambda s: None)
    before = {n: t.model.params[n].copy() for n in ("W", "bh", "Wuh")}
    assert t.fit(tmp_path / "rnn.npz") == "done"
    for n, a in before.items():
        np.testing.assert_array_equal(t.model.params[n], a, err_msg=n)
    costs = [h["cost"] for h in t.history]
    assert [h["phase"] for h in t.history] == ["pretrain-rnn"] * 40
    assert costs[0] > 6 and costs[-1] < 0.1 * costs[0]  # nats per frame: from ≈ 12 · log 2 to a tenth
    V = progression(4, seed=5)[0]
    _, BV, _ = t.model.run(V)
    predicted = 1 / (1 + np.exp(-BV[1:])) > 0.5
    assert (predicted == (V[1:] > 0)).all(axis=1).mean() > 0.9  # whole frames right, from the history alone


def test_ema_validates_and_saves_the_moving_average_of_the_weights(tmp_path):
    """--ema d: after every update a ← d·a + (1 − d)·θ, from θ after the first update; the
    validation and the saved best weights are a, training goes on with θ."""
    train, valid = progression(6), progression(2, seed=1)
    t = Trainer(train, valid, tiny_config(epochs=1, ema=0.8), progress=False, log=lambda s: None)
    plan, shifts = t.plan(0), t.shifts(0)
    expected = None
    for i, batch in enumerate(plan):
        t.train_step(batch, shifts, 0.02, i)
        theta = {n: t.model.params[n].astype(np.float64) for n in PARAM_NAMES}
        expected = theta if expected is None else {n: 0.8 * expected[n] + 0.2 * theta[n] for n in PARAM_NAMES}
    assert len(plan) >= 3
    for n in PARAM_NAMES:
        np.testing.assert_allclose(t.ema[n], expected[n], rtol=1e-5, atol=1e-6, err_msg=n)
    assert not np.allclose(t.ema["W"], t.model.params["W"], atol=1e-4)  # really a different set of weights
    t.save_best(tmp_path / "best.npz", None, 1)
    np.testing.assert_allclose(load_weights(tmp_path / "best.npz").W, t.ema["W"], rtol=1e-6)
    assert t.averaged_model().params["W"] is not t.model.params["W"]


def test_tutorial_baseline_is_one_subsequence_per_sgd_step():
    train = progression(3, frames=50)
    t = Trainer(train, [], tiny_config(batch_size=1, batch_frames=20, optimizer="sgd", lr=0.001, carry_u=False),
                progress=False)
    plan = t.plan(0)
    # every piece cut into consecutive 20-frame subsequences (the last one shorter), one per step
    assert all(len(batch) == 1 for batch in plan)
    assert sorted((p, s, n) for ((p, s, n, _),) in plan) == [(p, s, min(20, 50 - s)) for p in range(3) for s in (0, 20, 40)]
    # and the step is θ ← θ − lr·∇cost of that subsequence from u_0 = 0 (the tutorial's update):
    # the model's own cd_grad drawing from the same random stream gives the reference gradient
    (piece, start, n, _), = plan[0]
    reference = t.model.astype(np.float32)
    reference.rng_state = new_states(7, 1)[0].copy()
    _, _, grads, _ = reference.cd_grad(train[piece][start:start + n], k=5)
    before = {k: v.copy() for k, v in t.model.params.items()}
    t.train_step(plan[0], np.zeros(3, np.int64), 0.001, seed=7)
    for name in PARAM_NAMES:
        np.testing.assert_allclose(before[name] - t.model.params[name], 0.001 * grads[name],
                                   rtol=1e-5, atol=1e-9, err_msg=name)
    assert any(np.abs(g).max() > 0 for g in grads.values())


def _subsequence(m, V, k, start, C, mix, k_own, own_neg=False):
    """One ``kernels.bptt.subsequence_grad`` step from u_0: (cost, every parameter's gradient)."""
    from live_rnnrbm.kernels import bptt
    p = m.params
    grads = {n: np.zeros_like(p[n]) for n in ALL_PARAM_NAMES}
    cost, _ = bptt.subsequence_grad(V, m.initial_state(), p["W"], m.WT, p["bv"], p["bh"], p["Wuh"], p["Wuv"],
                                       p["Wvu"], p["Wuu"], p["bu"], k, new_states(1, 1)[0],
                                       *(grads[n] for n in PARAM_NAMES), m.initial_state(),
                                       bptt.CHAIN_STARTS.index(start), C, mix, k_own, own_neg, m.pitch_classes,
                                       *(p[n] for n in PLAYER_PARAM_NAMES), *(grads[n] for n in PLAYER_PARAM_NAMES))
    return cost, grads


@pytest.mark.parametrize("start", ["data", "silence", "previous"])
def test_negative_chain_starts(start):
    """With k = 0 the chain stays where it starts, so the cost is mean_t [F_t(v_t) − F_t(start_t)]:
    0 for CD's start at v_t, F_t(0) for silence, F_t(v_{t-1}) (silence at t = 0) for previous."""
    from live_rnnrbm.kernels import bptt, forward
    V = progression(1, frames=30)[0]
    t = Trainer([V], [], tiny_config(), progress=False)
    m = t.model
    p = m.params
    cost, _ = _subsequence(m, V, 0, start, bptt.NO_CLAMP, bptt.NO_MIX, 0)
    F = m.free_energy(V)
    _, BV, BH = m.run(V)
    starts = {"data": V, "silence": np.zeros_like(V), "previous": np.vstack([np.zeros_like(V[:1]), V[:-1]])}[start]
    work = np.empty(m.n_hidden, np.float32)
    F_start = np.array([forward.free_energy(s, p["W"], BV[i], BH[i], work) for i, s in enumerate(starts)])
    assert cost == pytest.approx(float(np.mean(F - F_start)), abs=1e-5)
    if start == "silence":
        assert abs(cost) > 1e-3


def test_the_players_notes_stay_clamped_in_the_negative_chain():
    """Conditional CD: whatever the chain does, the clamped notes keep their true value. With every
    note clamped the negative sample is the data (cost and gradient 0); with the chain started at
    silence and k = 0, it is the data's clamped notes alone: cost = mean_t [F_t(v_t) − F_t(v_t ∘ c_t)]."""
    from live_rnnrbm.kernels import bptt, forward
    V = progression(1, frames=30)[0]
    m = Trainer([V], [], tiny_config(), progress=False).model
    everything = np.ones(V.shape, np.int8)
    cost, grads = _subsequence(m, V, 25, "silence", everything, bptt.NO_MIX, 0)
    assert cost == 0.0  # the gradient's terms cancel up to the rounding of fused multiply-adds
    assert max(float(np.abs(g).max()) for g in grads.values()) < 1e-6
    C = np.zeros(V.shape, np.int8)
    C[:, [0, 4]] = 1  # the player holds C and E whenever they sound
    cost, _ = _subsequence(m, V, 0, "silence", C, bptt.NO_MIX, 0)
    F = m.free_energy(V)
    _, BV, BH = m.run(V)
    work = np.empty(m.n_hidden, np.float32)
    F_c = np.array([forward.free_energy(V[t] * C[t], m.params["W"], BV[t], BH[t], work) for t in range(len(V))])
    assert cost == pytest.approx(float(np.mean(F - F_c)), abs=1e-5)
    assert abs(cost) > 1e-3


def test_follow_players_notes_are_heard_not_clamped():
    """A follow subsequence (C = 2): the player's notes reach the player path and the RNN but are
    not clamped. With the free notes' biases at −50 every chain turns every note off, so the
    negative sample is silence where harmonize (C = 1) keeps the player's notes; on a mixed frame
    the RNN hears the model's frame (silence) with the player's notes, as follow plays. Checked
    against the gradient computed on its own, player path included."""
    V = progression(1, frames=24)[0]
    m = Trainer([V], [], tiny_config(), progress=False).model
    rng = np.random.default_rng(2)
    m.params["bv"][...] = -50.0
    for n in PLAYER_PARAM_NAMES:
        m.params[n][...] = rng.normal(0, 0.3, m.params[n].shape)
    m.params["Wpv"][...] = np.minimum(m.params["Wpv"], 0.0)  # the path cannot turn a note on
    C = np.zeros(V.shape, np.int8)
    C[:, [0, 7]] = 1
    player = (V * C).astype(np.float32)
    mix = np.zeros(len(V), np.int8)
    mix[::2] = 1
    for code, negative, heard in ((1, player, np.where(mix[:, None] == 1, player, V)),
                                  (2, 0 * V, np.where(mix[:, None] == 1, player, V))):
        cost, grads = _subsequence(m, V, 3, "data", C * code, mix, 7, True)
        expect, expect_grads = m.cost_and_grad(V, negative, rnn_input=heard, player=player)
        assert cost == pytest.approx(expect, rel=1e-5), code
        for n in ALL_PARAM_NAMES:
            np.testing.assert_allclose(grads[n], expect_grads[n], rtol=1e-4, atol=1e-6, err_msg=f"{code} {n}")


@pytest.mark.parametrize("k_own, own_neg", [(0, False), (7, False), (7, True)])
def test_the_rnn_hears_the_models_own_frames_where_mixed(k_own, own_neg):
    """Scheduled sampling: on the mixed frames the RNN hears the model's own frame. With the free
    notes' biases at −50 every chain turns them off, so the model's frame is exactly the player's
    clamped notes — for the CD sample (k_own = 0) and for an own chain from silence (k_own > 0),
    which with own_neg is the negative sample too — and the step must equal the gradient with
    that input, computed on its own (``cost_and_grad``)."""
    V = progression(1, frames=24)[0]
    m = Trainer([V], [], tiny_config(), progress=False).model
    m.params["bv"][...] = -50.0
    C = np.zeros(V.shape, np.int8)
    C[:, [0, 7]] = 1
    mix = np.zeros(len(V), np.int8)
    mix[::2] = 1
    heard = np.where(mix[:, None] == 1, V * C, V).astype(np.float32)
    cost, grads = _subsequence(m, V, 3, "data", C, mix, k_own, own_neg)
    expect, expect_grads = m.cost_and_grad(V, V * C, rnn_input=heard)
    assert cost == pytest.approx(expect, rel=1e-5)
    for n in PARAM_NAMES:
        np.testing.assert_allclose(grads[n], expect_grads[n], rtol=1e-4, atol=1e-6, err_msg=n)
    # and it differs from teacher forcing: the test sees the RNN's input
    _, tf_grads = m.cost_and_grad(V, V * C)
    assert not np.allclose(tf_grads["Wvu"], expect_grads["Wvu"], atol=1e-6)


def test_weight_decay_adds_lr_times_decay_times_the_weights_to_the_sgd_step():
    train = progression(2, frames=30)
    steps = {}
    for wd in (0.0, 0.1):
        t = Trainer(train, [], tiny_config(batch_size=1, optimizer="sgd", lr=0.01, weight_decay=wd), progress=False)
        before = {k: v.copy() for k, v in t.model.params.items()}
        t.train_step(t.plan(0)[0], np.zeros(2, np.int64), 0.01, seed=3)
        steps[wd] = {k: t.model.params[k] - before[k] for k in before}
    for n in PARAM_NAMES:
        extra = steps[0.1][n] - steps[0.0][n]
        expected = -0.01 * 0.1 * before[n] if n in ("W", "Wuh", "Wuv", "Wvu", "Wuu") else 0.0 * before[n]
        np.testing.assert_allclose(extra, expected, rtol=1e-3, atol=1e-8, err_msg=n)


def test_init_fine_tunes_a_weights_file(tmp_path, capsys):
    data = tmp_path / "tunes"
    write_midi_folder(data)
    first = tmp_path / "first.npz"
    args = ["--k", "2", "--batch-frames", "16", "--batch-size", "2", "--ais-every", "0", "--no-progress",
            "--valid-fraction", "0.3"]
    assert cli.main(["train", str(data), "--out", str(first), "--epochs", "2", "--hidden", "8", "--recurrent", "4",
                     "--lowest-note", str(LO), "--highest-note", str(HI), *args]) == 0
    start = load_weights(first)
    save_weights(start, first, generation_k=40)  # a file that needs 40 Gibbs steps to play
    tuned = tmp_path / "tuned.npz"
    # sizes and notes come from the file (the defaults would be 88 × 150 × 100); with lr 0 and
    # weight decay the update is zero: the parameters are the file's
    assert cli.main(["train", str(data), "--out", str(tuned), "--epochs", "1", "--init", str(first),
                     "--lr", "0", "--chain-start", "silence", *args]) == 0
    m = load_weights(tuned)
    assert (m.n_visible, m.n_hidden, m.n_hidden_recurrent) == (12, 8, 4)
    assert m.meta["init"] == str(first) and m.meta["training"]["chain_start"] == "silence"
    assert m.meta["generation_k"] == 40  # how the weights are to be sampled goes with them
    for n in PARAM_NAMES:
        np.testing.assert_array_equal(m.params[n], start.params[n], err_msg=n)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a weights file")
    assert cli.main(["train", str(data), "--out", str(tmp_path / "x.npz"), "--init", str(bad), *args]) == 2
    assert "--init" in capsys.readouterr().err


# --------------------------------------------------------------------------- data


def test_key_estimate_and_common_key():
    c_major = np.zeros((8, 88), np.uint8)
    for t, chord in enumerate([(60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67)] * 2):
        c_major[t, [n - 21 for n in chord]] = 1
    assert estimate_key(c_major, 21) == (0, "major")
    d_major = shift_frames(c_major, 2)
    assert estimate_key(d_major, 21) == (2, "major")
    back, shift = to_common_key(PianoRoll(d_major, 21, None, 2))
    assert shift == -2 and np.array_equal(back.frames, c_major)
    a_minor = np.zeros((6, 88), np.uint8)
    for t, chord in enumerate([(57, 60, 64), (62, 65, 69), (64, 68, 71), (57, 60, 64), (52, 56, 59), (57, 60, 64)]):
        a_minor[t, [n - 21 for n in chord]] = 1
    assert estimate_key(a_minor, 21) == (9, "minor")


def test_pickle_validates_on_its_valid_split_and_midi_holds_out_pieces(tmp_path):
    import pickle
    seq = lambda n, notes: [list(notes)] * n  # noqa: E731
    data = {"train": [seq(10, (60, 64, 67)), seq(12, (62, 65, 69))], "valid": [seq(7, (60, 64))]}
    path = tmp_path / "Tiny.pickle"
    path.write_bytes(pickle.dumps(data, protocol=2))
    d = load_training_data([str(path)])
    assert [len(V) for V in d.train] == [10, 12] and [len(V) for V in d.valid] == [7]
    assert d.resolution == {"steps_per_beat": 2, "bpm": 120.0} and d.trained_on == "Tiny.pickle"
    assert d.valid[0][0].nonzero()[0].tolist() == [60 - 21, 64 - 21]
    write_midi_folder(tmp_path / "tunes", n=10)
    m = load_training_data([str(tmp_path / "tunes")], valid_fraction=0.2, seed=4)
    assert (len(m.train), len(m.valid)) == (8, 2)
    assert load_training_data([str(tmp_path / "tunes")], valid_fraction=0.2, seed=4).valid[0].tobytes() == \
        m.valid[0].tobytes()  # the hold-out is fixed by the seed (a resumed run sees the same split)


def test_corrupt_file_is_skipped_and_named(tmp_path, capsys):
    data = tmp_path / "tunes"
    write_midi_folder(data)
    (data / "broken.mid").write_bytes(b"MThd this is not a MIDI file")
    out = tmp_path / "w.npz"
    code = cli.main(["train", str(data), "--out", str(out), "--epochs", "2", "--hidden", "8", "--recurrent", "4",
                     "--lowest-note", str(LO), "--highest-note", str(HI), "--k", "2", "--batch-frames", "16",
                     "--batch-size", "2", "--ais-every", "0", "--no-progress", "--valid-fraction", "0.3"])
    err = capsys.readouterr().err
    assert code == 0
    assert "skipped" in err and "broken.mid" in err and "1 file(s) skipped" in err
    model = load_weights(out)
    meta = model.meta
    assert meta["steps_per_beat"] == 2 and meta["trained_on"] == "tunes"
    assert meta["command"].startswith("live-rnnrbm ") and "--epochs 2" in meta["command"]
    assert meta["training"]["k"] == 2 and meta["validation"]["pieces"] == 2
    state = load_weights(latest_path(out)).meta["train_state"]
    assert meta["epoch"] == state["best"]["epoch"] and state["epoch"] == 2  # epochs counted from 1, as printed


def test_no_usable_data_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.mid").write_bytes(b"garbage")
    (bad / "b.midi").write_bytes(b"")
    code = cli.main(["train", str(bad), "--out", str(tmp_path / "w.npz"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no usable data" in err and "a.mid" in err and "b.midi" in err
    assert not (tmp_path / "w.npz").exists()
    with pytest.raises(DataError, match="holds no MIDI files"):
        empty = tmp_path / "empty"
        empty.mkdir()
        load_training_data([str(empty)])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])  # Ctrl-C; a closed terminal
def test_ctrl_c_finishes_the_step_and_leaves_a_checkpoint(tmp_path, sig):
    data = tmp_path / "tunes"
    write_midi_folder(data, n=12)
    out = tmp_path / "w.npz"
    common = [sys.executable, "-m", "live_rnnrbm.cli", "train", str(data), "--out", str(out)]
    args = common + ["--epochs", "100000", "--hidden", "16", "--recurrent", "8", "--lowest-note", str(LO), "--highest-note", str(HI),
            "--batch-frames", "8", "--ais-every", "0", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "epoch" not in line and time.monotonic() < deadline:  # wait for a first epoch
            line = proc.stdout.readline()
        assert "epoch" in line, proc.stderr.read() if proc.poll() is not None else "no epoch after 60 s"
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, stderr
    assert f"{signal.Signals(sig).name}: finishing this step" in stderr and "--resume" in stderr
    latest = load_weights(latest_path(out))
    assert latest.meta["train_state"]["epoch"] >= 1
    load_weights(out)  # the best-so-far weights are a usable file too
    # and the run continues from there
    epochs_done = latest.meta["train_state"]["epoch"]
    more = subprocess.run(common + ["--epochs", str(epochs_done + 1), "--resume", "--no-progress", "--ais-every", "0"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert more.returncode == 0 and f"resuming {latest_path(out)} at epoch {epochs_done + 1}" in more.stderr, more.stderr
    assert load_weights(latest_path(out)).meta["train_state"]["epoch"] == epochs_done + 1


def read_stderr(proc: subprocess.Popen) -> tuple[bytearray, threading.Thread]:
    """A process's stderr, gathered by a thread as it comes (the process never blocks on a full pipe)."""
    err = bytearray()
    reader = threading.Thread(target=lambda: [err.extend(b) for b in iter(lambda: proc.stderr.read1(4096), b"")],
                              daemon=True)
    reader.start()
    return err, reader


def wait_for(err: bytearray, proc: subprocess.Popen, marker: bytes, seconds: float = 90) -> None:
    """Until ``marker`` shows in the gathered stderr, the process ends or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while marker not in err and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_stop_in_the_validation_abandons_it_and_the_resumed_run_is_exact(tmp_path):
    """A stop request (what Ctrl-C sets) while the second validation's AIS runs: fit returns at
    once with the epoch's steps done and its validation undone; resumed, the run validates that
    epoch again and ends exactly as a run never stopped (parameters, figures, the best file)."""
    train, valid = progression(10), progression(3, seed=1)
    cfg = dict(epochs=3, ais_every=1, ais_chains=4, ais_steps=20, schedule="plateau", patience=1)
    whole = Trainer(train, valid, tiny_config(**cfg), progress=False, log=lambda s: None)
    assert whole.fit(tmp_path / "a.npz") == "done"
    t = Trainer(train, valid, tiny_config(**cfg), progress=False, log=lambda s: None)
    evaluate, calls = t._evaluate, []

    def stop_in_the_second(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            t.stop_requested = True  # as the signal handler does
        return evaluate(*args, **kw)

    t._evaluate = stop_in_the_second
    assert t.fit(tmp_path / "b.npz") == "interrupted"
    assert t.validation_abandoned and t.epoch == 1 and t.step == len(t.plan(1))
    assert t.n_validations == 1 and len(t.history) == 1
    t = resume(latest_path(tmp_path / "b.npz"), train, valid, progress=False, log=lambda s: None)
    assert (t.epoch, t.step) == (1, len(t.plan(1)))
    assert t.fit(tmp_path / "b.npz") == "done"
    for n in PARAM_NAMES:
        np.testing.assert_array_equal(t.model.params[n], whole.model.params[n], err_msg=n)
    assert [h["valid"]["log_likelihood"] for h in t.history] == [h["valid"]["log_likelihood"] for h in whole.history]
    assert t.best["epoch"] == whole.best["epoch"] and t.schedule.state() == whole.schedule.state()
    np.testing.assert_array_equal(load_weights(tmp_path / "a.npz").W, load_weights(tmp_path / "b.npz").W)


def test_validation_shows_progress_and_ctrl_c_in_it_stops_within_seconds(tmp_path):
    data = tmp_path / "tunes"
    write_midi_folder(data, n=12)
    out = tmp_path / "w.npz"
    common = [sys.executable, "-m", "live_rnnrbm.cli", "train", str(data), "--out", str(out), "--hidden", "16",
              "--recurrent", "8", "--lowest-note", str(LO), "--highest-note", str(HI), "--batch-frames", "8",
              "--valid-fraction", "0.5"]
    # an AIS longer than the test needs (some 20 s on 2 cores) after a sub-second epoch
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(common + ["--epochs", "3", "--ais-chains", "200", "--ais-steps", "1000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    err, reader = read_stderr(proc)
    try:
        wait_for(err, proc, b"log-likelihood (AIS)")
        assert b"log-likelihood (AIS)" in err, err.decode(errors="replace")[-2000:]
        time.sleep(1.0)
        assert proc.poll() is None
        t_sig = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        took = time.monotonic() - t_sig
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    text = err.decode(errors="replace")
    assert "epoch 1/3 validation: cross-entropy" in text  # the cheap monitor's bar came first
    assert proc.returncode == 128 + signal.SIGINT, text[-2000:]
    assert took < 3.0, f"{took:.1f} s from Ctrl-C to exit"
    assert "SIGINT: abandoning this validation" in text and "--resume" in text
    state = load_weights(latest_path(out)).meta["train_state"]
    assert state["epoch"] == 0 and state["step"] > 0 and state["history"] == []
    load_weights(out)  # a usable weights file from the first interruption on
    more = subprocess.run(common + ["--epochs", "1", "--resume", "--no-progress", "--ais-every", "0"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert more.returncode == 0, more.stderr
    assert load_weights(latest_path(out)).meta["train_state"]["history"][0]["valid"]["frames"] > 0


def full_disk(disk: Path, argv: list[str], after: str = "") -> list[str]:
    """``argv`` run in a mount namespace of its own where ``disk`` is a 200 KB tmpfs filled to the
    last byte: a real full disk, which vanishes with the run (``disk`` is then an ordinary empty
    folder again). With $TRIGGER set, the filler is deleted once that file exists (room is made);
    ``after`` is shell run inside at the end, e.g. to copy the disk's files out."""
    script = ('mount -t tmpfs -o size=200k tmpfs "$0" || exit 97; cat /dev/zero > "$0/filler" 2>/dev/null; '
              '[ -n "$TRIGGER" ] && (for i in $(seq 1200); do [ -e "$TRIGGER" ] && break; sleep 0.05; done; '
              'rm "$0/filler") & '
              '"$@"; rc=$?; ' + (after or "true") + '; exit $rc')
    ns = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--mount"]
    probe = subprocess.run(ns + ["sh", "-c", 'mount -t tmpfs -o size=4k tmpfs "$0"', str(disk)], capture_output=True)
    if probe.returncode != 0:  # mounting needs root, or user namespaces the system allows
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode(errors='replace').strip()}")
    return ns + ["sh", "-c", script, str(disk), *argv]


def tiny_train_args(data: Path, out: Path, epochs: int) -> list[str]:
    return [sys.executable, "-m", "live_rnnrbm.cli", "train", str(data), "--out", str(out), "--epochs", str(epochs),
            "--hidden", "8", "--recurrent", "4", "--lowest-note", str(LO), "--highest-note", str(HI), "--k", "2",
            "--batch-frames", "16", "--batch-size", "2", "--ais-every", "0", "--no-progress", "--valid-fraction", "0.3"]


def test_a_full_disk_stops_with_one_line_and_the_checkpoint_written_where_there_is_room(tmp_path):
    data, disk, spare = tmp_path / "tunes", tmp_path / "disk", tmp_path / "spare"
    write_midi_folder(data)
    disk.mkdir()
    spare.mkdir()
    out = disk / "w.npz"
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(spare), HOME=str(spare))
    r = subprocess.run(full_disk(disk, tiny_train_args(data, out, 3)), env=env, cwd=tmp_path, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and str(spare) in errors[0], r.stderr
    # nothing lost: the first epoch's state, complete, in a folder of the temporary folder
    (moved,) = spare.glob("live-rnnrbm-*")
    latest = load_weights(moved / "w.last.npz").meta["train_state"]
    assert latest["epoch"] == 1 and latest["step"] == 0 and len(latest["history"]) == 1
    load_weights(moved / "w.npz")
    # room made (the tmpfs is gone: disk/ is an ordinary folder), moved back as the message says: it resumes
    for f in moved.iterdir():
        f.rename(disk / f.name)
    more = subprocess.run(tiny_train_args(data, out, 3) + ["--resume"], env=env, capture_output=True, text=True,
                          timeout=180)
    assert more.returncode == 0 and f"resuming {latest_path(out)} at epoch 2" in more.stderr, more.stderr
    assert load_weights(latest_path(out)).meta["train_state"]["epoch"] == 3


def test_with_no_room_anywhere_the_state_waits_in_memory_until_there_is(tmp_path):
    data, disk, copy = tmp_path / "tunes", tmp_path / "disk", tmp_path / "copy"
    write_midi_folder(data)
    disk.mkdir()
    copy.mkdir()
    trigger = tmp_path / "make-room"
    out = disk / "w.npz"
    # the temporary, home and current folders are all on the full disk
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(disk), HOME=str(disk), TRIGGER=str(trigger))
    cmd = full_disk(disk, tiny_train_args(data, out, 2), after=f'cp "$0"/*.npz {copy}')
    proc = subprocess.Popen(cmd, env=env, cwd=disk, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err, reader = read_stderr(proc)
    try:
        wait_for(err, proc, b"kept in memory")
        time.sleep(0.5)
        line = next((x for x in err.decode().splitlines() if "kept in memory" in x), err.decode())
        assert "No space left on device" in line and str(out) in line, line
        assert proc.poll() is None  # waiting, not dead
    finally:
        trigger.touch()  # room made (and the shell's watcher ends)
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    stderr = err.decode()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "written at last; training goes on" in stderr, stderr
    assert load_weights(copy / "w.last.npz").meta["train_state"]["epoch"] == 2  # it went on, and finished


# --------------------------------------------------------------------------- optimisers


def test_adam_step_matches_the_paper_formula():
    rng = np.random.default_rng(0)
    p = {"W": rng.normal(size=(3, 2))}
    start = p["W"].copy()
    opt = Adam(p)
    g1, g2 = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    opt.step(p, {"W": g1}, lr=0.1)
    opt.step(p, {"W": g2}, lr=0.1)
    m1, v1 = 0.1 * g1, 0.001 * g1 ** 2
    m2, v2 = 0.9 * m1 + 0.1 * g2, 0.999 * v1 + 0.001 * g2 ** 2
    # Kingma & Ba's bias-corrected step, in the form of their section 2 (ε after the correction)
    w1 = start - 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9) * m1 / (np.sqrt(v1) + 1e-8)
    w2 = w1 - 0.1 * np.sqrt(1 - 0.999 ** 2) / (1 - 0.9 ** 2) * m2 / (np.sqrt(v2) + 1e-8)
    np.testing.assert_allclose(p["W"], w2, rtol=1e-12)
    # the first step of Adam moves every weight by lr (times the sign of its gradient)
    q = {"W": np.zeros(3)}
    Adam(q).step(q, {"W": np.array([2.0, -0.5, 0.1])}, lr=0.01)
    np.testing.assert_allclose(q["W"], [-0.01, 0.01, -0.01], rtol=1e-4)


def test_clip_and_schedule():
    g = {"a": np.array([3.0, 0.0], np.float32), "b": np.array([4.0], np.float32)}
    assert clip_grad_norm(g, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(np.concatenate([g["a"], g["b"]]), [0.6, 0.0, 0.8], rtol=1e-6)
    cos = Schedule("cosine", 1.0, epochs=10, min_factor=0.1)
    assert cos.lr(0, 0, 5, 100) == pytest.approx(1.0) and cos.lr(10, 0, 5, 100) == pytest.approx(0.1)
    assert cos.lr(5, 0, 5, 100) == pytest.approx(0.55)
    plateau = Schedule("plateau", 1.0, 10, patience=2, factor=0.5)
    cuts = [plateau.report(s) for s in (1.0, 0.9, 0.8, 1.1, 1.0, 1.0)]
    assert cuts == [False, False, True, False, False, True] and plateau.lr(0, 0, 1, 100) == 0.25

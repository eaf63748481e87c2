"""Told the key (``play --key``, ``live/keyed.py``): the model hears and plays in C, moved to the
key, with the file's keyed player path when it has one (``train --keyed-path``)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from live_rnnrbm.data.keys import key_name, parse_key, shift_frames, to_c_shift
from live_rnnrbm.data.weights import load_weights, save_weights
from live_rnnrbm.eval.jam import TOLD, evaluate_jam
from live_rnnrbm.eval.jam_players import play_along
from live_rnnrbm.live.presets import load_preset
from live_rnnrbm.live.settings import PresetError, merge
from live_rnnrbm.model import KEYED_PARAM_NAMES, PARAM_NAMES, PLAYER_PARAM_NAMES, RnnRbm
from live_rnnrbm.train.config import TrainConfig
from live_rnnrbm.train.trainer import Trainer

LO, HI = 48, 95


def settings(**kw):
    s = merge(load_preset("default"), {"k": 20, "seed": 0, "chains": 4})
    return replace(s, **{"note_range": (LO, HI), "max_polyphony": 8, "max_note_frames": 64, **kw})


def listening_model(seed: int = 1) -> RnnRbm:
    """A small model with every parameter random, the player path too (so the player's notes,
    their pitch classes in the trace and the RNN all shape what it plays)."""
    m = RnnRbm(n_hidden=12, n_hidden_recurrent=6, lowest_note=LO, highest_note=HI, seed=seed)
    rng = np.random.default_rng(seed)
    for n, a in m.params.items():
        a[...] = rng.normal(0.0, 1.0 if n in ("W", "Wpv", "Wph", "Wqv", "Wqh") else 0.5, a.shape)
    m.params["bv"][...] -= 2.0
    return m


def melody(notes: list[int]) -> np.ndarray:
    V = np.zeros((len(notes), HI - LO + 1), np.float32)
    for t, n in enumerate(notes):
        V[t, n - LO] = 1.0
    return V


TUNE = [72, 74, 76, 72, 77, 76, 74, 72, 79, 77, 76, 74, 72, 71, 72, 72]


def test_keys_are_read_as_musicians_write_them_and_a_wrong_one_is_named():
    assert parse_key("D") == (2, "major") and parse_key("Bb minor") == (10, "minor")
    assert parse_key("f#m") == (6, "minor") and parse_key(" Eb maj ") == (3, "major") and parse_key("C♯") == (1, "major")
    assert parse_key("Cb") == (11, "major") and parse_key("E#") == (5, "major")
    assert key_name(*parse_key("bb min")) == "Bb minor"
    assert [to_c_shift(t) for t in range(12)] == [0, -1, -2, -3, -4, -5, -6, 5, 4, 3, 2, 1]
    for bad in ("H", "", "C dorian", "Dbb", "7"):
        with pytest.raises(ValueError, match="is not a key"):
            parse_key(bad)
    assert merge(load_preset(None), {"key": "f# minor"}).key == "F# minor"
    assert load_preset(None).key is None
    with pytest.raises(PresetError) as info:
        merge(load_preset(None), {"key": "H"})
    assert str(info.value) == ("command line: --key must be null or a key: a note A-G, then # or b if any, then "
                               "major or minor (e.g. D, Bb minor, F#m), got 'H'")


@pytest.mark.parametrize("mode", ["harmonize", "follow", "off"])
def test_told_the_key_the_engine_plays_what_it_plays_in_c_moved_to_that_key(mode):
    """The engine told D, hearing a tune in D, plays exactly (same seed, draw for draw) what it
    plays untold hearing the tune in C, moved up a tone. Untold, the notes range over the notes
    the moved model can reach (its top tone has no note to sound on)."""
    m = listening_model()
    in_c = melody(TUNE)
    in_d = shift_frames(in_c, 2)
    told, _ = play_along(m, settings(key="D"), in_d, mode, 7)
    plain, _ = play_along(m, settings(note_range=(LO, HI - 2)), in_c, mode, 7)
    assert told.sum() > 20
    np.testing.assert_array_equal(told, shift_frames(plain, 2))
    # and it is not what the engine plays untold in D
    untold, _ = play_along(m, settings(), in_d, mode, 7)
    assert not np.array_equal(told, untold)


def test_told_the_key_it_plays_the_files_keyed_path(tmp_path):
    """A file with a keyed player path: told the key, the engine plays with it (as a file whose
    player path it is); untold, with the player path. The file keeps both."""
    m = listening_model(2)
    other = listening_model(3)
    for n, k in zip(PLAYER_PARAM_NAMES, KEYED_PARAM_NAMES):
        m.params[k] = other.params[n].copy()
    path = save_weights(m, tmp_path / "k.npz")
    loaded = load_weights(path)
    assert loaded.has_keyed_path and not load_weights(save_weights(listening_model(3), tmp_path / "o.npz")).has_keyed_path
    for k in KEYED_PARAM_NAMES:
        np.testing.assert_array_equal(loaded.params[k], m.params[k])
    as_path = listening_model(2)
    for n in PLAYER_PARAM_NAMES:
        as_path.params[n][...] = other.params[n]
    tune = melody(TUNE)
    told, _ = play_along(loaded, settings(key="C"), tune, "harmonize", 5)
    expected, _ = play_along(as_path, settings(), tune, "harmonize", 5)
    np.testing.assert_array_equal(told, expected)
    untold, _ = play_along(loaded, settings(), tune, "harmonize", 5)
    plain, _ = play_along(listening_model(2), settings(), tune, "harmonize", 5)
    np.testing.assert_array_equal(untold, plain)
    assert not np.array_equal(told, untold)


def chords_and_melody(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    pieces = []
    for _ in range(n):
        frames = []
        for root in rng.choice([60, 65, 67], 8):
            chord = (root - 12, root - 8 if root != 65 else root - 9, root - 5)
            frames += [chord + (int(root + 12 + rng.choice([0, 4, 7])),)] * 2
        V = np.zeros((len(frames), HI - LO + 1), np.float32)
        for t, f in enumerate(frames):
            V[t, [x - LO for x in f]] = 1.0
        pieces.append(V)
    return pieces


def test_training_the_keyed_path_keeps_the_files_player_path(tmp_path):
    init = listening_model(4)
    base = dict(n_hidden=12, n_hidden_recurrent=6, lowest_note=LO, highest_note=HI, epochs=2, batch_frames=16,
                batch_size=2, k=3, optimizer="adam", lr=0.01, seed=1, ais_every=0, player_parts=["top"],
                player_share=1.0, own_history=1.0, own_history_k=3, own_negative=True, player_path_only=True)
    with pytest.raises(ValueError, match="keyed_path"):
        TrainConfig(**{**base, "player_path_only": False}, keyed_path=True).check()
    with pytest.raises(ValueError, match="keyed_path"):
        TrainConfig(**base, keyed_path=True, transpose_min=-1, transpose_max=1).check()
    t = Trainer(chords_and_melody(6), [], TrainConfig(**base, keyed_path=True), model=init.astype(np.float32),
                progress=False, log=lambda s: None)
    assert t.fit(tmp_path / "k.npz") == "done"
    out = load_weights(tmp_path / "k.npz")
    for n in PARAM_NAMES + PLAYER_PARAM_NAMES:  # the eight and the player path: as they came
        np.testing.assert_array_equal(out.params[n], init.params[n].astype(np.float32), err_msg=n)
    for n, k in zip(PLAYER_PARAM_NAMES, KEYED_PARAM_NAMES):  # the keyed path: trained from the player path
        assert np.abs(out.params[k] - init.params[n]).max() > 1e-3, k
    # a plain run from that file trains the player path and keeps the keyed path as it came
    keyed = {k: out.params[k].copy() for k in KEYED_PARAM_NAMES}
    t2 = Trainer(chords_and_melody(6), [], TrainConfig(**base), model=out, progress=False, log=lambda s: None)
    assert t2.fit(tmp_path / "p.npz") == "done"
    again = load_weights(tmp_path / "p.npz")
    for k in KEYED_PARAM_NAMES:
        np.testing.assert_array_equal(again.params[k], keyed[k], err_msg=k)
    assert np.abs(again.params["Wpv"] - init.params["Wpv"]).max() > 1e-3


def test_the_jam_evaluation_tells_the_engine_each_pieces_key(tmp_path):
    """The told-the-key condition: for pieces in C and a file without a keyed path, draw for draw
    the engine's own figures; moved to another key, not (the engine hears them in C)."""
    path = save_weights(listening_model(5), tmp_path / "m.npz")
    pieces = chords_and_melody(3)
    r = evaluate_jam(str(path), settings(), ["harmonize"], pieces, shifts=[0, 3], jobs=1)
    res = r.results["harmonize"]
    assert res[TOLD]["keys"]["+0"] == res["model"]["keys"]["+0"]
    assert res[TOLD]["keys"]["+3"] != res["model"]["keys"]["+3"]


def test_keyed_sampler_moves_the_register_hold_onto_the_models_notes():
    """The engine's register hold is a bias on the notes as they sound; told the key, the model's
    note j is the sounding note j − shift, so that is the bias its bv gets (none where no note
    moves in: those notes are clamped silent anyway)."""
    from live_rnnrbm.live.keyed import KeyedSampler
    from live_rnnrbm.model import FrameSampler
    m = RnnRbm(n_hidden=12, n_hidden_recurrent=6, seed=2)
    bias = np.linspace(-3, 1, m.n_visible).astype(m.dtype)
    for shift in (-5, 3):
        keyed = KeyedSampler(FrameSampler(m, k=3), shift)
        keyed.set_register(bias)
        j = np.arange(m.n_visible)
        expect = np.where((j - shift >= 0) & (j - shift < m.n_visible), bias[np.clip(j - shift, 0, m.n_visible - 1)], 0)
        np.testing.assert_array_equal(keyed.inner.register, expect)
        np.testing.assert_allclose(keyed.inner.P_bv, m.params["bv"] + expect, atol=1e-6)

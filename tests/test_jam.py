"""The jam evaluation (``eval/jam.py``) against cases worked out by hand, and listening learnt by
conditional training on a small synthetic corpus."""
from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from live_rnnrbm.data.parts import bottom_notes, player_mask, top_notes
from live_rnnrbm.data.weights import save_weights
from live_rnnrbm.eval.jam import evaluate_jam
from live_rnnrbm.eval.jam_counts import Counts, key_counts, match_counts
from live_rnnrbm.eval.jam_players import LookupHarmonizer, chord_player, play_along
from live_rnnrbm.eval.loglik import conditional_log_likelihood
from live_rnnrbm.kernels.forward import TRACE_TAUS, rnn_step
from live_rnnrbm.kernels.gibbs import sample_frame
from live_rnnrbm.kernels.packed import pack, views, workspace
from live_rnnrbm.live.presets import load_preset
from live_rnnrbm.live.settings import merge
from live_rnnrbm.model import RnnRbm
from live_rnnrbm.train.config import TrainConfig
from live_rnnrbm.train.trainer import Trainer

LO, HI = 48, 95  # four octaves from C3
C_MAJOR = (60, 64, 67)


def engine_settings(**kw):
    s = merge(load_preset("default"), {"k": 25, "seed": 0})
    return replace(s, **{"note_range": (LO, HI), "max_polyphony": 8, "max_note_frames": 64, "temperature": 1.0,
                         **kw})


def fixed_chord_model(notes=C_MAJOR) -> RnnRbm:
    """A model that plays exactly ``notes`` whatever it hears (W and the RNN zero, visible biases
    ±30: σ(30) = 1 − 1e-13)."""
    m = RnnRbm(n_hidden=4, n_hidden_recurrent=3, lowest_note=LO, highest_note=HI, seed=0)
    for a in m.params.values():
        a[...] = 0.0
    m.params["bv"][...] = -30.0
    for n in notes:
        m.params["bv"][n - LO] = 30.0
    return m


def roll(frames: list[tuple[int, ...]]) -> np.ndarray:
    V = np.zeros((len(frames), HI - LO + 1), np.float32)
    for t, f in enumerate(frames):
        V[t, [n - LO for n in f]] = 1.0
    return V


# --------------------------------------------------------------------------- counting by hand


def test_copying_the_accompaniment_scores_one_and_silence_scores_zero():
    truth = roll([(60, 64, 67), (53, 57), (), (55, 59, 62, 67)])
    copy = match_counts(truth, truth, LO).figures("harmonize")
    assert copy["accuracy"] == 1.0 and copy["pc_accuracy"] == 1.0
    nothing = match_counts(np.zeros_like(truth), truth, LO).figures("harmonize")
    assert nothing["accuracy"] == 0.0 and nothing["pc_accuracy"] == 0.0 and nothing["notes_per_frame"] == 0.0
    # the right chord an octave off: wrong notes, right pitch classes
    octave = match_counts(roll([(72, 76, 79)]), roll([(60, 64, 67)]), LO).figures("harmonize")
    assert octave["accuracy"] == 0.0 and octave["pc_accuracy"] == 1.0
    # C-E-B played against C-E-G: notes 2 of 4 (TP 2, FP 1, FN 1)
    assert match_counts(roll([(60, 64, 71)]), roll([(60, 64, 67)]), LO).figures("follow")["accuracy"] == 0.5


def test_a_known_chord_on_a_known_key():
    # in D major the player holds IV (G-B-D); the model plays G3 B3 D4 F#4 C5: four notes of the
    # scale (C is not in D major) and three of the chord
    scale = np.zeros((1, 12), bool)
    scale[0, [2, 4, 6, 7, 9, 11, 1]] = True
    chord = np.zeros((1, 12), bool)
    chord[0, [7, 11, 2]] = True
    f = key_counts(roll([(55, 59, 62, 66, 72)]), scale, chord, LO).figures("chords")
    assert f["in_key"] == pytest.approx(4 / 5) and f["chord_tones"] == pytest.approx(3 / 5)
    assert f["notes_per_frame"] == 5


def test_the_chord_player_holds_i_iv_v_i_in_the_key():
    m = fixed_chord_model()
    player, scale, chord = chord_player(2, "minor", m, cycles=1)  # D minor: Dm Gm A Dm
    held = [tuple(int(n) + LO for n in np.flatnonzero(f)) for f in player[::4]]
    assert held == [(50, 53, 57), (55, 58, 62), (57, 61, 64), (50, 53, 57)]
    assert scale[0, [2, 4, 5, 7, 9, 10, 0, 1]].all() and scale[0].sum() == 8  # with the leading tone C#
    assert chord[8, [9, 1, 4]].all() and chord[8].sum() == 3


def test_parts_pick_the_players_notes():
    V = roll([(48, 60, 64, 72), (55,), ()])
    assert [tuple(np.flatnonzero(r) + LO) for r in top_notes(V)] == [(72,), (55,), ()]
    assert [tuple(np.flatnonzero(r) + LO) for r in bottom_notes(V)] == [(48,), (55,), ()]
    chords = player_mask(V, "chords")
    assert [tuple(np.flatnonzero(r) + LO) for r in chords] == [(48, 60, 64), (), ()]
    # one voice by rank from the top, the lowest one when a frame has fewer notes
    alto = player_mask(V, "voice", np.random.default_rng(0))
    assert all(r.sum() == (1 if V[t].any() else 0) for t, r in enumerate(alto))


# --------------------------------------------------------------------------- through the live engine


@pytest.mark.parametrize("mode, in_key, chord_tones, per_frame", [
    ("harmonize", 1.0, 7 / 11, 11 / 4),   # the player's own notes are not the model's: C drops under IV
    ("follow", 1.0, 8 / 12, 3.0),
])
def test_the_engine_driven_jam_counts_a_fixed_chord_as_worked_out_by_hand(tmp_path, mode, in_key, chord_tones,
                                                                          per_frame):
    """A model that always plays C4-E4-G4, against I-IV-V-I in C major: I all chord tones, IV
    (F3-A3-C4) only C, V (G3-B3-D4) only G; in C minor E is out of the key."""
    path = save_weights(fixed_chord_model(), tmp_path / "c.npz")
    r = evaluate_jam(str(path), engine_settings(), ["chords"], [], chord_cycles=1, jobs=1)
    keys = r.results["chords"][mode]["keys"]
    assert keys["C major"]["in_key"] == pytest.approx(in_key)
    assert keys["C major"]["chord_tones"] == pytest.approx(chord_tones)
    assert keys["C major"]["notes_per_frame"] == pytest.approx(per_frame)
    if mode == "harmonize":  # i (C-Eb-G) 2 of 3 in key and chord; iv {E, G}: G in key; V 2 in key, G chord
        assert keys["C minor"]["in_key"] == pytest.approx(7 / 11)
        assert keys["C minor"]["chord_tones"] == pytest.approx(5 / 11)
    # the model ignoring the player plays C-E-G throughout: in C major every note is in the key
    assert r.results["chords"]["ignoring the player"]["keys"]["C major"]["in_key"] == 1.0


def test_melody_task_scores_a_copy_one_and_a_silent_model_zero(tmp_path):
    melody = [72, 74, 76, 77, 79, 77, 76, 74]
    piece = roll([(60, 64, 67, m) for m in melody])  # the accompaniment is always C4-E4-G4
    copy = save_weights(fixed_chord_model(), tmp_path / "copy.npz")
    r = evaluate_jam(str(copy), engine_settings(), ["harmonize", "follow"], [piece], shifts=[0], jobs=1)
    for task in ("harmonize", "follow"):
        f = r.results[task]["model"]["all"]
        assert f["accuracy"] == 1.0 and f["pc_accuracy"] == 1.0, (task, f)
    assert r.results["harmonize"]["model, true history"]["all"]["accuracy"] == 1.0
    silent = save_weights(fixed_chord_model(notes=()), tmp_path / "silent.npz")
    r = evaluate_jam(str(silent), engine_settings(), ["harmonize"], [piece], shifts=[0, 5], jobs=2)
    f = r.results["harmonize"]["model"]
    assert f["all"]["accuracy"] == 0.0 and f["all"]["pc_accuracy"] == 0.0 and f["all"]["notes_per_frame"] == 0.0
    assert set(f["keys"]) == {"+0", "+5"}
    assert r.results["harmonize"]["model, true history"]["all"]["notes_per_frame"] == 0.0


def test_the_rnn_hears_each_frame_as_it_sounded():
    """harmonize: u_t comes from the model's notes of frame t with the player's notes of frame t —
    not the ones the player holds for frame t+1, which the next frame's chain has clamped (as in
    conditional training). follow: nothing is clamped, so u_t hears the notes held now. The
    player's trace q_t hears the same player's notes, and nothing of the model's."""
    rng = np.random.default_rng(3)
    m = RnnRbm(n_hidden=8, n_hidden_recurrent=5, lowest_note=LO, highest_note=HI, seed=1)
    for a in m.params.values():
        a[...] = rng.normal(0, 0.5, a.shape)
    player = top_notes(roll([(72,), (74,), (76,), (77,), (79,), (81,)]))
    for mode in ("harmonize", "follow"):
        out, U = play_along(m, engine_settings(), player.astype(np.float32), mode, seed=2)
        p = m.params
        for t in range(1, len(player)):
            x = np.maximum(out[t - 1], player[t - 1 if mode == "harmonize" else t]).astype(np.float32)
            u, q = U[t - 1, :5], U[t - 1, 5:]
            expect = np.empty_like(u)
            heard = player[t - 1 if mode == "harmonize" else t].astype(np.float32)
            rnn_step(x, heard, u, p["bu"], p["Wvu"], p["Wpu"], p["Wuu"], expect)
            np.testing.assert_allclose(U[t, :5], expect, atol=1e-6, err_msg=f"{mode}, frame {t}")
            # the player's trace: its own notes only, by pitch class, at each time scale
            a = np.repeat(np.exp(-1.0 / np.array(TRACE_TAUS)), 12)
            folded = np.tile(np.bincount((np.flatnonzero(heard) + LO) % 12, minlength=12), len(TRACE_TAUS))
            np.testing.assert_allclose(U[t, 5:], a * q + (1 - a) * folded, atol=1e-6, err_msg=f"{mode}, frame {t}")


def test_listening_plays_the_consensus_of_the_chains_and_alone_one_chain():
    """While listening, each frame is the draw of ``chains`` chains whose pitch classes (the
    player's clamped notes left out) agree most with the others' — replayed here from the same
    stream and the u each frame was sampled from. Alone (mode off) the chains setting changes
    nothing: the model's plain sample, draw for draw."""
    rng = np.random.default_rng(5)
    m = RnnRbm(n_hidden=8, n_hidden_recurrent=5, lowest_note=LO, highest_note=HI, seed=1)
    for a in m.params.values():
        a[...] = rng.normal(0, 0.5, a.shape)
    m.params["bv"][...] -= 2.0  # a few notes a frame, so that chains disagree
    player = top_notes(roll([(72,), (74,), (76,), (77,), (79,), (81,), (79,), (77,)])).astype(np.float32)
    out, U = play_along(m, engine_settings(chains=5, max_polyphony=HI - LO + 1), player, "harmonize", seed=2)
    pc_of = (np.arange(m.n_visible) + LO) % 12
    m.reseed(2)
    P = pack(m.params)
    work, idx = workspace(m.n_visible, m.n_hidden, m.dtype)
    v, pv = np.zeros(m.n_visible, m.dtype), np.zeros(m.n_visible, m.dtype)
    picked_other_than_first = 0
    for t in range(len(player)):
        clamp = (player[t] > 0).astype(np.int8)
        draws = []
        for _ in range(5):
            sample_frame(U[t], P, 25, m.dtype.type(1), clamp, player[t], m.rng_state, v, pv, work, idx)
            draws.append(np.where(clamp > 0, 0.0, v))
        sets = [set(pc_of[d > 0].tolist()) for d in draws]
        scores = [sum(len(a & b) / len(a | b) if a | b else 1.0 for b in sets) for a in sets]
        best = int(np.argmax(scores))
        picked_other_than_first += best != 0
        np.testing.assert_array_equal(out[t], draws[best], err_msg=f"frame {t}")
    assert picked_other_than_first > 0  # the choice mattered
    alone = [play_along(m, engine_settings(chains=c), player, "off", seed=3)[0] for c in (1, 16)]
    np.testing.assert_array_equal(alone[0], alone[1])


def test_harmony_changes_are_counted_on_pitch_classes():
    truth = roll([(60, 64, 67), (48, 64, 67), (53, 57, 60), (53, 57, 60), (55, 59, 62)])
    played = roll([(60, 64, 67), (65, 69, 72), (60, 64, 67), (72, 76, 79), ()])
    f = match_counts(played, truth, LO).figures("harmonize")
    assert f["true_changes_per_frame"] == 2 / 5 and f["changes_per_frame"] == 3 / 5


def test_lookup_table_learns_a_fixed_melody_to_chord_relation():
    chord_of = {0: (48, 52, 55), 4: (48, 52, 55), 7: (48, 52, 55), 5: (53, 57, 60), 9: (53, 57, 60),
                2: (55, 59, 62), 11: (55, 59, 62)}
    rng = np.random.default_rng(0)

    def piece(n):
        ms = rng.choice([72, 74, 76, 77, 79, 81, 83], n)
        return roll([chord_of[m % 12] + (int(m),) for m in ms])

    table = LookupHarmonizer(LO, HI - LO + 1).fit([piece(40) for _ in range(10)])
    test = piece(30)
    melody = top_notes(test)
    notes, pcs = table.harmonize(melody, 0, "major")
    truth = np.where(melody > 0, 0.0, test)
    assert match_counts(notes, truth, LO).figures("harmonize")["accuracy"] == 1.0
    # transposed up a tone, told the key: the same answers a tone up
    up = np.zeros_like(test)
    up[:, 2:] = test[:, :-2]
    notes_up, _ = table.harmonize(top_notes(up), 2, "major")
    np.testing.assert_array_equal(notes_up[:, 2:], notes[:, :-2])


def test_the_player_path_lets_follow_hear_a_note_in_the_same_frame(tmp_path):
    """Wpv carries the player's notes into the frame's own biases: a model silent on its own whose
    Wpv maps 60 to 72 plays 72 in exactly the frames the player holds 60 (follow: nothing is
    clamped), and never when it ignores the player. Saved and loaded, the path comes back."""
    from live_rnnrbm.data.weights import load_weights
    m = fixed_chord_model(notes=())
    m.params["Wpv"][60 - LO, 72 - LO] = 60.0
    m = load_weights(save_weights(m, tmp_path / "p.npz"))
    assert m.params["Wpv"][60 - LO, 72 - LO] == 60.0
    player = roll([(), (), (60,), (60,), (60,), (), (64,), ()])
    for mode, expect in (("follow", [0, 0, 1, 1, 1, 0, 0, 0]), ("harmonize", [0, 0, 1, 1, 1, 0, 0, 0]),
                         ("off", [0] * 8)):
        out, _ = play_along(m, engine_settings(), player, mode, seed=1)
        assert out[:, 72 - LO].tolist() == expect, mode
        assert out.sum() == sum(expect), mode


def test_a_file_without_a_player_path_is_the_papers_model(tmp_path):
    """Old files have no Wpv/Wph: they load as zeros, and a model whose path is zero is saved
    without it (the eight parameters alone)."""
    import numpy as np_
    from live_rnnrbm.data.weights import load_weights
    path = save_weights(fixed_chord_model(), tmp_path / "c.npz")
    with np_.load(path) as npz:
        assert "Wpv" not in npz.files and "Wph" not in npz.files
    m = load_weights(path)
    assert not m.params["Wpv"].any() and m.params["Wph"].shape == (HI - LO + 1, 4)
    packed = views(pack(m.params))
    m.params["Wph"][3, 2] = 1.5
    assert views(pack(m.params))["Wph"][3, 2] == 1.5 and not packed["Wph"].any()


def test_training_the_player_path_alone_leaves_the_model_as_it_was(tmp_path):
    train = melody_over_chords(8)
    base = dict(n_hidden=16, n_hidden_recurrent=8, lowest_note=LO, highest_note=HI, epochs=3, batch_frames=32,
                batch_size=2, k=3, optimizer="adam", lr=0.01, carry_u=True, seed=1, ais_every=0,
                player_parts=["top"], player_share=1.0, own_history=1.0, own_history_k=3, own_negative=True,
                player_path_only=True)
    t = Trainer(train, [], TrainConfig(**base), progress=False, log=lambda s: None)
    before = {n: a.copy() for n, a in t.model.params.items()}
    assert t.fit(tmp_path / "p.npz") == "done"
    for n in ("W", "bv", "bh", "Wuh", "Wuv", "Wvu", "Wuu", "bu"):
        np.testing.assert_array_equal(t.model.params[n], before[n], err_msg=n)
    assert np.abs(t.model.params["Wpv"]).max() > 1e-3 and np.abs(t.model.params["Wph"]).max() > 1e-3


# --------------------------------------------------------------------------- conditional likelihood


def test_conditional_log_likelihood_matches_enumeration():
    """log p(rest_t | player_t, u_{t-1}) by AIS on the clamped RBM against the exact sum over every
    state of the other notes, with a player path (Wpv, Wph, and the trace's Wqv, Wqh) in the biases."""
    rng = np.random.default_rng(7)
    n = 7
    m = RnnRbm(n_hidden=5, n_hidden_recurrent=3, lowest_note=60, highest_note=59 + n, seed=0, dtype=np.float32)
    for a in m.params.values():
        a[...] = rng.normal(0, 0.8, a.shape)
    assert m.params["Wpv"].any() and m.params["Wph"].any() and m.params["Wqv"].any()
    T = 6
    V = (rng.random((T, n)) < 0.45).astype(np.float32)
    V[:, 0] = 1.0
    player = np.zeros_like(V)
    player[:, 0] = 1.0                      # the player holds the lowest note
    player[2, 3] = V[2, 3] = 1.0            # and a second one in one frame
    U = m.run(V)[0][:-1]
    Q = m.trace(player)[:-1]                 # the player's trace, as the engine's state carries it
    got = conditional_log_likelihood(m, np.hstack([U, Q]), V, player, ais_chains=200, ais_steps=400, seed=1)
    W = m.params["W"].astype(np.float64)
    for t in range(T):
        bv = m.params["bv"] + U[t] @ m.params["Wuv"] + player[t] @ m.params["Wpv"] + Q[t] @ m.params["Wqv"]
        bh = m.params["bh"] + U[t] @ m.params["Wuh"] + player[t] @ m.params["Wph"] + Q[t] @ m.params["Wqh"]
        free = np.flatnonzero(player[t] == 0)
        states = []
        for bits in itertools.product([0.0, 1.0], repeat=len(free)):
            v = player[t].astype(np.float64).copy()
            v[free] = bits
            states.append(v @ bv + np.logaddexp(0, v @ W + bh).sum())
        v = np.maximum(V[t], player[t]).astype(np.float64)
        exact = v @ bv + np.logaddexp(0, v @ W + bh).sum() - np.logaddexp.reduce(states)
        assert got[t] == pytest.approx(exact, abs=0.02), t
    assert np.all(got < 0)


# --------------------------------------------------------------------------- learning to accompany


def melody_over_chords(n_pieces: int, frames: int = 32, seed: int = 0) -> list[np.ndarray]:
    """Pieces in C major only: a stepwise melody in C5..B5, each note held two frames, over the
    major triad on the melody's pitch class in the octave C3..B3 (C under C, D-F#-A under D, …).
    Only the seven pitch classes of C major ever carry the melody."""
    rng = np.random.default_rng(seed)
    scale = [72, 74, 76, 77, 79, 81, 83]
    pieces = []
    for _ in range(n_pieces):
        i, out = int(rng.integers(0, 7)), []
        for _ in range(frames // 2):
            i = int(np.clip(i + rng.choice([-2, -1, 1, 2]), 0, 6))
            m = scale[i]
            root = 48 + m % 12
            out += [(root, root + 4, root + 7, m)] * 2
        pieces.append(roll(out))
    return pieces


def test_conditional_training_accompanies_a_melody_in_keys_never_shown_at_that_pitch(tmp_path):
    """The corpus is in C only. Trained with a player on the top voice and transpositions over the
    whole octave, the model harmonizes a held-out melody in all 12 keys; trained on C alone (the
    baseline, same run) it does not in the keys far from C."""
    train, valid = melody_over_chords(40), melody_over_chords(6, seed=1)
    base = dict(n_hidden=48, n_hidden_recurrent=24, lowest_note=LO, highest_note=HI, epochs=150, batch_frames=32,
                batch_size=4, k=5, optimizer="adam", lr=0.01, carry_u=True, seed=1, ais_every=0, valid_every=150)
    settings = engine_settings(max_polyphony=4)
    figures = {}
    for name, extra in (("listening", dict(transpose_min=-6, transpose_max=5, player_parts=["top"],
                                            player_share=0.75, own_history=0.5, own_history_k=10)),
                        ("C only", {})):
        t = Trainer(train, valid, TrainConfig(**base, **extra), progress=False, log=lambda s: None)
        assert t.fit(tmp_path / f"{name}.npz") == "done"
        path = save_weights(t.model, tmp_path / f"{name}.final.npz")
        r = evaluate_jam(str(path), settings, ["harmonize"], valid, jobs=2)
        figures[name] = r.results["harmonize"]["model"]
    keys = figures["listening"]["keys"]
    assert min(f["pc_accuracy"] for f in keys.values()) > 0.8, keys
    far = [figures["C only"]["keys"][k]["pc_accuracy"] for k in ("-6", "-5", "+5")]
    assert max(far) < 0.5, figures["C only"]["keys"]


def cue_then_hold(n_pieces: int, seed: int = 0) -> list[np.ndarray]:
    """Pieces of 8-frame phrases: the melody plays a cue for two frames (C5 or B4), then holds F5
    for six. Under the cue the accompaniment is the cue's own chord; under the held F it is C major
    after a C, D major after a B. The note held now does not say which: what was played before does."""
    rng = np.random.default_rng(seed)
    chords = {72: (48, 52, 55), 71: (50, 54, 57)}
    pieces = []
    for _ in range(n_pieces):
        out = []
        for _ in range(8):
            cue = int(rng.choice([72, 71]))
            out += [chords[cue] + (cue,)] * 2 + [chords[cue] + (77,)] * 6
        pieces.append(roll(out))
    return pieces


def test_the_players_trace_remembers_what_the_note_held_now_does_not_say(tmp_path):
    """Trained on the player path alone (the eight parameters stay at their initial, near-zero
    values, so the RNN carries nothing), the model must harmonize the held F by the cue before it.
    Only the player's trace remembers the cue: the same model with Wqv, Wqh zeroed (the baseline,
    same run) can do no better than guess between the two chords."""
    train, valid = cue_then_hold(24), cue_then_hold(6, seed=1)
    config = TrainConfig(n_hidden=16, n_hidden_recurrent=8, lowest_note=LO, highest_note=HI, epochs=80,
                         batch_frames=64, batch_size=4, k=5, optimizer="adam", lr=0.02, seed=1, ais_every=0,
                         valid_every=80, player_parts=["top"], player_share=1.0, player_path_only=True)
    t = Trainer(train, valid, config, progress=False, log=lambda s: None)
    assert t.fit(tmp_path / "cue.npz") == "done"
    model = t.model
    settings = engine_settings(max_polyphony=4)

    def held_f_accuracy(m) -> float:
        counts = Counts()
        for n, V in enumerate(valid):
            player = top_notes(V).astype(np.float32)
            truth = np.where(player > 0, 0.0, V).astype(np.float32)
            notes, _ = play_along(m, settings, player, "harmonize", seed=n)
            held = player[:, 77 - LO] > 0
            counts.add(match_counts(notes[held], truth[held], LO))
        return counts.figures("harmonize")["pc_accuracy"]

    with_trace = held_f_accuracy(model)
    forgetful = model.astype(np.float32)
    forgetful.params["Wqv"][...] = 0.0
    forgetful.params["Wqh"][...] = 0.0
    without = held_f_accuracy(forgetful)
    assert with_trace > 0.9 and without < 0.7, (with_trace, without)


def test_eval_task_on_the_command_line_reports_json_and_rejects_bad_input(tmp_path):
    import json
    import subprocess
    import sys
    path = save_weights(fixed_chord_model(), tmp_path / "c.npz")
    preset = tmp_path / "p.yaml"
    preset.write_text("note_range: [48, 95]\nmax_polyphony: 8\nmax_note_frames: 64\nk: 25\n")
    run = lambda *a: subprocess.run([sys.executable, "-m", "live_rnnrbm.cli", "eval", *a], capture_output=True,
                                    text=True, timeout=300)
    r = run("--task", "chords", "--weights", str(path), "--preset", str(preset), "--chord-cycles", "1", "--json",
            "--jobs", "1")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["results"]["chords"]["harmonize"]["keys"]["C major"]["chord_tones"] == pytest.approx(7 / 11)
    assert out["settings"]["k"] == 25 and out["settings"]["weights"] == str(path)
    r = run("--task", "harmonize", "--weights", str(path), "--preset", str(preset))
    assert r.returncode == 2 and "name the data" in r.stderr and "Traceback" not in r.stderr
    r = run("--task", "ll", "chords", "--weights", str(path))
    assert r.returncode == 2 and "on its own" in r.stderr

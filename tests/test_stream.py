"""The streaming engine without ports: ticks driven by hand, messages captured in a list."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from jackd import check_parts
from live_rnnrbm.live.engine import Engine
from live_rnnrbm.live.frames import MBC, NO_PARTS, SATB, frame_messages, note_roles, shape_frame
from live_rnnrbm.live.settings import DEFAULTS
from live_rnnrbm.model import N_TRACE, RnnRbm


def settings(**kw):
    return replace(DEFAULTS, **{"note_range": (21, 108), "max_polyphony": 88, "max_note_frames": 10_000, "k": 5,
                                **kw})


def run(engine: Engine, n: int) -> list[np.ndarray]:
    """n ticks, each once the worker has the frame ready; returns the frame sounding after each."""
    out = []
    for _ in range(n):
        deadline = time.perf_counter() + 5
        while not (engine.published is not None and engine.published.seq == engine.sent + 1):
            assert time.perf_counter() < deadline, "worker never produced the frame"
            time.sleep(0.0005)
        engine.tick(time.perf_counter())
        out.append((np.frombuffer(bytes(engine.sounding), np.uint8)[21:109] != 0).astype(np.uint8))
    return out


def test_engine_plays_exactly_the_models_frames():
    """With no limits, the notes sounding after each tick are model.generate's frames, same seed."""
    sent = []
    engine = Engine(RnnRbm(n_hidden=20, n_hidden_recurrent=10, seed=7), sent.append, settings())
    engine.start()
    played = run(engine, 20)
    engine.close()
    expect = RnnRbm(n_hidden=20, n_hidden_recurrent=10, seed=7).generate(20, k=5)
    assert np.array_equal(np.array(played), expect.astype(np.uint8))
    # every note-on matched by a note-off by the end, and never a second note-on while sounding
    on = set()
    for m in sent:
        if m[0] & 0xF0 == 0x90:
            assert m[1] not in on
            on.add(m[1])
        elif m[0] & 0xF0 == 0x80:
            on.discard(m[1])
    assert on == set()
    assert [tuple(m) for m in sent[-3:]] == [(0xB0, 64, 0), (0xB0, 123, 0), (0xB0, 120, 0)]


def test_engine_holds_the_register_as_generate_does():
    """Playing alone with a register hold, the notes sounding after each tick are
    model.generate's with the same hold, same seed; and the hold changes what is played (the
    comparison means something). Listening (mode follow with an input), there is no hold."""
    def model():
        return RnnRbm(n_hidden=20, n_hidden_recurrent=10, seed=9)
    engine = Engine(model(), lambda m: None, settings(register=4.0))
    engine.start()
    played = np.array(run(engine, 48))
    engine.close()
    held = model().generate(48, k=5, register=4.0)
    np.testing.assert_array_equal(played, held.astype(np.uint8))
    free = model().generate(48, k=5)
    assert (held[:16] == free[:16]).all()   # nothing to hold before 16 frames have sounded ...
    assert (held[16:] != free[16:]).any()   # ... then the hold draws other notes
    from live_rnnrbm.eval.jam_players import play_along
    silence = np.zeros((48, 88), np.float32)
    listening = [play_along(model(), settings(register=r, chains=1), silence, "follow", 3)[0] for r in (4.0, 0.0)]
    np.testing.assert_array_equal(*listening)
    alone = [play_along(model(), settings(register=r, chains=1), silence, "off", 3)[0] for r in (4.0, 0.0)]
    assert (alone[0] != alone[1]).any()


def test_limits_polyphony_range_watchdog_velocity():
    sent = []
    model = RnnRbm(n_hidden=20, n_hidden_recurrent=10, seed=8)
    model.params["bv"][:] = 3.0     # a model that wants nearly every note, every frame
    engine = Engine(model, sent.append, settings(max_polyphony=5, note_range=[48, 72], max_note_frames=3,
                                                 velocity="probability", velocity_range=[40, 100], channel=3))
    engine.start()
    played = np.array(run(engine, 30))
    engine.close()
    assert played.sum(1).max() <= 5 and played.sum(1).min() >= 1
    notes = np.nonzero(played.any(0))[0] + 21
    assert notes.min() >= 48 and notes.max() <= 72
    run_len = np.zeros(88, int)
    for frame in played:                      # the watchdog: no note sounds more than 3 frames in a row
        run_len = (run_len + 1) * frame
        assert run_len.max() <= 3
    ons = [m for m in sent if m[0] == 0x92]
    assert ons and all(40 <= m[2] <= 100 for m in ons)
    assert all(m[0] & 0x0F == 2 for m in sent)


def test_density_and_pause():
    def mean_notes(**kw):
        engine = Engine(RnnRbm(n_hidden=20, n_hidden_recurrent=10, seed=9), lambda m: None, settings(**kw))
        engine.start()
        played = np.array(run(engine, 20))
        engine.close()
        return played.sum(1).mean()
    sparse, normal = mean_notes(density=0.1), mean_notes()
    assert sparse < normal / 3   # p ≈ 0.5 → odds × 0.1 → p ≈ 0.09
    engine = Engine(RnnRbm(n_hidden=20, n_hidden_recurrent=10, seed=9), lambda m: None, settings())
    engine.start()
    run(engine, 3)
    engine.paused = True
    engine.poke()
    time.sleep(0.05)
    assert run(engine, 2)[-1].sum() == 0
    engine.close()


def test_frame_messages_by_hand():
    """The messages between two frames, worked out by hand: a note held across them sounds once,
    a note that ends gets its note-off, the whole new frame is ready to re-sound after a silence,
    and the velocity is fixed or follows the note's probability."""
    on_msg = [[[0x90, 60 + i, 0] for i in range(4)]]
    off_msg = [[[0x80, 60 + i, 0] for i in range(4)]]
    part, held = np.zeros(4, np.int8), np.zeros(4, np.int8)
    new = np.array([0, 1, 1, 0], np.float32)
    old = np.array([1, 1, 0, 0], np.float32)
    pv = np.array([0.9, 0.25, 0.5, 0.1], np.float32)
    ons, offs, all_on = [["stale"]], [["stale"]], [["stale"]]
    frame_messages(new, old, pv, part, held, on_msg, off_msg, 80, 50, 110, ons, offs, all_on)
    assert ons == [[0x90, 62, 80]] and offs == [[0x80, 60, 0]] and all_on == [[0x90, 61, 80], [0x90, 62, 80]]
    frame_messages(new, old, pv, part, held, on_msg, off_msg, None, 50, 110, ons, offs, all_on)
    assert all_on == [[0x90, 61, 65], [0x90, 62, 80]]  # 50 + 60·0.25, 50 + 60·0.5
    frame_messages(old, old, pv, part, held, on_msg, off_msg, 80, 50, 110, ons, offs, all_on)
    assert ons == [] and offs == [] and len(all_on) == 2  # nothing changes: nothing to send


def frame(*notes: int) -> np.ndarray:
    """A frame of 128 notes (index = MIDI note) with these on."""
    v = np.zeros(128, np.float32)
    v[list(notes)] = 1
    return v


@pytest.mark.parametrize("scheme, notes, expected", [
    # mbc: 0 melody (the top note), 1 bass (the lowest, with two or more), 2 chords (the rest)
    (MBC, [], {}),
    (MBC, [60], {60: 0}),
    (MBC, [48, 60], {60: 0, 48: 1}),
    (MBC, [48, 55, 60], {60: 0, 55: 2, 48: 1}),
    (MBC, [48, 55, 60, 64], {64: 0, 60: 2, 55: 2, 48: 1}),
    (MBC, [36, 48, 55, 60, 64], {64: 0, 60: 2, 55: 2, 48: 2, 36: 1}),
    (MBC, [36, 43, 48, 55, 60, 64], {64: 0, 60: 2, 55: 2, 48: 2, 43: 2, 36: 1}),
    # satb: 0 soprano (top), 1 alto (next below, with three or more), 2 tenor (the rest), 3 bass
    # (the lowest, with two or more): fewer than four fill from the top, S; S B; S A B
    (SATB, [], {}),
    (SATB, [72], {72: 0}),
    (SATB, [48, 72], {72: 0, 48: 3}),
    (SATB, [48, 67, 72], {72: 0, 67: 1, 48: 3}),
    (SATB, [48, 60, 67, 72], {72: 0, 67: 1, 60: 2, 48: 3}),
    (SATB, [36, 48, 60, 67, 72], {72: 0, 67: 1, 60: 2, 48: 2, 36: 3}),
    (SATB, [36, 48, 55, 60, 67, 72], {72: 0, 67: 1, 60: 2, 55: 2, 48: 2, 36: 3}),
    # no parts: every note on the one channel; adjacent notes are as good as any
    (NO_PARTS, [36, 48, 60, 61], {36: 0, 48: 0, 60: 0, 61: 0}),
    (SATB, [60, 61, 62, 63], {63: 0, 62: 1, 61: 2, 60: 3}),
])
def test_note_roles_by_hand(scheme, notes, expected):
    roles = np.full(128, 9, np.int8)   # stale values: every note not in the frame is reset to 0
    note_roles(frame(*notes), scheme, roles)
    assert {n: int(roles[n]) for n in notes} == expected
    assert not roles[[n for n in range(128) if n not in notes]].any()


def test_a_note_keeps_its_channel_until_it_ends():
    """mbc on channels 1 (melody), 2 (bass), 3 (chords), worked out by hand. Frame A = {60, 64, 67}:
    67 is the melody, 64 chords, 60 the bass. Frame B = {64, 67, 72}: by place 72 is the melody,
    67 chords and 64 the bass, but 64 and 67 go on sounding, so they stay where they started (64
    on chords, 67 on the melody channel, beside the new 72); 60 ends on the bass channel it
    started on. In C = {64} alone, 64 is still on chords; in D = {64, 65} the new 65 is the melody."""
    on_msg = [[[0x90 | ch, n, 0] for n in range(128)] for ch in range(3)]
    off_msg = [[[0x80 | ch, n, 0] for n in range(128)] for ch in range(3)]
    part, held = np.zeros(128, np.int8), np.zeros(128, np.int8)
    ons, offs, all_on = [], [], []

    def step(old, new):
        note_roles(new, MBC, part)
        frame_messages(new, old, new, part, held, on_msg, off_msg, 80, 50, 110, ons, offs, all_on)
        held[:] = part                  # what the engine does once the frame is sent
        return [tuple(m) for m in offs], [tuple(m) for m in ons], [tuple(m) for m in all_on]

    a, b, c, d = frame(60, 64, 67), frame(64, 67, 72), frame(64), frame(64, 65)
    assert step(frame(), a) == ([], [(0x91, 60, 80), (0x92, 64, 80), (0x90, 67, 80)],
                                [(0x91, 60, 80), (0x92, 64, 80), (0x90, 67, 80)])
    # after a silence B re-sounds on the channels its notes keep (all_on)
    assert step(a, b) == ([(0x81, 60, 0)], [(0x90, 72, 80)], [(0x92, 64, 80), (0x90, 67, 80), (0x90, 72, 80)])
    assert step(b, c) == ([(0x80, 67, 0), (0x80, 72, 0)], [], [(0x92, 64, 80)])
    assert step(c, d) == ([], [(0x90, 65, 80)], [(0x92, 64, 80), (0x90, 65, 80)])
    assert step(d, frame()) == ([(0x82, 64, 0), (0x80, 65, 0)], [], [])


@pytest.mark.parametrize("parts, channel", [("mbc", 1), ("satb", 5)])
def test_engine_plays_each_part_on_its_channel(parts, channel):
    """A model that plays a different chord of up to 6 notes every frame, split into parts: every
    note-on on its role's channel at its onset, every note-off on the channel its note started on,
    and the all-notes-off protocol on each part's channel when it closes."""
    sent, ticks = [], []
    model = RnnRbm(n_hidden=20, n_hidden_recurrent=10, seed=11)
    engine = Engine(model, sent.append, settings(parts=parts, channel=channel, max_polyphony=6, note_range=(48, 72)))
    engine.start()
    for _ in range(60):
        before = len(sent)
        run(engine, 1)
        ticks.append(sent[before:])
    engine.close()
    first = channel - 1
    n = 3 if parts == "mbc" else 4
    assert engine.channels == set(range(first, first + n))
    result = check_parts(ticks, parts, first)
    assert result["problems"] == []
    assert sorted(result["onsets"]) == list(range(n)), result["onsets"]   # every part played
    assert result["kept"] > 0, "no note went on sounding through a change of its role"
    closing = sent[sum(map(len, ticks)):]
    notes_off = [m for m in closing if m[0] & 0xF0 == 0x80]
    assert len(notes_off) == len(closing) - 3 * n       # the sounding notes' note-offs, then per channel:
    assert [tuple(m) for m in closing[len(notes_off):]] == [
        (0xB0 | ch, cc, 0) for ch in range(first, first + n) for cc in (64, 123, 120)]
    assert check_parts(ticks + [notes_off], parts, first)["left"] == []


def test_shape_frame_by_hand():
    """Note shaping, worked out by hand: the player's clamped notes, notes outside the range and
    notes past the watchdog's length are not sent, and above the polyphony cap the least probable
    notes go first."""
    v = np.array([1, 1, 1, 1, 1, 1, 0], np.float32)
    pv = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.6, 0.99], np.float32)
    clamped = np.array([1, 0, 0, 0, 0, 0, 0], np.int8)
    in_range = np.array([1, 1, 1, 1, 1, 0, 1], np.int8)
    runs = np.array([0, 0, 0, 5, 0, 0, 0], np.int64)
    out = np.zeros(7, np.float32)
    n = shape_frame(v, pv, clamped, in_range, runs, 5, 2, out)
    # left after the first three rules: notes 1 (0.8), 2 (0.3), 4 (0.2); the cap of 2 drops note 4
    assert n == 2 and out.tolist() == [0, 1, 1, 0, 0, 0, 0]
    n = shape_frame(v, pv, clamped, in_range, runs, 6, 88, out)
    assert n == 4 and out.tolist() == [0, 1, 1, 1, 1, 0, 0]


class ListRecorder:
    def __init__(self):
        self.model = []

    def model_note(self, t, msg):
        self.model.append(tuple(msg))


def test_the_recording_holds_the_notes_as_sent_through_silences():
    """After a clock Stop or a panic the next tick sounds its whole frame again, each held note on
    the channel it keeps: the recording gets those note-ons too, so it holds every note message the
    engine sent, in order."""
    sent, rec = [], ListRecorder()
    model = RnnRbm(n_hidden=20, n_hidden_recurrent=10, seed=12)
    engine = Engine(model, sent.append, settings(parts="satb", max_polyphony=6, note_range=(48, 72)), recorder=rec)
    engine.start()
    run(engine, 5)
    engine.silence()                    # clock Stop
    run(engine, 5)
    engine.panic()
    run(engine, 5)
    engine.close()
    notes = [tuple(m) for m in sent if m[0] & 0xE0 == 0x80]
    assert rec.model == notes
    assert len([m for m in notes if m[0] & 0xF0 == 0x80]) > 20
    channel_of = {}                     # every note-off on the channel of its note's last note-on
    for status, note, _ in notes:
        if status & 0xF0 == 0x90:
            channel_of[note] = status & 0x0F
        else:
            assert channel_of[note] == status & 0x0F, (status, note)


def test_a_switch_plays_the_new_sound_from_the_next_frame_notes_keeping_their_channel():
    """Channel 1 → 2 on the same weights (u kept: the same arrays go on), then to other weights with
    6 RNN units (s_0 = [u_0 | q_0] of that size). After each switch every note-on is on the new channel, a note
    sounding through it keeps its channel until its note-off, and no note sounds on two channels."""
    sent = []
    model = RnnRbm(n_hidden=20, n_hidden_recurrent=10, seed=11)
    engine = Engine(model, sent.append, settings(max_polyphony=6, note_range=(48, 72)), preset="a")
    engine.start()
    run(engine, 10)
    u = engine.base_u
    marks = [len(sent)]
    engine.switch_to(engine.sound(model, settings(max_polyphony=6, note_range=(48, 72), channel=2), "b"))
    run(engine, 10)
    assert engine.preset == "b" and engine.model is model and engine.base_u is u
    marks.append(len(sent))
    other = RnnRbm(n_hidden=20, n_hidden_recurrent=6, seed=12)
    engine.switch_to(engine.sound(other, settings(max_polyphony=6, note_range=(48, 72), channel=3), "c"))
    run(engine, 10)
    engine.close()
    # the new weights' state from s_0: their 6 RNN units and the player's trace
    assert engine.model is other and engine.base_u.shape == (6 + N_TRACE,) and engine.channels == {0, 1, 2}
    sounding, carried = {}, 0
    for i, m in enumerate(sent):
        if m[0] & 0xF0 not in (0x80, 0x90):
            continue
        ch, note = m[0] & 0x0F, m[1]
        if m[0] & 0xF0 == 0x90:
            assert note not in sounding
            # the frame computed before the switch may still be sent: the new channel from the one after
            assert ch == sum(i >= k for k in marks) or ch == sum(i >= k for k in marks) - 1, (i, m)
            sounding[note] = (ch, i)
        else:
            on_ch, start = sounding.pop(note)
            assert ch == on_ch
            carried += any(start < k <= i for k in marks)
    assert not sounding and carried > 0, carried

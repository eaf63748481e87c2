"""The streaming engine without ports: ticks driven by hand, messages captured in a list."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from live_rnnrbm.live.engine import Engine, frame_messages, shape_frame
from live_rnnrbm.live.settings import DEFAULTS
from live_rnnrbm.model import RnnRbm


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
        out.append(np.frombuffer(bytes(engine.sounding), np.uint8)[21:109].copy())
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
    on_msg = [[0x90, 60 + i, 0] for i in range(4)]
    off_msg = [[0x80, 60 + i, 0] for i in range(4)]
    new = np.array([0, 1, 1, 0], np.float32)
    old = np.array([1, 1, 0, 0], np.float32)
    pv = np.array([0.9, 0.25, 0.5, 0.1], np.float32)
    ons, offs, all_on = [["stale"]], [["stale"]], [["stale"]]
    frame_messages(new, old, pv, on_msg, off_msg, 80, 50, 110, ons, offs, all_on)
    assert ons == [[0x90, 62, 80]] and offs == [[0x80, 60, 0]] and all_on == [[0x90, 61, 80], [0x90, 62, 80]]
    frame_messages(new, old, pv, on_msg, off_msg, None, 50, 110, ons, offs, all_on)
    assert all_on == [[0x90, 61, 65], [0x90, 62, 80]]  # 50 + 60·0.25, 50 + 60·0.5
    frame_messages(old, old, pv, on_msg, off_msg, 80, 50, 110, ons, offs, all_on)
    assert ons == [] and offs == [] and len(all_on) == 2  # nothing changes: nothing to send


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

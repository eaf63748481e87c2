"""Recorder: what goes in at a time in seconds comes back out of the .mid file (read by mido, which
converts ticks to seconds through the file's tempo map) at that time, within half a tick."""
import random

import mido
import pytest

from live_rnnrbm.live.record import MODEL_TRACK, PLAYER_TRACK, Recorder
from live_rnnrbm.live.presets import load_preset
from live_rnnrbm.live.settings import merge

ON, OFF = 0x90, 0x80


def timeline(path):
    """[(seconds, message)] for every channel message, as mido plays the file back."""
    now, out = 0.0, []
    for msg in mido.MidiFile(path):
        now += msg.time
        if not msg.is_meta:
            out.append((now, msg))
    return out


def key(msg):
    return (msg.type, msg.channel, getattr(msg, "note", None), getattr(msg, "control", None))


def test_times_survive_a_tempo_change(tmp_path):
    t0 = 1000.0  # the events' clock need not start at 0 (e.g. time.perf_counter())
    rec = Recorder(tmp_path / "s.mid", bpm=120, steps_per_beat=2, start=t0)
    model = [(0.0, [ON, 60, 80]), (0.5, [OFF, 60, 0]), (0.5, [ON, 64, 90]), (1.7371, [OFF, 64, 0]),
             (2.9, [ON, 67, 70]), (3.3333, [0x90, 67, 0])]
    player = [(0.2501, [ON | 1, 48, 100]), (1.2, [0xB1, 64, 127]), (1.9, [OFF | 1, 48, 64]),
              (3.01, [0xB1, 64, 0])]
    for t, msg in model:
        rec.model_note(t0 + t, msg)
    for t, msg in player:
        rec.player_note(t0 + t, msg)
    rec.tempo(t0 + 1.0, 90.0)    # the external clock slowed down ...
    rec.tempo(t0 + 2.4567, 151.3)  # ... then sped up
    assert not (tmp_path / "s.mid").exists()  # nothing written before save()
    path = rec.save()

    got = timeline(path)
    expected = sorted(((t, mido.Message.from_bytes(m)) for t, m in model + player), key=lambda e: e[0])
    assert [key(m) for _, m in got] == [key(m) for _, m in expected]
    half_tick = 60 / 90 / 480 / 2  # at the slowest tempo
    for (t_got, _), (t_want, _) in zip(got, expected):
        assert t_got == pytest.approx(t_want, abs=half_tick + 1e-9)

    mid = mido.MidiFile(path)
    assert mid.type == 1 and mid.ticks_per_beat == 480
    tempi = [m.tempo for m in mid.tracks[0] if m.type == "set_tempo"]
    assert tempi == [mido.bpm2tempo(120), mido.bpm2tempo(90), mido.bpm2tempo(151.3)]


def test_rounding_does_not_accumulate_over_many_tempo_changes(tmp_path):
    rng = random.Random(3)
    rec = Recorder(tmp_path / "long.mid", bpm=100, ticks_per_beat=96, start=0.0)  # coarse ticks
    t, wanted = 0.0, []
    for i in range(400):
        if i % 3 == 0:
            rec.tempo(t + rng.random() * 0.01, rng.uniform(60, 180))
        note = 40 + i % 40
        rec.model_note(t, [ON, note, 80])
        rec.model_note(t + 0.1, [OFF, note, 0])
        wanted += [t, t + 0.1]
        t += rng.uniform(0.11, 0.4)
    got = [s for s, _ in timeline(rec.save())]
    assert len(got) == len(wanted)
    worst = max(abs(a - b) for a, b in zip(got, sorted(wanted)))
    assert worst <= 60 / 60 / 96 / 2 + 1e-9  # half a tick at the slowest tempo, after 400 changes
    assert got[-1] > 100  # a long file: an accumulating error would have shown


def test_model_and_player_on_their_own_named_tracks(tmp_path):
    rec = Recorder(tmp_path / "t.mid", bpm=100)
    rec.model_note(5.0, [ON, 72, 80])
    rec.model_note(5.5, [OFF, 72, 0])
    rec.player_note(5.25, [ON | 2, 50, 60])
    rec.player_note(5.75, [OFF | 2, 50, 0])
    mid = mido.MidiFile(rec.save())
    assert [t.name for t in mid.tracks] == ["tempo", MODEL_TRACK, PLAYER_TRACK]
    notes = [[(m.type, m.channel, m.note) for m in t if m.type.startswith("note")] for t in mid.tracks]
    assert notes[0] == []
    assert notes[1] == [("note_on", 0, 72), ("note_off", 0, 72)]
    assert notes[2] == [("note_on", 2, 50), ("note_off", 2, 50)]
    # start=None: the file begins at the first event, 5.0 s
    assert timeline(rec.path)[0][0] == 0.0 and timeline(rec.path)[1][0] == pytest.approx(0.25, abs=1e-3)


def test_notes_left_sounding_are_closed_at_the_end(tmp_path):
    rec = Recorder(tmp_path / "open.mid", bpm=120, start=0.0)
    rec.model_note(0.0, [ON, 60, 80])
    rec.model_note(0.0, [ON, 64, 80])
    rec.model_note(1.0, [ON, 64, 0])  # velocity 0 is a note-off
    rec.model_note(1.5, [ON, 67, 80])
    rec.player_note(0.5, [ON, 40, 90])
    rec.player_note(0.6, [0xB0, 64, 100])  # pedal down, never released
    rec.player_note(2.0, [OFF, 40, 0])
    got = timeline(rec.save())
    sounding, pedal = set(), False
    for _, m in got:
        if m.type == "note_on" and m.velocity:
            sounding.add((m.channel, m.note))
        elif m.type in ("note_on", "note_off"):
            sounding.discard((m.channel, m.note))
        elif m.type == "control_change" and m.control == 64:
            pedal = m.value >= 64
    assert not sounding and not pedal
    closing = [(t, key(m)) for t, m in got if t == pytest.approx(2.0, abs=1e-3)]
    assert (("note_off", 0, 60, None) in [k for _, k in closing]
            and ("note_off", 0, 67, None) in [k for _, k in closing]
            and ("control_change", 0, None, 64) in [k for _, k in closing])
    # save(end=...) closes them later instead
    got = timeline(rec.save(end=3.0))
    assert [t for t, m in got if m.type == "note_off" and m.note == 67] == [pytest.approx(3.0, abs=1e-3)]


def test_recording_copies_the_callers_buffer_and_skips_non_channel_messages(tmp_path):
    rec = Recorder(tmp_path / "b.mid", bpm=120, start=0.0)
    buf = [ON, 60, 80]
    rec.model_note(0.0, buf)
    buf[:] = [OFF, 60, 0]  # the engine reuses its buffer
    rec.model_note(0.5, buf)
    rec.player_note(0.2, [0xF8])  # a clock pulse is not recorded as a note
    got = timeline(rec.save())
    assert [key(m) for _, m in got] == [("note_on", 0, 60, None), ("note_off", 0, 60, None)]
    assert rec.skipped == 1


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "out" / "s.mid"
    rec = Recorder(target, bpm=120, start=0.0)
    rec.model_note(0.0, [ON, 60, 80])
    assert rec.save() == target and mido.MidiFile(target)
    rec.model_note(1.0, [OFF, 60, 0])
    rec.save()  # saving again replaces the file with everything so far
    assert len(timeline(target)) == 2
    assert sorted(p.name for p in target.parent.iterdir()) == ["s.mid"]

    blocked = Recorder(tmp_path / "out", bpm=120)  # a folder where the file should go
    blocked.model_note(0.0, [ON, 60, 80])
    with pytest.raises(OSError):
        blocked.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_empty_recording_is_a_valid_file(tmp_path):
    path = Recorder(tmp_path / "e.mid", bpm=120).save()
    mid = mido.MidiFile(path)
    assert len(mid.tracks) == 3 and timeline(path) == []


def test_from_settings():
    assert Recorder.from_settings(load_preset(None)) is None
    rec = Recorder.from_settings(merge(load_preset("jsb"), {"record": "x.mid"}), start=2.0)
    assert str(rec.path) == "x.mid" and rec.bpm == 72.0 and rec.steps_per_beat == 1 and rec.start == 2.0
    rec = Recorder.from_settings(merge(load_preset(None), {"record": "y.mid", "dt": 0.2}))
    assert rec.bpm == pytest.approx(150.0)  # 0.2 s frames at 2 steps per beat


def test_a_tempo_midi_cannot_hold_is_clamped_and_everything_else_written(tmp_path):
    """A clock measured across a pause gives a tempo slower than a set_tempo event holds (3 bytes of
    microseconds per beat: 3.58 BPM); a broken one gives 0 or NaN, a broken clock a NaN time."""
    rec = Recorder(tmp_path / "slow.mid", bpm=120, start=0.0)
    rec.model_note(0.0, [ON, 60, 80])
    rec.model_note(0.5, [OFF, 60, 0])
    rec.tempo(1.0, 2.9)                  # 20.7 s per beat
    rec.tempo(1.5, 0.0)
    rec.tempo(1.6, float("nan"))
    rec.model_note(float("nan"), [ON, 61, 80])
    rec.tempo(2.0, 120.0)
    rec.model_note(30.0, [ON, 64, 80])
    rec.model_note(30.5, [OFF, 64, 0])
    path = rec.save()
    tempi = [m.tempo for m in mido.MidiFile(path).tracks[0] if m.type == "set_tempo"]
    assert max(tempi) == 0xFFFFFF and tempi[-1] == mido.bpm2tempo(120), tempi
    notes = [(m.type, m.note) for _, m in timeline(path)]
    assert notes == [("note_on", 60), ("note_off", 60), ("note_on", 64), ("note_off", 64)], notes
    assert rec.skipped == 1

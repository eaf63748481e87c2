"""MIDI ↔ piano-roll conversion, checked on files written by hand."""
import pickle

import mido
import numpy as np
import pytest

from live_rnnrbm.data.corpus import DataError, load_corpus
from live_rnnrbm.data.pianoroll import MidiReadError, load_pickle, midi_to_roll, roll_to_midi

TPB = 480


def write_midi(path, events, tempo=500000, tpb=TPB, extra_tracks=()):
    """events: (tick, type, channel, note, velocity) in absolute ticks, one track."""
    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo, time=0)])
    now = 0
    for tick, kind, ch, note, vel in sorted(events, key=lambda e: e[0]):
        if kind == "tempo":
            track.append(mido.MetaMessage("set_tempo", tempo=note, time=tick - now))
        else:
            track.append(mido.Message(kind, channel=ch, note=note, velocity=vel, time=tick - now))
        now = tick
    mid.tracks.append(track)
    for t in extra_tracks:
        mid.tracks.append(t)
    mid.save(path)
    return path


def test_hand_written_file_gives_the_roll_worked_out_by_hand(tmp_path):
    # 120 BPM, 2 steps a beat → a frame is an eighth note (240 ticks)
    f = write_midi(tmp_path / "a.mid", [
        (0, "note_on", 0, 60, 90), (480, "note_off", 0, 60, 0),      # C4: frames 0,1
        (240, "note_on", 1, 64, 90), (960, "note_on", 1, 64, 0),     # E4 (vel-0 off): frames 1..3
        (720, "note_on", 9, 38, 90), (840, "note_off", 9, 38, 0),    # drum: left out
        (960, "note_on", 0, 10, 90), (1200, "note_off", 0, 10, 0),   # below A0: dropped
        (1000, "note_on", 0, 67, 90), (1010, "note_off", 0, 67, 0),  # a grace note: one frame (4)
    ])
    roll = midi_to_roll(f, steps_per_beat=2)
    expect = np.zeros((5, 88), np.uint8)
    expect[0:2, 60 - 21] = 1
    expect[1:4, 64 - 21] = 1
    expect[4, 67 - 21] = 1
    np.testing.assert_array_equal(roll.frames, expect)
    assert roll.dropped == 1
    with_drums = midi_to_roll(f, steps_per_beat=2, include_drums=True)
    assert with_drums.frames[3, 38 - 21] == 1


def test_overlapping_notes_of_one_pitch_are_matched_first_in_first_out(tmp_path):
    f = write_midi(tmp_path / "o.mid", [
        (0, "note_on", 0, 60, 90), (480, "note_on", 0, 60, 90),   # struck again while sounding
        (960, "note_off", 0, 60, 0), (1440, "note_off", 0, 60, 0),
        (1920, "note_on", 0, 62, 90),                              # never released: ends with the file
        (2400, "note_on", 0, 65, 90), (2880, "note_off", 0, 65, 0),
    ])
    roll = midi_to_roll(f, steps_per_beat=1)
    np.testing.assert_array_equal(roll.frames[:, 60 - 21], [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(roll.frames[:, 62 - 21], [0, 0, 0, 0, 1, 1])


def test_a_tempo_change_moves_dt_frame_boundaries(tmp_path):
    # beat 0 at 120 BPM (0.5 s), then 60 BPM (1 s a beat): a note at tick 960 starts at 1.5 s
    f = write_midi(tmp_path / "t.mid", [
        (0, "note_on", 0, 60, 90), (480, "note_off", 0, 60, 0),
        (480, "tempo", 0, 1000000, 0),
        (960, "note_on", 0, 62, 90), (1440, "note_off", 0, 62, 0),
    ])
    roll = midi_to_roll(f, dt=0.25)
    np.testing.assert_array_equal(np.nonzero(roll.frames[:, 60 - 21])[0], [0, 1])       # 0 .. 0.5 s
    np.testing.assert_array_equal(np.nonzero(roll.frames[:, 62 - 21])[0], [6, 7, 8, 9])  # 1.5 .. 2.5 s
    # on the beat grid the tempo does not matter
    grid = midi_to_roll(f, steps_per_beat=1)
    np.testing.assert_array_equal(np.nonzero(grid.frames[:, 62 - 21])[0], [2])


def test_tracks_are_merged(tmp_path):
    other = mido.MidiTrack([mido.Message("note_on", note=72, velocity=80, time=240),
                            mido.Message("note_off", note=72, velocity=0, time=240)])
    f = write_midi(tmp_path / "m.mid", [(0, "note_on", 0, 60, 90), (480, "note_off", 0, 60, 0)],
                   extra_tracks=[other])
    roll = midi_to_roll(f, steps_per_beat=2)
    assert roll.frames[0, 60 - 21] and roll.frames[1, 72 - 21] and not roll.frames[0, 72 - 21]


@pytest.mark.parametrize("res", [{"dt": 0.3}, {"steps_per_beat": 2}, {"steps_per_beat": 3}, {"dt": 0.125}])
def test_roll_to_midi_to_roll_is_the_identity(tmp_path, res):
    rng = np.random.default_rng(0)
    frames = (rng.random((97, 88)) < 0.05).astype(np.uint8)
    frames[-1, 40] = 1  # the last frame must survive too
    path = tmp_path / "r.mid"
    roll_to_midi(frames, bpm=97, **res).save(path)
    back = midi_to_roll(path, **res)
    np.testing.assert_array_equal(back.frames, frames)


def test_consecutive_frames_are_one_held_note(tmp_path):
    frames = np.zeros((6, 88), np.uint8)
    frames[1:5, 39] = 1
    mid = roll_to_midi(frames, steps_per_beat=2, bpm=120)
    notes = [m for m in mid.tracks[0] if m.type in ("note_on", "note_off")]
    assert [(m.type, m.note) for m in notes] == [("note_on", 60), ("note_off", 60)]
    assert mid.length == pytest.approx(6 * 0.25)  # six eighth notes at 120 BPM
    assert mido.tempo2bpm(next(m.tempo for m in mid.tracks[0] if m.type == "set_tempo")) == pytest.approx(120)
    dt_mid = roll_to_midi(frames, dt=0.3)
    assert dt_mid.length == pytest.approx(6 * 0.3)


def test_bad_midi_files_give_clear_errors(tmp_path):
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"this is not MIDI at all")
    with pytest.raises(MidiReadError, match=r"junk\.mid: not a readable MIDI file"):
        midi_to_roll(junk, dt=0.3)
    with pytest.raises(MidiReadError, match=r"nothere\.mid: no such file"):
        midi_to_roll(tmp_path / "nothere.mid", dt=0.3)
    truncated = tmp_path / "cut.mid"
    write_midi(tmp_path / "ok.mid", [(0, "note_on", 0, 60, 90), (480, "note_off", 0, 60, 0)])
    truncated.write_bytes((tmp_path / "ok.mid").read_bytes()[:30])
    with pytest.raises(MidiReadError, match=r"cut\.mid"):
        midi_to_roll(truncated, dt=0.3)
    with pytest.raises(ValueError, match="exactly one of dt"):
        midi_to_roll(tmp_path / "ok.mid")


def test_corpus_skips_a_corrupt_file_with_a_warning_naming_it(tmp_path):
    write_midi(tmp_path / "good.mid", [(0, "note_on", 0, 60, 90), (960, "note_off", 0, 60, 0)])
    (tmp_path / "sub").mkdir()
    write_midi(tmp_path / "sub" / "deep.mid", [(0, "note_on", 0, 62, 90), (960, "note_off", 0, 62, 0)])
    (tmp_path / "broken.mid").write_bytes(b"MThd garbage")
    warned = []
    corpus = load_corpus([tmp_path], steps_per_beat=2, warn=warned.append)
    assert len(corpus.rolls) == 2
    assert len(warned) == 1 and "broken.mid" in warned[0]
    assert corpus.skipped[0][0].endswith("broken.mid")
    with pytest.raises(DataError, match="no usable data"):
        load_corpus([tmp_path / "broken.mid"], warn=lambda m: None)
    with pytest.raises(DataError, match="matches no file"):
        load_corpus([str(tmp_path / "*.midx")])


def test_pickle_loader_reads_every_split_and_reports_missing_ones(tmp_path):
    data = {"train": [[[60, 64], [], [108, 21]]], "valid": [[[62]]], "test": [[[65], [67]]]}
    f = tmp_path / "Tiny.pickle"
    f.write_bytes(pickle.dumps(data, protocol=2))
    for split in data:
        rolls = load_pickle(f, split)
        assert len(rolls) == 1
    tr = load_pickle(f, "train")[0].frames
    assert tr.shape == (3, 88) and tr[0, 39] and tr[0, 43] and not tr[1].any() and tr[2, 87] and tr[2, 0]
    with pytest.raises(MidiReadError, match="no split 'bogus' .*train, valid"):
        load_pickle(f, "bogus")
    (tmp_path / "bad.pickle").write_bytes(b"nope")
    with pytest.raises(MidiReadError, match="bad.pickle: not a readable benchmark pickle"):
        load_pickle(tmp_path / "bad.pickle")

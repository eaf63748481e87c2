"""The corpus cache: it gives bit for bit the rolls ``load_corpus`` reads from its sources, converts
again only the files that changed, is read by `train` and `eval` as its sources are, says what is
wrong with it in one line, and an interrupted build leaves the previous cache as it was."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import mido
import numpy as np
import pytest

from live_rnnrbm import cli
from live_rnnrbm.data import cache_build
from live_rnnrbm.data.cache import MANIFEST, PARTIAL
from live_rnnrbm.data.cache_build import build_cache
from live_rnnrbm.data.corpus import DataError, load_corpus
from live_rnnrbm.data.pianoroll import roll_to_midi
from live_rnnrbm.data.weights import load_weights, save_weights
from live_rnnrbm.model import PARAM_NAMES, RnnRbm
from live_rnnrbm.train.data import load_training_data

FAST_EVAL = ["--ais-chains", "8", "--ais-steps", "20", "--accuracy-samples", "2", "--k", "5", "--json"]
TINY_TRAIN = ["--epochs", "1", "--hidden", "8", "--recurrent", "4", "--k", "2", "--batch-frames", "8",
              "--batch-size", "2", "--ais-every", "0", "--no-progress", "--valid-fraction", "0.3"]


def random_roll(rng: np.random.Generator, frames: int) -> np.ndarray:
    roll = (rng.random((frames, 88)) < 0.04).astype(np.uint8)
    roll[:, 39:51] |= (rng.random((frames, 12)) < 0.3).astype(np.uint8)  # most notes in 60..71
    return roll


def write_sources(folder: Path, seed: int = 5) -> Path:
    """MIDI files (one in a subfolder, one a single frame, one corrupt) and a pickle with two splits
    and a note below the piano's range."""
    rng = np.random.default_rng(seed)
    (folder / "more").mkdir(parents=True)
    for n, length in enumerate((9, 14, 6)):
        roll_to_midi(random_roll(rng, length), steps_per_beat=2, bpm=90 + 15 * n).save(folder / f"piece{n}.mid")
    c_major = np.zeros((8, 88), np.uint8)
    for t, chord in enumerate([(60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67)] * 2):
        c_major[t, [n - 21 for n in chord]] = 1
    roll_to_midi(c_major, steps_per_beat=2).save(folder / "more" / "c_major.mid")
    roll_to_midi(random_roll(rng, 1), steps_per_beat=2).save(folder / "short.mid")
    (folder / "broken.mid").write_bytes(b"MThd this is not a MIDI file")
    seqs = [[[int(21 + i) for i in np.nonzero(f)[0]] for f in random_roll(rng, n)] for n in (7, 11, 5)]
    seqs[0][0].append(10)  # dropped: below note 21
    with open(folder / "tiny.pickle", "wb") as f:
        pickle.dump({"train": seqs[:2], "valid": seqs[2:]}, f, protocol=2)
    return folder


def assert_same_corpus(got, want) -> None:
    assert len(got.rolls) == len(want.rolls)
    for a, b in zip(got.rolls, want.rolls):
        assert a.source == b.source
        assert a.frames.dtype == b.frames.dtype and np.array_equal(a.frames, b.frames), a.source
        assert (a.lowest_note, a.dt, a.steps_per_beat, a.bpm, a.dropped) == \
            (b.lowest_note, b.dt, b.steps_per_beat, b.bpm, b.dropped), a.source
    assert got.skipped == want.skipped
    assert got.dropped_notes == want.dropped_notes
    assert got.frames == want.frames


def manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


# --------------------------------------------------------------------------- what a cache holds


@pytest.mark.parametrize("settings", [{}, {"dt": 0.25}, {"lowest_note": 60, "highest_note": 71}],
                         ids=["beats", "seconds", "one octave"])
def test_a_cache_gives_bit_for_bit_the_rolls_load_corpus_reads(tmp_path, settings):
    src = write_sources(tmp_path / "data")
    info = build_cache([src], tmp_path / "cache", jobs=2, progress=False, **settings)
    assert (info.files, info.converted, info.reused) == (7, 7, 0)
    for split in ("train", "valid"):
        want = load_corpus([src], split=split, warn=lambda m: None, **settings)
        warned: list[str] = []
        got = load_corpus([tmp_path / "cache"], split=split, warn=warned.append, **settings)
        assert_same_corpus(got, want)
        assert len(warned) == 1 and "broken.mid" in warned[0] and "corpus info" in warned[0]
    m = manifest(tmp_path / "cache")
    files = m["files"]
    broken = files["path"].index("broken.mid")
    assert files["error"][broken].startswith("not a readable MIDI file")
    assert files["path"].index("more/c_major.mid") >= 0 and files["splits"][files["path"].index("tiny.pickle")] == \
        ["train", "valid"]
    pieces = m["pieces"]
    c_major = sum(files["pieces"][:files["path"].index("more/c_major.mid")])
    if not settings:
        assert (pieces["tonic"][c_major], pieces["mode"][c_major]) == (0, "major")
    # bit-packed: a byte for every 8 notes of a frame
    n_notes = settings.get("highest_note", 108) - settings.get("lowest_note", 21) + 1
    assert m["rolls"]["bytes_per_frame"] == -(-n_notes // 8)
    rolls = tmp_path / "cache" / m["rolls"]["file"]
    assert rolls.stat().st_size == m["rolls"]["bytes_per_frame"] * sum(pieces["frames"])


def test_a_rebuild_converts_only_the_files_that_changed(tmp_path):
    src = write_sources(tmp_path / "data")
    cache = tmp_path / "cache"
    first = build_cache([src], cache, jobs=1, progress=False)
    assert first.converted == 7
    rolls_file = manifest(cache)["rolls"]["file"]
    again = build_cache([src], cache, jobs=1, progress=False)
    assert (again.converted, again.reused, again.rehashed) == (0, 7, 0)
    assert manifest(cache)["rolls"]["file"] == rolls_file  # nothing to do, nothing written

    later = lambda f: os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 2_000_000_000))  # noqa: E731
    later(src / "piece0.mid")  # touched: same contents
    size = (src / "piece1.mid").stat().st_size  # rewritten a semitone up: the same size, other contents
    mid = mido.MidiFile(src / "piece1.mid")
    for track in mid.tracks:
        track[:] = [m.copy(note=m.note + 1) if m.type in ("note_on", "note_off") else m for m in track]
    mid.save(src / "piece1.mid")
    assert (src / "piece1.mid").stat().st_size == size
    later(src / "piece1.mid")
    roll_to_midi(random_roll(np.random.default_rng(9), 14), steps_per_beat=2).save(src / "more" / "new.mid")
    (src / "piece2.mid").unlink()
    r = build_cache([src], cache, jobs=1, progress=False)
    assert (r.converted, r.rehashed, r.removed, r.reused) == (2, 1, 1, 4)  # piece1 and new; piece0; piece2
    fresh = build_cache([src], tmp_path / "fresh", jobs=2, progress=False)
    assert fresh.converted == 7
    want = load_corpus([src], warn=lambda m: None)
    assert_same_corpus(load_corpus([cache], warn=lambda m: None), want)
    assert_same_corpus(load_corpus([tmp_path / "fresh"], warn=lambda m: None), want)
    assert sorted(p.name for p in cache.glob("rolls-*.bin")) == [manifest(cache)["rolls"]["file"]]


def test_a_cache_built_from_pickles_validates_on_their_valid_split(tmp_path):
    src = write_sources(tmp_path / "data")
    build_cache([src / "tiny.pickle"], tmp_path / "cache", progress=False)
    want = load_training_data([str(src / "tiny.pickle")])
    got = load_training_data([str(tmp_path / "cache")])
    assert [len(V) for V in got.train] == [7, 11] and [len(V) for V in got.valid] == [5]
    for a, b in zip(got.train + got.valid, want.train + want.valid):
        assert np.array_equal(a, b)
    assert got.resolution == want.resolution


# --------------------------------------------------------------------------- train and eval read it


def test_eval_on_a_cache_gives_the_figures_of_its_sources(tmp_path, capsys):
    src = write_sources(tmp_path / "data")
    model = RnnRbm(6, 5, 60, 67, seed=3)
    weights = save_weights(model, tmp_path / "tiny.npz", steps_per_beat=2, bpm=120.0)
    assert cli.main(["corpus", "build", str(src), "--out", str(tmp_path / "cache"), "--lowest-note", "60",
                     "--highest-note", "67", "--quiet"]) == 0
    capsys.readouterr()
    figures = []
    for data in (src, tmp_path / "cache"):
        assert cli.main(["eval", "--weights", str(weights), str(data), *FAST_EVAL]) == 0
        out = json.loads(capsys.readouterr().out)
        figures.append({k: out[k] for k in ("log_likelihood", "log_likelihood_se", "accuracy", "frames", "sequences",
                                             "skipped")})
    assert figures[0] == figures[1]
    assert figures[0]["frames"] > 20 and "broken.mid" in str(figures[0]["skipped"])


def test_train_on_a_cache_learns_what_it_learns_on_its_sources(tmp_path, capsys):
    src = write_sources(tmp_path / "data")
    notes = ["--lowest-note", "60", "--highest-note", "71"]
    assert cli.main(["corpus", "build", str(src), "--out", str(tmp_path / "cache"), "--quiet", *notes]) == 0
    models = []
    for data, out in ((src, "folder.npz"), (tmp_path / "cache", "cache.npz")):
        assert cli.main(["train", str(data), "--out", str(tmp_path / out), *notes, *TINY_TRAIN]) == 0
        models.append(load_weights(tmp_path / out))
    err = capsys.readouterr().err
    assert "2 file(s) skipped" in err  # broken.mid and short.mid, from both
    for n in PARAM_NAMES:
        np.testing.assert_array_equal(models[0].params[n], models[1].params[n], err_msg=n)
    assert models[1].meta["steps_per_beat"] == 2 and models[1].meta["trained_on"] == "cache"


# --------------------------------------------------------------------------- what goes wrong


def one_line_error(capsys, argv: list[str], *expected: str) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and err.startswith("error: "), err
    for e in expected:
        assert e in err, err
    return err


def test_a_cache_of_other_settings_or_none_at_all_is_one_clear_line(tmp_path, capsys):
    src = write_sources(tmp_path / "data")
    cache = tmp_path / "cache"
    build_cache([src], cache, progress=False)
    train = ["train", str(cache), "--out", str(tmp_path / "w.npz"), *TINY_TRAIN]
    one_line_error(capsys, train + ["--dt", "0.3"], "--steps-per-beat 2", "--dt 0.3")
    one_line_error(capsys, train + ["--lowest-note", "60", "--highest-note", "71"], "21..108", "60..71")
    weights = save_weights(RnnRbm(6, 5, 60, 67), tmp_path / "tiny.npz", steps_per_beat=2, bpm=120.0)
    one_line_error(capsys, ["eval", "--weights", str(weights), str(cache), *FAST_EVAL], "21..108", "60..67")
    one_line_error(capsys, ["corpus", "info", str(src)], "not a corpus cache")
    one_line_error(capsys, ["corpus", "build", str(src), "--out", str(src)], "holds other files")
    one_line_error(capsys, ["corpus", "build", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c2")], "nowhere")
    one_line_error(capsys, ["corpus", "build", str(src), "--out", str(tmp_path / "c2"), "--jobs", "0"], "--jobs")
    assert len(load_corpus([cache], warn=lambda m: None).rolls) == 6  # and the cache itself is fine


def test_a_damaged_cache_is_one_clear_line(tmp_path, capsys):
    src = write_sources(tmp_path / "data")
    cache = tmp_path / "cache"
    build_cache([src], cache, progress=False)
    rolls = cache / manifest(cache)["rolls"]["file"]
    data = rolls.read_bytes()
    rolls.write_bytes(data[:-5])  # cut short
    one_line_error(capsys, ["corpus", "info", str(cache)], "cut short", "build it again")
    one_line_error(capsys, ["train", str(cache), "--out", str(tmp_path / "w.npz"), *TINY_TRAIN], "cut short")
    rolls.write_bytes(data)
    assert cli.main(["corpus", "info", str(cache)]) == 0
    text = (cache / MANIFEST).read_text()
    (cache / MANIFEST).write_text(text[:len(text) // 2])
    one_line_error(capsys, ["corpus", "info", str(cache)], "cannot be read", "build the cache again")
    with pytest.raises(DataError, match="cannot be read"):
        load_corpus([cache])


def test_an_interrupted_build_leaves_the_previous_cache_and_keeps_its_work(tmp_path, monkeypatch):
    src = write_sources(tmp_path / "data")
    cache = tmp_path / "cache"
    build_cache([src], cache, jobs=1, progress=False)
    before = load_corpus([cache], warn=lambda m: None)
    rng = np.random.default_rng(1)
    for n in range(12):
        roll_to_midi(random_roll(rng, 5 + n), steps_per_beat=2).save(src / "more" / f"added{n:02}.mid")
    real, calls = cache_build.convert_chunk, []

    def fails_on_the_seventh_chunk(tasks, settings):
        calls.append(len(tasks))
        if len(calls) == 7:
            raise RuntimeError("the converter broke")
        return real(tasks, settings)

    monkeypatch.setattr(cache_build, "convert_chunk", fails_on_the_seventh_chunk)
    with pytest.raises(RuntimeError, match="converter broke"):
        build_cache([src], cache, jobs=1, progress=False)
    assert_same_corpus(load_corpus([cache], warn=lambda m: None), before)  # the previous cache, as it was
    kept = json.loads((cache / PARTIAL).read_text())["built"]["converted"]
    assert 0 < kept < 12
    assert {p.name for p in cache.glob("rolls-*.bin")} == {manifest(cache)["rolls"]["file"],
                                                          json.loads((cache / PARTIAL).read_text())["rolls"]["file"]}
    monkeypatch.setattr(cache_build, "convert_chunk", real)
    r = build_cache([src], cache, jobs=1, progress=False)
    assert r.converted == 12 - kept and not (cache / PARTIAL).exists()
    assert_same_corpus(load_corpus([cache], warn=lambda m: None), load_corpus([src], warn=lambda m: None))
    assert len(list(cache.glob("rolls-*.bin"))) == 1

    # the first build of a cache, interrupted: no cache at all, rather than half of one
    monkeypatch.setattr(cache_build, "convert_chunk", fails_on_the_seventh_chunk)
    calls.clear()
    with pytest.raises(RuntimeError):
        build_cache([src], tmp_path / "new", jobs=1, progress=False)
    with pytest.raises(DataError):
        load_corpus([tmp_path / "new"])


def test_corpus_info_says_what_the_cache_holds(tmp_path, capsys):
    src = write_sources(tmp_path / "data")
    cache = tmp_path / "cache"
    assert cli.main(["corpus", "build", str(src), "--out", str(cache), "--jobs", "2"]) == 0
    out = capsys.readouterr()
    assert "7 pieces" in out.out and "7 files (2 skipped)" in out.out and "7 converted" in out.out
    assert "broken.mid: not a readable MIDI file" in out.err
    assert cli.main(["corpus", "info", str(cache), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["pieces"], s["files"], s["pickles"]) == (7, 7, 1)
    assert s["pickle_pieces_by_split"] == {"train": 2, "valid": 1} and s["keys"]["C major"] >= 1
    assert s["settings"]["resolution"] == "--steps-per-beat 2" and s["notes_dropped"] == 1
    assert [os.path.basename(f) for f, _ in s["skipped"]] == ["broken.mid", "short.mid"]
    assert s["disk_bytes"]["rolls"] == (cache / manifest(cache)["rolls"]["file"]).stat().st_size
    assert cli.main(["corpus", "info", str(cache)]) == 0
    text = capsys.readouterr().out
    assert "7 from 7 files" in text and "broken.mid" in text and "--steps-per-beat 2" in text

"""The command line's own messages: a mistyped command, a weights name that does not exist, a bad
flag value, and the help texts (one default per option, every option explained)."""
from __future__ import annotations

import re

import numpy as np

from live_rnnrbm import cli
from live_rnnrbm.data.corpus import load_corpus
from live_rnnrbm.data.pianoroll import roll_to_midi


def run(capsys, *argv: str) -> tuple[int, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as e:  # --help
        code = e.code
    out = capsys.readouterr()
    return code, out.out + out.err


def test_a_mistyped_command_is_named_with_a_suggestion_and_the_list(capsys):
    code, err = run(capsys, "plya")
    assert code == 2
    assert "unknown command 'plya'" in err and "did you mean 'play'?" in err
    assert all(c in err for c in ("play", "ports", "generate", "train", "eval"))
    assert len(err.strip().splitlines()) == 1


def test_an_unknown_weights_name_lists_the_shipped_ones(capsys):
    code, err = run(capsys, "generate", "--weights", "nosuch", "--frames", "4")
    assert code == 2 and "nosuch" in err and "jsb" in err and "nottingham" in err, err
    code, err = run(capsys, "generate", "--weights", "jbs", "--frames", "4")
    assert code == 2 and "did you mean 'jsb'?" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_bad_flag_value_names_that_flag_only(capsys):
    code, err = run(capsys, "generate", "--frames", "-5")
    assert code == 2
    assert err.strip() == "error: --frames must be ≥ 1, not -5", err
    code, err = run(capsys, "eval", "x.mid", "--ais-steps", "0")
    assert code == 2 and err.strip() == "error: --ais-steps must be ≥ 1, not 0", err
    code, err = run(capsys, "generate", "--density", "0")
    assert code == 2 and err.strip() == "error: --density must be > 0, not 0.0", err
    code, err = run(capsys, "eval", "x.mid", "--task", "free", "--density", "-1")
    assert code == 2 and err.strip() == "error: --density must be > 0, not -1.0", err


def test_play_flags_for_parts_are_checked_before_anything_plays(capsys):
    code, err = run(capsys, "play", "--parts", "sat")
    assert code == 2
    assert err.strip().splitlines()[-1] == ("live-rnnrbm play: error: argument --parts: invalid choice: 'sat' "
                                            "(choose from 'mbc', 'satb')"), err     # as --mode harmonise
    code, err = run(capsys, "play", "--parts", "satb", "--channel", "15")
    assert code == 2
    assert err.strip() == ("error: settings (--channel, --parts): 'parts: satb' plays 4 parts on channels "
                           "'channel' to 'channel' + 3, so 'channel' must be at most 13, got 15"), err
    code, text = run(capsys, "play", "--help")
    assert "--parts {mbc,satb}" in text and "satb (soprano, alto, tenor, bass)" in " ".join(text.split())


def options(help_text: str) -> dict[str, str]:
    """--flag → its help entry, from an argparse help text."""
    entries = re.split(r"\n  (?=-)", help_text.split("options:", 1)[1])
    return {e.split()[0].rstrip(","): " ".join(e.split()) for e in entries[1:]}


def test_train_help_gives_one_default_per_option_and_explains_every_option(capsys):
    code, text = run(capsys, "train", "--help")
    assert code == 0
    opts = options(text)
    assert "--epochs" in opts and "--lowest-note" in opts
    for flag, entry in opts.items():
        assert entry.count("default") <= 1, entry
        assert "default: None" not in entry, entry
        words = entry.split(None, 1)[1] if " " in entry else ""
        # beyond the flag and its metavar, some words that say what it does
        assert len(words.split()) > 2, f"{flag} has no help: {entry!r}"
    assert "(default 50)" in opts["--epochs"]


def test_eval_help_says_what_k_generation_really_uses(capsys):
    code, text = run(capsys, "eval", "--help")
    assert code == 0
    k = options(text)["--k"]
    assert "as in generation" not in k and "generation_k" in k and "25" in k, k


def test_unreadable_files_are_named_with_the_reason_in_words(tmp_path):
    frames = np.zeros((16, 88), np.uint8)
    frames[:, 40] = 1
    good = tmp_path / "good.mid"
    roll_to_midi(frames, steps_per_beat=2).save(good)
    (tmp_path / "cut.mid").write_bytes(good.read_bytes()[:30])
    (tmp_path / "empty.mid").write_bytes(b"")
    said: list[str] = []
    corpus = load_corpus([str(tmp_path)], warn=said.append)
    assert len(corpus.rolls) == 1
    reasons = dict(corpus.skipped)
    assert "cut short" in reasons[str(tmp_path / "cut.mid")], reasons
    assert "empty" in reasons[str(tmp_path / "empty.mid")], reasons
    for line in said:
        assert "Error" not in line and "()" not in line and not line.rstrip().endswith(": )"), line


def test_play_osc_flags_are_checked_and_python_osc_is_named_when_missing(capsys, monkeypatch):
    code, err = run(capsys, "play", "--osc-port", "80")
    assert code == 2
    assert err.strip() == "error: command line: --osc-port must be null (no OSC) or a UDP port from 1024 to 65535, got 80"
    code, err = run(capsys, "play", "--osc-port", "nine")
    assert code == 2 and "argument --osc-port: invalid int value: 'nine'" in err, err
    monkeypatch.setitem(__import__("sys").modules, "pythonosc", None)   # as if it were not installed
    code, err = run(capsys, "play", "--osc-port", "9000", "--weights", "nosuch.npz")
    assert code == 2
    assert err.strip() == 'error: OSC control (osc_port, --osc-port) needs python-osc: pip install "live-rnnrbm[osc]"'


def test_play_link_clock_names_aalink_when_missing_and_refuses_dt(capsys, monkeypatch):
    code, err = run(capsys, "play", "--clock", "link", "--dt", "0.2")
    assert code == 2 and err.count("\n") == 1 and "'dt' only applies to the internal clock: with 'clock: link'" in err
    code, err = run(capsys, "play", "--link-quantum", "0")
    assert code == 2 and "--link-quantum must be an integer from 1 to 16" in err, err
    monkeypatch.setitem(__import__("sys").modules, "aalink", None)   # as if it were not installed
    code, err = run(capsys, "play", "--clock", "link", "--weights", "nosuch.npz")
    assert code == 2
    assert err.strip() == ('error: the Ableton Link clock (clock: link, --clock link) needs aalink: '
                           'pip install "live-rnnrbm[link]"')


def test_play_swing_flag_is_checked_like_its_preset_key(capsys):
    code, err = run(capsys, "play", "--swing", "40")
    assert code == 2
    assert err.strip() == ("error: command line: --swing must be a number from 50 (straight) to 75 (hard swing), "
                           "got 40.0"), err
    code, text = run(capsys, "play", "--help")
    assert "--swing SWING" in text and "66.7 triplet feel" in " ".join(text.split())

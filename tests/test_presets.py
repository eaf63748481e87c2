"""Presets: the shipped ones load, and every kind of mistake names the file, the line, the key and
what is allowed."""
from dataclasses import fields, replace
from pathlib import Path

import pytest
import yaml

from live_rnnrbm.live.presets import find_preset, list_presets, load_preset, parse_preset
from live_rnnrbm.live.settings import DEFAULTS, CCMap, PresetError, Settings, merge, reference_markdown


def error_of(tmp_path: Path, text: str, name: str = "x.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PresetError) as info:
        load_preset(str(path))
    return str(info.value)


# --- the shipped presets

def test_shipped_presets_are_listed():
    names = list_presets()
    assert {"default", "jsb"} <= set(names)


@pytest.mark.parametrize("name", list_presets())
def test_each_shipped_preset_loads_with_every_key(name):
    settings = load_preset(name)
    assert isinstance(settings, Settings) and isinstance(settings.cc, CCMap)
    assert merge(settings, {}) == settings  # and passes the combined checks too


def test_default_preset_spells_out_every_key_and_is_the_defaults():
    path = find_preset(None)
    assert path.name == "default.yaml"
    written = parse_preset(path.read_text(), str(path))
    assert list(written) == [f.name for f in fields(Settings)]  # every key, in the documented order
    assert set(written["cc"]) == {f.name for f in fields(CCMap)}
    assert load_preset(None) == DEFAULTS
    assert DEFAULTS.weights == "nottingham" and DEFAULTS.steps_per_beat == 2  # eighth notes
    assert DEFAULTS.port == "live-rnnrbm" and DEFAULTS.mode == "follow"


def test_jsb_preset_is_quarter_notes_with_jsb_weights():
    jsb = load_preset("jsb")
    assert jsb.weights == "jsb" and jsb.steps_per_beat == 1 and jsb.dt is None
    assert jsb.bpm < DEFAULTS.bpm and jsb.max_polyphony == 4
    assert load_preset("jsb") == load_preset(str(find_preset("jsb")))  # name and path agree


# --- keys

def test_unknown_key_names_file_line_and_suggests(tmp_path):
    msg = error_of(tmp_path, "bpm: 100\n# a comment\ntemprature: 1.2\n")
    assert msg.startswith(f"{tmp_path / 'x.yaml'}, line 3: 'temprature' is not a preset key "
                          "(did you mean 'temperature'?); keys: weights, k, seed, temperature,")
    assert "cc" in msg.split("keys: ")[1]


def test_unknown_key_without_a_close_match_lists_keys(tmp_path):
    msg = error_of(tmp_path, "zzzz: 1\n")
    assert "line 1: 'zzzz' is not a preset key; keys: weights, k, seed" in msg


def test_duplicate_key(tmp_path):
    msg = error_of(tmp_path, "bpm: 100\nchannel: 2\nbpm: 110\n")
    assert msg.endswith("x.yaml, line 3: 'bpm' is given twice (first on line 1)")


def test_unknown_cc_key(tmp_path):
    msg = error_of(tmp_path, "cc:\n  channel: 2\n  temprature: 30\n")
    assert "x.yaml, line 3: 'cc.temprature' is not a cc key (did you mean 'cc.temperature'?); " \
           "keys: cc.channel, cc.temperature, cc.density, cc.pause, cc.panic, cc.mode" in msg


# --- values

@pytest.mark.parametrize("text, line, expected", [
    ("channel: 2\nbpm: fast\n", 2, "'bpm' must be a number from 20 to 300, got 'fast'"),
    ("bpm: 500\n", 1, "'bpm' must be a number from 20 to 300, got 500"),
    ("bpm: '120'\n", 1, "'bpm' must be a number from 20 to 300, got the quoted text '120' "
                        "(write the number without quotes)"),
    ("bpm: .nan\n", 1, "'bpm' must be a number from 20 to 300, got .nan"),
    ("bpm: true\n", 1, "'bpm' must be a number from 20 to 300, got true"),
    ("steps_per_beat: 2.5\n", 1, "'steps_per_beat' must be an integer from 1 to 8, got 2.5"),
    ("steps_per_beat: 9\n", 1, "'steps_per_beat' must be an integer from 1 to 8, got 9"),
    ("dt: 0\n", 1, "'dt' must be null or a number of seconds above 0, got 0"),
    ("swing: 80\n", 1, "'swing' must be a number from 50 (straight) to 75 (hard swing), got 80"),
    ("swing: 49.9\n", 1, "'swing' must be a number from 50 (straight) to 75 (hard swing), got 49.9"),
    ("swing: '60'\n", 1, "'swing' must be a number from 50 (straight) to 75 (hard swing), got the quoted text "
                         "'60' (write the number without quotes)"),
    ("swing:\n", 1, "'swing' must be a number from 50 (straight) to 75 (hard swing), got nothing"),
    ("channel: 17\n", 1, "'channel' must be a MIDI channel from 1 to 16, got 17"),
    ("channel:\n", 1, "'channel' must be a MIDI channel from 1 to 16, got nothing"),
    ("input_channel: 0\n", 1, "'input_channel' must be null (every channel) or a MIDI channel from 1 to 16, got 0"),
    ("mode: on\n", 1, "'mode' must be one of follow, harmonize, off, got on"),
    ("mode: harmonise\n", 1, "'mode' must be one of follow, harmonize, off, got 'harmonise'"),
    ("backend: pulse\n", 1, "'backend' must be null or one of alsa, jack, coremidi, winmm, got 'pulse'"),
    ("parts: sat\n", 1, "'parts' must be null (every note on channel) or one of mbc, satb, got 'sat'"),
    ("parts: 4\n", 1, "'parts' must be null (every note on channel) or one of mbc, satb, got 4"),
    ("velocity: loud\n", 1, "'velocity' must be an integer from 1 to 127, or probability, got 'loud'"),
    ("velocity: 0\n", 1, "'velocity' must be an integer from 1 to 127, or probability, got 0"),
    ("velocity_range: [100, 50]\n", 1, "'velocity_range' must be a list [lo, hi] of integers from 1 to 127 "
                                       "with lo <= hi, got [100, 50] (the first number must not be above the second)"),
    ("note_range:\n  - 21\n  - 108\n  - 120\n", 2, "'note_range' must be a list [lo, hi] of MIDI notes from 0 to "
                                                    "127 with lo <= hi, got [21, 108, 120]"),
    ("note_range: [21, 128]\n", 1, "'note_range' must be a list [lo, hi] of MIDI notes from 0 to 127 with "
                                   "lo <= hi, got [21, 128]"),
    ("temperature: -1\n", 1, "'temperature' must be a number above 0, got -1"),
    ("density: 0\n", 1, "'density' must be a number above 0 (1 = as the model learned), got 0"),
    ("k: 0\n", 1, "'k' must be null (the weights' own generation_k, else 25) or an integer from 1 up (Gibbs steps per frame), got 0"),
    ("max_polyphony: 0\n", 1, "'max_polyphony' must be an integer from 1 up, got 0"),
    ("max_note_frames: many\n", 1, "'max_note_frames' must be an integer from 1 up, got 'many'"),
    ("seed: -3\n", 1, "'seed' must be null (a fresh seed each run) or an integer from 0 up, got -3"),
    ("port: ''\n", 1, "'port' must be the name (or part of the name) of a MIDI output port, got the quoted text ''"),
    ("weights: null\n", 1, "'weights' must be a shipped weights name (nottingham, jsb) or a path to a .npz "
                           "weights file, got null"),
    ("bpm:\n  fast: 1\n", 2, "'bpm' must be a number from 20 to 300, got a mapping"),
    ("cc: 21\n", 1, "'cc' must be a mapping with keys channel, temperature, density, pause, panic, mode, next_preset, "
     "previous_preset, parts, swing, got 21"),
    ("cc:\n  panic: 64\n", 2, "'cc.panic' must be null (no control) or a CC number from 0 to 119 other than 64, "
                              "got 64 (CC 64 is the sustain pedal (the player's held notes count it))"),
    ("cc:\n  mode: 123\n", 2, "'cc.mode' must be null (no control) or a CC number from 0 to 119 other than 64, "
                              "got 123 (CC 123 is a channel-mode message (120-127), not a control)"),
    ("cc:\n  channel: 0\n", 2, "'cc.channel' must be null (any channel) or a MIDI channel from 1 to 16, got 0"),
    ("osc_port: 80\n", 1, "'osc_port' must be null (no OSC) or a UDP port from 1024 to 65535, got 80"),
    ("osc_port: 70000\n", 1, "'osc_port' must be null (no OSC) or a UDP port from 1024 to 65535, got 70000"),
    ("osc_port: '9000'\n", 1, "'osc_port' must be null (no OSC) or a UDP port from 1024 to 65535, got the quoted "
                              "text '9000' (write the number without quotes)"),
    ("osc_port: 9000.5\n", 1, "'osc_port' must be null (no OSC) or a UDP port from 1024 to 65535, got 9000.5"),
    ("osc_host: ''\n", 1, "'osc_host' must be the address (or host name) to listen for OSC on, got the quoted text ''"),
    ("osc_host:\n", 1, "'osc_host' must be the address (or host name) to listen for OSC on, got nothing"),
])
def test_bad_values_name_file_line_key_and_allowed(tmp_path, text, line, expected):
    assert error_of(tmp_path, text) == f"{tmp_path / 'x.yaml'}, line {line}: {expected}"


@pytest.mark.parametrize("text", ["thru: yes\n", "thru: No\n", "clock_out: on\n", "status: OFF\n"])
def test_yes_no_on_off_are_refused_for_booleans(tmp_path, text):
    key, word = text.strip().split(": ")
    msg = error_of(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'x.yaml'}, line 1: '{key}' must be true or false, got {word} "
                          "(write true or false: PyYAML reads yes/no/on/off as booleans")


@pytest.mark.parametrize("text", ["thru: 'true'\n", 'status: "false"\n', "thru: 'yes'\n"])
def test_booleans_given_as_strings_are_refused(tmp_path, text):
    msg = error_of(tmp_path, text)
    assert "line 1:" in msg and "must be true or false, got the quoted text" in msg
    assert msg.endswith("(that is quoted text, not a boolean: write true or false without quotes)")


def test_a_boolean_where_a_name_belongs_says_to_quote_it(tmp_path):
    msg = error_of(tmp_path, "input: no\n")
    assert msg == (f"{tmp_path / 'x.yaml'}, line 1: 'input' must be null (no input) or the name (or part of "
                   "the name) of a MIDI input port, got no (YAML reads no as a boolean; if it is a name, "
                   "quote it: 'no')")


def test_values_yaml_would_misread_are_taken_as_written(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("mode: off\nport: 128\ndt: 5e-2\nthru: true\nvelocity: probability\nbackend: JACK\n"
                    "input: 'no'\n")
    s = load_preset(str(path))
    assert s.mode == "off" and s.port == "128" and s.dt == pytest.approx(0.05)
    assert s.thru is True and s.velocity == "probability" and s.backend == "jack"
    assert s.input == "no"
    assert s.bpm == DEFAULTS.bpm and s.cc == DEFAULTS.cc  # the rest from the defaults


def test_partial_cc_keeps_the_other_controls(tmp_path):
    path = tmp_path / "cc.yaml"
    path.write_text("cc:\n  channel: 16\n  panic: null\n")
    cc = load_preset(str(path)).cc
    assert cc == replace(DEFAULTS.cc, channel=16, panic=None)


def test_empty_file_is_all_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set yet\n")
    assert load_preset(str(path)) == DEFAULTS


# --- combinations

def test_dt_and_bpm_in_one_file_is_refused(tmp_path):
    msg = error_of(tmp_path, "channel: 1\nbpm: 100\ndt: 0.2\n")
    assert msg == (f"{tmp_path / 'x.yaml'}, line 2: give either 'dt' or 'bpm', not both: dt (seconds per "
                   "frame) sets the frame period and wins over bpm/steps_per_beat")


def test_dt_alone_wins_over_the_default_tempo(tmp_path):
    path = tmp_path / "dt.yaml"
    path.write_text("dt: 0.3\n")
    s = load_preset(str(path))
    assert s.dt == 0.3 and s.frame_period == 0.3
    assert s.tempo == pytest.approx(60 / (0.3 * 2))
    assert DEFAULTS.frame_period == pytest.approx(0.25)  # 120 BPM eighths


def test_dt_with_an_external_clock_is_refused(tmp_path):
    msg = error_of(tmp_path, "clock: Ableton\ndt: 0.2\n")
    assert msg.startswith(f"{tmp_path / 'x.yaml'}, line 1: 'dt' only applies to the internal clock")
    assert msg.endswith("set dt to null")


def test_parts_must_fit_below_channel_16(tmp_path):
    assert error_of(tmp_path, "parts: satb\nbpm: 100\nchannel: 14\n") == (
        f"{tmp_path / 'x.yaml'}, line 1: 'parts: satb' plays 4 parts on channels 'channel' to 'channel' + 3, "
        "so 'channel' must be at most 13, got 14")
    path = tmp_path / "ok.yaml"
    path.write_text("channel: 14\nparts: MBC\n")   # 14, 15, 16
    s = load_preset(str(path))
    assert s.parts == "mbc" and list(s.channels) == [14, 15, 16]
    assert s.part_names == ("melody", "bass", "chords")
    assert list(DEFAULTS.channels) == [1] and DEFAULTS.parts is None and DEFAULTS.part_names == ()


def test_external_clock_needs_steps_dividing_24(tmp_path):
    msg = error_of(tmp_path, "steps_per_beat: 5\nclock: Ableton\n")
    assert msg == (f"{tmp_path / 'x.yaml'}, line 1: following an external clock, 'steps_per_beat' must divide "
                   "the 24 pulses of a beat (1, 2, 3, 4, 6 or 8), got 5")


# --- the file itself

def test_yaml_syntax_error_gives_its_line(tmp_path):
    msg = error_of(tmp_path, "bpm: 100\nnote_range: [21, 108\nchannel: 2\n")
    assert msg.startswith(f"{tmp_path / 'x.yaml'}, line 3: not valid YAML:")
    assert msg.endswith("expected ',' or ']', but got ':' (while parsing a flow sequence that starts on line 2)")


def test_tab_indentation_and_two_documents(tmp_path):
    msg = error_of(tmp_path, "bpm: 100\n\ttemperature: 1\n")
    assert msg.startswith(f"{tmp_path / 'x.yaml'}, line 2: not valid YAML:")
    assert msg.endswith("YAML indents with spaces, not tabs")
    assert error_of(tmp_path, "bpm: 100\n---\nbpm: 90\n") == (
        f"{tmp_path / 'x.yaml'}, line 2: not valid YAML: a preset is a single YAML document, "
        "but a second one starts here")


def test_bad_indentation_gives_its_line(tmp_path):
    msg = error_of(tmp_path, "bpm: 100\n  channel: 2\n")
    assert msg.startswith(f"{tmp_path / 'x.yaml'}, line 2: not valid YAML: mapping values are not allowed")


def test_file_that_is_not_a_mapping(tmp_path):
    assert error_of(tmp_path, "- bpm: 100\n") == (
        f"{tmp_path / 'x.yaml'}, line 1: a preset must be a mapping of 'key: value' lines, got a list")
    assert error_of(tmp_path, "fast\n") == (
        f"{tmp_path / 'x.yaml'}, line 1: a preset must be a mapping of 'key: value' lines, "
        "got the single value 'fast'")


def test_missing_file_lists_shipped_presets(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PresetError) as info:
        load_preset(str(missing))
    assert str(info.value) == f"{missing}: no such preset file; shipped presets: {', '.join(list_presets())}"


def test_unknown_shipped_name_suggests_and_lists():
    with pytest.raises(PresetError) as info:
        load_preset("jbs")
    assert str(info.value) == (f"no shipped preset named 'jbs' (did you mean 'jsb'?); shipped presets: "
                               f"{', '.join(list_presets())}; for a file of your own give its path, e.g. ./jbs.yaml")


def test_shipped_file_name_without_a_local_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_preset("jsb.yaml") == find_preset("jsb")
    (tmp_path / "jsb.yaml").write_text("bpm: 60\n")  # a file here wins over the shipped one
    assert load_preset("jsb.yaml").bpm == 60.0


def test_folder_is_not_a_preset(tmp_path):
    with pytest.raises(PresetError, match="is a folder, not a preset file"):
        load_preset(str(tmp_path) + "/")


def test_non_utf8_file(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"bpm: \xff\xfe\n")
    with pytest.raises(PresetError, match=r"bin.yaml: not a text file \(UTF-8\)"):
        load_preset(str(path))


def test_relative_weights_are_found_beside_the_preset(tmp_path):
    (tmp_path / "mine.npz").write_bytes(b"")
    path = tmp_path / "p.yaml"
    path.write_text("weights: mine.npz\n")
    assert load_preset(str(path)).weights == str(tmp_path / "mine.npz")
    path.write_text("weights: jsb\n")  # a shipped name stays a name
    assert load_preset(str(path)).weights == "jsb"


def test_relative_switch_paths_are_found_beside_the_preset(tmp_path, monkeypatch):
    (tmp_path / "other.yaml").write_text("mode: harmonize\n")
    path = tmp_path / "p.yaml"
    path.write_text("switch: [other.yaml, jsb]\n")
    monkeypatch.chdir(tmp_path.parent)   # not the preset's folder: other.yaml is not here
    assert load_preset(str(path)).switch == (str(tmp_path / "other.yaml"), "jsb")


def test_parse_preset_matches_safe_load_on_the_shipped_files():
    # the node-by-node reading gives what PyYAML itself reads (where PyYAML reads what was meant)
    for name in list_presets():
        text = find_preset(name).read_text()
        ours = parse_preset(text)
        theirs = yaml.safe_load(text)
        assert set(ours) == set(theirs)
        for key, value in theirs.items():
            assert ours[key] == value, key


# --- merging command-line flags

def test_merge_overrides_win_and_none_does_not():
    preset = load_preset("jsb")
    merged = merge(preset, {"bpm": 90, "port": None, "mode": "follow", "seed": 7, "thru": True})
    assert merged.bpm == 90.0 and merged.mode == "follow" and merged.seed == 7 and merged.thru
    assert merged.port == preset.port and merged.weights == "jsb"
    assert preset.bpm == 72.0  # the preset itself is untouched


def test_merge_false_and_zero_are_values_not_absent():
    merged = merge(load_preset(None), {"status": False, "seed": 0})
    assert merged.status is False and merged.seed == 0


def test_merge_cc_key_by_key():
    merged = merge(load_preset(None), {"cc": {"temperature": 70, "pause": None}})
    assert merged.cc == replace(DEFAULTS.cc, temperature=70)


def test_merge_bpm_flag_clears_a_preset_dt(tmp_path):
    path = tmp_path / "dt.yaml"
    path.write_text("dt: 0.3\n")
    preset = load_preset(str(path))
    assert merge(preset, {"bpm": None}).dt == 0.3
    merged = merge(preset, {"bpm": 140})
    assert merged.dt is None and merged.frame_period == pytest.approx(60 / 280)
    assert merge(load_preset(None), {"dt": 0.1}).dt == 0.1  # --dt wins over the preset's bpm


def test_merge_refuses_dt_with_bpm():
    with pytest.raises(PresetError) as info:
        merge(load_preset(None), {"dt": 0.1, "steps_per_beat": 4})
    assert str(info.value) == "command line: give --dt or --bpm/--steps-per-beat, not both"


def test_merge_checks_values_and_names_the_flag():
    with pytest.raises(PresetError) as info:
        merge(load_preset(None), {"steps_per_beat": 12})
    assert str(info.value) == "command line: --steps-per-beat must be an integer from 1 to 8, got 12"
    with pytest.raises(PresetError) as info:
        merge(load_preset(None), {"cc": {"mode": 64}})
    assert str(info.value).startswith("command line: 'cc.mode' must be null (no control) or a CC number")


def test_osc_is_off_unless_a_port_is_given_and_listens_on_loopback():
    assert DEFAULTS.osc_port is None and DEFAULTS.osc_host == "127.0.0.1"
    settings = merge(load_preset(None), {"osc_port": 9000})
    assert (settings.osc_port, settings.osc_host) == (9000, "127.0.0.1")
    assert merge(settings, {"osc_host": "0.0.0.0"}).osc_host == "0.0.0.0"
    with pytest.raises(PresetError) as info:
        merge(load_preset(None), {"osc_port": 1023})
    assert str(info.value) == "command line: --osc-port must be null (no OSC) or a UDP port from 1024 to 65535, got 1023"


def test_merge_checks_parts_and_its_channels():
    with pytest.raises(PresetError) as info:
        merge(load_preset(None), {"parts": "sat"})
    assert str(info.value) == ("command line: --parts must be null (every note on channel) or one of mbc, satb, "
                               "got 'sat'")
    with pytest.raises(PresetError) as info:
        merge(load_preset(None), {"parts": "satb", "channel": 15})
    assert str(info.value) == ("settings (--channel, --parts): 'parts: satb' plays 4 parts on channels 'channel' "
                               "to 'channel' + 3, so 'channel' must be at most 13, got 15")
    assert list(merge(load_preset(None), {"parts": "satb", "channel": 13}).channels) == [13, 14, 15, 16]


def test_merge_refuses_unknown_settings():
    with pytest.raises(PresetError) as info:
        merge(load_preset(None), {"tempreature": 1.0})
    assert str(info.value).startswith("command line: 'tempreature' is not a setting (did you mean 'temperature'?)")


def test_merge_checks_the_combination():
    with pytest.raises(PresetError) as info:
        merge(load_preset(None), {"clock": "Ableton", "steps_per_beat": 5})
    assert str(info.value).startswith("settings (--steps-per-beat, --clock): following an external clock")


def test_the_docs_reference_is_the_spec():
    """docs/presets.md's table of every key is generated from the spec the checks use, so the two
    cannot drift apart; after changing a key, regenerate it with `python -m live_rnnrbm.live.settings`."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "presets.md").read_text(encoding="utf-8")
    assert reference_markdown() in page
    assert all(f"| `{key}` |" in reference_markdown() for key in [f.name for f in fields(Settings)])


def test_switch_is_a_list_of_presets_from_a_file_or_the_flag(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("switch: [default, ./mine.yaml]\n")
    assert load_preset(str(path)).switch == ("default", "./mine.yaml")
    assert DEFAULTS.switch is None      # the shipped presets
    assert merge(DEFAULTS, {"switch": ["jsb", "sparse"]}).switch == ("jsb", "sparse")
    assert error_of(tmp_path, "switch: []\n") == (f"{tmp_path / 'x.yaml'}, line 1: 'switch' must be null (the shipped "
                                                  "presets) or a list of preset names or .yaml paths, got []")
    assert error_of(tmp_path, "switch: jsb\n").endswith("got 'jsb'")
    with pytest.raises(PresetError, match="--switch must be"):
        merge(DEFAULTS, {"switch": [""]})


def test_midi_learn_saves_into_your_own_preset_keeping_the_rest(tmp_path):
    from live_rnnrbm.live.learn import Learner, save_cc, save_target
    mine = tmp_path / "mine.yaml"
    mine.write_text("# my session\nbpm: 90\ncc:\n  pause: 30   # my foot switch\n# the mode\nmode: harmonize\n")
    learner = Learner(load_preset(str(mine)).cc)
    assert learner.take(64) is None and learner.take(120) is None       # the sustain pedal, a channel-mode CC
    assert learner.take(30) == "learn: CC 30 is temperature (no longer pause)"
    assert learner.take(30) is None                                       # the same knob still turning
    learner.skip()                                                        # density kept
    assert learner.current == "pause" and learner.take(31) == "learn: CC 31 is pause"
    assert save_target(str(mine)) == mine.resolve()                       # your own file: in place
    assert save_cc(str(mine), learner.cc) == mine.resolve()
    text = mine.read_text()
    assert text.startswith("# my session\nbpm: 90\ncc:\n") and text.endswith("# the mode\nmode: harmonize\n")
    saved = load_preset(str(mine))
    assert (saved.cc.temperature, saved.cc.density, saved.cc.pause, saved.bpm) == (30, 22, 31, 90.0)

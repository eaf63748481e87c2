"""Every `live-rnnrbm play` setting: the typed ``Settings`` (``CCMap`` for the controls), made once
and read by everything that plays; what each key allows (``SPEC``, checked by ``setting_checks``)
and means (``MEANINGS``: docs/presets.md's reference is generated from both); the command line's
flags, one per key; and ``merge``, which puts flags over a preset (``presets`` reads preset files).

    >>> from live_rnnrbm.live.presets import load_preset
    >>> from live_rnnrbm.live.settings import merge
    >>> settings = merge(load_preset("jsb"), {"bpm": 96, "port": None})  # flags win; None = not given
    >>> settings.bpm, settings.dt, settings.frame_period
    (96.0, None, 0.625)

Any wrong key, type or value raises PresetError naming where (file and line, or the flag), the key
and what is allowed.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields, replace
from typing import Any, NamedTuple

from .clock import pulses_per_frame
from .setting_checks import (Bad, Check, boolean, cc_number, choice, integer, message, musical_key, names, number,
                             or_null, not_null, pair, show, text, unknown, velocity)


@dataclass(frozen=True)
class CCMap:
    """The CC number of each live control (None: no control) and the channel they are read on."""

    channel: int | None = None
    temperature: int | None = 21
    density: int | None = 22
    pause: int | None = 23
    panic: int | None = 24
    mode: int | None = 25
    next_preset: int | None = 26
    previous_preset: int | None = 27
    parts: int | None = 28
    swing: int | None = 29


@dataclass(frozen=True)
class Settings:
    """Every `live-rnnrbm play` setting; the shipped default preset spells out exactly these
    defaults. Made by ``load_preset`` and ``merge``, which check every value."""

    # the model
    weights: str = "nottingham"
    k: int | None = None
    seed: int | None = None
    temperature: float = 1.0
    density: float = 1.0
    register: float | None = None
    chains: int = 16
    # MIDI ports and listening
    port: str = "live-rnnrbm"
    backend: str | None = None
    input: str | None = None
    input_channel: int | None = None
    mode: str = "follow"
    key: str | None = None
    thru: bool = False
    # time
    clock: str = "internal"
    clock_out: bool = False
    link_quantum: int = 4
    link_start_stop: bool = False
    bpm: float = 120.0
    steps_per_beat: int = 2
    dt: float | None = None
    swing: float = 50.0
    # notes out
    channel: int = 1
    parts: str | None = None
    velocity: int | str = 80
    velocity_range: tuple[int, int] = (50, 110)
    note_range: tuple[int, int] = (31, 93)
    max_polyphony: int = 6
    max_note_frames: int = 16
    # while playing
    status: bool = True
    record: str | None = None
    osc_port: int | None = None
    osc_host: str = "127.0.0.1"
    switch: tuple[str, ...] | None = None
    cc: CCMap = field(default_factory=CCMap)

    @property
    def part_names(self) -> tuple[str, ...]:
        """The parts the notes are split into, in channel order from ``channel``; () when they are not."""
        return PARTS[self.parts] if self.parts else ()

    @property
    def channels(self) -> range:
        """The MIDI channels (1..16) the model plays on: ``channel`` and one more for each further part."""
        return range(self.channel, self.channel + max(len(self.part_names), 1))

    @property
    def external_clock(self) -> bool:
        """Following a MIDI clock on an input port (not the internal clock, not Link)."""
        return self.clock not in ("internal", "link")

    @property
    def link_clock(self) -> bool:
        return self.clock == "link"

    @property
    def frame_period(self) -> float:
        """Seconds per frame on the internal clock: dt when given, else 60 / (bpm * steps_per_beat)."""
        return float(self.dt) if self.dt is not None else 60.0 / (self.bpm * self.steps_per_beat)

    @property
    def tempo(self) -> float:
        """The tempo the frames imply (for clock out and recordings): with dt, a frame is
        1/steps_per_beat of a beat, so bpm = 60 / (dt * steps_per_beat)."""
        return 60.0 / (self.frame_period * self.steps_per_beat)

    @property
    def pulses_per_frame(self) -> int | None:
        """MIDI clock pulses per frame, 24 / steps_per_beat; None when that is not whole (such a
        frame cannot follow an external clock)."""
        return pulses_per_frame(self.steps_per_beat)


DEFAULTS = Settings()
CC_KEYS = ("channel", "temperature", "density", "pause", "panic", "mode", "next_preset", "previous_preset", "parts",
           "swing")
MODES = ("follow", "harmonize", "off")
# the parts a frame's notes can be split into, each on its own channel from `channel` up, in this order
PARTS = {"mbc": ("melody", "bass", "chords"), "satb": ("soprano", "alto", "tenor", "bass")}
BACKENDS = ("alsa", "jack", "coremidi", "winmm")
# CCs a control may not take: 64 is read as the sustain pedal of the player, and 120-127 are the
# channel-mode messages (all sound off, reset, local control, all notes off, ...), not controls.
class PresetError(ValueError):
    """A preset (or a setting given on the command line) that cannot be used; the message says
    where (file and line, or the flag), which key, and what is allowed."""


class Key(NamedTuple):
    """A setting: what is allowed, in words (error messages and the docs say it); the check; and
    the help of its `play` flag."""

    allowed: str
    check: Check | None
    help: str = ""


SPEC: dict[str, Key] = {
    "weights": Key("a shipped weights name (nottingham, jsb) or a path to a .npz weights file", not_null(text),
                   "weights file or shipped name (nottingham, jsb)"),
    "port": Key("the name (or part of the name) of a MIDI output port", not_null(text),
                "output: an existing port whose name contains this, else a virtual port of this name"),
    "backend": Key("null or one of " + ", ".join(BACKENDS), or_null(choice(BACKENDS)),
                   "MIDI system (default: the OS one)"),
    "input": Key("null (no input) or the name (or part of the name) of a MIDI input port", or_null(text),
                 "listen to this input port (name contains), else open a virtual input of this name"),
    "input_channel": Key("null (every channel) or a MIDI channel from 1 to 16", or_null(integer(1, 16)),
                         "listen on this channel only (1..16)"),
    "mode": Key("one of " + ", ".join(MODES), not_null(choice(MODES)), "how the model listens to the player"),
    "key": Key("null or a key: a note A-G, then # or b if any, then major or minor (e.g. D, Bb minor, F#m)",
               or_null(musical_key), "the key the music is in (e.g. D, 'Bb minor'): the model hears and plays in "
               "the key it learned in, moved to this one"),
    "thru": Key("true or false", boolean, "echo the player's notes to the output"),
    "clock": Key("internal, link (Ableton Link), or the name (or part of the name) of a MIDI input sending "
                 "clock", not_null(text),
                 "'internal', 'link' (Ableton Link session), or an input port sending MIDI clock to follow"),
    "clock_out": Key("true or false", boolean, "send MIDI clock, Start and Stop on the output port: the "
                     "internal clock's, or the followed clock's as it arrives"),
    "link_quantum": Key("an integer from 1 to 16", not_null(integer(1, 16)),
                        "with --clock link: beats per bar of the Link session (the first frame waits for a bar)"),
    "link_start_stop": Key("true or false", boolean, "with --clock link: play only while the Link session's "
                           "transport plays (Link's Start/Stop Sync)"),
    "bpm": Key("a number from 20 to 300", not_null(number(20, 300)), "tempo of the internal clock (20..300)"),
    "steps_per_beat": Key("an integer from 1 to 8", not_null(integer(1, 8)),
                          "frames per beat (1..8); with --clock, must divide 24"),
    "dt": Key("null or a number of seconds above 0", or_null(number(0, above=True)),
              "seconds per frame instead of --bpm/--steps-per-beat (internal clock)"),
    "swing": Key("a number from 50 (straight) to 75 (hard swing)", not_null(number(50, 75)),
                 "delay every off-beat frame: 50 straight .. 66.7 triplet feel .. 75 hard"),
    "channel": Key("a MIDI channel from 1 to 16", not_null(integer(1, 16)), "MIDI channel the model plays on (1..16)"),
    "parts": Key("null (every note on channel) or one of " + ", ".join(PARTS), or_null(choice(tuple(PARTS))),
                 "each frame's notes split by role, each part on its own channel from --channel up: "
                 "mbc (melody, bass, chords) or satb (soprano, alto, tenor, bass)"),
    "velocity": Key("an integer from 1 to 127, or probability", not_null(velocity),
                    "1..127, or 'probability' (louder when the model is surer)"),
    "velocity_range": Key("a list [lo, hi] of integers from 1 to 127 with lo <= hi", not_null(pair(1, 127)),
                          "velocities for probability 0..1"),
    "temperature": Key("a number above 0", not_null(number(0, above=True)),
                       "sampling temperature (> 0; 1 = the model)"),
    "density": Key("a number above 0 (1 = as the model learned)", not_null(number(0, above=True)),
                   "note density (> 0; 1 = the model, 0.5 sparser, 2 denser)"),
    "register": Key("null (the weights' own generation_register, else none), 0 (none) or a number of semitones above 0",
                     or_null(number(0)), "hold the piece's register while playing alone: notes about this many "
                     "semitones from it grow less likely (0: no hold; default: the weights' own)"),
    "k": Key("null (the weights' own generation_k, else 25) or an integer from 1 up (Gibbs steps per frame)",
             or_null(integer(1)), "Gibbs steps per frame"),
    "chains": Key("an integer from 1 to 256 (Gibbs chains per frame while listening)", not_null(integer(1, 256)),
                  "Gibbs chains per frame while listening: the model plays the harmony they agree on"),
    "note_range": Key("a list [lo, hi] of MIDI notes from 0 to 127 with lo <= hi", not_null(pair(0, 127)),
                      "lowest and highest MIDI note played"),
    "max_polyphony": Key("an integer from 1 up", not_null(integer(1)), "at most this many notes at once"),
    "max_note_frames": Key("an integer from 1 up", not_null(integer(1)),
                           "a note held this many frames is released (watchdog)"),
    "seed": Key("null (a fresh seed each run) or an integer from 0 up", or_null(integer(0)), "random seed"),
    "record": Key("null or the path of a .mid file to write", or_null(text),
                  "write the session (model and player tracks) to this .mid file"),
    "status": Key("true or false", boolean, "one-line status on stderr"),
    "osc_port": Key("null (no OSC) or a UDP port from 1024 to 65535", or_null(integer(1024, 65535)),
                    "listen for OSC control on this UDP port (docs/playing.md#osc); needs live-rnnrbm[osc]"),
    "osc_host": Key("the address (or host name) to listen for OSC on", not_null(text),
                    "listen for OSC on this address (default 127.0.0.1: this machine only; 0.0.0.0: every network)"),
    "switch": Key("null (the shipped presets) or a list of preset names or .yaml paths", or_null(names),
                  "the presets to step through while playing (next/previous: CC, keys ] and [, OSC)"),
    "cc": Key("a mapping with keys " + ", ".join(CC_KEYS), None),  # checked key by key, see CC_SPEC
}
CC_SPEC: dict[str, Key] = {
    "channel": Key("null (any channel) or a MIDI channel from 1 to 16", or_null(integer(1, 16))),
    **{name: Key("null (no control) or a CC number from 0 to 119 other than 64", cc_number)
       for name in CC_KEYS[1:]},
}
_FIELDS = [f.name for f in fields(Settings)]
assert set(SPEC) == set(_FIELDS) and list(CC_SPEC) == [f.name for f in fields(CCMap)]
SPEC = {key: SPEC[key] for key in _FIELDS}  # error messages list the keys in the documented order



# What each setting does, for the reference in docs/presets.md (``reference_markdown``).
MEANINGS: dict[str, str] = {
    'weights': 'the model. A relative path is looked up beside the preset file first, then from the current folder',
    'k': "Gibbs steps per frame; `null`: the weights' `generation_k` (300 for `nottingham`, 100 for `jsb`), else the paper's 25",
    'seed': '`null`: a fresh seed every run; a number repeats a run',
    'temperature': 'above 1 wilder, below 1 safer',
    'density': '1 = as many notes as the model learned; 0.5 sparser, 2 denser',
    'register': "playing alone, hold the piece's register: notes far from the mean pitch of what has sounded (σ = this many semitones) grow less likely, and each frame leans back against the drift of the last 16 frames, as a tune keeps its register where the model alone wanders ([generating.md](generating.md#register-hold-generation_register)); `null`: the weights' `generation_register` (11 for `nottingham`, none for `jsb`); `0`: no hold. While the model listens, the player sets the register and there is no hold",
    'chains': "while listening, Gibbs chains per frame: the model plays the draw whose pitch classes agree most with the other chains' (the harmony it is surest of, given the player); 1: one chain's sample. Playing alone is always one chain",
    'port': 'output: an existing port whose name contains this, else a virtual port of this name',
    'backend': "the rtmidi API; `null` is the platform's default",
    'input': 'an input port whose name contains this; `null`: not listening',
    'input_channel': 'listen to this channel only; `null`: every channel',
    'mode': "`follow`: the RNN state u_t takes the player's notes with the model's, so it follows the player's harmony; `harmonize`: the player's notes are also clamped in the Gibbs chain and the model fills in around them; `off`: ignore the player",
    'key': "the key the music is in. The model hears every note moved into C (the key its training pieces are in, where it listens best) and plays moved back into this key — alone too. The tonic is what counts (D minor and D major move alike). `null`: notes as they are, and the model listens best near C: [playing.md](playing.md#telling-it-the-key)",
    'thru': "echo the player's notes to the output",
    'clock': '`internal`; `link`: the tempo and beat grid of the Ableton Link session on the local network (the `link` extra, aalink): [playing.md](playing.md#ableton-link); or an input port sending MIDI clock to follow (24 pulses per beat)',
    'clock_out': 'send MIDI clock so other gear can follow: on the internal clock, Start, 24 pulses per beat and Stop; following `clock`, each Clock, Start, Continue, Stop and Song Position Pointer forwarded as it arrives (while paused or silent too), and a Stop when we quit while its transport runs',
    'link_quantum': 'with `clock: link`, the beats of a bar in the Link session: we start on its next bar, in phase with every peer using the same quantum',
    'link_start_stop': "with `clock: link`, Link's Start/Stop Sync: silent until a peer starts the session's transport, in on its first beat, silent at its stop; `false`: tempo and phase only, playing at once",
    'bpm': 'tempo of the internal clock; with `clock: link`, the session tempo when we are its first peer (joining, we take the session\'s)',
    'steps_per_beat': 'frames per beat: 1 quarters, 2 eighths, 4 sixteenths',
    'dt': 'seconds per frame instead of bpm × steps_per_beat; internal clock only',
    'swing': "the share (%) of each pair of frames (on-beat, off-beat) the on-beat frame takes: the off-beat frame starts (swing − 50) / 50 of a frame late, 1/3 at 66.7 (triplet feel); the on-beats stay on the beat. With `steps_per_beat: 1` the pairs are beats. On the internal clock the delay is exact (clock-out pulses stay straight); following an external clock, to the nearest pulse (24 a beat: with 2 steps a beat, 66.7 → 4 of 12 pulses). `--record` writes the notes swung, as played: [playing.md](playing.md#swing)",
    'channel': "channel the model plays on (with `parts`, the first part's)",
    'parts': "split each frame's notes by role, each part on its own channel. `mbc`: melody (the top note) on `channel`, bass (the lowest, when there are two or more) on `channel` + 1, chords (the rest) on `channel` + 2; `satb`: soprano (the top note), alto (the next below), tenor (the rest between), bass (the lowest) on `channel` to `channel` + 3, fewer notes filling from the top (S; S B; S A B). A note keeps its channel until it ends: [playing.md](playing.md#parts-on-their-own-channels)",
    'velocity': 'fixed, or louder the surer the model is of the note',
    'velocity_range': 'with `velocity: probability`, the velocities that probability 0..1 maps onto',
    'note_range': "notes outside are not played (Nottingham's notes span 31..93, JSB's 43..96)",
    'max_polyphony': 'at most this many notes at once: a guard against a stuck dense chord (Nottingham has up to 9 at once, mostly ≤ 5; JSB 4)',
    'max_note_frames': 'a note held this many frames is released (16 eighths = 2 bars of 4/4)',
    'status': 'one-line status in the terminal (tempo, clock, frame time, notes)',
    'record': 'record the session: [playing.md](playing.md#recording)',
    'osc_port': 'OSC control of temperature, density, mode, pause, panic and a status reply, on this UDP port: [playing.md](playing.md#osc); needs `pip install "live-rnnrbm[osc]"`',
    'osc_host': '`127.0.0.1`: only programs on this machine can send OSC; `0.0.0.0` (every network) or one address of this machine lets others on that network control the instrument',
    'switch': "the presets `next_preset` / `previous_preset` (CC, keys `]` `[`, OSC `/live-rnnrbm/preset`) step through while playing; `null`: the shipped ones (default, jsb, sparse). Their sound keys (weights, k, temperature, density, register, chains, mode, channel, parts, velocity, velocity_range, note_range, max_polyphony, max_note_frames) take over at the next frame; ports, clock, tempo, swing, key, seed and controls stay. Every one is loaded at start (a bad name stops `play` there), and their weights must play the notes of the weights playing (the shipped presets, when not listed, are left out if they do not): [playing.md](playing.md#switching-presets-while-playing)",
    'cc': 'MIDI CC controls while playing',
}
CC_MEANINGS: dict[str, str] = {
    'channel': 'channel the controls are read on',
    'temperature': 'knob: 0..127 → 0.25..4 on a log scale, 64 ≈ 1',
    'density': 'knob: 0..127 → 1/8..8 on a log scale, 64 ≈ 1',
    'pause': 'button: each press (value rising to ≥ 64) pauses / resumes',
    'panic': 'button: value ≥ 64 silences every note at once',
    'mode': 'knob in three zones: 0–42 follow, 43–85 harmonize, 86–127 off',
    'next_preset': 'button: each press plays the next preset of `switch`',
    'previous_preset': 'button: each press plays the previous preset of `switch`',
    'parts': 'button: each press turns the parts on (the preset\'s `parts`, else `mbc`) or off',
    'swing': 'knob: 0..127 → swing 50..75, from the next pair of frames',
}
assert list(MEANINGS) == list(SPEC) and list(CC_MEANINGS) == list(CC_SPEC)


def _default_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(str(x) for x in value) + "]"
    return str(value)


def reference_markdown() -> str:
    """The reference tables of docs/presets.md, made from SPEC, DEFAULTS and MEANINGS (a test
    checks the page holds them; ``python -m live_rnnrbm.live.settings`` prints them)."""
    lines = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for key, spec in SPEC.items():
        default = "see below" if key == "cc" else f"`{_default_text(getattr(DEFAULTS, key))}`"
        lines.append(f"| `{key}` | {default} | {spec.allowed} | {MEANINGS[key]} |")
    lines += ["", "`cc` keys (each may be left out; the rest keep their defaults):", "",
              "| key | default | allowed | what the control does |", "|---|---|---|---|"]
    for key, spec in CC_SPEC.items():
        lines.append(f"| `{key}` | `{_default_text(getattr(DEFAULTS.cc, key))}` | {spec.allowed} | {CC_MEANINGS[key]} |")
    return "\n".join(lines) + "\n"


def with_weights_own(settings: Settings, model) -> Settings:
    """``settings`` with the keys left null that the weights decide (k, register) taken from the
    weights' metadata (``data.weights.generation_settings``), as ``generate`` plays them."""
    from ..data.weights import generation_settings
    how = generation_settings(model, settings.k, register=settings.register)
    return replace(settings, k=how.k, register=how.register)


def combination_problem(settings: Settings, explicit: set[str]) -> tuple[list[str], str] | None:
    """Settings that are fine alone but not together: (the keys involved, what is wrong) or None."""
    if settings.dt is not None and explicit & {"bpm", "steps_per_beat"} and "dt" in explicit:
        both = [k for k in ("bpm", "steps_per_beat") if k in explicit]
        return (["dt", *both], f"give either 'dt' or {' and '.join(repr(k) for k in both)}, not both: "
                f"dt (seconds per frame) sets the frame period and wins over bpm/steps_per_beat")
    if settings.link_clock and settings.dt is not None:
        return (["dt", "clock"], "'dt' only applies to the internal clock: with 'clock: link' the session's "
                "tempo sets the frame (1/steps_per_beat of its beat); set dt to null")
    if settings.external_clock:
        if settings.dt is not None:
            return (["dt", "clock"], "'dt' only applies to the internal clock: following an external clock "
                    "(clock: " + repr(settings.clock) + ") a frame lasts 24/steps_per_beat clock pulses; "
                    "set dt to null")
        if settings.pulses_per_frame is None:
            return (["steps_per_beat", "clock"], "following an external clock, 'steps_per_beat' must divide "
                    f"the 24 pulses of a beat (1, 2, 3, 4, 6 or 8), got {settings.steps_per_beat}")
    if settings.channels.stop > 17:
        n = len(settings.part_names)
        return (["channel", "parts"], f"'parts: {settings.parts}' plays {n} parts on channels 'channel' to "
                f"'channel' + {n - 1}, so 'channel' must be at most {17 - n}, got {settings.channel}")
    return None



def with_checked(settings: Settings, checked: dict[str, Any]) -> Settings:
    """``settings`` with the checked values put over it (cc key by key; the [lo, hi] lists as tuples)."""
    cc = checked.get("cc", {})
    return replace(settings, **{k: tuple(v) if isinstance(v, list) else v for k, v in checked.items() if k != "cc"},
                   cc=replace(settings.cc, **cc))


# --- command-line overrides

def flag(key: str) -> str:
    """The command-line flag of a setting: 'steps_per_beat' -> '--steps-per-beat'."""
    return "--" + key.replace("_", "-")


def add_setting_flags(parser: argparse.ArgumentParser, keys: list[str] | None = None) -> None:
    """A flag for each setting (all but the nested cc, or ``keys``), parsed and described as the spec
    says; every default is None, so that a flag left out does not override the preset."""
    for key in keys or [k for k in SPEC if k != "cc"]:
        _, check, help_ = SPEC[key]
        parser.add_argument(flag(key), default=None, help=help_, **check.flag)


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags (None: not given), for ``merge``."""
    return {k: getattr(args, k) for k in SPEC if hasattr(args, k)}


def merge(preset: Settings, overrides: dict[str, Any]) -> Settings:
    """The preset with every override that is not None put over it (command-line flags win).

    `cc` may be overridden key by key ({"cc": {"temperature": 30}}). An explicit --bpm or
    --steps-per-beat clears a preset's dt (the flag you typed wins); --dt together with either is an
    error. Override values are checked like a file's, errors naming the flag; unknown keys are errors."""
    checked: dict[str, Any] = {}
    given = {k: v for k, v in overrides.items() if v is not None}
    for key, value in given.items():
        if key not in SPEC:
            raise PresetError(f"command line: {unknown(key, list(SPEC), 'a setting')}")
        allowed, check, _ = SPEC[key]
        if key == "cc":
            if not isinstance(value, dict):
                raise PresetError(f"command line: {message('cc', allowed, show(value), '')}")
            checked["cc"] = {}
            for sub, sub_value in value.items():
                if sub not in CC_SPEC:
                    raise PresetError(f"command line: {unknown('cc.' + str(sub), ['cc.' + k for k in CC_SPEC], 'a cc key')}")
                if sub_value is not None:
                    sub_allowed, sub_check, _ = CC_SPEC[sub]
                    try:
                        checked["cc"][sub] = sub_check(sub_value, None)
                    except Bad as bad:
                        raise PresetError(f"command line: {message('cc.' + sub, sub_allowed, show(sub_value), bad.hint)}") from None
            continue
        try:
            checked[key] = check(value, None)
        except Bad as bad:
            raise PresetError(f"command line: {flag(key)} must be {allowed}, got {show(value)}"
                              + (f" ({bad.hint})" if bad.hint else "")) from None
    if "dt" in given and given.keys() & {"bpm", "steps_per_beat"}:
        raise PresetError("command line: give --dt or --bpm/--steps-per-beat, not both")
    if given.keys() & {"bpm", "steps_per_beat"} and "dt" not in given:
        checked["dt"] = None
    settings = with_checked(preset, checked)
    problem = combination_problem(settings, explicit=set())
    if problem:
        keys, text = problem
        raise PresetError(f"settings ({', '.join(flag(k) for k in keys)}): {text}")
    return settings


if __name__ == "__main__":
    print(reference_markdown(), end="")

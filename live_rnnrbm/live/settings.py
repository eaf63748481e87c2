"""Presets: every `live-rnnrbm play` setting in one YAML file, checked with the file's line numbers.

    >>> from live_rnnrbm.live.settings import load_preset, merge
    >>> settings = load_preset("jsb")                    # shipped preset by name ...
    >>> settings = load_preset("my/session.yaml")        # ... or a file of your own
    >>> settings = merge(settings, {"bpm": 96, "port": None})   # command-line flags win; None = not given
    >>> settings.bpm, settings.dt, settings.frame_period
    (96.0, None, 0.625)

The settings are a frozen, typed ``Settings``, made once and read by everything that plays. A
preset is a flat mapping of its fields (plus the nested `cc` mapping, ``CCMap``); keys a file leaves
out take their value from DEFAULTS = Settings(). Any wrong key, type or value raises PresetError naming the file,
the line, the key and what is allowed. PyYAML's safe_load forgets where things were, so the file is
composed into nodes (which keep their start marks) and each value is constructed and checked on its own.
"""
from __future__ import annotations

import argparse
import difflib
import math
import os
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, Callable, NamedTuple

import yaml

from .clock import pulses_per_frame

SHIPPED_PACKAGE = "live_rnnrbm._presets"
DEFAULT_PRESET = "default"

@dataclass(frozen=True)
class CCMap:
    """The CC number of each live control (None: no control) and the channel they are read on."""

    channel: int | None = None
    temperature: int | None = 21
    density: int | None = 22
    pause: int | None = 23
    panic: int | None = 24
    mode: int | None = 25


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
    chains: int = 16
    # MIDI ports and listening
    port: str = "live-rnnrbm"
    backend: str | None = None
    input: str | None = None
    input_channel: int | None = None
    mode: str = "follow"
    thru: bool = False
    # time
    clock: str = "internal"
    clock_out: bool = False
    bpm: float = 120.0
    steps_per_beat: int = 2
    dt: float | None = None
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
        return self.clock != "internal"

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
CC_KEYS = ("channel", "temperature", "density", "pause", "panic", "mode")
MODES = ("follow", "harmonize", "off")
# the parts a frame's notes can be split into, each on its own channel from `channel` up, in this order
PARTS = {"mbc": ("melody", "bass", "chords"), "satb": ("soprano", "alto", "tenor", "bass")}
BACKENDS = ("alsa", "jack", "coremidi", "winmm")
# CCs a control may not take: 64 is read as the sustain pedal of the player, and 120-127 are the
# channel-mode messages (all sound off, reset, local control, all notes off, ...), not controls.
RESERVED_CCS = {64: "the sustain pedal (the player's held notes count it)"} | {
    n: "a channel-mode message (120-127), not a control" for n in range(120, 128)}

_YAML_BOOLEAN_WORDS = {"yes", "no", "on", "off"}


class PresetError(ValueError):
    """A preset (or a setting given on the command line) that cannot be used; the message says
    where (file and line, or the flag), which key, and what is allowed."""


class _Bad(Exception):
    """Internal: a value outside what its key allows; the caller adds where and which key."""

    def __init__(self, hint: str = ""):
        super().__init__(hint)
        self.hint = hint


# --- value checks: each takes (value, plain) and returns the value to use or raises _Bad.
# `plain` is the raw text of an unquoted YAML scalar (None for quoted text, lists, mappings, and values
# from the command line): YAML 1.1 turns some plain words into booleans and `1e-3` into text, and the
# raw text lets the checks see what was actually written.

Check = Callable[[Any, "str | None"], Any]


def _parsed_as(check: Check, **argparse_kwargs: Any) -> Check:
    """Tag a check with how its command-line flag is parsed (argparse keywords)."""
    check.flag = argparse_kwargs  # type: ignore[attr-defined]
    return check


def _number(lo: float, hi: float | None = None, above: bool = False) -> Check:
    def check(value: Any, plain: str | None) -> float:
        if isinstance(value, str) and plain is not None:
            try:
                value = float(plain)  # YAML 1.1 reads 1e-3 (no dot) as text; it was written as a number
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Bad("write the number without quotes" if _is_number_text(value) else "")
        if not math.isfinite(value) or (value <= lo if above else value < lo) or (hi is not None and value > hi):
            raise _Bad()
        return float(value)
    return _parsed_as(check, type=float)


def _integer(lo: int, hi: int | None = None) -> Check:
    def check(value: Any, plain: str | None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad("write the number without quotes" if _is_number_text(value) else "")
        if value < lo or (hi is not None and value > hi):
            raise _Bad()
        return value
    return _parsed_as(check, type=int)


def _choice(options: tuple[str, ...]) -> Check:
    def check(value: Any, plain: str | None) -> str:
        text = plain if plain is not None else value  # `mode: off` is the boolean False to YAML 1.1
        if isinstance(text, str) and text.lower() in options:
            return text.lower()
        raise _Bad()
    return _parsed_as(check, choices=options)


def _text(value: Any, plain: str | None) -> str:
    if isinstance(value, bool):
        word = plain or str(value).lower()
        raise _Bad(f"YAML reads {word} as a boolean; if it is a name, quote it: '{word}'")
    if plain is not None and isinstance(value, (int, float)):
        return plain  # port: 128 is the name "128"
    if not isinstance(value, str) or not value.strip():
        raise _Bad()
    return value


_parsed_as(_text, type=str)


def _boolean(value: Any, plain: str | None) -> bool:
    if isinstance(value, bool):
        if plain is not None and plain.lower() in _YAML_BOOLEAN_WORDS:
            raise _Bad("write true or false: PyYAML reads yes/no/on/off as booleans but YAML 1.2 and "
                       "most other tools read them as text, so presets take only true/false")
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"} | _YAML_BOOLEAN_WORDS:
        raise _Bad("that is quoted text, not a boolean: write true or false without quotes")
    raise _Bad()


_parsed_as(_boolean, action=argparse.BooleanOptionalAction)


def _velocity(value: Any, plain: str | None) -> int | str:
    if isinstance(value, str) and value.strip().lower() == "probability":
        return "probability"
    return _integer(1, 127)(value, plain)


def _velocity_arg(text: str) -> int | str:
    return int(text) if text.strip().isdigit() else text


_parsed_as(_velocity, type=_velocity_arg)


def _pair(lo: int, hi: int) -> Check:
    def check(value: Any, plain: str | None) -> list[int]:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise _Bad()
        a, b = (_integer(lo, hi)(x, None) for x in value)
        if a > b:
            raise _Bad("the first number must not be above the second")
        return [a, b]
    return _parsed_as(check, type=int, nargs=2, metavar=("LO", "HI"))


def _or_null(check: Check) -> Check:
    def nullable(value: Any, plain: str | None) -> Any:
        return None if value is None else check(value, plain)
    return _parsed_as(nullable, **check.flag)


def _not_null(check: Check) -> Check:
    def required(value: Any, plain: str | None) -> Any:
        if value is None:
            raise _Bad()
        return check(value, plain)
    return _parsed_as(required, **check.flag)


def _cc_number(value: Any, plain: str | None) -> int | None:
    if value is None:
        return None
    number = _integer(0, 127)(value, plain)
    if number in RESERVED_CCS:
        raise _Bad(f"CC {number} is {RESERVED_CCS[number]}")
    return number


class Key(NamedTuple):
    """A setting: what is allowed, in words (error messages and the docs say it); the check; and
    the help of its `play` flag."""

    allowed: str
    check: Check | None
    help: str = ""


SPEC: dict[str, Key] = {
    "weights": Key("a shipped weights name (nottingham, jsb) or a path to a .npz weights file", _not_null(_text),
                   "weights file or shipped name (nottingham, jsb)"),
    "port": Key("the name (or part of the name) of a MIDI output port", _not_null(_text),
                "output: an existing port whose name contains this, else a virtual port of this name"),
    "backend": Key("null or one of " + ", ".join(BACKENDS), _or_null(_choice(BACKENDS)),
                   "MIDI system (default: the OS one)"),
    "input": Key("null (no input) or the name (or part of the name) of a MIDI input port", _or_null(_text),
                 "listen to this input port (name contains), else open a virtual input of this name"),
    "input_channel": Key("null (every channel) or a MIDI channel from 1 to 16", _or_null(_integer(1, 16)),
                         "listen on this channel only (1..16)"),
    "mode": Key("one of " + ", ".join(MODES), _not_null(_choice(MODES)), "how the model listens to the player"),
    "thru": Key("true or false", _boolean, "echo the player's notes to the output"),
    "clock": Key("internal, or the name (or part of the name) of a MIDI input sending clock", _not_null(_text),
                 "'internal', or an input port sending MIDI clock to follow"),
    "clock_out": Key("true or false", _boolean, "send MIDI clock, Start and Stop on the output port (internal clock)"),
    "bpm": Key("a number from 20 to 300", _not_null(_number(20, 300)), "tempo of the internal clock (20..300)"),
    "steps_per_beat": Key("an integer from 1 to 8", _not_null(_integer(1, 8)),
                          "frames per beat (1..8); with --clock, must divide 24"),
    "dt": Key("null or a number of seconds above 0", _or_null(_number(0, above=True)),
              "seconds per frame instead of --bpm/--steps-per-beat (internal clock)"),
    "channel": Key("a MIDI channel from 1 to 16", _not_null(_integer(1, 16)), "MIDI channel the model plays on (1..16)"),
    "parts": Key("null (every note on channel) or one of " + ", ".join(PARTS), _or_null(_choice(tuple(PARTS))),
                 "each frame's notes split by role, each part on its own channel from --channel up: "
                 "mbc (melody, bass, chords) or satb (soprano, alto, tenor, bass)"),
    "velocity": Key("an integer from 1 to 127, or probability", _not_null(_velocity),
                    "1..127, or 'probability' (louder when the model is surer)"),
    "velocity_range": Key("a list [lo, hi] of integers from 1 to 127 with lo <= hi", _not_null(_pair(1, 127)),
                          "velocities for probability 0..1"),
    "temperature": Key("a number above 0", _not_null(_number(0, above=True)),
                       "sampling temperature (> 0; 1 = the model)"),
    "density": Key("a number above 0 (1 = as the model learned)", _not_null(_number(0, above=True)),
                   "note density (> 0; 1 = the model, 0.5 sparser, 2 denser)"),
    "k": Key("null (the weights' own generation_k, else 25) or an integer from 1 up (Gibbs steps per frame)",
             _or_null(_integer(1)), "Gibbs steps per frame"),
    "chains": Key("an integer from 1 to 256 (Gibbs chains per frame while listening)", _not_null(_integer(1, 256)),
                  "Gibbs chains per frame while listening: the model plays the harmony they agree on"),
    "note_range": Key("a list [lo, hi] of MIDI notes from 0 to 127 with lo <= hi", _not_null(_pair(0, 127)),
                      "lowest and highest MIDI note played"),
    "max_polyphony": Key("an integer from 1 up", _not_null(_integer(1)), "at most this many notes at once"),
    "max_note_frames": Key("an integer from 1 up", _not_null(_integer(1)),
                           "a note held this many frames is released (watchdog)"),
    "seed": Key("null (a fresh seed each run) or an integer from 0 up", _or_null(_integer(0)), "random seed"),
    "record": Key("null or the path of a .mid file to write", _or_null(_text),
                  "write the session (model and player tracks) to this .mid file"),
    "status": Key("true or false", _boolean, "one-line status on stderr"),
    "cc": Key("a mapping with keys " + ", ".join(CC_KEYS), None),  # checked key by key, see CC_SPEC
}
CC_SPEC: dict[str, Key] = {
    "channel": Key("null (any channel) or a MIDI channel from 1 to 16", _or_null(_integer(1, 16))),
    **{name: Key("null (no control) or a CC number from 0 to 119 other than 64", _cc_number)
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
    'chains': "while listening, Gibbs chains per frame: the model plays the draw whose pitch classes agree most with the other chains' (the harmony it is surest of, given the player); 1: one chain's sample. Playing alone is always one chain",
    'port': 'output: an existing port whose name contains this, else a virtual port of this name',
    'backend': "the rtmidi API; `null` is the platform's default",
    'input': 'an input port whose name contains this; `null`: not listening',
    'input_channel': 'listen to this channel only; `null`: every channel',
    'mode': "`follow`: the RNN state u_t takes the player's notes with the model's, so it follows the player's harmony; `harmonize`: the player's notes are also clamped in the Gibbs chain and the model fills in around them; `off`: ignore the player",
    'thru': "echo the player's notes to the output",
    'clock': 'or an input port sending MIDI clock to follow (24 pulses per beat)',
    'clock_out': 'send MIDI clock so other gear can follow',
    'bpm': 'tempo of the internal clock',
    'steps_per_beat': 'frames per beat: 1 quarters, 2 eighths, 4 sixteenths',
    'dt': 'seconds per frame instead of bpm × steps_per_beat; internal clock only',
    'channel': "channel the model plays on (with `parts`, the first part's)",
    'parts': "split each frame's notes by role, each part on its own channel. `mbc`: melody (the top note) on `channel`, bass (the lowest, when there are two or more) on `channel` + 1, chords (the rest) on `channel` + 2; `satb`: soprano (the top note), alto (the next below), tenor (the rest between), bass (the lowest) on `channel` to `channel` + 3, fewer notes filling from the top (S; S B; S A B). A note keeps its channel until it ends: [playing.md](playing.md#parts-on-their-own-channels)",
    'velocity': 'fixed, or louder the surer the model is of the note',
    'velocity_range': 'with `velocity: probability`, the velocities that probability 0..1 maps onto',
    'note_range': "notes outside are not played (Nottingham's notes span 31..93, JSB's 43..96)",
    'max_polyphony': 'at most this many notes at once: a guard against a stuck dense chord (Nottingham has up to 9 at once, mostly ≤ 5; JSB 4)',
    'max_note_frames': 'a note held this many frames is released (16 eighths = 2 bars of 4/4)',
    'status': 'one-line status in the terminal (tempo, clock, frame time, notes)',
    'record': 'record the session: [playing.md](playing.md#recording)',
    'cc': 'MIDI CC controls while playing',
}
CC_MEANINGS: dict[str, str] = {
    'channel': 'channel the controls are read on',
    'temperature': 'knob: 0..127 → 0.25..4 on a log scale, 64 ≈ 1',
    'density': 'knob: 0..127 → 1/8..8 on a log scale, 64 ≈ 1',
    'pause': 'button: each press (value rising to ≥ 64) pauses / resumes',
    'panic': 'button: value ≥ 64 silences every note at once',
    'mode': 'knob in three zones: 0–42 follow, 43–85 harmonize, 86–127 off',
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


def _is_number_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
        return True
    except ValueError:
        return False


def _show(value: Any, node: yaml.Node | None = None) -> str:
    """A value as the user wrote it, for error messages."""
    if isinstance(node, yaml.ScalarNode):
        if node.style in ("'", '"'):
            return f"the quoted text {node.value!r}"
        if node.tag.endswith((":bool", ":int", ":float")):
            return node.value
        if node.tag.endswith(":null"):
            return "null" if node.value else "nothing"
        return repr(node.value)
    if isinstance(node, yaml.MappingNode) or isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(x) for x in value) + "]"
    return str(value)


def _message(key: str, allowed: str, got: str, hint: str) -> str:
    return f"{key!r} must be {allowed}, got {got}" + (f" ({hint})" if hint else "")


def _unknown(key: Any, known: list[str], what: str = "a preset key") -> str:
    close = difflib.get_close_matches(str(key), known, n=1) if isinstance(key, str) else []
    suggestion = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{key!r} is not {what}{suggestion}; keys: {', '.join(known)}"


# --- where presets live

def _shipped_dirs() -> list[Path]:
    """Folders holding the shipped presets: the installed package, then a source checkout's presets/."""
    dirs = []
    try:
        dirs.append(Path(str(resources.files(SHIPPED_PACKAGE))))
    except (ModuleNotFoundError, TypeError):
        pass
    dirs.append(Path(__file__).resolve().parents[2] / "presets")
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def list_presets() -> list[str]:
    """Names of the shipped presets, e.g. ['default', 'jsb', 'sparse']."""
    return sorted({p.stem for d in _shipped_dirs() for p in d.glob("*.yaml")})


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or os.sep in spec or spec.endswith((".yaml", ".yml"))


def find_preset(name_or_path: str | os.PathLike | None) -> Path:
    """The file of a preset: None is the shipped default, a bare name ('jsb') a shipped preset,
    anything with a / or ending in .yaml a file."""
    spec = DEFAULT_PRESET if name_or_path is None else os.fspath(name_or_path)
    shipped = list_presets()
    if _looks_like_path(spec):
        path = Path(spec).expanduser()
        if not path.exists() and Path(spec).name == spec and Path(spec).stem in shipped:
            return find_preset(Path(spec).stem)  # 'jsb.yaml' with no such file here: the shipped one
        if path.is_dir():
            raise PresetError(f"{spec}: is a folder, not a preset file")
        if not path.is_file():
            raise PresetError(f"{spec}: no such preset file; shipped presets: {', '.join(shipped) or 'none'}")
        return path
    for folder in _shipped_dirs():
        if (folder / f"{spec}.yaml").is_file():
            return folder / f"{spec}.yaml"
    close = difflib.get_close_matches(spec, shipped, n=1)
    raise PresetError(
        f"no shipped preset named {spec!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
        + f"; shipped presets: {', '.join(shipped) or 'none'}; for a file of your own give its path, "
        f"e.g. ./{spec}.yaml")


# --- loading

def load_preset(name_or_path: str | os.PathLike | None = None) -> Settings:
    """Every setting: DEFAULTS overlaid with a preset file (see find_preset for how it is found).

    A relative `weights` path is looked up beside the preset file first (so a preset can travel with
    its weights), then as given (current folder, or a shipped name)."""
    path = find_preset(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PresetError(f"{path}: not a text file (UTF-8): {e.reason} at byte {e.start}") from None
    except OSError as e:
        raise PresetError(f"{path}: cannot read it: {e.strerror}") from None
    found = parse_preset(text, str(path))
    weights = found.get("weights")
    if weights and not Path(weights).is_absolute() and (path.parent / weights).is_file():
        found["weights"] = str(path.parent / weights)
    return _with(DEFAULTS, found)


def _with(settings: Settings, checked: dict[str, Any]) -> Settings:
    """``settings`` with the checked values put over it (cc key by key; the [lo, hi] lists as tuples)."""
    cc = checked.get("cc", {})
    return replace(settings, **{k: tuple(v) if isinstance(v, list) else v for k, v in checked.items() if k != "cc"},
                   cc=replace(settings.cc, **cc))


def parse_preset(text: str, filename: str = "<preset>") -> dict[str, Any]:
    """The settings a preset text gives (only the keys it has), checked; raises PresetError."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            what = e.problem or e.context or "cannot read it"
            if e.context and e.problem:  # e.g. an unclosed [ shows up where the next key is
                what += f" ({e.context}" + (f" that starts on line {e.context_mark.line + 1}"
                                            if e.context_mark and e.context_mark.line != mark.line else "") + ")"
            if "another document" in what:
                what = "a preset is a single YAML document, but a second one starts here"
            if "'\\t'" in what:
                what += "; YAML indents with spaces, not tabs"
            raise PresetError(f"{filename}, line {mark.line + 1}: not valid YAML: {what}") from None
        except yaml.YAMLError as e:
            raise PresetError(f"{filename}: not valid YAML: {e}") from None
        if root is None:  # an empty (or all-comment) file: every setting at its default
            return {}
        if not isinstance(root, yaml.MappingNode):
            kind = "a list" if isinstance(root, yaml.SequenceNode) else f"the single value {_show(None, root)}"
            raise PresetError(f"{filename}, line {root.start_mark.line + 1}: a preset must be a mapping of "
                              f"'key: value' lines, got {kind}")
        lines: dict[str, int] = {}
        found = _read_mapping(loader, root, SPEC, filename, lines, "a preset key")
    finally:
        loader.dispose()
    problem = _combination_problem(_with(DEFAULTS, found), explicit=set(found))
    if problem:
        keys, text_ = problem
        line = min(lines[k] for k in keys if k in lines)
        raise PresetError(f"{filename}, line {line}: {text_}")
    return found


def _read_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, spec: dict, filename: str,
                  lines: dict[str, int], what: str, prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        where = f"{filename}, line {line}"
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "(a list or mapping)"
        if key not in spec:
            raise PresetError(f"{where}: {_unknown(prefix + str(key) if prefix else key, [prefix + k for k in spec], what)}")
        if key in seen:
            raise PresetError(f"{where}: {prefix + key!r} is given twice (first on line {seen[key]})")
        seen[key] = line
        lines[prefix + key] = line
        allowed, check, _ = spec[key]
        value_line = value_node.start_mark.line + 1
        if check is None:  # the nested cc mapping
            if not isinstance(value_node, yaml.MappingNode):
                value = loader.construct_object(value_node, deep=True)
                raise PresetError(f"{filename}, line {value_line}: {_message(key, allowed, _show(value, value_node), '')}")
            found[key] = _read_mapping(loader, value_node, CC_SPEC, filename, lines, "a cc key", key + ".")
            continue
        value = loader.construct_object(value_node, deep=True)
        plain = value_node.value if isinstance(value_node, yaml.ScalarNode) and value_node.style is None else None
        try:
            found[key] = check(value, plain)
        except _Bad as bad:
            raise PresetError(f"{filename}, line {value_line}: "
                              f"{_message(prefix + key, allowed, _show(value, value_node), bad.hint)}") from None
    return found


def _combination_problem(settings: Settings, explicit: set[str]) -> tuple[list[str], str] | None:
    """Settings that are fine alone but not together: (the keys involved, what is wrong) or None."""
    if settings.dt is not None and explicit & {"bpm", "steps_per_beat"} and "dt" in explicit:
        both = [k for k in ("bpm", "steps_per_beat") if k in explicit]
        return (["dt", *both], f"give either 'dt' or {' and '.join(repr(k) for k in both)}, not both: "
                f"dt (seconds per frame) sets the frame period and wins over bpm/steps_per_beat")
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
            raise PresetError(f"command line: {_unknown(key, list(SPEC), 'a setting')}")
        allowed, check, _ = SPEC[key]
        if key == "cc":
            if not isinstance(value, dict):
                raise PresetError(f"command line: {_message('cc', allowed, _show(value), '')}")
            checked["cc"] = {}
            for sub, sub_value in value.items():
                if sub not in CC_SPEC:
                    raise PresetError(f"command line: {_unknown('cc.' + str(sub), ['cc.' + k for k in CC_SPEC], 'a cc key')}")
                if sub_value is not None:
                    sub_allowed, sub_check, _ = CC_SPEC[sub]
                    try:
                        checked["cc"][sub] = sub_check(sub_value, None)
                    except _Bad as bad:
                        raise PresetError(f"command line: {_message('cc.' + sub, sub_allowed, _show(sub_value), bad.hint)}") from None
            continue
        try:
            checked[key] = check(value, None)
        except _Bad as bad:
            raise PresetError(f"command line: {flag(key)} must be {allowed}, got {_show(value)}"
                              + (f" ({bad.hint})" if bad.hint else "")) from None
    if "dt" in given and given.keys() & {"bpm", "steps_per_beat"}:
        raise PresetError("command line: give --dt or --bpm/--steps-per-beat, not both")
    if given.keys() & {"bpm", "steps_per_beat"} and "dt" not in given:
        checked["dt"] = None
    settings = _with(preset, checked)
    problem = _combination_problem(settings, explicit=set())
    if problem:
        keys, text = problem
        raise PresetError(f"settings ({', '.join(flag(k) for k in keys)}): {text}")
    return settings


if __name__ == "__main__":
    print(reference_markdown(), end="")

"""Presets: every `live-rnnrbm play` setting in one YAML file, checked with the file's line numbers.

    >>> from live_rnnrbm.presets import load_preset, merge
    >>> settings = load_preset("jsb")                    # shipped preset by name ...
    >>> settings = load_preset("my/session.yaml")        # ... or a file of your own
    >>> settings = merge(settings, {"bpm": 96, "port": None})   # command-line flags win; None = not given
    >>> settings["bpm"], settings["dt"]
    (96.0, None)

A preset is a flat mapping of the keys in DEFAULTS (plus the nested `cc` mapping); keys a file leaves
out take their value from DEFAULTS. Any wrong key, type or value raises PresetError naming the file,
the line, the key and what is allowed. PyYAML's safe_load forgets where things were, so the file is
composed into nodes (which keep their start marks) and each value is constructed and checked on its own.
"""
from __future__ import annotations

import copy
import difflib
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

SHIPPED_PACKAGE = "live_rnnrbm._presets"
DEFAULT_PRESET = "default"

# The built-in value of every setting: the shipped default preset spells out exactly these.
DEFAULTS: dict[str, Any] = {
    # the model
    "weights": "nottingham",
    "k": None,
    "seed": None,
    "temperature": 1.0,
    "density": 1.0,
    "chains": 16,
    # MIDI ports and listening
    "port": "live-rnnrbm",
    "backend": None,
    "input": None,
    "input_channel": None,
    "mode": "follow",
    "thru": False,
    # time
    "clock": "internal",
    "clock_out": False,
    "bpm": 120.0,
    "steps_per_beat": 2,
    "dt": None,
    # notes out
    "channel": 1,
    "velocity": 80,
    "velocity_range": [50, 110],
    "note_range": [31, 93],
    "max_polyphony": 6,
    "max_note_frames": 16,
    # while playing
    "status": True,
    "record": None,
    "cc": {"channel": None, "temperature": 21, "density": 22, "pause": 23, "panic": 24, "mode": 25},
}
CC_KEYS = ("channel", "temperature", "density", "pause", "panic", "mode")
MODES = ("follow", "harmonize", "off")
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
    return check


def _integer(lo: int, hi: int | None = None) -> Check:
    def check(value: Any, plain: str | None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad("write the number without quotes" if _is_number_text(value) else "")
        if value < lo or (hi is not None and value > hi):
            raise _Bad()
        return value
    return check


def _choice(options: tuple[str, ...]) -> Check:
    def check(value: Any, plain: str | None) -> str:
        text = plain if plain is not None else value  # `mode: off` is the boolean False to YAML 1.1
        if isinstance(text, str) and text.lower() in options:
            return text.lower()
        raise _Bad()
    return check


def _text(value: Any, plain: str | None) -> str:
    if isinstance(value, bool):
        word = plain or str(value).lower()
        raise _Bad(f"YAML reads {word} as a boolean; if it is a name, quote it: '{word}'")
    if plain is not None and isinstance(value, (int, float)):
        return plain  # port: 128 is the name "128"
    if not isinstance(value, str) or not value.strip():
        raise _Bad()
    return value


def _boolean(value: Any, plain: str | None) -> bool:
    if isinstance(value, bool):
        if plain is not None and plain.lower() in _YAML_BOOLEAN_WORDS:
            raise _Bad("write true or false: PyYAML reads yes/no/on/off as booleans but YAML 1.2 and "
                       "most other tools read them as text, so presets take only true/false")
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"} | _YAML_BOOLEAN_WORDS:
        raise _Bad("that is quoted text, not a boolean: write true or false without quotes")
    raise _Bad()


def _velocity(value: Any, plain: str | None) -> int | str:
    if isinstance(value, str) and value.strip().lower() == "probability":
        return "probability"
    return _integer(1, 127)(value, plain)


def _pair(lo: int, hi: int) -> Check:
    def check(value: Any, plain: str | None) -> list[int]:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise _Bad()
        a, b = (_integer(lo, hi)(x, None) for x in value)
        if a > b:
            raise _Bad("the first number must not be above the second")
        return [a, b]
    return check


def _or_null(check: Check) -> Check:
    def nullable(value: Any, plain: str | None) -> Any:
        return None if value is None else check(value, plain)
    return nullable


def _not_null(check: Check) -> Check:
    def required(value: Any, plain: str | None) -> Any:
        if value is None:
            raise _Bad()
        return check(value, plain)
    return required


def _cc_number(value: Any, plain: str | None) -> int | None:
    if value is None:
        return None
    number = _integer(0, 127)(value, plain)
    if number in RESERVED_CCS:
        raise _Bad(f"CC {number} is {RESERVED_CCS[number]}")
    return number


# key -> (what is allowed, in words; the check). The words are what error messages and the README say.
SPEC: dict[str, tuple[str, Check]] = {
    "weights": ("a shipped weights name (nottingham, jsb) or a path to a .npz weights file", _not_null(_text)),
    "port": ("the name (or part of the name) of a MIDI output port", _not_null(_text)),
    "backend": ("null or one of " + ", ".join(BACKENDS), _or_null(_choice(BACKENDS))),
    "input": ("null (no input) or the name (or part of the name) of a MIDI input port", _or_null(_text)),
    "input_channel": ("null (every channel) or a MIDI channel from 1 to 16", _or_null(_integer(1, 16))),
    "mode": ("one of " + ", ".join(MODES), _not_null(_choice(MODES))),
    "thru": ("true or false", _boolean),
    "clock": ("internal, or the name (or part of the name) of a MIDI input sending clock", _not_null(_text)),
    "clock_out": ("true or false", _boolean),
    "bpm": ("a number from 20 to 300", _not_null(_number(20, 300))),
    "steps_per_beat": ("an integer from 1 to 8", _not_null(_integer(1, 8))),
    "dt": ("null or a number of seconds above 0", _or_null(_number(0, above=True))),
    "channel": ("a MIDI channel from 1 to 16", _not_null(_integer(1, 16))),
    "velocity": ("an integer from 1 to 127, or probability", _not_null(_velocity)),
    "velocity_range": ("a list [lo, hi] of integers from 1 to 127 with lo <= hi", _not_null(_pair(1, 127))),
    "temperature": ("a number above 0", _not_null(_number(0, above=True))),
    "density": ("a number above 0 (1 = as the model learned)", _not_null(_number(0, above=True))),
    "k": ("null (the weights' own generation_k, else 25) or an integer from 1 up (Gibbs steps per frame)",
          _or_null(_integer(1))),
    "chains": ("an integer from 1 to 256 (Gibbs chains per frame while listening)", _not_null(_integer(1, 256))),
    "note_range": ("a list [lo, hi] of MIDI notes from 0 to 127 with lo <= hi", _not_null(_pair(0, 127))),
    "max_polyphony": ("an integer from 1 up", _not_null(_integer(1))),
    "max_note_frames": ("an integer from 1 up", _not_null(_integer(1))),
    "seed": ("null (a fresh seed each run) or an integer from 0 up", _or_null(_integer(0))),
    "record": ("null or the path of a .mid file to write", _or_null(_text)),
    "status": ("true or false", _boolean),
    "cc": ("a mapping with keys " + ", ".join(CC_KEYS), None),  # checked key by key, see CC_SPEC
}
CC_SPEC: dict[str, tuple[str, Check]] = {
    "channel": ("null (any channel) or a MIDI channel from 1 to 16", _or_null(_integer(1, 16))),
    **{name: ("null (no control) or a CC number from 0 to 119 other than 64", _cc_number)
       for name in CC_KEYS[1:]},
}
assert set(SPEC) == set(DEFAULTS) and list(CC_SPEC) == list(DEFAULTS["cc"])
SPEC = {key: SPEC[key] for key in DEFAULTS}  # error messages list the keys in the documented order


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
    dirs.append(Path(__file__).resolve().parent.parent / "presets")
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

def load_preset(name_or_path: str | os.PathLike | None = None) -> dict[str, Any]:
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
    settings = copy.deepcopy(DEFAULTS)
    cc = found.pop("cc", {})
    settings.update(found)
    settings["cc"].update(cc)
    return settings


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
    problem = _combination_problem({**DEFAULTS, **found}, explicit=set(found))
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
        allowed, check = spec[key]
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


def _combination_problem(settings: dict[str, Any], explicit: set[str]) -> tuple[list[str], str] | None:
    """Settings that are fine alone but not together: (the keys involved, what is wrong) or None."""
    if settings.get("dt") is not None and explicit & {"bpm", "steps_per_beat"} and "dt" in explicit:
        both = [k for k in ("bpm", "steps_per_beat") if k in explicit]
        return (["dt", *both], f"give either 'dt' or {' and '.join(repr(k) for k in both)}, not both: "
                f"dt (seconds per frame) sets the frame period and wins over bpm/steps_per_beat")
    if settings.get("clock", "internal") != "internal":
        if settings.get("dt") is not None:
            return (["dt", "clock"], "'dt' only applies to the internal clock: following an external clock "
                    "(clock: " + repr(settings["clock"]) + ") a frame lasts 24/steps_per_beat clock pulses; "
                    "set dt to null")
        if 24 % settings.get("steps_per_beat", 1):
            return (["steps_per_beat", "clock"], "following an external clock, 'steps_per_beat' must divide "
                    f"the 24 pulses of a beat (1, 2, 3, 4, 6 or 8), got {settings['steps_per_beat']}")
    return None


# --- command-line overrides

def flag(key: str) -> str:
    """The command-line flag of a setting: 'steps_per_beat' -> '--steps-per-beat'."""
    return "--" + key.replace("_", "-")


def merge(preset: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The preset with every override that is not None put over it (command-line flags win).

    `cc` may be overridden key by key ({"cc": {"temperature": 30}}). An explicit --bpm or
    --steps-per-beat clears a preset's dt (the flag you typed wins); --dt together with either is an
    error. Override values are checked like a file's, errors naming the flag; unknown keys are errors."""
    settings = copy.deepcopy(DEFAULTS)
    for key, value in preset.items():
        settings[key] = copy.deepcopy(value) if key != "cc" else {**settings["cc"], **value}
    given = {k: v for k, v in overrides.items() if v is not None}
    for key, value in given.items():
        if key not in SPEC:
            raise PresetError(f"command line: {_unknown(key, list(SPEC), 'a setting')}")
        allowed, check = SPEC[key]
        if key == "cc":
            if not isinstance(value, dict):
                raise PresetError(f"command line: {_message('cc', allowed, _show(value), '')}")
            for sub, sub_value in value.items():
                if sub not in CC_SPEC:
                    raise PresetError(f"command line: {_unknown('cc.' + str(sub), ['cc.' + k for k in CC_SPEC], 'a cc key')}")
                if sub_value is not None:
                    sub_allowed, sub_check = CC_SPEC[sub]
                    try:
                        settings["cc"][sub] = sub_check(sub_value, None)
                    except _Bad as bad:
                        raise PresetError(f"command line: {_message('cc.' + sub, sub_allowed, _show(sub_value), bad.hint)}") from None
            continue
        try:
            settings[key] = check(value, None)
        except _Bad as bad:
            raise PresetError(f"command line: {flag(key)} must be {allowed}, got {_show(value)}"
                              + (f" ({bad.hint})" if bad.hint else "")) from None
    if "dt" in given and given.keys() & {"bpm", "steps_per_beat"}:
        raise PresetError("command line: give --dt or --bpm/--steps-per-beat, not both")
    if given.keys() & {"bpm", "steps_per_beat"} and "dt" not in given:
        settings["dt"] = None
    problem = _combination_problem(settings, explicit=set())
    if problem:
        keys, text = problem
        raise PresetError(f"settings ({', '.join(flag(k) for k in keys)}): {text}")
    return settings


# --- derived values the play engine and the recorder share

def frame_period(settings: dict[str, Any]) -> float:
    """Seconds per frame on the internal clock: dt when given, else 60 / (bpm * steps_per_beat)."""
    if settings.get("dt") is not None:
        return float(settings["dt"])
    return 60.0 / (float(settings["bpm"]) * int(settings["steps_per_beat"]))


def effective_bpm(settings: dict[str, Any]) -> float:
    """The tempo the frames imply (for clock out and recordings): with dt, a frame is 1/steps_per_beat
    of a beat, so bpm = 60 / (dt * steps_per_beat)."""
    return 60.0 / (frame_period(settings) * int(settings["steps_per_beat"]))

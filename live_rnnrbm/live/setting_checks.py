"""The checks of a setting's value, wherever it was written (a preset file or a flag), and the
words of the errors they lead to. Each check takes (value, plain) and returns the value to use or
raises Bad with a hint; the caller names where and which key. ``plain`` is the raw text of an
unquoted YAML scalar (None for quoted text, lists, mappings, and values from the command line):
YAML 1.1 turns some plain words into booleans and `1e-3` into text, and the raw text lets the
checks see what was actually written. Each check also says how its `play` flag parses
(``check.flag``: argparse keywords)."""
from __future__ import annotations

import argparse
import difflib
import math
from typing import Any, Callable

import yaml

RESERVED_CCS = {64: "the sustain pedal (the player's held notes count it)"} | {
    n: "a channel-mode message (120-127), not a control" for n in range(120, 128)}

YAML_BOOLEAN_WORDS = {"yes", "no", "on", "off"}


class Bad(Exception):
    """A value outside what its key allows; the caller adds where and which key."""

    def __init__(self, hint: str = ""):
        super().__init__(hint)
        self.hint = hint


Check = Callable[[Any, "str | None"], Any]


def parsed_as(check: Check, **argparse_kwargs: Any) -> Check:
    """Tag a check with how its command-line flag is parsed (argparse keywords)."""
    check.flag = argparse_kwargs  # type: ignore[attr-defined]
    return check


def number(lo: float, hi: float | None = None, above: bool = False) -> Check:
    def check(value: Any, plain: str | None) -> float:
        if isinstance(value, str) and plain is not None:
            try:
                value = float(plain)  # YAML 1.1 reads 1e-3 (no dot) as text; it was written as a number
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Bad("write the number without quotes" if is_number_text(value) else "")
        if not math.isfinite(value) or (value <= lo if above else value < lo) or (hi is not None and value > hi):
            raise Bad()
        return float(value)
    return parsed_as(check, type=float)


def integer(lo: int, hi: int | None = None) -> Check:
    def check(value: Any, plain: str | None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Bad("write the number without quotes" if is_number_text(value) else "")
        if value < lo or (hi is not None and value > hi):
            raise Bad()
        return value
    return parsed_as(check, type=int)


def choice(options: tuple[str, ...]) -> Check:
    def check(value: Any, plain: str | None) -> str:
        text = plain if plain is not None else value  # `mode: off` is the boolean False to YAML 1.1
        if isinstance(text, str) and text.lower() in options:
            return text.lower()
        raise Bad()
    return parsed_as(check, choices=options)


def text(value: Any, plain: str | None) -> str:
    if isinstance(value, bool):
        word = plain or str(value).lower()
        raise Bad(f"YAML reads {word} as a boolean; if it is a name, quote it: '{word}'")
    if plain is not None and isinstance(value, (int, float)):
        return plain  # port: 128 is the name "128"
    if not isinstance(value, str) or not value.strip():
        raise Bad()
    return value


parsed_as(text, type=str)


def boolean(value: Any, plain: str | None) -> bool:
    if isinstance(value, bool):
        if plain is not None and plain.lower() in YAML_BOOLEAN_WORDS:
            raise Bad("write true or false: PyYAML reads yes/no/on/off as booleans but YAML 1.2 and "
                       "most other tools read them as text, so presets take only true/false")
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"} | YAML_BOOLEAN_WORDS:
        raise Bad("that is quoted text, not a boolean: write true or false without quotes")
    raise Bad()


parsed_as(boolean, action=argparse.BooleanOptionalAction)


def velocity(value: Any, plain: str | None) -> int | str:
    if isinstance(value, str) and value.strip().lower() == "probability":
        return "probability"
    return integer(1, 127)(value, plain)


def velocity_arg(text: str) -> int | str:
    return int(text) if text.strip().isdigit() else text


parsed_as(velocity, type=velocity_arg)


def pair(lo: int, hi: int) -> Check:
    def check(value: Any, plain: str | None) -> list[int]:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise Bad()
        a, b = (integer(lo, hi)(x, None) for x in value)
        if a > b:
            raise Bad("the first number must not be above the second")
        return [a, b]
    return parsed_as(check, type=int, nargs=2, metavar=("LO", "HI"))


def musical_key(value: Any, plain: str | None) -> str:
    """A key (``data.keys.parse_key``), as its canonical name: "bb min" -> "Bb minor"."""
    # here, not at the top: data.keys brings NumPy, mido and the model, which checking a preset needs not
    from ..data.keys import key_name as name, parse_key
    try:
        return name(*parse_key(text(value, plain)))
    except ValueError:
        raise Bad() from None


parsed_as(musical_key, type=str)


def names(value: Any, plain: str | None) -> list[str]:
    """A list of one or more names (preset names or paths)."""
    if not isinstance(value, (list, tuple)) or not value:
        raise Bad()
    return [text(x, None) for x in value]


parsed_as(names, type=str, nargs="+", metavar="PRESET")


def or_null(check: Check) -> Check:
    def nullable(value: Any, plain: str | None) -> Any:
        return None if value is None else check(value, plain)
    return parsed_as(nullable, **check.flag)


def not_null(check: Check) -> Check:
    def required(value: Any, plain: str | None) -> Any:
        if value is None:
            raise Bad()
        return check(value, plain)
    return parsed_as(required, **check.flag)


def cc_number(value: Any, plain: str | None) -> int | None:
    if value is None:
        return None
    number = integer(0, 127)(value, plain)
    if number in RESERVED_CCS:
        raise Bad(f"CC {number} is {RESERVED_CCS[number]}")
    return number


def is_number_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
        return True
    except ValueError:
        return False


def show(value: Any, node: yaml.Node | None = None) -> str:
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
        return "[" + ", ".join(show(x) for x in value) + "]"
    return str(value)


def message(key: str, allowed: str, got: str, hint: str) -> str:
    return f"{key!r} must be {allowed}, got {got}" + (f" ({hint})" if hint else "")


def unknown(key: Any, known: list[str], what: str = "a preset key") -> str:
    close = difflib.get_close_matches(str(key), known, n=1) if isinstance(key, str) else []
    suggestion = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{key!r} is not {what}{suggestion}; keys: {', '.join(known)}"

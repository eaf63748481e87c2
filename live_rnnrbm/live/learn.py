"""MIDI learn: the next CC moved on the input becomes the control the terminal asks for, one control
after another; then the map can be saved to a preset file of the user's (a shipped preset is never
written: its copy goes to the user's preset folder).

    learner = Learner(settings.cc)
    learner.prompt()               # "learn: move the control for temperature ..."
    learner.take(70)               # -> "CC 70 is temperature"; the next control is asked for
    path = save_cc("default", learner.cc)   # ~/.config/live-rnnrbm/presets/default.yaml

Nothing here touches the tick: Controls calls it from the MIDI input's thread and the keys thread.
"""
from __future__ import annotations

import os
import re
from dataclasses import fields, replace
from pathlib import Path

from .presets import _shipped_dirs, find_preset, parse_preset
from .setting_checks import RESERVED_CCS
from .settings import CCMap

LEARNABLE = tuple(f.name for f in fields(CCMap) if f.name != "channel")


class Learner:
    """Which control is asked for next, and the CC map learnt so far (``cc``)."""

    def __init__(self, cc: CCMap):
        self.cc = cc
        self.position = 0
        self.learnt: list[str] = []
        self._last: int | None = None    # a knob sends many values, a button two: one number, one control

    @property
    def current(self) -> str | None:
        return LEARNABLE[self.position] if self.position < len(LEARNABLE) else None

    @property
    def done(self) -> bool:
        return self.current is None

    def prompt(self) -> str:
        if self.done:
            return "learn: done"
        now = getattr(self.cc, self.current)
        now_text = f"CC {now}" if now is not None else "none"
        return (f"learn: move the knob or button for {self.current} (now {now_text}; "
                f"l: keep it and go on, L: stop learning)")

    def take(self, number: int) -> str | None:
        """A CC moved: it becomes the current control (taken from any other that had it); the
        next control is asked for. None when it is ignored (the number just learnt, a reserved one)."""
        if self.done or number == self._last or number in RESERVED_CCS:
            return None
        name = self.current
        others = {f: None for f in LEARNABLE if f != name and getattr(self.cc, f) == number}
        self.cc = replace(self.cc, **others, **{name: number})
        self.learnt.append(name)
        self._last = number
        self.position += 1
        return f"learn: CC {number} is {name}" + (f" (no longer {', '.join(others)})" if others else "")

    def skip(self) -> None:
        self.position += 1
        self._last = None


def user_presets() -> Path:
    """The user's preset folder: $XDG_CONFIG_HOME/live-rnnrbm/presets (~/.config/... without it)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "live-rnnrbm" / "presets"


def cc_block(cc: CCMap) -> str:
    """The preset text of a CC map: a `cc:` mapping with every key."""
    value = lambda v: "null" if v is None else str(v)   # noqa: E731
    return "cc:\n" + "".join(f"  {f.name}: {value(getattr(cc, f.name))}\n" for f in fields(CCMap))


def with_cc(text: str, cc: CCMap) -> str:
    """A preset's text with its top-level `cc:` mapping replaced by ``cc`` (or added at the end);
    everything else, comments included, as it was."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(r"cc\s*:", line)), None)
    if start is None:
        return text + ("" if not text or text.endswith("\n") else "\n") + cc_block(cc)
    end = start + 1
    while end < len(lines) and (lines[end][:1] in (" ", "\t") or not lines[end].strip()):
        end += 1
    return "".join(lines[:start]) + cc_block(cc) + "".join(lines[end:])


def save_target(preset: str | None) -> Path:
    """Where the learnt map of ``preset`` is saved: the file itself when it is the user's, else
    (a shipped preset) a copy of the same name in the user's preset folder."""
    path = find_preset(preset).resolve()
    shipped = any(path.parent == d.resolve() for d in _shipped_dirs())
    return user_presets() / path.name if shipped else path


def save_cc(preset: str | None, cc: CCMap) -> Path:
    """Write ``cc`` into the user's preset (see save_target), checked before it is written, through a
    temporary file renamed over the target; returns the path."""
    source = find_preset(preset)
    target = save_target(preset)
    text = with_cc(source.read_text(encoding="utf-8") if not target.exists() else target.read_text(encoding="utf-8"),
                   cc)
    parse_preset(text, str(target))          # a PresetError here: nothing is written
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target

"""Switching presets while playing: the presets of the `switch` setting, each loaded with its
weights and checked when `play` starts (a mistake stops it there, not at the switch), and the
control thread that makes a preset's sound and hands it to the engine.

    switch = load_switch(settings, "default", model)    # raises PresetError; at start
    switcher = Switcher(engine, switch, stop_event)     # its own thread
    switcher.step(+1); switcher.step(-1); switcher.select("jsb")   # from a CC, a key or OSC

A switch never touches the tick: the control thread builds the new sound (the sampler on the
preset's weights, warmed; u_0 for new weights) and ``Engine.switch_to`` leaves it for the worker,
which takes it before it computes the next frame. Only the sound keys switch (``SOUND_KEYS``); the
ports, the clock, the tempo, the swing, the seed and the controls stay as `play` started.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .settings import PresetError, Settings, with_weights_own

if TYPE_CHECKING:
    from ..model import RnnRbm
    from .engine import Engine

# the keys a switch takes from the new preset; every other key stays as `play` started
SOUND_KEYS = ("weights", "k", "temperature", "density", "register", "chains", "mode", "channel", "parts", "velocity",
              "velocity_range", "note_range", "max_polyphony", "max_note_frames")


@dataclass(frozen=True)
class Entry:
    name: str              # as the switch list spells it
    settings: Settings     # its sound keys are the ones that switch; k resolved
    model: RnnRbm


@dataclass(frozen=True)
class SwitchList:
    entries: tuple[Entry, ...]
    index: int             # the preset playing at start; -1 when it is not in the list

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]


def load_switch(settings: Settings, preset: str | None, model: RnnRbm,
                warn: Callable[[str], None] | None = None) -> SwitchList | None:
    """The presets of ``settings.switch`` (None: the shipped ones), each with its weights loaded
    (presets with the same weights share one model, the playing one included, so switching
    between them keeps the RNN state). The preset `play` started with (``preset``) plays as it
    started, flags included. Raises PresetError naming the preset when one cannot be loaded or
    its weights play other notes than ``model``'s; the shipped presets, when the list is not given,
    are left out instead (weights of your own may play other notes). None when no preset is left."""
    from ..data.weights import WeightsError, load_model, resolve_weights
    from .presets import find_preset, list_presets, load_preset

    def key(weights: str) -> str:
        path = resolve_weights(weights)
        return str(path.resolve()) if path is not None and path.exists() else weights

    names = list(settings.switch) if settings.switch is not None else list_presets()
    started = find_preset(preset).resolve()
    models = {key(settings.weights): model}
    entries, index = [], -1
    for name in names:
        try:
            path = find_preset(name)
            found = load_preset(path)
        except PresetError as e:
            raise PresetError(f"switch: {e}") from None
        if index < 0 and path.resolve() == started:
            found, index = settings, len(entries)
        m = models.get(key(found.weights))
        if m is None:
            spec = found.weights
            if spec in ("nottingham", "jsb") and not resolve_weights(spec).exists():
                spec = None   # not in this installation: an untrained model, as `play` itself falls back to
            try:
                m = models[key(found.weights)] = load_model(spec, settings.seed, warn=warn)
            except WeightsError as e:
                raise PresetError(f"switch: preset {name!r}: {e}") from None
        if (m.n_visible, m.lowest_note) != (model.n_visible, model.lowest_note):
            if settings.switch is None:
                continue
            raise PresetError(f"switch: preset {name!r} plays weights {found.weights!r} with {m.n_visible} notes "
                              f"from MIDI note {m.lowest_note}, the preset playing {model.n_visible} notes from "
                              f"{model.lowest_note}: the presets of 'switch' need weights with the same notes")
        found = with_weights_own(found, m)
        entries.append(Entry(name, found, m))
    return SwitchList(tuple(entries), index) if entries else None


def display_name(preset: str | None) -> str:
    """A preset as the status shows it: its name, or a file's stem."""
    return Path(preset).stem if preset else "default"


class Switcher:
    """Steps through a SwitchList on its own thread: ``step`` and ``select`` only say which preset
    is wanted (any thread, never waiting); the thread makes its sound and hands it to the engine.
    Requests that come faster than that are merged: the last one wins."""

    def __init__(self, engine: Engine, switch: SwitchList, stop: threading.Event,
                 on_error: Callable[[str], None] | None = None):
        self.engine = engine
        self.switch = switch
        self.index = switch.index          # the preset asked for last
        self.stop = stop
        self.on_error = on_error
        self._wanted: int | None = None
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-rnnrbm switch", daemon=True)
        self._thread.start()

    def step(self, by: int) -> str:
        """The next (by=1) or previous (by=-1) preset of the list, round; returns its name."""
        n = len(self.switch.entries)
        i = (0 if by > 0 else n - 1) if self.index < 0 else (self.index + by) % n
        return self._want(i)

    def select(self, name: str) -> str | None:
        """The preset of the list named ``name`` (as the list spells it, or its file's stem);
        None when there is none."""
        names = self.switch.names
        for i, candidate in enumerate(names):
            if name in (candidate, display_name(candidate)):
                return self._want(i)
        return None

    def _want(self, i: int) -> str:
        self.index = i
        self._wanted = i
        self._wake.set()
        return display_name(self.switch.entries[i].name)

    def _run(self) -> None:
        while not self.stop.is_set():
            if not self._wake.wait(0.1):
                continue
            self._wake.clear()
            i = self._wanted
            entry = self.switch.entries[i]
            try:
                sound = self.engine.sound(entry.model, entry.settings, display_name(entry.name))
                sound.sampler.warm()      # compiled already: this only runs the kernels once
            except Exception as e:  # noqa: BLE001 — a preset that cannot play must not end the music
                if self.on_error is not None:
                    self.on_error(f"cannot switch to {entry.name}: {e}")
                continue
            self.engine.switch_to(sound)

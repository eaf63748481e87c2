"""Controls while playing: MIDI CCs (mapped in the preset), terminal keys, and a status line.

    controls = Controls(engine, settings.cc, stop_event)
    listener.on_cc = controls.on_cc          # CC temperature/density/pause/panic/mode/presets/parts/swing
    controls.switcher = Switcher(...)        # next/previous preset (switch.py)
    controls.clock = clock                   # its swing (InternalClock or ClockFollower)
    controls.start_keys()                    # t/T d/D space p m [ ] s w/W l q in the terminal
    controls.start_learning()                # MIDI learn (learn.py): the next CC moved is the control asked for
    controls.start_status(tempo, label)      # one line on stderr, redrawn twice a second
    OscControl(controls, engine, host, port)  # OSC calls the same methods (osc.py)

A control only sets a value the worker reads when it computes the next frame (and pokes it), so
the tick is never touched; panic asks the engine to silence at once. The status line is written
from its own low-rate thread with one write() per redraw.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
from dataclasses import fields
from typing import Callable

from .settings import MODES, PARTS, CCMap


T_MIN, T_MAX = 0.25, 4.0     # temperature knob: 0..127 → 0.25..4 on a log scale (64 ≈ 1)
D_MIN, D_MAX = 0.125, 8.0    # density knob: 0..127 → 1/8..8 on a log scale (64 ≈ 1)
SWING_MIN, SWING_MAX = 50.0, 75.0
SWING_STEP = 25.0 / 6        # keys w/W: 50, 54.2, 58.3, 62.5, 66.7 (triplets), 70.8, 75
BUTTONS = ("pause", "next_preset", "previous_preset", "parts")   # act on the press (value rising to >= 64)


_told: queue.SimpleQueue = queue.SimpleQueue()
_teller: list[threading.Thread] = []


def tell(text: str) -> None:
    """A line for the player in the terminal (the prompts of MIDI learn), over the status line;
    written by a thread of its own, so that the MIDI thread that calls this never waits on a terminal."""
    _told.put(text)
    if not _teller:
        _teller.append(threading.Thread(target=_tell_lines, name="live-rnnrbm tell", daemon=True))
        _teller[0].start()


def _tell_lines() -> None:
    while True:
        text = _told.get()
        sys.stderr.write(f"\r\x1b[Klive-rnnrbm: {text}\n" if sys.stderr.isatty() else f"live-rnnrbm: {text}\n")
        sys.stderr.flush()


def knob(value: int, lo: float, hi: float) -> float:
    """A CC value 0..127 on a log scale from lo to hi; 64 is the geometric middle."""
    return lo * (hi / lo) ** (min(max(value, 0), 127) / 128.0)


class Controls:
    def __init__(self, engine, cc: CCMap, stop: threading.Event):
        self.engine = engine
        self.channel = cc.channel
        self.cc = cc
        self.stop = stop
        self.preset: str | None = None   # the preset playing, where MIDI learn saves to (None: default)
        self.learner = None              # learn.Learner while learning
        self.asking_save = False         # after learning: the next key answers "save?"
        self._down = dict.fromkeys(BUTTONS, False)
        self.switcher = None      # switch.Switcher: next/previous preset (none: the controls do nothing)
        self.clock = None         # the clock whose swing the swing control sets (set_swing)
        self._map(cc)
        self.events: list[str] = []   # the last control applied (for the status line)

    # --- values ----------------------------------------------------------------
    def set_temperature(self, t: float) -> None:
        self.engine.temperature = min(max(t, T_MIN), T_MAX)
        self._note(f"temperature {self.engine.temperature:.2f}")

    def set_density(self, d: float) -> None:
        self.engine.density = min(max(d, D_MIN), D_MAX)
        self._note(f"density {self.engine.density:.2f}")

    def toggle_pause(self) -> None:
        self.set_paused(not self.engine.paused)

    def set_paused(self, paused: bool) -> None:
        self.engine.paused = paused
        self._note("paused" if paused else "playing")

    def set_mode(self, mode: str) -> None:
        self.engine.mode = mode
        self._note(f"mode {mode}")

    def panic(self) -> None:
        self.engine.panic()
        self._note("panic: all notes off")

    def step_preset(self, by: int) -> None:
        """The next (+1) or previous (-1) preset of `switch`, from the next frame."""
        if self.switcher is not None:
            self._note(f"preset {self.switcher.step(by)}")

    def select_preset(self, name: str) -> bool:
        """The preset of `switch` called ``name``; False when the list has none."""
        chosen = self.switcher.select(name) if self.switcher is not None else None
        if chosen is not None:
            self._note(f"preset {chosen}")
        return chosen is not None

    def set_parts(self, parts: str | None) -> bool:
        """Split the notes into parts (mbc, satb) or not (None), from the next frame; a sounding note
        keeps its channel until it ends. False when the parts would pass channel 16."""
        if parts is not None and self.engine.first_channel + len(PARTS[parts]) > 16:
            self._note(f"parts {parts}: not from channel {self.engine.first_channel + 1}")
            return False
        self.engine.parts = parts
        self._note(f"parts {parts or 'off'}")
        return True

    def toggle_parts(self) -> None:
        """Parts off, or on: the preset's own `parts`, else mbc."""
        on = self.engine.preset_parts or "mbc"
        self.set_parts(None if self.engine.parts else on)

    @property
    def swing(self) -> float:
        return self.clock.swing if self.clock is not None else SWING_MIN

    def set_swing(self, swing: float) -> None:
        """Swing, held to 50..75, from the next pair of frames."""
        if self.clock is not None:
            self.clock.set_swing(min(max(swing, SWING_MIN), SWING_MAX))
            self._note(f"swing {self.clock.swing:.1f}")

    def _map(self, cc: CCMap) -> None:
        self.cc = cc
        self._by_number = {getattr(cc, f.name): f.name for f in fields(cc)
                           if f.name != "channel" and getattr(cc, f.name) is not None}

    # --- MIDI learn ---------------------------------------------------------------
    # The MIDI thread (a CC) and the keys thread (l, L, y) both move the learning on: each works on
    # the Learner it read, and nothing here writes a file or waits on the MIDI thread.
    def start_learning(self) -> None:
        from .learn import Learner, save_target
        self._save_to = save_target(self.preset)   # here, off the MIDI thread: it looks at files
        self.learner = learner = Learner(self.cc)
        tell(learner.prompt())

    def _learn(self, learner, controller: int) -> None:
        said = learner.take(controller)
        if said is not None:
            self._map(learner.cc)   # at once: the control works from its next move
            tell(said)
            self._next_to_learn(learner)

    def skip_learning(self) -> None:
        learner = self.learner
        if learner is not None:
            learner.skip()
            self._next_to_learn(learner)

    def _next_to_learn(self, learner) -> None:
        if learner.done:
            self.finish_learning()
        else:
            tell(learner.prompt())

    def finish_learning(self) -> None:
        learner, self.learner = self.learner, None
        if learner is None:
            return
        if not learner.learnt:
            tell("learn: nothing learnt")
            return
        self.asking_save = True
        tell(f"learn: save this CC map to {self._save_to}? y/n")

    def answer_save(self, yes: bool) -> None:
        from .learn import save_cc
        from .settings import PresetError
        self.asking_save = False
        if not yes:
            tell("learn: not saved (the map holds until you quit)")
            return
        try:
            path = save_cc(self.preset, self.cc)
        except (OSError, PresetError) as e:
            tell(f"learn: could not save: {e}")
            return
        tell(f"learn: saved; play with it: live-rnnrbm play --preset {path}")

    def _note(self, text: str) -> None:
        self.events[:] = [text]
        self.engine.poke()

    # --- MIDI CC ------------------------------------------------------------------
    def on_cc(self, channel: int, controller: int, value: int) -> None:
        """Listener callback for a CC (channel 1..16)."""
        if self.channel is not None and channel != self.channel:
            return
        learner = self.learner
        if learner is not None:
            self._learn(learner, controller)
            return
        name = self._by_number.get(controller)
        if name == "temperature":
            self.set_temperature(knob(value, T_MIN, T_MAX))
        elif name == "density":
            self.set_density(knob(value, D_MIN, D_MAX))
        elif name in BUTTONS:      # a button: act on press (value ≥ 64 after < 64)
            down, was = value >= 64, self._down[name]
            self._down[name] = down
            if down and not was:
                if name == "pause":
                    self.toggle_pause()
                elif name == "parts":
                    self.toggle_parts()
                else:
                    self.step_preset(1 if name == "next_preset" else -1)
        elif name == "swing":      # a knob: 0..127 → 50..75
            self.set_swing(SWING_MIN + (SWING_MAX - SWING_MIN) * min(max(value, 0), 127) / 127)
        elif name == "panic":
            if value >= 64:
                self.panic()
        elif name == "mode":       # a knob in three zones, or a button stepping through them
            self.set_mode(MODES[min(value * len(MODES) // 128, len(MODES) - 1)])

    # --- terminal keys ----------------------------------------------------------------
    KEYS = ("t/T temperature  d/D density  space pause  p panic  m mode  [/] preset  s parts  w/W swing  "
            "l learn  q quit")

    def start_keys(self) -> bool:
        """Read single keys from the terminal (POSIX tty only); False when there is none."""
        if not sys.stdin.isatty() or os.name != "posix":
            return False
        threading.Thread(target=self._keys, name="live-rnnrbm keys", daemon=True).start()
        return True

    def _keys(self) -> None:
        import termios
        import tty
        fd = sys.stdin.fileno()
        old = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while not self.stop.is_set():
                c = os.read(fd, 1).decode(errors="ignore")
                if self.asking_save and c:
                    self.answer_save(c in "yY")
                elif self.learner is not None and c in ("l", "L"):
                    (self.skip_learning if c == "l" else self.finish_learning)()
                elif not c or c == "q":
                    self.stop.set()
                elif c == "t":
                    self.set_temperature(self.engine.temperature / 1.1)
                elif c == "T":
                    self.set_temperature(self.engine.temperature * 1.1)
                elif c == "d":
                    self.set_density(self.engine.density / 1.25)
                elif c == "D":
                    self.set_density(self.engine.density * 1.25)
                elif c == " ":
                    self.toggle_pause()
                elif c == "p":
                    self.panic()
                elif c == "m":
                    self.set_mode(MODES[(MODES.index(self.engine.mode) + 1) % len(MODES)])
                elif c in "[]":
                    self.step_preset(1 if c == "]" else -1)
                elif c == "s":
                    self.toggle_parts()
                elif c in "wW":
                    self.set_swing(self.swing + (SWING_STEP if c == "W" else -SWING_STEP))
                elif c == "l":
                    self.start_learning()
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)

    # --- status ----------------------------------------------------------------------------
    def start_status(self, tempo: Callable[[], float], clock_label: Callable[[], str], period: float = 0.5) -> None:
        """Redraw one status line on stderr every `period` s; `tempo()` gives the current BPM (0: none,
        e.g. the external clock is lost) and `clock_label()` what the clock is doing."""
        tty = sys.stderr.isatty()

        def loop():
            while not self.stop.wait(period if tty else 10 * period):
                e = self.engine
                bpm = tempo()
                tempo_text = f"{bpm:6.1f} BPM" if bpm > 0 else "   --- BPM"
                line = (f"{tempo_text} ({clock_label()}) | frame {e.frame_time * 1e3:5.2f} ms "
                        f"(max {e.frame_time_max * 1e3:5.2f}) | {e.notes_sounding:2d} notes | {e.mode}"
                        f"{' in ' + e.key if e.key else ''} | "
                        f"T {e.temperature:.2f} d {e.density:.2f} | {e.preset}"
                        f"{' ' + e.parts if e.parts else ''}{f' swing {self.swing:.1f}' if self.swing > 50 else ''}"
                        f"{' | PAUSED' if e.paused else ''}"
                        f"{' | late ' + str(e.late) if e.late else ''}{' | ' + self.events[0] if self.events else ''}")
                sys.stderr.write(("\r" + line[:150] + "\x1b[K") if tty else line + "\n")
                sys.stderr.flush()
        threading.Thread(target=loop, name="live-rnnrbm status", daemon=True).start()


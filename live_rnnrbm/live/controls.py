"""Controls while playing: MIDI CCs (mapped in the preset), terminal keys, and a status line.

    controls = Controls(engine, settings.cc, stop_event)
    listener.on_cc = controls.on_cc          # CC temperature/density/pause/panic/mode
    controls.start_keys()                    # t/T d/D space p m q in the terminal
    controls.start_status(tempo, label)      # one line on stderr, redrawn twice a second
    OscControl(controls, engine, host, port)  # OSC calls the same methods (osc.py)

A control only sets a value the worker reads when it computes the next frame (and pokes it), so
the tick is never touched; panic asks the engine to silence at once. The status line is written
from its own low-rate thread with one write() per redraw.
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import fields
from typing import Callable

from .settings import MODES, CCMap


T_MIN, T_MAX = 0.25, 4.0     # temperature knob: 0..127 → 0.25..4 on a log scale (64 ≈ 1)
D_MIN, D_MAX = 0.125, 8.0    # density knob: 0..127 → 1/8..8 on a log scale (64 ≈ 1)


def knob(value: int, lo: float, hi: float) -> float:
    """A CC value 0..127 on a log scale from lo to hi; 64 is the geometric middle."""
    return lo * (hi / lo) ** (min(max(value, 0), 127) / 128.0)


class Controls:
    def __init__(self, engine, cc: CCMap, stop: threading.Event):
        self.engine = engine
        self.channel = cc.channel
        self.stop = stop
        self._pause_down = False
        self._by_number = {getattr(cc, f.name): f.name for f in fields(cc)
                           if f.name != "channel" and getattr(cc, f.name) is not None}
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

    def _note(self, text: str) -> None:
        self.events[:] = [text]
        self.engine.poke()

    # --- MIDI CC ------------------------------------------------------------------
    def on_cc(self, channel: int, controller: int, value: int) -> None:
        """Listener callback for a CC (channel 1..16)."""
        if self.channel is not None and channel != self.channel:
            return
        name = self._by_number.get(controller)
        if name == "temperature":
            self.set_temperature(knob(value, T_MIN, T_MAX))
        elif name == "density":
            self.set_density(knob(value, D_MIN, D_MAX))
        elif name == "pause":      # a button: act on press (value ≥ 64 after < 64)
            down = value >= 64
            if down and not self._pause_down:
                self.toggle_pause()
            self._pause_down = down
        elif name == "panic":
            if value >= 64:
                self.panic()
        elif name == "mode":       # a knob in three zones, or a button stepping through them
            self.set_mode(MODES[min(value * len(MODES) // 128, len(MODES) - 1)])

    # --- terminal keys ----------------------------------------------------------------
    KEYS = "t/T temperature  d/D density  space pause  p panic  m mode  q quit"

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
                if not c or c == "q":
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
                        f"(max {e.frame_time_max * 1e3:5.2f}) | {e.notes_sounding:2d} notes | {e.mode} | "
                        f"T {e.temperature:.2f} d {e.density:.2f}{' | PAUSED' if e.paused else ''}"
                        f"{' | late ' + str(e.late) if e.late else ''}{' | ' + self.events[0] if self.events else ''}")
                sys.stderr.write(("\r" + line[:150] + "\x1b[K") if tty else line + "\n")
                sys.stderr.flush()
        threading.Thread(target=loop, name="live-rnnrbm status", daemon=True).start()


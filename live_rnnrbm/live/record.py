"""Recording a session: what the model played and what the player played, as a type-1 MIDI file
at the real tempo.

    >>> rec = Recorder("session.mid", bpm=120, steps_per_beat=2)
    >>> rec.model_note(0.00, [0x90, 60, 80])      # seconds on one clock (e.g. time.perf_counter())
    >>> rec.player_note(0.10, [0x91, 64, 70])
    >>> rec.tempo(1.00, 132.0)                     # the external clock sped up
    >>> rec.model_note(1.25, [0x80, 60, 0])
    >>> rec.save()                                 # note 64 is still down: it gets its note-off here
    PosixPath('session.mid')

Appending is a list append of one tuple (safe from the tick thread and the MIDI input thread alike,
and nothing waits); all the work, and all the I/O, happens in save(). The file has a conductor track
(tempo map) and the tracks "live-rnnrbm" and "player". Event times are turned into ticks through the
tempo map measured from each tempo change's own tick, so reading the file back (mido converts ticks to
seconds with the same map) gives every event within half a tick of when it happened.
"""
from __future__ import annotations

import bisect
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import mido

from .midi import NOTE_OFF, SUSTAIN, SYSEX

if TYPE_CHECKING:  # record.py alone needs nothing but mido
    from .settings import Settings

MAX_TEMPO = 0xFFFFFF   # microseconds per beat: a set_tempo event holds 3 bytes (≈ 3.58 BPM at the slowest)
MODEL_TRACK = "live-rnnrbm"
PLAYER_TRACK = "player"


class Recorder:
    """Collects MIDI events with their times in seconds; save() writes them as a .mid file.

    `start` is the time (on the events' clock) where the file begins; None begins it at the earliest
    event or tempo change. `bpm` is the tempo at the start; tempo(t, bpm) records changes."""

    def __init__(self, path: str | os.PathLike, bpm: float, steps_per_beat: int | None = None,
                 ticks_per_beat: int = 480, start: float | None = None):
        if not 0 < bpm < 100_000:
            raise ValueError(f"bpm must be a positive tempo, got {bpm}")
        self.path = Path(path)
        self.bpm = float(bpm)
        self.steps_per_beat = steps_per_beat
        self.ticks_per_beat = int(ticks_per_beat)
        self.start = start
        self.skipped = 0  # messages save() could not write (not a channel message, bad bytes)
        self._model: list[tuple] = []
        self._player: list[tuple] = []
        self._tempi: list[tuple[float, float]] = []

    @classmethod
    def from_settings(cls, settings: "Settings", start: float | None = None) -> "Recorder | None":
        """A Recorder for settings.record at the settings' tempo, or None when not recording."""
        if not settings.record:
            return None
        return cls(settings.record, bpm=settings.tempo, steps_per_beat=settings.steps_per_beat, start=start)

    # --- appending: cheap, never blocks, no I/O

    def model_note(self, t_seconds: float, msg: Sequence[int]) -> None:
        """A message the model sent ([status, data1, data2] bytes) at t_seconds."""
        self._model.append((t_seconds, *msg))  # copies the bytes: the caller may reuse its buffer

    def player_note(self, t_seconds: float, msg: Sequence[int]) -> None:
        """A message the player played (notes, sustain pedal, ...) at t_seconds."""
        self._player.append((t_seconds, *msg))

    def tempo(self, t_seconds: float, bpm: float) -> None:
        """The tempo became bpm at t_seconds (an external clock changed speed)."""
        self._tempi.append((t_seconds, bpm))

    # --- writing

    def save(self, end: float | None = None) -> Path:
        """Write the file (atomically: a temporary file, then os.replace) and return its path.

        Notes still sounding (and a sustain pedal still down) are released at `end`, or at the last
        recorded time, so the file never leaves a note hanging. Can be called again later: each
        call writes everything recorded so far."""
        self.skipped = 0
        model, player = self._finite(self._model), self._finite(self._player)
        # a tempo of 0 (or none) says nothing: dropped; a slower one than MIDI holds is clamped
        tempi = sorted((e for e in self._finite(self._tempi) if e[1] > 0), key=lambda e: e[0])
        times = [e[0] for e in model] + [e[0] for e in player] + [e[0] for e in tempi]
        origin = self.start if self.start is not None else min(times, default=0.0)
        last = max(times, default=origin) if end is None else max(end, *times) if times else end
        tempo_map = _TempoMap(self.bpm, self.ticks_per_beat)
        for t, bpm in tempi:
            tempo_map.change(t - origin, bpm)
        end_tick = tempo_map.tick(last - origin)

        conductor = mido.MidiTrack()
        conductor.append(mido.MetaMessage("track_name", name="tempo", time=0))
        note = f"recorded by live-rnnrbm at {self.bpm:g} BPM"
        if self.steps_per_beat:
            note += f", {self.steps_per_beat} steps per beat"
        conductor.append(mido.MetaMessage("text", text=note, time=0))
        conductor.extend(_delta([(tick, mido.MetaMessage("set_tempo", tempo=tempo))
                                 for tick, tempo in tempo_map.changes()], end_tick))

        mid = mido.MidiFile(type=1, ticks_per_beat=self.ticks_per_beat)
        mid.tracks.append(conductor)
        for name, events in ((MODEL_TRACK, model), (PLAYER_TRACK, player)):
            track = mido.MidiTrack()
            track.append(mido.MetaMessage("track_name", name=name, time=0))
            track.extend(_delta(self._messages(events, origin, tempo_map, end_tick), end_tick))
            mid.tracks.append(track)

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                mid.save(file=f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return self.path

    def _finite(self, events: list[tuple]) -> list[tuple]:
        """The events whose time is a number (one NaN would make every tick of the file NaN)."""
        out = [e for e in events if math.isfinite(e[0])]
        self.skipped += len(events) - len(out)
        return out

    def _messages(self, events: list[tuple], origin: float, tempo_map: "_TempoMap",
                  end_tick: int) -> list[tuple[int, mido.Message]]:
        """(tick, message) in time order, plus the note-offs (and pedal-up) that close the track."""
        out = []
        sounding: dict[tuple[int, int], None] = {}  # (channel, note), in order of note-on
        pedal_down: set[int] = set()
        for event in sorted(events, key=lambda e: e[0]):  # stable: same-time events keep their order
            data = event[1:]
            if not data or not NOTE_OFF <= data[0] < SYSEX:  # only channel messages (no clock, no sysex)
                self.skipped += 1
                continue
            try:
                msg = mido.Message.from_bytes(list(data))
            except (ValueError, TypeError):
                self.skipped += 1
                continue
            if msg.type == "note_on" and msg.velocity > 0:
                sounding[(msg.channel, msg.note)] = None
            elif msg.type in ("note_on", "note_off"):
                sounding.pop((msg.channel, msg.note), None)
            elif msg.type == "control_change" and msg.control == SUSTAIN:
                (pedal_down.add if msg.value >= 64 else pedal_down.discard)(msg.channel)
            out.append((tempo_map.tick(event[0] - origin), msg))
        for channel, note in sounding:
            out.append((end_tick, mido.Message("note_off", channel=channel, note=note, velocity=0)))
        for channel in sorted(pedal_down):
            out.append((end_tick, mido.Message("control_change", channel=channel, control=SUSTAIN, value=0)))
        return out


class _TempoMap:
    """Seconds <-> ticks through a list of tempo segments, each starting at a whole tick.

    A segment starts at the tick a tempo change is written at, and its start in seconds is the time
    that tick has in the file (not the time the change was reported), so rounding never accumulates:
    each event is placed within half a tick of its time."""

    def __init__(self, bpm: float, ticks_per_beat: int):
        self.tpb = ticks_per_beat
        self.secs = [0.0]                       # file time of each segment's first tick
        self.ticks = [0]
        self.tempos = [midi_tempo(bpm)]         # microseconds per beat, an integer as in the file

    def change(self, t: float, bpm: float) -> None:
        tempo = midi_tempo(bpm)
        if tempo == self.tempos[-1]:
            return
        tick = max(self.tick(t), self.ticks[-1])
        if tick == self.ticks[-1]:  # two changes on one tick: the later one holds
            self.tempos[-1] = tempo
            if len(self.tempos) > 1 and self.tempos[-2] == tempo:
                del self.secs[-1], self.ticks[-1], self.tempos[-1]
            return
        self.secs.append(self.secs[-1] + (tick - self.ticks[-1]) * self.tempos[-1] / (1e6 * self.tpb))
        self.ticks.append(tick)
        self.tempos.append(tempo)

    def tick(self, t: float) -> int:
        t = max(t, 0.0)
        i = bisect.bisect_right(self.secs, t) - 1
        return self.ticks[i] + round((t - self.secs[i]) * 1e6 * self.tpb / self.tempos[i])

    def changes(self) -> list[tuple[int, int]]:
        return list(zip(self.ticks, self.tempos))


def midi_tempo(bpm: float) -> int:
    """Microseconds per beat for bpm, within what a set_tempo event holds (1..0xFFFFFF)."""
    return min(max(round(60_000_000 / bpm), 1), MAX_TEMPO) if bpm > 0 and math.isfinite(bpm) else MAX_TEMPO


def _delta(events: list[tuple[int, Any]], end_tick: int) -> list[Any]:
    """(absolute tick, message) -> messages with delta times, ending with end_of_track at end_tick."""
    out, now = [], 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        out.append(msg.copy(time=tick - now))
        now = tick
    out.append(mido.MetaMessage("end_of_track", time=max(end_tick - now, 0)))
    return out

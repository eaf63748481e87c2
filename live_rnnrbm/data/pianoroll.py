"""Piano-rolls: MIDI files ↔ (frames × notes) 0/1 arrays, and the benchmark pickles.

A frame lasts either ``dt`` seconds (the tutorial's way; tempo changes move the frame boundaries
in musical time) or ``1/steps_per_beat`` of a beat (a beat grid from the file's ticks per beat).
A note sounds in frames ``round(on) .. round(off) - 1`` of its onset and release measured in frames,
and at least one frame: a note shorter than a frame is not lost.

>>> roll = midi_to_roll("tune.mid", steps_per_beat=2)          # doctest: +SKIP
>>> roll.frames.shape, roll.dropped                               # doctest: +SKIP
((388, 88), 0)
>>> roll_to_midi(roll.frames, steps_per_beat=2, bpm=120).save("copy.mid")  # doctest: +SKIP
"""
from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import mido
import numpy as np

from ..errors import in_words
from ..model import HIGHEST_NOTE, LOWEST_NOTE

DRUM_CHANNEL = 9  # channel 10 as musicians count
DEFAULT_TICKS_PER_BEAT = 480


class MidiReadError(ValueError):
    """A MIDI file that cannot be read; the message names the file and the reason."""


@dataclass
class PianoRoll:
    """frames[t, i] = 1 when note ``lowest_note + i`` sounds in frame t."""

    frames: np.ndarray
    lowest_note: int = LOWEST_NOTE
    dt: float | None = None
    steps_per_beat: int | None = None
    bpm: float = 120.0  # the file's first tempo (for writing a beat-grid roll back out)
    dropped: int = 0  # notes outside the range, dropped (never wrapped)
    source: str = ""

    @property
    def highest_note(self) -> int:
        return self.lowest_note + self.frames.shape[1] - 1


def _check_resolution(dt: float | None, steps_per_beat: int | None) -> None:
    if (dt is None) == (steps_per_beat is None):
        raise ValueError("give exactly one of dt (seconds per frame) or steps_per_beat")
    if dt is not None and not dt > 0:
        raise ValueError(f"dt must be > 0 seconds, got {dt}")
    if steps_per_beat is not None and (int(steps_per_beat) != steps_per_beat or steps_per_beat < 1):
        raise ValueError(f"steps_per_beat must be a whole number ≥ 1, got {steps_per_beat}")


def _open_midi(source: str | Path | mido.MidiFile) -> tuple[mido.MidiFile, str]:
    if isinstance(source, mido.MidiFile):
        return source, str(source.filename or "<MidiFile>")
    name = str(source)
    try:
        mid = mido.MidiFile(name, clip=True)
    except FileNotFoundError:
        raise MidiReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise MidiReadError(f"{name}: is a folder, not a MIDI file") from None
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as e:
        raise MidiReadError(f"{name}: not a readable MIDI file: {in_words(e, name)}") from None
    return mid, name


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def read_notes(source: str | Path | mido.MidiFile, include_drums: bool = False
               ) -> tuple[list[tuple[int, int, float, int, float]], int, float, str]:
    """All notes of a MIDI file, all tracks merged: a list of (pitch, on_tick, on_sec, off_tick,
    off_sec), plus ticks per beat, the first tempo in BPM, and the file's name.

    Zero-velocity note-ons are note-offs; a note struck again while it sounds is matched first in,
    first out; a note never released ends with the last event.
    """
    mid, name = _open_midi(source)
    if mid.type == 2:
        raise MidiReadError(f"{name}: type 2 (asynchronous) MIDI files are not supported")
    if mid.ticks_per_beat <= 0:
        raise MidiReadError(f"{name}: SMPTE time division is not supported")
    tempo = 500000
    first_tempo = None
    tick = 0
    sec = 0.0
    open_notes: dict[tuple[int, int], list[tuple[int, float]]] = {}
    notes = []
    for msg in mido.merge_tracks(mid.tracks):
        tick += msg.time
        sec += mido.tick2second(msg.time, mid.ticks_per_beat, tempo)
        if msg.type == "set_tempo":
            tempo = msg.tempo
            if first_tempo is None and tick == 0:
                first_tempo = tempo
        elif msg.type in ("note_on", "note_off"):
            if msg.channel == DRUM_CHANNEL and not include_drums:
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                open_notes.setdefault(key, []).append((tick, sec))
            elif open_notes.get(key):
                on_tick, on_sec = open_notes[key].pop(0)
                notes.append((msg.note, on_tick, on_sec, tick, sec))
    for (_, pitch), onsets in open_notes.items():
        for on_tick, on_sec in onsets:
            notes.append((pitch, on_tick, on_sec, tick, sec))
    notes.sort(key=lambda n: (n[1], n[0]))
    return notes, mid.ticks_per_beat, mido.tempo2bpm(first_tempo or 500000), name


def midi_to_roll(source: str | Path | mido.MidiFile, dt: float | None = None,
                 steps_per_beat: int | None = None, lowest_note: int = LOWEST_NOTE,
                 highest_note: int = HIGHEST_NOTE, include_drums: bool = False) -> PianoRoll:
    """Read a MIDI file into a piano-roll, one frame every ``dt`` seconds or ``1/steps_per_beat``
    beats. Drums (channel 10) are left out unless ``include_drums``; notes outside
    ``lowest_note..highest_note`` are dropped and counted in ``PianoRoll.dropped``."""
    _check_resolution(dt, steps_per_beat)
    notes, tpb, bpm, name = read_notes(source, include_drums)
    spans = []
    dropped = 0
    for pitch, on_tick, on_sec, off_tick, off_sec in notes:
        if not lowest_note <= pitch <= highest_note:
            dropped += 1
            continue
        if dt is not None:
            start, end = _round(on_sec / dt), _round(off_sec / dt)
        else:
            step = tpb / steps_per_beat
            start, end = _round(on_tick / step), _round(off_tick / step)
        spans.append((pitch - lowest_note, start, max(end, start + 1)))
    n_frames = max((end for _, _, end in spans), default=0)
    frames = np.zeros((n_frames, highest_note - lowest_note + 1), np.uint8)
    for i, start, end in spans:
        frames[start:end, i] = 1
    return PianoRoll(frames, lowest_note, dt, steps_per_beat, bpm, dropped, name)


def roll_to_midi(frames: np.ndarray, dt: float | None = None, steps_per_beat: int | None = None,
                 bpm: float = 120.0, lowest_note: int = LOWEST_NOTE, velocity: int | np.ndarray = 80,
                 channel: int = 0, program: int = 0, track_name: str = "live-rnnrbm",
                 ticks_per_beat: int | None = None) -> mido.MidiFile:
    """A piano-roll as a one-track MIDI file whose tempo makes one frame last ``dt`` seconds (at
    four frames a beat) or ``1/steps_per_beat`` of a beat at ``bpm``. A note on in consecutive
    frames is one held note. ``velocity`` may be one number or an array shaped like ``frames``
    (the velocity of a note is taken at its first frame)."""
    _check_resolution(dt, steps_per_beat)
    frames = np.asarray(frames)
    if frames.ndim != 2:
        raise ValueError(f"a piano-roll is 2-D (frames × notes), got shape {frames.shape}")
    if not (0 <= lowest_note and lowest_note + frames.shape[1] - 1 <= 127):
        raise ValueError("the roll's notes do not fit in MIDI 0..127")
    if dt is not None:
        per_beat = 4
        tempo = _round(dt * per_beat * 1e6)
    else:
        per_beat = int(steps_per_beat)
        tempo = mido.bpm2tempo(bpm)
    if ticks_per_beat is None:
        ticks_per_beat = DEFAULT_TICKS_PER_BEAT if DEFAULT_TICKS_PER_BEAT % per_beat == 0 else per_beat * 120
    tpf = ticks_per_beat // per_beat
    vel = np.broadcast_to(np.asarray(velocity), frames.shape)

    on = frames != 0
    padded = np.zeros((on.shape[0] + 2, on.shape[1]), bool)
    padded[1:-1] = on
    now_on = padded[1:]  # now_on[t] = on[t], and silence after the last frame
    change = now_on != padded[:-1]  # change[t, i]: note i starts or stops at frame boundary t
    events = []  # (tick, order, message): note-offs (order 0) before note-ons (order 1)
    for t, i in zip(*np.nonzero(change)):
        note = lowest_note + int(i)
        if now_on[t, i]:
            v = int(np.clip(vel[t, i], 1, 127))
            events.append((t * tpf, 1, mido.Message("note_on", channel=channel, note=note, velocity=v)))
        else:
            events.append((t * tpf, 0, mido.Message("note_off", channel=channel, note=note, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1], e[2].note))

    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=track_name, time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    if program:
        track.append(mido.Message("program_change", channel=channel, program=program, time=0))
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=on.shape[0] * tpf - now))
    mid = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    mid.tracks.append(track)
    return mid


def notes_to_frames(sequence: Sequence[Sequence[int]], lowest_note: int = LOWEST_NOTE,
                    highest_note: int = HIGHEST_NOTE) -> tuple[np.ndarray, int]:
    """A list of time steps, each a list of MIDI notes, as a 0/1 roll; returns (frames, dropped)."""
    frames = np.zeros((len(sequence), highest_note - lowest_note + 1), np.uint8)
    dropped = 0
    for t, step in enumerate(sequence):
        for note in step:
            note = int(note)
            if lowest_note <= note <= highest_note:
                frames[t, note - lowest_note] = 1
            else:
                dropped += 1
    return frames, dropped


def load_pickle(path: str | Path, split: str = "train", lowest_note: int = LOWEST_NOTE,
                highest_note: int = HIGHEST_NOTE) -> list[PianoRoll]:
    """One split ('train', 'valid' or 'test') of a benchmark pickle of Boulanger-Lewandowski et
    al. (a dict of splits; a split is a list of sequences; a sequence a list of time steps; a
    time step the sorted MIDI notes sounding). Frames are beats (eighths; quarters for JSB)."""
    return pickle_split(path, read_pickle(path), split, lowest_note, highest_note)


def read_pickle(path: str | Path) -> dict:
    """A benchmark pickle's dict of splits (``MidiReadError`` when it is not one)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = pickle.load(f, encoding="latin1")
    except FileNotFoundError:
        raise MidiReadError(f"{path}: no such file") from None
    except Exception as e:  # a pickle can fail in many ways; all mean the same to the user
        raise MidiReadError(f"{path}: not a readable benchmark pickle: {in_words(e, path)}") from None
    if not isinstance(data, dict):
        raise MidiReadError(f"{path}: expected a dict of splits, found {type(data).__name__}")
    return data


def pickle_split(path: str | Path, data: dict, split: str, lowest_note: int = LOWEST_NOTE,
                 highest_note: int = HIGHEST_NOTE) -> list[PianoRoll]:
    """The rolls of one split of the pickle ``path`` read into ``data`` (``read_pickle``)."""
    path = Path(path)
    if split not in data:
        raise MidiReadError(f"{path}: no split '{split}' (it has: {', '.join(sorted(map(str, data)))})")
    rolls = []
    for n, seq in enumerate(data[split]):
        frames, dropped = notes_to_frames(seq, lowest_note, highest_note)
        spb = 1 if "jsb" in path.name.lower() else 2  # JSB is sampled per quarter note
        rolls.append(PianoRoll(frames, lowest_note, None, spb, 120.0, dropped, f"{path.name}:{split}[{n}]"))
    return rolls

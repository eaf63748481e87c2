"""A frame's notes into MIDI messages, as plain functions a test can call without threads or
ports: the notes the model sends (``shape_frame``: the player's clamped notes, the note range,
the watchdog, the polyphony cap), each note's part when the parts have their own channels
(``note_roles``), and the messages that turn the frame sounding into the next (``frame_messages``).
The engine's worker calls them once a frame; they allocate nothing but ``frame_messages``' index
list.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..kernels.jit import JIT
from .settings import PARTS

# how note_roles splits a frame (settings.PARTS names the parts, in this order of channels)
NO_PARTS, MBC, SATB = 0, 1, 2
SCHEMES = {None: NO_PARTS, "mbc": MBC, "satb": SATB}
assert [k for k in SCHEMES if k] == list(PARTS)


@njit(**JIT)
def shape_frame(v, pv, human_clamped, in_range, runs, max_run, max_poly, v_out):
    """The notes the model sends: v without the player's clamped notes, within the note range,
    no note past the watchdog's length, and at most max_poly notes (the most probable kept)."""
    n = 0
    for i in range(v.shape[0]):
        on = v[i] != 0.0 and human_clamped[i] == 0 and in_range[i] != 0 and runs[i] < max_run
        v_out[i] = 1.0 if on else 0.0
        n += on
    while n > max_poly:  # drop the least probable note until under the cap (no allocation)
        worst, worst_p = -1, 2.0
        for i in range(v_out.shape[0]):
            if v_out[i] != 0.0 and pv[i] < worst_p:
                worst, worst_p = i, pv[i]
        v_out[worst] = 0.0
        n -= 1
    return n


@njit(**JIT)
def note_roles(v, scheme, roles):
    """The part each note of the frame v plays, by its place in the frame, into roles (0 where v
    has no note). MBC: 0 melody (the top note), 1 bass (the lowest, when there are two or more),
    2 chords (the rest). SATB: 0 soprano (the top note), 1 alto (the next below it, when there
    are three or more), 3 bass (the lowest, when there are two or more), 2 tenor (the rest).
    NO_PARTS: every note is part 0."""
    roles[:] = 0
    if scheme == NO_PARTS:
        return
    bottom, second, top = -1, -1, -1      # v is in pitch order: the last two notes seen are the top two
    for i in range(v.shape[0]):
        if v[i] != 0.0:
            if bottom < 0:
                bottom = i
            second, top = top, i
    if top < 0:
        return
    for i in range(bottom, top):
        if v[i] != 0.0:
            roles[i] = 2                   # chords, or tenor: what no rule below claims
    if scheme == MBC:
        if bottom != top:
            roles[bottom] = 1
    else:
        if bottom != top:
            roles[bottom] = 3
        if second > bottom:               # three notes or more
            roles[second] = 1
    roles[top] = 0


@njit(**JIT)
def union(a, b, out):
    for i in range(out.shape[0]):
        out[i] = 1.0 if (a[i] != 0.0 or b[i] != 0.0) else 0.0


def frame_messages(new: np.ndarray, old: np.ndarray, pv: np.ndarray, part: np.ndarray, held: np.ndarray,
                   on_msg: list[list[list[int]]], off_msg: list[list[list[int]]], velocity: int | None,
                   vel_lo: int, vel_hi: int, ons: list, offs: list, all_on: list) -> None:
    """The messages that turn the frame sounding (``old``) into ``new``, by difference, so that a
    note held across frames sounds once: ``ons`` gets a note-on for each note new starts, ``offs``
    a note-off for each it ends, ``all_on`` a note-on for every note of new (to sound the whole
    frame after a silence).

    Each note sounds on a part's channel. A note new starts takes its part from ``part`` (its role
    in new, ``note_roles``); a note held from old keeps the part it has in ``held`` until it ends,
    since moving a sounding note to another channel would cut it off or leave it hanging there, and
    that part is written into ``part``, which then holds the part of every note of new. Note i's
    messages on part p are the preallocated on_msg[p][i] / off_msg[p][i]; a note that ends gets the
    note-off of its part in ``held``. The note-on's velocity is ``velocity``, or with None
    vel_lo..vel_hi by the note's probability pv[i]. The three lists are cleared first."""
    ons.clear()
    offs.clear()
    all_on.clear()
    span = vel_hi - vel_lo
    for i in np.flatnonzero(new + old).tolist():
        if new[i]:
            if old[i]:
                part[i] = held[i]
            m = on_msg[part[i]][i]
            m[2] = velocity if velocity is not None else vel_lo + int(round(span * float(pv[i])))
            all_on.append(m)
            if not old[i]:
                ons.append(m)
        else:
            offs.append(off_msg[held[i]][i])

"""The jam evaluation: how well the live instrument listens, measured on real music.

It drives the live ``live.engine.Engine`` itself (``jam_players.play_along``) — its follow/harmonize
logic and its note shaping — offline, a frame at a time, no threads and no ports, deterministic by
seed:

* **melody** (``harmonize`` / ``follow`` tasks): the player plays the top note of every frame of
  a real piece (``data.parts.top_notes``); the rest of the true frame is the accompaniment to find.
  Frame accuracy TP/(TP+FP+FN) of the model's notes against it, and the same on pitch classes
  (counts pooled over all frames). With ``ais_chains``, the conditional log-likelihood of the
  true accompaniment given the player's notes, log p(rest_t | player_t, history), by AIS on the
  clamped RBM, with the true history and with the model's own (the u_t the engine built). The
  same again with the engine told the piece's key (the ``key`` setting, ``live/keyed.py``), as a
  musician would set it and as the lookup table below is told it.
* **chords**: the player holds triads I–IV–V–I (i–iv–V–i in minor), ``CHORD_FRAMES`` frames each,
  in all 24 major and minor keys; the share of the model's notes in the key's scale, the share
  that are tones of the chord held now, and notes per frame, in follow and in harmonize.

Every piece is played in all 12 transpositions (−6..+5 semitones from its own key, moved by an
octave when that keeps it in range). Baselines in the same run: the model ignoring the player
(the engine with mode ``off``), and for the melody a key-aware lookup table fitted on training
data (melody pitch class relative to the key → the most frequent accompaniment).

    live-rnnrbm eval --task harmonize --weights nottingham ../shared/data/pickles/Nottingham.pickle
"""
from __future__ import annotations

import math
import os
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from ..data.keys import PITCH_NAMES, estimate_key, key_name, key_shift, shift_frames, shift_range
from ..data.parts import top_notes
from ..live.settings import Settings
from .jam_counts import Counts, key_counts, match_counts
from .jam_players import CHORD_FRAMES, LookupHarmonizer, chord_player, play_along, true_history_frames
from .loglik import conditional_log_likelihood

SHIFTS = tuple(range(-6, 6))  # the 12 transpositions, from the piece's own key
MELODY_TASKS = ("harmonize", "follow")
TOLD = "model, told the key"
TASKS = MELODY_TASKS + ("chords",)


# --------------------------------------------------------------------------- one job


@dataclass
class JamJob:
    weights: str
    settings: Settings
    task: str
    shift: int                  # melody: transposition; chords: tonic pitch class
    pieces: list = field(default_factory=list)
    seed: int = 0
    ais_chains: int = 0
    ais_steps: int = 200
    lookup: Any = None
    chord_cycles: int = 8
    baselines: bool = True      # the melody baselines do not depend on the task: run them once


def _seed(*keys: int) -> int:
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(1)[0] >> 1)


_MODELS: dict[str, Any] = {}


def cached_model(weights: str):
    """The model of a weights file, loaded once per process (``evaluate_jam``'s workers each keep theirs)."""
    if weights not in _MODELS:
        from ..data.weights import load_weights
        _MODELS[weights] = load_weights(weights)
    return _MODELS[weights]


def run_job(job: JamJob) -> dict[str, Counts]:
    """The counts of every condition of one task in one key."""
    model = cached_model(job.weights)
    lo = model.lowest_note
    out: dict[str, Counts] = defaultdict(Counts)
    if job.task == "chords":
        for mode_name in ("major", "minor"):
            player, scale, chord = chord_player(job.shift, mode_name, model, job.chord_cycles)
            for m, cond in (("follow", "follow"), ("harmonize", "harmonize"), ("off", "ignoring the player")):
                notes, _ = play_along(model, job.settings, player, m, _seed(job.seed, job.shift, ord(mode_name[1]), ord(m[0])))
                out[f"{cond}|{mode_name}"].add(key_counts(notes, scale, chord, lo))
        return dict(out)
    for n, V in enumerate(job.pieces):
        s = key_shift(job.shift, *shift_range(V))
        if s is None:  # too wide a piece to be played in that key
            continue
        V = shift_frames(np.asarray(V, np.float32), s)
        player = top_notes(V).astype(np.float32)
        truth = np.where(player > 0, 0.0, V).astype(np.float32)
        key = estimate_key(V, lo)  # the piece's key, as a musician would tell it and the lookup table is told it
        notes, U = play_along(model, job.settings, player, job.task, _seed(job.seed, n, job.shift + 6, 1))
        out["model"].add(match_counts(notes, truth, lo))
        # told the key, the model hears and plays in C, moved to it (live/keyed.py); the same draws
        # as "model" where that changes nothing (a piece in C, a model without a keyed path)
        told = replace(job.settings, key=key_name(*key))
        notes_k, _ = play_along(model, told, player, job.task, _seed(job.seed, n, job.shift + 6, 1))
        out[TOLD].add(match_counts(notes_k, truth, lo))
        if job.ais_chains:
            ll_own = conditional_log_likelihood(model, U, V, player, job.ais_chains, job.ais_steps,
                                                _seed(job.seed, n, job.shift + 6, 3))
            U_true = model.states(V, player)[:-1]
            ll_true = conditional_log_likelihood(model, U_true, V, player, job.ais_chains, job.ais_steps,
                                                 _seed(job.seed, n, job.shift + 6, 4))
            c = out["model"]
            c.ll_own += float(ll_own.sum())
            c.ll_true += float(ll_true.sum())
            c.ll_frames += len(V)
        if not job.baselines:
            continue
        tf = true_history_frames(model, job.settings, V, player, _seed(job.seed, n, job.shift + 6, 5))
        out["model, true history"].add(match_counts(tf, truth, lo))
        ignoring, _ = play_along(model, job.settings, player, "off", _seed(job.seed, n, job.shift + 6, 2))
        out["ignoring the player"].add(match_counts(ignoring, truth, lo))
        if job.lookup is not None:
            notes_l, pcs_l = job.lookup.harmonize(player, *key)
            out["lookup table"].add(match_counts(notes_l, truth, lo, pcs_l))
    return dict(out)


# --------------------------------------------------------------------------- the whole evaluation


@dataclass
class JamReport:
    """Per task, per condition: the figures in all keys together and in each key."""

    settings: dict[str, Any]
    results: dict[str, dict[str, dict[str, Any]]]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def key_label(task: str, key: int) -> str:
    return PITCH_NAMES[key % 12] if task == "chords" else f"{key:+d}"


def evaluate_jam(weights: str, settings: Settings, tasks: Sequence[str], pieces: Sequence[np.ndarray],
                 fit_pieces: Sequence[np.ndarray] | None = None, shifts: Sequence[int] = SHIFTS, seed: int = 0,
                 ais_chains: int = 0, ais_steps: int = 200, chord_cycles: int = 8, jobs: int | None = None,
                 progress: bool = False) -> JamReport:
    """The jam evaluation of a weights file (path) with the engine ``settings`` (a merged preset
    with ``k`` set) on ``pieces`` (piano-rolls in their own key). ``fit_pieces``: the training
    pieces the lookup baseline is fitted on (None: no lookup baseline)."""
    t0 = time.perf_counter()
    settings = replace(settings, key=None)  # each piece has its own: the engine is told it in TOLD alone
    model = cached_model(weights)
    lookup = None
    if fit_pieces is not None and any(t in MELODY_TASKS for t in tasks):
        lookup = LookupHarmonizer(model.lowest_note, model.n_visible).fit(fit_pieces)
    pieces = [np.asarray(V, np.float32) for V in pieces if len(V)]
    work = []
    first_melody = next((t for t in tasks if t in MELODY_TASKS), None)
    for task in tasks:
        keys = range(12) if task == "chords" else shifts
        for key in keys:
            work.append(JamJob(weights, settings, task, key, pieces if task != "chords" else [], seed,
                               ais_chains, ais_steps, lookup, chord_cycles, baselines=task in ("chords", first_melody)))
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(work)))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(work), desc="jam", unit="key", leave=False, file=sys.stderr)
    done: list[tuple[JamJob, dict[str, Counts]]] = []
    if jobs == 1:
        for job in work:
            done.append((job, run_job(job)))
            if bar is not None:
                bar.update(1)
    else:
        with ProcessPoolExecutor(jobs) as pool:
            for job, res in zip(work, pool.map(run_job, work)):
                done.append((job, res))
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for task in tasks:
        per: dict[str, dict[str, Counts]] = defaultdict(dict)
        for job, res in done:
            if job.task == first_melody and task in MELODY_TASKS and task != first_melody:
                res = {c: v for c, v in res.items() if c not in ("model", TOLD)}  # the shared baselines
            elif job.task != task:
                continue
            for cond, c in res.items():
                if task == "chords":
                    base, mode_name = cond.split("|")
                    per[base][f"{PITCH_NAMES[job.shift]} {mode_name}"] = c
                else:
                    per[cond][key_label(task, job.shift)] = c
        results[task] = {}
        order = ("model", TOLD, "follow", "harmonize", "model, true history", "ignoring the player", "lookup table")
        for cond, by_key in sorted(per.items(), key=lambda item: order.index(item[0])):
            total = Counts()
            for c in by_key.values():
                total.add(c)
            figs = {k: c.figures(task) for k, c in by_key.items()}
            entry: dict[str, Any] = {"all": total.figures(task), "keys": figs}
            main = "in_key" if task == "chords" else "pc_accuracy"
            vals = [f[main] for f in figs.values() if f.get(main) is not None]
            if vals:
                worst = min(figs, key=lambda k: math.inf if figs[k].get(main) is None else figs[k][main])
                entry["worst_key"] = {"key": worst, main: figs[worst][main]}
                if task == "chords":
                    entry["mean_over_keys"] = {m: float(np.mean([f[m] for f in figs.values() if f.get(m) is not None]))
                                               for m in ("in_key", "chord_tones", "notes_per_frame")}
            results[task][cond] = entry
    used = asdict(settings)
    used.update(weights=str(weights), tasks=list(tasks), seed=seed, pieces=len(pieces),
                shifts=list(shifts), ais_chains=ais_chains, ais_steps=ais_steps, chord_cycles=chord_cycles,
                chord_frames=CHORD_FRAMES, lookup_fitted_on_pieces=len(fit_pieces) if fit_pieces is not None else 0)
    return JamReport(used, results, time.perf_counter() - t0)


def format_report(r: JamReport) -> str:
    """The report as text: per task and condition, all keys, the worst key, and every key."""
    lines = []
    for task, conds in r.results.items():
        lines.append(f"{task}:")
        for cond, e in conds.items():
            a = e["all"]
            if task == "chords":
                mk = e.get("mean_over_keys", {})
                w = e.get("worst_key", {})
                lines.append(f"  {cond:<22} in key {_f(a['in_key'])} (mean over keys {_f(mk.get('in_key'))}, "
                             f"worst {w.get('key', '-')} {_f(w.get('in_key'))})  chord tones {_f(a['chord_tones'])}  "
                             f"notes/frame {_f(a['notes_per_frame'], 2)}")
            else:
                w = e.get("worst_key", {})
                ll = (f"  log p(rest|player) true history {a['ll_true_history']:.3f}, own {a['ll_own_history']:.3f}"
                      if "ll_true_history" in a else "")
                lines.append(f"  {cond:<22} pitch-class accuracy {_f(a['pc_accuracy'])} (worst key "
                             f"{w.get('key', '-')} {_f(w.get('pc_accuracy'))})  accuracy {_f(a['accuracy'])}  "
                             f"notes/frame {_f(a['notes_per_frame'], 2)}  harmony changes/frame "
                             f"{_f(a['changes_per_frame'], 2)} (true {_f(a['true_changes_per_frame'], 2)}){ll}")
            main = "in_key" if task == "chords" else "pc_accuracy"
            lines.append("    " + "  ".join(f"{k} {_f(f.get(main))}" for k, f in e["keys"].items()))
    return "\n".join(lines)


def _f(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"

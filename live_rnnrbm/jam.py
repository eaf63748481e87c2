"""The jam evaluation: how well the live instrument listens, measured on real music.

It drives the live ``live.engine.Engine`` itself — its follow/harmonize logic and its note shaping —
offline, a frame at a time, no threads and no ports, deterministic by seed:

* **melody** (``harmonize`` / ``follow`` tasks): the player plays the top note of every frame of
  a real piece (``parts.top_notes``); the rest of the true frame is the accompaniment to find.
  Frame accuracy TP/(TP+FP+FN) of the model's notes against it, and the same on pitch classes
  (counts pooled over all frames). With ``ais_chains``, the conditional log-likelihood of the
  true accompaniment given the player's notes, log p(rest_t | player_t, history), by AIS on the
  clamped RBM, with the true history and with the model's own (the u_t the engine built).
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
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from .data.parts import top_notes
from .live.settings import Settings
from .live.engine import Engine
from .data.keys import estimate_key, key_shift, shift_frames, shift_range

SHIFTS = tuple(range(-6, 6))  # the 12 transpositions, from the piece's own key
CHORD_FRAMES = 4
CHORD_ROOT_LOW = 48  # triads in root position with the root in C3..B3
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)  # natural minor and the leading tone that V brings
PROGRESSIONS = {"major": ((0, (0, 4, 7)), (5, (0, 4, 7)), (7, (0, 4, 7)), (0, (0, 4, 7))),
                "minor": ((0, (0, 3, 7)), (5, (0, 3, 7)), (7, (0, 4, 7)), (0, (0, 3, 7)))}
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MELODY_TASKS = ("harmonize", "follow")
TASKS = MELODY_TASKS + ("chords",)


# --------------------------------------------------------------------------- the engine, offline


class HeldNotes:
    """The player's side of the engine (``Listener``'s interface) for an offline run: the notes
    held are set frame by frame."""

    def __init__(self, n_visible: int) -> None:
        self.notes = np.zeros(n_visible, np.float32)
        self.version = 0
        self.on_change = None

    def hold(self, frame: np.ndarray) -> None:
        self.notes[:] = frame
        self.version += 1

    def snapshot(self, frame: np.ndarray) -> int:
        frame[:] = self.notes
        return self.version


def _discard(message: list) -> None:
    pass


def play_along(model, settings: Settings, player: np.ndarray, mode: str, seed: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """The engine's notes when a player holds ``player[t]`` at frame t (T × n_v): each frame is
    computed with the notes the player holds at its tick, as live when the player plays on the
    beat. Returns (the model's notes as sounded, T × n_v; U, T × n_u, the u_{t-1} each frame was
    sampled from). ``mode`` off: the engine does not listen."""
    model.reseed(seed)
    held = HeldNotes(model.n_visible)
    engine = Engine(model, _discard, replace(settings, mode=mode), listener=held if mode != "off" else None)
    T = player.shape[0]
    out = np.zeros(player.shape, np.float32)
    U = np.zeros((T, model.n_hidden_recurrent), np.float32)
    if T == 0:
        return out, U
    held.hold(player[0])
    engine.prepare()
    for t in range(T):
        engine.tick(float(t))
        s = engine.last_sent
        out[t] = s.v_out
        U[t] = s.u
        if t + 1 < T:
            held.hold(player[t + 1])
            engine.advance()
    return out, U


# --------------------------------------------------------------------------- counting


def pitch_classes(roll: np.ndarray, lowest_note: int) -> np.ndarray:
    """T × 12 booleans: the pitch classes sounding in each frame."""
    out = np.zeros((roll.shape[0], 12), bool)
    on = roll > 0
    for i in range(roll.shape[1]):
        out[:, (lowest_note + i) % 12] |= on[:, i]
    return out


@dataclass
class Counts:
    """Pooled counts of one condition; the figures are ratios of them."""

    frames: int = 0
    notes: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    pc_tp: int = 0
    pc_fp: int = 0
    pc_fn: int = 0
    changes: int = 0            # frames whose pitch classes differ from the frame before's
    true_changes: int = 0       # the same for the true accompaniment
    in_key: int = 0
    chord_tones: int = 0
    ll_true: float = 0.0
    ll_own: float = 0.0
    ll_frames: int = 0

    def add(self, other: "Counts") -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def figures(self, task: str) -> dict[str, float | int | None]:
        def ratio(a, b):
            return a / b if b else None
        f: dict[str, Any] = {"frames": self.frames, "notes_per_frame": ratio(self.notes, self.frames)}
        if task == "chords":
            f["in_key"] = ratio(self.in_key, self.notes)
            f["chord_tones"] = ratio(self.chord_tones, self.notes)
        else:
            # no notes to find and none played: a perfect frame (as the eval's accuracy counts it)
            f["accuracy"] = ratio(self.tp, self.tp + self.fp + self.fn) if self.tp + self.fp + self.fn else 1.0
            f["pc_accuracy"] = (ratio(self.pc_tp, self.pc_tp + self.pc_fp + self.pc_fn)
                                if self.pc_tp + self.pc_fp + self.pc_fn else 1.0)
            f["changes_per_frame"] = ratio(self.changes, self.frames)
            f["true_changes_per_frame"] = ratio(self.true_changes, self.frames)
            if self.ll_frames:
                f["ll_true_history"] = self.ll_true / self.ll_frames
                f["ll_own_history"] = self.ll_own / self.ll_frames
        return f


def match_counts(played: np.ndarray, truth: np.ndarray, lowest_note: int,
                 played_pcs: np.ndarray | None = None) -> Counts:
    """How the notes played match the true accompaniment, on notes and on pitch classes (those of
    the notes played, or ``played_pcs`` when the player names pitch classes of its own)."""
    p, t = played > 0, truth > 0
    pp = pitch_classes(played, lowest_note) if played_pcs is None else played_pcs
    pt = pitch_classes(truth, lowest_note)
    return Counts(frames=len(played), notes=int(p.sum()), tp=int((p & t).sum()), fp=int((p & ~t).sum()),
                  fn=int((~p & t).sum()), pc_tp=int((pp & pt).sum()), pc_fp=int((pp & ~pt).sum()),
                  pc_fn=int((~pp & pt).sum()), changes=_changes(pp), true_changes=_changes(pt))


def _changes(pcs: np.ndarray) -> int:
    """How many frames change the harmony: their pitch classes differ from the frame before's."""
    return int((pcs[1:] != pcs[:-1]).any(axis=1).sum())


def key_counts(played: np.ndarray, scale: np.ndarray, chord: np.ndarray, lowest_note: int) -> Counts:
    """The model's notes against the key's scale and the chord held (both T × 12 booleans)."""
    pcs = (lowest_note + np.arange(played.shape[1])) % 12
    on = played > 0
    in_scale = scale[:, pcs] & on
    in_chord = chord[:, pcs] & on
    return Counts(frames=len(played), notes=int(on.sum()), in_key=int(in_scale.sum()),
                  chord_tones=int(in_chord.sum()))


# --------------------------------------------------------------------------- the lookup baseline


class LookupHarmonizer:
    """The one-line baseline: for the melody's pitch class relative to the key (and the key's
    mode), the accompaniment most often heard with it in the training pieces — as a set of notes
    relative to the tonic (for frame accuracy) and as a set of pitch classes (for pitch-class
    accuracy). Key-aware: at play time it is told the piece's key."""

    def __init__(self, lowest_note: int, n_visible: int) -> None:
        self.lowest, self.n = lowest_note, n_visible
        self.notes: dict[tuple[str, int], tuple[int, ...]] = {}
        self.pcs: dict[tuple[str, int], tuple[int, ...]] = {}

    def fit(self, pieces: Sequence[np.ndarray]) -> "LookupHarmonizer":
        note_sets: dict[tuple[str, int], Counter] = defaultdict(Counter)
        pc_sets: dict[tuple[str, int], Counter] = defaultdict(Counter)
        for V in pieces:
            if not len(V) or not V.any():
                continue
            tonic, mode = estimate_key(V, self.lowest)
            melody = top_notes(V)
            rest = (V > 0) & (melody == 0)
            for t in range(len(V)):
                m = np.flatnonzero(melody[t])
                key = (mode, int((self.lowest + m[0] - tonic) % 12) if len(m) else -1)
                notes = tuple(int(self.lowest + i - tonic) for i in np.flatnonzero(rest[t]))
                note_sets[key][notes] += 1
                pc_sets[key][tuple(sorted({n % 12 for n in notes}))] += 1
        self.notes = {k: c.most_common(1)[0][0] for k, c in note_sets.items()}
        self.pcs = {k: c.most_common(1)[0][0] for k, c in pc_sets.items()}
        return self

    def harmonize(self, melody: np.ndarray, tonic: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """(notes T × n_v, pitch classes T × 12) for a melody roll in the key (tonic, mode)."""
        T = len(melody)
        notes = np.zeros((T, self.n), np.float32)
        pcs = np.zeros((T, 12), bool)
        for t in range(T):
            m = np.flatnonzero(melody[t])
            key = (mode, int((self.lowest + m[0] - tonic) % 12) if len(m) else -1)
            for n in self.notes.get(key, ()):
                i = n + tonic - self.lowest
                if 0 <= i < self.n:
                    notes[t, i] = 1.0
            for pc in self.pcs.get(key, ()):
                pcs[t, (pc + tonic) % 12] = True
        return notes, pcs


# --------------------------------------------------------------------------- conditional likelihood


def conditional_log_likelihood(model, U: np.ndarray, frames: np.ndarray, player: np.ndarray, ais_chains: int,
                               ais_steps: int, seed: int) -> np.ndarray:
    """log p(rest_t | player_t, u_{t-1}) for every frame, by AIS: the RBM of frame t with the
    player's notes clamped on is an RBM over the other notes whose hidden biases carry
    player_t·W (the clamped notes' own biases cancel between the frame and Z), its biases the
    player path's terms too; the clamped notes are ruled out of it by a visible bias of
    CLAMPED_OFF."""
    from . import ais
    from .evaluate import BASE_PRIOR
    from .kernels.rng import new_states
    p = model.params
    N = len(frames)
    dt = model.dtype  # the types evaluate.py runs the AIS kernels with: their compiled code is reused
    W, WT = p["W"], model.WT
    BV = np.ascontiguousarray(U @ p["Wuv"] + p["bv"] + player @ p["Wpv"], dt)
    BH = np.ascontiguousarray(U @ p["Wuh"] + p["bh"] + player @ (W + p["Wph"]), dt)
    clamped = player > 0
    BV[clamped] = CLAMPED_OFF
    rest = np.ascontiguousarray(np.where(clamped, 0.0, frames), dt)
    k = 25
    C = np.zeros((N, model.n_visible))
    D = np.zeros((N, model.n_hidden))
    ais.fitted_base(W, WT, BV, BH, rest, 20, k, BASE_PRIOR, new_states(seed + 2, N), C, D)
    C[clamped] = CLAMPED_OFF  # the base rules the clamped notes out too
    log_z, log_z_var, ess, log_z_jack = (np.empty(N) for _ in range(4))
    ais.ais_log_z(W, WT, BV, BH, C, D, ais.beta_schedule(ais_steps, "sm"), ais_chains, new_states(seed, N),
                  log_z, log_z_var, ess, log_z_jack)
    F = np.empty(N)
    ais.free_energies(rest, W, BV, BH, F)
    return -F - log_z_jack


CLAMPED_OFF = -60.0  # a visible bias that keeps a unit off (e^-60 ≈ 1e-26)


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


def _model(weights: str):
    if weights not in _MODELS:
        from .data.weights import load_weights
        _MODELS[weights] = load_weights(weights)
    return _MODELS[weights]


def run_job(job: JamJob) -> dict[str, Counts]:
    """The counts of every condition of one task in one key."""
    model = _model(job.weights)
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
        notes, U = play_along(model, job.settings, player, job.task, _seed(job.seed, n, job.shift + 6, 1))
        out["model"].add(match_counts(notes, truth, lo))
        if job.ais_chains:
            ll_own = conditional_log_likelihood(model, U, V, player, job.ais_chains, job.ais_steps,
                                                _seed(job.seed, n, job.shift + 6, 3))
            U_true = model.run(V, player=player)[0][:-1]
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
            notes_l, pcs_l = job.lookup.harmonize(player, *estimate_key(V, lo))
            out["lookup table"].add(match_counts(notes_l, truth, lo, pcs_l))
    return dict(out)


def true_history_frames(model, settings: Settings, V: np.ndarray, player: np.ndarray, seed: int
                        ) -> np.ndarray:
    """The model's accompaniment when the history is the true one (teacher forcing): each frame
    sampled as the engine samples it (k steps from silence, the player's notes clamped, the
    preset's temperature) from the u_{t-1} of the true frames, without the engine's note
    shaping — how well the conditional RBM harmonizes when it is not lost. With the preset's
    ``chains`` above 1, each frame is their consensus, as the engine plays while listening."""
    from .kernels import gibbs, packed
    model.reseed(seed)
    U = model.run(V, player=player)[0]
    P = packed.pack(model.params)
    work, idx = packed.workspace(model.n_visible, model.n_hidden, model.dtype)
    beta = model.dtype.type(1.0 / settings.temperature)
    k, chains = settings.k, settings.chains
    v = np.zeros(model.n_visible, model.dtype)
    pv = np.zeros_like(v)
    V_c, PV_c = np.zeros((chains, model.n_visible), model.dtype), np.zeros((chains, model.n_visible), model.dtype)
    sets = np.zeros(chains, np.int64)
    pc_of = (np.arange(model.n_visible) + model.lowest_note) % 12
    out = np.zeros(V.shape, np.float32)
    for t in range(len(V)):
        clamp = (player[t] > 0).astype(np.int8)
        p_t = player[t].astype(model.dtype)
        # one chain's consensus is that chain's draw
        gibbs.sample_consensus(U[t], P, k, beta, clamp, p_t, model.rng_state, V_c, PV_c, pc_of, sets, v, pv,
                                 work, idx)
        out[t] = np.where(clamp > 0, 0.0, v)
    return out


def chord_player(tonic: int, mode: str, model, cycles: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The chord player's roll (I–IV–V–I or i–iv–V–i, CHORD_FRAMES frames a chord, ``cycles``
    times), the key's scale and the chord held, per frame (T × 12 booleans)."""
    frames, scales, chords = [], [], []
    scale = np.zeros(12, bool)
    scale[[(tonic + d) % 12 for d in (MAJOR_SCALE if mode == "major" else MINOR_SCALE)]] = True
    for _ in range(cycles):
        for degree, triad in PROGRESSIONS[mode]:
            root = CHORD_ROOT_LOW + (tonic + degree) % 12
            f = np.zeros(model.n_visible, np.float32)
            pcs = np.zeros(12, bool)
            for d in triad:
                f[root + d - model.lowest_note] = 1.0
                pcs[(root + d) % 12] = True
            for _ in range(CHORD_FRAMES):
                frames.append(f)
                scales.append(scale)
                chords.append(pcs)
    return np.array(frames), np.array(scales), np.array(chords)


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
    model = _model(weights)
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
                res = {c: v for c, v in res.items() if c != "model"}  # the shared baselines
            elif job.task != task:
                continue
            for cond, c in res.items():
                if task == "chords":
                    base, mode_name = cond.split("|")
                    per[base][f"{PITCH_NAMES[job.shift]} {mode_name}"] = c
                else:
                    per[cond][key_label(task, job.shift)] = c
        results[task] = {}
        order = ("model", "follow", "harmonize", "model, true history", "ignoring the player", "lookup table")
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


# --------------------------------------------------------------------------- command line


def add_arguments(g) -> None:
    """The jam options of ``live-rnnrbm eval`` (the rest — data, --weights, --split, --seed,
    --ais-chains, --ais-steps, --k, --json, --quiet — are eval's own)."""
    g.add_argument("--preset", help="the engine's settings (note shaping, temperature, k): a preset name or "
                   "file (default: the shipped preset made for the weights, else 'default')")
    g.add_argument("--temperature", type=float, help="override the preset's temperature")
    g.add_argument("--chains", type=int, help="override the preset's chains (Gibbs chains per frame while listening)")
    g.add_argument("--fit", nargs="+", metavar="DATA", help="training data for the lookup-table baseline "
                   "(default: the 'train' split of the pickle evaluated on; MIDI data: no lookup baseline)")
    g.add_argument("--keys", type=int, nargs="+", metavar="SHIFT", help="transpositions to play the pieces in, "
                   "semitones from their own key (default: all 12, -6..5)")
    g.add_argument("--pieces", type=int, default=0, help="N evenly spread pieces (default 0: all)")
    g.add_argument("--chord-cycles", type=int, default=8,
                   help="times the chord player plays its I-IV-V-I in each key (default 8)")
    g.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core)")


def _preset_for(weights: str | None) -> str:
    """The shipped preset made for these weights (its ``weights`` key names them), else 'default'."""
    from .live.settings import list_presets, load_preset
    if weights:
        for name in list_presets():
            if str(load_preset(name).weights) == str(weights):
                return name
    return "default"


def run(args) -> int:
    import json
    from .data.corpus import PICKLE_SUFFIXES, DataError, load_corpus, spread
    from .generate import frame_resolution, generation_k
    from .cli import flag_errors
    from .live.settings import PresetError, load_preset, merge
    from .data.weights import WeightsError, resolve_weights

    def fail(msg: str) -> int:
        print(f"error: {msg}", file=sys.stderr)
        return 2

    try:
        preset = load_preset(args.preset or _preset_for(args.weights))
        settings = merge(preset, {"temperature": args.temperature, "k": args.k, "chains": args.chains,
                                  "seed": args.seed})
    except PresetError as e:
        return fail(str(e))
    spec = args.weights or settings.weights
    path = resolve_weights(spec)
    try:
        if path is None:
            raise WeightsError(f"{spec}: no such weights")
        model = _model(str(path))  # the cache evaluate_jam reads from
    except WeightsError as e:
        return fail(str(e))
    if settings.k is None:
        settings = replace(settings, k=generation_k(model))
    melody = [t for t in args.task if t in MELODY_TASKS]
    if args.ais_chains is None:
        args.ais_chains = 0
    wrong = flag_errors(args, [("pieces", lambda v: v >= 0, "≥ 0"), ("chord_cycles", lambda v: v >= 1, "≥ 1"),
                               ("ais_chains", lambda v: v >= 0, "≥ 0"), ("jobs", lambda v: v >= 1, "≥ 1"),
                               ("keys", lambda v: all(-11 <= s <= 11 for s in v), "transpositions in -11..11")])
    if wrong:
        return fail(wrong)
    shifts = tuple(args.keys) if args.keys else SHIFTS
    pieces: list[np.ndarray] = []
    fit = None
    common = dict(lowest_note=model.lowest_note, highest_note=model.highest_note, **frame_resolution(model),
                  warn=lambda msg: print(f"warning: {msg}", file=sys.stderr))
    if melody:
        if not args.data:
            return fail(f"--task {' '.join(melody)} plays real pieces: name the data (MIDI files, folders or a pickle)")
        try:
            pieces = spread(load_corpus(args.data, split=args.split, **common).arrays(), args.pieces)
            fit_sources = args.fit or ([d for d in args.data if str(d).lower().endswith(PICKLE_SUFFIXES)] or None)
            if fit_sources:
                fit = load_corpus(fit_sources, split="train", **common).arrays()
            else:
                print("note: no --fit data: the lookup-table baseline is left out", file=sys.stderr)
        except DataError as e:
            return fail(str(e))
    report = evaluate_jam(str(path), settings, args.task, pieces, fit, shifts, args.seed, args.ais_chains,
                          args.ais_steps, args.chord_cycles, args.jobs, progress=not args.quiet and not args.json)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, default=str))
    else:
        s = report.settings
        print(f"weights {s['weights']}  preset {args.preset or _preset_for(args.weights)}: k {s['k']}, chains "
              f"{s['chains']}, temperature {s['temperature']}, density {s['density']}, max polyphony "
              f"{s['max_polyphony']}, note range {s['note_range']}; seed {s['seed']}")
        if melody:
            print(f"data {' '.join(args.data)} [{args.split}]: {s['pieces']} pieces in {len(shifts)} keys; lookup "
                  f"fitted on {s['lookup_fitted_on_pieces']} pieces")
        print(format_report(report))
        print(f"time {report.seconds:.1f} s")
    return 0

"""`live-rnnrbm eval`: the log-likelihood and accuracy of a weights file on data (``loglik``), or the
jam evaluation of how the live instrument listens (``jam``: --task harmonize, follow, chords).

    live-rnnrbm eval --weights nottingham ../shared/data/pickles/Nottingham.pickle --split valid
    live-rnnrbm eval --weights mine.npz tunes/ --json
    live-rnnrbm eval --task harmonize --weights nottingham ../shared/data/pickles/Nottingham.pickle
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from .jam import MELODY_TASKS, SHIFTS, cached_model, evaluate_jam, format_report
from .jam import TASKS as JAM_TASKS
from .loglik import EvalResult, evaluate_model

# --------------------------------------------------------------------------- the log-likelihood (--task ll)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="*", metavar="DATA",
                   help="MIDI files, folders (searched recursively), globs, or a benchmark pickle (with --split)")
    p.add_argument("--weights", help="weights file, or a shipped name (nottingham, jsb); default: nottingham")
    p.add_argument("--split", default="valid", help="split of a benchmark pickle (default valid)")
    p.add_argument("--task", choices=("ll", "free") + JAM_TASKS, nargs="+", default=["ll"],
                   help="ll: log-likelihood and accuracy, as in the paper (default); free: statistics of free "
                        "generation beside the data's (one generated piece per data piece, its length); harmonize, "
                        "follow: a player plays the melody and the live engine accompanies it; chords: a player "
                        "holds I-IV-V-I in all 24 keys (the jam evaluation: see the 'jam' options)")
    p.add_argument("--ais-chains", type=int, default=None,
                   help="AIS chains per frame (default 20; in the jam tasks 0: no conditional log-likelihood)")
    p.add_argument("--ais-steps", type=int, default=400, help="AIS intermediate distributions (default 400)")
    p.add_argument("--ais-schedule", choices=("sm", "linear"), default="sm",
                   help="β schedule: 'sm' = Salakhutdinov & Murray 2008's piecewise-linear one (default)")
    p.add_argument("--ais-base", choices=("fitted", "zero"), default="fitted",
                   help="AIS base: the frame's RBM with W = 0 and visible biases fitted to its own note "
                        "probabilities (default), or 'zero': with the RBM's own biases")
    p.add_argument("--raise-chains", type=int, default=0, metavar="N",
                   help="also estimate the log-likelihood by RAISE (reverse annealing, Burda et al. 2015) with "
                        "N chains per frame and --ais-steps steps: a conservative figure, which errs low where "
                        "AIS errs high; close together, the two have converged (default 0: off)")
    p.add_argument("--accuracy-samples", type=int, default=10,
                   help="model samples per frame for the accuracy (default 10; 0 skips it)")
    p.add_argument("--k", type=int, default=None,
                   help="Gibbs steps per sampled frame (default: 25 for the accuracy, the tutorial's chains, which "
                        "the paper's accuracy and the documented figures use; in the jam tasks the preset's k, else "
                        "the weights' generation_k, as generate and play)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-log-likelihood", action="store_true", help="only the accuracy (skips AIS)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_jam_arguments(p.add_argument_group("jam (--task harmonize, follow, chords)"))


def _report(r: EvalResult, weights: str, data: str) -> str:
    s = r.settings
    lines = [f"weights  {weights}", f"data     {data}: {r.sequences} pieces, {r.frames:,} frames"]
    if not math.isnan(r.log_likelihood):
        lines += [f"log-likelihood  {r.log_likelihood:.4f} ± {r.log_likelihood_se:.4f} nats per frame "
                  f"(mean over all frames pooled ± SE; jackknifed log Z, plain {r.log_likelihood_plain:.4f})",
                  f"   AIS: {s['ais_chains']} chains × {s['ais_steps']} steps, {s['ais_schedule']} schedule, "
                  f"base: W = 0 with {s['ais_base']} biases",
                  f"   AIS noise in the mean ±{r.ais_se:.4f}, spread-based optimism {r.ais_bias:.4f}, "
                  f"smallest ESS {r.ais_min_ess:.1f} of {s['ais_chains']}"]
        if not math.isnan(r.log_likelihood_raise):
            gap = r.log_likelihood - r.log_likelihood_raise
            lines.append(f"   RAISE (conservative): {r.log_likelihood_raise:.4f} ± {r.log_likelihood_raise_se:.4f} "
                         f"({s['raise_chains']} chains × {s['ais_steps']} steps); AIS − RAISE = {gap:.4f}: "
                         + ("converged" if gap < 0.02 else "the log-likelihood lies between the two"))
        if r.ais_impossible_frames:
            lines.append(f"   WARNING: {r.ais_impossible_frames} frame(s) got log p > 0 (log Z under-estimated): "
                         "AIS has not converged, raise --ais-steps")
    if not math.isnan(r.accuracy):
        lines += [f"accuracy        {100 * r.accuracy:.2f}% ± {100 * r.accuracy_se:.2f}% (expected "
                  f"TP/(TP+FP+FN) per frame, mean over frames; silent vs silent = 1)",
                  f"   {s['accuracy_samples']} samples per frame, k = {s['k']} Gibbs steps from silence; "
                  f"ΣTP/Σ(TP+FP+FN) over all frames: {100 * r.accuracy_pooled_counts:.2f}%"]
    per_k = 1000 * r.seconds / r.frames
    lines.append(f"time     {r.seconds:.1f} s ({per_k:.2f} s per 1000 frames, {s['threads']} threads, "
                 f"seed {s['seed']})")
    return "\n".join(lines)


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _corpus_options(model) -> dict:
    """How ``load_corpus`` reads data for this model: its note range and frame resolution."""
    from ..data.weights import frame_resolution
    return dict(lowest_note=model.lowest_note, highest_note=model.highest_note, **frame_resolution(model),
                warn=lambda msg: print(f"warning: {msg}", file=sys.stderr))


def run(args: argparse.Namespace) -> int:
    from ..data.corpus import DataError, holds_pickles_only, load_corpus
    from ..data.weights import WeightsError, load_model

    if args.task != ["ll"]:
        for alone in ("ll", "free"):
            if alone in args.task and args.task != [alone]:
                return _fail(f"--task {alone} runs on its own: give it, or jam tasks")
        return run_free(args) if args.task == ["free"] else run_jam(args)
    if args.ais_chains is None:
        args.ais_chains = 20
    if args.k is None:
        args.k = 25
    if not args.data:
        return _fail("name the data to evaluate on (MIDI files, folders, globs or a pickle)")
    from ..cli import flag_errors
    wrong = flag_errors(args, [("ais_chains", lambda v: v >= 1, "≥ 1"), ("raise_chains", lambda v: v >= 0, "≥ 0"),
                               ("ais_steps", lambda v: v >= 1, "≥ 1"), ("accuracy_samples", lambda v: v >= 0, "≥ 0"),
                               ("k", lambda v: v >= 1, "≥ 1")])
    if wrong:
        return _fail(wrong)
    try:
        model = load_model(args.weights)
        if model.meta.get("untrained"):
            print("warning: evaluating an UNTRAINED model", file=sys.stderr)
        corpus = load_corpus(args.data, split=args.split, **_corpus_options(model))
    except (WeightsError, DataError) as e:
        return _fail(str(e))
    if corpus.dropped_notes:
        print(f"warning: {corpus.dropped_notes} note(s) outside {model.lowest_note}..{model.highest_note} dropped",
              file=sys.stderr)
    result = evaluate_model(model, corpus.arrays(model.dtype),
                            ais_chains=0 if args.no_log_likelihood else args.ais_chains, ais_steps=args.ais_steps, accuracy_samples=args.accuracy_samples, k=args.k,
                            seed=args.seed, progress=not args.quiet and not args.json, schedule=args.ais_schedule,
                            base=args.ais_base, raise_chains=0 if args.no_log_likelihood else args.raise_chains)
    weights = str(model.meta.get("path") or args.weights or "nottingham (shipped)")
    pickles = any(holds_pickles_only(Path(d)) for d in args.data)
    data = " ".join(args.data) + (f" [{args.split}]" if pickles else "")
    if args.json:
        out = result.to_json()
        out.update(weights=weights, data=data, skipped=[list(s) for s in corpus.skipped])
        print(json.dumps(out, indent=2))
    else:
        print(_report(result, weights, data))
    return 0


# --------------------------------------------------------------------------- the jam tasks


def add_jam_arguments(g) -> None:
    """The jam options of ``live-rnnrbm eval`` (the rest — data, --weights, --split, --seed,
    --ais-chains, --ais-steps, --k, --json, --quiet — are eval's own)."""
    g.add_argument("--preset", help="the engine's settings (note shaping, temperature, k): a preset name or "
                   "file (default: the shipped preset made for the weights, else 'default')")
    g.add_argument("--temperature", type=float, help="override the preset's temperature (--task free: the "
                   "weights' generation_temperature, else 1)")
    g.add_argument("--density", type=float, help="override the preset's density (--task free: the weights' "
                   "generation_density, else 1): every note's odds × density")
    g.add_argument("--register", type=float, help="--task free: the register hold, semitones wide (default: the "
                   "weights' generation_register, else none; 0: none)")
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
    from ..live.presets import list_presets, load_preset
    if weights:
        for name in list_presets():
            if str(load_preset(name).weights) == str(weights):
                return name
    return "default"


def run_free(args) -> int:
    """--task free: the model's free generation beside the data's pieces."""
    from ..cli import flag_errors
    from ..data.corpus import DataError, load_corpus, spread
    from ..data.weights import WeightsError, generation_settings, load_model
    from .generation import evaluate_generation, format_generation

    if not args.data:
        return _fail("--task free sets generated pieces beside real ones: name the data (MIDI files, folders or a pickle)")
    wrong = flag_errors(args, [("pieces", lambda v: v >= 0, "≥ 0"), ("k", lambda v: v is None or v >= 1, "≥ 1"),
                               ("temperature", lambda v: v is None or v > 0, "> 0"),
                               ("density", lambda v: v is None or v > 0, "> 0"),
                               ("register", lambda v: v is None or v >= 0, "≥ 0")])
    if wrong:
        return _fail(wrong)
    try:
        model = load_model(args.weights)
        pieces = spread(load_corpus(args.data, split=args.split, **_corpus_options(model)).arrays(), args.pieces)
    except (WeightsError, DataError) as e:
        return _fail(str(e))
    if not pieces:
        return _fail("no pieces to compare with")
    report = evaluate_generation(model, pieces, generation_settings(model, args.k, args.temperature, args.density,
                                                                    args.register), args.seed)
    report.settings["weights"] = args.weights or "nottingham"
    if args.json:
        print(json.dumps({"settings": report.settings, "stats": report.stats, "all_within": report.all_within,
                          "seconds": report.seconds}, indent=2))
    else:
        s = report.settings
        print(f"weights {s['weights']}: k {s['k']}, temperature {s['temperature']}, density {s['density']}, "
              f"register {s['register'] or 'none'}, seed {s['seed']}; "
              f"data {' '.join(args.data)} [{args.split}]: {s['pieces']} pieces, {s['frames']:,} frames, "
              f"as many generated")
        print(format_generation(report))
    return 0


def run_jam(args) -> int:
    from ..cli import flag_errors
    from ..data.corpus import DataError, holds_pickles_only, load_corpus, spread
    from ..data.weights import WeightsError, resolve_weights
    from ..live.presets import load_preset
    from ..live.settings import PresetError, merge, with_weights_own

    try:
        preset = load_preset(args.preset or _preset_for(args.weights))
        settings = merge(preset, {"temperature": args.temperature, "density": args.density, "k": args.k,
                                  "chains": args.chains, "seed": args.seed})
    except PresetError as e:
        return _fail(str(e))
    spec = args.weights or settings.weights
    path = resolve_weights(spec)
    try:
        if path is None:
            raise WeightsError(f"{spec}: no such weights")
        model = cached_model(str(path))  # the cache evaluate_jam reads from
    except WeightsError as e:
        return _fail(str(e))
    settings = with_weights_own(settings, model)
    melody = [t for t in args.task if t in MELODY_TASKS]
    if args.ais_chains is None:
        args.ais_chains = 0
    wrong = flag_errors(args, [("pieces", lambda v: v >= 0, "≥ 0"), ("chord_cycles", lambda v: v >= 1, "≥ 1"),
                               ("ais_chains", lambda v: v >= 0, "≥ 0"), ("jobs", lambda v: v >= 1, "≥ 1"),
                               ("keys", lambda v: all(-11 <= s <= 11 for s in v), "transpositions in -11..11")])
    if wrong:
        return _fail(wrong)
    shifts = tuple(args.keys) if args.keys else SHIFTS
    pieces: list[np.ndarray] = []
    fit = None
    common = _corpus_options(model)
    if melody:
        if not args.data:
            return _fail(f"--task {' '.join(melody)} plays real pieces: name the data (MIDI files, folders or a pickle)")
        try:
            pieces = spread(load_corpus(args.data, split=args.split, **common).arrays(), args.pieces)
            fit_sources = args.fit or ([d for d in args.data if holds_pickles_only(Path(d))] or None)
            if fit_sources:
                fit = load_corpus(fit_sources, split="train", **common).arrays()
            else:
                print("note: no --fit data: the lookup-table baseline is left out", file=sys.stderr)
        except DataError as e:
            return _fail(str(e))
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

"""`live-rnnrbm train`: train an RNN-RBM on MIDI files or a benchmark pickle.

    live-rnnrbm train tunes/ --out weights/mine.npz --epochs 50
    live-rnnrbm train "Nottingham.pickle" --out weights/nottingham.npz --optimizer adam --lr 3e-3 \\
        --clip 1 --schedule cosine --pretrain-epochs 2 --carry-u --batch-size 4
    live-rnnrbm train tunes/ --out weights/mine.npz --resume          # continue after Ctrl-C

What the options do and the files a run writes: the package's docstring (``live_rnnrbm.train``).
"""
from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from ..data.corpus import DataError
from ..data.parts import PLAYER_PARTS
from ..data.weights import WeightsError, load_weights, read_meta
from ..kernels import bptt
from ..model import HIGHEST_NOTE, LOWEST_NOTE
from ..signals import catch_stop_signals, restore
from .checkpoint import CheckpointError, latest_path
from .config import MONITOR_KEYS, TrainConfig
from .data import load_training_data
from .resume import resume
from .trainer import Trainer


# what a fine-tune (--init) keeps of its file's metadata
INHERITED_META = ("generation_k", "generation_k_why", "generation_temperature", "generation_density",
                  "generation_temperature_why", "generation_register", "generation_register_why")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..cli import DefaultsHelpFormatter
    p.formatter_class = DefaultsHelpFormatter
    p.add_argument("data", nargs="*", metavar="DATA",
                   help=".mid/.midi files, folders (searched recursively), globs, or a benchmark pickle")
    p.add_argument("--out", required=True, help="best-on-validation weights file (latest: NAME.last.npz)")
    p.add_argument("--resume", action="store_true", help="continue from NAME.last.npz exactly")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 50)")
    _data_arguments(p.add_argument_group("data"))
    _model_arguments(p.add_argument_group("model"))
    o = p.add_argument_group("optimisation (defaults: the tutorial)")
    _optimisation_arguments(o)
    _listening_arguments(p.add_argument_group("listening (conditional training)"))
    # after the listening group, so that command_line() writes the flags in the order they always had
    o.add_argument("--carry-u", action="store_true",
                   help="start each subsequence from the u the previous one of the piece ended with")
    o.add_argument("--threads", type=int, default=None, help="Numba threads (default: all cores)")
    _validation_arguments(p.add_argument_group("validation monitor"))
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--stop-after-steps", type=int, default=0, help=argparse.SUPPRESS)  # tests


def _data_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--split", default="train", help="split of a benchmark pickle to train on")
    g.add_argument("--valid", nargs="+", metavar="DATA", help="validation data (default: the pickle's "
                   "'valid' split, or --valid-fraction of the MIDI pieces)")
    g.add_argument("--valid-fraction", type=float, default=0.1, help="pieces held out without --valid")
    res = g.add_mutually_exclusive_group()
    res.add_argument("--dt", type=float, help="MIDI: seconds per frame (the tutorial: 0.3)")
    res.add_argument("--steps-per-beat", type=int, help="MIDI: frames per beat (default 2: eighth notes)")
    g.add_argument("--common-key", action="store_true",
                   help="MIDI: transpose every piece to C major / C minor (key estimated), as the pickles are")
    g.add_argument("--transpose", type=int, nargs=2, metavar=("MIN", "MAX"), default=(0, 0),
                   help="augment: shift each piece by a random MIN..MAX semitones every epoch (e.g. -6 5)")
    g.add_argument("--lowest-note", type=int, default=LOWEST_NOTE,
                   help="lowest MIDI note of the model's piano-roll (21: the piano's A0); notes below are dropped")
    g.add_argument("--highest-note", type=int, default=HIGHEST_NOTE,
                   help="highest MIDI note of the model's piano-roll (108: the piano's C8); notes above are dropped")


def _model_arguments(m: argparse._ArgumentGroup) -> None:
    m.add_argument("--hidden", type=int, default=150, help="n_h, the RBM's hidden units")
    m.add_argument("--recurrent", type=int, default=100, help="n_u, the RNN's units")
    m.add_argument("--seed", type=int, default=0,
                   help="random seed: the initial weights, piece order, transpositions and Gibbs chains")
    m.add_argument("--init", metavar="WEIGHTS", help="start from this weights file (its sizes and note range) "
                   "instead of the tutorial's random initialisation: fine-tuning")


def _optimisation_arguments(o: argparse._ArgumentGroup) -> None:
    o.add_argument("--batch-frames", type=int, default=100, help="frames per subsequence")
    o.add_argument("--batch-size", type=int, default=1,
                   help="subsequences per update, computed in parallel (use ≥ 2 on 2 cores)")
    o.add_argument("--k", type=int, default=15, help="CD-k Gibbs steps")
    o.add_argument("--chain-start", choices=bptt.CHAIN_STARTS, default="data",
                   help="where each frame's negative chain starts: at the frame (CD, the tutorial), at "
                        "silence (as generation starts it), or at the previous frame")
    o.add_argument("--weight-decay", type=float, default=0.0, help="L2 penalty on W and the RNN's matrices")
    o.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="validate and save the moving average of the weights, updated after every step "
                        "with this decay (e.g. 0.999; 0: off, the weights themselves)")
    o.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                   help="plain SGD (the tutorial's), or Adam (Kingma & Ba)")
    o.add_argument("--lr", type=float, default=0.001, help="learning rate")
    o.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    o.add_argument("--clip", type=float, default=0.0, help="max global gradient norm (0: off)")
    o.add_argument("--schedule", choices=("constant", "cosine", "plateau"), default="constant",
                   help="learning rate over the run: constant, cosine decay, or cut on a validation plateau")
    o.add_argument("--warmup", type=int, default=0, help="steps of linear lr warm-up")
    o.add_argument("--lr-factor", type=float, default=0.5, help="plateau: lr cut factor")
    o.add_argument("--patience", type=int, default=3, help="plateau: validations without gain before a cut")
    o.add_argument("--pretrain-epochs", type=int, default=0, help="RBM pretraining epochs on shuffled frames")
    o.add_argument("--pretrain-lr", type=float, default=None, help="pretraining lr (default: --lr)")
    o.add_argument("--pretrain-rnn-epochs", type=int, default=0,
                   help="before everything, train the RNN alone as a frame predictor (W = 0: exact "
                        "cross-entropy, exact BPTT), so that the RNN-RBM starts from a trained RNN")


def _listening_arguments(lis: argparse._ArgumentGroup) -> None:
    lis.add_argument("--player", nargs="+", choices=PLAYER_PARTS, default=[], metavar="PART",
                     help=f"parts a player may play ({', '.join(PLAYER_PARTS)}): in --player-share of the "
                          "subsequences one is drawn and its notes are clamped in the negative chains, so the "
                          "model learns to accompany them")
    lis.add_argument("--player-share", type=float, default=0.0,
                     help="share of the subsequences trained with a player part (0: none)")
    lis.add_argument("--player-follow", type=float, default=0.0,
                     help="share of those subsequences played as in follow mode: the player's notes are heard "
                          "(player path, RNN) but not clamped, so the model learns the whole frame with them")
    lis.add_argument("--own-history", type=float, default=0.0,
                     help="share of frames whose RNN input is the model's own sample instead of the true "
                          "frame (scheduled sampling: the live instrument's RNN hears its own notes)")
    lis.add_argument("--own-history-k", type=int, default=0,
                     help="Gibbs steps from silence for the model's own frames, as the instrument samples them "
                          "(0: the CD chain's sample, started at the true frame)")
    lis.add_argument("--player-path-only", action="store_true",
                     help="train only the player path (Wpv, Wph, Wpu: the player's notes into the frame's biases and the RNN; "
                          "Wqv, Wqh: the player's trace into the biases), "
                          "the eight parameters of the model untouched, so its unconditional likelihood stays "
                          "exactly as it was (use with --init)")
    lis.add_argument("--keyed-path", action="store_true",
                     help="with --player-path-only and the pieces in C (pickles; --common-key for MIDI): train the "
                          "file's keyed player path, the one `play --key` plays with (the player's notes moved into "
                          "C), and keep its player path as it is (use with --init)")
    lis.add_argument("--own-negative", action="store_true",
                     help="with --own-history-k: the model's own frame is also the negative sample there, so "
                          "training pushes down the harmonies the instrument itself would play where they are wrong")


def _validation_arguments(v: argparse._ArgumentGroup) -> None:
    v.add_argument("--valid-every", type=int, default=1, help="validate every N epochs")
    v.add_argument("--valid-pieces", type=int, default=0, help="validate on N evenly spread pieces (0: all)")
    v.add_argument("--valid-samples", type=int, default=1, help="sampled frames per frame for accuracy")
    v.add_argument("--ais-chains", type=int, default=32, help="AIS chains per frame (validation)")
    v.add_argument("--ais-steps", type=int, default=300, help="AIS steps (validation)")
    v.add_argument("--ais-pieces", type=int, default=0, help="AIS on N evenly spread validation pieces (0: all)")
    v.add_argument("--ais-every", type=int, default=1, help="AIS every N validations (0: never)")
    v.add_argument("--select", choices=("auto", "ll", "xent"), default="auto",
                   help="best weights by AIS log-likelihood (ll) or the cheap cross-entropy (xent); "
                        "auto: ll when AIS runs at every validation")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        n_hidden=args.hidden, n_hidden_recurrent=args.recurrent, lowest_note=args.lowest_note,
        highest_note=args.highest_note, epochs=50 if args.epochs is None else args.epochs,
        batch_frames=args.batch_frames, batch_size=args.batch_size, k=args.k, chain_start=args.chain_start,
        weight_decay=args.weight_decay, ema=args.ema, optimizer=args.optimizer,
        lr=args.lr, momentum=args.momentum, clip=args.clip, schedule=args.schedule, warmup=args.warmup,
        lr_factor=args.lr_factor, patience=args.patience, pretrain_epochs=args.pretrain_epochs,
        pretrain_rnn_epochs=args.pretrain_rnn_epochs,
        pretrain_lr=args.pretrain_lr, carry_u=args.carry_u, transpose_min=args.transpose[0],
        transpose_max=args.transpose[1], player_parts=list(args.player), player_share=args.player_share,
        own_history=args.own_history, own_history_k=args.own_history_k, player_follow=args.player_follow,
        own_negative=args.own_negative, player_path_only=args.player_path_only, keyed_path=args.keyed_path,
        seed=args.seed, valid_every=args.valid_every,
        valid_pieces=args.valid_pieces, valid_samples=args.valid_samples, ais_chains=args.ais_chains,
        ais_steps=args.ais_steps, ais_pieces=args.ais_pieces, ais_every=args.ais_every, select=args.select,
        stop_after_steps=args.stop_after_steps)


def command_line(args: argparse.Namespace) -> str:
    """The command that runs this training: the process's own command line when it is
    ``live-rnnrbm train ...``, else (called from Python) the equivalent one rebuilt from ``args``."""
    if "train" in sys.argv[1:]:
        return shlex.join(["live-rnnrbm"] + sys.argv[sys.argv.index("train"):])
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parts = ["live-rnnrbm", "train", *args.data]
    for a in parser._actions:
        value = getattr(args, a.dest, None)
        if not a.option_strings or a.help == argparse.SUPPRESS or a.dest == "help" or value == a.default:
            continue
        if isinstance(a, argparse._StoreTrueAction):
            parts.append(a.option_strings[-1])
        elif isinstance(value, (list, tuple)):
            parts += [a.option_strings[-1], *map(str, value)]
        else:
            parts += [a.option_strings[-1], str(value)]
    return shlex.join(parts)


class _StopOnSignal:
    """Ctrl-C, SIGTERM or SIGHUP (the terminal closed: ``signals.STOP_SIGNALS``) ask the trainer to
    stop after the current step; a second Ctrl-C is the ordinary KeyboardInterrupt (the last
    checkpoint on disk stays intact: writes are atomic)."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer, self.old = trainer, {}
        self.signum = 0

    def __enter__(self) -> "_StopOnSignal":
        # signal handlers can only be set from the main thread; a run in another one (a Ray Tune
        # trial) is stopped by whoever started that thread
        if threading.current_thread() is threading.main_thread():
            self.old = catch_stop_signals(self._handle)
        return self

    def _handle(self, signum: int, reason: str) -> None:
        if self.trainer.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        self.trainer.stop_requested = True
        doing = ("abandoning this validation (--resume runs it again)" if self.trainer.validating
                 else "finishing this step")
        print(f"\n{signal.Signals(signum).name}: {doing} and writing a checkpoint …", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        restore(self.old)


def run(args: argparse.Namespace, command: str | None = None,
        on_validation: Callable[[dict[str, Any]], None] | None = None) -> int:
    """``live-rnnrbm train``. ``command``: the command line to record in the weights' metadata
    (default: ``command_line(args)``); ``on_validation``: the trainer's hook
    (``Trainer.on_validation``), called with each validated epoch's history record."""
    out = Path(args.out)
    if args.threads:
        import numba
        numba.set_num_threads(args.threads)
    if not (-11 <= args.transpose[0] <= args.transpose[1] <= 11):
        print("error: --transpose MIN MAX needs -11 ≤ MIN ≤ MAX ≤ 11", file=sys.stderr)
        return 2
    if not args.data:
        print("error: name the training data (files, folders, globs or a pickle)", file=sys.stderr)
        return 2

    def warn(msg: str) -> None:
        print(f"warning: {msg}", file=sys.stderr)

    if args.resume:  # the data must be read as it was: the note range and frame length of the run
        try:
            meta = read_meta(latest_path(out))
        except WeightsError as e:
            print(f"error: cannot resume: {e}", file=sys.stderr)
            return 2
        args.lowest_note, args.highest_note = meta["lowest_note"], meta["highest_note"]
        if args.dt is None and args.steps_per_beat is None:
            args.dt, args.steps_per_beat = meta.get("dt"), meta.get("steps_per_beat")

    init_model = None
    if args.init and not args.resume:  # fine-tuning: the file decides the sizes, notes and frame length
        try:
            init_model = load_weights(args.init)
        except WeightsError as e:
            print(f"error: --init: {e}", file=sys.stderr)
            return 2
        args.hidden, args.recurrent = init_model.n_hidden, init_model.n_hidden_recurrent
        args.lowest_note, args.highest_note = init_model.lowest_note, init_model.highest_note
        if args.dt is None and args.steps_per_beat is None:
            args.dt, args.steps_per_beat = init_model.meta.get("dt"), init_model.meta.get("steps_per_beat")
        # the Gibbs steps the weights need to play from silence go with them into the fine-tune
        inherited = {k: init_model.meta[k] for k in INHERITED_META if k in init_model.meta}
        init_model.meta = {}

    try:
        data = load_training_data(args.data, args.valid, args.split, args.valid_fraction, args.dt,
                                  args.steps_per_beat, args.lowest_note, args.highest_note,
                                  args.common_key, args.seed, warn)
    except (DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n_frames = sum(len(V) for V in data.train)
    print(f"data: {len(data.train)} training pieces ({n_frames} frames), {len(data.valid)} validation pieces "
          f"({sum(len(V) for V in data.valid)} frames); {len(data.skipped)} file(s) skipped; "
          f"frames: {', '.join(f'{k}={v}' for k, v in data.resolution.items())}", file=sys.stderr)
    command = command or command_line(args)
    weights_meta = dict(data.resolution, trained_on=data.trained_on, command=command)
    if init_model is not None:
        weights_meta.update(inherited)
    try:
        trainer = _trainer(args, out, data, weights_meta, init_model)
    except (CheckpointError, DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    trainer.on_validation = on_validation
    if not trainer.valid:
        print(f"note: no validation data: {out} gets the weights of the latest epoch", file=sys.stderr)
    else:
        print(f"best weights selected on the {'AIS log-likelihood' if trainer.select == 'll' else 'cheap cross-entropy'}",
              file=sys.stderr)
    with _StopOnSignal(trainer) as sig:
        outcome = trainer.fit(out)
    return _report_end(trainer, out, outcome, sig.signum)


def _trainer(args: argparse.Namespace, out: Path, data, weights_meta: dict[str, Any],
             init_model) -> Trainer:
    """The trainer of this command: resumed from OUT.last.npz, or new (from --init's model)."""
    if args.resume:
        given = config_from_args(args)  # the validation options of this command line apply
        monitor = {k: getattr(given, k) for k in MONITOR_KEYS if k != "valid_k"}
        trainer = resume(latest_path(out), data.train, data.valid, args.epochs, not args.no_progress,
                         weights_meta=weights_meta, monitor=monitor)
        c = trainer.config
        print(f"resuming {latest_path(out)} at {'pretraining ' if trainer.is_pretraining() else ''}epoch "
              f"{trainer.epoch + 1 - (0 if trainer.is_pretraining() else c.pre_epochs)}, "
              f"step {trainer.step}", file=sys.stderr)
        return trainer
    if latest_path(out).exists():
        print(f"note: starting afresh; {latest_path(out)} will be overwritten (use --resume to continue it)",
              file=sys.stderr)
    if init_model is not None:
        weights_meta["init"] = str(args.init)
    return Trainer(data.train, data.valid, config_from_args(args), weights_meta, model=init_model,
                   progress=not args.no_progress)


def _report_end(trainer: Trainer, out: Path, outcome: str, signum: int) -> int:
    """The closing lines of a run, and its exit status: done, stopped by a signal (128 + it), or
    its files written elsewhere because OUT's folder could not take them (1)."""
    best = trainer.best
    if best.get("valid"):
        v = best["valid"]
        ll = f"LL {v['log_likelihood']:.3f} (AIS), " if "log_likelihood" in v else ""
        print(f"best: epoch {best['epoch']}: valid {ll}xent {v['xent']:.3f}, accuracy {v['accuracy']:.3f} → "
              f"{trainer.writer.redirected.get(out, out)}")
    writer = trainer.writer
    if writer.redirected:
        first = next(iter(writer.redirected))
        moves = " && ".join(f"mv {shlex.quote(str(b))} {shlex.quote(str(a))}" for a, b in writer.redirected.items())
        print(f"error: cannot write {first}: {writer.write_error}; nothing is lost: the run stopped and wrote "
              f"its files to {writer.redirect_dir} instead. Make room, then `{moves}` and continue with the same "
              "command and --resume", file=sys.stderr)
        return 1
    if outcome in ("interrupted", "stopped"):
        where = (f"pretraining epoch {trainer.epoch + 1}" if trainer.is_pretraining()
                 else f"epoch {trainer.epoch - trainer.config.pre_epochs + 1}")
        where = (f"in the validation of {where} (its steps are all done)" if trainer.validation_abandoned
                 else f"in {where} after step {trainer.step}")
        print(f"stopped {where}: latest state in {latest_path(out)}; "
              f"continue with the same command and --resume", file=sys.stderr)
        return 128 + signum if signum else 0
    print(f"done: best weights {out}, latest {latest_path(out)}")
    return 0

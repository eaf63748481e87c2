"""One trial of ``live-rnnrbm tune``: a real ``live-rnnrbm train`` run, in a Ray worker, reporting
each validation's score to Ray Tune (which may stop it there: ASHA).

The trial's command line is built first (``trial_argv``), parsed by the train parser and run by
the train command's own ``run``, and recorded as it is in the weights' ``command``: copied into a
shell, it trains the same model again.
"""
from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .space import FLAGS, train_flags


@dataclass(frozen=True)
class Job:
    """What every trial of a search shares: the data (absolute paths: Ray starts each trial in
    a folder of its own), the folder the trials write into, the epochs, the Numba threads of a
    trial (its CPUs) and the train flags given after ``--``."""

    data: tuple[str, ...]
    out: str
    epochs: int
    threads: int
    extra: tuple[str, ...] = ()


def weights_path(job: Job, trial_id: str) -> Path:
    return Path(job.out) / "trials" / trial_id / "weights.npz"


def trial_argv(job: Job, settings: dict[str, Any], trial_id: str) -> list[str]:
    """The ``live-rnnrbm train`` arguments of one trial (without ``live-rnnrbm train``)."""
    return [*job.data, "--out", str(weights_path(job, trial_id)), "--epochs", str(job.epochs),
            *train_flags(settings), "--threads", str(job.threads), "--no-progress", *job.extra]


class ArgvError(ValueError):
    pass


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the usage and exit
        raise ArgvError(message)


def train_parser(raising: bool = False) -> argparse.ArgumentParser:
    """The parser of ``live-rnnrbm train``; ``raising``: ArgvError instead of exiting on a bad argument."""
    from ..train.cli import add_arguments
    p = (_RaisingParser if raising else argparse.ArgumentParser)(prog="live-rnnrbm train")
    add_arguments(p)
    return p


def run_trial(settings: dict[str, Any], job: Job) -> None:
    """The Ray Tune trainable: train with ``settings`` (one value per ``space.FLAGS`` key),
    reporting ``score`` (the trainer's validation score: AIS log-likelihood or the negative
    cross-entropy), the best so far, the epoch, the weights file and the command after each
    validation."""
    from ray import tune

    from ..train import cli as train_cli

    trial_id = tune.get_context().get_trial_id()
    argv = trial_argv(job, {k: settings[k] for k in FLAGS}, trial_id)
    command = shlex.join(["live-rnnrbm", "train", *argv])
    args = train_parser().parse_args(argv)
    best = float("-inf")

    def report(record: dict[str, Any]) -> None:
        nonlocal best
        score = float(record["valid"]["score"])
        best = max(best, score)
        tune.report({"score": score, "best_score": best, "epoch": int(record["epoch"]),
                     "weights": args.out, "command": command})

    code = train_cli.run(args, command=command, on_validation=report)
    if code != 0:
        raise RuntimeError(f"`{command}` exited with code {code} (its error is in the lines above)")
    if best == float("-inf"):
        raise RuntimeError(f"`{command}` never validated: tune needs validation data and a validation "
                           "every few epochs (--valid-every)")

"""`live-rnnrbm tune`: search the training options with Ray Tune (the ``tune`` extra).

    live-rnnrbm tune tunes/ --out tuning/ --samples 16 --epochs 30 -- --valid-pieces 20 --ais-pieces 5
    live-rnnrbm tune tunes.cache --out tuning/ --space space.yaml --address 10.0.0.5:6379

Every trial is a real ``live-rnnrbm train`` run (``trial``) whose weights file records its exact
command; ASHA stops the trials whose validation score lags at the same epoch. At the end the best
trial's weights are copied to OUT/best.npz, and OUT/report.json and a table list every trial.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from .space import FLAGS, Choice, Dim, Fixed, Space, SpaceError, describe, load_space, ray_space
from .trial import ArgvError, Job, train_parser, trial_argv

# train flags a trial sets itself, so that they cannot be given after --
OWN_FLAGS = ("--out", "--epochs", "--resume", "--threads", "--no-progress")
PATH_FLAGS = ("--valid", "--init")  # flags taking paths, made absolute like DATA


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..cli import DefaultsHelpFormatter
    p.formatter_class = DefaultsHelpFormatter
    p.usage = "live-rnnrbm tune DATA... --out DIR [options] [-- TRAIN FLAGS...]"
    p.epilog = ("Flags after -- go to every trial's `live-rnnrbm train` (e.g. -- --valid-pieces 20 --ais-pieces 5 "
                "--optimizer adam); the searched ones (" + ", ".join(FLAGS.values()) + ") are set by the space.")
    p.add_argument("data", nargs="+", metavar="DATA", help="training data, as `live-rnnrbm train` takes it")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for the trials' weights (DIR/trials/ID/weights.npz), best.npz and report.json")
    p.add_argument("--samples", type=int, default=8, help="trials: settings drawn from the space")
    p.add_argument("--epochs", type=int, default=20, help="training epochs of a trial that is not stopped early")
    p.add_argument("--space", metavar="FILE.yaml", help="search space entries in place of the defaults "
                   "(e.g. 'lr: {loguniform: [1.0e-4, 1.0e-2]}', 'hidden: [100, 150]', 'k: 15'; docs/training.md)")
    p.add_argument("--address", help="a Ray cluster's address (HOST:PORT of its head); default: a "
                   "Ray instance of its own on this machine")
    p.add_argument("--cpus-per-trial", type=int, default=1, help="CPUs (and Numba threads) of each trial")
    p.add_argument("--grace", type=int, default=2,
                   help="ASHA: epochs every trial runs before it can be stopped early")
    p.add_argument("--seed", type=int, default=0, help="seed of the settings drawn (the trials' training "
                   "seed is train's --seed, after --)")


def _absolute(extra: list[str]) -> list[str]:
    """The train flags with the paths of --valid and --init made absolute (trials run elsewhere)."""
    out, taking = [], None
    for a in extra:
        if a.startswith("-") and not a.lstrip("-").replace(".", "").isdigit():
            taking = a if a in PATH_FLAGS else None
            flag, eq, value = a.partition("=")
            if eq and flag in PATH_FLAGS:
                a = f"{flag}={Path(value).absolute()}"
            out.append(a)
        elif taking:
            out.append(str(Path(a).absolute()))
            taking = None if taking == "--init" else taking
        else:
            out.append(a)
    return out


def check(args: argparse.Namespace, space: Space, job: Job) -> str | None:
    """What is wrong with the command line, in one line; None when a trial's command parses."""
    bad = [f"--{d.replace('_', '-')} must be ≥ 1, not {getattr(args, d)}"
           for d in ("samples", "epochs", "cpus_per_trial", "grace") if getattr(args, d) < 1]
    if bad:
        return "; ".join(bad)
    # before Ray starts, so that a mistyped path is one line here rather than an error in every trial
    missing = [d for d in job.data if not any(c in d for c in "*?[") and not Path(d).exists()]
    if missing:
        return f"{missing[0]}: no such file or folder"
    for a in job.extra:
        flag = a.partition("=")[0]
        if flag in FLAGS.values():
            key = next(k for k, f in FLAGS.items() if f == flag)
            return f"{flag} is searched: fix it in the space instead (--space FILE with '{key}: VALUE')"
        if flag in OWN_FLAGS:
            return f"{flag} after -- : tune sets it for every trial"
    example = {f.name: _first(getattr(space, f.name)) for f in dataclasses.fields(space)}
    try:
        train_parser(raising=True).parse_args(trial_argv(job, example, "check"))
    except ArgvError as e:
        return f"the train flags after --: {e}"
    return None


def _first(dim: Dim) -> Any:
    """A value the dimension can take: enough to check that a trial's command parses."""
    return dim.value if isinstance(dim, Fixed) else dim.values[0] if isinstance(dim, Choice) else dim.low


def run(args: argparse.Namespace) -> int:
    try:
        import ray
        from ray import tune
    except ImportError:
        print('error: live-rnnrbm tune needs Ray Tune: pip install "live-rnnrbm[tune]"', file=sys.stderr)
        return 2
    try:
        space = load_space(args.space) if args.space else Space()
    except SpaceError as e:
        print(f"error: --space {e}", file=sys.stderr)
        return 2
    out = Path(args.out).absolute()
    job = Job(data=tuple(str(Path(d).absolute()) for d in args.data), out=str(out), epochs=args.epochs,
              threads=args.cpus_per_trial, extra=tuple(_absolute(list(args.train_flags))))
    problem = check(args, space, job)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from .trial import run_trial

    out.mkdir(parents=True, exist_ok=True)
    ray.init(address=args.address or "local", include_dashboard=False, logging_level=logging.WARNING)
    try:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(run_trial, job=job), {"cpu": args.cpus_per_trial}),
            param_space=ray_space(space),
            tune_config=tune.TuneConfig(
                num_samples=args.samples,
                scheduler=ASHAScheduler(time_attr="epoch", metric="score", mode="max", max_t=args.epochs,
                                        grace_period=min(args.grace, args.epochs)),
                search_alg=BasicVariantGenerator(random_state=args.seed)),
            run_config=tune.RunConfig(name="ray", storage_path=str(out), verbose=1))
        results = tuner.fit()
        trials = [_trial_record(r, args.epochs) for r in results]
    finally:
        ray.shutdown()
    return _report(trials, out, space, args)


def _trial_record(result: Any, epochs: int) -> dict[str, Any]:
    m = result.metrics or {}
    settings = {k: result.config[k] for k in FLAGS}
    settings["transpose"] = list(settings["transpose"])
    scored = "best_score" in m
    return {"trial": m.get("trial_id") or Path(result.path).name, "settings": settings,
            "best_score": m.get("best_score") if scored else None,
            "epochs_run": m.get("epoch", 0), "stopped_early": bool(scored and result.error is None
                                                                    and m.get("epoch", 0) < epochs),
            "error": None if result.error is None else str(result.error).strip().splitlines()[-1],
            "command": m.get("command"), "weights": m.get("weights")}


def _report(trials: list[dict[str, Any]], out: Path, space: Space, args: argparse.Namespace) -> int:
    scored = [t for t in trials if t["best_score"] is not None]
    best = max(scored, key=lambda t: t["best_score"]) if scored else None
    report = {"metric": "the trainer's validation score (AIS log-likelihood when AIS runs at every "
                        "validation, else the negative cross-entropy of the cheap monitor)",
              "space": describe(space), "samples": args.samples, "epochs": args.epochs, "grace": args.grace,
              "best": best and dict(best, copied_to=str(out / "best.npz")),
              "trials": sorted(trials, key=lambda t: -t["best_score"] if t["best_score"] is not None else 1e300)}
    if best:
        shutil.copyfile(best["weights"], out / "best.npz")
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(_table(report["trials"], args.epochs))
    if best is None:
        first = next((t["error"] for t in trials if t["error"]), "no trial reported a validation score")
        print(f"error: no trial finished a validation: {first}", file=sys.stderr)
        return 1
    print(f"best: {best['trial']}, score {best['best_score']:.4f} → {out / 'best.npz'}\n"
          f"  its command: {best['command']}\nreport: {out / 'report.json'}")
    return 0


def _table(trials: list[dict[str, Any]], epochs: int) -> str:
    head = ["trial", *FLAGS, "best score", "epochs", "early"]
    rows = [[t["trial"], *(shlex.join(map(str, v)) if isinstance(v, list) else f"{v:.3g}" if isinstance(v, float)
                           else str(v) for v in t["settings"].values()),
             "error" if t["best_score"] is None else f"{t['best_score']:.4f}", f"{t['epochs_run']}/{epochs}",
             "yes" if t["stopped_early"] else ""] for t in trials]
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [head] + rows]
    lines += [f"{t['trial']}: {t['command'] or t['error']}" for t in trials]
    return "\n".join(lines)

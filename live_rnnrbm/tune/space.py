"""The search space of ``live-rnnrbm tune``: which training options are searched, over what, and
how a ``--space FILE.yaml`` changes that.

    lr: {loguniform: [1.0e-4, 1.0e-2]}      # a distribution (loguniform, uniform; randint for whole numbers)
    hidden: [100, 150, 200]                  # a list: one of these values
    schedule: cosine                         # a single value: fixed
    transpose: [[0, 0], [-6, 5]]             # transpose's values are MIN MAX pairs: [-6, 5] alone is fixed

A key the file leaves out keeps its default (``Space``'s). Each key is one ``train`` flag
(``FLAGS``), so a trial's settings are a ``live-rnnrbm train`` command line (``train_flags``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

import yaml


class SpaceError(ValueError):
    """A search-space entry that cannot be used; the message is one line naming the key."""


@dataclass(frozen=True)
class Fixed:
    value: Any


@dataclass(frozen=True)
class Choice:
    values: tuple


@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float


@dataclass(frozen=True)
class RandInt:
    low: int  # both ends included
    high: int


Dim = Union[Fixed, Choice, LogUniform, Uniform, RandInt]


@dataclass(frozen=True)
class Space:
    """The default search: the options the shipped weights were tuned by hand on, around their values."""

    lr: Dim = LogUniform(1e-4, 1e-2)
    schedule: Dim = Choice(("constant", "cosine"))
    weight_decay: Dim = Choice((0.0, 1e-4, 1e-3))
    transpose: Dim = Choice(((0, 0), (-3, 3), (-6, 5)))
    hidden: Dim = Choice((100, 150, 200))
    recurrent: Dim = Choice((50, 100, 150))
    k: Dim = Choice((10, 15, 25))
    ema: Dim = Choice((0.0, 0.99, 0.999))
    pretrain_epochs: Dim = Choice((0, 1, 2))


FLAGS = {"lr": "--lr", "schedule": "--schedule", "weight_decay": "--weight-decay", "transpose": "--transpose",
         "hidden": "--hidden", "recurrent": "--recurrent", "k": "--k", "ema": "--ema",
         "pretrain_epochs": "--pretrain-epochs"}
"""Each key's ``live-rnnrbm train`` flag."""


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _whole(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _pair(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and len(x) == 2 and all(_whole(v) for v in x) and -11 <= x[0] <= x[1] <= 11


# each key: (is the value allowed, what it must be, the distributions it takes)
VALUES: dict[str, tuple[Callable[[Any], bool], str, tuple[str, ...]]] = {
    "lr": (lambda x: _number(x) and x > 0, "a number > 0", ("loguniform", "uniform")),
    "schedule": (lambda x: x in ("constant", "cosine", "plateau"), "constant, cosine or plateau", ()),
    "weight_decay": (lambda x: _number(x) and x >= 0, "a number ≥ 0", ("loguniform", "uniform")),
    "transpose": (_pair, "a pair [MIN, MAX] of semitones, -11 ≤ MIN ≤ MAX ≤ 11", ()),
    "hidden": (lambda x: _whole(x) and x >= 1, "a whole number ≥ 1", ("randint",)),
    "recurrent": (lambda x: _whole(x) and x >= 1, "a whole number ≥ 1", ("randint",)),
    "k": (lambda x: _whole(x) and x >= 1, "a whole number ≥ 1", ("randint",)),
    "ema": (lambda x: _number(x) and 0 <= x < 1, "a number in [0, 1)", ("uniform",)),
    "pretrain_epochs": (lambda x: _whole(x) and x >= 0, "a whole number ≥ 0", ("randint",)),
}
DISTRIBUTIONS = {"loguniform": LogUniform, "uniform": Uniform, "randint": RandInt}


def parse_dim(key: str, entry: Any) -> Dim:
    """One entry of a space file (see the module's docstring); SpaceError naming the key."""
    ok, must, dists = VALUES[key]

    def check(value: Any) -> Any:
        if not ok(value):
            raise SpaceError(f"{key}: each value must be {must}, not {value!r}")
        return tuple(value) if key == "transpose" else float(value) if must.startswith("a number") else value

    if isinstance(entry, dict):
        if len(entry) != 1 or next(iter(entry)) not in DISTRIBUTIONS:
            raise SpaceError(f"{key}: a distribution is one of {', '.join(DISTRIBUTIONS)} with [low, high], "
                             f"not {entry!r}")
        name, ends = next(iter(entry.items()))
        if name not in dists:
            takes = f"{' or '.join(dists)}, a list of values or one value" if dists else "a list of values or one value"
            raise SpaceError(f"{key}: takes {takes}, not {name}")
        if not (isinstance(ends, list) and len(ends) == 2):
            raise SpaceError(f"{key}: {name} needs [low, high], not {ends!r}")
        low, high = check(ends[0]), check(ends[1])
        if not low < high or (name == "loguniform" and low <= 0):
            raise SpaceError(f"{key}: {name} needs [low, high] with {'0 < ' if name == 'loguniform' else ''}"
                             f"low < high, not {ends!r}")
        return DISTRIBUTIONS[name](low, high)
    if isinstance(entry, list) and not (key == "transpose" and _pair(entry)):
        if not entry:
            raise SpaceError(f"{key}: an empty list of values")
        return Choice(tuple(check(v) for v in entry))
    return Fixed(check(entry))


def load_space(path: str | Path) -> Space:
    """The default space with a YAML file's entries in place of its own; SpaceError (one line,
    naming the file and the key) for an unknown key or a value that cannot be used."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise SpaceError(f"{path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: a space file maps keys to values, e.g. 'lr: {{loguniform: [1.0e-4, 1.0e-2]}}'")
    unknown = [k for k in raw if k not in FLAGS]
    if unknown:
        raise SpaceError(f"{path}: unknown key {unknown[0]!r}; the keys are {', '.join(FLAGS)}")
    try:
        return dataclasses.replace(Space(), **{k: parse_dim(k, v) for k, v in raw.items()})
    except SpaceError as e:
        raise SpaceError(f"{path}: {e}") from None


def ray_space(space: Space) -> dict[str, Any]:
    """The space as Ray Tune's ``param_space``."""
    from ray import tune

    def one(d: Dim) -> Any:
        if isinstance(d, Fixed):
            return d.value
        if isinstance(d, Choice):
            return tune.choice(list(d.values))
        if isinstance(d, LogUniform):
            return tune.loguniform(d.low, d.high)
        if isinstance(d, Uniform):
            return tune.uniform(d.low, d.high)
        return tune.randint(d.low, d.high + 1)  # Ray's high is excluded

    return {f.name: one(getattr(space, f.name)) for f in dataclasses.fields(space)}


def describe(space: Space) -> dict[str, str]:
    """Each key's range, for the report: '[0.0001, 0.01] log', 'one of 100, 150, 200', 'fixed 3'."""
    def one(d: Dim) -> str:
        if isinstance(d, Fixed):
            return f"fixed {d.value}"
        if isinstance(d, Choice):
            return "one of " + ", ".join(map(str, d.values))
        kind = {LogUniform: "log-uniform", Uniform: "uniform", RandInt: "whole numbers"}[type(d)]
        return f"{kind} in [{d.low}, {d.high}]"

    return {f.name: one(getattr(space, f.name)) for f in dataclasses.fields(space)}


def train_flags(settings: dict[str, Any]) -> list[str]:
    """A trial's settings (one value a key) as ``live-rnnrbm train`` flags. Values may come back
    from Ray as NumPy numbers or lists: floats are written by ``repr``, which reads back exactly."""
    flags: list[str] = []
    for key, flag in FLAGS.items():
        value = settings[key]
        if key == "transpose":
            flags += [flag, *(str(int(v)) for v in value)]
        elif VALUES[key][1].startswith("a number"):
            flags += [flag, repr(float(value))]
        else:
            flags += [flag, str(value if key == "schedule" else int(value))]
    return flags

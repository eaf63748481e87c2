"""The weights file: one ``.npz`` holding the eight parameters and a JSON ``meta`` record.

``meta`` carries: ``format_version``; the note range (``lowest_note``, ``highest_note``); the
frame resolution (``dt`` seconds or ``steps_per_beat``, with a ``bpm`` to play it at); the sizes
(``n_visible``, ``n_hidden``, ``n_hidden_recurrent``); ``trained_on``, ``created``, ``command``
and the ``training`` settings; ``untrained`` for a model nobody has trained yet. Loading checks
all of it and says exactly what is wrong.

>>> save_weights(model, "weights/mine.npz", trained_on="my tunes")     # doctest: +SKIP
>>> model = load_weights("weights/mine.npz")                             # doctest: +SKIP

``load_model`` is the model a command runs (``--weights``: a file, a shipped name, else an untrained
model); ``generation_settings`` and ``frame_resolution`` read how its metadata says to play it.
"""
from __future__ import annotations

import datetime as _dt
import difflib
import io
import json
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import in_words
from ..model import FILE_PARAM_NAMES, PARAM_NAMES, RnnRbm, keyed_shapes, param_shapes

FORMAT_VERSION = 1
SIZE_KEYS = ("n_visible", "n_hidden", "n_hidden_recurrent")
DEFAULT_WEIGHTS = "nottingham.npz"


class WeightsError(ValueError):
    """A weights file that cannot be used; the message names the file and what is wrong."""


def weights_arrays(model: RnnRbm, **meta: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metadata record and the arrays of ``model``'s weights file, as ``save_weights`` writes
    them: the model's own meta, updated with ``meta`` and the sizes."""
    record = dict(model.meta)
    record.update(meta)
    record.update(format_version=FORMAT_VERSION, lowest_note=model.lowest_note,
                  highest_note=model.highest_note, n_visible=model.n_visible, n_hidden=model.n_hidden,
                  n_hidden_recurrent=model.n_hidden_recurrent, seed=model.seed)
    record.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    if record.get("dt") is None and record.get("steps_per_beat") is None:
        record["dt"] = 0.3  # the tutorial's frame length, when the caller did not say
    # the player path only where it was trained: a file without one stays as the paper's model
    params = {n: a for n, a in model.params.items() if n in PARAM_NAMES or a.any()}
    return record, dict(meta=np.array(json.dumps(record, sort_keys=True)), **params)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes of an ``.npz`` file holding ``arrays``: made in memory, so that a file that cannot
    be written (a full disk) can still be written elsewhere, and its size is known beforehand."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def write_atomically(path: str | Path, data: bytes, suffix: str = ".tmp.npz") -> Path:
    """Write ``data`` to ``path`` through a temporary file (named ``path`` + random + ``suffix``)
    renamed over it: a crash or a full disk mid-write leaves the old file intact (and no temporary
    file behind). OSError on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a weights file is not
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_weights(model: RnnRbm, path: str | Path, **meta: Any) -> Path:
    """Write ``model`` to ``path`` (float32 unless the model is float64) atomically: a crash mid-
    write leaves the old file intact. Extra keyword arguments are merged into the metadata."""
    record, arrays = weights_arrays(model, **meta)
    write_atomically(path, npz_bytes(arrays))
    model.meta = record
    return Path(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fail(path: Path, what: str) -> WeightsError:
    return WeightsError(f"{path}: {what}")


def read_meta(path: str | Path) -> dict[str, Any]:
    """Only the metadata of a weights file (checked as ``load_weights`` checks it)."""
    return _read(Path(path), arrays=False)[0]


def _read(path: Path, arrays: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not path.exists():
        raise _fail(path, "no such file")
    if path.is_dir():
        raise _fail(path, "is a folder, not a weights file")
    if not zipfile.is_zipfile(path):
        raise _fail(path, "not an .npz weights file (not a zip archive at all)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if "meta" not in names:
                raise _fail(path, "no 'meta' record: not a live-rnnrbm weights file")
            try:
                meta = json.loads(str(npz["meta"][()]))
            except (ValueError, TypeError) as e:
                raise _fail(path, f"the 'meta' record is not valid JSON ({e})") from None
            missing = [n for n in PARAM_NAMES if n not in names]
            if missing:
                raise _fail(path, f"missing array(s): {', '.join(missing)} "
                                  f"(a weights file holds {', '.join(PARAM_NAMES)})")
            params = {n: npz[n] for n in FILE_PARAM_NAMES if n in names} if arrays else {}
    except WeightsError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise _fail(path, f"damaged .npz file: {in_words(e, path)}") from None
    _check_meta(path, meta)
    return meta, params


def _check_meta(path: Path, meta: Any) -> None:
    if not isinstance(meta, dict):
        raise _fail(path, "the 'meta' record is not a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise _fail(path, f"unknown format version {version!r} (this live-rnnrbm reads version {FORMAT_VERSION})")
    for key in ("lowest_note", "highest_note") + SIZE_KEYS:
        if not isinstance(meta.get(key), int) or meta[key] < 0:
            raise _fail(path, f"meta '{key}' must be a whole number ≥ 0, found {meta.get(key)!r}")
    if not 0 <= meta["lowest_note"] <= meta["highest_note"] <= 127:
        raise _fail(path, f"note range {meta['lowest_note']}..{meta['highest_note']} is not within MIDI 0..127")
    if meta["n_visible"] != meta["highest_note"] - meta["lowest_note"] + 1:
        raise _fail(path, f"n_visible {meta['n_visible']} does not match the note range "
                          f"{meta['lowest_note']}..{meta['highest_note']}")
    dt, spb = meta.get("dt"), meta.get("steps_per_beat")
    if (dt is None) == (spb is None):
        raise _fail(path, "meta must give exactly one frame resolution: 'dt' (seconds) or 'steps_per_beat'")
    if dt is not None and not (isinstance(dt, (int, float)) and dt > 0):
        raise _fail(path, f"meta 'dt' must be > 0 seconds, found {dt!r}")
    if spb is not None and not (isinstance(spb, int) and spb >= 1):
        raise _fail(path, f"meta 'steps_per_beat' must be a whole number ≥ 1, found {spb!r}")


def load_weights(path: str | Path, dtype: Any = np.float32, expect: dict[str, int] | None = None) -> RnnRbm:
    """Load a weights file into an ``RnnRbm``, checking every array against the sizes recorded in
    its metadata. ``expect`` (e.g. ``{"n_hidden": 150}``) names sizes the caller needs; a
    difference is reported key by key."""
    path = Path(path)
    meta, params = _read(path)
    if expect:
        diffs = [f"{k} is {meta.get(k)} in the file but {v} is expected" for k, v in expect.items() if meta.get(k) != v]
        if diffs:
            raise _fail(path, "weights do not fit the model: " + "; ".join(diffs))
    shapes = param_shapes(meta["n_visible"], meta["n_hidden"], meta["n_hidden_recurrent"])
    shapes.update(keyed_shapes(meta["n_visible"], meta["n_hidden"], meta["n_hidden_recurrent"]))
    wrong = [f"{n} has shape {params[n].shape}, expected {shapes[n]}" for n in params if params[n].shape != shapes[n]]
    if wrong:
        raise _fail(path, "weights do not fit the sizes in its metadata "
                          f"(n_visible={meta['n_visible']}, n_hidden={meta['n_hidden']}, "
                          f"n_hidden_recurrent={meta['n_hidden_recurrent']}): " + "; ".join(wrong))
    for n in params:
        if params[n].dtype.kind != "f":
            raise _fail(path, f"array {n} holds {params[n].dtype}, not floating-point numbers")
        if not np.all(np.isfinite(params[n])):
            raise _fail(path, f"array {n} holds NaN or infinite values")
    return RnnRbm(meta["n_hidden"], meta["n_hidden_recurrent"], meta["lowest_note"], meta["highest_note"],
                  int(meta.get("seed", 0)), dtype, params, meta)


def shipped_weights(name: str = DEFAULT_WEIGHTS) -> Path | None:
    """The path of a weights file shipped with the package (the repo's ``weights/``), or None."""
    try:
        candidate = resources.files("live_rnnrbm._weights") / name
        if candidate.is_file():
            return Path(str(candidate))
    except (ModuleNotFoundError, FileNotFoundError):
        pass
    local = Path(__file__).resolve().parents[2] / "weights" / name  # a source checkout
    return local if local.is_file() else None


def shipped_names() -> list[str]:
    """The names of the weights files shipped with the package ('jsb', 'nottingham'), sorted."""
    found: set[str] = set()
    try:
        found |= {Path(f.name).stem for f in resources.files("live_rnnrbm._weights").iterdir()
                  if f.name.endswith(".npz")}
    except (ModuleNotFoundError, FileNotFoundError):
        pass
    local = Path(__file__).resolve().parents[2] / "weights"  # a source checkout
    if local.is_dir():
        found |= {f.stem for f in local.glob("*.npz")}
    return sorted(found)


def resolve_weights(spec: str | Path | None) -> Path | None:
    """A ``--weights`` value as a path: an existing file, or the name of a shipped one
    ('nottingham', 'jsb.npz'); None (no value) gives the default shipped weights if present."""
    if spec is None:
        return shipped_weights()
    p = Path(spec)
    if p.exists():
        return p
    name = p.name if p.suffix == ".npz" else p.name + ".npz"
    if len(p.parts) == 1:
        found = shipped_weights(name)
        if found:
            return found
    return p  # let load_weights report it


def load_model(spec: str | None, seed: int | None = None, warn=None) -> RnnRbm:
    """The model a command runs: a weights file, a shipped one by name, or (with nothing shipped
    yet) a clearly labelled untrained model. ``warn`` receives warnings (default: stderr)."""
    warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))
    path = resolve_weights(spec)
    if path is not None and not path.exists() and len(Path(str(spec)).parts) == 1:
        # a bare word is either a file here or a shipped name: say which names there are
        names = shipped_names()
        close = difflib.get_close_matches(Path(str(spec)).stem, names, n=1)
        raise WeightsError(f"{spec}: no such file, and no shipped weights of that name"
                           + (f" (did you mean {close[0]!r}?)" if close else "")
                           + f"; shipped: {', '.join(names) or 'none'}")
    if path is None:
        warn("no trained weights are shipped with this installation: using an UNTRAINED model "
             "(random parameters). Train one with `live-rnnrbm train`.")
        model = RnnRbm(seed=0 if seed is None else seed, meta={"untrained": True, "steps_per_beat": 2, "bpm": 120.0})
    else:
        model = load_weights(path)
        if model.meta.get("untrained"):
            warn(f"{path} holds an UNTRAINED model (random parameters)")
    if seed is not None:
        model.reseed(seed)
    return model


TUTORIAL_K = 25


@dataclass(frozen=True)
class GenerationSettings:
    """How a model plays on its own, as its weights' metadata asks: Gibbs steps per frame (a
    trained model may need more than the tutorial's 25 to mix from silence), the temperature and
    the density (every note's odds × density) at which its free generation matches its data, and
    the register hold (semitones wide; 0: none) that keeps a piece in its register
    (``kernels.register``)."""
    k: int = TUTORIAL_K
    temperature: float = 1.0
    density: float = 1.0
    register: float = 0.0


def generation_settings(model: RnnRbm, k: int | None = None, temperature: float | None = None,
                        density: float | None = None, register: float | None = None) -> GenerationSettings:
    """How ``generate``, ``play`` and ``eval --task free`` play the model: each of k, temperature,
    density, register as given (a command's flag), else the metadata's ``generation_k``,
    ``generation_temperature``, ``generation_density``, ``generation_register``, else the model's
    own sampler (25 steps, temperature 1, density 1, no register hold)."""
    m = model.meta
    if register is None:
        register = m.get("generation_register") or 0.0
    return GenerationSettings(int(k or m.get("generation_k") or TUTORIAL_K),
                              float(temperature or m.get("generation_temperature") or 1.0),
                              float(density or m.get("generation_density") or 1.0), float(register))


def frame_resolution(model: RnnRbm) -> dict:
    """The frame length a model was trained with, as keyword arguments for roll conversion."""
    meta = model.meta
    if meta.get("steps_per_beat"):
        return {"steps_per_beat": int(meta["steps_per_beat"])}
    return {"dt": float(meta.get("dt", 0.3))}

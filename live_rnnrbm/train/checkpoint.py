"""The trainer's "latest" checkpoint: one ``.npz`` that is both a weights file (``load_weights``,
``live-rnnrbm play --weights`` read it as they read any other) and the full training state for
``--resume`` — optimiser arrays, the RNN states carried between subsequences, the position in the
epoch and the settings, in the ``meta`` record under ``"train_state"``.

Written atomically (a temporary file renamed over the old one): a crash or a second Ctrl-C while
writing leaves the previous checkpoint intact. ``latest_path`` names it after the best weights'
file; ``write_elsewhere`` finds another folder for a file its own folder cannot take (a full
disk), and ``SafeWriter`` writes there when it must, or keeps the file in memory until it fits.

>>> save_checkpoint("weights/mine.last.npz", model, meta, {"opt.m.W": m_W})   # doctest: +SKIP
>>> model, meta, arrays = load_checkpoint("weights/mine.last.npz")           # doctest: +SKIP
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..data.weights import WeightsError, load_weights, npz_bytes, weights_arrays, write_atomically
from ..model import FILE_PARAM_NAMES, RnnRbm


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file and why."""


def checkpoint_arrays(model: RnnRbm, meta: dict[str, Any], state_arrays: dict[str, np.ndarray]
                      ) -> dict[str, np.ndarray]:
    """The arrays of a checkpoint: the model's weights file (metadata built and checked exactly as
    ``save_weights`` does) plus the training-state arrays (names must not clash with the weights')."""
    clash = set(state_arrays) & set(FILE_PARAM_NAMES + ("meta",))
    if clash:
        raise ValueError(f"state array names clash with the weights file's: {sorted(clash)}")
    _, arrays = weights_arrays(model, **meta)
    arrays.update({k: np.asarray(v) for k, v in state_arrays.items()})
    return arrays


def save_checkpoint(path: str | Path, model: RnnRbm, meta: dict[str, Any],
                    state_arrays: dict[str, np.ndarray]) -> Path:
    """Write the model (as a weights file would hold it), ``meta`` and the extra training-state
    arrays to ``path``, atomically."""
    return write_atomically(path, npz_bytes(checkpoint_arrays(model, meta, state_arrays)))


def load_checkpoint(path: str | Path) -> tuple[RnnRbm, dict[str, Any], dict[str, np.ndarray]]:
    """(model, meta, state arrays) of a checkpoint; ``CheckpointError`` naming the file when it
    is missing, damaged or not a training checkpoint."""
    path = Path(path)
    try:
        model = load_weights(path)
    except WeightsError as e:
        raise CheckpointError(f"cannot resume: {e}") from None
    meta = model.meta
    if "train_state" not in meta:
        raise CheckpointError(f"{path}: a weights file without training state (not a '.last.npz' "
                              "checkpoint written by `live-rnnrbm train`); cannot resume from it")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {n: npz[n] for n in npz.files if n not in FILE_PARAM_NAMES and n != "meta"}
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: damaged checkpoint ({e})") from None
    return model, meta, arrays


def latest_path(out: str | Path) -> Path:
    """weights/name.npz → weights/name.last.npz (the latest state, for --resume)."""
    out = Path(out)
    return out.with_name(out.stem + ".last.npz")


def write_elsewhere(path: Path, data: bytes) -> Path | None:
    """Write ``data`` as ``path.name`` in a new folder of the temporary folder ($TMPDIR when set:
    the user's choice, not whatever tempfile would fall back to), the home folder or the current
    folder, the first on another filesystem than ``path`` that takes it; None if none."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        full = {os.stat(folder).st_dev}
    except OSError:
        full = set()
    for candidate in (os.environ.get("TMPDIR") or tempfile.gettempdir(), Path.home(), Path.cwd()):
        try:
            dev = os.stat(candidate).st_dev
        except OSError:
            continue
        if dev in full:
            continue
        try:
            sub = Path(tempfile.mkdtemp(prefix="live-rnnrbm-", dir=candidate))
        except OSError:
            full.add(dev)
            continue
        try:
            return write_atomically(sub / path.name, data)
        except OSError:
            full.add(dev)
            sub.rmdir()
    return None


RETRY_SECONDS = 2.0  # a file no folder can take is written again this often


class SafeWriter:
    """Writes the run's files (the checkpoint, the best weights) so that none is lost with the
    run's work in it; ``redirected``: each file that went elsewhere → where it went, in
    ``redirect_dir``; ``write_error``: why it could not go where asked."""

    def __init__(self) -> None:
        self.redirected: dict[Path, Path] = {}
        self.redirect_dir: Path | None = None
        self.write_error = ""

    def write(self, path: Path, data: bytes) -> Path:
        """Write a checkpoint's or weights file's bytes to ``path``, or, when that fails (a full
        disk, a folder that became read-only), to a new folder where there is room: the file is
        never lost with the run's work in it. ``redirected`` then maps each file to where it went
        (its companion files follow it there), and ``Trainer.fit`` stops the run. When no folder
        can take it, the state stays in memory and the write is retried every ``RETRY_SECONDS``,
        after saying so once, until it fits (a second Ctrl-C gives up)."""
        said = False
        while True:
            try:
                if self.redirect_dir is None:
                    where = write_atomically(path, data)
                else:
                    where = self.redirected[path] = write_atomically(self.redirect_dir / path.name, data)
                if said:
                    print(f"note: {where} written at last; training goes on", file=sys.stderr, flush=True)
                return where
            except OSError as e:
                error = e
            where = write_elsewhere(path, data)
            if where is not None:
                self.redirect_dir, self.redirected[path] = where.parent, where
                self.write_error = f"{error.strerror or error}"
                return where
            if not said:
                print(f"error: cannot write {path} ({len(data) / 1e6:.1f} MB): {error.strerror or error}, and no "
                      f"other folder can take it either: the training state is kept in memory and the write retried "
                      f"every {RETRY_SECONDS:.0f} s: make room (Ctrl-C twice gives up)", file=sys.stderr, flush=True)
                said = True
            try:
                time.sleep(RETRY_SECONDS)
            except KeyboardInterrupt:
                print("gave up: the training since the last checkpoint on disk is lost", file=sys.stderr, flush=True)
                raise

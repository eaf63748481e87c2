"""Building a corpus cache (the format is ``cache``'s): files converted in worker processes
(``cache_convert``), a chunk of files a task, the rest taken over from the previous cache, all
written by ``cache_write``; an interrupted build leaves the previous cache as it was and its work in
``partial.json`` for the next.

>>> info = build_cache(["Nottingham/train", "Nottingham/valid"], "nott-cache")  # doctest: +SKIP
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from ..model import HIGHEST_NOTE, LOWEST_NOTE
from .cache import CHUNK_FILES, MANIFEST, PARTIAL, PARTIAL_EVERY, Cache, Settings
from .cache_convert import Converted, convert_chunk
from .cache_write import CacheWriter, is_cache_file, lock_folder, taken_over, tidy
from .corpus import DataError, find_sources_with_roots, too_short
from .pianoroll import _check_resolution


def _quiet_worker() -> None:
    # Ctrl-C reaches the whole process group: the build stops in the main process, whose
    # executor ends the workers, instead of every worker printing its own traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Inline(Executor):
    """Runs each task as it is submitted (one job: no worker processes)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 -- the caller gets it from result(), as from a pool
            f.set_exception(e)
        return f


@dataclass
class CacheInfo:
    """What a build did."""

    path: Path
    files: int
    pieces: int  # of 2 frames or more (the shorter are counted in skipped)
    frames: int  # theirs
    converted: int  # files read and converted
    reused: int  # files of the same size and mtime as the cache knew them: taken over unread
    rehashed: int  # files whose mtime changed but not their contents (same hash): taken over
    removed: int  # files the previous cache held that are no longer among the sources
    skipped: list[tuple[str, str]]  # (file, reason): unreadable files, and pieces under 2 frames
    rolls_bytes: int
    manifest_bytes: int
    source_bytes: int
    seconds: float
    jobs: int
    settings: Settings
    note: str = ""  # why the previous cache, or part of it, could not be used


def _previous(folder: Path, settings: Settings) -> tuple[dict, set, str]:
    """What a build into ``folder`` can take over: (root, path) → (cache, file row), from the
    cache there and from an interrupted build's partial one (the newer, so it comes second); the
    files of the complete one; and why some could not be used."""
    found: dict[tuple[str, str], tuple[Cache, int]] = {}
    complete: set[tuple[str, str]] = set()
    notes = []
    for name in (MANIFEST, PARTIAL):
        if not (folder / name).exists():
            continue
        try:
            cache = Cache(folder, name)
        except DataError as e:
            notes.append(f"{e} (so its files are converted again)")
            continue
        if cache.settings != settings:
            notes.append(f"the cache was built with {cache.settings.describe()}: every file is converted again")
            continue
        for i in range(cache.n_files):
            key = (cache.roots[cache.files["root"][i]], cache.files["path"][i])
            found[key] = (cache, i)
            if name == MANIFEST:
                complete.add(key)
    return found, complete, "; ".join(notes)


def skipped_files(roots: list[str], files: dict, frames: Sequence[int]) -> list[tuple[str, str]]:
    """(file, reason) for each file of a manifest's tables that could not be read, and each piece
    too short to train on (under 2 frames)."""
    out, j = [], 0
    for i, n in enumerate(files["pieces"]):
        name = os.path.join(roots[files["root"][i]], files["path"][i])
        if files["error"][i] is not None:
            out.append((name, files["error"][i]))
        out += [(name, too_short(int(m))) for m in frames[j:j + n] if m < 2]
        j += n
    return out


def _up_to_date(cache: Cache, start: float) -> CacheInfo:
    usable = cache.frames[cache.frames >= 2]
    return CacheInfo(cache.folder, cache.n_files, len(usable), int(usable.sum()), 0, cache.n_files, 0, 0,
                     skipped_files(cache.roots, cache.files, cache.frames), cache.rolls.nbytes,
                     cache.path.stat().st_size, cache.built["source_bytes"],
                     round(time.perf_counter() - start, 3), 0, cache.settings, "up to date: nothing written")


def build_cache(sources: Iterable[str | Path], out_dir: str | Path, dt: float | None = None,
                steps_per_beat: int | None = None, lowest_note: int = LOWEST_NOTE, highest_note: int = HIGHEST_NOTE,
                include_drums: bool = False, jobs: int | None = None, progress: bool = True,
                executor: Executor | None = None) -> CacheInfo:
    """Convert the sources (as ``load_corpus`` names them) into a cache in ``out_dir``, or bring the
    cache there up to date: files unchanged since it was built are taken over, the others
    converted in ``jobs`` processes (default: one per core) or on ``executor``. A progress bar with
    the time left goes to stderr when ``progress``. ``DataError`` for bad sources or settings, an
    ``out_dir`` that holds other files, or no usable piece at all; an interruption (Ctrl-C, an
    exception) leaves the previous cache, and keeps what was converted for the next build."""
    start = time.perf_counter()
    if dt is None and steps_per_beat is None:
        steps_per_beat = 2
    try:
        _check_resolution(dt, steps_per_beat)
    except ValueError as e:
        raise DataError(str(e)) from None
    if not 0 <= lowest_note <= highest_note <= 127:
        raise DataError(f"the note range {lowest_note}..{highest_note} is not within MIDI 0..127")
    settings = Settings(dt, None if dt is not None else int(steps_per_beat), lowest_note, highest_note, include_drums)
    sources = [str(s) for s in sources]
    found = find_sources_with_roots(sources)
    for f, _ in found:
        if f.is_dir():
            raise DataError(f"{f}: is a corpus cache; build from the MIDI files and pickles themselves")
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: exists and is not a folder")
    others = sorted(p.name for p in folder.iterdir() if not is_cache_file(p.name)) if folder.is_dir() else []
    if others:
        raise DataError(f"{folder}: holds other files ({others[0]}{' …' if len(others) > 1 else ''}); a cache needs "
                        "a folder of its own: name a new or empty one, or a cache to bring up to date")
    folder.mkdir(parents=True, exist_ok=True)
    with lock_folder(folder):
        return _build(found, sources, folder, settings, jobs, progress, executor, start)


def _build(found: list[tuple[Path, Path]], sources: list[str], folder: Path, settings: Settings, jobs: int | None,
           progress: bool, executor: Executor | None, start: float) -> CacheInfo:
    """``build_cache`` in the locked ``folder``: plan, convert on the pool, write, and commit or keep the partial."""
    previous, complete, note = _previous(folder, settings)
    roots, rows, plan, reused = _plan(found, previous)
    todo = [i for i, p in enumerate(plan) if not isinstance(p[0], Cache)]
    current = previous and next(iter(previous.values()))[0]
    if (not todo and current and current.folder / MANIFEST == current.path and current.n_files == len(plan)
            and all(p == (current, i) for i, p in enumerate(plan)) and current.roots == roots
            and current.sources == [os.path.abspath(s) for s in sources]):
        return _up_to_date(current, start)  # the same files, unchanged, in the same order
    jobs = max(1, jobs or os.cpu_count() or 1)
    size = max(1, min(CHUNK_FILES, -(-len(todo) // (jobs * 32))))
    chunks = [todo[k:k + size] for k in range(0, len(todo), size)]
    own_pool = executor is None and jobs > 1 and len(chunks) > 1
    pool = (ProcessPoolExecutor(min(jobs, len(chunks)), initializer=_quiet_worker) if own_pool
            else executor or _Inline())
    bar = None
    if progress and todo:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), unit="file", desc=f"converting ({reused} unchanged)" if reused else "converting",
                   file=sys.stderr, dynamic_ncols=True, smoothing=0.05)
    writer = CacheWriter(folder, settings, [os.path.abspath(s) for s in sources], roots)
    counts = {"converted": 0, "rehashed": 0}
    committed = False

    def built(done: bool) -> dict:
        source_bytes = sum(r["size"] for r in rows if r["size"] > 0)
        return {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "complete": done,
                "seconds": round(time.perf_counter() - start, 3), "jobs": jobs, **counts, "reused": reused,
                "removed": len(complete - {(roots[r["root"]], r["path"]) for r in rows}), "source_bytes": source_bytes}

    try:
        window = 4 * jobs  # chunks in flight: the pool stays busy, and memory holds only these
        conversions = _conversions(pool, plan, chunks, settings, window, bar)
        _add_files(writer, plan, rows, roots, previous, conversions, counts, lambda: built(False))
        skipped = skipped_files(roots, writer.files, writer.pieces["frames"])
        usable = [n for n in writer.pieces["frames"] if n >= 2]
        if not usable:
            raise DataError(f"no usable data: {len(rows)} file(s) looked at, none gave a piece of 2 frames or more"
                            + (f" (the first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""))
        record = built(True)
        manifest_bytes = writer.save(MANIFEST, record)
        committed = True
    finally:
        if bar is not None:
            bar.close()
        if own_pool:
            pool.shutdown(wait=True, cancel_futures=True)
        if not committed and counts["converted"]:
            try:
                writer.save(PARTIAL, built(False))  # what was converted waits for the next build
            except OSError:
                pass  # (a full disk, say): the error that stopped the build is the one to report
        writer.out.close()
        if committed:
            (folder / PARTIAL).unlink(missing_ok=True)
        tidy(folder)
    return CacheInfo(folder, len(rows), len(usable), sum(usable), counts["converted"], reused,
                     counts["rehashed"], record["removed"], skipped, writer.total * settings.bytes_per_frame,
                     manifest_bytes, record["source_bytes"], record["seconds"], jobs, settings, note)


def _plan(found: list[tuple[Path, Path]], previous: dict) -> tuple[list[str], list[dict], list, int]:
    """The build's roots; each file's manifest row (its hash and pieces come with the conversion);
    what to do with it: (path, known hash) to convert, or (cache, row) to take over, which a file
    of the size and mtime that cache knew is; and how many are taken over."""
    roots: list[str] = []
    rows: list[dict] = []
    plan: list[tuple[str, str | None] | tuple[Cache, int]] = []
    reused = 0
    for f, root in found:
        root_abs = os.path.abspath(root)
        if root_abs not in roots:
            roots.append(root_abs)
        rel = Path(os.path.relpath(f, root)).as_posix()
        try:
            st = os.stat(f)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size = mtime = -1
        rows.append({"root": roots.index(root_abs), "path": rel, "size": size, "mtime_ns": mtime})
        old = previous.get((root_abs, rel))
        if old is not None and old[0].files["size"][old[1]] == size and old[0].files["mtime_ns"][old[1]] == mtime:
            plan.append(old)
            reused += 1
        else:
            same_size = old is not None and old[0].files["size"][old[1]] == size
            plan.append((str(f), old[0].files["blake2b"][old[1]] if same_size else None))
    return roots, rows, plan, reused


def _conversions(pool: Executor, plan: list, chunks: list[list[int]], settings: Settings, window: int,
                 bar) -> Iterator[Converted]:
    """The conversions of the files to convert, in plan order: the chunks go to the pool as they
    are needed, ``window`` at a time, and ``bar`` moves as each comes back."""
    submitted: dict[int, Future] = {}
    results: dict[int, Converted] = {}
    next_chunk = 0
    for i in (i for chunk in chunks for i in chunk):
        while i not in results:
            while next_chunk < len(chunks) and len(submitted) < window:
                submitted[next_chunk] = pool.submit(convert_chunk, [plan[t] for t in chunks[next_chunk]], settings)
                next_chunk += 1
            done, _ = wait(submitted.values(), return_when=FIRST_COMPLETED)
            for c in [c for c, fut in submitted.items() if fut in done]:
                results.update(zip(chunks[c], submitted.pop(c).result()))
                if bar is not None:
                    bar.update(len(chunks[c]))
        yield results.pop(i)


def _add_files(writer: CacheWriter, plan: list, rows: list[dict], roots: list[str], previous: dict,
               conversions: Iterator[Converted], counts: dict[str, int], partial: Callable[[], dict]) -> None:
    """Every file's row and pieces to ``writer``, in plan order: taken over, or from its conversion
    (taken over after all, with the new mtime, if only the mtime changed); the partial cache saved
    with ``partial()`` every PARTIAL_EVERY seconds while files are converted."""
    last_save = time.monotonic()
    for i, p in enumerate(plan):
        row = rows[i]
        if isinstance(p[0], Cache):
            cache, k = p
            row.update(blake2b=cache.files["blake2b"][k], splits=cache.files["splits"][k],
                       error=cache.files["error"][k])
            writer.add(row, taken_over(cache, k))
        else:
            conv = next(conversions)
            if conv.unchanged:  # same contents: the old rows and frames, with the new mtime
                cache, k = previous[(roots[row["root"]], row["path"])]
                row.update(blake2b=conv.blake2b, splits=cache.files["splits"][k], error=cache.files["error"][k])
                writer.add(row, taken_over(cache, k))
                counts["rehashed"] += 1
            else:
                row.update(blake2b=conv.blake2b, splits=conv.splits, error=conv.error)
                writer.add(row, conv.pieces)
                counts["converted"] += 1
        if counts["converted"] and time.monotonic() - last_save > PARTIAL_EVERY:
            writer.save(PARTIAL, partial())
            last_save = time.monotonic()

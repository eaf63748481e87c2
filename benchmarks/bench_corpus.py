"""The corpus cache (``live_rnnrbm.data.cache``) on the Nottingham MIDI files, train and valid:
building it with 1 and 2 jobs, building it again with nothing changed and with every file's mtime
changed (contents not), its size beside the MIDI files', and reading it against reading the MIDI
files; then opening a cache of the Lakh MIDI dataset's 176,581 files (a synthetic one: Nottingham's
rows repeated, its rolls file sparse), which costs the same whatever the rolls hold.

    PYTHONPATH=. python3 benchmarks/bench_corpus.py [--repeat 3] [--jobs 1 2] [--quick] [--data DIR]

Medians over the repeats, on a copy of the files in a temporary folder (the mtimes are changed
there, not in the data); the page cache is warm (the files were just read).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine  # noqa: E402
from live_rnnrbm.data import cache as cache_module  # noqa: E402
from live_rnnrbm.data.cache import MANIFEST  # noqa: E402
from live_rnnrbm.data.cache_build import build_cache  # noqa: E402
from live_rnnrbm.data.corpus import load_corpus  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "Nottingham"
LAKH_FILES = 176_581


def timed(repeat: int, run, before=None) -> tuple[float, object]:
    """Median seconds of ``run()`` over ``repeat`` runs (``before()`` first, untimed), and its last result."""
    times, out = [], None
    for _ in range(repeat):
        if before is not None:
            before()
        cache_module._memo.clear()  # every open reads the manifest
        t = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def synthetic_lakh(real: Path, out: Path, files: int) -> tuple[int, int]:
    """A cache of ``files`` files made of the real one's rows repeated (paths made unique, offsets
    moved on), its rolls file sparse: what opening costs depends on the rows, not on the rolls.
    Returns the manifest's and the rolls file's sizes in bytes."""
    doc = json.loads((real / MANIFEST).read_text())
    f, p = doc["files"], doc["pieces"]
    per_file = len(f["path"])
    reps = -(-files // per_file)
    frames = doc["rolls"]["frames"]
    files_out = {k: [] for k in f}
    pieces_out = {k: [] for k in p}
    for r in range(reps):
        n = min(per_file, files - r * per_file)
        for k in f:
            files_out[k] += [f"{r:03}/{v}" for v in f[k][:n]] if k == "path" else f[k][:n]
        n_pieces = sum(f["pieces"][:n])
        for k in p:
            pieces_out[k] += [v + r * frames for v in p[k][:n_pieces]] if k == "offset" else p[k][:n_pieces]
    doc.update(files=files_out, pieces=pieces_out)
    doc["rolls"]["frames"] = reps * frames
    out.mkdir()
    with open(out / doc["rolls"]["file"], "wb") as rolls:
        rolls.truncate(reps * frames * doc["rolls"]["bytes_per_frame"])
    (out / MANIFEST).write_text(cache_module.manifest_text(doc))
    return (out / MANIFEST).stat().st_size, reps * frames * doc["rolls"]["bytes_per_frame"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA, help="the Nottingham folder (train/ and valid/)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--quick", action="store_true", help="100 files, one repeat, no synthetic Lakh")
    args = p.parse_args()
    if not (args.data / "train").is_dir():
        print(f"skipped: no Nottingham MIDI folders at {args.data} (--data DIR)")
        return
    repeat = 1 if args.quick else args.repeat
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sources = []
        for split in ("train", "valid"):
            files = sorted((args.data / split).glob("*.mid"))[: 50 if args.quick else None]
            (tmp / split).mkdir()
            for f in files:
                shutil.copy2(f, tmp / split / f.name)
            sources.append(str(tmp / split))
        midi = [f for s in sources for f in Path(s).iterdir()]
        midi_bytes = sum(f.stat().st_size for f in midi)
        n = len(midi)
        print(f"{n} MIDI files, {midi_bytes / 1e6:.2f} MB; steps_per_beat 2, notes 21..108; medians of {repeat}")
        rows = []
        cache = tmp / "cache"
        times: dict[int, list[float]] = {jobs: [] for jobs in args.jobs}
        for _ in range(repeat):  # the job counts in turn: a change in the machine's load falls on each
            for jobs in args.jobs:
                shutil.rmtree(cache, ignore_errors=True)
                t = time.perf_counter()
                build_cache(sources, cache, jobs=jobs, progress=False)
                times[jobs].append(time.perf_counter() - t)
        build = {jobs: statistics.median(t) for jobs, t in times.items()}
        for jobs, t in build.items():
            rows.append((f"build, {jobs} job{'s' if jobs > 1 else ''}", t,
                         f"{n / t:.0f} files/s, {midi_bytes / 1e6 / t:.2f} MB/s"))
        t, r = timed(repeat, lambda: build_cache(sources, cache, jobs=max(args.jobs), progress=False))
        rows.append(("build again, nothing changed", t, f"{r.reused} taken over, {r.converted} converted"))

        def touch_all():
            for f in midi:
                os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1_000_000_000))
        t, r = timed(repeat, lambda: build_cache(sources, cache, jobs=max(args.jobs), progress=False), touch_all)
        rows.append(("build again, every mtime changed", t,
                     f"{r.rehashed} hashed, same contents; {r.converted} converted"))
        t_midi, corpus = timed(repeat, lambda: load_corpus(sources, warn=lambda m: None))
        rows.append(("load_corpus on the MIDI folders", t_midi,
                     f"{len(corpus.rolls)} pieces, {corpus.frames:,} frames"))
        t_open, c = timed(repeat, lambda: load_corpus([cache], warn=lambda m: None))
        rows.append(("load_corpus on the cache (open)", t_open, f"{len(c.rolls)} pieces, {c.frames:,} frames"))
        t_all, _ = timed(repeat, lambda: load_corpus([cache], warn=lambda m: None).arrays())
        rows.append(("  … and every piece unpacked to float32", t_all,
                     f"×{t_midi / t_all:.0f} faster than the MIDI files"))
        rolls_bytes, manifest_bytes = r.rolls_bytes, r.manifest_bytes
        if not args.quick:
            m_bytes, l_bytes = synthetic_lakh(cache, tmp / "lakh", LAKH_FILES)
            t, lakh = timed(repeat, lambda: load_corpus([tmp / "lakh"], warn=lambda m: None))
            rows.append((f"open a {LAKH_FILES:,}-file cache (synthetic)", t,
                         f"{len(lakh.rolls):,} pieces; manifest {m_bytes / 1e6:.1f} MB"))
        width = max(len(name) for name, _, _ in rows)
        for name, seconds, note in rows:
            print(f"  {name:<{width}}  {seconds:8.3f} s   {note}")
        print(f"  disk: MIDI {midi_bytes / 1e6:.2f} MB; cache {(rolls_bytes + manifest_bytes) / 1e6:.2f} MB "
              f"(rolls {rolls_bytes / 1e6:.2f} MB at 11 bytes a frame, manifest {manifest_bytes / 1e6:.2f} MB, "
              f"{manifest_bytes / n:.0f} bytes a file)")
        best = min(build.values())
        print(f"  Lakh ({LAKH_FILES:,} files), extrapolated by file count from the fastest build: "
              f"{LAKH_FILES * best / n / 3600:.1f} h; manifest ≈ {LAKH_FILES * manifest_bytes / n / 1e6:.0f} MB "
              "(Lakh's multi-track songs hold more notes than these tunes: the time grows with them, so "
              "this is a lower bound)")


if __name__ == "__main__":
    main()

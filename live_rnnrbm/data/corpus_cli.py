"""`live-rnnrbm corpus`: convert MIDI files and pickles into a corpus cache once (``build``), and
say what a cache holds (``info``). `train` and `eval` take a cache wherever they take a folder.

    live-rnnrbm corpus build ../shared/data/Nottingham/train ../shared/data/Nottingham/valid --out nott.cache
    live-rnnrbm corpus info nott.cache
    live-rnnrbm train nott.cache --out weights/mine.npz
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections import Counter

import numpy as np

from ..model import HIGHEST_NOTE, LOWEST_NOTE

SHOWN = 10  # skipped files listed in the text output (--json lists them all)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..cli import DefaultsHelpFormatter

    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", formatter_class=DefaultsHelpFormatter,
                       help="convert MIDI files and pickles into a cache, or bring a cache up to date",
                       description="Convert MIDI files and benchmark pickles into piano-rolls once, in parallel, into "
                                   "a cache folder that train and eval read in its place. Run again on the same "
                                   "folder, it converts only the files added or changed since, and drops the deleted.")
    b.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="MIDI files, folders (searched recursively), globs, benchmark pickles (every split is kept)")
    b.add_argument("--out", required=True, metavar="DIR",
                   help="the cache's folder: a new or empty one, or a cache to bring up to date")
    res = b.add_mutually_exclusive_group()
    res.add_argument("--dt", type=float, help="MIDI: seconds per frame")
    res.add_argument("--steps-per-beat", type=int, help="MIDI: frames per beat (default 2: eighth notes)")
    b.add_argument("--lowest-note", type=int, default=LOWEST_NOTE,
                   help="lowest MIDI note of the rolls; a model reads a cache of its own note range")
    b.add_argument("--highest-note", type=int, default=HIGHEST_NOTE, help="highest MIDI note of the rolls")
    b.add_argument("--jobs", type=int, help="worker processes (default: one per core)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    i = sub.add_parser("info", help="what a cache holds and how it was built",
                       description="The pieces, frames and keys of a cache, its size on disk, the settings it was "
                                   "built with, and the files it skipped with the reasons.")
    i.add_argument("cache", metavar="DIR", help="the cache's folder")
    i.add_argument("--json", action="store_true", help="print it as JSON on stdout (every skipped file)")


def run(args: argparse.Namespace) -> int:
    return build(args) if args.action == "build" else info(args)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def build(args: argparse.Namespace) -> int:
    from ..cli import flag_errors
    from .cache_build import build_cache
    from .corpus import DataError

    wrong = flag_errors(args, [("jobs", lambda v: v >= 1, "≥ 1"), ("steps_per_beat", lambda v: v >= 1, "≥ 1"),
                               ("dt", lambda v: v > 0, "> 0")])
    if wrong:
        print(f"error: {wrong}", file=sys.stderr)
        return 2
    try:
        r = build_cache(args.sources, args.out, args.dt, args.steps_per_beat, args.lowest_note, args.highest_note,
                        jobs=args.jobs, progress=not args.quiet)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: {args.out} is as it was; the files converted so far are kept, and the same command "
              "converts only the rest", file=sys.stderr)
        return 130
    if r.note:
        print(f"note: {r.note}", file=sys.stderr)
    for name, reason in r.skipped[:SHOWN]:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    if len(r.skipped) > SHOWN:
        print(f"… and {len(r.skipped) - SHOWN} more: `live-rnnrbm corpus info {args.out}` lists them",
              file=sys.stderr)
    work = (f"{r.converted} converted, {r.reused + r.rehashed} unchanged, {r.removed} removed"
            + (f" ({r.rehashed} with a new mtime, same contents)" if r.rehashed else ""))
    print(f"{r.path}: {r.pieces:,} pieces, {r.frames:,} frames from {r.files:,} files ({len(r.skipped)} skipped); "
          f"{work}; {_mb(r.rolls_bytes + r.manifest_bytes)} (the sources: {_mb(r.source_bytes)}); "
          f"{r.seconds:.1f} s" + (f" with {r.jobs} jobs" if r.converted else ""))
    return 0


def summary(folder: str) -> dict:
    """What ``corpus info`` says of a cache, as a dict (``DataError`` when it is not one)."""
    from .cache import VERSION, read_cache
    from .cache_build import skipped_files
    from .keys import PITCH_NAMES

    c = read_cache(folder)
    p = c.pieces
    usable = c.frames >= 2
    splits = Counter(s for s, ok in zip(p["split"], usable) if ok and s is not None)
    keys = Counter(f"{PITCH_NAMES[t]} {m}" for t, m, ok in zip(p["tonic"], p["mode"], usable) if ok and t is not None)
    rolls_bytes = c.rolls.nbytes
    manifest_bytes = c.path.stat().st_size
    lengths = c.frames[usable]
    return {
        "cache": str(folder), "format_version": VERSION, "built": c.built,
        "settings": {"resolution": c.settings.resolution_flag(), "lowest_note": c.settings.lowest_note,
                     "highest_note": c.settings.highest_note, "include_drums": c.settings.include_drums},
        "sources": c.sources,
        "files": c.n_files, "pickles": sum(1 for f in c.files["splits"] if f is not None),
        "pieces": int(usable.sum()), "frames": int(lengths.sum()),
        "pickle_pieces_by_split": dict(sorted(splits.items())),
        "frames_per_piece": ({"min": int(lengths.min()), "median": float(np.median(lengths)), "max": int(lengths.max())}
                             if len(lengths) else None),
        "keys": dict(keys.most_common()),
        "notes_dropped": int(sum(p["dropped"])),
        "disk_bytes": {"rolls": rolls_bytes, "manifest": manifest_bytes, "total": rolls_bytes + manifest_bytes,
                       "sources": c.built["source_bytes"]},
        "skipped": [list(s) for s in skipped_files(c.roots, c.files, c.frames)],
    }


def info(args: argparse.Namespace) -> int:
    from .corpus import DataError

    try:
        s = summary(args.cache)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    b, d, n, st = s["built"], s["disk_bytes"], s["frames_per_piece"], s["settings"]
    keys = ", ".join(f"{k} {v}" for k, v in list(s["keys"].items())[:6]) + (" …" if len(s["keys"]) > 6 else "")
    lines = [
        f"cache     {s['cache']}",
        f"pieces    {s['pieces']:,} from {s['files']:,} files ({s['pickles']} pickle{'s' if s['pickles'] != 1 else ''}"
        + (f": {', '.join(f'{k} {v}' for k, v in s['pickle_pieces_by_split'].items())}" if s["pickles"] else "")
        + f"), {s['frames']:,} frames" + (f" ({n['min']}–{n['max']} a piece, median {n['median']:g})" if n else ""),
        f"keys      {keys}",
        f"disk      {_mb(d['total'])}: rolls {_mb(d['rolls'])}, manifest {_mb(d['manifest'])}; "
        f"the sources {_mb(d['sources'])}",
        f"settings  {st['resolution']}, notes {st['lowest_note']}..{st['highest_note']}"
        + (", drums kept" if st["include_drums"] else ", drums left out")
        + f"; {s['notes_dropped']:,} notes outside the range dropped",
        f"built     {b['at']} in {b['seconds']:.1f} s with {b['jobs']} jobs: {b['converted']} converted, "
        f"{b['reused'] + b['rehashed']} unchanged, {b['removed']} removed",
        f"sources   {shlex.join(s['sources'])}",
        f"skipped   {len(s['skipped'])}" + ("" if not s["skipped"] else ":"),
    ]
    lines += [f"  {name}: {reason}" for name, reason in s["skipped"][:SHOWN]]
    if len(s["skipped"]) > SHOWN:
        lines.append(f"  … and {len(s['skipped']) - SHOWN} more (--json lists them all)")
    print("\n".join(lines))
    return 0

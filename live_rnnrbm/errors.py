"""What is wrong with a file, in words, from the exception a library raised reading it.

Libraries often raise with no message at all (mido and numpy raise a bare ``EOFError`` for a file
that stops short), and "(EOFError: )" tells a musician nothing."""
from __future__ import annotations

import os
from pathlib import Path


def in_words(error: BaseException, path: str | os.PathLike | None = None) -> str:
    """A short description of why ``path`` could not be read, from the ``error`` reading it raised."""
    try:
        empty = path is not None and Path(path).stat().st_size == 0
    except OSError:
        empty = False
    if empty:
        return "the file is empty"
    text = str(error).strip()
    if isinstance(error, EOFError) or "truncated" in text:
        return "the file stops in the middle of its data (cut short, or not this kind of file at all)"
    if text and isinstance(error, OSError):
        return text
    return f"its contents are damaged ({text})" if text else "its contents are damaged"


class Stopped(Exception):
    """A stop was asked for (Ctrl-C, SIGTERM, SIGHUP) while a long computation ran in chunks; it
    was abandoned between two of them, its results incomplete."""

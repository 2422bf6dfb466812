"""The info file (get_info.py → run_om_infer.py): lines `index path width height`, 0-based index."""

from __future__ import annotations

from typing import Iterable, List, NamedTuple, Tuple

from ..atomic import atomic_write_text
from ..errors import UserError
from .names import read_lines


class InfoEntry(NamedTuple):
    index: int
    path: str
    width: int
    height: int


def format_info(entries: Iterable[Tuple[str, int, int]]) -> str:
    """Text of an info file for `(path, width, height)` entries, numbered from 0."""
    return "".join(f"{i} {p} {w} {h}\n" for i, (p, w, h) in enumerate(entries))


def write_info(path: str, entries: Iterable[Tuple[str, int, int]]) -> int:
    """Write an info file atomically; returns the number of lines."""
    text = format_info(entries)
    atomic_write_text(path, text)
    return text.count("\n")


def read_info(path: str) -> List[InfoEntry]:
    """Parse an info file, strictly: every line `index path width height`, indices 0, 1, 2, ...

    Paths may not contain spaces (the format has no quoting); the error names the line.
    """
    entries = []
    for lineno, line in enumerate(read_lines(path, "info file"), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 4:
            raise UserError(f"{path}:{lineno}: expected 'index path width height', got {line!r}")
        try:
            index, width, height = int(fields[0]), int(fields[2]), int(fields[3])
        except ValueError:
            raise UserError(f"{path}:{lineno}: index, width and height must be integers: {line!r}") from None
        if index != len(entries):
            raise UserError(f"{path}:{lineno}: index {index} out of sequence (expected {len(entries)})")
        entries.append(InfoEntry(index, fields[1], width, height))
    if not entries:
        raise UserError(f"{path}: info file is empty")
    return entries

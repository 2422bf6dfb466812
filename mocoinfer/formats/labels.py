"""The label file (`val_label.txt`): lines `ILSVRC2012_val_00000001.JPEG 65`, 0-based class."""

from __future__ import annotations

from typing import Dict, Iterable, Tuple

from ..errors import UserError
from .names import image_key, read_lines


def read_labels(path: str) -> Dict[str, int]:
    """Parse `val_label.txt` into {image key: class index}; malformed lines name their number."""
    # utf-8-sig: a label file saved by a Windows editor starts with a BOM, which would otherwise
    # become part of the first image's name.
    labels: Dict[str, int] = {}
    for lineno, line in enumerate(read_lines(path, "label file", "utf-8-sig"), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise UserError(f"{path}:{lineno}: expected 'image_name label', got {line!r}")
        try:
            label = int(fields[1])
        except ValueError:
            raise UserError(f"{path}:{lineno}: label must be an integer, got {fields[1]!r}") from None
        if label < 0:
            raise UserError(f"{path}:{lineno}: label must be >= 0, got {label}")
        key = image_key(fields[0])
        if key in labels:
            raise UserError(f"{path}:{lineno}: image {key!r} is labelled twice")
        labels[key] = label
    if not labels:
        raise UserError(f"{path}: label file is empty")
    return labels


def format_labels(pairs: Iterable[Tuple[str, int]]) -> str:
    return "".join(f"{name} {label}\n" for name, label in pairs)

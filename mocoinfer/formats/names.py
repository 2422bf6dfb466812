"""The model input's shape, and the image keys, name order and line reading that every format shares.

Not a file format itself: the input size and element width that the preprocessed files and
the models use, the `natural_key` every stage sorts by, `image_key`, the name by which
labels, .bin files and results are matched, and `read_lines` for the line-based text formats.
"""

from __future__ import annotations

import os
import re
from typing import List, Tuple

from ..errors import UserError

# The guide's model input: float32 CHW 3x224x224.
INPUT_CHANNELS = 3
INPUT_SIZE = 224
FLOAT32_BYTES = 4


# Names and order.

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> Tuple:
    """Sort key that orders `img2` before `img10`; ties broken by the plain string.

    Directory order is arbitrary (the guide's scripts used os.listdir as is); every stage sorts
    with this key so that outputs and info files come out the same on every machine.
    """
    parts = _DIGITS.split(name)
    key = tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts if p != "")
    return key + ((2, 0, name),)


def image_key(file_name: str) -> str:
    """The image's key: its base name before the first '.', as the guide's scripts use it."""
    return os.path.basename(file_name).split(".", 1)[0]


def read_lines(path: str, what: str, encoding: str = "utf-8") -> List[str]:
    """The lines of a text file; a missing or unreadable file is one UserError naming it as `what`."""
    try:
        with open(path, encoding=encoding) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read {what} ({exc})") from None


def shown(text: str) -> str:
    """`text` as valid UTF-8 for a report: undecodable file-name bytes written as `\\xff`."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")

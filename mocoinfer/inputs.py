"""What the runner reads: the input `.bin` files in order, and the checks they pass before any batch runs.

Every input is checked with `os.stat` against the model's per-sample input size, and two inputs
that would write the same result file are refused, so a bad input never reaches the device.
"""

from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple

from .errors import UserError
from .formats import natural_key, read_info, result_filename


def list_inputs(input_path: str) -> Tuple[List[str], str]:
    """Input `.bin` paths in order, and a description of where they came from.

    A folder gives its `.bin` files in natural order; an info file gives its lines in order
    (relative paths against the current folder as the benchmark resolves them, else against the
    info file's folder); a single `.bin` file gives itself.
    """
    if os.path.isdir(input_path):
        names = [e.name for e in os.scandir(input_path)
                 if e.name.endswith(".bin") and not e.name.startswith(".") and e.is_file()]
        if not names:
            raise UserError(f"{input_path}: no .bin files in this folder")
        names.sort(key=natural_key)
        return [os.path.join(input_path, n) for n in names], f"folder {input_path}"
    if not os.path.exists(input_path):
        raise UserError(f"{input_path}: input not found (expected an info file or a folder of .bin files)")
    if input_path.endswith(".bin"):
        return [input_path], f"file {input_path}"
    base = os.path.dirname(os.path.abspath(input_path))
    paths = []
    for entry in read_info(input_path):
        p = entry.path
        if not os.path.isabs(p) and not os.path.exists(p) and os.path.exists(os.path.join(base, p)):
            p = os.path.join(base, p)
        paths.append(p)
    return paths, f"info file {input_path}"


def stat_inputs(paths: Sequence[str], source: str) -> List[int]:
    """The size in bytes of each input; a missing or unreadable one is a one-line error."""
    sizes = []
    for i, p in enumerate(paths):
        try:
            sizes.append(os.stat(p).st_size)
        except FileNotFoundError:
            raise UserError(f"{p}: input file not found (entry {i} of {source})") from None
        except OSError as exc:
            raise UserError(f"{p}: cannot read input file ({exc.strerror})") from None
    return sizes


def check_names(paths: Sequence[str], fmt: str) -> None:
    """Refuse two inputs that would write the same result file."""
    seen: Dict[str, str] = {}
    for p in paths:
        name = result_filename(p, fmt)
        if name in seen:
            raise UserError(f"{p}: writes the same result file {name} as {seen[name]}; input names must be unique")
        seen[name] = p


def check_input_sizes(paths: Sequence[str], sizes: Sequence[int], sample_bytes: int, model_desc: str) -> None:
    """Every input must hold exactly one sample of the model's input."""
    for p, size in zip(paths, sizes):
        if size != sample_bytes:
            raise UserError(f"{p}: {size} bytes, but {model_desc} takes {sample_bytes} bytes per sample")


def list_many(inputs: Sequence[str]) -> Tuple[List[str], str]:
    """Several inputs, as ais_bench's comma list: each folder, info file or .bin file in turn."""
    paths: List[str] = []
    for one in inputs:
        paths += list_inputs(one)[0]
    return paths, f"inputs {','.join(inputs)}"

"""Stage 4: the info file that lists the model's inputs for the benchmark (`get_info.py`).

Two modes, as the guide's script has them:
- bin: every `*.bin` of a folder (preprocessed images) with the width and height given; each
  file's size is checked against width x height x 3 float32 or uint8 (the size tells which; one
  folder holds one type), so a wrong size or a half-written file stops here instead of inside
  the NPU benchmark.
- jpg: every `.jpg`/`.jpeg` of a folder (any case), with its size read from the image header
  without decoding the pixels. One index sequence runs across all extensions (the guide's script
  restarted at 0 for each, writing duplicate indices).

Both list files in natural order with the folder path as given, numbered from 0, and write the
info file atomically through `formats.write_info`, under the output policy of `atomic.py`: the
info file may not be a listed file or the folder, a symlink or a special file (checked before
any listing), hidden files are skipped with a note, and a FIFO or device is never opened.
"""

from __future__ import annotations

import os
import time
from typing import List, NamedTuple, Tuple

from . import atomic, formats, imagetree
from .errors import UserError
from .progress import log, progress_bar

JPG_EXTENSIONS = (".jpg", ".jpeg")
SHOWN = 5  # offending files named in an error message


class InfoSummary(NamedTuple):
    info_path: str
    count: int
    seconds: float

    def line(self, mode: str) -> str:
        return f"wrote {self.info_path}: {self.count} {mode} entries in {self.seconds:.1f}s"


def _names(folder: str, keep) -> List[str]:
    """The names to list, relative to `folder`: flat, or `class/file` for class folders (the
    layout rule of `imagetree`, the one preprocessing follows), in natural order; a folder that
    mixes images and .bin files is refused, and a name that is not valid UTF-8 (the info file
    is UTF-8 text) is an error naming it."""
    if not os.path.exists(folder):
        raise UserError(f"{folder}: folder not found")
    if not os.path.isdir(folder):
        raise UserError(f"{folder}: not a directory")
    tree = imagetree.tree_names(folder)
    imagetree.check_one_kind(folder, tree.names)
    hidden = [n for n in tree.hidden if keep(n)]
    if hidden:
        # A hidden name is no input: the preprocessing stage never writes one, and listing it
        # would feed the benchmark a file nobody sees.
        log.warning(f"{folder}: skipped {len(hidden)} hidden file(s) (e.g. {', '.join(hidden[:3])})")
    names = [n for n in tree.names if keep(n)]
    for name in names:
        why = imagetree.bad_name(name)
        if why:
            raise UserError(f"{imagetree.shown(os.path.join(folder, name))}: {why}")
    return names


def _path(folder: str, name: str) -> str:
    path = os.path.join(folder, name)
    if any(c.isspace() for c in path):
        raise UserError(f"{path}: the info file cannot hold a path with white space (its fields are "
                        "space-separated); rename it")
    return path


def _offenders(problems: List[Tuple[str, str]]) -> str:
    shown = "; ".join(f"{name} ({why})" for name, why in problems[:SHOWN])
    more = f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    return shown + more


def bin_entries(folder: str, width: int, height: int) -> List[Tuple[str, int, int]]:
    """(path, width, height) for every `.bin` of `folder`, each checked to be the right size."""
    if width < 1 or height < 1:
        raise UserError(f"width and height must be >= 1, got {width} and {height}")
    sizes = {formats.bin_file_size(width, height, dtype=d): d for d in formats.BIN_DTYPES}
    names = _names(folder, lambda n: n.endswith(formats.BIN_SUFFIX))
    if not names:
        raise UserError(f"{folder}: no .bin files (run imagenet_torch_preprocess.py first?)")
    entries, problems = [], []
    first_of = {}  # dtype → the first file of that type
    for name in names:
        path = os.path.join(folder, name)
        try:
            if not os.path.isfile(path):
                problems.append((name, "not a regular file"))
                continue
            size = os.path.getsize(path)
        except OSError as exc:
            problems.append((name, exc.strerror or str(exc)))
            continue
        if size not in sizes:
            problems.append((name, f"{size} bytes"))
            continue
        first_of.setdefault(sizes[size], name)
        entries.append((_path(folder, name), width, height))
    if problems:
        raise UserError(f"{folder}: {len(problems)} of {len(names)} .bin files are not "
                        f"{formats.bin_file_size(width, height)} bytes (3x{height}x{width} float32) or "
                        f"{formats.bin_file_size(width, height, dtype='uint8')} bytes ({height}x{width}x3 uint8): "
                        f"{_offenders(problems)}")
    if len(first_of) > 1:
        mixed = ", ".join(f"{name} is {d}" for d, name in first_of.items())
        raise UserError(f"{folder}: mixes float32 and uint8 .bin files ({mixed}); one model reads one type: "
                        "preprocess into separate folders")
    return entries


def jpg_entries(folder: str, progress: bool = True) -> List[Tuple[str, int, int]]:
    """(path, width, height) for every JPEG of `folder`, the size read from its header."""
    from PIL import Image

    names = _names(folder, lambda n: n.lower().endswith(JPG_EXTENSIONS))
    if not names:
        raise UserError(f"{folder}: no .jpg or .jpeg files")
    entries, problems = [], []
    # Below 1,000 headers the read is over before progress would be worth showing (as before).
    with progress_bar(len(names), "get_info", progress, min_total=1000) as bar:
        for name in names:
            path = os.path.join(folder, name)
            try:
                # Only a regular file is opened, never blocking (a FIFO would hang the stage);
                # Image.open parses the header only, the pixels are never decoded.
                with atomic.open_regular(path) as f, Image.open(f) as img:
                    width, height = img.size
            except Exception as exc:  # any reader error is this file's problem; all are reported
                if os.path.isdir(path):
                    why = "is a directory"
                elif isinstance(exc, OSError) and exc.strerror and exc.filename:
                    why = exc.strerror
                else:
                    why = " ".join(str(exc).split()) or type(exc).__name__
                problems.append((name, why))
            else:
                entries.append((_path(folder, name), width, height))
            bar.update(1)
    if problems:
        raise UserError(f"{folder}: {len(problems)} of {len(names)} images cannot be read: {_offenders(problems)}")
    return entries


def write_info_file(mode: str, folder: str, info_path: str, width: int = 0, height: int = 0,
                    progress: bool = True) -> InfoSummary:
    """Write the info file for `mode` ('bin' or 'jpg'); nothing is written when a check fails."""
    start = time.perf_counter()
    if mode not in ("bin", "jpg"):
        raise UserError(f"unknown mode {mode!r} (choose bin or jpg)")
    # The cheap half of the policy first, so a bad output path fails before a long listing.
    atomic.check_target(info_path, "info file")
    parent = os.path.dirname(info_path) or "."
    if not os.path.isdir(parent):
        raise UserError(f"{info_path}: folder {parent} does not exist")
    atomic.check_writable_dir(parent, what="info file's folder")
    if mode == "bin":
        entries = bin_entries(folder, width, height)
    else:
        entries = jpg_entries(folder, progress=progress)
    atomic.check_output(info_path, [folder] + [path for path, _, _ in entries], what="info file")
    count = formats.write_info(info_path, entries)
    return InfoSummary(info_path, count, time.perf_counter() - start)

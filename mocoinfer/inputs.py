"""What the runner reads: the input `.bin` files in order, and the checks they pass before any batch runs.

Every input is checked with `os.stat` against the model's per-sample input size, and two inputs
that would write the same result file are refused, so a bad input never reaches the device.
A float32 `3xHxW` model also takes the uint8 `HxWx3` pixel files of `--dtype uint8`
preprocessing (a quarter of the size), which the runner normalises on the host; one run takes
one kind of file.
"""

from __future__ import annotations

import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .errors import UserError
from .formats import BENCHMARK_STYLE, NPY_SUFFIXES, natural_key, npy_data_span, read_info, result_filename
from .imagetree import check_one_kind


def list_bin_inputs(input_path: str, suffixes: Tuple[str, ...] = (".bin",)) -> Tuple[List[str], str]:
    """Input `.bin` paths in order, and a description of where they came from.

    A folder gives its `.bin` files in natural order; an info file gives its lines in order
    (relative paths against the current folder as the benchmark resolves them, else against the
    info file's folder); a single `.bin` file gives itself. `suffixes`: the names taken as
    input files (ais_bench's form also takes `.BIN`, as its `utils.get_fileslist_from_dir`).
    """
    if os.path.isdir(input_path):
        visible = [e for e in os.scandir(input_path) if not e.name.startswith(".")]
        # A folder of .bin files with images in it is a mix, refused as every stage refuses it.
        check_one_kind(input_path, (e.name for e in visible))
        names = [e.name for e in visible if e.name.endswith(suffixes) and e.is_file()]
        if not names:
            raise UserError(f"{input_path}: no {'/'.join(suffixes)} files in this folder")
        names.sort(key=natural_key)
        return [os.path.join(input_path, n) for n in names], f"folder {input_path}"
    if not os.path.exists(input_path):
        raise UserError(f"{input_path}: input not found (expected an info file or a folder of .bin files)")
    if input_path.endswith(suffixes):
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
    """The size in bytes of each input (of a `.npy` file: its array data); a missing or
    unreadable one is a one-line error."""
    sizes = []
    for i, p in enumerate(paths):
        try:
            if p.endswith(NPY_SUFFIXES):
                with open(p, "rb") as f:
                    sizes.append(npy_data_span(f, p)[1])
                continue
            sizes.append(os.stat(p).st_size)
        except FileNotFoundError:
            raise UserError(f"{p}: input file not found (entry {i} of {source})") from None
        except OSError as exc:
            raise UserError(f"{p}: cannot read input file ({exc.strerror})") from None
    return sizes


def check_names(paths: Sequence[str], fmt: str, style: str = BENCHMARK_STYLE) -> None:
    """Refuse two inputs that would write the same result file (`style`: `formats.STYLES`)."""
    seen: Dict[str, str] = {}
    for p in paths:
        name = result_filename(p, fmt, style=style)
        if name in seen:
            raise UserError(f"{p}: writes the same result file {name} as {seen[name]}; input names must be unique")
        seen[name] = p


def check_input_sizes(paths: Sequence[str], sizes: Sequence[int], sample_bytes: int, model_desc: str,
                      pixel_bytes: Optional[int] = None) -> None:
    """Every input must hold exactly one sample of the model's input (`pixel_bytes`: the uint8
    pixel size the model also takes, named in the error)."""
    also = f" (or {pixel_bytes} as uint8 pixels)" if pixel_bytes else ""
    for p, size in zip(paths, sizes):
        if size != sample_bytes:
            raise UserError(f"{p}: {size} bytes, but {model_desc} takes {sample_bytes} bytes per sample{also}")


class InputKind(NamedTuple):
    """What the input files hold for this model: `file_bytes` each, and whether they are uint8
    HWC pixels the host normalises into the model's float32 CHW input (`host_normalize`)."""

    file_bytes: int
    host_normalize: bool


def pixel_file_bytes(shape: Sequence[int], dtype) -> Optional[int]:
    """Bytes of the uint8 HWC pixel file a float32 `3xHxW` model can take; None for other models
    (a uint8 model takes its own input as it is)."""
    if np.dtype(dtype) != np.float32 or len(shape) != 3 or shape[0] != 3:
        return None
    return int(np.prod(shape))


def input_kind(paths: Sequence[str], sizes: Sequence[int], shape: Sequence[int], dtype,
               model_desc: str) -> InputKind:
    """The kind of every input for a model taking `shape` x `dtype` per sample: its own input,
    or (for a float32 3xHxW model) uint8 pixel files; a mix of the two, or any other size, is an
    error naming the file."""
    own = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    pixels = pixel_file_bytes(shape, dtype)
    if pixels is not None:
        as_pixels = next((p for p, size in zip(paths, sizes) if size == pixels), None)
        as_own = next((p for p, size in zip(paths, sizes) if size == own), None)
        if as_pixels is not None and as_own is not None:
            raise UserError(f"{as_pixels}: uint8 pixels ({pixels} bytes), but {as_own} holds float32 ({own} bytes); "
                            "one run takes one kind of file (preprocess them all with the same --dtype)")
        if as_pixels is not None:
            check_input_sizes(paths, sizes, pixels, model_desc + " as uint8 HWC pixels")
            return InputKind(pixels, True)
    check_input_sizes(paths, sizes, own, model_desc, pixels)
    return InputKind(own, False)


#: the stage whose manifest records how a folder's `.bin` files were made
PREPROCESS_TOOL = "imagenet_torch_preprocess.py"


def check_preprocessing_record(paths: Sequence[str], kind: InputKind, shape: Sequence[int], dtype,
                               model_desc: str) -> None:
    """Sizes alone can coincide (float32 224x224 files are 602,112 bytes, as uint8 448x448x3
    pixels are): where preprocessing's manifest says how the input folder's files were made
    (`--dtype`, `--crop`), what the run takes them for must agree, else one line naming both."""
    from .sidecar import read_manifest

    for folder in {os.path.dirname(os.path.abspath(p)) for p in paths}:
        doc = read_manifest(folder)
        if doc is None or doc.get("tool") != PREPROCESS_TOOL:
            continue  # made by another tool: its sizes are all there is to go by
        made = doc["settings"]
        took_uint8 = kind.host_normalize or np.dtype(dtype) == np.uint8
        nhwc = len(shape) == 3 and shape[-1] == 3 and shape[0] != 3  # a uint8 (AIPP) model's pixels
        side = shape[1] if nhwc else shape[-1]
        taken = f"{'uint8' if took_uint8 else np.dtype(dtype).name} {side}x{side}"
        recorded = f"{made.get('dtype')} {made.get('crop')}x{made.get('crop')}"
        if made.get("dtype") in ("uint8", "float32") and (
                (made["dtype"] == "uint8") != took_uint8 or made.get("crop") != side):
            raise UserError(f"{folder}: its .bin files are {recorded} (imagenet_torch_preprocess.py --dtype "
                            f"{made['dtype']} --crop {made.get('crop')}), but {model_desc} would read them as "
                            f"{taken}: preprocess for this model, or give the model they were made for")


def list_many(inputs: Sequence[str], suffixes: Tuple[str, ...] = (".bin",)) -> Tuple[List[str], str]:
    """Several inputs, as ais_bench's comma list: each folder, info file or .bin file in turn."""
    paths: List[str] = []
    for one in inputs:
        paths += list_bin_inputs(one, suffixes)[0]
    return paths, f"inputs {','.join(inputs)}"

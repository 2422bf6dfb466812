"""The preprocessed files (imagenet_torch_preprocess.py) and the list of inputs that failed.

- `<image key>.bin`: raw float32 CHW (the guide's), or with `--dtype uint8` raw uint8 HWC RGB
  pixels; the file size tells which (`bin_file_size`).
- `failed.txt` beside them: `path<TAB>reason` per input that could not be preprocessed.
- `.npy` inputs (ais_bench's form takes them, as its `utils.get_file_content`): one sample's data
  after the NPY header, read as raw bytes like a `.bin` file (`npy_data_span`).
"""

from __future__ import annotations

from typing import BinaryIO, Iterable, List, Tuple

import numpy as np

from ..atomic import atomic_write_text
from .names import FLOAT32_BYTES, INPUT_CHANNELS, INPUT_SIZE, image_key, shown

# Preprocessed files come in two element types: the guide's float32 CHW (normalised), and uint8
# HWC RGB pixels (the resized, cropped image before ToTensor; what AIPP's RGB888_U8 input reads).
BIN_DTYPES = {"float32": FLOAT32_BYTES, "uint8": 1}
DEFAULT_BIN_DTYPE = "float32"


def bin_file_size(width: int = INPUT_SIZE, height: int = INPUT_SIZE, channels: int = INPUT_CHANNELS,
                  dtype: str = DEFAULT_BIN_DTYPE) -> int:
    """Bytes in one preprocessed image (224x224: 602,112 as float32, 150,528 as uint8)."""
    return width * height * channels * BIN_DTYPES[dtype]


# Preprocessed files.

BIN_SUFFIX = ".bin"
FAILED_LIST_NAME = "failed.txt"


def bin_name(image_file: str) -> str:
    """`<image key>.bin`: the preprocessed file the guide writes for an image."""
    return image_key(image_file) + BIN_SUFFIX


def format_failed(entries: Iterable[Tuple[str, str]]) -> str:
    """`failed.txt` beside the .bin files: one `path<TAB>reason` line per input that failed.

    The file is UTF-8 text: a path whose name is not valid UTF-8 (undecodable bytes from the file
    system) is written with those bytes as `\\xff` escapes, instead of failing the whole write."""

    return "".join(f"{shown(path)}\t{shown(' '.join(reason.split()))}\n" for path, reason in entries)


def write_failed(path: str, entries: Iterable[Tuple[str, str]]) -> int:
    text = format_failed(entries)
    atomic_write_text(path, text)
    return text.count("\n")


def read_failed(path: str) -> List[Tuple[str, str]]:
    with open(path, encoding="utf-8") as f:
        return [tuple(line.split("\t", 1)) for line in f.read().splitlines() if line]  # type: ignore[misc]


# .npy inputs.

NPY_SUFFIXES = (".npy", ".NPY")
#: the input files ais_bench's form takes from a folder (its `utils.get_fileslist_from_dir`)
AIS_INPUT_SUFFIXES = (".bin", ".BIN") + NPY_SUFFIXES


def npy_data_span(f: BinaryIO, name: str) -> Tuple[int, int]:
    """(offset, size in bytes) of the array data in the open `.npy` file `f`, checked: C order, a
    plain numeric dtype, the data all there. A bad file is a UserError naming it."""
    from ..errors import UserError

    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"format version {version[0]}.{version[1]} (1.0 and 2.0 are read)")
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"{name}: not a readable .npy file ({exc})") from None
    if fortran and len(shape) > 1:
        raise UserError(f"{name}: a Fortran-order array; save it in C order (np.ascontiguousarray)")
    if dtype.hasobject or dtype.kind not in "fiub":
        raise UserError(f"{name}: dtype {dtype} is not a plain numeric array")
    offset = f.tell()
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    end = f.seek(0, 2)
    if end - offset < size:
        raise UserError(f"{name}: .npy data cut short ({end - offset} of {size} bytes)")
    f.seek(offset)
    return offset, size

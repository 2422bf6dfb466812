"""The result files (run_om_infer.py → vision_metric_ImageNet.py): `<input name>_<k>.txt|bin|npy`,
one per image, as Ascend's `benchmark` (k = 1) and `ais_bench` (k = 0) write them: their names,
their bytes (encode/decode), and reading one file or a whole result dir.

Two styles of file (`STYLES`): the benchmark's (the own and benchmark forms: the stem is the
name without its last extension, float32 values, txt '%.9g ', npy a 1-D vector) and ais_bench's
(its form only, as `io_oprations.save_tensors_to_file` and `utils.save_data_to_files` write
them: the stem is `basename.split('.')[0]`, the model's dtype, the batch axis kept, txt '%f ').
"""

from __future__ import annotations

import io
import os
import re
import warnings
from typing import Iterator, List, NamedTuple, Tuple

import numpy as np

from ..atomic import atomic_write_bytes
from ..decimals import parse_decimals
from ..errors import UserError
from .names import FLOAT32_BYTES, image_key

RESULT_FORMATS = ("txt", "bin", "npy")
#: the benchmark's files (own and benchmark forms) and ais_bench's (its form)
BENCHMARK_STYLE, AIS_STYLE = "benchmark", "ais_bench"
STYLES = (BENCHMARK_STYLE, AIS_STYLE)


def result_stem(input_name: str, style: str = BENCHMARK_STYLE) -> str:
    """The stem of input `input_name`'s results: the base name without its last extension (the
    benchmark), or before its first '.' (ais_bench: `basename.split('.')[0]`, so `a.b.bin` → `a`)."""
    base = os.path.basename(input_name)
    return base.split(".")[0] if style == AIS_STYLE else os.path.splitext(base)[0]


def result_filename(input_name: str, fmt: str, index: int = 1, style: str = BENCHMARK_STYLE) -> str:
    """`<stem>_<index>.<fmt>` (`result_stem` gives the stem of each style)."""
    if fmt not in RESULT_FORMATS:
        raise UserError(f"unknown result format {fmt!r} (choose from {', '.join(RESULT_FORMATS)})")
    return f"{result_stem(input_name, style)}_{index}.{fmt}"


def encode_ais_result(array: np.ndarray, fmt: str) -> bytes:
    """Bytes of one result file as ais_bench writes it (`utils.save_data_to_files`): the array as
    the model gave it, in its dtype and shape (one sample keeps its batch axis: `(1, classes)`);
    bin is `ndarray.tofile`, npy `np.save`, txt one line per row of `reshape(-1, shape[-1])`,
    each value as `np.savetxt(fmt='%f' for floats, '%d' otherwise, newline=' ')` writes it."""
    arr = np.asarray(array)
    if fmt == "bin":
        return np.ascontiguousarray(arr).tobytes()
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, arr)
        return buf.getvalue()
    if fmt == "txt":
        rows = arr.reshape(-1, arr.shape[-1]) if arr.ndim else arr.reshape(1, 1)
        one = "%f " if arr.dtype in (np.float16, np.float32, np.float64) else "%d "
        return "".join((one * row.size) % tuple(row.tolist()) + "\n" for row in rows).encode("ascii")
    raise UserError(f"unknown result format {fmt!r} (choose from {', '.join(RESULT_FORMATS)})")


def encode_result(vector: np.ndarray, fmt: str, style: str = BENCHMARK_STYLE) -> bytes:
    """Bytes of one result file. txt keeps every float32 bit: '%.9g' round-trips float32.

    The layout is the benchmark's: one line, each value followed by a space, then a newline
    (the guide's metric does `line.strip().split(" ")`, so single spaces matter). ais_bench's
    style: `encode_ais_result`.
    """
    if style == AIS_STYLE:
        return encode_ais_result(vector, fmt)
    vec = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
    if fmt == "bin":
        return vec.tobytes()
    if fmt == "txt":
        return (("%.9g " * vec.size) % tuple(vec.tolist()) + "\n").encode("ascii")
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, vec)
        return buf.getvalue()
    raise UserError(f"unknown result format {fmt!r} (choose from {', '.join(RESULT_FORMATS)})")


def encode_results(batch: np.ndarray, fmt: str, style: str = BENCHMARK_STYLE) -> List[bytes]:
    """`encode_result` of each row of `batch` (one image a row), the same bytes: the batch is
    converted once, and txt formats each row with one prepared format string. ais_bench's style
    keeps each sample's batch axis, `(1, classes)`, in the model's dtype."""
    if style == AIS_STYLE:
        return [encode_ais_result(batch[i:i + 1], fmt) for i in range(len(batch))]
    rows = np.ascontiguousarray(batch, dtype=np.float32).reshape(len(batch), -1)
    if fmt == "txt":
        line = "%.9g " * rows.shape[1] + "\n"
        return [(line % tuple(row)).encode("ascii") for row in rows.tolist()]
    if fmt == "bin":
        return [row.tobytes() for row in rows]
    return [encode_result(row, fmt) for row in rows]


def write_result_bytes(folder: str, input_name: str, data: bytes, fmt: str, index: int = 1,
                       style: str = BENCHMARK_STYLE) -> str:
    """Write one image's encoded result atomically; returns its path."""
    path = os.path.join(folder, result_filename(input_name, fmt, index, style))
    atomic_write_bytes(path, data)
    return path


def write_result(folder: str, input_name: str, vector: np.ndarray, fmt: str, index: int = 1,
                 style: str = BENCHMARK_STYLE) -> str:
    """Write one image's result atomically; returns its path."""
    return write_result_bytes(folder, input_name, encode_result(vector, fmt, style), fmt, index, style)


def decode_result(data: bytes, fmt: str, name: str = "<bytes>") -> np.ndarray:
    """float32 vector from a result file's bytes; a malformed file raises UserError naming it.

    txt: the first line holds the numbers (as the guide reads it); each becomes
    float32(float64(token)), exactly what the guide's `np.float32(token)` gives, since numpy
    parses a string to float32 through a double too. Further non-blank lines are an error
    (a batched output would otherwise be scored as one image).
    """
    try:
        if fmt == "bin":
            if len(data) % FLOAT32_BYTES:
                raise ValueError(f"size {len(data)} is not a multiple of 4 bytes")
            vec = np.frombuffer(data, dtype=np.float32)
        elif fmt == "txt":
            first, _, rest = data.partition(b"\n")
            if rest.strip():
                raise ValueError("more than one line of numbers (one image per file expected)")
            first = first.strip()
            vec = parse_decimals(first)
            if vec is None:
                # Any other layout (exponents, nan, tabs, ...): C strtod over the whole line. On
                # a token it cannot read numpy 2 raises; older numpy warns and stops early, so
                # the warning is made an error too.
                with warnings.catch_warnings():
                    warnings.simplefilter("error", DeprecationWarning)
                    vec = np.fromstring(first, dtype=np.float64, sep=" ")
                # fromstring also reads "1.5-2.5" as two numbers; the guide's split would not.
                if vec.size != len(first.split()):
                    raise ValueError("a token is not one number")
            vec = vec.astype(np.float32)
        elif fmt == "npy":
            vec = np.load(io.BytesIO(data), allow_pickle=False)
            if vec.dtype.kind not in "fiu":
                raise ValueError(f"dtype {vec.dtype} is not numeric")
            vec = vec.astype(np.float32, copy=False).reshape(-1)
        else:
            raise UserError(f"{name}: unknown result format {fmt!r}")
    except (ValueError, DeprecationWarning, UnicodeDecodeError, OSError, EOFError) as exc:
        raise UserError(f"{name}: not a valid {fmt} result file ({exc})") from None
    if vec.size == 0:
        raise UserError(f"{name}: empty {fmt} result file")
    return vec


_READ_SIZE = 1 << 16  # more than one 1,001-class txt result (about 13 kB)


def read_result(path: str) -> np.ndarray:
    fmt = os.path.splitext(path)[1].lstrip(".")
    # os.read rather than open(): no buffered file object per file, which is a third of the
    # time a metric over 50,000 bin results spends reading.
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            parts = [os.read(fd, _READ_SIZE)]
            while len(parts[-1]) == _READ_SIZE:
                parts.append(os.read(fd, _READ_SIZE))
        finally:
            os.close(fd)
    except OSError as exc:
        raise UserError(f"{path}: cannot read result file ({exc.strerror or exc})") from None
    return decode_result(parts[0] if len(parts) == 1 else b"".join(parts), fmt, path)


class ResultFile(NamedTuple):
    key: str
    path: str
    fmt: str


# The stem may hold dots: `img.v2.bin` gives `img.v2_1.txt` (result_filename keeps all but the
# last extension), and that name must read back as a result.
_RESULT_NAME = re.compile(r"^(?P<stem>.+)_(?P<index>\d+)\.(?P<fmt>txt|bin|npy)$")


def is_result_name(file_name: str) -> bool:
    """True for `<key>_<k>.<txt|bin|npy>`, the names result files have."""
    return _RESULT_NAME.match(os.path.basename(file_name)) is not None


def result_key(file_name: str) -> str:
    """Image key of a result file: the `_<k>.<ext>` ending removed, then the name before the
    first '.' (what `image_key` gives for the input it came from).

    `ILSVRC2012_val_00000001_1.txt` (benchmark) and `..._0.bin` (ais_bench) both give
    `ILSVRC2012_val_00000001`; `a_b.v2_1.txt` (from `a_b.v2.bin`) gives `a_b`, like its input.
    """
    m = _RESULT_NAME.match(os.path.basename(file_name))
    if m:
        return image_key(m.group("stem"))
    stem = image_key(file_name)
    return stem.rsplit("_", 1)[0] if "_" in stem else stem


def list_results(folder: str) -> Tuple[List[ResultFile], List[str]]:
    """Result files in a result dir sorted by name, and the names that are not results.

    A result file is `<key>_<k>.<txt|bin|npy>`; anything else (a `summary.json`, a sub-folder,
    a stray temporary) is returned in the second list so the caller can warn about it. Plain
    name order (not `natural_key`, which costs a second per 50,000 names) is enough to make
    every run read, and report, the same files first.
    """
    if not os.path.isdir(folder):
        raise UserError(f"{folder}: result dir not found")
    results, others = [], []
    for entry in os.scandir(folder):
        m = _RESULT_NAME.match(entry.name)
        if m and not entry.name.startswith(".") and entry.is_file():
            # result_key(entry.name) from the match already made: the stem, cut at its first dot.
            stem = m.group("stem")
            key = stem.split(".", 1)[0] if "." in stem else stem
            results.append(ResultFile(key, entry.path, m.group("fmt")))
        else:
            others.append(entry.name)
    results.sort(key=lambda r: r.path)
    others.sort()
    return results, others


def iter_results(folder: str) -> Iterator[Tuple[str, np.ndarray]]:
    """Yield `(image key, float32 vector)` for every result file, txt, bin and npy alike."""
    results, _ = list_results(folder)
    for r in results:
        yield r.key, read_result(r.path)

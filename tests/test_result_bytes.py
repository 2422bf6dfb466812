"""Result files hold exactly the bytes the benchmark's formats define, whatever path writes them.

Oracles, independent of our encoder: numpy's `ndarray.tofile` for bin files; for txt files the C
library's own `snprintf("%.9g ")` (glibc, through ctypes: the printf the benchmark's layout is
defined by), one value after another, then a newline; and the guide's metric reading each token
back with `np.float32(token)` (tests/reference_metric.py's parsing) gives every float32 bit back.
The values are adversarial: random float32 bit patterns over the whole range, signed zeros,
infinities, subnormals, the largest and smallest normals, and values at the '%.9g' switches
between fixed and exponent notation and at rounding carries (9.999999e8 and the like).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import numpy as np
import pytest

from mocoinfer.backends import Backend
from mocoinfer.formats import encode_result, encode_results
from mocoinfer.runner import run_inference

_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None)


def c_printf_line(row: np.ndarray) -> bytes:
    """The benchmark's txt line by the C library's printf: '%.9g ' per value, then a newline."""
    buf = ctypes.create_string_buffer(64)
    out = []
    for x in row.astype(np.float64).tolist():
        n = _LIBC.snprintf(buf, 64, b"%.9g ", ctypes.c_double(x))
        out.append(buf.raw[:n])
    return b"".join(out) + b"\n"


def tofile_bytes(row: np.ndarray, tmp_path) -> bytes:
    path = tmp_path / "row.bin"
    np.ascontiguousarray(row, dtype=np.float32).tofile(path)
    return path.read_bytes()


def adversarial(n_random: int = 6000, seed: int = 0) -> np.ndarray:
    """float32 values that stress a '%.9g' writer (no NaN: C prints a negative one as '-nan')."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2 ** 32, size=n_random, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    values = values[np.isfinite(values)]
    f32 = np.finfo(np.float32)
    edges = [0.0, -0.0, np.inf, -np.inf, f32.max, -f32.max, f32.tiny, -f32.tiny, f32.smallest_subnormal,
             1e-4, 9.99999e-5, 1e-5, 0.0001, 1e8, 1e9, 999999999.0, 99999999.5, 123456789.0, 1.0, -1.0,
             0.5, 0.1, 1 / 3, 2 ** 24, 2 ** 24 + 2, 1e30, 1e31, 1e-14, 1e-15, 9.9999999e-15, 1e38, 3e-39]
    powers = np.float32(10.0) ** np.arange(-16, 32, dtype=np.float32)
    near = np.concatenate([powers, np.nextafter(powers, np.float32(np.inf)), np.nextafter(powers, np.float32(0))])
    logits = rng.standard_normal(3000).astype(np.float32) * np.float32(8)
    out = np.concatenate([np.asarray(edges, dtype=np.float32), near.astype(np.float32), values, logits])
    return out.astype(np.float32)


@pytest.mark.parametrize("width", [1, 1000])
def test_batch_encoding_is_the_oracles_bytes(width, tmp_path):
    """Oracles: tofile (bin), glibc snprintf '%.9g ' (txt), np.float32(token) (read back)."""
    values = adversarial()
    batch = values[: len(values) // width * width].reshape(-1, width)
    batch.tofile(tmp_path / "all.bin")
    whole = (tmp_path / "all.bin").read_bytes()
    tokens = c_printf_line(batch.reshape(-1))[:-1].split(b" ")[:-1]
    bins, txts = encode_results(batch, "bin"), encode_results(batch, "txt")
    assert len(bins) == len(txts) == len(batch)
    row_bytes = width * 4
    for i, (row, b, t) in enumerate(zip(batch, bins, txts)):
        assert b == whole[i * row_bytes:(i + 1) * row_bytes] == encode_result(row, "bin")
        assert t == b"".join(tok + b" " for tok in tokens[i * width:(i + 1) * width]) + b"\n", row
        assert t == encode_result(row, "txt")
    lines = [t.decode("ascii").strip().split(" ") for t in txts]  # the guide's parsing
    back = np.array([[np.float32(tok) for tok in line] for line in lines], dtype=np.float32)
    assert back.tobytes() == batch.tobytes()


def test_nan_is_written_as_python_writes_it():
    """NaN (any sign) stays 'nan', as encode_result has always written it (oracle: '%.9g' %
    float('nan'), Python's own formatting, which drops the sign)."""
    batch = np.array([[np.nan, -np.nan, 1.0]], dtype=np.float32)
    assert encode_results(batch, "txt") == [b"nan nan 1 \n"] == [encode_result(batch[0], "txt")]


class Echo(Backend):
    """Zero-cost backend: each image's result is its input, so every file has a known oracle."""

    name = "echo"

    def __init__(self, width: int) -> None:
        super().__init__()
        self.input_shape, self.input_dtype, self.batch_size = (width,), np.dtype(np.float32), None
        self.model_path = "echo"

    def run(self, batch):
        self.timing.compute.append(0.0)
        return [batch.copy()]


@pytest.mark.parametrize("fmt", ["bin", "txt"])
@pytest.mark.parametrize("batch_size", [1, 8])
def test_result_files_through_the_runner_are_the_oracles_bytes(fmt, batch_size, tmp_path):
    """13 images (a short last batch at 8) through the reader, the backend, the writer threads:
    each result file is byte for byte the oracle's (tofile; glibc '%.9g ')."""
    width = 50
    values = adversarial(n_random=2000, seed=1)[: 13 * width].reshape(13, width)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i, row in enumerate(values):
        row.tofile(inputs / f"v{i}.bin")
    out = tmp_path / "out"
    s = run_inference("echo", str(inputs), str(out), backend=Echo(width), batch_size=batch_size, outfmt=fmt,
                      progress=False)
    assert s["result_files"] == 13
    res = out / "dumpOutput_device0"
    for i, row in enumerate(values):
        data = (res / f"v{i}_1.{fmt}").read_bytes()
        assert data == (tofile_bytes(row, tmp_path) if fmt == "bin" else c_printf_line(row))
    assert sorted(os.listdir(res)) == sorted(f"v{i}_1.{fmt}" for i in range(13))

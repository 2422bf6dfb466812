"""Every file format of the pipeline, read and written in exactly one place.

- info file (get_info.py → run_om_infer.py): lines `index path width height`, 0-based index.
- preprocessed files (imagenet_torch_preprocess.py): `<image key>.bin`, raw float32 CHW (or,
  with `--dtype uint8`, raw uint8 HWC RGB pixels; the size tells which), and
  `failed.txt` beside them: `path<TAB>reason` per input that could not be preprocessed.
- label file (`val_label.txt`): lines `ILSVRC2012_val_00000001.JPEG 65`, 0-based class.
- result files (run_om_infer.py → vision_metric_ImageNet.py): `<input name>_<k>.txt|bin|npy`,
  one per image, as Ascend's `benchmark` (k = 1) and `ais_bench` (k = 0) write them.
- perf file (`perf_vision_batchsize_{bs}_device_{id}.txt`): the benchmark's five lines.
- result.json: the guide's one-line "Overall statistical evaluation".

Every writer goes through `atomic.atomic_path`: the data lands under a hidden temporary name in
the target folder and is renamed into place, so a reader never sees half a file and an
interrupted stage leaves nothing that a rerun could mistake for finished work. The atomic
helpers and the output policy live in `atomic.py`; the exact txt number parser in `decimals.py`.
"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
from typing import Dict, Iterable, Iterator, List, NamedTuple, Sequence, Tuple

import numpy as np

from .atomic import atomic_write_bytes, atomic_write_text, write_json
from .decimals import parse_decimals
from .errors import UserError

# The guide's model input: float32 CHW 3x224x224.
INPUT_CHANNELS = 3
INPUT_SIZE = 224
FLOAT32_BYTES = 4


# Preprocessed files come in two element types: the guide's float32 CHW (normalised), and uint8
# HWC RGB pixels (the resized, cropped image before ToTensor; what AIPP's RGB888_U8 input reads).
BIN_DTYPES = {"float32": FLOAT32_BYTES, "uint8": 1}
DEFAULT_BIN_DTYPE = "float32"


def bin_file_size(width: int = INPUT_SIZE, height: int = INPUT_SIZE, channels: int = INPUT_CHANNELS,
                  dtype: str = DEFAULT_BIN_DTYPE) -> int:
    """Bytes in one preprocessed image (224x224: 602,112 as float32, 150,528 as uint8)."""
    return width * height * channels * BIN_DTYPES[dtype]


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


# Info file.

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
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: info file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read info file ({exc})") from None
    entries = []
    for lineno, line in enumerate(lines, 1):
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


# Preprocessed files.

BIN_SUFFIX = ".bin"
FAILED_LIST_NAME = "failed.txt"


def bin_name(image_file: str) -> str:
    """`<image key>.bin`: the preprocessed file the guide writes for an image."""
    return image_key(image_file) + BIN_SUFFIX


def format_failed(entries: Iterable[Tuple[str, str]]) -> str:
    """`failed.txt` beside the .bin files: one `path<TAB>reason` line per input that failed."""
    return "".join(f"{path}\t{' '.join(reason.split())}\n" for path, reason in entries)


def write_failed(path: str, entries: Iterable[Tuple[str, str]]) -> int:
    text = format_failed(entries)
    atomic_write_text(path, text)
    return text.count("\n")


def read_failed(path: str) -> List[Tuple[str, str]]:
    with open(path, encoding="utf-8") as f:
        return [tuple(line.split("\t", 1)) for line in f.read().splitlines() if line]  # type: ignore[misc]


# Label file.

def read_labels(path: str) -> Dict[str, int]:
    """Parse `val_label.txt` into {image key: class index}; malformed lines name their number."""
    try:
        # utf-8-sig: a label file saved by a Windows editor starts with a BOM, which would
        # otherwise become part of the first image's name.
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: label file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read label file ({exc})") from None
    labels: Dict[str, int] = {}
    for lineno, line in enumerate(lines, 1):
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


# Result files.

RESULT_FORMATS = ("txt", "bin", "npy")


def result_filename(input_name: str, fmt: str, index: int = 1) -> str:
    """`<input file name without extension>_<index>.<fmt>`, the benchmark's naming."""
    if fmt not in RESULT_FORMATS:
        raise UserError(f"unknown result format {fmt!r} (choose from {', '.join(RESULT_FORMATS)})")
    stem = os.path.splitext(os.path.basename(input_name))[0]
    return f"{stem}_{index}.{fmt}"


def encode_result(vector: np.ndarray, fmt: str) -> bytes:
    """Bytes of one result file. txt keeps every float32 bit: '%.9g' round-trips float32.

    The layout is the benchmark's: one line, each value followed by a space, then a newline
    (the guide's metric does `line.strip().split(" ")`, so single spaces matter).
    """
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


def write_result(folder: str, input_name: str, vector: np.ndarray, fmt: str, index: int = 1) -> str:
    """Write one image's result atomically; returns its path."""
    path = os.path.join(folder, result_filename(input_name, fmt, index))
    atomic_write_bytes(path, encode_result(vector, fmt))
    return path


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


# Perf file.

def perf_filename(batch_size: int, device_id: int) -> str:
    return f"perf_vision_batchsize_{batch_size}_device_{device_id}.txt"


def pure_perf_filename(model_path: str, device_id: int) -> str:
    """The benchmark's pure-inference perf file: `PureInfer_perf_of_{om name}_in_device_{id}.txt`."""
    return f"PureInfer_perf_of_{os.path.basename(model_path).split('.', 1)[0]}_in_device_{device_id}.txt"


def format_pure_perf(rate: float, latency_ms: float) -> str:
    """`ave_throughputRate = 155.975samples/s, ave_latency = 6.42435ms`, as the benchmark writes it."""
    return f"ave_throughputRate = {_g(rate)}samples/s, ave_latency = {_g(latency_ms)}ms\n"


def _g(x: float) -> str:
    # The benchmark is C++ and prints with ostream's default: six significant digits.
    return f"{x:.6g}"


def format_perf(*, e2e_rate: float, e2e_latency_ms: float,
                read_rate: float, read_latency_ms: float,
                pre_rate: float, pre_latency_ms: float,
                infer_rate: float, interface_rate: float, infer_latency_ms: float,
                post_rate: float, post_latency_ms: float) -> str:
    """The benchmark's five-line perf file; ModelZoo's parse.py reads `[infer]`'s second number."""
    return (
        f"[e2e] throughputRate: {_g(e2e_rate)}, latency: {_g(e2e_latency_ms)}\n"
        f"[data read] throughputRate: {_g(read_rate)}, moduleLatency: {_g(read_latency_ms)}\n"
        f"[preprocess] throughputRate: {_g(pre_rate)}, moduleLatency: {_g(pre_latency_ms)}\n"
        f"[infer] throughputRate: {_g(infer_rate)}, Interface throughputRate: {_g(interface_rate)}, "
        f"moduleLatency: {_g(infer_latency_ms)}\n"
        f"[post] throughputRate: {_g(post_rate)}, moduleLatency: {_g(post_latency_ms)}\n"
    )


_PERF_LINE = re.compile(r"^\[(?P<section>[^\]]+)\]\s*(?P<body>.*)$")


def parse_perf(text: str) -> Dict[str, Dict[str, float]]:
    """{section: {key: value}} from a perf file, e.g. out['infer']['Interface throughputRate']."""
    out: Dict[str, Dict[str, float]] = {}
    for line in text.splitlines():
        m = _PERF_LINE.match(line.strip())
        if not m:
            continue
        fields = {}
        for part in m.group("body").split(","):
            if ":" in part:
                k, v = part.split(":", 1)
                fields[k.strip()] = float(v)
        out[m.group("section")] = fields
    return out


# result.json.

def format_accuracy(fraction: float) -> str:
    """The guide's rendering: `str(round(acc * 100, 2)) + '%'` (so 100% is '100.0%').

    The guide's `acc` is a numpy float64, so its round is numpy's (scale, rint, unscale), not
    Python's correctly rounded one; the same is used here so that every string matches.
    """
    return str(float(round(np.float64(fraction) * 100, 2))) + "%"


def result_json_text(n_images: int, n_classes: int, topk_fractions: Sequence[float]) -> str:
    """The guide's result.json, one line, keys in its order."""
    values = [{"key": "Number of images", "value": str(n_images)},
              {"key": "Number of classes", "value": str(n_classes)}]
    values += [{"key": f"Top{i + 1} accuracy", "value": format_accuracy(acc)}
               for i, acc in enumerate(topk_fractions)]
    return json.dumps({"title": "Overall statistical evaluation", "value": values})


def write_result_json(path: str, n_images: int, n_classes: int, topk_fractions: Sequence[float]) -> None:
    atomic_write_text(path, result_json_text(n_images, n_classes, topk_fractions))


def read_result_json(path: str) -> Dict[str, str]:
    """{key: value} of a result.json, e.g. out['Top1 accuracy'] == '67.31%'."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    return {item["key"]: item["value"] for item in doc["value"]}


# JSON side files.

def read_json(path: str, what: str) -> dict:
    """A JSON object written by `write_json` (summary.json, result_compare.json, run_settings.json);
    a missing or malformed file is a one-line error naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable {what} ({exc})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: not a {what} (expected a JSON object)")
    return obj


# Run settings.

#: scripts/run_all.sh records the settings its outputs were made with here, in its WORK_DIR.
RUN_SETTINGS_NAME = "run_settings.json"
#: the recorded settings, in the order they are compared and reported.
RUN_SETTING_KEYS = ("BS", "INTERPOLATION", "CKPT", "CKPT_SIZE", "CKPT_SHA256", "VAL_DIR", "LABELS", "MODEL_KIND")


def write_run_settings(path: str, settings: Dict[str, str]) -> None:
    """`{"format": "mocoinfer run settings 1", "settings": {KEY: value}}`, every value a string."""
    write_json(path, {"format": "mocoinfer run settings 1",
                      "settings": {k: str(settings[k]) for k in RUN_SETTING_KEYS}})


def read_run_settings(path: str) -> Dict[str, str]:
    doc = read_json(path, "run settings file")
    settings = doc.get("settings")
    if not isinstance(settings, dict) or any(k not in settings for k in RUN_SETTING_KEYS):
        raise UserError(f"{path}: not a run settings file (expected the keys {', '.join(RUN_SETTING_KEYS)})")
    return {k: str(settings[k]) for k in RUN_SETTING_KEYS}

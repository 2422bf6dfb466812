"""int8 variant of the exported model: ONNX Runtime's static quantization, checked against float.

`quantize_int8` turns `moco-v2-bs{N}.onnx` into `moco-v2-bs{N}-int8.onnx` with
`onnxruntime.quantization.quantize_static` (QDQ format, per-channel int8 weights, uint8
activations: the u8s8 form that VNNI/AMX integer units run), calibrated on preprocessed `.bin`
files. The quantized model is then run beside the float one on the same calibration images and
only moved under its final name when it agrees well enough (see MIN_TOP1_AGREEMENT, MIN_COSINE).
Nothing here quantizes by hand: ranges, scales and graph rewriting are ONNX Runtime's.

Calibration files may be either of the preprocessing outputs: float32 CHW (602,112 bytes, the
guide's) or uint8 HWC pixels (150,528 bytes), which are normalised here exactly as torchvision's
ToTensor + Normalize do (x/255, minus mean, divided by std, in float32).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from typing import Iterator, List, Optional

import numpy as np

from . import atomic
from .atomic import atomic_path
from .backends.onnxruntime import PRECISION_KEY
from .errors import UserError
from .formats import INPUT_CHANNELS, INPUT_SIZE, natural_key
from .progress import progress_bar
from .transforms import IMAGENET_MEAN, IMAGENET_STD

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_CALIBRATION_COUNT = 100
FLOAT_SAMPLE_BYTES = INPUT_CHANNELS * INPUT_SIZE * INPUT_SIZE * 4  # 602,112
UINT8_SAMPLE_BYTES = INPUT_CHANNELS * INPUT_SIZE * INPUT_SIZE  # 150,528
# Read by the runner (session metadata) so a run's summary can name the precision it measured.

# The floor an int8 model must reach on its calibration images against the float model. Per-channel
# int8 ResNet-50 typically keeps logit cosine above 0.99 and changes the top-1 of well under 5% of
# images; a broken calibration (wrong normalisation, too few images) falls far below both.
MIN_TOP1_AGREEMENT = 0.95
MIN_COSINE = 0.98
QUANT_OPSET = 13
# A dynamic-batch model is calibrated and checked this many images at a time: the calibrator keeps
# every intermediate tensor of a batch (about 100 MB per ResNet-50 image), so one batch of all
# calibration images could need gigabytes.
DYNAMIC_BATCH = 8


@dataclass
class QuantReport:
    images: int
    top1_agreement: float
    mean_cosine: float
    min_cosine: float
    max_abs_diff: float
    method: str
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"vs float on {self.images} calibration images: top-1 agreement {self.top1_agreement:.1%}, "
                f"cosine mean {self.mean_cosine:.4f} / min {self.min_cosine:.4f}, "
                f"max abs diff {self.max_abs_diff:.3g} ({self.method} calibration; floor: agreement >= "
                f"{MIN_TOP1_AGREEMENT:.0%}, mean cosine >= {MIN_COSINE})")


def int8_output_name(float_path: str) -> str:
    """`moco-v2-bs1.onnx` → `moco-v2-bs1-int8.onnx`, beside it."""
    base = float_path[:-5] if float_path.lower().endswith(".onnx") else float_path
    return base + "-int8.onnx"


def calibration_files(folder: str, count: int) -> List[str]:
    """The first `count` `.bin` files of `folder` in natural order, each of a known sample size."""
    if count < 1:
        raise UserError(f"{folder}: --calibration-count must be >= 1, got {count}")
    if not os.path.isdir(folder):
        raise UserError(f"{folder}: calibration folder not found (expected preprocessed .bin files)")
    try:
        with os.scandir(folder) as it:
            names = sorted((e.name for e in it
                            if e.name.endswith(".bin") and not e.name.startswith(".") and e.is_file()),
                           key=natural_key)
    except OSError as exc:
        raise UserError(f"{folder}: cannot list the calibration folder ({atomic.describe_os_error(exc)})") from None
    if not names:
        raise UserError(f"{folder}: no .bin files to calibrate on (run imagenet_torch_preprocess.py first)")
    paths = [os.path.join(folder, n) for n in names[:count]]
    for p in paths:
        try:
            size = os.path.getsize(p)
        except OSError as exc:
            raise UserError(f"{p}: cannot read this calibration file ({atomic.describe_os_error(exc)})") from None
        if size not in (FLOAT_SAMPLE_BYTES, UINT8_SAMPLE_BYTES):
            raise UserError(f"{p}: {size} bytes, expected {FLOAT_SAMPLE_BYTES} (float32 3x224x224) or "
                            f"{UINT8_SAMPLE_BYTES} (uint8 224x224x3)")
    return paths


def load_sample(path: str) -> np.ndarray:
    """One preprocessed file as the model's float32 CHW input; a file that cannot be read, or
    whose float32 values are not all finite (NaN or infinity: no preprocessed image holds one,
    and a calibrator fed one computes NaN ranges), is one UserError naming it."""
    try:
        with atomic.open_regular(path) as f:
            data = np.frombuffer(f.read(), dtype=np.uint8)
    except OSError as exc:
        raise UserError(f"{path}: cannot read this calibration file ({atomic.describe_os_error(exc)})") from None
    if data.size not in (FLOAT_SAMPLE_BYTES, UINT8_SAMPLE_BYTES):  # changed since it was listed
        raise UserError(f"{path}: {data.size} bytes, expected {FLOAT_SAMPLE_BYTES} (float32 3x224x224) or "
                        f"{UINT8_SAMPLE_BYTES} (uint8 224x224x3)")
    if data.size == FLOAT_SAMPLE_BYTES:
        bad = int(np.count_nonzero(~np.isfinite(data.view(np.float32))))
        if bad:
            raise UserError(f"{path}: {bad:,} of {data.size // 4:,} values are NaN or infinite; not a preprocessed "
                            "image: preprocess it again (imagenet_torch_preprocess.py) or remove it")
    if data.size == FLOAT_SAMPLE_BYTES:
        return data.view(np.float32).reshape(INPUT_CHANNELS, INPUT_SIZE, INPUT_SIZE)
    hwc = data.reshape(INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS).astype(np.float32)
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    # Same operations in the same order as ToTensor then Normalize, so the bits match torchvision's.
    return np.ascontiguousarray(((hwc / np.float32(255.0) - mean) / std).transpose(2, 0, 1))


def load_calibration(folder: str, count: int) -> np.ndarray:
    """The calibration samples, [n, 3, 224, 224] float32, every file read and checked: what
    pthtar2onnx.py calls before it exports, so a bad file stops the run before any model is written."""
    return np.stack([load_sample(p) for p in calibration_files(folder, count)])


def _batches(samples: np.ndarray, batch_size: Optional[int]) -> Iterator[np.ndarray]:
    """Batches of a fixed-batch model's size; the short last one is padded with its first image."""
    step = batch_size or DYNAMIC_BATCH
    for start in range(0, len(samples), step):
        batch = samples[start:start + step]
        if batch_size and len(batch) < batch_size:
            batch = np.concatenate([batch, np.repeat(batch[:1], batch_size - len(batch), axis=0)])
        yield batch


def _model_input(onnx_path: str):
    import onnx

    graph = onnx.load(onnx_path, load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if len(inputs) != 1:
        raise UserError(f"{onnx_path}: expected one model input, found {len(inputs)}")
    if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        # The calibration files become float32 CHW samples: only the float model takes them.
        raise UserError(f"{onnx_path}: its input {inputs[0].name!r} is not float32 (a --uint8-input model?); "
                        "int8 quantization starts from the float model (pthtar2onnx.py without --uint8-input)")
    dim = inputs[0].type.tensor_type.shape.dim[0]
    return inputs[0].name, (dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else None)


def _run_all(session, name: str, samples: np.ndarray, batch_size: Optional[int]) -> np.ndarray:
    outs = [session.run(None, {name: b})[0] for b in _batches(samples, batch_size)]
    return np.concatenate(outs)[:len(samples)].astype(np.float64)


def compare_outputs(ref: np.ndarray, got: np.ndarray) -> dict:
    """Top-1 agreement, per-image cosine (mean and min) and max |difference| of two logit matrices."""
    ref = ref.reshape(len(ref), -1).astype(np.float64)
    got = got.reshape(len(got), -1).astype(np.float64)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    cos = (ref * got).sum(1) / np.maximum(norms, 1e-30)
    return {"images": len(ref), "top1_agreement": float((ref.argmax(1) == got.argmax(1)).mean()),
            "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
            "max_abs_diff": float(np.abs(ref - got).max())}


def quantize_int8(float_onnx: str, calibration_dir: str, output: Optional[str] = None,
                  count: int = DEFAULT_CALIBRATION_COUNT, method: str = "minmax",
                  min_agreement: float = MIN_TOP1_AGREEMENT, min_cosine: float = MIN_COSINE) -> dict:
    """Quantize `float_onnx` on the calibration files, verify it, then move it into place.

    Raises UserError (and leaves no file) when the calibration input is unusable or the int8
    model falls below the agreement / cosine floor.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from .backends.onnxruntime import ort_session

    if method not in CALIBRATION_METHODS:
        raise UserError(f"unknown --calibration-method {method!r} (choose from {', '.join(CALIBRATION_METHODS)})")
    output = output or int8_output_name(float_onnx)
    paths = calibration_files(calibration_dir, count)
    # The int8 file may not replace the float model, a calibration file, or a special file.
    atomic.check_output(output, [float_onnx, *paths], what="int8 output")
    name, batch_size = _model_input(float_onnx)
    samples = np.stack([load_sample(p) for p in paths])
    batches = list(_batches(samples, batch_size))

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self):
            batch = next(self._it, None)
            return None if batch is None else {name: batch}

    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
    t0 = time.perf_counter()
    # Two steps (calibrate and quantize; verify against float), as the export shows its own.
    with atomic_path(output) as tmp, tempfile.TemporaryDirectory(prefix="mocoinfer-int8-") as work, \
            progress_bar(2, "quantize int8", unit="step") as bar:
        prepared = _prepare(float_onnx, work)
        quantize_static(prepared, tmp, _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=calibrate)
        _tag_precision(tmp, "int8")
        bar.update(1)
        ref = _run_all(ort_session(float_onnx), name, samples, batch_size)
        got = _run_all(ort_session(tmp), name, samples, batch_size)
        bar.update(1)
        c = compare_outputs(ref, got)
        report = QuantReport(images=c["images"], top1_agreement=c["top1_agreement"], mean_cosine=c["mean_cosine"],
                             min_cosine=c["min_cosine"], max_abs_diff=c["max_abs_diff"], method=method,
                             seconds=time.perf_counter() - t0)
        if not np.isfinite(got).all() or report.top1_agreement < min_agreement or report.mean_cosine < min_cosine:
            raise UserError(f"{output}: int8 model refused, {report.summary().replace('floor:', 'below the floor:')}")
    return {"output": output, "report": report}


def _prepare(float_onnx: str, work: str) -> str:
    """The float model as ONNX Runtime's quantizer wants it: opset >= 13 (per-channel
    DequantizeLinear needs its `axis` attribute) and shape-inferred by `quant_pre_process`."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(float_onnx)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < QUANT_OPSET:
        model = version_converter.convert_version(model, QUANT_OPSET)
    upgraded = os.path.join(work, "opset.onnx")
    onnx.save(model, upgraded)
    prepared = os.path.join(work, "prepared.onnx")
    quant_pre_process(upgraded, prepared)
    return prepared


def _tag_precision(path: str, precision: str) -> None:
    import onnx

    model = onnx.load(path)
    kept = [p for p in model.metadata_props if p.key != PRECISION_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = PRECISION_KEY, precision
    onnx.save(model, path)

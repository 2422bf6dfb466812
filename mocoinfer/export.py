"""Export the classifier to ONNX in the guide's exact form, and prove the file computes the model.

The graph is what Ascend's `atc` command in the guide expects: input `actual_input_1` float32
`[bs,3,224,224]`, output `output1` `[bs,classes]`, opset 11, fixed batch unless asked otherwise.
It is written with the TorchScript exporter (`dynamo=False`), whose operator choices ATC's ONNX
parser knows. Every export is then checked with `onnx.checker` and run through ONNX Runtime
against the PyTorch model in eval mode; the `.onnx` file only appears under its final name when
that check passes.

The output follows `atomic.py`'s policy, checked before the checkpoint is even loaded: it may
not be the checkpoint itself, a symlink or a special file (`--output /dev/null` as root would
replace the device), and its folder must be writable; the opset must be one the exporter has.
"""

from __future__ import annotations

import inspect
import os
import time
import warnings
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from . import atomic
from .backends.onnxruntime import ort_session
from .errors import UserError
from .formats import INPUT_CHANNELS, INPUT_SIZE

INPUT_NAME = "actual_input_1"
OUTPUT_NAME = "output1"
DEFAULT_OPSET = 11

# ONNX Runtime and PyTorch sum in different orders, so float32 logits differ in the last bits.
# For ResNet-50 on normalised inputs the observed max difference is ~1e-5 (logits of size ~1-10);
# an export that dropped a BatchNorm or mis-ordered a layer is off by 1e-1 or more. The check is
# max|ort - torch| <= ATOL + RTOL * max|torch|.
ATOL = 1e-4
RTOL = 1e-3

# What an export holds besides the model: tracing keeps about 3 MB per image of a ResNet-50 batch
# and the ONNX Runtime check about 10 MB more (peak RSS measured at batches 1, 8 and 32, torch
# 2.x); the checkpoint, the model and the runtimes take about 1 GB whatever the batch. A batch
# asking for more than the memory available now is refused before the checkpoint is loaded,
# instead of dying in the allocator (or being killed) half-way through tracing.
EXPORT_BYTES_PER_IMAGE = 16 * 2**20
EXPORT_BASE_BYTES = 2**30


@dataclass
class VerifyReport:
    batch_sizes: List[int]
    max_abs_diff: float = 0.0
    max_rel_diff: float = 0.0
    #: the largest per-batch limit `atol + rtol * max|torch|` that max_abs_diff was held to
    tolerance: float = 0.0
    atol: float = ATOL
    rtol: float = RTOL
    #: max|torch| over every verified batch: the scale the relative part of the limit multiplies
    torch_scale: float = 0.0
    top1_agreement: float = 1.0
    seconds: float = 0.0

    def summary(self) -> str:
        # The limit is shown as its formula next to the difference it bounds; the relative
        # difference has no limit of its own (near-zero logits make it large for no fault).
        return (f"max abs diff {self.max_abs_diff:.1e} (limit {self.tolerance:.1e} = {self.atol:g} + "
                f"{self.rtol:g} x max|torch| {self.torch_scale:.3g}), max rel diff {self.max_rel_diff:.3g}, "
                f"top-1 agreement {self.top1_agreement:.0%}, batch sizes {', '.join(map(str, self.batch_sizes))}")


def supported_opsets() -> Tuple[int, int]:
    """(lowest, highest) opset the installed TorchScript exporter writes."""
    try:
        from torch.onnx import _constants as c

        return int(c.ONNX_MIN_OPSET), int(getattr(c, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", c.ONNX_MAX_OPSET))
    except (ImportError, AttributeError):  # a private module: fall back to what every torch 2.x has
        return 7, 17


def check_opset(opset: int) -> None:
    low, high = supported_opsets()
    if not low <= opset <= high:
        raise UserError(f"--opset {opset} is not supported by the installed exporter (torch writes opsets "
                        f"{low} to {high}; the guide uses {DEFAULT_OPSET})")


def check_export_memory(checkpoint: str, batch_size: int, dynamic: bool = False) -> None:
    """Refuse a batch whose export and check would not fit in the memory available now (the
    tightest of MemAvailable, the cgroup's limit and `ulimit -v`; see `sizes.available_memory`)."""
    from .sizes import available_memory, human_size

    images = batch_size + 1 if dynamic else batch_size  # a dynamic graph is also run one larger
    need = EXPORT_BASE_BYTES + images * EXPORT_BYTES_PER_IMAGE
    free = available_memory()
    if free is not None and need > free:
        raise UserError(f"{checkpoint}: batch size {batch_size} needs about {human_size(need)} of memory to export "
                        f"and verify ({human_size(EXPORT_BYTES_PER_IMAGE)} per image), but only {human_size(free)} "
                        "is available: use a smaller batch (the guide exports batch 1); nothing was written")


def out_of_memory(exc: BaseException) -> bool:
    """torch reports a failed allocation as a RuntimeError, ONNX Runtime as its own error type."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or any(s in text for s in ("can't allocate memory", "not enough memory",
                                                                     "out of memory", "bad_alloc"))


def default_output_name(batch_size: int, dynamic: bool = False) -> str:
    return "moco-v2-dynamic.onnx" if dynamic else f"moco-v2-bs{batch_size}.onnx"


def torch_export(model, path: str, batch_size: int, opset: int, dynamic: bool, dummy=None) -> None:
    import torch

    if dummy is None:  # the guide's float32 NCHW input; the uint8-input model passes its own
        dummy = torch.randn(batch_size, INPUT_CHANNELS, INPUT_SIZE, INPUT_SIZE)
    kwargs = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
                  do_constant_folding=True, export_params=True)
    if dynamic:
        kwargs["dynamic_axes"] = {INPUT_NAME: {0: "-1"}, OUTPUT_NAME: {0: "-1"}}
    # torch >= 2.5 has a `dynamo` switch (default True from 2.9); older releases only have the
    # TorchScript exporter, which is the one ATC's parser was built against.
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # The exporter warns about its own deprecation; choosing it is deliberate (see above).
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        with torch.no_grad():
            torch.onnx.export(model, (dummy,), path, **kwargs)


def checked_session(onnx_path: str, shown: str):
    """An ONNX Runtime session on a graph that passes `onnx.checker` and has the guide's interface
    (one input `actual_input_1`, one output `output1`); errors name `shown`."""
    import onnx

    try:
        onnx.checker.check_model(onnx_path)
    except onnx.checker.ValidationError as exc:
        raise UserError(f"{shown}: exported graph fails onnx.checker: {str(exc).splitlines()[0]}") from None
    sess = ort_session(onnx_path)
    inputs, outputs = sess.get_inputs(), sess.get_outputs()
    if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != [OUTPUT_NAME]:
        raise UserError(f"{shown}: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, got "
                        f"{[i.name for i in inputs]} / {[o.name for o in outputs]}")
    return sess


def verify_onnx(onnx_path: str, model, batch_sizes: Sequence[int], seed: int = 0,
                atol: float = ATOL, rtol: float = RTOL, name: Optional[str] = None) -> VerifyReport:
    """Check the file with onnx.checker, then compare ONNX Runtime with PyTorch on random batches.

    Raises UserError when the graph is invalid, has the wrong interface, or any output differs
    beyond `atol + rtol * max|torch|`. Messages name `name` (the final output), not the
    temporary file being checked.
    """
    import numpy as np
    import torch

    shown = name or onnx_path
    start = time.perf_counter()
    sess = checked_session(onnx_path, shown)
    gen = torch.Generator().manual_seed(seed)
    report = VerifyReport(batch_sizes=list(batch_sizes), atol=atol, rtol=rtol)
    agree = total = 0
    for bs in batch_sizes:
        x = torch.randn(bs, INPUT_CHANNELS, INPUT_SIZE, INPUT_SIZE, generator=gen)
        with torch.no_grad():
            ref = model(x).numpy()
        got = sess.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        if got.shape != ref.shape:
            raise UserError(f"{shown}: output shape {got.shape} at batch {bs}, PyTorch gives {ref.shape}")
        diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        scale = float(np.abs(ref).max())
        max_abs = float(diff.max())
        max_rel = float((diff / np.maximum(np.abs(ref), 1e-6)).max())
        tol = atol + rtol * scale
        report.max_abs_diff = max(report.max_abs_diff, max_abs)
        report.max_rel_diff = max(report.max_rel_diff, max_rel)
        report.tolerance = max(report.tolerance, tol)
        report.torch_scale = max(report.torch_scale, scale)
        agree += int((got.argmax(1) == ref.argmax(1)).sum())
        total += bs
        if not np.isfinite(got).all() or max_abs > tol:
            raise UserError(f"{shown}: ONNX Runtime output differs from PyTorch at batch {bs}: "
                            f"max abs diff {max_abs:.3g} > tolerance {tol:.3g}")
    report.top1_agreement = agree / total
    report.seconds = time.perf_counter() - start
    return report


def export_model(model, output: str, batch_size: int = 1, opset: int = DEFAULT_OPSET,
                 dynamic: bool = False, verify: bool = True, inputs: Sequence[str] = ()) -> Optional[VerifyReport]:
    """Export `model` to `output`, verify it, and only then move it into place.

    `inputs` are the files the model came from (the checkpoint): the output may not be one.
    """
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    check_opset(opset)
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise UserError(f"{output}: output folder {folder} does not exist")
    # float32 parameters are the bulk of the file; a little over for the graph itself.
    need = int(sum(t.numel() * t.element_size() for t in model.state_dict().values()) * 1.05)
    atomic.check_output(output, inputs, what="output", need_bytes=need)
    model = model.eval()
    try:
        with atomic.atomic_path(output) as tmp:
            torch_export(model, tmp, batch_size, opset, dynamic)
            report = None
            if verify:
                # A dynamic graph must also be proven at a batch size other than the traced one.
                sizes = [batch_size, batch_size + 1 if batch_size > 1 else 2] if dynamic else [batch_size]
                report = verify_onnx(tmp, model, sizes, name=output)
    except OSError as exc:  # a full disk or a folder gone read-only while exporting
        raise UserError(f"{output}: cannot write ({atomic.describe_os_error(exc)}); nothing was written") from None
    return report

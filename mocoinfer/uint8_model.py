"""The classifier with uint8 image input: `pthtar2onnx.py --uint8-input`.

The wrapped model takes what `imagenet_torch_preprocess.py --dtype uint8` writes, uint8 RGB NHWC
`[bs,224,224,3]`, and normalises it inside the graph with torchvision's operations in
torchvision's order (ToTensor: permute to CHW, to float32, divide by 255; Normalize: subtract the
mean, divide by the std), so in PyTorch its input to the ResNet is bit-identical to a float32
`.bin`. ONNX Runtime and PyTorch users get the 4x smaller files; the NPU's equivalent is AIPP
(`mocoinfer.aipp`).

Its verification runs real images (the demo's sample images, every mode PIL opens) through both
paths: the float model in PyTorch on the float32 preprocessing, and the exported uint8 model in
ONNX Runtime on the uint8 preprocessing of the same files.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import List, Optional, Sequence

import torch

from .errors import UserError
from .export import ATOL, INPUT_NAME, OUTPUT_NAME, RTOL, VerifyReport
from .formats import INPUT_CHANNELS, INPUT_SIZE
from .transforms import DEFAULT_INTERPOLATION, IMAGENET_MEAN, IMAGENET_STD, EvalTransform

VERIFY_IMAGES = 16  # distinct demo images; larger batches cycle through them


class Uint8Input(torch.nn.Module):
    """`model` behind torchvision's ToTensor + Normalize, for uint8 NHWC input."""

    def __init__(self, model: torch.nn.Module, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD):
        super().__init__()
        self.model = model
        # float32 [1,3,1,1]: the broadcast torchvision's Normalize does with its [3,1,1] tensors.
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 [bs,H,W,3] → float32 [bs,3,H,W], one float32 operation at a time as torchvision does."""
        x = pixels.permute(0, 3, 1, 2).to(torch.float32).div(255)
        return x.sub(self.mean).div(self.std)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(pixels))


def default_output_name(batch_size: int, dynamic: bool = False) -> str:
    return "moco-v2-uint8-dynamic.onnx" if dynamic else f"moco-v2-uint8-bs{batch_size}.onnx"


def sample_batches(batch_sizes: Sequence[int], interpolation: str = DEFAULT_INTERPOLATION,
                   image_paths: Optional[Sequence[str]] = None):
    """[(uint8 NHWC batch, float32 NCHW batch)] per batch size, from real image files.

    Without `image_paths`, the demo's sample images are written to a temporary folder. The float
    batch is the float32 preprocessing of the same files (bit-identical to torchvision's).
    """
    import numpy as np

    tf = EvalTransform(interpolation=interpolation)
    with tempfile.TemporaryDirectory(prefix="mocoinfer-verify-") as tmp:
        if image_paths is None:
            from .demo import make_sample_images

            image_paths = make_sample_images(os.path.join(tmp, "val"), VERIFY_IMAGES)
        pixels = [tf.pixels_from_file(p) for p in image_paths]
    if not pixels:
        raise UserError("no images to verify the uint8-input model with")
    batches = []
    for bs in batch_sizes:
        u8 = np.stack([pixels[i % len(pixels)] for i in range(bs)])
        f32 = np.stack([tf.to_normalized(p) for p in u8])
        batches.append((u8, f32))
    return batches


def verify_uint8_onnx(onnx_path: str, model, batch_sizes: Sequence[int], atol: float = ATOL, rtol: float = RTOL,
                      interpolation: str = DEFAULT_INTERPOLATION,
                      image_paths: Optional[Sequence[str]] = None) -> VerifyReport:
    """onnx.checker, the uint8 NHWC interface, then ONNX Runtime on uint8 images against the float
    model in PyTorch on the float32 preprocessing of the same images.

    Fails when any logit differs by more than `atol + rtol * max|torch|`, or a top-1 class differs
    where PyTorch's top two are further apart than twice that tolerance (a closer pair may swap on
    rounding alone).
    """
    import numpy as np

    from .export import checked_session

    start = time.perf_counter()
    sess = checked_session(onnx_path, onnx_path)
    inputs = sess.get_inputs()
    if inputs[0].type != "tensor(uint8)" or list(inputs[0].shape[1:]) != [INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS]:
        raise UserError(f"{onnx_path}: input is {inputs[0].type} {inputs[0].shape}, expected uint8 "
                        f"[bs,{INPUT_SIZE},{INPUT_SIZE},{INPUT_CHANNELS}]")
    report = VerifyReport(batch_sizes=list(batch_sizes), atol=atol, rtol=rtol)
    agree = total = 0
    for (u8, f32), bs in zip(sample_batches(batch_sizes, interpolation, image_paths), batch_sizes):
        with torch.no_grad():
            ref = model(torch.from_numpy(f32)).numpy()
        got = sess.run([OUTPUT_NAME], {INPUT_NAME: u8})[0]
        if got.shape != ref.shape:
            raise UserError(f"{onnx_path}: output shape {got.shape} at batch {bs}, PyTorch gives {ref.shape}")
        diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        max_abs = float(diff.max())
        tol = atol + rtol * float(np.abs(ref).max())
        report.torch_scale = max(report.torch_scale, float(np.abs(ref).max()))
        report.max_abs_diff = max(report.max_abs_diff, max_abs)
        report.max_rel_diff = max(report.max_rel_diff, float((diff / np.maximum(np.abs(ref), 1e-6)).max()))
        report.tolerance = max(report.tolerance, tol)
        if not np.isfinite(got).all() or max_abs > tol:
            raise UserError(f"{onnx_path}: uint8-input model (ONNX Runtime) differs from the float model "
                            f"(PyTorch) at batch {bs}: max abs diff {max_abs:.3g} > tolerance {tol:.3g}")
        same = got.argmax(1) == ref.argmax(1)
        top2 = np.sort(ref, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 2 * tol
        if (clear & ~same).any():
            raise UserError(f"{onnx_path}: uint8-input model predicts another top-1 class than the float model "
                            f"at batch {bs} (image {int(np.flatnonzero(clear & ~same)[0])})")
        agree += int(same.sum())
        total += bs
    report.top1_agreement = agree / total
    report.seconds = time.perf_counter() - start
    return report


def graph_ops(onnx_path: str) -> List[str]:
    """The operator types of a graph, in node order (to check what a runtime must support)."""
    import onnx

    return [node.op_type for node in onnx.load(onnx_path, load_external_data=False).graph.node]


def export_uint8_model(model, output: str, batch_size: int = 1, opset: int = 11, dynamic: bool = False,
                       verify: bool = True, interpolation: str = DEFAULT_INTERPOLATION) -> Optional[VerifyReport]:
    """Export `Uint8Input(model)` to `output`, verify it against `model`, and only then move it into place."""
    from .atomic import atomic_path
    from .export import torch_export

    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise UserError(f"{output}: output folder {folder} does not exist")
    model = model.eval()
    wrapped = Uint8Input(model).eval()
    dummy = torch.zeros(batch_size, INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS, dtype=torch.uint8)
    with atomic_path(output) as tmp:
        torch_export(wrapped, tmp, batch_size, opset, dynamic, dummy=dummy)
        report = None
        if verify:
            sizes = [batch_size, batch_size + 1 if batch_size > 1 else 2] if dynamic else [batch_size]
            report = verify_uint8_onnx(tmp, model, sizes, interpolation=interpolation)
    return report

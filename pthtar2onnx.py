#!/usr/bin/env python3
"""Stage 1: MoCo-v2 linear-classifier checkpoint → verified ONNX model.

Guide forms, both accepted unchanged:
    python3 pthtar2onnx.py 1 model_lincls_best.pth.tar
    python3 pthtar2onnx.py --bs 1 --weight model_lincls_best.pth.tar
Both write ./moco-v2-bs1.onnx (input actual_input_1 [bs,3,224,224], output output1 [bs,1000]).
With --uint8-input: ./moco-v2-uint8-bs1.onnx, input actual_input_1 uint8 [bs,224,224,3] (the files of
imagenet_torch_preprocess.py --dtype uint8), normalised inside the graph.
"""

from __future__ import annotations

import argparse
import os
import sys

from mocoinfer.deps import require

# Before any import that needs them: a Python without them gets one line, not a traceback.
require("torch", "torchvision", "onnx", "onnxruntime", "numpy")

from mocoinfer.cli import either_form, run_main  # noqa: E402
from mocoinfer.errors import UserError  # noqa: E402
from mocoinfer.export import ATOL, DEFAULT_OPSET, RTOL  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="pthtar2onnx.py",
        usage="%(prog)s [BS] CHECKPOINT [options]  |  %(prog)s --bs BS --weight CHECKPOINT [options]",
        description="Export a MoCo-v2 linear-classifier checkpoint (main_lincls.py format) to ONNX "
                    "and verify it against PyTorch with ONNX Runtime.",
        epilog=f"Verification: onnx.checker, then ONNX Runtime (CPU) vs PyTorch eval mode on random "
               f"batches; fails when max|ort - torch| > {ATOL:g} + {RTOL:g} * max|torch|. "
               "No .onnx file is left behind when export or verification fails.")
    p.add_argument("positional", nargs="*", metavar="[BS] CHECKPOINT",
                   help="the guide's form: batch size, then checkpoint path (model_lincls_best.pth.tar)")
    p.add_argument("--bs", "--batch-size", dest="bs", type=int, help="batch size (newer guide form)")
    p.add_argument("--weight", "--checkpoint", dest="weight", help="checkpoint path (newer guide form)")
    p.add_argument("--output", "-o", help="output path (default: ./moco-v2-bs{N}.onnx)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default: %(default)s, as the guide)")
    p.add_argument("--dynamic", action="store_true",
                   help="dynamic batch axis (the guide found fixed batch more accurate and faster on Ascend)")
    p.add_argument("--uint8-input", "--uint8_input", dest="uint8_input", action="store_true",
                   help="input uint8 RGB NHWC [bs,224,224,3] (imagenet_torch_preprocess.py --dtype uint8), "
                        "normalised in the graph; verified against the float model on sample images "
                        "(default output: ./moco-v2-uint8-bs{N}.onnx)")
    p.add_argument("--arch", help="torchvision ResNet name, overriding the checkpoint's 'arch' (default: resnet50)")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime check (not recommended)")
    p.add_argument("--quantize", choices=["int8"],
                   help="also write moco-v2-bs{N}-int8.onnx (ONNX Runtime static quantization, QDQ, per-channel), "
                        "verified against float; with --output, the int8 model is written there and the float "
                        "model it comes from is not kept")
    p.add_argument("--calibration", metavar="DIR", help="preprocessed .bin files to calibrate and verify int8 on")
    p.add_argument("--calibration-count", type=int, default=100, help="calibration images (default: %(default)s)")
    p.add_argument("--calibration-method", choices=["minmax", "entropy", "percentile"], default="minmax",
                   help="activation range estimate (default: %(default)s)")
    args = p.parse_args(argv)
    pos = args.positional
    if len(pos) > 2:
        p.error(f"expected at most two positional arguments (BS CHECKPOINT), got {len(pos)}")
    if len(pos) == 2 and not pos[0].isdigit():
        p.error(f"batch size must be a positive integer, got {pos[0]!r}")
    if len(pos) == 1 and pos[0].isdigit() and not os.path.exists(pos[0]):
        pos = [pos[0], None]
    elif len(pos) == 1:
        pos = [None, pos[0]]
    args.batch_size = int(pos[0]) if pos and pos[0] is not None else None
    args.checkpoint = pos[1] if len(pos) == 2 else None
    args.batch_size = either_form(p, args.batch_size, args.bs, "batch size")
    args.checkpoint = either_form(p, args.checkpoint, args.weight, "checkpoint")
    if args.batch_size is None:
        args.batch_size = 1
    if args.checkpoint is None:
        p.error("no checkpoint given (e.g. `pthtar2onnx.py 1 model_lincls_best.pth.tar`)")
    if args.batch_size < 1:
        p.error(f"batch size must be >= 1, got {args.batch_size}")
    if args.quantize and not args.calibration:
        p.error("--quantize int8 needs --calibration DIR (preprocessed .bin files)")
    return args


def main(argv=None) -> int:
    from mocoinfer.pth2onnx import export_checkpoint

    args = parse_args(argv)
    if args.quantize and args.uint8_input:
        raise UserError(f"{args.checkpoint}: --quantize int8 starts from the float model, and --uint8-input "
                        "exports another one; run the two separately (nothing was written)")
    if args.quantize:
        from mocoinfer.quantize import load_calibration

        # Every calibration file read and checked now: a bad one stops the run before the export,
        # not after the float model was written.
        load_calibration(args.calibration, args.calibration_count)
    if args.quantize and args.output:
        return _export_int8_only(args)
    result = export_checkpoint(args.checkpoint, args.output, batch_size=args.batch_size, opset=args.opset,
                               dynamic=args.dynamic, arch=args.arch, verify=not args.no_verify,
                               uint8_input=args.uint8_input)
    print(_export_line(args, result, f"wrote {result['output']}"))
    if args.quantize:
        from mocoinfer.quantize import quantize_int8

        q = quantize_int8(result["output"], args.calibration, count=args.calibration_count,
                          method=args.calibration_method)
        print(f"wrote {q['output']} in {q['report'].seconds:.1f}s; {q['report'].summary()}")
    return 0


def _export_line(args, result, what: str) -> str:
    report = result["verify"]
    check = f"verified: {report.summary()}" if report else "NOT verified (--no-verify)"
    kind = ", uint8 NHWC input" if args.uint8_input else ""
    return (f"{what} (opset {args.opset}, batch {'dynamic' if args.dynamic else args.batch_size}{kind}) "
            f"in {result['load_seconds'] + result['export_seconds']:.1f}s; {check}")


def _export_int8_only(args) -> int:
    """`--quantize int8 --output NAME`: NAME is the model asked for, so the int8 one goes there.
    The float model it is quantized from is exported into a temporary folder and removed after;
    without --output both are kept (moco-v2-bs{N}.onnx and moco-v2-bs{N}-int8.onnx)."""
    import tempfile

    from mocoinfer import atomic
    from mocoinfer.export import default_output_name
    from mocoinfer.pth2onnx import export_checkpoint
    from mocoinfer.quantize import quantize_int8

    # The int8 path's faults (a folder, a special file, the checkpoint itself) before the export.
    atomic.check_output(args.output, [args.checkpoint], what="int8 output")
    with tempfile.TemporaryDirectory(prefix="mocoinfer-fp32-") as tmp:
        float_path = os.path.join(tmp, default_output_name(args.batch_size, args.dynamic))
        result = export_checkpoint(args.checkpoint, float_path, batch_size=args.batch_size, opset=args.opset,
                                   dynamic=args.dynamic, arch=args.arch, verify=not args.no_verify)
        print(_export_line(args, result, "exported the float model to quantize (not kept)"))
        q = quantize_int8(float_path, args.calibration, output=args.output, count=args.calibration_count,
                          method=args.calibration_method)
    print(f"wrote {q['output']} (int8) in {q['report'].seconds:.1f}s; {q['report'].summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

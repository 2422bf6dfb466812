#!/usr/bin/env python3
"""Stage 3: ImageNet val images → one float32 CHW 3x224x224 `.bin` per image.

Guide forms, both accepted unchanged:
    python3 imagenet_torch_preprocess.py /opt/npu/imagenet/val ./prep_dataset
    python3 imagenet_torch_preprocess.py --input_img_dir /opt/npu/imagenet/val --output_img_dir ./prep_dataset
Each image `<key>.<ext>` becomes `<key>.bin` (602,112 bytes), bit-identical to torchvision's
Resize(256) → CenterCrop(224) → ToTensor() → Normalize(ImageNet mean, std). With `--dtype uint8`
it holds the pixels before ToTensor instead: uint8 RGB HWC 224x224x3 (150,528 bytes), the input of
an OM converted with AIPP (`AIPP=1 scripts/2_onnx2om.sh`) or of `pthtar2onnx.py --uint8-input`.
"""

from __future__ import annotations

import argparse
import sys

from mocoinfer.deps import require

# Before any import that needs them: a Python without them gets one line, not a traceback.
require("numpy", "PIL", "tqdm")

from mocoinfer.cli import either_form, run_main  # noqa: E402
from mocoinfer.formats import BIN_DTYPES, DEFAULT_BIN_DTYPE  # noqa: E402
from mocoinfer.transforms import DEFAULT_CROP, DEFAULT_INTERPOLATION, DEFAULT_RESIZE, INTERPOLATIONS  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Preprocess a folder of images for the Moco-v2 model: one float32 CHW .bin per image, "
                    "bit-identical to torchvision's Resize -> CenterCrop -> ToTensor -> Normalize(ImageNet).",
        epilog="Bad inputs (corrupt, truncated, empty, not an image, a folder) do not stop the run: they are "
               "listed with their reason on stderr and in OUTPUT_DIR/failed.txt, and the exit status is 1 "
               "(0 with --skip-bad). Every .bin is written under a temporary name and renamed. OUTPUT_DIR is locked "
               "for the run and keeps a manifest (.mocoinfer-manifest.json) of the settings and of each image's "
               "SHA-256: a rerun reuses a .bin only when both still match, so rerun the same command to finish "
               "an interrupted run. Hidden files are skipped; FIFOs, sockets, devices and symlink loops are "
               "listed as failures without being opened.")
    p.add_argument("input_dir", nargs="?", help="folder of images (guide form: first positional)")
    p.add_argument("output_dir", nargs="?", help="folder for the .bin files (guide form: second positional)")
    p.add_argument("--input_img_dir", "--input-img-dir", dest="input_img_dir", help="folder of images (newer form)")
    p.add_argument("--output_img_dir", "--output-img-dir", dest="output_img_dir",
                   help="folder for the .bin files (newer form)")
    p.add_argument("--interpolation", choices=sorted(INTERPOLATIONS), default=DEFAULT_INTERPOLATION,
                   help="resize filter: bicubic (default) is the ModelZoo Moco-v2 script's, behind the guide's "
                        "published accuracy; bilinear is MoCo main_lincls.py's evaluation")
    p.add_argument("--resize", type=int, default=DEFAULT_RESIZE,
                   help="short edge after resizing, 8 to 4096 (default: %(default)s)")
    p.add_argument("--crop", type=int, default=DEFAULT_CROP,
                   help="side of the center crop, the model's input size, 8 to --resize (default: %(default)s)")
    p.add_argument("--dtype", choices=sorted(BIN_DTYPES), default=DEFAULT_BIN_DTYPE,
                   help="float32 (default): normalised CHW, the guide's input; uint8: the resized, cropped RGB "
                        "pixels, HWC, 4x smaller, for a model that normalises on the device (AIPP) or in its graph")
    p.add_argument("--workers", "-j", type=int, help="worker processes (default: all cores this process may use)")
    p.add_argument("--skip-bad", "--skip_bad", dest="skip_bad", action="store_true",
                   help="bad inputs are a warning and the exit status is 0")
    p.add_argument("--overwrite", action="store_true",
                   help="redo every .bin, also those proven current or made with other settings")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    args = p.parse_args(argv)
    args.input_dir = either_form(p, args.input_dir, args.input_img_dir, "input dir")
    args.output_dir = either_form(p, args.output_dir, args.output_img_dir, "output dir")
    if args.input_dir is None or args.output_dir is None:
        p.error("give the input and output dirs (e.g. `imagenet_torch_preprocess.py /opt/npu/imagenet/val "
                "./prep_dataset`)")
    for name in ("resize", "crop", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name} must be >= 1, got {value}")
    return args


def main(argv=None) -> int:
    from mocoinfer.preprocess import preprocess_folder, report

    args = parse_args(argv)
    summary = preprocess_folder(args.input_dir, args.output_dir, interpolation=args.interpolation,
                                resize=args.resize, crop=args.crop, workers=args.workers,
                                overwrite=args.overwrite, progress=args.progress, dtype=args.dtype)
    return report(summary, skip_bad=args.skip_bad)


if __name__ == "__main__":
    sys.exit(run_main(main))

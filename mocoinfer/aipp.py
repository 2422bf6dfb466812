"""The AIPP configuration that lets an OM take uint8 pixels and normalise them on the NPU.

`AIPP=1 scripts/2_onnx2om.sh` writes it with `python -m mocoinfer.aipp FILE` and passes it to atc
as `--insert_op_conf=FILE`. The float32 ONNX model is converted as usual (NCHW); atc puts the
AIPP unit in front of its input, so the OM reads what `imagenet_torch_preprocess.py --dtype uint8`
writes: RGB888_U8 pixels, NHWC, already resized and cropped.

The settings (CANN ATC "AIPP configuration file", prototxt syntax, one `aipp_op` block):
- static mode: the parameters are fixed in the OM, no per-inference AIPP set-up;
- `input_format: RGB888_U8` at `src_image_size_w/h` = the crop, so AIPP neither crops nor
  resizes (`crop: false`) and, with `csc_switch: false` and no channel swap, keeps R, G, B;
- per channel, AIPP computes `(pixel - mean_chn - min_chn) * var_reci_chn`. With `mean_chn` 0,
  `min_chn` = 255 x mean and `var_reci_chn` = 1 / (255 x std), that is torchvision's
  `(pixel / 255 - mean) / std`, up to rounding: the device works in reduced precision (fp16),
  so the OM's inputs differ slightly from the host's float32 ones (see docs/uint8.md).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence

from .atomic import atomic_write_text
from .formats import INPUT_SIZE
from .transforms import IMAGENET_MEAN, IMAGENET_STD

AIPP_INPUT_FORMAT = "RGB888_U8"


def _number(value: float) -> str:
    # Ten significant digits: far beyond fp16, and short enough to read (123.675, 0.01712475383).
    return f"{value:.10g}"


def aipp_config(width: int = INPUT_SIZE, height: int = INPUT_SIZE, mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD) -> str:
    """The text of a static AIPP config normalising uint8 RGB `width` x `height` images by `mean`/`std`."""
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be >= 1, got {width} and {height}")
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise ValueError("mean and std need one value per RGB channel, std > 0")
    lines: List[str] = [
        "# Written by mocoinfer.aipp: uint8 RGB HWC pixels in, torchvision's normalisation on the device.",
        "aipp_op {",
        "    aipp_mode: static",
        f"    input_format: {AIPP_INPUT_FORMAT}",
        f"    src_image_size_w: {width}",
        f"    src_image_size_h: {height}",
        "    crop: false",
        "    csc_switch: false",
        "    rbuv_swap_switch: false",
    ]
    lines += [f"    mean_chn_{c}: 0" for c in range(3)]
    lines += [f"    min_chn_{c}: {_number(255.0 * m)}" for c, m in enumerate(mean)]
    lines += [f"    var_reci_chn_{c}: {_number(1.0 / (255.0 * s))}" for c, s in enumerate(std)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_aipp_config(path: str, width: int = INPUT_SIZE, height: int = INPUT_SIZE) -> str:
    """Write the ImageNet AIPP config to `path` atomically; returns the path."""
    atomic_write_text(path, aipp_config(width, height))
    return path


def main(argv: Optional[list] = None) -> int:
    from .cli import run_main

    def run(args_list) -> int:
        p = argparse.ArgumentParser(prog="python -m mocoinfer.aipp",
                                    description="Write the static AIPP config (uint8 RGB in, ImageNet "
                                                "normalisation on the device) for atc --insert_op_conf.")
        p.add_argument("output", help="the config file to write")
        p.add_argument("--size", type=int, default=INPUT_SIZE, help="model input side (default: %(default)s)")
        args = p.parse_args(args_list)
        if args.size < 1:
            p.error(f"--size must be >= 1, got {args.size}")
        try:
            write_aipp_config(args.output, args.size, args.size)
        except OSError as exc:
            from .errors import UserError

            raise UserError(f"{args.output}: cannot write the AIPP config ({exc.strerror or exc})") from None
        print(f"wrote {args.output} (static AIPP, {AIPP_INPUT_FORMAT} {args.size}x{args.size}, ImageNet mean/std)")
        return 0

    return run_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())

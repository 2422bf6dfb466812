#!/usr/bin/env python3
"""Stage 4: the info file listing the benchmark's inputs, one `index path width height` line each.

Guide forms, both accepted unchanged:
    python3 get_info.py bin ./prep_dataset ./dataset_prep_bin.info 224 224
    python3 get_info.py jpg /opt/npu/imagenet/val ./ImageNet.info
"""

from __future__ import annotations

import argparse
import sys

from mocoinfer.deps import require

# Before any import that needs them: a Python without them gets one line, not a traceback.
require("tqdm")

from mocoinfer.cli import run_main  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Write the info file (lines `index path width height`, 0-based, natural order) for a folder "
                    "of preprocessed .bin files or of JPEG images.",
        epilog="bin mode checks every file is WIDTH x HEIGHT x 3 float32 or uint8 (one type per folder); "
               "jpg mode reads each size from "
               "the image header. The info file is written atomically, and not at all when a check fails.")
    p.add_argument("mode", choices=("bin", "jpg"), help="bin: preprocessed files; jpg: JPEG images")
    p.add_argument("file_path", help="the folder to list")
    p.add_argument("info_name", help="the info file to write")
    p.add_argument("width", nargs="?", type=int, help="model input width (bin mode)")
    p.add_argument("height", nargs="?", type=int, help="model input height (bin mode)")
    args = p.parse_args(argv)
    if args.mode == "bin":
        if args.width is None or args.height is None:
            p.error("bin mode needs WIDTH and HEIGHT (e.g. `get_info.py bin ./prep_dataset "
                    "./dataset_prep_bin.info 224 224`)")
        if args.width < 1 or args.height < 1:
            p.error(f"width and height must be >= 1, got {args.width} and {args.height}")
    elif args.width is not None:
        p.error("jpg mode reads each image's size from the file: give no WIDTH or HEIGHT")
    return args


def main(argv=None) -> int:
    from mocoinfer.getinfo import write_info_file

    args = parse_args(argv)
    if args.mode == "jpg":  # reads each image's size; bin mode needs no image library
        require("PIL")
    summary = write_info_file(args.mode, args.file_path, args.info_name, args.width or 0, args.height or 0)
    print(summary.line(args.mode))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

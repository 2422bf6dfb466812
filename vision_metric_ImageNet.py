#!/usr/bin/env python3
"""Stage 6: top-1..top-5 accuracy of a result dir against val_label.txt, written as result.json.

Guide forms, both accepted unchanged:
    python3 vision_metric_ImageNet.py result/dumpOutput_device0/ ./val_label.txt ./ result.json
    python3 vision_metric_ImageNet.py --folder_davinci_target result/dumpOutput_device0/ \
        --annotation_file_path ./val_label.txt --result_json_path ./ --json_file_name result.json
With --compare REFERENCE_DIR it also checks this result dir against another backend's.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from mocoinfer.deps import require

# Before any import that needs them: a Python without them gets one line, not a traceback.
require("numpy", "tqdm")

from mocoinfer.cli import either_form, run_main  # noqa: E402
from mocoinfer.errors import UserError  # noqa: E402
from mocoinfer.progress import add_progress_args  # noqa: E402

EXIT_TOLERANCE = 3


def parse_args(argv):
    from mocoinfer.metric import TIE_RULE

    p = argparse.ArgumentParser(
        description="Top-1..top-5 accuracy of inference results (txt, bin or npy files named "
                    "<image>_1.* by benchmark or <image>_0.* by ais_bench) against the label file; "
                    "writes the guide's one-line result.json.",
        epilog=f"Ranking: {TIE_RULE} (the same on every run; the guide's sort left ties to chance). "
               "A 1001-class output (background at 0) shifts every label by one, as the guide does. "
               "Images scored = results with a label. Exit status: 0 ok, 1 bad input "
               f"(nothing written), {EXIT_TOLERANCE} --compare found a top-1 drop above --tolerance.")
    p.add_argument("folder", nargs="?", help="result dir (guide form: first positional)")
    p.add_argument("annotation", nargs="?", help="label file, e.g. ./val_label.txt")
    p.add_argument("json_path", nargs="?",
                   help="folder for the result json (default ./); a path ending in .json with no file name "
                        "after it is the json file itself")
    p.add_argument("json_name", nargs="?", help="result json file name (default result.json)")
    p.add_argument("--folder_davinci_target", "--folder-davinci-target", dest="folder_opt", metavar="DIR",
                   help="result dir (newer guide form)")
    p.add_argument("--annotation_file_path", "--annotation-file-path", dest="annotation_opt", metavar="FILE",
                   help="label file (newer guide form)")
    p.add_argument("--result_json_path", "--result-json-path", dest="json_path_opt", metavar="DIR",
                   help="folder for the result json (newer guide form)")
    p.add_argument("--json_file_name", "--json-file-name", dest="json_name_opt", metavar="NAME",
                   help="result json file name (newer guide form)")
    p.add_argument("--allow-missing-labels", action="store_true",
                   help="warn about results without a label and leave them out of the count "
                        "(default: an error)")
    p.add_argument("--compare", metavar="REFERENCE_DIR",
                   help="also compare with another backend's result dir over the images both hold; "
                        "top-1 drop = reference top-1 - this dir's top-1, in points")
    p.add_argument("--tolerance", type=float, default=1.0,
                   help="largest top-1 drop, in points, that --compare accepts (default: %(default)s, "
                        "the guide's criterion)")
    p.add_argument("--compare-json", metavar="PATH",
                   help="where to write the comparison (default: <json name>_compare.json beside it)")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="score a result folder whose manifest says its run did not finish or that holds "
                        "results of another run (mixed), with a warning (default: an error)")
    p.add_argument("--workers", type=int,
                   help="processes reading result files (default: 0 under 2,000 txt files, else up to 4; "
                        "bin and npy files are read in one process)")
    add_progress_args(p, quiet_alias=True)
    args = p.parse_args(argv)
    name_given = args.json_name is not None or args.json_name_opt is not None
    for name, pos, opt, default in (("result dir", "folder", "folder_opt", None),
                                    ("label file", "annotation", "annotation_opt", None),
                                    ("result json folder", "json_path", "json_path_opt", "./"),
                                    ("json file name", "json_name", "json_name_opt", "result.json")):
        value = either_form(p, getattr(args, pos), getattr(args, opt), name)
        if value is None:
            if default is None:
                p.error(f"no {name} given (e.g. `vision_metric_ImageNet.py result/dumpOutput_device0/ "
                        "./val_label.txt ./ result.json`)")
            value = default
        setattr(args, pos, value)
    # `... ./val_label.txt ./acc.json` names the file itself: a third argument ending in .json with
    # no file name after it is the json's path (an existing folder of that name stays a folder),
    # never a new folder `acc.json/` holding result.json.
    if not name_given and args.json_path.lower().endswith(".json") and not os.path.isdir(args.json_path):
        args.json_path, args.json_name = os.path.dirname(args.json_path) or "./", os.path.basename(args.json_path)
    if not math.isfinite(args.tolerance) or args.tolerance < 0:
        p.error(f"--tolerance must be a number >= 0, got {args.tolerance}")
    return args


def main(argv=None) -> int:
    from mocoinfer.atomic import check_writable_dir, make_folder, write_json
    from mocoinfer.formats import write_result_json
    from mocoinfer.metric import format_report, score, warn_about
    from mocoinfer.resume import check_metric_output, check_result_folder

    args = parse_args(argv)
    out_path = os.path.join(args.json_path, args.json_name)
    if os.path.isdir(out_path):
        raise UserError(f"{out_path}: is a folder, not a json file name")
    # Every output and folder fault before the (long) pass over the results.
    dirs = [d for d in (args.folder, args.compare) if d]
    for d in dirs:
        if os.path.isdir(d):
            check_result_folder(d, args.allow_incomplete)
    json_dir = args.json_path or "."
    make_folder(json_dir, "result json folder", "result json folder is a file")
    check_writable_dir(json_dir, 64 << 10, what="result json folder")
    cmp_path = None
    if args.compare:
        cmp_path = args.compare_json or os.path.splitext(out_path)[0] + "_compare.json"
    for path in [out_path] + ([cmp_path] if cmp_path else []):
        check_metric_output(path, [args.annotation], dirs)
    res, cmp = score(args.folder, args.annotation, reference_dir=args.compare or None, tolerance=args.tolerance,
                     allow_missing_labels=args.allow_missing_labels, workers=args.workers,
                     progress=not args.no_progress)
    warn_about(res, args.folder)

    write_result_json(out_path, res.n_images, res.n_classes, res.fractions)
    if cmp is not None and cmp_path:
        write_json(cmp_path, cmp)

    print(format_report(res, cmp))
    print(f"wrote {out_path}" + (f" and {cmp_path}" if cmp_path else ""))
    if cmp is not None and not cmp["passed"]:
        return EXIT_TOLERANCE
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

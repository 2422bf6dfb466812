"""The command-line forms run_om_infer.py takes, told apart by their flags (a form, not a runtime).

- the old `benchmark` tool's `-key=value` form (run_om_infer.py translates it);
- this runner's own `--batch-size/--device-id/--warmup/--pure-data` form;
- ais_bench's form, which the newer ModelZoo guides use: a line with `--model` and no flag of
  the own form is ais_bench's, except that an `--input` ais_bench cannot read (a get_info.py
  info file, a folder of images) keeps the own form; where a line could be read both ways, one
  line on stderr says which was chosen and why. Its outputs follow ais_bench's source
  (`benchmark_process.main`, `summary.Summary.report`, `io_oprations.save_tensors_to_file`):
  `{stem}_{k}.{bin|txt|npy}` in `{output}/{output_dirname}` or a time-stamped
  `{output}/YYYY_MM_DD-HH_MM_SS`, with several devices `{that}/device{id}_{i}/`, and the
  summary in `{folder}_summary.json` beside each folder, printed with ais_bench's labels.

Every ais_bench flag is honoured, accepted as harmless when its value changes nothing here
(`HARMLESS`: `--profiler 0`, `--run_mode array`), or refused by name with the reason
(`REFUSED`); docs/ais_bench.md has the table. Error messages name options the way the user
spelled them (`respell`).
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .errors import UserError
from .formats import AIS_INPUT_SUFFIXES, ais_compute, ais_stats, ais_throughput

AIS = "ais_bench"
BENCHMARK = "benchmark"
OWN = "own"

#: flags only ais_bench's form has (every flag of its `__main__.get_args` that the own form lacks)
AIS_ONLY = ("--batchsize", "--output_dirname", "--device", "-d", "--warmup_count", "--warmup-count",
            "--pure_data_type", "--dymBatch", "--display_all_summary", "--debug", "-l", "--divide_input",
            "--profiler", "--dump", "--acl_json_path", "--output_batchsize_axis", "--run_mode", "--dymHW",
            "--dymDims", "--dymShape", "--dym-shape", "--outputSize", "--auto_set_dymshape_mode",
            "--auto_set_dymdims_mode", "--dymShape_range", "--aipp_config", "--energy_consumption", "--npu_id",
            "--perf", "--pipeline", "--profiler_rename", "--dump_npy")
#: flags only this runner's own form has
OWN_ONLY = ("--batch-size", "--device-id", "--warmup", "--pure-data", "--workers", "-j", "--interpolation",
            "--resize", "--crop", "--skip-bad", "--skip_bad")
#: ais_bench flags accepted when their value changes nothing here: (dest, the values that do, why)
HARMLESS: Dict[str, Tuple[str, Callable[[object], bool], str]] = {
    "--profiler": ("profiler", lambda v: not v, "profiling with msprof"),
    "--dump": ("dump", lambda v: not v, "dumping operator data"),
    "--dump_npy": ("dump_npy", lambda v: not v, "dumping operator data"),
    "--energy_consumption": ("energy_consumption", lambda v: not v, "energy measurement with npu-smi"),
    "--perf": ("perf", lambda v: not v, "trtexec runs"),
    "--auto_set_dymshape_mode": ("auto_set_dymshape_mode", lambda v: not v, "dynamic shapes"),
    "--auto_set_dymdims_mode": ("auto_set_dymdims_mode", lambda v: not v, "dynamic dims"),
    "--output_batchsize_axis": ("output_batchsize_axis", lambda v: v == 0, "splitting outputs on another axis"),
}
#: ais_bench flags refused whatever their value: (dest, why)
REFUSED = {
    "--acl_json_path": ("acl_json_path", "an acl.json for profiling or dump"),
    "--aipp_config": ("aipp_config", "dynamic AIPP preprocessing on the NPU"),
    "--dymHW": ("dymHW", "dynamic image size"), "--dymDims": ("dymDims", "dynamic dims"),
    "--dymShape": ("dymShape", "dynamic shapes"), "--dymShape_range": ("dymShape_range", "dynamic shape ranges"),
    "--outputSize": ("outputSize", "dynamic-shape output sizes"),
}
#: ais_bench's run modes (`benchmark_process.main`'s run_mode_switch): each hands the same files to
#: the device in its own way, and the results are the same; this runner has one way
RUN_MODES = ("array", "files", "full", "tensor")
#: the runner's option names as each form spells them, for error messages
SPELLINGS = {
    AIS: {"--batch-size": "--batchsize", "--device-id": "--device", "--warmup": "--warmup_count",
          "--pure-data": "--pure_data_type"},
    # The benchmark's spellings are collected as its -key=value options are translated (only the
    # ones the user gave), see run_om_infer.translate_benchmark_args.
    BENCHMARK: {},
}
OUTFMTS = ("BIN", "TXT", "NPY")
PURE_TYPES = {"zero": "zeros", "random": "random"}
#: ais_bench's time-stamped folder name (`benchmark_process.main`)
TIME_STAMP = "%Y_%m_%d-%H_%M_%S"

_BENCH_ARG = re.compile(r"^-[A-Za-z_]+=")
_FLAG = re.compile(r"^(--?[A-Za-z][A-Za-z0-9_-]*)")


def _flags(argv: Sequence[str]) -> List[str]:
    out = []
    for arg in argv:
        m = _FLAG.match(arg)
        if m and not _BENCH_ARG.match(arg):
            out.append(m.group(1))
    return out


def _value(argv: Sequence[str], *names: str) -> Optional[str]:
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def detect(argv: Sequence[str]) -> Tuple[str, Optional[str]]:
    """Which form `argv` is in, and a line saying why when the line could be read both ways
    (None otherwise). Flags of two forms together are one error line naming them."""
    flags = _flags(argv)
    bench = [a.split("=", 1)[0] for a in argv if _BENCH_ARG.match(a)]
    ais = [f for f in flags if f in AIS_ONLY]
    own = [f for f in flags if f in OWN_ONLY]
    fmt = _value(argv, "--outfmt")
    if fmt is not None and fmt != fmt.lower():  # the own form's formats are lower case
        ais.append(f"--outfmt {fmt}")
    found = [(name, given) for name, given in ((BENCHMARK, bench), (AIS, ais), (OWN, own)) if given]
    if len(found) > 1:
        parts = " and ".join(f"{given[0]} ({name} form)" for name, given in found)
        raise UserError(f"{parts} mixed: use one command-line form (see run_om_infer.py --help)")
    if found:
        return found[0][0], None
    source = _value(argv, "--input", "-i")
    if source is None:
        return AIS, None  # the own form needs --input or --pure-data: only ais_bench's reads this line
    why = _own_only_input(source)
    if why:
        return OWN, (f"note: --input {source} is {why}, which ais_bench cannot read: this runner's own form "
                     "(results in {output}/dumpOutput_device0/<name>_1.txt)")
    if fmt is not None:  # lower case: the own form's spelling (ais_bench's choices are upper case)
        return OWN, (f"note: --outfmt {fmt} is spelled as this runner's own form (ais_bench takes BIN, TXT or NPY): "
                     "its layout, results in {output}/dumpOutput_device0/")
    kept = (" and layout ({output}/<time stamp or --output_dirname>/<name>_0.bin)" if _value(argv, "--output", "-o")
            else ", which without --output runs every input and keeps nothing")
    return AIS, ("note: no flag of this runner's own form (--batch-size, --device-id, --warmup, ...): ais_bench's "
                 f"command line{kept}; add --device-id 0 for the own layout "
                 "({output}/dumpOutput_device0/<name>_1.txt)")


def _own_only_input(source: str) -> Optional[str]:
    """What an --input is when only the own form reads it, else None."""
    from .decoding import is_image_input

    if source.endswith(".info") or (os.path.isfile(source) and not source.endswith(AIS_INPUT_SUFFIXES)):
        return "a get_info.py info file"  # ais_bench would read it as one sample's raw bytes
    if os.path.isdir(source):
        try:
            names = [n for n in os.listdir(source) if not n.startswith(".")]
        except OSError:
            return None
        if names and not any(n.endswith(AIS_INPUT_SUFFIXES) for n in names):
            try:
                return "a folder of images" if is_image_input(source) else None
            except UserError:
                return None  # a mix: the run reports it
    return None


def respell(message: str, form: str, spelled: Optional[Dict[str, str]] = None) -> str:
    """`message` with the runner's option names as the user wrote them (`--batch-size 2` becomes
    `-batch_size=2` in the benchmark form, `--batchsize 2` in ais_bench's)."""
    names = dict(SPELLINGS.get(form, {}))
    if spelled:
        names.update(spelled)
    if not names:
        return message
    pattern = re.compile("(" + "|".join(re.escape(k) for k in sorted(names, key=len, reverse=True))
                         + r")(?![\w-])(?: (-?\d[\w.,]*))?")  # a value is a number: "--device-id must" is not one

    def one(m: re.Match) -> str:
        new = names[m.group(1)]
        value = m.group(2)
        if value is None:
            return new
        return f"{new}={value}" if form == BENCHMARK else f"{new} {value}"

    return pattern.sub(one, message)


# Ais_bench's parser.

def _str2bool(value: str) -> bool:
    """ais_bench's `args_check.str2bool`."""
    v = str(value).lower()
    if v in ("yes", "true", "t", "y", "1"):
        return True
    if v in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError("Boolean value expected true, 1, false, 0 with case insensitive.")


def add_flags(p, shared: bool = True) -> None:
    """ais_bench's flags (`__main__.get_args`) as this runner takes them; `shared` False leaves
    out --model/--input/--output/--outfmt/--loop (another form's group already has them)."""
    flag = _str2bool
    if shared:
        p.add_argument("--model", "-m", required=True)
        p.add_argument("--input", "-i", help="folder of .bin/.BIN files, or a comma list of files")
        p.add_argument("--output", "-o", help="output folder; without it nothing is kept")
        p.add_argument("--outfmt", type=str.upper, choices=OUTFMTS, default="BIN")
        p.add_argument("--loop", "-l", type=int, default=1)
    p.add_argument("--output_dirname", help="result folder inside --output (default: a time stamp)")
    p.add_argument("--batchsize", type=int, help="the throughput figure's batch size")
    p.add_argument("--device", "-d", default="0", help="device id, or a list (0,1): a folder per device")
    p.add_argument("--divide_input", type=flag, default=False, help="share the inputs between the devices")
    p.add_argument("--dymBatch", type=int, default=0, help="batch of a dynamic-batch model")
    p.add_argument("--warmup_count", "--warmup-count", dest="warmup_count", type=int, default=1)
    p.add_argument("--pure_data_type", choices=tuple(PURE_TYPES), default="zero")
    p.add_argument("--display_all_summary", type=flag, nargs="?", const=True, default=False)
    p.add_argument("--debug", type=flag, nargs="?", const=True, default=False)
    p.add_argument("--run_mode", default="array", help=argparse.SUPPRESS)
    p.add_argument("--pipeline", type=flag, default=False, help=argparse.SUPPRESS)
    p.add_argument("--profiler_rename", type=flag, default=True, help=argparse.SUPPRESS)
    p.add_argument("--npu_id", type=int, default=0, help=argparse.SUPPRESS)
    for name, (dest, _, _) in HARMLESS.items():
        p.add_argument(name, dest=dest, type=int if dest == "output_batchsize_axis" else flag,
                       default=0 if dest == "output_batchsize_axis" else False, help=argparse.SUPPRESS)
    for name, (dest, _) in REFUSED.items():
        names = [name, "--dym-shape"] if name == "--dymShape" else [name]
        p.add_argument(*names, dest=dest, help=argparse.SUPPRESS)


def parser(extras) -> argparse.ArgumentParser:
    """ais_bench's command line; `extras(p)` adds the options every form shares."""
    p = argparse.ArgumentParser(prog="run_om_infer.py", description="ais_bench's command line.")
    add_flags(p)
    extras(p)
    return p


def check_flags(args) -> None:
    """Refuse, by name and with the reason, every ais_bench flag whose value would change what
    this runner does not implement (docs/ais_bench.md's table)."""
    for name, (dest, harmless, what) in HARMLESS.items():
        value = getattr(args, dest)
        if not harmless(value):
            raise UserError(f"{name} {value}: an ais_bench option for {what}, which this runner does not implement; "
                            "use ais_bench itself (python3 -m ais_bench ...) for it")
    for name, (dest, what) in REFUSED.items():
        if getattr(args, dest) is not None:
            raise UserError(f"{name}: an ais_bench option for {what}, which this runner does not implement; "
                            "use ais_bench itself (python3 -m ais_bench ...) for it")
    if args.run_mode not in RUN_MODES:  # ais_bench: RuntimeError('wrong run_mode')
        raise UserError(f"--run_mode {args.run_mode}: expected one of {', '.join(RUN_MODES)}")


def device_ids(value: str) -> List[int]:
    """`--device`: one id, or a comma list (0-255, as ais_bench's `check_device_range_valid`)."""
    from .cli import parse_device_ids

    ids = parse_device_ids(value)
    if any(d > 255 for d in ids):
        raise UserError(f"--device {value}: expected device ids 0-255")
    return ids


def batch_size(args) -> Optional[int]:
    """--dymBatch, the batch a dynamic-batch model runs at (--batchsize is a hint only, see
    `onepass.RunSettings.batch_hint`); the ranges ais_bench's `args_check` checks."""
    if args.batchsize is not None and args.batchsize < 1:
        raise UserError(f"--batchsize {args.batchsize} is an invalid positive int value")
    if args.dymBatch < 0:
        raise UserError(f"--dymBatch {args.dymBatch} is an invalid nonnegative int value")
    if args.dymBatch and args.batchsize is not None and args.dymBatch != args.batchsize:
        raise UserError(f"--dymBatch {args.dymBatch} and --batchsize {args.batchsize} disagree")
    return args.dymBatch or args.batchsize


# Folders.

def folder_name(output: str, dirname: Optional[str]) -> str:
    """`{output}/{output_dirname}` checked: not absolute (ais_bench refuses it too,
    `benchmark_process.args_rules`), not out of --output (`..`), a trailing `/` dropped so that
    `dump/` gives `{output}/dump_summary.json` beside the folder, not inside it."""
    if dirname is None:
        raise ValueError("no --output_dirname")
    if os.path.isabs(dirname):
        raise UserError(f"--output_dirname {dirname}: an absolute path; give a folder name inside --output "
                        "(ais_bench refuses it too)")
    name = os.path.normpath(dirname)
    if name in (".", "") or name == ".." or name.startswith(".." + os.sep):
        raise UserError(f"--output_dirname {dirname}: not a folder inside --output {output}")
    return os.path.join(output, name)


def new_time_stamped_folder(output: str) -> str:
    """`{output}/YYYY_MM_DD-HH_MM_SS`, created here and now, never one another run has: ais_bench
    reuses the folder of a run started in the same second (both write into it); here the folder
    is made with `mkdir` (which fails if it exists), and a run that finds its second taken waits
    for the next one, so the name keeps ais_bench's pattern."""
    from .atomic import make_folder

    make_folder(output)
    for _ in range(30):
        path = os.path.join(output, time.strftime(TIME_STAMP))
        try:
            os.mkdir(path, 0o750)
            return path
        except FileExistsError:
            time.sleep(1.0 - time.time() % 1.0 + 0.01)
        except OSError as exc:
            reason = os.strerror(exc.errno or errno.EIO)
            raise UserError(f"{path}: cannot create the result folder ({reason})") from None
    raise UserError(f"{output}: every time-stamped folder name of the last 30 seconds is taken; "
                    "give --output_dirname")


def device_folder(folder: str, device_id: int, i: int) -> str:
    """Device `device_id`'s folder, the i-th of `--device`'s list (`benchmark_process.main`)."""
    return os.path.join(folder, f"device{device_id}_{i}")




def input_list(value: str) -> List[str]:
    """ais_bench's --input (`io_oprations.create_infileslist_from_inputs_list`): one folder, a
    comma list of files, or a comma list of folders, one per model input; the models this runner
    takes have one input, so two or more folders are refused."""
    parts = [p for p in value.split(",") if p]
    if not parts:
        raise UserError(f"--input {value!r}: no folder or file given")
    if len(parts) > 1 and os.path.isdir(parts[0]):
        raise UserError(f"--input {value}: {len(parts)} folders; ais_bench takes one folder per model input, and the "
                        "models this runner takes have one input: give one folder, or a comma list of files")
    return parts


# What ais_bench prints (its summary file: formats/aissummary.py).

def summary_text(s: dict, display_all: bool, figure_batch: Optional[int]) -> str:
    """`summary.Summary.display`'s lines (`[INFO] ` as its logger prints them), after one line
    naming the runtime. NPU_compute_time is the backend's compute time whatever the runtime, so
    scrapers written for ais_bench read it; H2D/D2H are 0 where the runtime does not separate them."""
    p = s["phases"]
    rows = [("H2D_latency", p.get("h2d"))] if display_all else []
    rows.append(("NPU_compute_time", ais_compute(s)))
    if display_all:
        rows.append(("D2H_latency", p.get("d2h")))
    lines = [f"[INFO] backend: {s['backend']} ({s.get('device') or 'cpu'}), batch size {s['batch_size']}",
             "[INFO] -----------------Performance Summary------------------"]
    for label, phase in rows:
        st = ais_stats(phase)
        lines.append(f"[INFO] {label} (ms): min = {st['min']}, max = {st['max']}, mean = {st['mean']}, "
                     f"median = {st['median']}, percentile(99%) = {st['percentile(99%)']}")
    mean = ais_stats(ais_compute(s))["mean"]
    lines.append(f"[INFO] throughput 1000*batchsize.mean({figure_batch or s['batch_size']})/NPU_compute_time.mean"
                 f"({mean}): {ais_throughput(s, figure_batch)}")
    lines.append("[INFO] ------------------------------------------------------")
    return "\n".join(lines)


def devices_text(ids: Sequence[int], summaries: Sequence[dict], figure_batch: Optional[int]) -> str:
    """`benchmark_process.multidevice_run`'s closing lines: each device's throughput, then their sum."""
    lines = []
    for i, (dev, s) in enumerate(zip(ids, summaries)):
        start, end = s.get("first_read", s.get("started")), s.get("last_write", s.get("ended"))
        lines.append(f"[INFO] i:{i} device_{dev} throughput:{ais_throughput(s, figure_batch)}                 "
                     f"start_time:{start} end_time:{end}")
    lines.append(f"[INFO] summary throughput:{sum(ais_throughput(s, figure_batch) for s in summaries)}")
    return "\n".join(lines)


def program(argv_given: bool) -> str:
    """argv[0] for the summary's `args` (ais_bench records `sys.argv` whole)."""
    return sys.argv[0] if not argv_given and sys.argv and sys.argv[0] else "run_om_infer.py"

"""The command-line forms run_om_infer.py takes, told apart by their flags (a form, not a runtime).

- the old `benchmark` tool's `-key=value` form (run_om_infer.py translates it);
- this runner's own `--batch-size/--device-id/--warmup/--pure-data` form;
- ais_bench's form (`--batchsize`, `--device`, `--warmup_count`, `--output_dirname`, `--outfmt
  BIN|TXT|NPY`, `--pure_data_type`, `--dymBatch`, `--display_all_summary`, `--debug`), which the
  newer ModelZoo guides use. Its outputs follow ais_bench: `{name}_0.{ext}` in
  `{output}/{output_dirname}` or a time-stamped `{output}/YYYY_MM_DD-HH_MM_SS`, the summary in
  `{folder}_summary.json` beside that folder, printed with ais_bench's labels
  (`NPU_compute_time`, `H2D_latency`, `D2H_latency`, `throughput`) so log scrapers written for
  ais_bench work; `--loop` without `--input` is pure inference.

`--model/-m`, `--input/-i`, `--output/-o`, `--outfmt`, `--loop` and the runner's extras
(`--backend`, `--providers`, `--threads`, `--overwrite`, `--resume`, `--no-progress`) belong to every form;
a flag that only one form has decides it, and flags of two forms together are an error. Error
messages name options the way the user spelled them (`respell`).
"""

from __future__ import annotations

import argparse
import os
import re
import time
from typing import Dict, List, Optional, Sequence

from .errors import UserError
from .progress import log

AIS = "ais_bench"
BENCHMARK = "benchmark"
OWN = "own"

#: flags only ais_bench's form has
AIS_ONLY = ("--batchsize", "--output_dirname", "--device", "-d", "--warmup_count", "--pure_data_type", "--dymBatch",
            "--display_all_summary", "--debug", "-l", "--divide_input")
#: flags only this runner's own form has
OWN_ONLY = ("--batch-size", "--device-id", "--warmup", "--pure-data")
#: ais_bench flags this runner does not implement, and what they are for
UNSUPPORTED = {
    "--profiler": "profiling with msprof", "--dump": "dumping operator data", "--acl_json_path": "an acl.json for "
    "profiling or dump", "--aipp_config": "AIPP preprocessing on the NPU", "--energy_consumption": "energy "
    "measurement", "--npu_id": "energy measurement", "--dymHW": "dynamic image size", "--dymDims": "dynamic dims",
    "--dymShape": "dynamic shapes", "--dymShape_range": "dynamic shape ranges", "--outputSize": "dynamic-shape "
    "output sizes", "--auto_set_dymshape_mode": "dynamic shapes", "--auto_set_dymdims_mode": "dynamic dims",
    "--output_batchsize_axis": "splitting outputs on another axis", "--run_mode": "its own run modes",
    "--perf": "trtexec runs", "--pipeline": "its pipelined mode", "--profiler_rename": "profiling",
    "--dump_npy": "dumping operator data",
    "--thread": "its multi-threaded mode", "--fast_infer": "its fast inference mode",
}
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

_BENCH_ARG = re.compile(r"^-[A-Za-z_]+=")
_FLAG = re.compile(r"^(--?[A-Za-z][A-Za-z0-9_-]*)")


def _flags(argv: Sequence[str]) -> List[str]:
    out = []
    for arg in argv:
        m = _FLAG.match(arg)
        if m and not _BENCH_ARG.match(arg):
            out.append(m.group(1))
    return out


def detect(argv: Sequence[str]) -> str:
    """Which form `argv` is in; one line naming the flags when forms are mixed, or when an ais_bench
    flag this runner does not implement is used."""
    flags = _flags(argv)
    for f in flags:
        if f in UNSUPPORTED:
            raise UserError(f"{f}: an ais_bench option for {UNSUPPORTED[f]}, which this runner does not "
                            "implement; use ais_bench itself (python3 -m ais_bench ...) for it")
    bench = [a.split("=", 1)[0] for a in argv if _BENCH_ARG.match(a)]
    ais = [f for f in flags if f in AIS_ONLY]
    own = [f for f in flags if f in OWN_ONLY]
    upper_fmt = _uppercase_outfmt(argv)
    if upper_fmt:  # the own form's formats are lower case: BIN/TXT/NPY is ais_bench's spelling
        ais.append(f"--outfmt {upper_fmt}")
    found = [(name, given) for name, given in ((BENCHMARK, bench), (AIS, ais), (OWN, own)) if given]
    if len(found) > 1:
        parts = " and ".join(f"{given[0]} ({name} form)" for name, given in found)
        raise UserError(f"{parts} mixed: use one command-line form (see run_om_infer.py --help)")
    if found:
        return found[0][0]
    # `--loop` with neither --input nor --pure-data is ais_bench's pure inference.
    if "--loop" in flags and "--input" not in flags and "-i" not in flags:
        return AIS
    return OWN


def _uppercase_outfmt(argv: Sequence[str]) -> Optional[str]:
    for i, arg in enumerate(argv):
        value = None
        if arg == "--outfmt" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--outfmt="):
            value = arg.split("=", 1)[1]
        if value is not None and value != value.lower():
            return value
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
    v = str(value).lower()
    if v in ("yes", "true", "t", "y", "1"):
        return True
    if v in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def parser(extras) -> argparse.ArgumentParser:
    """ais_bench's flags as this runner takes them; `extras(p)` adds the options every form shares."""
    p = argparse.ArgumentParser(
        prog="run_om_infer.py", description="ais_bench's command line (the form the newer ModelZoo guides use).")
    p.add_argument("--model", "-m", required=True)
    p.add_argument("--input", "-i", help="folder of .bin files, or a comma list of folders or of .bin files")
    p.add_argument("--output", "-o", help="output folder; without it the results are not kept")
    p.add_argument("--output_dirname", help="result folder name inside --output (default: a time stamp)")
    p.add_argument("--outfmt", type=str.upper, choices=OUTFMTS, default="BIN")
    p.add_argument("--loop", "-l", type=int, default=1)
    p.add_argument("--debug", type=_str2bool, nargs="?", const=True, default=False)
    p.add_argument("--device", "-d", default="0")
    p.add_argument("--divide_input", type=_str2bool, nargs="?", const=True, default=None)
    p.add_argument("--dymBatch", type=int, default=0)
    p.add_argument("--batchsize", type=int)
    p.add_argument("--pure_data_type", choices=tuple(PURE_TYPES), default="zero")
    p.add_argument("--display_all_summary", type=_str2bool, nargs="?", const=True, default=False)
    p.add_argument("--warmup_count", type=int, default=1)
    extras(p)
    return p


def device_ids(value: str, divide: Optional[bool]) -> List[int]:
    """`--device`: one id, or a comma list. With several, one worker process per device takes a
    contiguous share of the inputs and every result goes to the one result folder, as this
    runner's `--device-id 0,1` does: ais_bench's `--divide_input` (without it, ais_bench runs
    every input on every device, which a metric over one folder cannot use)."""
    from .cli import parse_device_ids

    ids = parse_device_ids(value)
    if any(d > 255 for d in ids):
        raise UserError(f"--device {value}: expected device ids 0-255")
    if len(ids) > 1 and divide is False:
        raise UserError(f"--device {value} --divide_input false: every input on every device is not supported "
                        "(results would overwrite each other); leave --divide_input on to share the inputs "
                        "between the devices, or run one command per device with its own --output_dirname")
    if len(ids) > 1 and divide is None:
        log.info(f"note: --device {value}: the inputs are divided between the {len(ids)} devices (as ais_bench's "
                 "--divide_input), every result in one folder")
    return ids


def batch_size(args) -> Optional[int]:
    if args.dymBatch and args.batchsize is not None and args.dymBatch != args.batchsize:
        raise UserError(f"--dymBatch {args.dymBatch} and --batchsize {args.batchsize} disagree")
    if args.dymBatch < 0:
        raise UserError(f"--dymBatch must be >= 1, got {args.dymBatch}")
    return args.dymBatch or args.batchsize


def folders(args) -> Optional[str]:
    """The result folder `{output}/{output_dirname or time stamp}`, or None without --output."""
    if args.output is None:
        if args.output_dirname is not None:
            raise UserError("--output_dirname needs --output (the folder it is created in)")
        return None
    name = args.output_dirname or time.strftime("%Y_%m_%d-%H_%M_%S")
    if not name or os.path.basename(os.path.normpath(name)) in ("", ".", ".."):
        raise UserError(f"--output_dirname {name!r}: expected a folder name")
    return os.path.join(args.output, name)


def input_list(value: str) -> List[str]:
    """ais_bench's --input: one folder, or a comma list of folders or of files."""
    parts = [p for p in value.split(",") if p]
    if not parts:
        raise UserError(f"--input {value!r}: no folder or file given")
    return parts


# What ais_bench prints and writes.

def _stats(phase: Optional[dict]) -> Dict[str, float]:
    lat = (phase or {}).get("latency_ms") or {}
    return {"min": lat.get("min", 0.0), "max": lat.get("max", 0.0), "mean": lat.get("mean", 0.0),
            "median": lat.get("median", 0.0), "percentile(99%)": lat.get("p99", 0.0),
            "count": int(lat.get("count", 0))}


def _throughput(s: dict) -> float:
    compute = s["phases"].get("compute", s["phases"]["run"])["latency_ms"].get("mean", 0.0)
    return 1000.0 * s["batch_size"] / compute if compute else 0.0


def _figures(s: dict) -> dict:
    """ais_bench's figures of one device's summary (times in ms per batch)."""
    p = s["phases"]
    return {"NPU_compute_time": _stats(p.get("compute", p.get("run"))), "H2D_latency": _stats(p.get("h2d")),
            "D2H_latency": _stats(p.get("d2h")), "throughput": _throughput(s)}


def summary_doc(s: dict, argv: Sequence[str]) -> dict:
    """`{folder}_summary.json` with ais_bench's keys (times in ms per batch), and this runner's
    full summary under "mocoinfer". A partial run's summary has no timings: it is kept as it is.
    Several devices: each one's figures under "devices", and their throughputs summed."""
    own = {"pid": os.getpid(), "args": list(argv), "mocoinfer": s}
    if "devices" in s:
        per = {str(d["device_id"]): _figures(d) for d in s["devices"]}
        return dict({"throughput": sum(d["throughput"] for d in per.values()), "devices": per}, **own)
    if "phases" not in s:
        return dict(s)
    return dict(_figures(s), **own)


def write_summary(s: dict, path: str, argv: Sequence[str]) -> None:
    """`s`, the run's one summary, as ais_bench's summary file at `path` (recorded in it)."""
    from .atomic import write_json

    s["summary_file"] = path
    write_json(path, summary_doc(s, argv))


def summary_text(s: dict, display_all: bool) -> str:
    """The performance summary with ais_bench's labels. NPU_compute_time is the backend's compute
    time whatever the runtime (the line before names it), so scrapers written for ais_bench read
    it; H2D/D2H are 0 where the runtime does not separate the copies. Several devices: one block each."""
    if "devices" in s:
        return "\n".join(f"[INFO] device {d['device_id']}:\n{summary_text(d, display_all)}" for d in s["devices"])
    p = s["phases"]
    rows = [("H2D_latency", p.get("h2d"))] if display_all else []
    rows.append(("NPU_compute_time", p.get("compute", p.get("run"))))
    if display_all:
        rows.append(("D2H_latency", p.get("d2h")))
    lines = [f"[INFO] backend: {s['backend']} ({s.get('device') or 'cpu'}), batch size {s['batch_size']}",
             "[INFO] -----------------Performance Summary------------------"]
    for label, phase in rows:
        st = _stats(phase)
        lines.append(f"[INFO] {label} (ms): min = {st['min']:.6g}, max = {st['max']:.6g}, mean = {st['mean']:.6g}, "
                     f"median = {st['median']:.6g}, percentile(99%) = {st['percentile(99%)']:.6g}")
    mean = _stats(p.get("compute", p.get("run")))["mean"]
    lines.append(f"[INFO] throughput 1000*batchsize.mean({s['batch_size']})/NPU_compute_time.mean({mean:.6g}): "
                 f"{_throughput(s):.6g}")
    lines.append("[INFO] ------------------------------------------------------")
    return "\n".join(lines)

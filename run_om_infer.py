#!/usr/bin/env python3
"""Stage 5: inference over preprocessed .bin files, or streamed images, with pyACL, ONNX Runtime or PyTorch.

Guide form (Ascend's benchmark command line, program name swapped), accepted unchanged:
    python3 run_om_infer.py -model_type=vision -batch_size=1 -device_id=0 \
        -input_text_path=./dataset_prep_bin.info -input_width=224 -input_height=224 \
        -om_path=./moco-v2-atc-bs1.om -useDvpp=False -output_binary=False
Own form (a flag only it has: --batch-size, --device-id, --warmup, --pure-data, ...; or an info
file or a folder of images as --input, which ais_bench cannot read):
    python3 run_om_infer.py --model moco-v2-bs1.onnx --input ./dataset_prep_bin.info --output result
Streamed (no .bin files; a pool of worker processes decodes the images as the model runs):
    python3 run_om_infer.py --model moco-v2-bs1.onnx --input /opt/npu/imagenet/val --output result
Writes result/dumpOutput_device{id}/<name>_1.txt per image, the benchmark's perf file and summary.json.
ais_bench's form (the newer guides): any other line with --model (mixing forms is an error):
    python3 run_om_infer.py --model moco-v2-bs1.om --input ./prep_dataset --output ./ \
        --output_dirname ./result/ --outfmt TXT --batchsize 1
    python3 run_om_infer.py --model moco-v2-bs16.om --loop 100 --batchsize 16
writes what ais_bench writes (`mocoinfer/aisform.py`, docs/ais_bench.md). The benchmark's pure inference
(`-round=N -om_path=... -device_id=0 -batch_size=1`) writes result/PureInfer_perf_of_{om}_in_device_{id}.txt.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Dict, List, Optional, Sequence

from mocoinfer.deps import require

# Before any import that needs them: a Python without them gets one line, not a traceback.
# The runtime a model needs (onnxruntime, torch) is checked once the backend is chosen.
require("numpy", "PIL", "tqdm")

from mocoinfer.cli import run_main  # noqa: E402
from mocoinfer.errors import UserError  # noqa: E402

CHECKS = """\
before any batch runs, every input file's size is checked against the model's per-sample input
(ONNX / PyTorch: read from the file before the runtime starts; .om: from the model description
right after the load, before any copy or execute), and --batch-size against a fixed-batch model.
A float32 3x224x224 model also takes the uint8 files of imagenet_torch_preprocess.py --dtype uint8
(normalised on the host exactly as preprocessing does: the same inputs as the float32 files); a
uint8-input model (pthtar2onnx.py --uint8-input, an AIPP .om) takes them as they are. One run
takes one kind of file. A fixed-batch model's short last batch is padded with copies of its first
image (a dynamic-batch .om: to its smallest listed size that fits); padding writes no result
file, and the run checks that N inputs gave N result files.

outputs: result/perf_vision_batchsize_{bs}_device_{id}.txt (the benchmark's five lines) and
result/summary.json beside the result folder, not in it; --pure-data prints ais_bench's summary.

streaming: an --input folder without .bin files (or a `get_info.py jpg` info file) is decoded by
worker processes with preprocessing's transform (--interpolation, --resize, --crop) and run as it
arrives; the results are those the .bin files would give. Bad images are listed on stderr and in
result/failed.txt and the exit status is 1 (0 with --skip-bad); every good image is still run.
With --resume a rerun skips the images whose results the manifest proves (same image bytes, same
settings); docs/reruns.md says what each kind of rerun does.
"""


_BENCH_ARG = re.compile(r"^-(?P<key>[A-Za-z_]+)=(?P<value>.*)$")
BENCHMARK_KEYS = ("model_type", "batch_size", "device_id", "input_text_path", "input_width", "input_height",
                  "om_path", "useDvpp", "output_binary", "round")


def _bool(key: str, value: str) -> bool:
    if value in ("True", "true"):
        return True
    if value in ("False", "false"):
        return False
    raise UserError(f"-{key}={value}: expected True, False, true or false")


def translate_benchmark_args(argv: Sequence[str], spelled: Optional[Dict[str, str]] = None) -> List[str]:
    """Rewrite the `benchmark` tool's `-key=value` arguments into this runner's options; the
    options every form shares (--no-progress, --overwrite, ...) pass through unchanged.
    `spelled` collects {runner option: the user's -key} for error messages."""
    out: List[str] = []
    spelled = {} if spelled is None else spelled
    for arg in argv:
        m = _BENCH_ARG.match(arg)
        if not m:
            out.append(arg)
            continue
        key, value = m.group("key"), m.group("value")
        if key == "model_type":
            if value != "vision":
                raise UserError(f"-model_type={value}: only vision models are supported")
        elif key == "useDvpp":
            if _bool(key, value):
                raise UserError("-useDvpp=True is not supported: DVPP decodes JPEGs on the NPU, and this runner "
                                "takes preprocessed .bin files; use -useDvpp=False with the info file of "
                                "imagenet_torch_preprocess.py's output")
        elif key == "output_binary":
            out += ["--outfmt", "bin" if _bool(key, value) else "txt"]
        elif key in ("batch_size", "device_id", "input_width", "input_height"):
            out += [f"--{key.replace('_', '-')}", value]
            spelled[f"--{key.replace('_', '-')}"] = f"-{key}"
        elif key == "input_text_path":
            out += ["--input", value]
            spelled["--input"] = "-input_text_path"
        elif key == "om_path":
            out += ["--model", value]
            spelled["--model"] = "-om_path"
        elif key == "round":
            # The benchmark's pure inference: N timed batches of generated data, no input.
            out += ["--pure-data", "zeros", "--loop", value]
            spelled["--loop"] = "-round"
        else:
            raise UserError(f"-{key}={value}: unknown benchmark option (known: "
                            f"{', '.join('-' + k for k in BENCHMARK_KEYS)})")
    return out


def add_shared_args(p) -> None:
    """The options every command-line form takes (own, benchmark, ais_bench)."""
    from mocoinfer.backends import CHOICES

    p.add_argument("--backend", choices=CHOICES, default="auto",
                   help="auto: .om → acl, .onnx → onnxruntime, checkpoint → torch; aisbench: an .om through "
                        "ais_bench's InferSession, to cross-check acl (docs/cross-check.md) (default: auto)")
    p.add_argument("--providers", help="ONNX Runtime providers, comma-separated (default: TensorRT/CUDA when "
                                       "available, then CPU)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="torch: bf16 on CPUs with bfloat16 units or CUDA, fp16 on CUDA; onnxruntime: fp16 with "
                        "TensorRT (default: %(default)s; an int8 .onnx runs as int8)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for onnxruntime/torch (default: one per usable CPU)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over: delete the results the result folder's manifest lists (only those) and run "
                        "every input (an interrupted run otherwise resumes by itself)")
    p.add_argument("--resume", action="store_true",
                   help="reuse the results an earlier run with the same model and settings proved, running only "
                        "the others (without it, a rerun of a finished run runs again and replaces its results)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_args(argv, spelled: Optional[Dict[str, str]] = None):
    from mocoinfer.formats import RESULT_FORMATS
    from mocoinfer.perf import figures_help
    from mocoinfer.pure import PURE_DATA
    from mocoinfer.transforms import DEFAULT_CROP, DEFAULT_INTERPOLATION, DEFAULT_RESIZE, INTERPOLATIONS

    p = argparse.ArgumentParser(
        description="Run preprocessed .bin files through an Ascend .om (pyACL), an .onnx (ONNX Runtime) or "
                    "a checkpoint (PyTorch), writing the Ascend benchmark's outputs. The benchmark's "
                    "-key=value command line is accepted too.",
        epilog=CHECKS + "\n" + figures_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", "-m", required=True, help=".om, .onnx or checkpoint (.pth/.pth.tar/.pt)")
    p.add_argument("--input", "-i", help="info file (get_info.py) or folder of .bin files (natural order)")
    p.add_argument("--output", "-o", default="result",
                   help="output folder (default: %(default)s): results go to dumpOutput_device{id}/ inside it "
                        "(with several devices, all of them to dumpOutput_device{first id}/)")
    p.add_argument("--batch-size", type=int, help="batch size (default: a fixed-batch model's own, else 1)")
    p.add_argument("--device-id", default="0",
                   help="NPU / GPU index, or several (0,1,2,3): one worker process per device, each taking a "
                        "contiguous share of the inputs (on a CPU, of the cores), a perf file per device and "
                        "one summary.json with each device and the total (default: %(default)s)")
    p.add_argument("--outfmt", choices=RESULT_FORMATS, default="txt", help="result file format (default: txt)")
    p.add_argument("--warmup", type=int, default=1, help="untimed batches before timing (default: %(default)s)")
    p.add_argument("--loop", type=int, default=None,
                   help="timed runs of each batch (default: 1; with --pure-data: batches, default 10)")
    p.add_argument("--pure-data", choices=PURE_DATA, help="pure inference on generated data, no input needed")
    add_shared_args(p)
    images = p.add_argument_group("streamed images (--input holds images, not .bin files)")
    images.add_argument("--workers", "-j", type=int,
                        help="decoding worker processes (default: all cores this process may use)")
    images.add_argument("--interpolation", choices=sorted(INTERPOLATIONS), default=DEFAULT_INTERPOLATION,
                        help="resize filter, as imagenet_torch_preprocess.py (default: %(default)s)")
    images.add_argument("--resize", type=int, default=DEFAULT_RESIZE,
                        help="short edge after resizing (default: %(default)s)")
    images.add_argument("--crop", type=int, default=DEFAULT_CROP,
                        help="side of the center crop, the model's input size (default: %(default)s)")
    images.add_argument("--skip-bad", "--skip_bad", dest="skip_bad", action="store_true",
                        help="bad images are a warning and the exit status is 0")
    # Set by the benchmark's -input_width / -input_height: checked against the model's input.
    p.add_argument("--input-width", type=int, help=argparse.SUPPRESS)
    p.add_argument("--input-height", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(translate_benchmark_args(sys.argv[1:] if argv is None else argv, spelled))
    if args.pure_data is None and args.input is None:
        p.error("--input (or -input_text_path=) is required unless --pure-data is given")
    if (args.input_width is None) != (args.input_height is None):
        p.error("-input_width and -input_height go together")
    args.providers = [s for s in args.providers.split(",") if s] if args.providers else None
    return args


HELP = """\
usage: run_om_infer.py ARGS   (three command-line forms, told apart by their flags; flags of two forms
together are an error; a line with --model and no flag of the own form is ais_bench's, unless its
--input is an info file or a folder of images, which only the own form reads)

own form:  --model M --input DIR|INFO|IMAGES [--output result] [--batch-size N] [--device-id 0[,1..]]
           [--outfmt txt|bin|npy] [--warmup 1] [--loop 1] [--pure-data zeros|random]
           images: [--workers N] [--interpolation bicubic|bilinear] [--resize 256] [--crop 224] [--skip-bad]
  → OUTPUT/dumpOutput_device{id}/<name>_1.txt, OUTPUT/perf_vision_batchsize_{bs}_device_{id}.txt and
    OUTPUT/summary.json (several devices: one folder, the inputs divided; --pure-data: pure_summary.json)
benchmark form:  -model_type=vision -batch_size=N -device_id=N -input_text_path=INFO -input_width=224
           -input_height=224 -om_path=M -useDvpp=False -output_binary=False  |  -round=N (pure inference)
  → the own form's layout
ais_bench form (python3 -m ais_bench's flags, docs/ais_bench.md):  --model M [--input DIR|FILE,FILE..]
           [--output O] [--output_dirname D] [--outfmt BIN|TXT|NPY] [--batchsize N] [--device 0[,1..]]
           [--divide_input 1] [--loop 1] [--warmup_count 1] [--dymBatch N] [--pure_data_type zero|random]
           [--display_all_summary 1] [--debug 1]; harmless: --profiler 0, --run_mode array, ...
  → O/D (or O/YYYY_MM_DD-HH_MM_SS)/<name>_0.bin and O/D_summary.json; several devices: O/D/device{id}_{i}/
    and O/D/device{id}_{i}_summary.json each; no --input: pure inference; no --output: nothing kept
every form:  --backend auto|acl|aisbench|onnxruntime|torch  --providers P  --precision fp32|bf16|fp16
           --threads N  --resume (reuse proven results)  --overwrite (start over)  --no-progress
figures: summary.json's e2e, run, compute and latency_ms are the perf file's [e2e] throughputRate, [infer]
throughputRate, [infer] Interface throughputRate and moduleLatency; padding of a short last batch counts
in none. Every option of the own form, each explained: run_om_infer.py --help-all
"""


def main(argv=None) -> int:
    from mocoinfer.cli import signals_as_interrupt

    with signals_as_interrupt():  # SIGTERM: results kept, a partial summary, exit 143
        return _main(argv)


def _main(argv) -> int:
    from mocoinfer import aisform

    argv_given = argv is not None
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help-all" in argv:
        parse_args(["-h"])  # argparse's full help of the own form; it exits 0
    if "-h" in argv or "--help" in argv:
        print(HELP, end="")
        return 0
    form, why = aisform.detect(argv)
    if why:
        log_note(why.replace("{output}", _output_of(argv)))
    spelled: Dict[str, str] = {}
    try:
        if form == aisform.AIS:
            if any(a == "--dymBatch" or a.startswith("--dymBatch=") for a in argv):
                spelled["--batch-size"] = "--dymBatch"  # the only ais flag that sets the run's batch
            return _ais_main(argv, argv_given)
        return _own_main(argv, spelled)
    except UserError as exc:  # options named as the user wrote them (-batch_size=2, --batchsize 2)
        raise UserError(aisform.respell(str(exc), form, spelled)) from None


def log_note(line: str) -> None:
    from mocoinfer.progress import log

    log.info(line)


def _output_of(argv: Sequence[str]) -> str:
    for i, arg in enumerate(argv):
        if arg in ("--output", "-o") and i + 1 < len(argv):
            return argv[i + 1].rstrip("/") or "/"
        if arg.startswith("--output="):
            return arg.split("=", 1)[1].rstrip("/") or "/"
    return "result"


def _own_main(argv, spelled: Dict[str, str]) -> int:
    from mocoinfer import perf, runner, stream

    args = parse_args(argv, spelled)
    common = dict(batch_size=args.batch_size, device_id=args.device_id, backend=args.backend,
                  providers=args.providers, warmup=args.warmup, threads=args.threads, precision=args.precision)
    if args.pure_data:
        loop = 10 if args.loop is None else args.loop  # 0 is refused by the runner, not replaced
        summary = runner.run_pure_inference(args.model, pure_data=args.pure_data, loop=loop,
                                            output=args.output, progress=False if args.no_progress else None,
                                            **common)
        print(perf.pure_summary_text(summary))
        written = [summary[k] for k in ("summary_file", "perf_file") if summary.get(k)]
        if written:  # said, as a file run says it: where the figures were kept
            print(f"wrote {' and '.join(written)}")
        return 0
    hw = (args.input_width, args.input_height) if args.input_width is not None else None
    loop = 1 if args.loop is None else args.loop
    images = stream.StreamOptions(workers=args.workers, interpolation=args.interpolation, resize=args.resize,
                                  crop=args.crop)
    summary = runner.run_inference(args.model, args.input, args.output, outfmt=args.outfmt, loop=loop,
                                   progress=False if args.no_progress else None, expect_hw=hw,
                                   overwrite=args.overwrite, resume=args.resume, stream=images, **common)
    if "stream" in summary:
        return stream.report(summary, skip_bad=args.skip_bad)
    if "devices" in summary:
        from mocoinfer.devices import summary_line

        print(summary_line(summary))
    else:
        print(perf.summary_line(summary))
    return 0


def _ais_main(argv: List[str], argv_given: bool) -> int:
    """ais_bench's command line: its flags, its output layout, its summary files and lines."""
    from mocoinfer import aisrun

    return aisrun.main(argv, argv_given, add_shared_args)


if __name__ == "__main__":
    sys.exit(run_main(main))

#!/usr/bin/env python3
"""Benchmark: streaming images into inference (run_om_infer.py --input VAL_DIR) against the .bin path.

Makes ImageNet-like JPEGs (about 500x375, as bench_preprocess.py makes them) and, side by side in
one run, on the same images:

1. ONNX Runtime on this CPU, a stand-in ResNet-50 (random weights, the real architecture), whole
   commands timed by wall clock:
   - prep: `imagenet_torch_preprocess.py VAL PREP`;
   - bin: `run_om_infer.py --input PREP` (inference from ready .bin files);
   - stream: `run_om_infer.py --input VAL` (no .bin files).
   Targets: stream <= 1.15x bin, and stream < prep + bin. The result files of stream and bin
   must be byte-identical. Peak memory: the largest resident set of the stream command or any
   of its workers (wait4), target < 1 GB. Rounds are interleaved and the fastest of each kept.
2. A zero-cost backend (bench_runner.ZeroCost: a precomputed output, no compute), in this
   process: streaming's images/s (images / wall time of the run_inference call, pool start
   included) against preprocessing's own images/s (its summary line) on the same JPEGs, same
   worker count. Target: >= 90%.

    python benchmarks/bench_stream.py [--images 64] [--zero-images 400] [--batch-size 8] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from bench_preprocess import make_images  # noqa: E402
from bench_runner import ZeroCost  # noqa: E402
from common import report  # noqa: E402

from mocoinfer.preprocess import preprocess_folder  # noqa: E402
from mocoinfer.progress import usable_cpus  # noqa: E402
from mocoinfer.runner import run_inference  # noqa: E402
from mocoinfer.stream import StreamOptions  # noqa: E402

# Runs a command and prints its wait4 peak RSS: measured from this small process, not from the
# benchmark (Linux carries a process's peak RSS across fork and exec into the child's figure).
_PEAK = ("import os, subprocess, sys\n"
         "p = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)\n"
         "_, status, usage = os.wait4(p.pid, 0)\n"
         "open(sys.argv[1], 'w').write(f'{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}')\n")


def timed(cmd: List[str], work: str) -> Tuple[float, float]:
    """Wall seconds of a whole command, and the peak RSS in MB of it or any of its workers."""
    report = os.path.join(work, "peak.txt")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", _PEAK, report, *cmd], check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    with open(report) as f:
        code, kb = (int(x) for x in f.read().split())
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {code})")
    return wall, kb / 1024.0


def files_of(folder: str) -> Dict[str, bytes]:
    out = {}
    for name in os.listdir(folder):
        if name.startswith("."):  # the manifest: it proves results by different inputs' hashes
            continue
        with open(os.path.join(folder, name), "rb") as f:
            out[name] = f.read()
    return out


def export_resnet50(path: str) -> None:
    """In a child process, so that torch never inflates this one."""
    code = ("import sys; from mocoinfer.demo import standin_model; from mocoinfer.export import export_model; "
            "export_model(standin_model(seed=0, arch='resnet50'), sys.argv[1], batch_size=1, dynamic=True, "
            "verify=False)")
    subprocess.run([sys.executable, "-c", code, path], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def zero_cost(val: str, work: str, workers: int, batch_size: int, repeat: int) -> bool:
    prep_rates: List[float] = []
    rates: List[float] = []
    for _ in range(repeat):  # interleaved rounds, the best of each kept
        prep = preprocess_folder(val, os.path.join(work, "zc_prep"), workers=workers, progress=False)
        prep_rates.append(prep.processed / prep.seconds)
        shutil.rmtree(os.path.join(work, "zc_prep"))
        t0 = time.perf_counter()
        s = run_inference("zero-cost", val, os.path.join(work, "zc_result"), backend=ZeroCost(),
                          batch_size=batch_size, progress=False, stream=StreamOptions(workers=workers))
        rates.append(s["images"] / (time.perf_counter() - t0))
        shutil.rmtree(os.path.join(work, "zc_result"))
    rate, prep_rate = max(rates), max(prep_rates)
    ok = rate >= 0.9 * prep_rate
    report("zero-cost streaming / preprocessing, images/s", f"{rate / prep_rate:.0%}", ">= 90%", ok)
    st = s["stream"]
    print(f"zero-cost backend, {s['images']} JPEGs, {workers} workers, best of {repeat} (streaming "
          f"{' '.join(f'{r:.0f}' for r in rates)}, preprocessing {' '.join(f'{r:.0f}' for r in prep_rates)}): "
          f"streaming {rate:.1f} images/s (whole run_inference call, pool start included) vs preprocessing "
          f"{prep_rate:.1f} images/s = {rate / prep_rate:.0%} [target >= 90%: {'ok' if ok else 'BELOW'}]; "
          f"last run: pool decode rate {st['decode_rate_images_per_s']:.1f} images/s, bounded by {st['bounded_by']}")
    return ok


def onnxruntime(val: str, work: str, n: int, batch_size: int, workers: int, repeat: int) -> bool:
    model = os.path.join(work, "resnet50-dyn.onnx")
    export_resnet50(model)
    py = sys.executable
    prep_dir = os.path.join(work, "prep")
    common = ["--model", model, "--batch-size", str(batch_size), "--no-progress"]
    times: Dict[str, List[float]] = {"prep": [], "bin": [], "stream": []}
    rss: Dict[str, float] = {"bin": 0.0, "stream": 0.0}
    # Interleaved rounds, the fastest of each kept: the machine is shared, and its noise only slows.
    for _ in range(repeat):
        shutil.rmtree(prep_dir, ignore_errors=True)
        t, _ = timed([py, "imagenet_torch_preprocess.py", val, prep_dir, "--workers", str(workers), "--no-progress"],
                     work)
        times["prep"].append(t)
        for kind, extra in (("bin", ["--input", prep_dir]), ("stream", ["--input", val, "--workers", str(workers)])):
            out = os.path.join(work, f"r_{kind}")
            shutil.rmtree(out, ignore_errors=True)
            t, peak = timed([py, "run_om_infer.py", *common, *extra, "--output", out], work)
            times[kind].append(t)
            rss[kind] = max(rss[kind], peak)
    t_prep, t_bin, t_stream = (min(times[k]) for k in ("prep", "bin", "stream"))
    same = files_of(os.path.join(work, "r_bin", "dumpOutput_device0")) == \
        files_of(os.path.join(work, "r_stream", "dumpOutput_device0"))
    with open(os.path.join(work, "r_stream", "summary.json")) as f:
        st = json.load(f)["stream"]
    ratio = t_stream / t_bin
    ok = ratio <= 1.15 and t_stream < t_prep + t_bin and same and rss["stream"] < 1024
    report("streaming / .bin inference, wall time", f"{ratio:.2f}x", "<= 1.15x", ratio <= 1.15)
    report("streaming / (preprocess + .bin inference)", f"{t_stream / (t_prep + t_bin):.2f}x", "< 1x",
           t_stream < t_prep + t_bin)
    report("streaming results as .bin inference's", "identical" if same else "DIFFERENT", "identical", same)
    report("streaming peak RSS", f"{rss['stream']:.0f} MB", "< 1024 MB", rss["stream"] < 1024)
    print(f"onnxruntime, stand-in ResNet-50, {n} JPEGs, batch {batch_size}, {workers} decode workers "
          f"(whole commands, wall clock, fastest of {repeat}: " +
          ", ".join(f"{k} {' '.join(f'{t:.1f}' for t in v)}" for k, v in times.items()) + "):")
    print(f"  preprocess {t_prep:.1f}s, inference from .bin {t_bin:.1f}s, streaming {t_stream:.1f}s")
    print(f"  streaming / .bin inference = {ratio:.2f}x [target <= 1.15x: {'ok' if ratio <= 1.15 else 'ABOVE'}]")
    print(f"  streaming vs preprocess + inference ({t_prep + t_bin:.1f}s): "
          f"{'below' if t_stream < t_prep + t_bin else 'NOT below'}")
    print(f"  result files byte-identical: {'yes' if same else 'NO'}")
    print(f"  peak RSS (largest process of the command): streaming {rss['stream']:.0f} MB, .bin inference "
          f"{rss['bin']:.0f} MB [target < 1024 MB: {'ok' if rss['stream'] < 1024 else 'ABOVE'}]")
    print(f"  streaming's summary: decode {st['decode_rate_images_per_s']:.1f} images/s, model "
          f"{st['model_rate_images_per_s']:.1f} images/s, bounded by {st['bounded_by']}")
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=64, help="JPEGs for the ONNX Runtime part (default: %(default)s)")
    p.add_argument("--zero-images", type=int, default=400, help="JPEGs for the zero-cost part (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeat", type=int, default=2,
                   help="interleaved ONNX Runtime rounds (default: %(default)s; the zero-cost part runs one more)")
    p.add_argument("--workers", type=int, default=usable_cpus())
    p.add_argument("--dir", help="work folder (default: a temporary one, removed afterwards)")
    args = p.parse_args()
    work = args.dir or tempfile.mkdtemp(prefix="bench_stream_")
    try:
        val = os.path.join(work, "val")
        make_images(val, max(args.images, args.zero_images), args.workers)
        print(f"cpu cores usable: {usable_cpus()}; {max(args.images, args.zero_images)} JPEGs in {val}")
        ok = zero_cost(val, work, args.workers, args.batch_size, args.repeat + 1)
        small = os.path.join(work, "val_small")
        os.makedirs(small)
        for name in sorted(os.listdir(val))[:args.images]:
            shutil.copy(os.path.join(val, name), small)
        ok &= onnxruntime(small, work, args.images, args.batch_size, args.workers, args.repeat)
        return 0 if ok else 1
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

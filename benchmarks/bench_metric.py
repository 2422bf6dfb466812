#!/usr/bin/env python3
"""Benchmark of stage 6: vision_metric_ImageNet.py against the guide's algorithm, whole commands.

Both sides run as the user runs them, one process each (interpreter start-up, imports, listing,
reading and the result.json included), on the same files, alternating, so that a busy machine
slows both alike. The guide's side is tests/reference_metric.py, the tests' oracle. Each
size is run --repeat times per side; the median and the fastest run are reported, and the
speed-up is the ratio of the medians. CPU seconds (the command's and its workers') are printed
beside, as a check on figures from a machine that other jobs share. Before timing, one untimed
run of ours fills the page cache for both.

    .venv/bin/python benchmarks/bench_metric.py                    # 5,000 + 50,000 txt, 50,000 bin
    .venv/bin/python benchmarks/bench_metric.py --txt 5000 --bin 0 --repeat 5
    .venv/bin/python benchmarks/bench_metric.py --data /tmp/metric-data   # keep the files for reruns
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List, NamedTuple, Tuple

import numpy as np
from common import compile_package, report  # benchmarks/common.py, beside this script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import tests.reference_metric as reference  # noqa: E402  (needs ROOT on sys.path)

GUIDE = os.path.abspath(reference.__file__)
OURS = os.path.join(ROOT, "vision_metric_ImageNet.py")


def make_dataset(folder: str, n: int, fmt: str, classes: int = 1000, seed: int = 0) -> str:
    """n result files like the benchmark's (`<image>_1.<fmt>`) and a label file; returns its path.

    An existing complete folder (from an earlier --data run) is reused as it is.
    """
    from mocoinfer.formats import encode_result

    label_file = folder.rstrip("/") + "_labels.txt"
    if os.path.isfile(label_file) and os.path.isdir(folder) and len(os.listdir(folder)) == n:
        return label_file
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    labels = rng.integers(0, classes, n)
    for i in range(n):
        vec = rng.standard_normal(classes).astype(np.float32)
        vec[labels[i]] += rng.uniform(0, 4)
        with open(os.path.join(folder, f"ILSVRC2012_val_{i + 1:08d}_1.{fmt}"), "wb") as f:
            f.write(encode_result(vec, fmt))
    with open(label_file, "w") as f:
        f.writelines(f"ILSVRC2012_val_{i + 1:08d}.JPEG {lab}\n" for i, lab in enumerate(labels))
    return label_file


class Timing(NamedTuple):
    wall: float                    # seconds, start to exit
    cpu: float                     # user + system seconds of the command and its worker processes


def run_command(argv: List[str]) -> Timing:
    """Time one whole command; a failure stops the benchmark."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(elapsed, cpu)


def summary(times: List[Timing]) -> Tuple[float, str]:
    med = statistics.median(t.wall for t in times)
    cpu = statistics.median(t.cpu for t in times)
    return med, f"median {med:.2f}s, fastest {min(t.wall for t in times):.2f}s, cpu {cpu:.2f}s"


def bench_txt(tmp: str, n: int, repeat: int) -> None:
    folder = os.path.join(tmp, f"txt{n}")
    labels = make_dataset(folder, n, "txt")
    out = os.path.join(tmp, "out")
    os.makedirs(out, exist_ok=True)
    guide_cmd = [sys.executable, GUIDE, folder, labels, out, "guide.json"]
    ours_cmd = [sys.executable, OURS, folder, labels, out, "result.json"]
    run_command(ours_cmd)
    guide, ours = [], []
    for _ in range(repeat):
        guide.append(run_command(guide_cmd))
        ours.append(run_command(ours_cmd))
    with open(os.path.join(out, "guide.json")) as a, open(os.path.join(out, "result.json")) as b:
        same = a.read() == b.read()
    g, g_text = summary(guide)
    o, o_text = summary(ours)
    fastest = min(t.wall for t in guide) / min(t.wall for t in ours)
    # CPU seconds move less than wall time when other jobs share the machine; their ratio is
    # what one core would give (ours can use more than one, so wall can beat it when idle).
    cpu = statistics.median(t.cpu for t in guide) / statistics.median(t.cpu for t in ours)
    report(f"txt {n:,} files: speed-up over the guide", f"{g / o:.1f}x", "none", None)
    report(f"txt {n:,} files: result.json as the guide's", "identical" if same else "DIFFERENT", "identical", None)
    print(f"txt {n:,} files: guide {g_text}; ours {o_text}; speed-up {g / o:.1f}x "
          f"(fastest/fastest {fastest:.1f}x, cpu/cpu {cpu:.1f}x); result.json identical: {same}", flush=True)


def bench_bin(tmp: str, n: int, repeat: int) -> None:
    folder = os.path.join(tmp, f"bin{n}")
    labels = make_dataset(folder, n, "bin", seed=1)
    out = os.path.join(tmp, "out")
    os.makedirs(out, exist_ok=True)
    cmd = [sys.executable, OURS, folder, labels, out, "result_bin.json"]
    run_command(cmd)
    ours = [run_command(cmd) for _ in range(repeat)]
    o, o_text = summary(ours)
    report(f"bin {n:,} files: images/s", f"{n / o:,.0f}", "none", None)
    print(f"bin {n:,} files: ours {o_text} ({n / o:,.0f} images/s)", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--txt", type=int, nargs="*", default=[5000, 50000],
                   help="txt result counts to time against the guide (default: %(default)s)")
    p.add_argument("--bin", type=int, default=50000, help="bin result files, ours only (default %(default)s; 0: none)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per side and size (default %(default)s)")
    p.add_argument("--data", metavar="DIR",
                   help="keep the generated files here and reuse them next time (default: a temporary folder)")
    args = p.parse_args()
    compile_package()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or tmp
        for n in args.txt:
            bench_txt(data, n, args.repeat)
        if args.bin:
            bench_bin(data, args.bin, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())

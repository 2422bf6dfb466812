"""Benchmark: `--device-id 0,1` with ONNX Runtime on this CPU against one process with every core.

Two worker processes, each pinned to its share of the usable cores with as many threads, against
one process running ONNX Runtime with one thread per usable core, on the same `.bin` files of the
stand-in ResNet-50, interleaved. Reports images/s of each (images over the wall time from the first
read to the last result written, and with process start, model loads and warm-up included) and
their ratio. No target: the figure tells users which to choose on a CPU host.

    .venv/bin/python benchmarks/bench_devices.py [--images 32] [--batch-sizes 1,4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
from common import report  # benchmarks/common.py, beside this script

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mocoinfer.progress import usable_cpus  # noqa: E402
from mocoinfer.runner import run_inference  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--batch-sizes", default="1,4")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds, best of each (default: 2)")
    args = p.parse_args()
    from mocoinfer.demo import standin_model
    from mocoinfer.export import export_model

    work = tempfile.mkdtemp(prefix="bench_devices_")
    try:
        model = os.path.join(work, "moco-v2-dynamic.onnx")
        export_model(standin_model(), model, batch_size=1, dynamic=True, verify=False)
        bins = os.path.join(work, "bins")
        os.makedirs(bins)
        data = np.random.default_rng(0).standard_normal((args.images, 3, 224, 224)).astype(np.float32)
        for i, x in enumerate(data):
            x.tofile(os.path.join(bins, f"img{i + 1}.bin"))
        print(f"stand-in ResNet-50, {args.images} images, {usable_cpus()} usable cores, ONNX Runtime CPU; "
              f"{args.rounds} interleaved rounds, best of each")
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            best = {"one": (0.0, 0.0), "two": (0.0, 0.0)}
            for _ in range(args.rounds):
                for label, ids in (("one", "0"), ("two", "0,1")):
                    out = os.path.join(work, "result")
                    t0 = time.perf_counter()
                    s = run_inference(model, bins, out, batch_size=bs, device_id=ids, outfmt="bin", progress=False)
                    total = time.perf_counter() - t0
                    e2e = s["e2e"]["throughput_images_per_s"]
                    best[label] = max(best[label], (e2e, args.images / total))
                    shutil.rmtree(out)
            (one, one_all), (two, two_all) = best["one"], best["two"]
            report(f"--device-id 0,1 / one process, batch {bs}", f"{two / one:.2f}x", "none", None)
            print(f"batch {bs}: one process, {usable_cpus()} threads: {one:6.1f} images/s ({one_all:5.1f} with "
                  f"start-up); --device-id 0,1: {two:6.1f} images/s ({two_all:5.1f} with start-up); ratio "
                  f"{two / one:.2f}x ({two_all / one_all:.2f}x with start-up)")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
